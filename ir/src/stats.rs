//! Whole-graph statistics: parameter count and bytes, op histogram, MACs by op type.

use crate::graph::Graph;
use serde::Serialize;
use std::collections::BTreeMap;

/// Per-op-type figures.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct OpTypeStats {
    pub count: usize,
    pub macs: u64,
}

/// Figures for a whole graph (subgraphs included).
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct GraphStats {
    /// Elements in constants (initializers and `Constant` nodes).
    pub parameters: u64,
    /// Bytes of those constants as stored.
    pub parameter_bytes: u64,
    /// Op nodes (inputs and constants excluded).
    pub nodes: usize,
    pub macs: u64,
    /// FLOPs counted as 2 per MAC.
    pub flops: u64,
    pub ops: BTreeMap<String, OpTypeStats>,
}

/// Computes [`GraphStats`] for `g`.
pub fn graph_stats(g: &Graph) -> GraphStats {
    let mut s = GraphStats::default();
    accumulate(g, &mut s);
    s.flops = 2 * s.macs;
    s
}

fn accumulate(g: &Graph, s: &mut GraphStats) {
    for n in g.g.node_indices() {
        let node = &g.g[n];
        if let Some(c) = g.constant(n) {
            s.parameters += c.numel() as u64;
            s.parameter_bytes += c.nbytes() as u64;
            continue;
        }
        if node.op.op_type() == "Input" {
            continue;
        }
        let ins = g.node_inputs(n);
        let tys: Vec<_> = ins
            .iter()
            .map(|v| v.and_then(|v| g.value_type(v)))
            .collect();
        let outs: Vec<_> = node.outputs.iter().map(|v| v.ty.clone()).collect();
        let macs = node.op.macs(&tys, &outs);
        let key = if node.op.domain().is_empty() {
            node.op.op_type().to_string()
        } else {
            format!("{}.{}", node.op.domain(), node.op.op_type())
        };
        let e = s.ops.entry(key).or_default();
        e.count += 1;
        e.macs += macs;
        s.nodes += 1;
        s.macs += macs;
        for sg in node.op.subgraphs() {
            accumulate(sg, s);
        }
    }
}
