//! Shape and dtype inference over a whole graph.
//!
//! Nodes are visited in topological order. Each op infers its outputs from its inputs' types;
//! where every input is a known constant (and small), the node is evaluated instead, so chains
//! such as `Shape -> Gather -> Concat -> Reshape` resolve to exact shapes. Ops that can tell
//! integer shape values from types alone (`Op::infer_dims`) carry them as symbolic dims.

use crate::graph::{Graph, ValueRef};
use crate::op::{EvalCx, InferCx, SubgraphRunner};
use crate::shape::{Dim, ValueType};
use crate::tensor::Tensor;
use crate::{Error, Result};
use std::cell::Cell;
use std::collections::HashMap;

/// Inputs larger than this (elements) are not folded during inference.
const FOLD_LIMIT: usize = 1 << 16;

struct NoSubgraphs;
impl SubgraphRunner for NoSubgraphs {
    fn run(&mut self, _g: &Graph, _inputs: Vec<Tensor>) -> Result<Vec<Tensor>> {
        Err(Error::Eval("subgraphs are not run during inference".into()))
    }
}

/// Wraps an error with the node it came from.
pub fn node_context(g: &Graph, n: petgraph::stable_graph::NodeIndex, e: Error) -> Error {
    let node = &g.g[n];
    let name = if node.provenance.onnx_name.is_empty() {
        node.outputs.first().map(|v| v.name.as_str()).unwrap_or("")
    } else {
        node.provenance.onnx_name.as_str()
    };
    let what = format!("node '{}' ({})", name, node.op.op_type());
    match e {
        Error::Infer(m) => Error::Infer(format!("{what}: {m}")),
        Error::Eval(m) => Error::Eval(format!("{what}: {m}")),
        Error::Verify(m) => Error::Verify(format!("{what}: {m}")),
        Error::Import(m) => Error::Import(format!("{what}: {m}")),
        other => other,
    }
}

/// Infers the types of every value of `g`, in place (subgraphs are inferred when imported).
pub fn infer_graph(g: &mut Graph) -> Result<()> {
    let mut inf = Inferencer::default();
    for n in g.topo_order()? {
        inf.infer_node(g, n)?;
    }
    Ok(())
}

/// Incremental inference state: known constant values and the fresh-dim counter.
#[derive(Default)]
pub struct Inferencer {
    consts: HashMap<ValueRef, Tensor>,
    /// Integer values known as (possibly symbolic) dims.
    dims: HashMap<ValueRef, Vec<Dim>>,
    fresh: Cell<u64>,
}

impl Inferencer {
    /// The folded constant value of `v`, if inference knows it.
    pub fn value(&self, v: ValueRef) -> Option<&Tensor> {
        self.consts.get(&v)
    }

    /// Infers node `n`'s output types; its inputs must already be inferred.
    pub fn infer_node(
        &mut self,
        g: &mut Graph,
        n: petgraph::stable_graph::NodeIndex,
    ) -> Result<()> {
        let consts = &mut self.consts;
        let known_dims = &mut self.dims;
        let fresh = &self.fresh;
        let ins = g.node_inputs(n);
        let node = &g.g[n];
        let n_caps = node.captures.len();
        let n_regular = node.num_inputs.saturating_sub(n_caps);
        let mut types = Vec::with_capacity(n_regular);
        let mut values = Vec::with_capacity(n_regular);
        let mut dims = Vec::with_capacity(n_regular);
        for v in ins.iter().take(n_regular) {
            types.push(v.and_then(|v| g.value_type(v).cloned()));
            values.push(v.and_then(|v| consts.get(&v).cloned()));
            dims.push(v.and_then(|v| known_dims.get(&v).cloned()));
        }
        let num_outputs = node.outputs.len();
        if let Some(c) = g.constant(n) {
            // Synthetic weights are never folded: materialising them would defeat their point.
            let synthetic = matches!(c.storage, crate::weights::Storage::Synthetic { .. });
            if c.numel() <= FOLD_LIMIT && !synthetic {
                if let Ok(t) = c.to_tensor() {
                    consts.insert(ValueRef { node: n, out: 0 }, t);
                }
            }
        }
        let foldable = node.op.op_type() != "Input"
            && node.op.op_type() != "Constant"
            && !node.op.is_random()
            && node.op.subgraphs().is_empty()
            && n_caps == 0
            && types
                .iter()
                .zip(&values)
                .all(|(t, v)| t.is_none() || v.is_some())
            && values.iter().flatten().map(|t| t.len()).sum::<usize>() <= FOLD_LIMIT
            && types.iter().any(|t| t.is_some());
        let mut outs: Option<Vec<ValueType>> = None;
        if foldable {
            let refs: Vec<Option<&Tensor>> = values.iter().map(|v| v.as_ref()).collect();
            let mut runner = NoSubgraphs;
            let mut cx = EvalCx {
                num_outputs,
                runner: &mut runner,
            };
            if let Ok(res) = node.op.eval(&mut cx, &refs) {
                if res.len() >= num_outputs && res.iter().all(|t| t.len() <= FOLD_LIMIT) {
                    outs = Some(
                        res.iter()
                            .take(num_outputs)
                            .map(|t| ValueType::known(t.dtype(), t.shape()))
                            .collect(),
                    );
                    for (i, t) in res.into_iter().take(num_outputs).enumerate() {
                        consts.insert(ValueRef { node: n, out: i }, t);
                    }
                }
            }
        }
        let outs = match outs {
            Some(o) => o,
            None => {
                let cx = InferCx {
                    inputs: &types,
                    values: &values,
                    num_outputs,
                    fresh,
                    dims: &dims,
                };
                let outs = g.g[n].op.infer(&cx).map_err(|e| node_context(g, n, e))?;
                let found = g.g[n].op.infer_dims(&cx);
                for (i, d) in found.into_iter().enumerate().take(num_outputs) {
                    let Some(d) = d else { continue };
                    let key = ValueRef { node: n, out: i };
                    // All known: a constant, so later nodes fold (`Shape -> Gather -> ...`).
                    let known: Option<Vec<i128>> =
                        d.iter().map(|x| x.known().map(i128::from)).collect();
                    let shape = outs.get(i).and_then(|t| {
                        crate::shape::shape_known(t.shape.as_ref()?).filter(|_| t.dtype.is_int())
                    });
                    if let (Some(k), Some(s)) = (known, shape) {
                        let dt = outs[i].dtype;
                        if let Ok(a) = ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&s), k) {
                            consts.insert(key, Tensor::int(dt, a));
                        }
                    }
                    known_dims.insert(key, d);
                }
                outs
            }
        };
        if outs.len() < num_outputs {
            return Err(node_context(
                g,
                n,
                Error::Infer(format!(
                    "the op gives {} outputs but the node declares {num_outputs}",
                    outs.len()
                )),
            ));
        }
        let node = &mut g.g[n];
        for (v, t) in node.outputs.iter_mut().zip(outs) {
            v.ty = t;
        }
        Ok(())
    }
}
