//! `shape_simplify`: removes shape-only ops that cancel or chain.
//!
//! # What it does
//! Five local rewrites, applied until none matches (or the budget is spent):
//! - `Identity(x)` vanishes: its readers read `x`;
//! - `Reshape(Reshape(x, s1), s2)` becomes `Reshape(x, s2)` when `s2` is a constant;
//! - `Reshape(x, s)` vanishes when `x`'s shape and the output's are fully known and equal;
//! - `Transpose(Transpose(x, p1), p2)` becomes `Transpose(x, q)`, `q[i] = p1[p2[i]]`, or
//!   vanishes when `q` is the identity (so does a single `Transpose` whose `perm` is the identity);
//! - `Unsqueeze(Squeeze(x, a), a)` and `Squeeze(Unsqueeze(x, a), a)` vanish (same axes once
//!   normalised against the rank each op sees).
//!
//! # When it applies
//! - chains (`Reshape`/`Reshape`, `Transpose`/`Transpose`) need the inner node's output to have
//!   the outer node as its only reader (not a graph output), so each rewrite removes a node;
//! - the final `Reshape` shape holds no `0` unless `allowzero` is set (a `0` copies a dim of the
//!   input, which the rewrite changes); `Squeeze`/`Unsqueeze` axes must be known (attribute or
//!   constant input) and the ranks they are normalised against known;
//! - a vanishing node's output must not be read through a subgraph capture (captures refer to
//!   outer values by name).
//!
//! # What it preserves
//! Outputs exactly (only data movement is removed). A vanishing node's readers and graph
//! outputs are redirected to its input, so a graph output may change its underlying value name
//! (the exporter keeps the output's own name). Subgraphs are not visited.
//!
//! # Example
//! ```text
//! before: y = Transpose(Transpose(Reshape(Reshape(x, [6, 4]), [2, 3, 4]), [0, 2, 1]), [0, 2, 1])
//!         (4 ops)
//! after:  y = Reshape(x, [2, 3, 4])   (1 op)
//! ```

use crate::rewrite::{
    captured, const_input, finish, input, known_shape, op_as, remove_if_dead, replace_uses,
    set_input, sole_user, RewriteError,
};
use petasos_ir::ops::shape_ops::layout::Transpose;
use petasos_ir::ops::shape_ops::reshape::{Reshape, Squeeze, Unsqueeze};
use petasos_ir::{Graph, ValueRef};
use petgraph::stable_graph::NodeIndex;

/// The pass name, used in errors.
pub const NAME: &str = "shape_simplify";

/// A rewrite found at a node.
enum Rewrite {
    /// The node's output is replaced by `with`; the node (and producers left dead) go.
    Vanish { node: NodeIndex, with: ValueRef },
    /// The outer node of a chain reads `from` instead of the inner node, which goes.
    Skip {
        node: NodeIndex,
        inner: NodeIndex,
        from: ValueRef,
    },
    /// Two transposes become one with `perm`.
    Compose {
        node: NodeIndex,
        inner: NodeIndex,
        from: ValueRef,
        perm: Vec<i64>,
    },
}

/// Applies up to `budget` rewrites; returns how many were applied.
pub fn apply(g: &mut Graph, budget: usize) -> Result<usize, RewriteError> {
    let mut count = 0;
    loop {
        let before = count;
        for n in g.topo_order().map_err(RewriteError::ir(NAME))? {
            if count >= budget {
                break;
            }
            if !g.g.contains_node(n) {
                continue;
            }
            if let Some(r) = find(g, n) {
                commit(g, r);
                count += 1;
            }
        }
        if count == before || count >= budget {
            break;
        }
    }
    finish(g, NAME, count)
}

/// The pattern at `n`, if any, found without changing anything.
fn find(g: &Graph, n: NodeIndex) -> Option<Rewrite> {
    let node = &g.g[n];
    if !node.op.domain().is_empty() || !node.captures.is_empty() || node.outputs.len() != 1 {
        return None;
    }
    let out = ValueRef { node: n, out: 0 };
    let x = input(g, n, 0)?;
    let vanish = |with: ValueRef| (!captured(g, out)).then_some(Rewrite::Vanish { node: n, with });
    match node.op.op_type() {
        "Identity" => vanish(x),
        "Reshape" => {
            let r = op_as::<Reshape>(g, n)?;
            if let (Some(a), Some(b)) = (known_shape(g, x), known_shape(g, out)) {
                if a == b {
                    return vanish(x);
                }
            }
            // Chain: the outer shape must be a constant without copy-from-input zeros.
            op_as::<Reshape>(g, x.node)?;
            if sole_user(g, x) != Some((n, 0)) || g.g[x.node].outputs.len() != 1 {
                return None;
            }
            let spec = match &r.shape_attr {
                Some(s) => s.clone(),
                None => {
                    let (_, c) = const_input(g, n, 1)?;
                    c.to_tensor().ok()?.to_i64_vec().ok()?
                }
            };
            if spec.contains(&0) && !r.allowzero {
                return None;
            }
            Some(Rewrite::Skip {
                node: n,
                inner: x.node,
                from: input(g, x.node, 0)?,
            })
        }
        "Transpose" => {
            let rank = g.value_type(x)?.rank()?;
            let p2 = perm(op_as::<Transpose>(g, n)?, rank)?;
            if is_identity(&p2) {
                return vanish(x);
            }
            let t1 = op_as::<Transpose>(g, x.node)?;
            if sole_user(g, x) != Some((n, 0)) || g.g[x.node].outputs.len() != 1 {
                return None;
            }
            let p1 = perm(t1, rank)?;
            let from = input(g, x.node, 0)?;
            let q: Vec<usize> = p2.iter().map(|&i| p1[i]).collect();
            if is_identity(&q) {
                return vanish(from);
            }
            Some(Rewrite::Compose {
                node: n,
                inner: x.node,
                from,
                perm: q.into_iter().map(|v| v as i64).collect(),
            })
        }
        "Unsqueeze" => {
            op_as::<Unsqueeze>(g, n)?;
            op_as::<Squeeze>(g, x.node)?;
            let src = input(g, x.node, 0)?;
            let r = g.value_type(src)?.rank()?;
            let a_sq = axes(
                g,
                x.node,
                op_as::<Squeeze>(g, x.node)?.axes_attr.as_ref(),
                r,
            )?;
            let a_un = axes(g, n, op_as::<Unsqueeze>(g, n)?.axes_attr.as_ref(), r)?;
            (!a_sq.is_empty() && a_sq == a_un)
                .then_some(())
                .and_then(|_| vanish(src))
        }
        "Squeeze" => {
            op_as::<Squeeze>(g, n)?;
            op_as::<Unsqueeze>(g, x.node)?;
            let src = input(g, x.node, 0)?;
            let r = g.value_type(x)?.rank()?;
            let a_un = axes(
                g,
                x.node,
                op_as::<Unsqueeze>(g, x.node)?.axes_attr.as_ref(),
                r,
            )?;
            let a_sq = axes(g, n, op_as::<Squeeze>(g, n)?.axes_attr.as_ref(), r)?;
            (!a_un.is_empty() && a_sq == a_un)
                .then_some(())
                .and_then(|_| vanish(src))
        }
        _ => None,
    }
}

/// A transpose's permutation for input rank `rank` (reversed when unset), if valid.
fn perm(t: &Transpose, rank: usize) -> Option<Vec<usize>> {
    let p: Vec<usize> = match &t.perm {
        None => (0..rank).rev().collect(),
        Some(p) => {
            if p.len() != rank {
                return None;
            }
            p.iter()
                .map(|&a| normalise(a, rank))
                .collect::<Option<_>>()?
        }
    };
    let mut seen = vec![false; rank];
    for &a in &p {
        if std::mem::replace(&mut seen[a], true) {
            return None;
        }
    }
    Some(p)
}

fn is_identity(p: &[usize]) -> bool {
    p.iter().enumerate().all(|(i, &a)| i == a)
}

fn normalise(a: i64, rank: usize) -> Option<usize> {
    let r = rank as i64;
    let v = if a < 0 { a + r } else { a };
    (0..r).contains(&v).then_some(v as usize)
}

/// The axes of a `Squeeze` / `Unsqueeze` (attribute, else constant input 1), normalised against
/// `rank`, sorted; `None` if unknown, out of range or repeated.
fn axes(g: &Graph, n: NodeIndex, attr: Option<&Vec<i64>>, rank: usize) -> Option<Vec<usize>> {
    let raw = match attr {
        Some(a) => a.clone(),
        None => {
            let (_, c) = const_input(g, n, 1)?;
            c.to_tensor().ok()?.to_i64_vec().ok()?
        }
    };
    let mut v: Vec<usize> = raw
        .iter()
        .map(|&a| normalise(a, rank))
        .collect::<Option<_>>()?;
    v.sort_unstable();
    let len = v.len();
    v.dedup();
    (v.len() == len).then_some(v)
}

/// Applies a rewrite.
fn commit(g: &mut Graph, r: Rewrite) {
    match r {
        Rewrite::Vanish { node, with } => {
            replace_uses(g, ValueRef { node, out: 0 }, with);
            remove_if_dead(g, node);
        }
        Rewrite::Skip { node, inner, from } => {
            set_input(g, node, 0, from);
            remove_if_dead(g, inner);
        }
        Rewrite::Compose {
            node,
            inner,
            from,
            perm,
        } => {
            g.g[node].op = Box::new(Transpose { perm: Some(perm) });
            set_input(g, node, 0, from);
            remove_if_dead(g, inner);
        }
    }
}
