//! Shared helpers for local rewrites: the pass error type, user queries, rewiring and dead-node
//! removal.
//!
//! Every pass built on these helpers follows the same protocol: it scans the top-level graph in
//! topological order, checks a pattern's preconditions without mutating anything, then applies
//! the rewrite (new constants, rewired uses, removed nodes) and counts it; it stops at its
//! budget. Subgraphs (If / Loop / Scan bodies) are left untouched, and a value read by a
//! subgraph capture (a node's trailing capture slots, which refer to outer values by name) is
//! never rewired.

use petasos_ir::graph::{GraphOutput, Provenance};
use petasos_ir::ops::core::Constant;
use petasos_ir::shape::ValueType;
use petasos_ir::weights::ConstTensor;
use petasos_ir::{Graph, Tensor, ValueRef};
use petgraph::stable_graph::NodeIndex;
use petgraph::visit::EdgeRef;
use petgraph::Direction;
use std::collections::HashSet;

/// Why a rewrite could not be completed.
#[derive(Debug, thiserror::Error)]
pub enum RewriteError {
    /// An IR operation (decoding a constant, inference after the rewrite) failed.
    #[error("{pass}: {source}")]
    Ir {
        pass: &'static str,
        #[source]
        source: petasos_ir::Error,
    },
    /// A constant the rewrite reads has a shape or type it cannot use.
    #[error("{pass}: node '{node}': {reason}")]
    Malformed {
        pass: &'static str,
        node: String,
        reason: String,
    },
}

impl RewriteError {
    /// Wraps an IR error with the pass name.
    pub fn ir(pass: &'static str) -> impl Fn(petasos_ir::Error) -> RewriteError {
        move |source| RewriteError::Ir { pass, source }
    }
}

/// The value `node`'s input slot `slot` reads, if fed.
pub fn input(g: &Graph, node: NodeIndex, slot: usize) -> Option<ValueRef> {
    g.node_inputs(node).get(slot).copied().flatten()
}

/// Whether `v` is one of the graph's outputs.
pub fn is_graph_output(g: &Graph, v: ValueRef) -> bool {
    g.outputs.iter().any(|o| o.value == v)
}

/// Whether input slot `slot` of `node` is a subgraph-capture slot.
pub fn is_capture_slot(g: &Graph, node: NodeIndex, slot: usize) -> bool {
    let n = &g.g[node];
    slot >= n.num_inputs.saturating_sub(n.captures.len())
}

/// Whether some user reads `v` through a capture slot (so it cannot be replaced by another value).
pub fn captured(g: &Graph, v: ValueRef) -> bool {
    g.users(v)
        .into_iter()
        .any(|(n, slot)| is_capture_slot(g, n, slot))
}

/// The only user of `v` (node and slot), when `v` has exactly one reader and is not a graph
/// output.
pub fn sole_user(g: &Graph, v: ValueRef) -> Option<(NodeIndex, usize)> {
    let users = g.users(v);
    if users.len() != 1 || is_graph_output(g, v) {
        return None;
    }
    users.first().copied()
}

/// The constant read by `node`'s input slot `slot`, if that input is a `Constant` node.
pub fn const_input(g: &Graph, node: NodeIndex, slot: usize) -> Option<(NodeIndex, &ConstTensor)> {
    let v = input(g, node, slot)?;
    if v.out != 0 {
        return None;
    }
    g.constant(v.node).map(|c| (v.node, c))
}

/// The op of `node`, downcast to `T`.
pub fn op_as<T: 'static>(g: &Graph, node: NodeIndex) -> Option<&T> {
    g.g.node_weight(node)?.op.as_any().downcast_ref::<T>()
}

/// The fully known shape of value `v`.
pub fn known_shape(g: &Graph, v: ValueRef) -> Option<Vec<usize>> {
    let t = g.value_type(v)?;
    petasos_ir::shape::shape_known(t.shape.as_ref()?)
}

/// Redirects every reader of `old` (edges and graph outputs) to `new`.
pub fn replace_uses(g: &mut Graph, old: ValueRef, new: ValueRef) {
    let edges: Vec<_> =
        g.g.edges_directed(old.node, Direction::Outgoing)
            .filter(|e| e.weight().src_out == old.out)
            .map(|e| (e.id(), e.target(), e.weight().dst_in))
            .collect();
    for (id, dst, slot) in edges {
        g.g.remove_edge(id);
        g.connect(new, dst, slot);
    }
    for GraphOutput { value, .. } in &mut g.outputs {
        if *value == old {
            *value = new;
        }
    }
}

/// Feeds input slot `slot` of `node` from `v`, replacing whatever fed it.
pub fn set_input(g: &mut Graph, node: NodeIndex, slot: usize, v: ValueRef) {
    let old: Vec<_> =
        g.g.edges_directed(node, Direction::Incoming)
            .filter(|e| e.weight().dst_in == slot)
            .map(|e| e.id())
            .collect();
    for id in old {
        g.g.remove_edge(id);
    }
    if g.g[node].num_inputs <= slot {
        g.g[node].num_inputs = slot + 1;
    }
    g.connect(v, node, slot);
}

/// Every value name in the graph.
fn names(g: &Graph) -> HashSet<String> {
    g.g.node_weights()
        .flat_map(|n| n.outputs.iter().map(|v| v.name.clone()))
        .collect()
}

/// `base`, or `base_1`, `base_2`, ... : the first name no value of `g` carries.
pub fn fresh_name(g: &Graph, base: &str) -> String {
    let used = names(g);
    if !used.contains(base) {
        return base.to_string();
    }
    (1..)
        .map(|i| format!("{base}_{i}"))
        .find(|n| !used.contains(n))
        .unwrap_or_else(|| base.to_string())
}

/// Adds a constant node holding `t`, named `base` (made unique).
pub fn add_const(g: &mut Graph, base: &str, t: Tensor) -> ValueRef {
    let name = fresh_name(g, base);
    let n = g.add_const(&name, ConstTensor::from_tensor(t));
    ValueRef { node: n, out: 0 }
}

/// Makes `node`'s input slot `slot` read the constant `t`: the constant node it reads now is
/// updated in place when `node` is its only reader (so its name is kept), otherwise a new
/// constant named after `base` is added.
pub fn set_const_input(g: &mut Graph, node: NodeIndex, slot: usize, t: Tensor, base: &str) {
    if let Some(v) = input(g, node, slot) {
        let sole = sole_user(g, v) == Some((node, slot));
        if sole && g.constant(v.node).is_some() {
            let ty = ValueType::known(t.dtype(), t.shape());
            let c = &mut g.g[v.node];
            c.op = Box::new(Constant {
                value: ConstTensor::from_tensor(t),
            });
            c.outputs[0].ty = ty;
            return;
        }
    }
    let old = input(g, node, slot);
    let c = add_const(g, base, t);
    set_input(g, node, slot, c);
    if let Some(o) = old {
        remove_if_dead(g, o.node);
    }
}

/// Removes `node` if none of its outputs is read or is a graph output (and it is not a formal
/// input), then, recursively, the producers this leaves dead. Returns whether it was removed.
pub fn remove_if_dead(g: &mut Graph, node: NodeIndex) -> bool {
    let Some(n) = g.g.node_weight(node) else {
        return false;
    };
    if n.op.op_type() == "Input"
        || g.inputs.contains(&node)
        || g.captures.contains(&node)
        || g.outputs.iter().any(|o| o.value.node == node)
        || g.g
            .edges_directed(node, Direction::Outgoing)
            .next()
            .is_some()
    {
        return false;
    }
    let producers: Vec<NodeIndex> =
        g.g.edges_directed(node, Direction::Incoming)
            .map(|e| e.source())
            .collect();
    g.g.remove_node(node);
    for p in producers {
        remove_if_dead(g, p);
    }
    true
}

/// Provenance naming the node a rewrite made, after the node it replaces.
pub fn derived_provenance(g: &Graph, from: NodeIndex) -> Provenance {
    g.g.node_weight(from)
        .map(|n| n.provenance.clone())
        .unwrap_or_default()
}

/// Re-infers the graph's types after `count` rewrites (nothing to do when none were made).
pub fn finish(g: &mut Graph, pass: &'static str, count: usize) -> Result<usize, RewriteError> {
    if count > 0 {
        petasos_ir::infer::infer_graph(g).map_err(RewriteError::ir(pass))?;
    }
    Ok(count)
}

/// A readable name for `node`: its ONNX name, else its first output's name.
pub fn node_name(g: &Graph, node: NodeIndex) -> String {
    match g.g.node_weight(node) {
        Some(n) if !n.provenance.onnx_name.is_empty() => n.provenance.onnx_name.clone(),
        Some(n) => n
            .outputs
            .first()
            .map(|v| v.name.clone())
            .unwrap_or_default(),
        None => String::new(),
    }
}

/// A 1-D tensor of `dtype` holding `v` (rounded to the dtype).
pub fn vector(dtype: petasos_ir::DType, v: Vec<f64>) -> Tensor {
    Tensor::from_f64_as(dtype, ndarray::Array1::from(v).into_dyn())
}

/// An op whose output a per-channel bias can be folded into: a `Conv`, a `Gemm`, or a 2-D
/// `MatMul` (which becomes a `Gemm` to carry the bias).
#[derive(Clone, Copy, Debug)]
pub enum BiasCarrier {
    Conv,
    /// A `Gemm`: `trans_b` tells whether the weight is `[N, K]`; `beta` scales its bias.
    Gemm {
        alpha: f32,
        beta: f32,
        trans_a: bool,
        trans_b: bool,
    },
    /// A `MatMul` (callers check it is 2-D by a constant weight).
    MatMul,
}

impl BiasCarrier {
    /// The kind of `node`, if it is one of the three.
    pub fn of(g: &Graph, node: NodeIndex) -> Option<BiasCarrier> {
        use petasos_ir::ops::linalg::matmul::{Gemm, MatMul};
        if op_as::<petasos_ir::ops::nn::conv::Conv>(g, node).is_some() {
            Some(BiasCarrier::Conv)
        } else if let Some(gm) = op_as::<Gemm>(g, node) {
            Some(BiasCarrier::Gemm {
                alpha: gm.alpha,
                beta: gm.beta,
                trans_a: gm.trans_a,
                trans_b: gm.trans_b,
            })
        } else if op_as::<MatMul>(g, node).is_some() {
            Some(BiasCarrier::MatMul)
        } else {
            None
        }
    }

    /// The factor the op applies to its existing bias (`beta` of a `Gemm`, else 1).
    pub fn bias_scale(self) -> f64 {
        match self {
            BiasCarrier::Gemm { beta, .. } => f64::from(beta),
            _ => 1.0,
        }
    }

    /// Rewrites `node`'s op so that a bias in slot 2 is added unscaled: a `Gemm` gets
    /// `beta = 1`, a `MatMul` becomes the equivalent `Gemm`; a `Conv` is left as it is.
    pub fn take_bias(self, g: &mut Graph, node: NodeIndex) {
        use petasos_ir::ops::linalg::matmul::Gemm;
        let (alpha, trans_a, trans_b) = match self {
            BiasCarrier::Conv => return,
            BiasCarrier::Gemm {
                alpha,
                trans_a,
                trans_b,
                ..
            } => (alpha, trans_a, trans_b),
            BiasCarrier::MatMul => (1.0, false, false),
        };
        g.g[node].op = Box::new(Gemm {
            alpha,
            beta: 1.0,
            trans_a,
            trans_b,
        });
    }
}
