//! The `prune` pass: UPSCALE channel pruning as a registered pass, configured by a
//! [`PruneConfig`] (the `prune` field of [`crate::PipelineConfig`]).
//!
//! What it does: drops `amount` of the prunable layers' input channels (lowest `heuristic`
//! scores, per layer or global), removes channels no layer reads from their producers, and
//! exports the segments in `mode` (see [`super::surgery`]). When it applies: any graph with a
//! prunable layer (a `Conv`/`Gemm`/`MatMul` whose input channels another such layer creates);
//! otherwise it fails with [`PruneError::NoPrunableLayer`]. What it preserves: the masked
//! model's outputs ([`super::masked`]), not the original's: pruning changes what the model
//! computes. One rewrite per pruned segment; the rewrite budget bounds the segments pruned.
//!
//! Example (JSON pipeline config):
//! `{"passes": ["prune", "dce"], "prune": {"amount": 0.3, "heuristic": "l2", "mode": "reorder"}}`.

use super::heuristic::{Criterion, Scope};
use super::plan::{PruneMode, PruneOptions};
use super::segment::PruneError;
use super::surgery::prune;
use crate::{Pass, PassContext, PassError, PassReport};
use petasos_ir::Graph;
use serde::{Deserialize, Serialize};

/// The pass's registry name.
pub const NAME: &str = "prune";
/// One line: what it does.
pub const SUMMARY: &str =
    "UPSCALE channel pruning: drops low-magnitude channels, reorders them so layers slice, not gather";

/// Configuration of the `prune` pass.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PruneConfig {
    /// Fraction of input channels dropped, in `[0, 1)`.
    #[serde(default = "default_amount")]
    pub amount: f64,
    /// Channel scores: `l1`, `l2`, `lamp`, `fpgm`.
    #[serde(default = "default_heuristic")]
    pub heuristic: Criterion,
    /// `layer` (each layer drops `amount`) or `global` (lowest scores across the model).
    #[serde(default = "default_scope")]
    pub scope: Scope,
    /// `reorder`, `no-reorder` or `constrained`.
    #[serde(default)]
    pub mode: PruneMode,
    /// Replace the gathers left by covering slices with zeroed weight columns.
    #[serde(default)]
    pub cover_gathers: bool,
}

// Deserialised amounts are finite (JSON has no NaN) and checked before use.
impl Eq for PruneConfig {}

fn default_amount() -> f64 {
    0.3
}
fn default_heuristic() -> Criterion {
    Criterion::L2
}
fn default_scope() -> Scope {
    Scope::Layer
}

impl Default for PruneConfig {
    /// 30% of channels by L2 magnitude, per layer, reordered.
    fn default() -> Self {
        PruneConfig {
            amount: default_amount(),
            heuristic: default_heuristic(),
            scope: default_scope(),
            mode: PruneMode::default(),
            cover_gathers: false,
        }
    }
}

impl PruneConfig {
    /// The surgery options this configuration describes.
    pub fn options(&self) -> PruneOptions {
        let mut o = PruneOptions::heuristic(self.heuristic, self.amount, self.scope, self.mode);
        o.cover_gathers = self.cover_gathers;
        o
    }
}

/// The `prune` pass.
#[derive(Clone, Debug, Default)]
pub struct PrunePass {
    pub config: PruneConfig,
}

impl PrunePass {
    /// The pass with `config`; errors on an amount outside `[0, 1)`.
    pub fn new(config: PruneConfig) -> Result<PrunePass, PassError> {
        if !(0.0..1.0).contains(&config.amount) {
            return Err(PassError::Config(
                PruneError::Amount(config.amount).to_string(),
            ));
        }
        Ok(PrunePass { config })
    }
}

impl Pass for PrunePass {
    fn name(&self) -> &'static str {
        NAME
    }
    fn summary(&self) -> &'static str {
        SUMMARY
    }
    fn run(&self, g: &mut Graph, cx: &PassContext) -> Result<PassReport, PassError> {
        if cx.budget == 0 {
            return Ok(PassReport::new(0, "no rewrite budget left"));
        }
        let mut opts = self.config.options();
        opts.max_segments = cx.budget;
        let r = prune(g, &opts).map_err(|e| PassError::Rewrite(e.to_string()))?;
        let t = &r.totals;
        Ok(PassReport::new(
            t.segments,
            format!(
                "pruned {} segments ({}, {:.2} by {:?}): channels {} -> {}, gathers {} (baseline) -> {}, slices {}, MACs {} -> {}",
                t.segments,
                r.mode,
                self.config.amount,
                self.config.heuristic,
                t.channels_before,
                t.channels_after,
                t.gathers_before,
                t.gathers,
                t.slices,
                t.macs_before,
                t.macs_after
            ),
        ))
    }
}
