//! Presets of the `vit` family: torchvision's `vit_b_16` and Mobile V-MoE (ViT-Tiny with
//! image-level expert routing). The graph metadata entry `parameters` holds the learned-parameter
//! count; `petasos_ir::stats` also counts the few small shape and index constants.

pub mod model;

pub use model::ViTConfig;

use crate::config::apply_overrides;
use crate::Preset;

/// This family's presets.
pub fn presets() -> Vec<Preset> {
    vec![
        Preset {
            name: "vit_b_16",
            family: "vit",
            summary: "ViT-B/16 (torchvision), 86.6M parameters, 224x224",
            build: |o| {
                model::build(
                    &apply_overrides(&ViTConfig::vit_b_16(), o.overrides.as_ref())?,
                    o,
                )
            },
        },
        Preset {
            name: "mobile-vmoe",
            family: "vit",
            summary:
                "Mobile V-MoE: ViT-Tiny, per-image router, 10 experts (k=1) in the last 2 blocks",
            build: |o| {
                model::build(
                    &apply_overrides(&ViTConfig::mobile_vmoe(), o.overrides.as_ref())?,
                    o,
                )
            },
        },
    ]
}
