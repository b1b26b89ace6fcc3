//! Built-in model architectures, usable wherever a model file is (`petasos inspect resnet18`).
//!
//! Each family module builds IR graphs from a serde config (`*Config`) with named presets (the
//! published configs of shared docs/architectures.md). Weights are synthetic: a seed per weight,
//! no bytes, so a 150B-parameter graph builds in milliseconds; the interpreter materialises them
//! on demand, so small configs run. Decoders are built for a [`Phase`] with symbolic batch,
//! sequence and cache lengths.

pub mod cnn;
pub mod config;
pub mod decoder;
mod demo;
pub mod ptmoe;
pub mod vit;

pub use config::{BuildOptions, ModelError, Phase, Preset};
use petasos_ir::Graph;

/// All presets, in the order `petasos models` lists them.
pub fn presets() -> Vec<Preset> {
    let mut v = vec![Preset {
        name: "demo-cnn",
        family: "demo",
        summary: "small residual CNN (ONNX built in memory, then imported)",
        build: |o| {
            config::ensure(o.overrides.is_none(), || {
                "demo-cnn has no config to override".into()
            })?;
            Ok(demo::demo_cnn()?)
        },
    }];
    v.extend(cnn::presets());
    v.extend(vit::presets());
    v.extend(decoder::presets());
    v.extend(ptmoe::presets());
    v
}

/// Names of the built-in models.
pub fn names() -> Vec<&'static str> {
    presets().iter().map(|p| p.name).collect()
}

/// Whether `name` is a built-in model.
pub fn is_builtin(name: &str) -> bool {
    presets().iter().any(|p| p.name == name)
}

/// Builds a built-in model by name with default options.
pub fn build(name: &str) -> Result<Graph, ModelError> {
    build_with(name, &BuildOptions::default())
}

/// Builds a built-in model by name.
pub fn build_with(name: &str, opts: &BuildOptions) -> Result<Graph, ModelError> {
    let p = presets()
        .into_iter()
        .find(|p| p.name == name)
        .ok_or_else(|| ModelError::Unknown(name.to_string()))?;
    (p.build)(opts).map_err(|e| e.context(name))
}

/// The learned-parameter count of a built-in graph: what its builder recorded in the metadata
/// entry `learned_parameters` (weights only, as training frameworks count them), else the
/// statistics' estimate (constants less batch-norm buffers and shape data).
pub fn learned_parameters(g: &Graph) -> u64 {
    g.metadata
        .get("learned_parameters")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| petasos_ir::stats::graph_stats(g).learnable_parameters)
}
