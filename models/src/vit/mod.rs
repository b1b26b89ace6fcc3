//! Presets of the `vit` family.

use crate::Preset;

/// This family's presets.
pub fn presets() -> Vec<Preset> {
    Vec::new()
}
