//! Scheduling: grouping op nodes into kernels (fusion rules of the lowering registry), a
//! topological order of the kernels, and where every value lives (graph input, graph output,
//! activation arena, weights blob).
//!
//! The arena is laid out by the memory planner ([`crate::plan::memory::plan`]) run on a proxy
//! graph with one node per kernel, so a kernel's outputs never share bytes with anything it
//! reads (its inputs are live at its step), even when it fuses several nodes. Graph outputs are
//! written straight into the caller's output buffers; a graph output that is a graph input, a
//! constant or a second name of another output is copied at the end of `model_run`.
//!
//! Guarded nodes (the inlined branches of an `If`, see [`super::lower::control`]): a kernel
//! holds nodes of one guard only, runs after the kernels computing its guard's conditions,
//! and keeps those conditions live in the arena until it has run.
//!
//! **Views.** A node whose output is a contiguous byte range of its input — `Identity`,
//! `Reshape`, `Flatten`, `Squeeze`, `Unsqueeze`, and a `Slice` whose kept region is contiguous
//! (e.g. a channel range of a batch-1 NCHW tensor, what pruning with channel reordering
//! produces) — gets no kernel when its input lives in the arena and its output is not a graph
//! output: the output is the input's bytes at an offset ([`Schedule::views`]). Its readers count
//! as readers of the input in the arena plan, so the bytes stay live as long as any view is read.

use super::lower::control::{Guard, Guards};
use super::lower::{op_key, FuseCx, Registry};
use crate::plan::memory::{plan, MemoryPlan, Order, PlanError, PlanOptions};
use petasos_ir::graph::{Graph, Provenance, ValueRef};
use petasos_ir::ops::core::Opaque;
use petasos_ir::shape::ValueType;
use petgraph::stable_graph::NodeIndex;
use std::collections::{BTreeSet, HashMap, HashSet};

/// Where a value lives at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loc {
    /// The caller's input buffer `i`.
    Input(usize),
    /// The caller's output buffer `i`.
    Output(usize),
    /// The activation arena at this byte offset.
    Arena(u64),
    /// A constant: index into [`Schedule::constants`].
    Weight(usize),
}

/// One kernel: a node or a fused chain, anchor first.
#[derive(Clone, Debug)]
pub struct Kernel {
    pub nodes: Vec<NodeIndex>,
}

/// The result of [`schedule`].
#[derive(Debug)]
pub struct Schedule {
    /// Kernels in execution order.
    pub kernels: Vec<Kernel>,
    /// Where each value read or written by a kernel, or output by the graph, lives.
    pub loc: HashMap<ValueRef, Loc>,
    /// Constant nodes used, in order of first use (their weights-blob order).
    pub constants: Vec<NodeIndex>,
    /// Graph outputs copied at the end of the run: (output index, source).
    pub output_copies: Vec<(usize, Loc)>,
    /// The arena plan over kernels (step `i` = kernel `i`).
    pub plan: MemoryPlan,
    /// Per kernel (in execution order), the guard it runs under (empty: always).
    pub guards: Vec<Guard>,
    /// Nodes lowered as views (no kernel, no copy): their outputs alias their input's bytes.
    pub views: Vec<NodeIndex>,
}

/// The byte offset of node `n`'s output inside its input 0 when the output is a contiguous
/// range of the input's bytes in the same dtype (see the module docs), else `None`.
fn view_offset(g: &Graph, n: NodeIndex) -> Option<u64> {
    use petasos_ir::ops::shape_ops::slice::{slice_axis, Slice};
    let node = &g.g[n];
    if !node.op.domain().is_empty() || node.outputs.len() != 1 || !node.captures.is_empty() {
        return None;
    }
    let x = g.node_inputs(n).into_iter().next()??;
    let xt = g.value_type(x)?;
    let yt = &node.outputs[0].ty;
    if xt.dtype != yt.dtype || xt.dtype.bits() % 8 != 0 {
        return None;
    }
    let xs = petasos_ir::shape::shape_known(xt.shape.as_ref()?)?;
    let ys = petasos_ir::shape::shape_known(yt.shape.as_ref()?)?;
    match node.op.op_type() {
        "Identity" | "Reshape" | "Flatten" | "Squeeze" | "Unsqueeze" => {
            (xs.iter().product::<usize>() == ys.iter().product::<usize>()).then_some(0)
        }
        "Slice" => {
            let sl = node.op.as_any().downcast_ref::<Slice>()?;
            let ints = |i: usize| -> Option<Option<Vec<i64>>> {
                match g.node_inputs(n).get(i).copied().flatten() {
                    None => Some(None),
                    Some(v) => Some(Some(
                        g.constant(v.node)?.to_tensor().ok()?.to_i64_vec().ok()?,
                    )),
                }
            };
            let (st, en, ax, sp) = match &sl.attr_form {
                Some((s, e, a)) => (s.clone(), e.clone(), a.clone(), None),
                None => (ints(1)??, ints(2)??, ints(3)?, ints(4)?),
            };
            let r = xs.len();
            let (mut start, mut count) = (vec![0usize; r], xs.clone());
            for (i, &st_i) in st.iter().enumerate() {
                let a = ax.as_ref().map_or(Some(i as i64), |v| v.get(i).copied())?;
                let a = if a < 0 { a + r as i64 } else { a };
                let a = usize::try_from(a).ok().filter(|&a| a < r)?;
                let step = sp.as_ref().map_or(Some(1), |v| v.get(i).copied())?;
                let s = slice_axis(st_i, *en.get(i)?, step, xs[a]).ok()?;
                if step != 1 && s.count > 1 {
                    return None;
                }
                start[a] = s.start;
                count[a] = s.count;
            }
            if count != ys {
                return None;
            }
            // Contiguous: axes before the first partial one hold one index, axes after it are whole.
            let k = (0..r).find(|&a| count[a] != xs[a]).unwrap_or(r);
            if (0..k).any(|a| count[a] != 1 && xs[a] != 1) || (k + 1..r).any(|a| count[a] != xs[a])
            {
                return None;
            }
            let mut stride = 1usize;
            let mut off = 0usize;
            for a in (0..r).rev() {
                off += start[a] * stride;
                stride *= xs[a];
            }
            Some((off * (xt.dtype.bits() / 8)) as u64)
        }
        _ => None,
    }
}

/// Errors scheduling.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Ir(#[from] petasos_ir::Error),
    #[error("the kernel graph has a cycle (a fusion rule absorbed a node it must not)")]
    Cycle,
}

fn is_leaf(g: &Graph, n: NodeIndex) -> bool {
    matches!(g.g[n].op.op_type(), "Input" | "Constant")
}

/// Groups, orders and places the values of `g` (every value must have a static shape).
pub fn schedule(g: &Graph, reg: &Registry) -> Result<Schedule, ScheduleError> {
    schedule_guarded(g, reg, &Guards::default())
}

/// [`schedule`] for a graph whose nodes run under `guards`.
pub fn schedule_guarded(
    g: &Graph,
    reg: &Registry,
    guards: &Guards,
) -> Result<Schedule, ScheduleError> {
    let topo = g.topo_order()?;
    let pos: HashMap<NodeIndex, usize> = topo.iter().enumerate().map(|(i, &n)| (n, i)).collect();
    let graph_outputs: HashSet<ValueRef> = g.outputs.iter().map(|o| o.value).collect();

    // 1. Grouping.
    let mut taken: HashSet<NodeIndex> = HashSet::new();
    let mut kernels: Vec<Kernel> = Vec::new();
    for &n in &topo {
        if is_leaf(g, n) || taken.contains(&n) {
            continue;
        }
        taken.insert(n);
        let mut nodes = vec![n];
        if let Some(f) = reg.fusion_rule(&op_key(&g.g[n])) {
            let cx = FuseCx {
                g,
                anchor: n,
                taken: &taken,
                graph_outputs: &graph_outputs,
            };
            let chain = f(&cx);
            for m in chain {
                // A kernel runs under one guard: the chain stops where the guard changes.
                if guards.of(m) != guards.of(n) {
                    break;
                }
                if m != n && !is_leaf(g, m) && !taken.contains(&m) {
                    nodes.push(m);
                }
            }
            taken.extend(nodes.iter().copied());
        }
        kernels.push(Kernel { nodes });
    }

    // 2. Order: Kahn over kernels, smallest anchor position first.
    let mut kernel_of: HashMap<NodeIndex, usize> = HashMap::new();
    for (k, ker) in kernels.iter().enumerate() {
        for &n in &ker.nodes {
            kernel_of.insert(n, k);
        }
    }
    let mut succ: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); kernels.len()];
    let mut indeg = vec![0usize; kernels.len()];
    for (k, ker) in kernels.iter().enumerate() {
        let mut preds = BTreeSet::new();
        for &n in &ker.nodes {
            let conds = guards.of(ker.nodes[0]).iter().map(|c| Some(c.0));
            for v in g.node_inputs(n).into_iter().chain(conds).flatten() {
                if let Some(&p) = kernel_of.get(&v.node) {
                    if p != k {
                        preds.insert(p);
                    }
                }
            }
        }
        for p in preds {
            if succ[p].insert(k) {
                indeg[k] += 1;
            }
        }
    }
    let mut ready: BTreeSet<(usize, usize)> = (0..kernels.len())
        .filter(|&k| indeg[k] == 0)
        .map(|k| (pos[&kernels[k].nodes[0]], k))
        .collect();
    let mut order = Vec::with_capacity(kernels.len());
    while let Some(first) = ready.pop_first() {
        let k = first.1;
        order.push(k);
        for &s in &succ[k] {
            indeg[s] -= 1;
            if indeg[s] == 0 {
                ready.insert((pos[&kernels[s].nodes[0]], s));
            }
        }
    }
    if order.len() != kernels.len() {
        return Err(ScheduleError::Cycle);
    }
    let kernels: Vec<Kernel> = order.iter().map(|&k| kernels[k].clone()).collect();

    // 3. Homes of graph outputs, inputs, constants.
    let mut loc: HashMap<ValueRef, Loc> = HashMap::new();
    for (i, &n) in g.inputs.iter().enumerate() {
        loc.insert(ValueRef { node: n, out: 0 }, Loc::Input(i));
    }
    let mut constants = Vec::new();
    let mut use_const = |v: ValueRef, loc: &mut HashMap<ValueRef, Loc>| {
        if g.constant(v.node).is_some() && !loc.contains_key(&v) {
            loc.insert(v, Loc::Weight(constants.len()));
            constants.push(v.node);
        }
    };
    for ker in &kernels {
        for &n in &ker.nodes {
            for v in g.node_inputs(n).into_iter().flatten() {
                use_const(v, &mut loc);
            }
        }
    }
    let mut output_copies = Vec::new();
    for (i, o) in g.outputs.iter().enumerate() {
        use_const(o.value, &mut loc);
        match loc.get(&o.value) {
            Some(&src) => output_copies.push((i, src)),
            None => {
                loc.insert(o.value, Loc::Output(i));
            }
        }
    }

    // 4. Views: single-node kernels whose output is a byte range of an arena-resident value.
    let mut alias: HashMap<ValueRef, (ValueRef, u64)> = HashMap::new();
    let mut views = Vec::new();
    let produced: HashSet<NodeIndex> = kernels.iter().flat_map(|k| k.nodes.clone()).collect();
    let mut kept = Vec::with_capacity(kernels.len());
    for ker in kernels {
        let n = ker.nodes[0];
        let out = ValueRef { node: n, out: 0 };
        let view = (ker.nodes.len() == 1 && !loc.contains_key(&out))
            .then(|| view_offset(g, n))
            .flatten()
            .and_then(|off| {
                let x = g.node_inputs(n).into_iter().next()??;
                let (root, base) = alias.get(&x).copied().unwrap_or((x, 0));
                (produced.contains(&root.node) && !loc.contains_key(&root))
                    .then_some((root, base + off))
            });
        match view {
            Some(a) => {
                alias.insert(out, a);
                views.push(n);
            }
            None => kept.push(ker),
        }
    }
    let kernels = kept;

    // 5. The arena: a proxy graph with one node per kernel.
    let mut proxy = Graph::new("kernels");
    let mut proxy_of: HashMap<ValueRef, ValueRef> = HashMap::new();
    let mut back: HashMap<ValueRef, ValueRef> = HashMap::new();
    for (k, ker) in kernels.iter().enumerate() {
        let mut outs: Vec<(ValueRef, ValueType)> = Vec::new();
        let mut ins: Vec<ValueRef> = Vec::new();
        for &n in &ker.nodes {
            let conds = guards.of(ker.nodes[0]).iter().map(|c| Some(c.0));
            for v in g.node_inputs(n).into_iter().chain(conds).flatten() {
                let v = alias.get(&v).map_or(v, |a| a.0);
                if let Some(&pv) = proxy_of.get(&v) {
                    if !ins.contains(&pv) {
                        ins.push(pv);
                    }
                }
            }
            for (i, val) in g.g[n].outputs.iter().enumerate() {
                let v = ValueRef { node: n, out: i };
                if !loc.contains_key(&v) {
                    outs.push((v, val.ty.clone()));
                }
            }
        }
        let names: Vec<String> = (0..outs.len()).map(|i| format!("k{k}_{i}")).collect();
        let op = Opaque {
            op_type: "Kernel".into(),
            domain: String::new(),
            attributes: Vec::new(),
            declared: Vec::new(),
            reason: String::new(),
            raw_attrs: Vec::new(),
        };
        let pn = proxy.add_node(Box::new(op), ins.len(), &names, Provenance::default());
        for (slot, pv) in ins.iter().enumerate() {
            proxy.connect(*pv, pn, slot);
        }
        for (i, (v, ty)) in outs.into_iter().enumerate() {
            proxy.g[pn].outputs[i].ty = ty;
            let pv = ValueRef { node: pn, out: i };
            proxy_of.insert(v, pv);
            back.insert(pv, v);
        }
    }
    let opts = PlanOptions {
        order: Order::Insertion,
        ..PlanOptions::default()
    };
    let p = plan(&proxy, &opts)?;
    for b in &p.buffers {
        if let Some(&v) = back.get(&b.value) {
            loc.insert(v, Loc::Arena(b.offset));
        }
    }
    for (&v, &(root, off)) in &alias {
        if let Some(&Loc::Arena(base)) = loc.get(&root) {
            loc.insert(v, Loc::Arena(base + off));
        }
    }
    let guards = kernels
        .iter()
        .map(|k| guards.of(k.nodes[0]).to_vec())
        .collect();
    Ok(Schedule {
        guards,
        kernels,
        loc,
        constants,
        output_copies,
        plan: p,
        views,
    })
}
