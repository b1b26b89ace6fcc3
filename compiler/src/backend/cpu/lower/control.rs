//! Control flow: `If` lowered by inlining its branches into the enclosing graph.
//!
//! Two steps, run by [`super::super::generate`] after the pass pipeline and before scheduling:
//!
//! 1. [`prepare`]: every `If`'s branches are specialised to the static types of the values they
//!    capture (re-inferred, optimised, and prepared recursively, so nested `If`s on shapes
//!    resolve). An `If` whose condition is a constant (a folded shape test, or an input frozen
//!    with `--freeze-input`) is replaced by the nodes of the branch it takes; then the graph is
//!    re-inferred and optimised again until no such `If` is left. A remaining `If` gets static
//!    output types when both branches agree on them.
//! 2. [`inline_runtime_ifs`]: each remaining `If` (its condition known only at run time) has
//!    both branches inlined, every inlined node carrying a *guard* (the condition value and the
//!    branch's polarity, plus the guards of `If`s nested in the branch); the `If` node itself
//!    becomes a `petasos.cpu.IfSelect` node reading the condition and both branches' outputs,
//!    which copies the taken branch's outputs into its own. The scheduler keeps a kernel's
//!    nodes under one guard, orders guarded kernels after their condition, keeps the condition
//!    live until they have run, and the emitter calls a guarded kernel only when its guard
//!    holds ([`Guards`]). Both branches must give outputs of the same static shapes.
//!
//! No pass runs after step 2 (common-subexpression elimination would merge nodes of different
//! guards). `Loop` and `Scan` are not lowered (their trip counts decide shapes).

use super::{LowerCx, LowerError, Registry};
use petasos_ir::graph::{Graph, Node, ValueRef};
use petasos_ir::infer::{infer_graph, Inferencer};
use petasos_ir::ops::control::If;
use petasos_ir::ops::core::{Input, Opaque};
use petasos_passes::manager::PassManager;
use petasos_passes::rewrite::replace_uses;
use petgraph::stable_graph::NodeIndex;
use petgraph::visit::EdgeRef;
use petgraph::Direction;
use std::collections::HashMap;

/// Op type of the node that selects an `If`'s outputs (domain [`SELECT_DOMAIN`]).
pub const SELECT_OP: &str = "IfSelect";
/// Domain of [`SELECT_OP`].
pub const SELECT_DOMAIN: &str = "petasos.cpu";
/// Registry key of [`SELECT_OP`].
const SELECT_KEY: &str = "petasos.cpu.IfSelect";

/// Registers the lowering of the `If` select node.
pub fn register(r: &mut Registry) {
    r.op(SELECT_KEY, lower_select);
    r.exotic_dtypes(SELECT_KEY);
}

/// A guard: run only when every `(condition, polarity)` holds (`condition != 0` equals
/// `polarity`). Empty: always.
pub type Guard = Vec<(ValueRef, bool)>;

/// Guards of the nodes of a graph (nodes not listed always run).
#[derive(Clone, Debug, Default)]
pub struct Guards {
    pub map: HashMap<NodeIndex, Guard>,
}

impl Guards {
    /// The guard of `n` (empty: always runs).
    pub fn of(&self, n: NodeIndex) -> &[(ValueRef, bool)] {
        self.map.get(&n).map_or(&[], |g| g.as_slice())
    }
}

/// Why control flow could not be lowered.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("If lowering: {0}")]
    Ir(#[from] petasos_ir::Error),
    #[error("If lowering: optimising a branch: {0}")]
    Passes(#[from] petasos_passes::PassError),
    /// The `If` cannot be lowered (differing branch shapes, a malformed node).
    #[error("op 'If' (node '{node}'): {msg}")]
    If { node: String, msg: String },
}

fn if_error(g: &Graph, n: NodeIndex, msg: impl Into<String>) -> ControlError {
    ControlError::If {
        node: super::node_label(&g.g[n]),
        msg: msg.into(),
    }
}

/// The value read by `n`'s capture named `name`.
fn capture_source(g: &Graph, n: NodeIndex, name: &str) -> Option<ValueRef> {
    let node = &g.g[n];
    let pos = node.captures.iter().position(|c| c == name)?;
    let slot = node.num_inputs.checked_sub(node.captures.len())? + pos;
    g.node_inputs(n).get(slot).copied().flatten()
}

/// The value of `n`'s condition when it is known at compile time: a constant, or a value
/// shape inference folds (`Equal(Gather(Shape(x)), 1)` on a static `x`).
fn const_condition(g: &Graph, inf: &Inferencer, n: NodeIndex) -> Option<bool> {
    let v = g.node_inputs(n).first().copied().flatten()?;
    let t = match g.constant(v.node) {
        Some(c) => c.to_tensor().ok()?,
        None => inf.value(v)?.clone(),
    };
    Some(t.scalar_f64().ok()? != 0.0)
}

/// Re-infers `g`, keeping the values inference folds.
fn infer_values(g: &mut Graph) -> Result<Inferencer, ControlError> {
    let mut inf = Inferencer::default();
    for n in g.topo_order()? {
        inf.infer_node(g, n)?;
    }
    Ok(inf)
}

/// Optimises `g` with the standard pipeline when `passes`.
fn optimise(g: &mut Graph, passes: bool) -> Result<(), ControlError> {
    if passes {
        PassManager::standard().run(g)?;
    }
    Ok(())
}

/// `branch` of `If` node `n` with its captures typed as the values they read in `g`,
/// re-inferred, optimised and prepared (see the module doc).
fn specialise_branch(
    g: &Graph,
    n: NodeIndex,
    branch: &Graph,
    passes: bool,
) -> Result<Graph, ControlError> {
    let mut b = branch.clone();
    for c in b.captures.clone() {
        let Some(cn) = b.g.node_weight(c) else {
            continue;
        };
        let name = cn.outputs[0].name.clone();
        let ty = capture_source(g, n, &name)
            .and_then(|v| g.value_type(v).cloned())
            .ok_or_else(|| if_error(g, n, format!("captured value '{name}' is not fed")))?;
        b.g[c].op = Box::new(Input { ty: ty.clone() });
        b.g[c].outputs[0].ty = ty;
    }
    infer_graph(&mut b)?;
    optimise(&mut b, passes)?;
    prepare(&mut b, passes)?;
    Ok(b)
}

/// Metadata key marking a branch that cannot run with the compiled shapes (value: why).
const UNREACHABLE: &str = "petasos.cpu.unreachable";

/// [`specialise_branch`], and a check that every value of the result has a static shape;
/// `Err` says why the branch cannot run with these shapes.
fn feasible_branch(g: &Graph, n: NodeIndex, branch: &Graph, passes: bool) -> Result<Graph, String> {
    let b = specialise_branch(g, n, branch, passes).map_err(|e| e.to_string())?;
    super::super::specialise::check_static(&b).map_err(|e| e.to_string())?;
    for o in &b.outputs {
        if static_shape(&b, o.value).is_none() {
            return Err(format!("branch output '{}' has no static shape", o.name));
        }
    }
    Ok(b)
}

/// A stand-in for a branch that cannot run with the compiled shapes: `like` (the other
/// branch, so the `If`'s output types stay those of the runnable branch) marked with why.
fn unreachable_like(like: &Graph, why: &str) -> Graph {
    let mut u = like.clone();
    u.metadata.insert(UNREACHABLE.into(), why.to_string());
    u
}

/// Step 1 (module doc): specialises every `If`'s branches and inlines the `If`s whose
/// condition is a constant, re-inferring and optimising `g` after each round.
pub fn prepare(g: &mut Graph, passes: bool) -> Result<(), ControlError> {
    loop {
        // Inline every If whose condition is known, then re-infer and optimise.
        let inf = infer_values(g)?;
        let mut changed = false;
        for n in g.topo_order()? {
            let Some(op) = g.g[n].op.as_any().downcast_ref::<If>().cloned() else {
                continue;
            };
            let Some(c) = const_condition(g, &inf, n) else {
                continue;
            };
            let taken = if c { &op.then_branch } else { &op.else_branch };
            let b = specialise_branch(g, n, taken, passes)?;
            let outs = inline(g, n, &b, None, &Guards::default(), &mut Guards::default())?;
            for (i, v) in outs.into_iter().enumerate() {
                replace_uses(g, ValueRef { node: n, out: i }, v);
            }
            g.g.remove_node(n);
            changed = true;
        }
        if changed {
            infer_graph(g)?;
            optimise(g, passes)?;
            continue;
        }
        // The rest run-time Ifs: specialise their branches one at a time (an If's static
        // outputs can make a later If's captures static), re-inferring after each.
        for n in g.topo_order()? {
            let Some(op) = g.g[n].op.as_any().downcast_ref::<If>().cloned() else {
                continue;
            };
            let t = feasible_branch(g, n, &op.then_branch, passes);
            let e = feasible_branch(g, n, &op.else_branch, passes);
            let (then_branch, else_branch) = match (t, e) {
                (Ok(t), Ok(e)) => (t, e),
                (Ok(t), Err(why)) => {
                    let u = unreachable_like(&t, &why);
                    (t, u)
                }
                (Err(why), Ok(e)) => (unreachable_like(&e, &why), e),
                (Err(why), Err(_)) => return Err(if_error(g, n, why)),
            };
            g.g[n].op = Box::new(If {
                then_branch,
                else_branch,
            });
            infer_graph(g)?;
        }
        optimise(g, passes)?;
        // Static If outputs may have made later conditions known: go round again if so.
        let inf = infer_values(g)?;
        let more = g.topo_order()?.into_iter().any(|n| {
            g.g[n].op.as_any().downcast_ref::<If>().is_some()
                && const_condition(g, &inf, n).is_some()
        });
        if !more {
            return Ok(());
        }
    }
}

/// Copies the nodes of `branch` (an `If` branch of node `n`) into `g`, its captures read from
/// `n`'s capture inputs; every copied non-constant node gets `guard` followed by its guard in
/// `branch_guards`, recorded in `out`. Returns the values of `branch`'s outputs in `g`.
fn inline(
    g: &mut Graph,
    n: NodeIndex,
    branch: &Graph,
    guard: Option<(ValueRef, bool)>,
    branch_guards: &Guards,
    out: &mut Guards,
) -> Result<Vec<ValueRef>, ControlError> {
    let mut vmap: HashMap<ValueRef, ValueRef> = HashMap::new();
    for &c in &branch.captures {
        let Some(cn) = branch.g.node_weight(c) else {
            continue;
        };
        let name = &cn.outputs[0].name;
        let src = capture_source(g, n, name)
            .ok_or_else(|| if_error(g, n, format!("captured value '{name}' is not fed")))?;
        vmap.insert(ValueRef { node: c, out: 0 }, src);
    }
    for bn in branch.topo_order()? {
        let node = &branch.g[bn];
        if node.op.op_type() == "Input" {
            if vmap.contains_key(&ValueRef { node: bn, out: 0 }) {
                continue;
            }
            return Err(if_error(
                g,
                n,
                format!("branch input '{}' is not a capture", node.outputs[0].name),
            ));
        }
        let new = g.g.add_node(Node {
            op: node.op.clone(),
            num_inputs: node.num_inputs,
            outputs: node.outputs.clone(),
            provenance: node.provenance.clone(),
            captures: node.captures.clone(),
        });
        for (slot, v) in branch.node_inputs(bn).into_iter().enumerate() {
            let Some(v) = v else { continue };
            let src = *vmap
                .get(&v)
                .ok_or_else(|| if_error(g, n, "a branch node reads an unknown value"))?;
            g.connect(src, new, slot);
        }
        for i in 0..node.outputs.len() {
            vmap.insert(
                ValueRef { node: bn, out: i },
                ValueRef { node: new, out: i },
            );
        }
        if branch.constant(bn).is_some() {
            continue;
        }
        let mut gd: Guard = guard.into_iter().collect();
        for (c, p) in branch_guards.of(bn) {
            let c = *vmap
                .get(c)
                .ok_or_else(|| if_error(g, n, "a nested condition is not computed"))?;
            gd.push((c, *p));
        }
        if !gd.is_empty() {
            out.map.insert(new, gd);
        }
    }
    branch
        .outputs
        .iter()
        .map(|o| {
            vmap.get(&o.value).copied().ok_or_else(|| {
                if_error(g, n, format!("branch output '{}' is not computed", o.name))
            })
        })
        .collect()
}

/// The static shape of `v`, if it has one.
fn static_shape(g: &Graph, v: ValueRef) -> Option<Vec<u64>> {
    let t = g.value_type(v)?;
    t.shape.as_ref()?.iter().map(|d| d.known()).collect()
}

/// Step 2 (module doc): inlines both branches of every remaining `If` under guards and turns
/// the `If` into an `IfSelect` node. Returns the guards of `g`'s nodes.
pub fn inline_runtime_ifs(g: &mut Graph) -> Result<Guards, ControlError> {
    let mut guards = Guards::default();
    for n in g.topo_order()? {
        let Some(op) = g.g[n].op.as_any().downcast_ref::<If>().cloned() else {
            continue;
        };
        let cond = g
            .node_inputs(n)
            .first()
            .copied()
            .flatten()
            .ok_or_else(|| if_error(g, n, "no condition"))?;
        if static_shape(g, cond).is_none_or(|s| s.iter().product::<u64>() != 1) {
            return Err(if_error(g, n, "the condition is not a one-element tensor"));
        }
        let k = g.g[n].outputs.len();
        let mut outs: Vec<Vec<ValueRef>> = Vec::new();
        let mut attributes = Vec::new();
        for (b, pol, label) in [
            (&op.then_branch, true, "then"),
            (&op.else_branch, false, "else"),
        ] {
            if let Some(why) = b.metadata.get(UNREACHABLE) {
                attributes.push((label.to_string(), why.clone()));
                continue;
            }
            let mut b = b.clone();
            let bg = inline_runtime_ifs(&mut b)?;
            let o = inline(g, n, &b, Some((cond, pol)), &bg, &mut guards)?;
            if o.len() != k {
                return Err(if_error(
                    g,
                    n,
                    "a branch gives a different number of outputs",
                ));
            }
            outs.push(o);
        }
        let (touts, eouts) = match outs.as_slice() {
            [t, e] => (t.clone(), e.clone()),
            [t] => (t.clone(), t.clone()),
            _ => return Err(if_error(g, n, "neither branch can run with these shapes")),
        };
        for i in 0..k {
            let (t, e) = (touts[i], eouts[i]);
            let (ts, es) = (static_shape(g, t), static_shape(g, e));
            let (td, ed) = (
                g.value_type(t).map(|t| t.dtype),
                g.value_type(e).map(|t| t.dtype),
            );
            match (ts, es) {
                (Some(a), Some(b)) if a == b && td == ed => {
                    let ty = g.value_type(t).cloned().ok_or_else(|| if_error(g, n, "untyped"))?;
                    g.g[n].outputs[i].ty = ty;
                }
                (a, b) => {
                    return Err(if_error(
                        g,
                        n,
                        format!(
                            "output {i}: the branches give {td:?} {a:?} and {ed:?} {b:?}; the CPU backend needs both static and equal (freeze the condition's inputs with --freeze-input to keep one branch)"
                        ),
                    ))
                }
            }
        }
        let old: Vec<_> =
            g.g.edges_directed(n, Direction::Incoming)
                .map(|e| e.id())
                .collect();
        for id in old {
            g.g.remove_edge(id);
        }
        let node = &mut g.g[n];
        node.op = Box::new(Opaque {
            op_type: SELECT_OP.into(),
            domain: SELECT_DOMAIN.into(),
            attributes,
            declared: Vec::new(),
            reason: "the CPU backend's If output select".into(),
            raw_attrs: Vec::new(),
        });
        node.num_inputs = 1 + outs.len() * k;
        node.captures.clear();
        g.connect(cond, n, 0);
        for (j, o) in outs.iter().enumerate() {
            for (i, &v) in o.iter().enumerate() {
                g.connect(v, n, 1 + j * k + i);
            }
        }
    }
    Ok(guards)
}

/// `IfSelect(cond, outputs of each runnable branch..)`: copies the taken branch's outputs.
/// A branch that cannot run with the compiled shapes (attribute `then` / `else`: why) is not
/// inlined; taking it zero-fills the outputs and sets the model error, as the interpreter
/// would fail there.
fn lower_select(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let k = cx.num_outputs();
    let c = cx.input(0)?.clone();
    if c.numel() != 1 {
        return Err(cx.invalid("the condition is not a one-element tensor".into()));
    }
    let traps: Vec<(String, String)> = cx.op::<Opaque>()?.attributes.clone();
    let mut next = 1;
    cx.line(format!("if ({}[0] != 0) {{", c.expr));
    for label in ["then", "else"] {
        if label == "else" {
            cx.line("} else {");
        }
        if let Some((_, why)) = traps.iter().find(|(l, _)| l == label) {
            let f = cx.fn_name.clone();
            let msg = super::super::sanitize::c_string(&format!(
                "{f}: the If's {label} branch cannot run with the compiled input shapes ({why})"
            ));
            cx.line(format!("pt_set_error(\"%s\", {msg});"));
            for i in 0..k {
                let y = cx.output(i)?.clone();
                if y.bytes() > 0 {
                    cx.line(format!("memset({}, 0, {});", y.expr, y.bytes()));
                }
            }
            continue;
        }
        for i in 0..k {
            let (y, t) = (cx.output(i)?.clone(), cx.input(next + i)?.clone());
            copy(cx, &y.expr, &t.expr, y.bytes(), t.bytes())?;
        }
        next += k;
    }
    cx.line("}");
    Ok(())
}

fn copy(cx: &mut LowerCx<'_>, dst: &str, src: &str, n: usize, m: usize) -> Result<(), LowerError> {
    if n != m {
        return Err(cx.invalid(format!("branch output of {m} bytes for {n}")));
    }
    if n > 0 {
        cx.line(format!("memcpy({dst}, {src}, {n});"));
    }
    Ok(())
}
