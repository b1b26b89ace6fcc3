//! Static memory planning: activation liveness in execution order, an arena with an offset per
//! buffer, and the memory figures derived from them (peak activation, weights, KV cache).
//!
//! The model:
//! - **Steps.** The execution order is [`Graph::topo_order`] (the order the interpreter runs;
//!   [`Order::Insertion`] follows creation order instead) restricted to op nodes; step `i` runs `order[i]`. `Input` and `Constant` nodes are not
//!   steps.
//! - **Buffers.** Every output of an op node and every `Input` node (formal inputs and subgraph
//!   captures) is one buffer. Constants are weights, never buffers. A buffer is live from its
//!   first step (`first`: the defining step; 0 for graph inputs) to its last (`last`: the last
//!   step that reads it; the final step for graph outputs; `first` when nothing reads it, since
//!   the op still writes it). A node holding subgraphs reads its captures through its trailing
//!   input slots, so captures count as uses of the outer values; the subgraphs' own activations
//!   are planned separately (call [`plan`] on the subgraph).
//! - **Sizes.** From inferred types: symbolic dims take their value from [`PlanOptions::dims`],
//!   any other symbol counts as 1 and is listed in [`MemoryPlan::assumed_dims`]; sub-byte types
//!   are packed. A value whose rank is unknown has size 0 and is listed in
//!   [`MemoryPlan::unsized_values`].
//! - **Arena.** Two strategies; by default both run and the smaller arena is kept.
//!   *Greedy by size*: buffers are placed largest first, each at the best-fitting (smallest
//!   sufficient) gap, or the first, among the buffers already placed whose live intervals
//!   overlap its own. Overlapping placed buffers are found with a segment tree over the buffers
//!   sorted by first step (max `last` per node), so the cost is `O((n + P) log n)` with `P` the
//!   number of overlapping pairs, never a pass over all buffers per buffer. *Sweep*: walk the
//!   steps, allocate each buffer at its first step from a coalescing free list (best or first
//!   fit, growing the arena when nothing fits), free it after its last step: `O(n log n)`.
//!
//! Invariants of a [`MemoryPlan`] (checked by the replay test): two buffers whose live intervals
//! intersect occupy disjoint byte ranges `[offset, offset + bytes)`; every read of a buffer
//! happens at a step in `first..=last`; `arena_bytes >= max_live_bytes` (the largest live set is
//! a lower bound no arena can beat).

use petasos_ir::graph::ValueRef;
use petasos_ir::shape::{Dim, ValueType};
use petasos_ir::Graph;
use petgraph::stable_graph::NodeIndex;
use petgraph::visit::EdgeRef;
use petgraph::Direction;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// Errors planning memory.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The graph is not a DAG (or another IR error).
    #[error(transparent)]
    Ir(#[from] petasos_ir::Error),
    /// A value's size does not fit in 64 bits with the given dims.
    #[error("value '{name}' is too large to plan ({ty} with the given dims)")]
    TooLarge { name: String, ty: String },
    /// A KV-cache tensor whose rank is unknown.
    #[error("KV-cache tensor '{0}' has no known shape (expected [batch, heads, T, head_dim])")]
    KvShape(String),
}

/// How a buffer is placed among the gaps left by overlapping buffers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum Fit {
    /// The smallest gap that holds it (lower arena on most graphs).
    #[default]
    Best,
    /// The lowest gap that holds it.
    First,
}

/// How offsets are assigned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum Strategy {
    /// Both below; keeps the smaller arena (greedy by size on ties).
    #[default]
    Auto,
    /// Offline: largest buffer first, each in a gap among the placed buffers it overlaps in time.
    GreedyBySize,
    /// Online: walk the steps, allocate each buffer at its first step from a free list (largest
    /// first within a step), release it after its last step.
    Sweep,
}

/// Which topological order the steps follow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum Order {
    /// [`Graph::topo_order`]: the order the interpreter runs (depth-first; it may hoist
    /// weight-only work such as a transposed tied embedding to the start).
    #[default]
    Graph,
    /// Kahn's algorithm taking the ready node created first: the importer's file order or the
    /// builder's program order, where valid.
    Insertion,
}

/// Options of [`plan`].
#[derive(Clone, Debug)]
pub struct PlanOptions {
    /// Values of symbolic dims (`batch`, `S`, `T`, ...). Default: `batch` = 1.
    pub dims: HashMap<String, u64>,
    /// Every offset is a multiple of this (bytes, ≥ 1); buffers occupy their size rounded up to
    /// it. Default 64 (a cache line).
    pub alignment: u64,
    /// Gap choice (both strategies).
    pub fit: Fit,
    /// Offset assignment.
    pub strategy: Strategy,
    /// Execution order.
    pub order: Order,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            dims: HashMap::from([("batch".to_string(), 1)]),
            alignment: 64,
            fit: Fit::Best,
            strategy: Strategy::Auto,
            order: Order::Graph,
        }
    }
}

impl PlanOptions {
    /// These options with symbolic dim `name` set to `value`.
    pub fn with_dim(mut self, name: &str, value: u64) -> Self {
        self.dims.insert(name.to_string(), value);
        self
    }
}

/// What a buffer holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum BufferKind {
    /// A graph input (or subgraph capture): live from step 0.
    Input,
    /// An op output read only inside the graph.
    Intermediate,
    /// An op output that is a graph output: live to the last step.
    Output,
}

/// One activation buffer and its place in the arena.
#[derive(Clone, Debug, Serialize)]
pub struct Buffer {
    /// The value it holds.
    #[serde(skip)]
    pub value: ValueRef,
    /// The value's name.
    pub name: String,
    pub kind: BufferKind,
    /// Exact size in bytes (0 when the shape is unknown).
    pub bytes: u64,
    /// First step at which it is live (its defining step; 0 for inputs).
    pub first: usize,
    /// Last step at which it is live (inclusive).
    pub last: usize,
    /// Byte offset in the arena (a multiple of the alignment; 0 for empty buffers).
    pub offset: u64,
}

/// The result of [`plan`].
#[derive(Clone, Debug, Serialize)]
pub struct MemoryPlan {
    /// Op nodes in execution order; step `i` runs `order[i]`.
    #[serde(skip)]
    pub order: Vec<NodeIndex>,
    /// Every activation buffer, in order of definition (inputs first).
    pub buffers: Vec<Buffer>,
    /// Arena size: the peak activation memory of this plan.
    pub arena_bytes: u64,
    /// The strategy whose offsets were kept (never `Auto`).
    pub strategy: Strategy,
    /// Largest sum of live bytes at one step: the lower bound of any arena.
    pub max_live_bytes: u64,
    /// The step where `max_live_bytes` is reached.
    pub peak_step: usize,
    /// Sum of all buffer sizes (the arena without reuse).
    pub naive_bytes: u64,
    /// Bytes of all constants at their stored width (subgraphs included).
    pub weight_bytes: u64,
    /// Live bytes at each step (at least one step, even for a graph without ops).
    pub timeline: Vec<u64>,
    /// Symbols not in the options' dims, counted as 1.
    pub assumed_dims: BTreeMap<String, u64>,
    /// Values of unknown rank, planned with size 0.
    pub unsized_values: Vec<String>,
}

impl MemoryPlan {
    /// Number of steps (length of the timeline).
    pub fn steps(&self) -> usize {
        self.timeline.len()
    }
}

/// Plans the activations of `g` (see the module docs for the model and the invariants).
///
/// Errors: a cycle in the graph; a value too large for 64-bit sizes.
pub fn plan(g: &Graph, opts: &PlanOptions) -> Result<MemoryPlan, PlanError> {
    let topo = match opts.order {
        Order::Graph => g.topo_order()?,
        Order::Insertion => insertion_order(g)?,
    };
    let is_leaf = |n: NodeIndex| matches!(g.g[n].op.op_type(), "Input" | "Constant");
    let order: Vec<NodeIndex> = topo.iter().copied().filter(|&n| !is_leaf(n)).collect();
    let steps = order.len().max(1);
    let mut step_of: HashMap<NodeIndex, usize> = HashMap::with_capacity(order.len());
    for (i, &n) in order.iter().enumerate() {
        step_of.insert(n, i);
    }
    let outputs: std::collections::HashSet<ValueRef> = g.outputs.iter().map(|o| o.value).collect();

    let mut assumed = BTreeMap::new();
    let mut unsized_values = Vec::new();
    let mut buffers = Vec::new();
    // Inputs first (live from step 0), then op outputs in execution order.
    let inputs = topo
        .iter()
        .copied()
        .filter(|&n| g.g[n].op.op_type() == "Input");
    let defs = inputs
        .map(|n| (n, 0usize))
        .chain(order.iter().enumerate().map(|(i, &n)| (n, i)));
    for (n, first) in defs {
        let node = &g.g[n];
        let is_input = node.op.op_type() == "Input";
        for (out, v) in node.outputs.iter().enumerate() {
            let value = ValueRef { node: n, out };
            let bytes = match value_bytes(&v.ty, &opts.dims, &mut assumed) {
                Ok(Some(b)) => b,
                Ok(None) => {
                    unsized_values.push(v.name.clone());
                    0
                }
                Err(()) => {
                    return Err(PlanError::TooLarge {
                        name: v.name.clone(),
                        ty: v.ty.to_string(),
                    })
                }
            };
            let mut last = first;
            for e in g.g.edges_directed(n, Direction::Outgoing) {
                if e.weight().src_out == out {
                    if let Some(&s) = step_of.get(&e.target()) {
                        last = last.max(s);
                    }
                }
            }
            let is_output = outputs.contains(&value);
            if is_output {
                last = steps - 1;
            }
            let kind = if is_input {
                BufferKind::Input
            } else if is_output {
                BufferKind::Output
            } else {
                BufferKind::Intermediate
            };
            buffers.push(Buffer {
                value,
                name: v.name.clone(),
                kind,
                bytes,
                first,
                last,
                offset: 0,
            });
        }
    }

    // Live bytes per step by a difference array.
    let mut diff = vec![0i128; steps + 1];
    for b in &buffers {
        diff[b.first] += b.bytes as i128;
        diff[b.last + 1] -= b.bytes as i128;
    }
    let mut timeline = Vec::with_capacity(steps);
    let mut acc = 0i128;
    for d in &diff[..steps] {
        acc += d;
        timeline.push(acc as u64);
    }
    let (peak_step, max_live_bytes) = timeline
        .iter()
        .copied()
        .enumerate()
        .fold((0, 0), |m, (i, v)| if v > m.1 { (i, v) } else { m });

    let align = opts.alignment.max(1);
    let (arena_bytes, strategy) = match opts.strategy {
        Strategy::GreedyBySize => (
            greedy_by_size(&mut buffers, align, opts.fit),
            Strategy::GreedyBySize,
        ),
        Strategy::Sweep => (sweep(&mut buffers, steps, align, opts.fit), Strategy::Sweep),
        Strategy::Auto => {
            let mut other = buffers.clone();
            let a = greedy_by_size(&mut buffers, align, opts.fit);
            let b = sweep(&mut other, steps, align, opts.fit);
            if b < a {
                buffers = other;
                (b, Strategy::Sweep)
            } else {
                (a, Strategy::GreedyBySize)
            }
        }
    };
    let naive_bytes = buffers.iter().map(|b| b.bytes).sum();
    Ok(MemoryPlan {
        order,
        buffers,
        arena_bytes,
        strategy,
        max_live_bytes,
        peak_step,
        naive_bytes,
        weight_bytes: weight_bytes(g),
        timeline,
        assumed_dims: assumed,
        unsized_values,
    })
}

/// A topological order of `g` preferring the earliest-created ready node; errors on a cycle.
fn insertion_order(g: &Graph) -> Result<Vec<NodeIndex>, PlanError> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let mut indeg: HashMap<NodeIndex, usize> = HashMap::with_capacity(g.g.node_count());
    let mut ready = BinaryHeap::new();
    for n in g.g.node_indices() {
        let d = g.g.edges_directed(n, Direction::Incoming).count();
        if d == 0 {
            ready.push(Reverse(n));
        }
        indeg.insert(n, d);
    }
    let mut out = Vec::with_capacity(indeg.len());
    while let Some(Reverse(n)) = ready.pop() {
        out.push(n);
        for e in g.g.edges_directed(n, Direction::Outgoing) {
            if let Some(d) = indeg.get_mut(&e.target()) {
                *d -= 1;
                if *d == 0 {
                    ready.push(Reverse(e.target()));
                }
            }
        }
    }
    if out.len() < indeg.len() {
        // Let the graph's own order name a node on the cycle.
        g.topo_order()?;
    }
    Ok(out)
}

/// Bytes of all constants of `g` and its subgraphs at their stored width.
pub fn weight_bytes(g: &Graph) -> u64 {
    let mut s = 0u64;
    for n in g.g.node_indices() {
        if let Some(c) = g.constant(n) {
            s += c.nbytes() as u64;
        }
        for sg in g.g[n].op.subgraphs() {
            s += weight_bytes(sg);
        }
    }
    s
}

/// Greedy-by-size placement; sets every buffer's offset and returns the arena size.
fn greedy_by_size(buffers: &mut [Buffer], align: u64, fit: Fit) -> u64 {
    let size = |b: &Buffer| b.bytes.div_ceil(align) * align;
    // Buffers sorted by first step: the index space of the segment tree.
    let mut by_first: Vec<usize> = (0..buffers.len())
        .filter(|&i| buffers[i].bytes > 0)
        .collect();
    by_first.sort_by_key(|&i| (buffers[i].first, i));
    let mut pos = vec![usize::MAX; buffers.len()];
    for (p, &i) in by_first.iter().enumerate() {
        pos[i] = p;
    }
    let firsts: Vec<usize> = by_first.iter().map(|&i| buffers[i].first).collect();
    let mut tree = MaxTree::new(by_first.len());
    // (offset, end) of each placed buffer, by position in `by_first`.
    let mut placed = vec![(0u64, 0u64); by_first.len()];

    let mut by_size = by_first.clone();
    by_size.sort_by_key(|&i| (std::cmp::Reverse(size(&buffers[i])), buffers[i].first, i));
    let mut arena = 0u64;
    let mut found = Vec::new();
    let mut spans: Vec<(u64, u64)> = Vec::new();
    for &i in &by_size {
        let (first, last, sz) = (buffers[i].first, buffers[i].last, size(&buffers[i]));
        // Placed buffers with first <= last(i) (a prefix) and last >= first(i).
        let prefix = firsts.partition_point(|&f| f <= last);
        found.clear();
        tree.collect(prefix, first as i64, &mut found);
        spans.clear();
        spans.extend(found.iter().map(|&p| placed[p]));
        spans.sort_unstable();
        let mut end = 0u64;
        let mut best: Option<(u64, u64)> = None; // (gap, offset)
        for &(o, e) in &spans {
            if o > end {
                let gap = o - end;
                if gap >= sz && best.is_none_or(|(g, _)| gap < g) {
                    best = Some((gap, end));
                    if fit == Fit::First {
                        break;
                    }
                }
            }
            end = end.max(e);
        }
        let offset = best.map_or(end, |(_, o)| o);
        buffers[i].offset = offset;
        placed[pos[i]] = (offset, offset + sz);
        arena = arena.max(offset + sz);
        tree.set(pos[i], last as i64);
    }
    arena
}

/// Sweep placement over the steps with a coalescing free list; sets every buffer's offset and
/// returns the arena size. `O(n log n)` for best fit (first fit scans the free blocks).
fn sweep(buffers: &mut [Buffer], steps: usize, align: u64, fit: Fit) -> u64 {
    use std::collections::{BTreeMap, BTreeSet};
    let size = |b: &Buffer| b.bytes.div_ceil(align) * align;
    let mut starts: Vec<Vec<usize>> = vec![Vec::new(); steps];
    let mut ends: Vec<Vec<usize>> = vec![Vec::new(); steps];
    for (i, b) in buffers.iter().enumerate() {
        if b.bytes > 0 {
            starts[b.first].push(i);
            ends[b.last].push(i);
        }
    }
    let mut free: BTreeMap<u64, u64> = BTreeMap::new(); // offset -> size
    let mut by_size: BTreeSet<(u64, u64)> = BTreeSet::new(); // (size, offset)
    let (mut top, mut arena) = (0u64, 0u64);
    for t in 0..steps {
        let mut here = std::mem::take(&mut starts[t]);
        here.sort_by_key(|&i| (std::cmp::Reverse(size(&buffers[i])), i));
        for i in here {
            let sz = size(&buffers[i]);
            let block = match fit {
                Fit::Best => by_size.range((sz, 0)..).next().map(|&(s, o)| (o, s)),
                Fit::First => free.iter().find(|(_, &s)| s >= sz).map(|(&o, &s)| (o, s)),
            };
            let offset = match block {
                Some((o, s)) => {
                    free.remove(&o);
                    by_size.remove(&(s, o));
                    if s > sz {
                        free.insert(o + sz, s - sz);
                        by_size.insert((s - sz, o + sz));
                    }
                    o
                }
                None => {
                    // Grow the arena, starting inside a free block that reaches the top.
                    let o = match free.last_key_value() {
                        Some((&o, &s)) if o + s == top => {
                            free.remove(&o);
                            by_size.remove(&(s, o));
                            o
                        }
                        _ => top,
                    };
                    top = o + sz;
                    o
                }
            };
            buffers[i].offset = offset;
            arena = arena.max(offset + sz);
        }
        for &i in &ends[t] {
            let (mut o, mut s) = (buffers[i].offset, size(&buffers[i]));
            if let Some((&po, &ps)) = free.range(..o).next_back() {
                if po + ps == o {
                    free.remove(&po);
                    by_size.remove(&(ps, po));
                    o = po;
                    s += ps;
                }
            }
            if let Some((&no, &ns)) = free.range(o + s..).next() {
                if o + s == no {
                    free.remove(&no);
                    by_size.remove(&(ns, no));
                    s += ns;
                }
            }
            if o + s == top {
                top = o;
            } else {
                free.insert(o, s);
                by_size.insert((s, o));
            }
        }
    }
    arena
}

/// A segment tree over positions `0..n` holding, per position, the `last` step of a placed
/// buffer (-1 while unplaced) and, per node, the maximum below it.
struct MaxTree {
    n: usize,
    t: Vec<i64>,
}

impl MaxTree {
    fn new(n: usize) -> MaxTree {
        MaxTree {
            n,
            t: vec![-1; 4 * n.max(1)],
        }
    }

    fn set(&mut self, p: usize, v: i64) {
        self.set_at(1, 0, self.n, p, v);
    }

    fn set_at(&mut self, node: usize, lo: usize, hi: usize, p: usize, v: i64) {
        if hi - lo == 1 {
            self.t[node] = v;
            return;
        }
        let mid = (lo + hi) / 2;
        if p < mid {
            self.set_at(2 * node, lo, mid, p, v);
        } else {
            self.set_at(2 * node + 1, mid, hi, p, v);
        }
        self.t[node] = self.t[2 * node].max(self.t[2 * node + 1]);
    }

    /// Pushes every position `< prefix` whose value is `>= min` onto `out`.
    fn collect(&self, prefix: usize, min: i64, out: &mut Vec<usize>) {
        if self.n > 0 {
            self.collect_at(1, 0, self.n, prefix, min, out);
        }
    }

    fn collect_at(
        &self,
        node: usize,
        lo: usize,
        hi: usize,
        prefix: usize,
        min: i64,
        out: &mut Vec<usize>,
    ) {
        if lo >= prefix || self.t[node] < min {
            return;
        }
        if hi - lo == 1 {
            out.push(lo);
            return;
        }
        let mid = (lo + hi) / 2;
        self.collect_at(2 * node, lo, mid, prefix, min, out);
        self.collect_at(2 * node + 1, mid, hi, prefix, min, out);
    }
}

/// Bytes of a value of type `t`: `Ok(None)` when its rank is unknown, `Err` on overflow.
fn value_bytes(
    t: &ValueType,
    dims: &HashMap<String, u64>,
    assumed: &mut BTreeMap<String, u64>,
) -> Result<Option<u64>, ()> {
    let Some(shape) = &t.shape else {
        return Ok(None);
    };
    let mut n: u128 = 1;
    for d in shape {
        n = n
            .checked_mul(dim_value(d, dims, assumed)? as u128)
            .ok_or(())?;
    }
    let bytes = (n.checked_mul(t.dtype.bits() as u128).ok_or(())?).div_ceil(8);
    u64::try_from(bytes).map(Some).map_err(|_| ())
}

/// The value of `d` with symbols bound by `dims` (others count as 1 and are recorded in
/// `assumed`). `Err` on overflow or an expression with no value (division by zero, negative).
fn dim_value(
    d: &Dim,
    dims: &HashMap<String, u64>,
    assumed: &mut BTreeMap<String, u64>,
) -> Result<u64, ()> {
    d.bind(&mut |n| {
        dims.get(n).copied().unwrap_or_else(|| {
            assumed.insert(n.to_string(), 1);
            1
        })
    })
    .known()
    .ok_or(())
}

/// The KV cache of a decoder at a given context length.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct KvCache {
    /// Number of cache tensors (one K and one V per cache-owning layer).
    pub tensors: usize,
    /// Elements stored per token over all tensors (batch 1).
    pub elements_per_token: u64,
    /// Bytes at the given context and bit width, sub-byte widths packed.
    pub bytes: u64,
}

/// Whether a graph input names a KV-cache tensor (`past_key.N`, `past_value.N`,
/// `past_key_values.N.key`, ...).
fn is_past(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.starts_with("past_key") || n.starts_with("past_value")
}

/// Whether a graph output names a new KV-cache tensor (`present_key.N`, `present.N.value`, ...).
fn is_present(name: &str) -> bool {
    name.to_ascii_lowercase().starts_with("present")
}

/// The KV cache of decoder `g` holding `context` tokens at `kv_bits` bits per element, batch 1.
///
/// The cache tensors are the graph inputs named `past_key*` / `past_value*` (the decode-phase
/// graph), else the graph outputs named `present*` (a prefill graph); each is laid out
/// `[batch, heads, T, head_dim]`, its second-to-last axis is the sequence, set to `context`, and
/// any other symbol counts as 1. A graph with neither (not a decoder) has an empty cache.
/// Layers that share another layer's cache have no input of their own, so sharing is counted.
pub fn kv_cache(g: &Graph, context: u64, kv_bits: u32) -> Result<KvCache, PlanError> {
    let mut tys: Vec<(&str, &ValueType)> = g
        .inputs
        .iter()
        .map(|&n| &g.g[n].outputs[0])
        .filter(|v| is_past(&v.name))
        .map(|v| (v.name.as_str(), &v.ty))
        .collect();
    if tys.is_empty() {
        tys = g
            .outputs
            .iter()
            .filter(|o| is_present(&o.name))
            .filter_map(|o| g.value_type(o.value).map(|t| (o.name.as_str(), t)))
            .collect();
    }
    let mut kv = KvCache {
        tensors: tys.len(),
        ..Default::default()
    };
    let none = HashMap::new();
    for (name, ty) in tys {
        let shape = match &ty.shape {
            Some(s) if s.len() >= 2 => s,
            _ => return Err(PlanError::KvShape(name.to_string())),
        };
        let seq = shape.len() - 2;
        let mut per_token = 1u64;
        for (i, d) in shape.iter().enumerate() {
            if i != seq {
                let v = dim_value(d, &none, &mut BTreeMap::new()).map_err(|()| {
                    PlanError::TooLarge {
                        name: name.to_string(),
                        ty: ty.to_string(),
                    }
                })?;
                per_token = per_token.saturating_mul(v);
            }
        }
        kv.elements_per_token = kv.elements_per_token.saturating_add(per_token);
    }
    let bits = (kv.elements_per_token as u128) * (context as u128) * (kv_bits as u128);
    kv.bytes = u64::try_from(bits.div_ceil(8)).unwrap_or(u64::MAX);
    Ok(kv)
}

/// Bytes of the KV cache of `g` at `context` tokens and `kv_bits` bits per element (see
/// [`kv_cache`]).
pub fn kv_cache_bytes(g: &Graph, context: u64, kv_bits: u32) -> Result<u64, PlanError> {
    Ok(kv_cache(g, context, kv_bits)?.bytes)
}
