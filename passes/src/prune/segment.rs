//! Segment analysis: which layers' channels are coupled, and whether they can be pruned.
//!
//! # What it does
//! Classifies the nodes of the top-level graph (vocabulary of `docs/upscale.md`):
//! - **layer** ([`layer`]): a `Conv` with `group` 1, a `ConvTranspose` with `group` 1, a `Gemm`
//!   (`transA` unset) or a `MatMul` with a 2-D right operand, whose weight is a constant. It is a
//!   **producer** of its output channels and a **consumer** of its input channels;
//! - **user**: maps channel `i` to channel `i`: unary elementwise ops and activations, `Clip`,
//!   `Cast`, `Identity`, `Dropout`, `BatchNormalization`, pools (global ones included), `Resize`,
//!   `Upsample`, a depthwise `Conv` (`group` == channels == output channels); and the merging
//!   users `Add`, `Sub`, `Mul`, `Div`, `Max`, `Min`, `Sum`, `Mean`, `Pow`, `PRelu`, whose other
//!   operands are constants or tensors with one channel;
//! - `Concat` on the channel axis composes its inputs' channels.
//!
//! Each producer starts a **block** of channels. A merging user that combines two tensors
//! identifies their blocks (they must have the same permutation); a `Concat` puts blocks side
//! by side. A [`Segment`] is a set of blocks joined that way, laid out in one channel space (each
//! distinct block at an offset, in topological order), with the users and consumers reading it.
//! A consumer reads a list of runs of that space (one run unless it reads a concatenation whose
//! order differs from the segment's layout).
//!
//! # When a segment is not prunable
//! Any other reader of a segment's tensor (`Reshape`/`Flatten` before a `Gemm`, `Slice`, a
//! grouped convolution, an unknown op, a graph output), a `Resize` given explicit `sizes`, a merge of tensors whose concat layouts
//! differ, or a consumer reading channels on another axis, makes the whole segment unprunable;
//! [`Segment::prunable`] names the first such reason and how many more there are.
//!
//! # Example
//! ```text
//! y1 = Conv(x, w1)  y2 = Conv(x, w2)  s = Add(y1, y2)  z = Conv(Relu(s), w3)
//! segments: {producers [y1, y2] (one block), users [Add, Relu], consumers [z at 0]},
//!           {producers [z], not prunable: graph output}
//! ```
//!
//! Subgraphs (If/Loop/Scan bodies) are not visited: a segment read by one is not prunable
//! only in so far as the reading node is an unknown op.

use crate::rewrite::node_name;
use petasos_ir::graph::ValueRef;
use petasos_ir::ops::linalg::matmul::{Gemm, MatMul};
use petasos_ir::ops::nn::conv::{Conv, ConvTranspose};
use petasos_ir::ops::shape_ops::layout::Concat;
use petasos_ir::{Dim, Graph};
use petgraph::stable_graph::NodeIndex;
use petgraph::unionfind::UnionFind;
use petgraph::visit::NodeIndexable;
use std::collections::{BTreeMap, HashMap};

/// Errors from the pruning analysis, heuristics and surgery. Each message names the thing at
/// fault and how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    /// The graph could not be analysed (a cycle, an undecodable weight) or does not infer or
    /// verify after surgery.
    #[error("pruning: {0}")]
    Ir(#[from] petasos_ir::Error),
    /// `amount` is not a fraction in `[0, 1)`.
    #[error(
        "pruning amount {0} is outside [0, 1): give the fraction of channels to drop, e.g. 0.3"
    )]
    Amount(f64),
    /// No consumer in a prunable segment.
    #[error("the graph has no prunable layer ({0}); pruning needs a Conv/Gemm/MatMul whose input channels come from another such layer")]
    NoPrunableLayer(String),
    /// An explicit mask names a node that is not a prunable consumer.
    #[error("no prunable layer is called '{name}' (prunable layers: {known}); use one of these names in the masks")]
    UnknownLayer { name: String, known: String },
    /// An explicit mask has the wrong length.
    #[error("mask for '{name}' has {got} entries, but the layer has {expected} input channels; give one entry per input channel")]
    MaskLength {
        name: String,
        expected: usize,
        got: usize,
    },
    /// An explicit mask keeps no channel.
    #[error("mask for '{0}' keeps no channel; keep at least one")]
    EmptyMask(String),
    /// A weight has an unexpected shape or dtype.
    #[error("layer '{name}': {msg}")]
    Weight { name: String, msg: String },
    /// The channel ordering rejected a segment's masks (a bug in the mask mapping).
    #[error("segment {segment}: {source}")]
    Order {
        segment: usize,
        #[source]
        source: super::order::OrderError,
    },
    /// Weight surgery could not rewrite a node.
    #[error("surgery on '{name}': {msg}")]
    Surgery { name: String, msg: String },
}

/// A layer whose weight mixes channels: a producer of its output channels and a consumer of
/// its input channels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layer {
    pub node: NodeIndex,
    /// The constant node holding the weight (input slot 1).
    pub weight: NodeIndex,
    /// The weight axis indexed by input channel (its columns).
    pub weight_in_axis: usize,
    /// The weight axis indexed by output channel (its rows).
    pub weight_out_axis: usize,
    pub in_channels: usize,
    pub out_channels: usize,
    /// The channel axis of the data input (slot 0), counted from the last axis (0 = last).
    pub in_axis_back: usize,
    /// The channel axis of the output, counted from the last axis.
    pub out_axis_back: usize,
}

/// A contiguous run of a segment's channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    pub offset: usize,
    pub len: usize,
}

/// Channels created by producers summed together (so they share one permutation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// Where the block sits in the segment's channel space.
    pub offset: usize,
    pub channels: usize,
    pub producers: Vec<NodeIndex>,
}

/// A consumer of a segment: which of the segment's channels its input columns are, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Consumer {
    pub node: NodeIndex,
    /// Its input columns, in order, as runs of the segment's channel space.
    pub runs: Vec<Run>,
}

impl Consumer {
    /// The offset of its input in the segment, when it reads one contiguous range.
    pub fn offset(&self) -> Option<usize> {
        match self.runs.as_slice() {
            [r] => Some(r.offset),
            _ => None,
        }
    }
    /// Number of input channels it reads.
    pub fn channels(&self) -> usize {
        self.runs.iter().map(|r| r.len).sum()
    }
}

/// Producers whose outputs are merged, with the users and consumers reading them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub id: usize,
    /// Size of the channel space (the blocks side by side).
    pub channels: usize,
    /// Every producer, in topological order.
    pub producers: Vec<NodeIndex>,
    /// The distinct blocks, by offset.
    pub blocks: Vec<Block>,
    /// Channel-preserving nodes reading the segment's tensors, in topological order.
    pub users: Vec<NodeIndex>,
    /// Per user (same order as `users`), the channels of the segment tensor it reads (its
    /// per-channel parameters follow this layout), as runs of the segment's channel space.
    pub user_runs: Vec<Vec<Run>>,
    pub consumers: Vec<Consumer>,
    /// `Err(reason)` when some reader keeps the channels from being pruned.
    pub prunable: Result<(), String>,
}

impl Segment {
    /// The consumer entry of `node`, if it reads this segment.
    pub fn consumer(&self, node: NodeIndex) -> Option<&Consumer> {
        self.consumers.iter().find(|c| c.node == node)
    }
}

/// `n` as a layer (producer and consumer), if it is one.
pub fn layer(g: &Graph, n: NodeIndex) -> Option<Layer> {
    let node = g.g.node_weight(n)?;
    let ins = g.node_inputs(n);
    let data = (*ins.first()?)?;
    let wref = (*ins.get(1)?)?;
    let w = g.constant(wref.node)?;
    let s = &w.shape;
    let data_rank = g.value_type(data)?.rank()?;
    let out_rank = node.outputs.first()?.ty.rank()?;
    let op = node.op.as_any();
    let (weight_in_axis, weight_out_axis, in_back, out_back) =
        if let Some(c) = op.downcast_ref::<Conv>() {
            if c.group != 1 || s.len() < 3 {
                return None;
            }
            (1, 0, data_rank.checked_sub(2)?, out_rank.checked_sub(2)?)
        } else if let Some(c) = op.downcast_ref::<ConvTranspose>() {
            if c.group != 1 || s.len() < 3 {
                return None;
            }
            (0, 1, data_rank.checked_sub(2)?, out_rank.checked_sub(2)?)
        } else if let Some(gm) = op.downcast_ref::<Gemm>() {
            if gm.trans_a || s.len() != 2 {
                return None;
            }
            let (i, o) = if gm.trans_b { (1, 0) } else { (0, 1) };
            (i, o, 0, 0)
        } else if op.downcast_ref::<MatMul>().is_some() {
            if s.len() != 2 || data_rank < 2 {
                return None;
            }
            (0, 1, 0, 0)
        } else {
            return None;
        };
    Some(Layer {
        node: n,
        weight: wref.node,
        weight_in_axis,
        weight_out_axis,
        in_channels: s[weight_in_axis],
        out_channels: s[weight_out_axis],
        in_axis_back: in_back,
        out_axis_back: out_back,
    })
}

/// Ops mapping channel `i` of input 0 to channel `i` of output 0 (other inputs are parameters).
const UNARY_USERS: &[&str] = &[
    "Relu",
    "LeakyRelu",
    "Sigmoid",
    "HardSigmoid",
    "HardSwish",
    "Tanh",
    "Elu",
    "Selu",
    "Celu",
    "Gelu",
    "Swish",
    "Mish",
    "Softplus",
    "Softsign",
    "ThresholdedRelu",
    "Shrink",
    "Clip",
    "Neg",
    "Abs",
    "Exp",
    "Log",
    "Sqrt",
    "Reciprocal",
    "Erf",
    "Floor",
    "Ceil",
    "Round",
    "Sin",
    "Cos",
    "Identity",
    "Dropout",
    "Cast",
    "BatchNormalization",
    "MaxPool",
    "AveragePool",
    "LpPool",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "GlobalLpPool",
    "Resize",
    "Upsample",
];

/// Elementwise ops combining several broadcast operands channel by channel.
const MERGING_USERS: &[&str] = &[
    "Add", "Sub", "Mul", "Div", "Max", "Min", "Sum", "Mean", "Pow", "PRelu",
];

/// Channels of a tensor: the channel axis (from the last) and the blocks along it.
#[derive(Clone, Debug)]
struct Layout {
    back: usize,
    blocks: Vec<usize>,
}

struct Walk<'a> {
    g: &'a Graph,
    layouts: HashMap<ValueRef, Layout>,
    /// Channel count per block (indexed by the producer's node index).
    channels: HashMap<usize, usize>,
    /// Blocks in creation (topological) order.
    created: Vec<usize>,
    /// Blocks with identical channels (summed together).
    same: UnionFind<usize>,
    /// Blocks in one segment.
    seg: UnionFind<usize>,
    reasons: Vec<(usize, String)>,
    users: Vec<(Vec<usize>, NodeIndex)>,
    consumers: Vec<(NodeIndex, Vec<usize>)>,
}

impl Walk<'_> {
    fn bad(&mut self, l: &Layout, why: String) {
        self.reasons.push((l.blocks[0], why));
    }

    fn join(&mut self, blocks: &[usize]) {
        for w in blocks.windows(2) {
            self.seg.union(w[0], w[1]);
        }
    }

    /// Whether a non-segment operand `v` of a merge leaves channels alone (one channel, or the
    /// channel axis broadcast), or is a constant (per-channel parameters follow the order).
    fn harmless(&self, v: ValueRef, back: usize) -> bool {
        if self.g.constant(v.node).is_some() {
            return true;
        }
        match self.g.value_type(v).and_then(|t| t.shape.as_ref()) {
            Some(s) if s.len() <= back => true,
            Some(s) => s[s.len() - 1 - back] == Dim::Known(1),
            None => false,
        }
    }

    fn node(&mut self, n: NodeIndex) {
        let g = self.g;
        let node = &g.g[n];
        let op_type = node.op.op_type().to_string();
        let ins = g.node_inputs(n);
        let lin: Vec<(usize, ValueRef, Layout)> = ins
            .iter()
            .enumerate()
            .filter_map(|(i, v)| {
                let v = (*v)?;
                Some((i, v, self.layouts.get(&v)?.clone()))
            })
            .collect();
        let out0 = ValueRef { node: n, out: 0 };
        let name = || node_name(g, n);
        if let Some(l) = layer(g, n) {
            for (slot, _, lay) in &lin {
                if *slot != 0 {
                    self.bad(
                        lay,
                        format!("read by {op_type} '{}' as a parameter", name()),
                    );
                } else if lay.back != l.in_axis_back {
                    self.bad(
                        lay,
                        format!("{op_type} '{}' reads it on another axis", name()),
                    );
                } else {
                    self.consumers.push((n, lay.blocks.clone()));
                }
            }
            let b = n.index();
            self.channels.insert(b, l.out_channels);
            self.created.push(b);
            self.layouts.insert(
                out0,
                Layout {
                    back: l.out_axis_back,
                    blocks: vec![b],
                },
            );
            return;
        }
        if lin.is_empty() {
            return;
        }
        let depthwise = node
            .op
            .as_any()
            .downcast_ref::<Conv>()
            .is_some_and(|c| self.depthwise(n, c.group));
        let fixed_size = op_type == "Resize" && ins.get(3).is_some_and(|v| v.is_some());
        if fixed_size {
            let why = format!("Resize '{}' has explicit sizes (channels included)", name());
            for (_, _, lay) in &lin {
                self.bad(lay, why.clone());
            }
        }
        if depthwise || UNARY_USERS.contains(&op_type.as_str()) {
            let mut out = None;
            for (slot, _, lay) in &lin {
                if *slot == 0 {
                    out = Some(lay.clone());
                } else {
                    self.bad(
                        lay,
                        format!("read by {op_type} '{}' as a parameter", name()),
                    );
                }
            }
            if let Some(lay) = out {
                self.users.push((lay.blocks.clone(), n));
                self.layouts.insert(out0, lay);
            }
            return;
        }
        if MERGING_USERS.contains(&op_type.as_str()) {
            let first = lin[0].2.clone();
            for (slot, v) in ins.iter().enumerate() {
                let Some(v) = *v else { continue };
                match lin.iter().find(|x| x.0 == slot) {
                    Some((_, _, lay)) => {
                        let same_layout = lay.back == first.back
                            && lay.blocks.len() == first.blocks.len()
                            && lay
                                .blocks
                                .iter()
                                .zip(&first.blocks)
                                .all(|(a, b)| self.channels[a] == self.channels[b]);
                        if same_layout {
                            for (a, b) in lay.blocks.iter().zip(&first.blocks) {
                                self.same.union(*a, *b);
                                self.seg.union(*a, *b);
                            }
                        } else {
                            self.seg.union(lay.blocks[0], first.blocks[0]);
                            self.bad(
                                &first,
                                format!(
                                    "{op_type} '{}' merges tensors with different channel layouts",
                                    name()
                                ),
                            );
                        }
                    }
                    None if self.harmless(v, first.back) => {}
                    None => {
                        self.bad(
                            &first,
                            format!(
                                "{op_type} '{}' combines it with a tensor from outside the segment",
                                name()
                            ),
                        );
                    }
                }
            }
            self.users.push((first.blocks.clone(), n));
            // On a failed merge the output still belongs to the (now unprunable) segment.
            self.layouts.insert(out0, first);
            return;
        }
        if let Some(c) = node.op.as_any().downcast_ref::<Concat>() {
            let rank = node.outputs[0].ty.rank();
            let back = lin[0].2.back;
            let on_channels = rank.is_some_and(|r| {
                let axis = if c.axis < 0 {
                    c.axis + r as i64
                } else {
                    c.axis
                };
                axis >= 0 && axis as usize + 1 + back == r
            });
            let all = ins.iter().flatten().count() == lin.len();
            if on_channels && all && lin.iter().all(|x| x.2.back == back) {
                let blocks: Vec<usize> = lin.iter().flat_map(|x| x.2.blocks.clone()).collect();
                self.join(&blocks);
                self.layouts.insert(out0, Layout { back, blocks });
                return;
            }
        }
        let why = format!("read by {op_type} '{}'", name());
        for (_, _, lay) in &lin {
            self.bad(lay, why.clone());
        }
    }

    /// Whether a grouped `Conv` at `n` is depthwise with multiplier 1.
    fn depthwise(&self, n: NodeIndex, group: usize) -> bool {
        let ins = self.g.node_inputs(n);
        let Some(Some(w)) = ins.get(1) else {
            return false;
        };
        let Some(w) = self.g.constant(w.node) else {
            return false;
        };
        group > 1 && w.shape.len() >= 3 && w.shape[0] == group && w.shape[1] == 1
    }
}

/// The segments of `g`'s top-level graph, in topological order of their first producer.
pub fn segments(g: &Graph) -> Result<Vec<Segment>, PruneError> {
    let order = g.topo_order()?;
    let bound = g.g.node_bound();
    let mut w = Walk {
        g,
        layouts: HashMap::new(),
        channels: HashMap::new(),
        created: Vec::new(),
        same: UnionFind::new(bound),
        seg: UnionFind::new(bound),
        reasons: Vec::new(),
        users: Vec::new(),
        consumers: Vec::new(),
    };
    for &n in &order {
        w.node(n);
    }
    for o in &g.outputs {
        if let Some(lay) = w.layouts.get(&o.value).cloned() {
            w.bad(&lay, format!("is the graph output '{}'", o.name));
        }
    }

    // Segments by root, numbered in block creation order; blocks (same-roots) laid out in order.
    let mut seg_of: BTreeMap<usize, usize> = BTreeMap::new();
    let mut segs: Vec<Segment> = Vec::new();
    let mut block_at: HashMap<usize, (usize, usize)> = HashMap::new(); // same-root -> (seg, block)
    for &b in &w.created {
        let root = w.seg.find(b);
        let id = *seg_of.entry(root).or_insert_with(|| {
            segs.push(Segment {
                id: segs.len(),
                channels: 0,
                producers: Vec::new(),
                blocks: Vec::new(),
                users: Vec::new(),
                user_runs: Vec::new(),
                consumers: Vec::new(),
                prunable: Ok(()),
            });
            segs.len() - 1
        });
        let s = &mut segs[id];
        s.producers.push(NodeIndex::new(b));
        let sroot = w.same.find(b);
        match block_at.get(&sroot) {
            Some(&(_, k)) => s.blocks[k].producers.push(NodeIndex::new(b)),
            None => {
                block_at.insert(sroot, (id, s.blocks.len()));
                let ch = w.channels[&b];
                s.blocks.push(Block {
                    offset: s.channels,
                    channels: ch,
                    producers: vec![NodeIndex::new(b)],
                });
                s.channels += ch;
            }
        }
    }
    let seg_id = |w: &mut Walk<'_>, b: usize| seg_of[&w.seg.find(b)];
    let runs_of = |w: &mut Walk<'_>, segs: &[Segment], id: usize, blocks: &[usize]| {
        let mut runs: Vec<Run> = Vec::new();
        for &b in blocks {
            let (_, k) = block_at[&w.same.find(b)];
            let blk = &segs[id].blocks[k];
            match runs.last_mut() {
                Some(r) if r.offset + r.len == blk.offset => r.len += blk.channels,
                _ => runs.push(Run {
                    offset: blk.offset,
                    len: blk.channels,
                }),
            }
        }
        runs
    };
    for (blocks, n) in std::mem::take(&mut w.users) {
        let id = seg_id(&mut w, blocks[0]);
        if !segs[id].users.contains(&n) {
            let runs = runs_of(&mut w, &segs, id, &blocks);
            segs[id].users.push(n);
            segs[id].user_runs.push(runs);
        }
    }
    for (n, blocks) in std::mem::take(&mut w.consumers) {
        let id = seg_id(&mut w, blocks[0]);
        let runs = runs_of(&mut w, &segs, id, &blocks);
        segs[id].consumers.push(Consumer { node: n, runs });
    }
    let mut reasons: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for (b, why) in std::mem::take(&mut w.reasons) {
        let id = seg_id(&mut w, b);
        let v = reasons.entry(id).or_default();
        if !v.contains(&why) {
            v.push(why);
        }
    }
    for (id, v) in reasons {
        let more = match v.len() {
            1 => String::new(),
            k => format!(" (and {} more)", k - 1),
        };
        segs[id].prunable = Err(format!("{}{more}", v[0]));
    }
    Ok(segs)
}
