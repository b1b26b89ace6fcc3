//! Ops of the `quant` family.

use super::Registry;

/// Registers this family's builders.
pub fn register(_r: &mut Registry) {}
