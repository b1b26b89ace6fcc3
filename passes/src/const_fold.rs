//! Constant folding (`const_fold`).
//!
//! # What it does
//! Evaluates, with the reference interpreter's own op implementations, every node whose inputs
//! are all constants, and replaces it by constants holding its outputs. Nodes are visited in
//! topological order, so chains (`Shape -> Gather -> Unsqueeze -> Concat -> Reshape` on a known
//! shape, `Transpose` of a weight, `Mul` of two constants) fold in one run.
//!
//! # When it applies
//! To a node that is not an input or a constant, is not random (`RandomNormal`, `Bernoulli`,
//! `Dropout`, ... — see [`crate::patch::is_random`]), holds no subgraph and captures nothing, is
//! not an opaque (unimplemented) op, whose every present input comes from a `Constant` node, and
//! whose inputs and outputs each total at most `PassContext::fold_limit` elements, and whose
//! fold does not grow the graph's constants by more than [`MAX_GROWTH`] elements (the outputs
//! created, less the input constants only this node reads): a `Transpose` of a weight that
//! another node also reads (tied embeddings) would otherwise store the weight twice. A node whose
//! evaluation fails is left as it is. Each folded node is one rewrite.
//!
//! # What it preserves
//! Values: a folded output is exactly what the interpreter computes for the node (rounded to
//! the output dtype as usual), so the graph's outputs are unchanged bit for bit. Names: the new
//! constant carries the folded value's name, and the node's provenance. The constants it read
//! stay (other nodes may read them); `dce` removes those left unread.
//!
//! # Example
//! ```text
//! before:  w = Constant[2,3]   wt = Transpose(w)   y = MatMul(x, wt)
//! after:   w = Constant[2,3]   wt = Constant[3,2]  y = MatMul(x, wt)    (w now dead)
//! ```

use crate::patch::{describe, insert_constant, is_random, replace_node, Budget};
use crate::{Pass, PassContext, PassError, PassReport};
use petasos_ir::op::{EvalCx, SubgraphRunner};
use petasos_ir::ops::core::Opaque;
use petasos_ir::weights::ConstTensor;
use petasos_ir::{Graph, Tensor};
use petgraph::stable_graph::NodeIndex;
use std::collections::BTreeMap;

/// Registry name.
pub const NAME: &str = "const_fold";
/// One-line summary.
pub const SUMMARY: &str = "evaluates nodes whose inputs are all constants into constants";

/// The constant-folding pass.
pub struct ConstFold;

impl Pass for ConstFold {
    fn name(&self) -> &'static str {
        NAME
    }
    fn summary(&self) -> &'static str {
        SUMMARY
    }
    fn run(&self, g: &mut Graph, cx: &PassContext) -> Result<PassReport, PassError> {
        let (n, counts) = fold(g, cx.budget, cx.fold_limit)?;
        Ok(PassReport::new(n, describe("folded", &counts)))
    }
}

/// Folds up to `budget` nodes with the default size limit; returns how many were folded.
pub fn apply(g: &mut Graph, budget: usize) -> Result<usize, PassError> {
    fold(g, budget, crate::DEFAULT_FOLD_LIMIT).map(|(n, _)| n)
}

struct NoSubgraphs;
impl SubgraphRunner for NoSubgraphs {
    fn run(&mut self, _g: &Graph, _inputs: Vec<Tensor>) -> petasos_ir::Result<Vec<Tensor>> {
        Err(petasos_ir::Error::Eval(
            "subgraphs are not run by constant folding".into(),
        ))
    }
}

/// Whether node `n` may be folded, judging by the op alone.
fn foldable_op(g: &Graph, n: NodeIndex) -> bool {
    let node = &g.g[n];
    let op = node.op.as_ref();
    !matches!(op.op_type(), "Input" | "Constant")
        && !is_random(op)
        && op.subgraphs().is_empty()
        && node.captures.is_empty()
        && op.as_any().downcast_ref::<Opaque>().is_none()
}

/// Folding may add at most this many constant elements to the graph: the constants a fold
/// creates, less the input constants that only the folded node reads (they die with it).
pub const MAX_GROWTH: usize = 4096;

/// The node's outputs if it can be folded within `limit` elements, else `None`.
fn evaluate(g: &Graph, n: NodeIndex, limit: usize) -> Option<Vec<Tensor>> {
    if !foldable_op(g, n) {
        return None;
    }
    let mut values: Vec<Option<Tensor>> = Vec::new();
    let mut total = 0usize;
    let mut freed = 0usize;
    let mut seen = Vec::new();
    for v in g.node_inputs(n) {
        match v {
            None => values.push(None),
            Some(v) => {
                let c = g.constant(v.node)?;
                total = total.saturating_add(c.numel());
                if total > limit {
                    return None;
                }
                let only_here = !is_graph_output(g, v.node)
                    && g.users(v).iter().all(|&(u, _)| u == n)
                    && !seen.contains(&v.node);
                if only_here {
                    freed += c.numel();
                    seen.push(v.node);
                }
                values.push(Some(c.to_tensor().ok()?));
            }
        }
    }
    let num_outputs = g.g[n].outputs.len();
    let refs: Vec<Option<&Tensor>> = values.iter().map(|v| v.as_ref()).collect();
    let mut runner = NoSubgraphs;
    let mut cx = EvalCx {
        num_outputs,
        runner: &mut runner,
    };
    let mut outs = g.g[n].op.eval(&mut cx, &refs).ok()?;
    if outs.len() < num_outputs || outs.iter().take(num_outputs).any(|t| t.len() > limit) {
        return None;
    }
    outs.truncate(num_outputs);
    let created: usize = outs.iter().map(|t| t.len()).sum();
    if created.saturating_sub(freed) > MAX_GROWTH {
        return None;
    }
    // The constant must have the type the node declared (inference and eval agree on dtypes;
    // a disagreement is not ours to paper over).
    for (t, v) in outs.iter().zip(&g.g[n].outputs) {
        if t.dtype() != v.ty.dtype {
            return None;
        }
    }
    Some(outs)
}

fn is_graph_output(g: &Graph, n: NodeIndex) -> bool {
    g.outputs.iter().any(|o| o.value.node == n)
}

fn fold(
    g: &mut Graph,
    budget: usize,
    limit: usize,
) -> Result<(usize, BTreeMap<String, usize>), PassError> {
    let order = g.topo_order().map_err(|source| PassError::Ir {
        pass: NAME.into(),
        source,
    })?;
    let mut budget = Budget::new(budget);
    let mut counts = BTreeMap::new();
    for n in order {
        if !budget.available() {
            break;
        }
        let Some(outs) = evaluate(g, n, limit) else {
            continue;
        };
        budget.take();
        let op_type = g.g[n].op.op_type().to_string();
        let prov = g.g[n].provenance.clone();
        let names: Vec<String> = g.g[n].outputs.iter().map(|v| v.name.clone()).collect();
        let consts: Vec<_> = outs
            .into_iter()
            .zip(&names)
            .map(|(t, name)| insert_constant(g, name, ConstTensor::from_tensor(t), prov.clone()))
            .collect();
        replace_node(g, n, &consts)?;
        *counts.entry(op_type).or_default() += 1;
    }
    Ok((budget.used(), counts))
}
