//! Ops of the `shape_ops` family.

use super::Registry;

/// Registers this family's builders.
pub fn register(_r: &mut Registry) {}
