//! The `ptmoe` family: Apple's server parallel-track mixture-of-experts decoder (AFM 2025).
//!
//! See [`Config`] for the structure and [`build`](build::build) for the graph layout.

mod build;
mod config;

pub use build::build;
pub use config::{active_parameters_per_token, Config};

use crate::config::apply_overrides;
use crate::Preset;
use petasos_ir::Graph;

/// Parameters of a built graph: the element count of its constants (weights plus a few small
/// shape and axis constants), as `petasos inspect` reports it.
pub fn total_parameters(g: &Graph) -> u64 {
    petasos_ir::stats::graph_stats(g).parameters
}

/// This family's presets.
pub fn presets() -> Vec<Preset> {
    vec![Preset {
        name: "afm-server-ptmoe",
        family: "ptmoe",
        summary: "AFM server 2025 parallel-track MoE: 8 tracks x 48 layers, 40 experts top-2 (~147.8B, ~15.8B active)",
        build: |o| build(&apply_overrides(&Config::afm_server_ptmoe(), o.overrides.as_ref())?, o),
    }]
}
