//! The masked model: the equivalence oracle of pruning.
//!
//! The original graph, unchanged except that every planned consumer's weight columns it does
//! not keep ([`super::plan::Read::columns`]) are set to zero. A channel no consumer keeps then
//! contributes nothing, exactly as if its producer row were removed, so the pruned model
//! ([`super::surgery`]) must compute the same outputs (up to summation order: 1e-5 relative in
//! f32). Shapes, parameter counts and MACs are those of the original.
//!
//! Example: K reads 4 channels and keeps {1,3}: `K[:, 0]` and `K[:, 2]` become zero.

use super::plan::{Plan, PruneOptions};
use super::segment::{layer, PruneError};
use super::select::zero;
use crate::rewrite::{input, node_name, set_const_input};
use petasos_ir::Graph;

/// What [`masked`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct MaskReport {
    /// Layers with at least one zeroed input column.
    pub layers: usize,
    /// Input columns zeroed, over all layers.
    pub columns_zeroed: usize,
}

/// Zeroes, in `g`, the dropped input columns of every consumer `opts` prunes (see the module
/// doc). Plans exactly as [`super::surgery::prune`] does, so the two agree.
pub fn masked(g: &mut Graph, opts: &PruneOptions) -> Result<MaskReport, PruneError> {
    let plan = Plan::new(g, opts)?;
    mask(g, &plan, opts.max_segments)
}

/// Applies the first `max_segments` segments of `plan` to `g` as a masked model.
pub fn mask(g: &mut Graph, plan: &Plan, max_segments: usize) -> Result<MaskReport, PruneError> {
    let mut r = MaskReport::default();
    for sp in plan.segments.iter().take(max_segments) {
        for read in &sp.reads {
            let keep: Vec<usize> = read
                .columns
                .iter()
                .copied()
                .filter(|c| !read.padded.contains(c))
                .collect();
            if keep.len() == read.width {
                continue;
            }
            let k = read.node;
            let bad = |msg: &str| PruneError::Surgery {
                name: node_name(g, k),
                msg: msg.to_string(),
            };
            let l = layer(g, k).ok_or_else(|| bad("is not a layer"))?;
            let w = input(g, k, 1)
                .and_then(|v| g.constant(v.node))
                .ok_or_else(|| bad("weight is not a constant"))?
                .to_tensor()?;
            let name = format!("{} weight", node_name(g, k));
            let t = zero(&w, l.weight_in_axis, &keep, &name)?;
            let base = input(g, k, 1)
                .and_then(|v| g.value_name(v).map(|s| format!("{s}_masked")))
                .unwrap_or_else(|| "masked".into());
            set_const_input(g, k, 1, t, &base);
            r.layers += 1;
            r.columns_zeroed += read.width - keep.len();
        }
    }
    Ok(r)
}
