//! Dead-code elimination (`dce`).
//!
//! # What it does
//! Removes every node none of whose outputs reaches a graph output: unused constants (weights
//! left behind by folding), branches whose results nobody reads.
//!
//! # When it applies
//! To any node that is not a formal input or a capture and from which no path of edges leads to
//! a value named in `Graph::outputs`. Nodes are removed readers first (reverse topological
//! order), one rewrite each, so a budget that stops it early leaves no node missing an input.
//!
//! # What it preserves
//! Graph inputs and captures (even unread ones: the graph's signature stays the same), outputs
//! and everything they depend on; subgraphs are not entered (their captures are edges of the
//! holding node, so values they read stay alive).
//!
//! # Example
//! ```text
//! before:  x ─ Relu ─▶ y        x ─ Neg ─ Exp   (Exp read by nothing)
//! after:   x ─ Relu ─▶ y
//! ```

use crate::patch::{describe, remove_node, Budget};
use crate::{Pass, PassContext, PassError, PassReport};
use petasos_ir::Graph;
use petgraph::stable_graph::NodeIndex;
use petgraph::Direction;
use std::collections::{BTreeMap, HashSet};

/// Registry name.
pub const NAME: &str = "dce";
/// One-line summary.
pub const SUMMARY: &str = "removes nodes whose outputs reach no graph output";

/// The dead-code elimination pass.
pub struct Dce;

impl Pass for Dce {
    fn name(&self) -> &'static str {
        NAME
    }
    fn summary(&self) -> &'static str {
        SUMMARY
    }
    fn run(&self, g: &mut Graph, cx: &PassContext) -> Result<PassReport, PassError> {
        let (n, counts) = apply_counted(g, cx.budget)?;
        Ok(PassReport::new(n, describe("removed", &counts)))
    }
}

/// Nodes from which a graph output is reachable, plus inputs and captures.
pub fn live_nodes(g: &Graph) -> HashSet<NodeIndex> {
    let mut live: HashSet<NodeIndex> = HashSet::new();
    let mut stack: Vec<NodeIndex> = g.outputs.iter().map(|o| o.value.node).collect();
    stack.extend(g.inputs.iter().chain(&g.captures));
    while let Some(n) = stack.pop() {
        if g.g.node_weight(n).is_none() || !live.insert(n) {
            continue;
        }
        stack.extend(g.g.neighbors_directed(n, Direction::Incoming));
    }
    live
}

/// Removes up to `budget` dead nodes; returns how many were removed.
pub fn apply(g: &mut Graph, budget: usize) -> Result<usize, PassError> {
    apply_counted(g, budget).map(|(n, _)| n)
}

fn apply_counted(
    g: &mut Graph,
    budget: usize,
) -> Result<(usize, BTreeMap<String, usize>), PassError> {
    let live = live_nodes(g);
    let order = g.topo_order().map_err(|source| PassError::Ir {
        pass: NAME.into(),
        source,
    })?;
    let mut budget = Budget::new(budget);
    let mut counts = BTreeMap::new();
    for &n in order.iter().rev() {
        if live.contains(&n) || g.g[n].op.op_type() == "Input" {
            continue;
        }
        if !budget.take() {
            break;
        }
        *counts.entry(g.g[n].op.op_type().to_string()).or_default() += 1;
        remove_node(g, n)?;
    }
    Ok((budget.used(), counts))
}
