//! `bias_fusion`: folds an `Add` of a constant per-channel bias into the bias input of the
//! `Conv`, `Gemm` or `MatMul` that feeds it.
//!
//! # What it does
//! `Add(Conv(x, w, b), c)` becomes `Conv(x, w, b + c)`; `Add(Gemm(a, w, C), c)` becomes
//! `Gemm(a, w, beta * C + c)` with `beta` = 1; `Add(MatMul(a, w), c)` becomes `Gemm(a, w, c)`.
//! A missing bias counts as zero. The `Add` is removed, its readers (and graph outputs) read
//! the producer, and the producer's output takes the `Add`'s output name. The new bias is
//! computed in f64 and stored at the producer's dtype.
//!
//! # When it applies
//! - the `Add` has the producer's only output as one operand (either side) and a constant of
//!   the same float dtype as the other, and the `Add` is that output's only reader (not a graph
//!   output either);
//! - the constant adds one value per channel without broadcasting the producer's output up
//!   (the `Add`'s output shape equals the producer's):
//!   - after a `Conv` with output `[N, C, ...]`, its shape aligned to the right is `1` on every
//!     axis but axis 1, which is `C` or `1` (`[C, 1, 1]`, `[1, C, 1, 1]`, a scalar);
//!   - after a 2-D `Gemm` or `MatMul` with output `[M, N]`: `[N]`, `[1, N]` or a scalar (a
//!     `MatMul` must have 2-D operands; higher-rank ones are left alone);
//! - the producer's existing bias (if any) is a constant row of one value per channel (or one).
//!
//! # What it preserves
//! Outputs within f32 rounding (one rounding of the summed bias); value names of everything
//! that remains. A bias constant read by other nodes is copied, not changed. Subgraphs are
//! not visited.
//!
//! # Example
//! ```text
//! before: y = Add(Conv(x, w[8,3,3,3], b[8]), c[8,1,1])   (2 ops)
//! after:  y = Conv(x, w, b'[8]),  b' = b + c              (1 op)
//! ```

use crate::rewrite::{
    const_input, finish, input, remove_if_dead, replace_uses, set_const_input, sole_user, vector,
    BiasCarrier, RewriteError,
};
use petasos_ir::{Graph, ValueRef};
use petgraph::stable_graph::NodeIndex;

/// The pass name, used in errors.
pub const NAME: &str = "bias_fusion";

/// A fusable `Add`.
struct Match {
    add: NodeIndex,
    /// The `Add` slot holding the constant.
    const_slot: usize,
    prod: NodeIndex,
    kind: BiasCarrier,
    channels: usize,
}

/// Fuses up to `budget` bias additions; returns how many were fused.
pub fn apply(g: &mut Graph, budget: usize) -> Result<usize, RewriteError> {
    let mut count = 0;
    if budget == 0 {
        return Ok(0);
    }
    for n in g.topo_order().map_err(RewriteError::ir(NAME))? {
        if count >= budget {
            break;
        }
        if !g.g.contains_node(n) {
            continue;
        }
        let Some(m) = find(g, n) else { continue };
        fuse(g, &m)?;
        count += 1;
    }
    finish(g, NAME, count)
}

/// Whether `shape`, right-aligned to rank `rank`, is 1 everywhere except axis `axis`, where it
/// is `1` or `c`.
fn per_channel(shape: &[usize], rank: usize, axis: usize, c: usize) -> bool {
    if shape.len() > rank {
        return false;
    }
    let pad = rank - shape.len();
    (0..rank).all(|i| {
        let d = if i < pad { 1 } else { shape[i - pad] };
        d == 1 || (i == axis && d == c)
    })
}

/// Checks the pattern at `n` without changing anything.
fn find(g: &Graph, n: NodeIndex) -> Option<Match> {
    let node = &g.g[n];
    if node.op.op_type() != "Add" || !node.op.domain().is_empty() || node.num_inputs != 2 {
        return None;
    }
    if !node.captures.is_empty() || node.outputs.len() != 1 {
        return None;
    }
    (0..2).find_map(|const_slot| find_side(g, n, const_slot))
}

fn find_side(g: &Graph, n: NodeIndex, const_slot: usize) -> Option<Match> {
    let x_slot = 1 - const_slot;
    let x = input(g, n, x_slot)?;
    let (_, c) = const_input(g, n, const_slot)?;
    if x.out != 0 || g.g[x.node].outputs.len() != 1 || sole_user(g, x) != Some((n, x_slot)) {
        return None;
    }
    let prod = x.node;
    let xt = g.value_type(x)?;
    let out = g.value_type(ValueRef { node: n, out: 0 })?;
    let xs = xt.shape.as_ref()?;
    if !xt.dtype.is_float() || c.dtype != xt.dtype || out.shape.as_ref() != Some(xs) {
        return None;
    }
    let kind = BiasCarrier::of(g, prod)?;
    let (kind, channels) = if let BiasCarrier::Conv = kind {
        let ch = xs.get(1)?.known()? as usize;
        if xs.len() < 3 || !per_channel(&c.shape, xs.len(), 1, ch) {
            return None;
        }
        (kind, ch)
    } else {
        if let BiasCarrier::MatMul = kind {
            let rank = |slot| input(g, prod, slot).and_then(|v| g.value_type(v)?.rank());
            if rank(0) != Some(2) || rank(1) != Some(2) {
                return None;
            }
        }
        let ch = xs.get(1)?.known()? as usize;
        if xs.len() != 2 || !per_channel(&c.shape, 2, 1, ch) {
            return None;
        }
        (kind, ch)
    };
    // The existing bias: absent, or a constant row of `channels` values (or one).
    if g.g[prod].num_inputs > 2 && input(g, prod, 2).is_some() {
        let (_, b) = const_input(g, prod, 2)?;
        let rank = b.shape.len().max(2);
        if !per_channel(&b.shape, rank, rank - 1, channels) || b.dtype != xt.dtype {
            return None;
        }
    }
    Some(Match {
        add: n,
        const_slot,
        prod,
        kind,
        channels,
    })
}

/// The values of the constant at `node`'s slot `slot`, spread over `c` channels (one value is
/// repeated; none gives zeros).
fn channel_values(
    g: &Graph,
    node: NodeIndex,
    slot: usize,
    c: usize,
) -> Result<Vec<f64>, RewriteError> {
    let v = match const_input(g, node, slot) {
        Some((_, t)) => t
            .to_tensor()
            .and_then(|t| t.to_f64_vec())
            .map_err(RewriteError::ir(NAME))?,
        None => return Ok(vec![0.0; c]),
    };
    match v.len() {
        1 => Ok(vec![v[0]; c]),
        n if n == c => Ok(v),
        n => Err(RewriteError::Malformed {
            pass: NAME,
            node: crate::rewrite::node_name(g, node),
            reason: format!("expected {c} bias values, found {n}"),
        }),
    }
}

/// Applies a checked match.
fn fuse(g: &mut Graph, m: &Match) -> Result<(), RewriteError> {
    let c = m.channels;
    let dtype = g
        .value_type(ValueRef {
            node: m.prod,
            out: 0,
        })
        .map(|t| t.dtype)
        .unwrap_or(petasos_ir::DType::F32);
    let old_scale = m.kind.bias_scale();
    let old = channel_values(g, m.prod, 2, c)?;
    let add = channel_values(g, m.add, m.const_slot, c)?;
    let bias: Vec<f64> = old
        .iter()
        .zip(&add)
        .map(|(b, a)| b * old_scale + a)
        .collect();
    let base = match const_input(g, m.add, m.const_slot) {
        Some((n, _)) => g.g[n].outputs[0].name.clone(),
        None => "bias".to_string(),
    };

    m.kind.take_bias(g, m.prod);
    set_const_input(g, m.prod, 2, vector(dtype, bias), &format!("{base}_fused"));
    let add_out = ValueRef {
        node: m.add,
        out: 0,
    };
    let prod_out = ValueRef {
        node: m.prod,
        out: 0,
    };
    let (name, ty) = {
        let v = &g.g[m.add].outputs[0];
        (v.name.clone(), v.ty.clone())
    };
    replace_uses(g, add_out, prod_out);
    remove_if_dead(g, m.add);
    if let Some(p) = g.g.node_weight_mut(m.prod) {
        p.outputs[0].name = name;
        p.outputs[0].ty = ty;
    }
    Ok(())
}
