//! Fusion of elementwise regions: connected elementwise nodes with the anchor's output shape
//! run as one loop, each node's element a block-scoped local, and only values read outside
//! the region (or graph outputs) stored to memory.
//!
//! The region may be a DAG, not only a chain (e.g. `x * clip(x + 3, 0, 6) / 6`): a node joins
//! when it is an elementwise op of this family, has the region's output shape and one output,
//! and each input is either a region value or computed without the anchor (so it is ready
//! before the kernel runs). Intermediate values are rounded to their dtype exactly as a store
//! and reload would, so results equal the unfused kernels' (a fused `Where` moves f16/bf16
//! values through `float`, which keeps every value but not a NaN's payload bits).

use super::broadcast::Bcast;
use super::elementwise::{emit_nest, node_elem, read, round_to, Access, NodeElem};
use super::{ctype, elementwise_binary, elementwise_unary, CTensor, FuseCx, LowerCx, LowerError};
use petasos_ir::graph::{Graph, ValueRef};
use petgraph::stable_graph::NodeIndex;
use std::collections::{BTreeSet, HashMap};

/// At most this many nodes in one region.
const MAX_NODES: usize = 48;

/// Whether op type `op` may join (or anchor) an elementwise region.
pub fn fusable_op(op: &str) -> bool {
    elementwise_unary::OPS.contains(&op) || elementwise_binary::OPS.contains(&op)
}

/// The static output shape of single-output fusable node `n`, `None` if it cannot fuse.
fn fusable_shape(g: &Graph, n: NodeIndex) -> Option<Vec<u64>> {
    let node = g.g.node_weight(n)?;
    let d = node.op.domain();
    if !(d.is_empty() || d == "ai.onnx") || !fusable_op(node.op.op_type()) {
        return None;
    }
    let [out] = node.outputs.as_slice() else {
        return None;
    };
    ctype(out.ty.dtype)?;
    out.ty.shape.as_ref()?.iter().map(|d| d.known()).collect()
}

/// The fusion rule: grows the region from the anchor through its users (see the module doc).
pub fn fuse_region(cx: &FuseCx<'_>) -> Vec<NodeIndex> {
    let g = cx.g;
    let Some(shape) = fusable_shape(g, cx.anchor) else {
        return Vec::new();
    };
    let mut region = vec![cx.anchor];
    loop {
        let mut cands = BTreeSet::new();
        for &n in &region {
            for (u, _) in g.users(ValueRef { node: n, out: 0 }) {
                if !region.contains(&u) && !cx.taken.contains(&u) {
                    cands.insert(u);
                }
            }
        }
        let mut added = false;
        for u in cands {
            if region.len() >= MAX_NODES {
                break;
            }
            if fusable_shape(g, u).as_ref() != Some(&shape) {
                continue;
            }
            let ready = g.node_inputs(u).into_iter().flatten().all(|v| {
                region.contains(&v.node)
                    || !petgraph::algo::has_path_connecting(&g.g, cx.anchor, v.node, None)
            });
            if ready {
                region.push(u);
                added = true;
            }
        }
        if !added {
            break;
        }
    }
    region.split_off(1)
}

/// Where one input of a region node comes from.
enum Src {
    /// The value of region node `k`.
    Node(usize),
    /// Outside tensor `m` (read with broadcasting).
    Outside(usize),
}

/// Emits a fused region (the kernel's nodes, in execution order) as one loop nest.
pub fn emit_fused(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let nodes = cx.nodes().to_vec();
    let pos: HashMap<NodeIndex, usize> = nodes.iter().enumerate().map(|(k, &n)| (n, k)).collect();
    let elems: Vec<NodeElem> = (0..nodes.len())
        .map(|k| node_elem(cx, k))
        .collect::<Result<_, _>>()?;
    let mut outside: Vec<CTensor> = Vec::new();
    let mut srcs: Vec<Vec<Src>> = Vec::new();
    let mut outs: Vec<(CTensor, bool)> = Vec::new();
    for (k, ne) in elems.iter().enumerate() {
        let inputs = cx.g.node_inputs(nodes[k]);
        let mut s = Vec::new();
        for (t, &slot) in ne.ins.iter().zip(&ne.slots) {
            match inputs.get(slot).copied().flatten() {
                Some(v) if pos.contains_key(&v.node) => s.push(Src::Node(pos[&v.node])),
                _ => {
                    s.push(Src::Outside(outside.len()));
                    outside.push(t.clone());
                }
            }
        }
        srcs.push(s);
        let v = ValueRef {
            node: nodes[k],
            out: 0,
        };
        let stored = cx.g.outputs.iter().any(|o| o.value == v)
            || cx.g.users(v).iter().any(|(u, _)| !pos.contains_key(u));
        outs.push((cx.output_of(k, 0)?.clone(), stored));
    }
    let shape = outs.first().map(|o| o.0.shape.clone()).unwrap_or_default();
    if let Some((t, _)) = outs.iter().find(|(t, _)| t.shape != shape) {
        return Err(cx.invalid(format!(
            "fused value {:?} differs from the region shape {shape:?}",
            t.shape
        )));
    }
    let shapes: Vec<&[usize]> = outside.iter().map(|t| t.shape.as_slice()).collect();
    let b = Bcast::new(&shape, &shapes).map_err(|e| cx.invalid(e))?;
    let ops: Vec<String> = nodes
        .iter()
        .map(|&n| cx.g.g[n].op.op_type().to_string())
        .collect();
    cx.line(format!(
        "/* fused elementwise region: {} */",
        ops.join(" -> ")
    ));
    if b.numel == 0 {
        cx.line("/* empty output: nothing to compute */");
        return Ok(());
    }
    let hoist = |t: &CTensor| t.numel() == 1 && b.numel > 1;
    let mut before = Vec::new();
    for (m, t) in outside.iter().enumerate() {
        if hoist(t) {
            let (ty, load) = read(t, "0", Access::Compute);
            before.push(format!("const {ty} c{m}_s = {load};"));
        }
    }
    let (o, idx) = b.indices();
    let mut inner = Vec::new();
    for (k, ne) in elems.iter().enumerate() {
        let (out, stored) = &outs[k];
        let ct = out.compute_type();
        inner.push(format!("{ct} v{k};"));
        inner.push("{".into());
        for (j, (t, src)) in ne.ins.iter().zip(&srcs[k]).enumerate() {
            let val = match *src {
                Src::Node(kk) => format!("v{kk}"),
                Src::Outside(m) => match (outside.get(m), idx.get(m)) {
                    (Some(ot), _) if hoist(ot) => format!("c{m}_s"),
                    (Some(ot), Some(i)) => read(ot, i, Access::Compute).1,
                    _ => return Err(cx.invalid("internal: outside input index".into())),
                },
            };
            inner.push(format!("const {} x{j} = {val};", t.compute_type()));
        }
        inner.extend(ne.elem.pre.iter().cloned());
        inner.push(format!("v{k} = {};", round_to(out.dtype, ct, &ne.elem.val)));
        inner.push("}".into());
        if *stored {
            inner.push(out.store(&o, &format!("v{k}")));
        }
    }
    let mut used: Vec<&CTensor> = outside.iter().collect();
    used.extend(outs.iter().filter(|o| o.1).map(|o| &o.0));
    emit_nest(cx, &b, &before, &inner, &used);
    Ok(())
}
