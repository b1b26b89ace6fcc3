//! Built-in model architectures (filled by a later issue; see shared docs/architectures.md).
