//! The graph verifier: structural invariants and type consistency.
//!
//! Checks that the graph is acyclic, every edge reads an existing output into an existing input
//! slot, no slot is fed twice, required structure (formal inputs are `Input` nodes, outputs exist)
//! holds, output names are unique, and re-running inference gives the stored types.

use crate::graph::Graph;
use crate::infer::Inferencer;
use crate::{Error, Result};
use petgraph::visit::{EdgeRef, IntoEdgeReferences};
use std::collections::HashSet;

/// Verifies `g` and, recursively, its subgraphs.
pub fn verify(g: &Graph) -> Result<()> {
    let order = g.topo_order()?;
    for e in g.g.edge_references() {
        let (s, t, w) = (e.source(), e.target(), e.weight());
        let src = &g.g[s];
        let dst = &g.g[t];
        if w.src_out >= src.outputs.len() {
            return Err(Error::Verify(format!(
                "edge reads output {} of '{}' which has {}",
                w.src_out,
                src.provenance.onnx_name,
                src.outputs.len()
            )));
        }
        if w.dst_in >= dst.num_inputs {
            return Err(Error::Verify(format!(
                "edge feeds input {} of '{}' which has {}",
                w.dst_in, dst.provenance.onnx_name, dst.num_inputs
            )));
        }
    }
    for n in g.g.node_indices() {
        let mut seen = HashSet::new();
        for e in g.g.edges_directed(n, petgraph::Direction::Incoming) {
            if !seen.insert(e.weight().dst_in) {
                return Err(Error::Verify(format!(
                    "input {} of node '{}' is fed twice",
                    e.weight().dst_in,
                    g.g[n].provenance.onnx_name
                )));
            }
        }
    }
    for &i in g.inputs.iter().chain(&g.captures) {
        match g.g.node_weight(i) {
            Some(n) if n.op.op_type() == "Input" => {}
            _ => return Err(Error::Verify("a graph input is not an Input node".into())),
        }
    }
    let mut names = HashSet::new();
    for o in &g.outputs {
        if g.value_type(o.value).is_none() {
            return Err(Error::Verify(format!(
                "graph output '{}' refers to a missing value",
                o.name
            )));
        }
        if !names.insert(o.name.as_str()) {
            return Err(Error::Verify(format!(
                "graph output name '{}' is used twice",
                o.name
            )));
        }
    }
    // Types: re-infer on a copy and compare dtypes and ranks.
    let mut copy = g.clone();
    let mut inf = Inferencer::default();
    for &n in &order {
        inf.infer_node(&mut copy, n)?;
        for (a, b) in g.g[n].outputs.iter().zip(&copy.g[n].outputs) {
            if a.ty.dtype != b.ty.dtype
                || (a.ty.rank().is_some() && b.ty.rank().is_some() && a.ty.rank() != b.ty.rank())
            {
                return Err(Error::Verify(format!(
                    "value '{}' is recorded as {} but inference gives {}",
                    a.name, a.ty, b.ty
                )));
            }
        }
    }
    for n in g.g.node_weights() {
        for sg in n.op.subgraphs() {
            verify(sg)?;
        }
    }
    Ok(())
}
