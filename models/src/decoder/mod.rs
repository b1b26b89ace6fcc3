//! Decoder-only transformers (`decoder` family): one configurable builder with presets for
//! AFM on-device 2025 (with KV sharing) and 2024, Llama and Mixtral (MoE FFN) style models.

mod build;
mod config;

pub use build::build;
pub use config::{kv_cache_values_per_token, Config, MoeConfig};

use crate::config::apply_overrides;
use crate::Preset;

/// This family's presets.
pub fn presets() -> Vec<Preset> {
    vec![
        Preset {
            name: "afm-ondevice-2025",
            family: "decoder",
            summary: "AFM on-device 2025, 3.1B: 56 layers (35 + 21 KV-sharing), d 2048, GQA 16/2",
            build: |o| {
                build(
                    &apply_overrides(&Config::afm_ondevice_2025(), o.overrides.as_ref())?,
                    o,
                )
            },
        },
        Preset {
            name: "afm-ondevice-2024",
            family: "decoder",
            summary: "AFM on-device 2024, 2.7B: 26 layers, d 3072, GQA 24/8",
            build: |o| {
                build(
                    &apply_overrides(&Config::afm_ondevice_2024(), o.overrides.as_ref())?,
                    o,
                )
            },
        },
        Preset {
            name: "llama2-7b",
            family: "decoder",
            summary: "Llama 2 7B: 32 layers, d 4096, 32 heads, SwiGLU 11008, untied head",
            build: |o| {
                build(
                    &apply_overrides(&Config::llama2_7b(), o.overrides.as_ref())?,
                    o,
                )
            },
        },
        Preset {
            name: "mixtral-8x7b",
            family: "decoder",
            summary: "Mixtral 8x7B: 32 layers, d 4096, GQA 32/8, top-2 of 8 SwiGLU experts",
            build: |o| {
                build(
                    &apply_overrides(&Config::mixtral_8x7b(), o.overrides.as_ref())?,
                    o,
                )
            },
        },
        Preset {
            name: "llama",
            family: "decoder",
            summary: "Llama-style decoder, configurable with --config (defaults: Llama 2 7B)",
            build: |o| {
                build(
                    &apply_overrides(&Config::llama2_7b(), o.overrides.as_ref())?,
                    o,
                )
            },
        },
        Preset {
            name: "mixtral",
            family: "decoder",
            summary:
                "Mixtral-style MoE decoder, configurable with --config (defaults: Mixtral 8x7B)",
            build: |o| {
                build(
                    &apply_overrides(&Config::mixtral_8x7b(), o.overrides.as_ref())?,
                    o,
                )
            },
        },
        Preset {
            name: "llama-tiny",
            family: "decoder",
            summary: "small Llama-style decoder (2 layers, d 64) for the interpreter",
            build: |o| {
                build(
                    &apply_overrides(&Config::llama_tiny(), o.overrides.as_ref())?,
                    o,
                )
            },
        },
        Preset {
            name: "mixtral-tiny",
            family: "decoder",
            summary: "small Mixtral-style decoder (2 layers, d 64, top-2 of 4 experts)",
            build: |o| {
                build(
                    &apply_overrides(&Config::mixtral_tiny(), o.overrides.as_ref())?,
                    o,
                )
            },
        },
    ]
}
