//! The desktop viewer (filled by a later issue).
