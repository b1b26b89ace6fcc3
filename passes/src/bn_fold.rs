//! `bn_fold`: folds an inference-mode `BatchNormalization` into the `Conv`, `Gemm` or `MatMul`
//! that feeds it.
//!
//! # What it does
//! With `s = gamma / sqrt(var + eps)` per output channel, the producer's weight becomes
//! `w * s` (scaled along its output-channel axis) and its bias `(b - mean) * s + beta` (`b` = 0
//! when it had none). The batch norm is removed, its readers (and graph outputs) read the
//! producer, and the producer's output takes the batch norm's output name. Constants are
//! decoded with `ConstTensor::to_tensor`, computed in f64, and stored at the weight's dtype.
//! A `Gemm`'s bias is pre-multiplied by its `beta` (which becomes 1); a `MatMul` becomes a
//! `Gemm` (`A @ B' + C`), since `MatMul` has no bias input.
//!
//! # When it applies
//! - the `BatchNormalization` runs in inference mode (`training_mode` unset, and no running
//!   statistics outputs read, or `is_test` set on old opsets), and its scale, bias, mean and
//!   variance are constants of one value per channel;
//! - its input is the only output of a `Conv` (`group` any: the weight's first axis is the
//!   output channel), a `Gemm` (2-D; `transB` read to find the channel axis) or a 2-D `MatMul`
//!   with a 2-D constant right operand, and the batch norm is that output's only reader (not a
//!   graph output either);
//! - the producer's weight is a float constant, and its bias (if any) a constant with one value
//!   per channel (or one value);
//! - every `gamma / sqrt(var + eps)` is finite (otherwise the batch norm is left in place).
//!
//! # What it preserves
//! Outputs within f32 rounding (the folded weight is rounded once instead of computing the
//! normalisation at run time); value names of everything that remains (the producer's output is
//! renamed to the batch norm's). A weight constant read by other nodes is copied, not changed.
//! Subgraphs are not visited.
//!
//! # Example
//! ```text
//! before: y = BatchNormalization(Conv(x, w[8,3,3,3]), gamma, beta, mean, var)   (2 ops)
//! after:  y = Conv(x, w'[8,3,3,3], b'[8])                                       (1 op)
//!         w'[m] = w[m] * s[m],  b' = (0 - mean) * s + beta,  s = gamma / sqrt(var + eps)
//! ```

use crate::rewrite::{
    const_input, finish, input, is_graph_output, op_as, remove_if_dead, replace_uses,
    set_const_input, sole_user, vector, BiasCarrier, RewriteError,
};
use petasos_ir::ops::reduce::BatchNormalization;
use petasos_ir::{Graph, Tensor, ValueRef};
use petgraph::stable_graph::NodeIndex;

/// The pass name, used in errors.
pub const NAME: &str = "bn_fold";

/// A batch norm that can be folded, and what it folds into.
struct Match {
    bn: NodeIndex,
    prod: NodeIndex,
    kind: BiasCarrier,
    channels: usize,
    eps: f64,
}

/// Folds up to `budget` batch norms; returns how many were folded.
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
        if fold(g, &m)? {
            count += 1;
        }
    }
    finish(g, NAME, count)
}

/// Checks the pattern at `n` without changing anything.
fn find(g: &Graph, n: NodeIndex) -> Option<Match> {
    let bn = op_as::<BatchNormalization>(g, n)?;
    let node = &g.g[n];
    let extra_outputs = node.outputs.len() > 1;
    if bn.training_mode || (extra_outputs && bn.is_test.unwrap_or(0) == 0) {
        return None;
    }
    // Old-opset running statistics outputs must be unread.
    for out in 1..node.outputs.len() {
        let v = ValueRef { node: n, out };
        if !g.users(v).is_empty() || is_graph_output(g, v) {
            return None;
        }
    }
    let x = input(g, n, 0)?;
    if x.out != 0 || g.g[x.node].outputs.len() != 1 || sole_user(g, x) != Some((n, 0)) {
        return None;
    }
    let prod = x.node;
    let (_, w) = const_input(g, prod, 1)?;
    if !w.dtype.is_float() {
        return None;
    }
    let kind = BiasCarrier::of(g, prod)?;
    let channels = match kind {
        // Any group: the weight's first axis is the output channel.
        BiasCarrier::Conv if w.shape.len() >= 3 => w.shape[0],
        BiasCarrier::Gemm { trans_b, .. } if w.shape.len() == 2 => {
            if trans_b {
                w.shape[0]
            } else {
                w.shape[1]
            }
        }
        BiasCarrier::MatMul => {
            let a_rank = input(g, prod, 0).and_then(|a| g.value_type(a)?.rank());
            if w.shape.len() != 2 || a_rank != Some(2) {
                return None;
            }
            w.shape[1]
        }
        _ => return None,
    };
    // The producer's bias, if any: a constant row of `channels` values (or one value).
    let pslots = g.g[prod].num_inputs;
    if pslots > 2 && input(g, prod, 2).is_some() {
        let (_, b) = const_input(g, prod, 2)?;
        let row = b.shape.len() <= 1 || (b.shape.len() == 2 && b.shape[0] == 1);
        if !(b.numel() == channels || b.numel() == 1) || !row || b.dtype != w.dtype {
            return None;
        }
    }
    if node.num_inputs < 5 {
        return None;
    }
    for slot in 1..5 {
        let (_, p) = const_input(g, n, slot)?;
        if p.numel() != channels || !p.dtype.is_float() {
            return None;
        }
    }
    Some(Match {
        bn: n,
        prod,
        kind,
        channels,
        eps: f64::from(bn.epsilon),
    })
}

/// Decodes the constant read by slot `slot` of `node` as f64 values.
fn values(g: &Graph, node: NodeIndex, slot: usize) -> Result<Vec<f64>, RewriteError> {
    match const_input(g, node, slot) {
        Some((_, c)) => c
            .to_tensor()
            .and_then(|t| t.to_f64_vec())
            .map_err(RewriteError::ir(NAME)),
        None => Ok(Vec::new()),
    }
}

/// Applies a checked match; returns false (nothing changed) when the scale is not finite.
fn fold(g: &mut Graph, m: &Match) -> Result<bool, RewriteError> {
    let c = m.channels;
    let gamma = values(g, m.bn, 1)?;
    let beta = values(g, m.bn, 2)?;
    let mean = values(g, m.bn, 3)?;
    let var = values(g, m.bn, 4)?;
    let scale: Vec<f64> = (0..c).map(|i| gamma[i] / (var[i] + m.eps).sqrt()).collect();
    if scale.iter().any(|s| !s.is_finite()) {
        return Ok(false);
    }
    // Everything is computed before the graph is touched.
    let Some((wnode, wc)) = const_input(g, m.prod, 1) else {
        return Ok(false);
    };
    let wdt = wc.dtype;
    let wname = g.g[wnode].outputs[0].name.clone();
    let mut w = wc
        .to_tensor()
        .and_then(|t| t.to_f())
        .map_err(RewriteError::ir(NAME))?;
    let shape = w.shape().to_vec();
    let per_channel = (shape.iter().product::<usize>() / c).max(1);
    let cols = shape.get(1).copied().unwrap_or(1).max(1);
    let channel_of = |i: usize| -> usize {
        match m.kind {
            BiasCarrier::Conv => i / per_channel,
            BiasCarrier::Gemm { trans_b: true, .. } => i / cols,
            BiasCarrier::Gemm { trans_b: false, .. } | BiasCarrier::MatMul => i % cols,
        }
    };
    for (i, v) in w.iter_mut().enumerate() {
        *v *= scale[channel_of(i)];
    }
    let old_bias = {
        let b = values(g, m.prod, 2)?;
        let k = m.kind.bias_scale();
        match b.len() {
            0 => vec![0.0; c],
            1 => vec![b[0] * k; c],
            _ => b.iter().map(|v| v * k).collect(),
        }
    };
    let bias: Vec<f64> = (0..c)
        .map(|i| (old_bias[i] - mean[i]) * scale[i] + beta[i])
        .collect();
    let new_w = Tensor::from_f64_as(wdt, w);
    let new_b = vector(wdt, bias);

    // Rewrite.
    m.kind.take_bias(g, m.prod);
    set_const_input(g, m.prod, 1, new_w, &format!("{wname}_bnfold"));
    set_const_input(g, m.prod, 2, new_b, &format!("{wname}_bnfold_bias"));
    let bn_out = ValueRef { node: m.bn, out: 0 };
    let prod_out = ValueRef {
        node: m.prod,
        out: 0,
    };
    let (name, ty) = {
        let v = &g.g[m.bn].outputs[0];
        (v.name.clone(), v.ty.clone())
    };
    replace_uses(g, bn_out, prod_out);
    remove_if_dead(g, m.bn);
    if let Some(p) = g.g.node_weight_mut(m.prod) {
        p.outputs[0].name = name;
        p.outputs[0].ty = ty;
    }
    Ok(true)
}
