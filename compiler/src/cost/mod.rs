//! The cost model: per-op work, device profiles, a roofline for latency, energy and power, and
//! what-if options priced without rewriting the graph.
//!
//! Pipeline: [`work::graph_work`] walks the graph once (symbolic dims bound: batch 1, `S` and
//! `T` to the context length) and records each op's MACs, FLOPs and the bytes it reads and
//! writes by group (matrix weights, embeddings, fixed weights, activations, KV cache).
//! [`whatif::Estimator`] prices that work on a [`profile::DeviceProfile`] unit with
//! [`roofline::op_cost`] under [`whatif::WhatIf`] options; toggling one op's options re-prices
//! that op alone. [`report::Report`] is what `petasos estimate` prints (text, CSV, JSON).
//!
//! Left to other parts (fields marked in [`report::Totals`]): the memory planner
//! (`cost::memory`: peak activation bytes) and charts (`cost::charts`).

pub mod cli;
pub mod profile;
pub mod report;
pub mod roofline;
pub mod whatif;
pub mod work;

use petasos_ir::Graph;
use std::collections::HashMap;
use std::io::IsTerminal;

pub use profile::DeviceProfile;
pub use report::Report;
pub use whatif::{Estimator, OpOptions, WhatIf, Width};

/// Errors of the cost model.
#[derive(Debug, thiserror::Error)]
pub enum CostError {
    #[error(
        "unknown device '{name}' (built-in profiles: {known}; or give the path of a .toml profile)"
    )]
    UnknownDevice { name: String, known: String },
    #[error("reading device profile {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A malformed or invalid profile; `origin` is the file (or built-in name).
    #[error("device profile {origin}: {msg}")]
    Profile { origin: String, msg: String },
    #[error("device profile {profile} has no unit '{unit}' (units: {known})")]
    UnknownUnit {
        profile: String,
        unit: String,
        known: String,
    },
    #[error("what-if names op '{key}', which is not in the model (name an op by node name or layer path, e.g. {example})")]
    UnknownOp { key: String, example: String },
    #[error("{0}")]
    WhatIf(String),
    #[error(transparent)]
    Ir(#[from] petasos_ir::Error),
}

/// How symbolic dims are bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EstimateOptions {
    /// Tokens: the prefill length `S` and the decode cache length `T` (and the ONNX names
    /// `past_sequence_length`, `total_sequence_length`).
    pub context: u64,
    /// `batch` (and `batch_size`, `N`).
    pub batch: u64,
}

impl Default for EstimateOptions {
    fn default() -> Self {
        EstimateOptions {
            context: 2048,
            batch: 1,
        }
    }
}

impl EstimateOptions {
    /// The dim bindings; any other symbol counts as 1 (listed in the report's `dims`).
    pub fn dims(&self) -> HashMap<String, u64> {
        let mut d = HashMap::new();
        for k in ["batch", "batch_size", "N"] {
            d.insert(k.to_string(), self.batch);
        }
        for k in ["S", "T", "past_sequence_length", "total_sequence_length"] {
            d.insert(k.to_string(), self.context);
        }
        d
    }
}

/// Computes the work of `g` and prices it: the whole of `petasos estimate` short of printing.
/// Shows a progress bar on stderr for large graphs when stderr is a terminal.
pub fn estimate(
    g: &Graph,
    profile: &DeviceProfile,
    unit: Option<&str>,
    opts: &EstimateOptions,
    what_if: WhatIf,
) -> Result<Estimator, CostError> {
    let nodes = g.g.node_count();
    let bar = (nodes > 5000 && std::io::stderr().is_terminal()).then(|| {
        let b = indicatif::ProgressBar::new(nodes as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template("estimating {bar:40} {pos}/{len} nodes")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    let mut progress = |done: usize| {
        if let Some(b) = &bar {
            b.set_position(done as u64);
        }
    };
    let w = work::graph_work(g, &opts.dims(), &mut progress)?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Estimator::new(w, profile, unit, what_if)
}
