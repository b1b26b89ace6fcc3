//! Small rewrites passes are made of, and the rewrite budget they spend.
//!
//! Each helper does one local change and keeps the graph's structural invariants (no slot fed
//! twice, graph inputs kept, outputs pointing at live values): [`replace_uses`] redirects every
//! reader of a value (edges and graph outputs) to another value, [`remove_node`] deletes a node
//! nobody reads, [`insert_constant`] adds a constant. A pass combines them per rewrite and counts
//! each rewrite against a [`Budget`], so `max_rewrites` can stop a pipeline between any two
//! rewrites with a valid graph.

use crate::PassError;
use petasos_ir::graph::{Edge, Provenance};
use petasos_ir::op::Op;
use petasos_ir::weights::ConstTensor;
use petasos_ir::{Graph, ValueRef};
use petgraph::stable_graph::NodeIndex;
use petgraph::visit::EdgeRef;
use petgraph::Direction;
use std::collections::BTreeMap;

/// A count of rewrites allowed and made.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    left: usize,
    used: usize,
}

impl Budget {
    /// A budget of `n` rewrites (`usize::MAX`: unlimited).
    pub fn new(n: usize) -> Budget {
        Budget { left: n, used: 0 }
    }
    /// Whether another rewrite may be made.
    pub fn available(&self) -> bool {
        self.left > 0
    }
    /// Spends one rewrite; `false` (and nothing spent) when none is left.
    pub fn take(&mut self) -> bool {
        if self.left == 0 {
            return false;
        }
        self.left -= 1;
        self.used += 1;
        true
    }
    /// Rewrites made so far.
    pub fn used(&self) -> usize {
        self.used
    }
}

/// Redirects every reader of `old` (node input slots and graph outputs) to read `new` instead;
/// returns how many readers moved. The caller makes sure `new` does not depend on `old`'s
/// readers (which would make a cycle) and has the same type.
pub fn replace_uses(g: &mut Graph, old: ValueRef, new: ValueRef) -> Result<usize, PassError> {
    if old == new {
        return Ok(0);
    }
    if g.value_type(new).is_none() {
        return Err(PassError::Rewrite(format!(
            "replacement value {new:?} does not exist"
        )));
    }
    let uses: Vec<_> =
        g.g.edges_directed(old.node, Direction::Outgoing)
            .filter(|e| e.weight().src_out == old.out)
            .map(|e| (e.id(), e.target(), e.weight().dst_in))
            .collect();
    for &(e, target, dst_in) in &uses {
        g.g.remove_edge(e);
        g.g.add_edge(
            new.node,
            target,
            Edge {
                src_out: new.out,
                dst_in,
            },
        );
    }
    let mut moved = uses.len();
    for o in g.outputs.iter_mut().filter(|o| o.value == old) {
        o.value = new;
        moved += 1;
    }
    Ok(moved)
}

/// Whether any node input or graph output reads an output of `n`.
pub fn is_used(g: &Graph, n: NodeIndex) -> bool {
    g.g.edges_directed(n, Direction::Outgoing).next().is_some()
        || g.outputs.iter().any(|o| o.value.node == n)
}

/// Removes node `n`, which nothing may read and which must not be a graph input or capture.
pub fn remove_node(g: &mut Graph, n: NodeIndex) -> Result<(), PassError> {
    if g.g.node_weight(n).is_none() {
        return Err(PassError::Rewrite(format!("node {n:?} does not exist")));
    }
    if g.inputs.contains(&n) || g.captures.contains(&n) {
        return Err(PassError::Rewrite(format!(
            "'{}' is a graph input and cannot be removed",
            label(g, n)
        )));
    }
    if is_used(g, n) {
        return Err(PassError::Rewrite(format!(
            "'{}' is still read and cannot be removed",
            label(g, n)
        )));
    }
    g.g.remove_node(n);
    Ok(())
}

/// Adds a constant whose value is called `name`, with `provenance`; returns its value.
pub fn insert_constant(
    g: &mut Graph,
    name: &str,
    value: ConstTensor,
    provenance: Provenance,
) -> ValueRef {
    let n = g.add_const(name, value);
    g.g[n].provenance = provenance;
    ValueRef { node: n, out: 0 }
}

/// Replaces every output of `n` by the matching value of `with` and removes `n`.
pub fn replace_node(g: &mut Graph, n: NodeIndex, with: &[ValueRef]) -> Result<(), PassError> {
    let outs = g.g.node_weight(n).map(|x| x.outputs.len()).unwrap_or(0);
    if with.len() < outs {
        return Err(PassError::Rewrite(format!(
            "'{}' has {outs} outputs but {} replacements were given",
            label(g, n),
            with.len()
        )));
    }
    for (i, &v) in with.iter().enumerate().take(outs) {
        replace_uses(g, ValueRef { node: n, out: i }, v)?;
    }
    remove_node(g, n)
}

/// Ops whose outputs may differ between two evaluations on the same inputs: never folded or
/// merged. Besides what an op declares, the ONNX random generators and `Dropout` (random in
/// training mode) are listed by name.
pub fn is_random(op: &dyn Op) -> bool {
    op.is_random()
        || matches!(
            op.op_type(),
            "RandomNormal"
                | "RandomUniform"
                | "RandomNormalLike"
                | "RandomUniformLike"
                | "Bernoulli"
                | "Multinomial"
                | "Dropout"
        )
}

/// A node's name for messages: its ONNX name, else its first output's name.
pub fn label(g: &Graph, n: NodeIndex) -> String {
    match g.g.node_weight(n) {
        Some(node) if !node.provenance.onnx_name.is_empty() => node.provenance.onnx_name.clone(),
        Some(node) => node
            .outputs
            .first()
            .map(|v| v.name.clone())
            .unwrap_or_default(),
        None => format!("{n:?}"),
    }
}

/// `"<verb> <n> nodes (Conv 2, Relu 1)"`, or `"nothing to do"` when `counts` is empty.
pub fn describe(verb: &str, counts: &BTreeMap<String, usize>) -> String {
    let total: usize = counts.values().sum();
    if total == 0 {
        return "nothing to do".into();
    }
    let mut v: Vec<_> = counts.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let parts: Vec<String> = v.iter().map(|(k, n)| format!("{k} {n}")).collect();
    let s = if total == 1 { "" } else { "s" };
    format!("{verb} {total} node{s} ({})", parts.join(", "))
}
