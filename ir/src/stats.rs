//! Whole-graph statistics: parameter count and bytes, op histogram, MACs by op type.
//!
//! Two parameter figures: `parameters` counts every constant element (what summing an ONNX
//! file's initializers gives), `learnable_parameters` what a training framework calls
//! parameters: it leaves out batch-norm running statistics (buffers) and integer constants that
//! only feed shape, axis or index inputs (shape data).

use crate::graph::Graph;
use crate::shape::ValueType;
use petgraph::visit::EdgeRef;
use petgraph::Direction;
use serde::Serialize;
use std::collections::BTreeMap;
use std::collections::HashMap;

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
    /// Parameters less buffers (batch-norm running statistics) and shape data.
    pub learnable_parameters: u64,
    /// Elements of batch-norm running statistics.
    pub buffers: u64,
    /// Op nodes (inputs and constants excluded).
    pub nodes: usize,
    pub macs: u64,
    /// FLOPs counted as 2 per MAC.
    pub flops: u64,
    pub ops: BTreeMap<String, OpTypeStats>,
    /// Symbolic dims that MACs were counted with, and the value each was given.
    pub assumed_dims: BTreeMap<String, u64>,
}

/// Computes [`GraphStats`] for `g`, counting MACs with every symbolic dim set to 1.
pub fn graph_stats(g: &Graph) -> GraphStats {
    graph_stats_with(g, &HashMap::new())
}

/// Computes [`GraphStats`] for `g`, counting MACs with symbolic dims bound by `dims` (a dim
/// named there takes its value; any other symbol counts as 1 and is listed in `assumed_dims`).
pub fn graph_stats_with(g: &Graph, dims: &HashMap<String, u64>) -> GraphStats {
    let mut s = GraphStats::default();
    accumulate(g, dims, &mut s);
    s.flops = 2 * s.macs;
    s
}

/// `t` with its symbols replaced by values (`dims`, else 1, recorded in `assumed`).
fn bind(
    t: &ValueType,
    dims: &HashMap<String, u64>,
    assumed: &mut BTreeMap<String, u64>,
) -> ValueType {
    t.bind(&mut |n| {
        dims.get(n).copied().unwrap_or_else(|| {
            assumed.insert(n.to_string(), 1);
            1
        })
    })
}

fn accumulate(g: &Graph, dims: &HashMap<String, u64>, s: &mut GraphStats) {
    for n in g.g.node_indices() {
        let node = &g.g[n];
        if let Some(c) = g.constant(n) {
            let k = c.numel() as u64;
            s.parameters += k;
            s.parameter_bytes += c.nbytes() as u64;
            let users = g.g.edges_directed(n, Direction::Outgoing).map(|e| {
                let dst = &g.g[e.target()];
                (
                    dst.op.domain().is_empty(),
                    dst.op.op_type(),
                    e.weight().dst_in,
                )
            });
            let users: Vec<_> = users.collect();
            let only = |f: &dyn Fn(&str, usize) -> bool| {
                !users.is_empty() && users.iter().all(|&(d, t, i)| d && f(t, i))
            };
            if only(&|t, i| t == "BatchNormalization" && (i == 3 || i == 4)) {
                s.buffers += k;
            } else if !(c.dtype.is_int() && only(&shape_slot)) {
                s.learnable_parameters += k;
            }
            continue;
        }
        if node.op.op_type() == "Input" {
            continue;
        }
        let ins = g.node_inputs(n);
        let tys: Vec<Option<ValueType>> = ins
            .iter()
            .map(|v| {
                v.and_then(|v| g.value_type(v))
                    .map(|t| bind(t, dims, &mut s.assumed_dims))
            })
            .collect();
        let tys: Vec<Option<&ValueType>> = tys.iter().map(|t| t.as_ref()).collect();
        let outs: Vec<_> = node
            .outputs
            .iter()
            .map(|v| bind(&v.ty, dims, &mut s.assumed_dims))
            .collect();
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
            accumulate(sg, dims, s);
        }
    }
}

/// Whether input `slot` of `op` takes shape, axis or index data rather than weights.
fn shape_slot(op: &str, slot: usize) -> bool {
    match op {
        "Reshape" | "Expand" | "Unsqueeze" | "Squeeze" | "Tile" | "Split" | "TopK" | "CumSum"
        | "CumProd" | "OneHot" | "Trilu" | "Gather" | "GatherElements" | "GatherND"
        | "ReduceSum" | "ReduceMean" | "ReduceMax" | "ReduceMin" | "ReduceProd" | "ReduceL1"
        | "ReduceL2" | "ReduceLogSum" | "ReduceLogSumExp" | "ReduceSumSquare" => slot >= 1,
        "Slice" | "Pad" | "Resize" => slot >= 1,
        "ConstantOfShape" | "Range" | "Shape" | "Size" | "EyeLike" => true,
        "ScatterElements" | "ScatterND" | "Scatter" => slot == 1,
        _ => false,
    }
}
