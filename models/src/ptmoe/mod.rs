//! Presets of the `ptmoe` family.

use crate::Preset;

/// This family's presets.
pub fn presets() -> Vec<Preset> {
    Vec::new()
}
