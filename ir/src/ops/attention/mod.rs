//! Ops of the `attention` family.

use super::Registry;

/// Registers this family's builders.
pub fn register(_r: &mut Registry) {}
