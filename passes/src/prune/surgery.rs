//! Weight surgery: rewrites a graph as a [`Plan`] says, so the pruned model computes what the
//! masked model ([`super::masked`]) computes, with fewer channels.
//!
//! Per planned segment, in order:
//! - **producers** (`Conv` group 1, `ConvTranspose`, `Gemm` with or without `transB`, 2-D
//!   `MatMul`) keep the output rows of their block's kept channels in the new order, and their
//!   bias the same entries (a `Gemm` bias broadcast over outputs is left alone);
//! - **users** get their per-channel parameters permuted and selected the same way
//!   ([`super::plan::user_params`]: `BatchNormalization` scale/B/mean/var, a depthwise `Conv`'s
//!   weight and bias, and its `group` set to the new channel count, constant operands of
//!   `Add`/`Mul`/`PRelu`/...); pools, activations and `Concat` need nothing;
//! - **consumers** keep the weight columns [`super::plan::Read::columns`] (in that order) and
//!   read their input through a `Slice` on the channel axis (when they read a strict
//!   contiguous range) or a `Gather` with int64 indices (otherwise); reading the whole pruned
//!   tensor needs neither. With [`PruneOptions::cover_gathers`] a consumer that would gather
//!   slices the range covering its kept channels instead, its columns for the dropped channels
//!   inside that range ([`super::plan::Read::padded`]) set to zero.
//!
//! Then types are re-inferred; after the last segment the graph is verified. `Slice` and
//! `Gather` are the op library's typed ops (what the ONNX importer builds for those nodes), so
//! ONNX export writes them as `Slice` and `Gather` nodes; `Slice` takes its opset-1 attribute
//! form when the model's opset is below 10.
//!
//! Example: `y = Conv(x, W1[4,3,3,3])`, `z1 = Conv(y, K1[2,4,1,1])`, `z2 = Conv(y, K2[2,4,1,1])`
//! with K1 keeping channels {1,2,3} and K2 {0,2,3} becomes, reordered, `W1` rows `[1,2,3,0]`,
//! `z1 = Conv(Slice(y, 0..3), K1[:, [1,2,3]])`, `z2 = Conv(Slice(y, 1..4), K2[:, [2,3,0]])`.

use super::plan::{
    new_channels, old_channels, user_params, Plan, PruneOptions, SegmentPlan, Selection,
};
use super::report::{PruneReport, SegmentReport, Totals};
use super::segment::{layer, PruneError};
use super::select::{take, zero};
use crate::rewrite::{add_const, fresh_name, input, node_name, set_const_input, set_input};
use petasos_ir::graph::Provenance;
use petasos_ir::infer::infer_graph;
use petasos_ir::ops::linalg::matmul::Gemm;
use petasos_ir::ops::nn::conv::Conv;
use petasos_ir::ops::shape_ops::gather::Gather;
use petasos_ir::ops::shape_ops::slice::Slice;
use petasos_ir::stats::graph_stats;
use petasos_ir::verify::verify;
use petasos_ir::{Graph, Tensor, ValueRef};
use petgraph::stable_graph::NodeIndex;
use std::collections::HashMap;

/// Prunes `g` in place (plan, then surgery); returns what changed. On error `g` may be left
/// partly rewritten: prune a copy when the original must survive a failure.
pub fn prune(g: &mut Graph, opts: &PruneOptions) -> Result<PruneReport, PruneError> {
    let plan = Plan::new(g, opts)?;
    apply(g, &plan, opts.max_segments)
}

/// Applies the first `max_segments` segments of `plan` to `g` (the graph it was planned on, or
/// a clone of it).
pub fn apply(g: &mut Graph, plan: &Plan, max_segments: usize) -> Result<PruneReport, PruneError> {
    let before = graph_stats(g);
    let mut report = PruneReport {
        mode: plan.mode.name().to_string(),
        skipped: plan.skipped.clone(),
        ..Default::default()
    };
    let (mut params, mut macs) = (before.learnable_parameters, before.macs);
    for sp in plan.segments.iter().take(max_segments) {
        apply_segment(g, sp)?;
        infer_graph(g)?;
        let now = graph_stats(g);
        report.segments.push(SegmentReport {
            segment: sp.segment.id,
            producers: sp
                .segment
                .producers
                .iter()
                .map(|&p| node_name(g, p))
                .collect(),
            consumers: sp.segment.consumers.len(),
            channels: sp.segment.channels,
            kept: sp.ordering.perm.len(),
            gathers_before: sp.baseline_gathers,
            gathers: sp.gathers(),
            slices: sp.slices(),
            covered: sp.covered(),
            fallback: sp.ordering.fallback,
            search_nodes: sp.ordering.nodes,
            gather_reasons: sp
                .reads
                .iter()
                .filter_map(|r| {
                    r.reason
                        .as_ref()
                        .map(|why| format!("{}: {why}", node_name(g, r.node)))
                })
                .collect(),
            params_removed: params.saturating_sub(now.learnable_parameters),
            macs_removed: macs.saturating_sub(now.macs),
        });
        params = now.learnable_parameters;
        macs = now.macs;
    }
    verify(g)?;
    let after = graph_stats(g);
    let done = &report.segments;
    report.totals = Totals {
        segments: done.len(),
        skipped: plan.skipped.len() + plan.segments.len() - done.len(),
        channels_before: done.iter().map(|r| r.channels).sum(),
        channels_after: done.iter().map(|r| r.kept).sum(),
        gathers_before: done.iter().map(|r| r.gathers_before).sum(),
        gathers: done.iter().map(|r| r.gathers).sum(),
        slices: done.iter().map(|r| r.slices).sum(),
        covered: done.iter().map(|r| r.covered).sum(),
        params_before: before.learnable_parameters,
        params_after: after.learnable_parameters,
        macs_before: before.macs,
        macs_after: after.macs,
    };
    Ok(report)
}

fn surgery_err(g: &Graph, n: NodeIndex, msg: impl Into<String>) -> PruneError {
    PruneError::Surgery {
        name: node_name(g, n),
        msg: msg.into(),
    }
}

/// The constant tensor node `n` reads in `slot`.
fn const_of(g: &Graph, n: NodeIndex, slot: usize) -> Result<Option<Tensor>, PruneError> {
    let Some(v) = input(g, n, slot) else {
        return Ok(None);
    };
    match g.constant(v.node) {
        Some(c) => Ok(Some(c.to_tensor()?)),
        None => Err(surgery_err(g, n, format!("input {slot} is not a constant"))),
    }
}

/// Replaces the constant in `slot` of `n` by its indices `idx` along `axis`.
fn take_input(
    g: &mut Graph,
    n: NodeIndex,
    slot: usize,
    axis: usize,
    idx: &[usize],
) -> Result<(), PruneError> {
    let Some(t) = const_of(g, n, slot)? else {
        return Ok(());
    };
    if t.shape().get(axis) == Some(&idx.len()) && idx.iter().enumerate().all(|(i, &j)| i == j) {
        return Ok(());
    }
    let what = format!("{} input {slot}", node_name(g, n));
    let t = take(&t, axis, idx, &what)?;
    let base = input(g, n, slot)
        .and_then(|v| g.value_name(v).map(|s| format!("{s}_pruned")))
        .unwrap_or_else(|| "pruned".into());
    set_const_input(g, n, slot, t, &base);
    Ok(())
}

/// Zeroes the weight (input 1) of `n` along `axis` except at `keep`.
fn zero_input(g: &mut Graph, n: NodeIndex, axis: usize, keep: &[usize]) -> Result<(), PruneError> {
    let Some(t) = const_of(g, n, 1)? else {
        return Ok(());
    };
    let t = zero(&t, axis, keep, &format!("{} weight", node_name(g, n)))?;
    let base = input(g, n, 1)
        .and_then(|v| g.value_name(v).map(|s| format!("{s}_padded")))
        .unwrap_or_else(|| "padded".into());
    set_const_input(g, n, 1, t, &base);
    Ok(())
}

fn apply_segment(g: &mut Graph, sp: &SegmentPlan) -> Result<(), PruneError> {
    let seg = &sp.segment;
    for (b, chans) in seg.blocks.iter().zip(sp.block_channels()) {
        let rows: Vec<usize> = chans.iter().map(|c| c - b.offset).collect();
        for &p in &b.producers {
            producer_rows(g, p, &rows)?;
        }
    }
    for (&u, runs) in seg.users.iter().zip(&seg.user_runs) {
        let old = old_channels(runs);
        let new = new_channels(&sp.ordering.perm, runs);
        let at: HashMap<usize, usize> = old.iter().enumerate().map(|(i, &c)| (c, i)).collect();
        let idx: Vec<usize> = new.iter().filter_map(|c| at.get(c).copied()).collect();
        let params = user_params(g, u, old.len(), sp.back).map_err(|msg| surgery_err(g, u, msg))?;
        for p in params {
            take_input(g, u, p.slot, p.axis, &idx)?;
        }
        let conv = g.g[u].op.as_any().downcast_ref::<Conv>().cloned();
        if let Some(mut c) = conv {
            c.group = idx.len();
            g.g[u].op = Box::new(c);
        }
    }
    for r in &sp.reads {
        let l = layer(g, r.node).ok_or_else(|| surgery_err(g, r.node, "is not a layer"))?;
        take_input(g, r.node, 1, l.weight_in_axis, &r.columns)?;
        if !r.padded.is_empty() {
            let keep: Vec<usize> = (0..r.columns.len())
                .filter(|&i| !r.padded.contains(&r.columns[i]))
                .collect();
            zero_input(g, r.node, l.weight_in_axis, &keep)?;
        }
        route(g, r.node, l.in_axis_back, &r.selection)?;
    }
    Ok(())
}

/// Keeps output rows `rows` (in that order) of producer `p`'s weight and bias.
fn producer_rows(g: &mut Graph, p: NodeIndex, rows: &[usize]) -> Result<(), PruneError> {
    let l = layer(g, p).ok_or_else(|| surgery_err(g, p, "is not a layer"))?;
    take_input(g, p, 1, l.weight_out_axis, rows)?;
    let Some(bias) = const_of(g, p, 2)? else {
        return Ok(());
    };
    let is_gemm = g.g[p].op.as_any().downcast_ref::<Gemm>().is_some();
    let axis = match bias.shape() {
        [n] if *n == l.out_channels => 0,
        s if is_gemm && s.last() == Some(&l.out_channels) => s.len() - 1,
        s if is_gemm && s.last().is_none_or(|&d| d == 1) => return Ok(()),
        s => {
            return Err(surgery_err(
                g,
                p,
                format!("bias of shape {s:?} for {} outputs", l.out_channels),
            ))
        }
    };
    take_input(g, p, 2, axis, rows)
}

/// Makes consumer `k` read `selection` of its current input 0 (channel axis `back` from the
/// last) through a new `Slice` or `Gather` node.
fn route(
    g: &mut Graph,
    k: NodeIndex,
    back: usize,
    selection: &Selection,
) -> Result<(), PruneError> {
    if *selection == Selection::Whole {
        return Ok(());
    }
    let v = input(g, k, 0).ok_or_else(|| surgery_err(g, k, "has no data input"))?;
    let rank = g
        .value_type(v)
        .and_then(|t| t.rank())
        .ok_or_else(|| surgery_err(g, k, "its input has an unknown rank"))?;
    let axis = rank
        .checked_sub(1 + back)
        .ok_or_else(|| surgery_err(g, k, "its input has no channel axis"))?;
    let kname = node_name(g, k);
    let vname = g.value_name(v).unwrap_or("x").to_string();
    let opset = g.opsets.get("").copied().unwrap_or(23);
    let ints = |v: Vec<i64>| Tensor::from_i64(&[v.len()], v);
    let (op, kind, inputs): (Box<dyn petasos_ir::op::Op>, &str, Vec<ValueRef>) = match selection {
        Selection::Whole => return Ok(()),
        Selection::Slice(r) if opset < 10 => (
            Box::new(Slice {
                attr_form: Some((
                    vec![r.start as i64],
                    vec![r.end as i64],
                    Some(vec![axis as i64]),
                )),
            }),
            "slice",
            vec![v],
        ),
        Selection::Slice(r) => {
            let starts = add_const(
                g,
                &format!("{vname}_slice_starts"),
                ints(vec![r.start as i64])?,
            );
            let ends = add_const(g, &format!("{vname}_slice_ends"), ints(vec![r.end as i64])?);
            let axes = add_const(g, &format!("{vname}_slice_axes"), ints(vec![axis as i64])?);
            (
                Box::new(Slice { attr_form: None }),
                "slice",
                vec![v, starts, ends, axes],
            )
        }
        Selection::Gather(idx) => {
            let ix = add_const(
                g,
                &format!("{vname}_gather_indices"),
                ints(idx.iter().map(|&i| i as i64).collect())?,
            );
            (
                Box::new(Gather { axis: axis as i64 }),
                "gather",
                vec![v, ix],
            )
        }
    };
    let out = fresh_name(g, &format!("{vname}_{kind}_for_{}", sanitize(&kname)));
    let prov = Provenance {
        onnx_name: format!("{kname}/prune_{kind}"),
        layer_path: g.g[k].provenance.layer_path.clone(),
        source: String::new(),
    };
    let n = g.add_node(op, inputs.len(), &[out], prov);
    for (i, &x) in inputs.iter().enumerate() {
        g.connect(x, n, i);
    }
    set_input(g, k, 0, ValueRef { node: n, out: 0 });
    Ok(())
}

/// `s` with characters other than alphanumerics, `_`, `.` and `-` replaced by `_`.
fn sanitize(s: &str) -> String {
    s.trim_start_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}
