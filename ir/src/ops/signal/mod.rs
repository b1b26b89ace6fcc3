//! Ops of the `signal` family.

use super::Registry;

/// Registers this family's builders.
pub fn register(_r: &mut Registry) {}
