//! Per-op work, computed once per graph and context: MACs, FLOPs, and the tensors each op reads
//! and writes, split into the groups the what-if options act on.
//!
//! Every value of the graph is one of:
//! - a **weight**: a constant, or the output of an op all of whose inputs are weights (such an op
//!   is *folded*: a compiler computes it ahead of time, so it costs nothing at run time). Weights
//!   are grouped as *matrix* (float, rank >= 2: what `--weight-bits` changes), *embedding* (read
//!   by a `Gather` as its table, and anything folded from it such as a tied output head:
//!   `--embedding-bits`) and *fixed* (float vectors such as biases and norm scales, integer
//!   shape data: always at their stored width);
//! - **KV cache**: a graph input feeding an attention op's past K/V slot (or named `past*`),
//!   the present K/V outputs of `Attention`, a `Concat` extending a cache, and views of these
//!   (`--kv-bits`);
//! - an **activation**: everything else (`--activation-bits` changes float activations; integer
//!   and boolean activations keep their width).
//!
//! Traffic per op: every weight it reads in full (a `Gather` reads only the rows it returns),
//! every activation and cache tensor it reads, every activation it writes, and of a cache it
//! extends only the new positions (a runtime updates the cache in place). View ops (`Reshape`,
//! `Squeeze`, `Shape`, ...) move no data and cost nothing.
//!
//! Weight storage: each constant is counted once, by the first run-time op that reads it (or a
//! value folded from it), its *owner*; constants no op reads are counted apart.

use petasos_ir::graph::Graph;
use petasos_ir::shape::{shape_string, ValueType};
use petasos_ir::{DType, ValueRef};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// How an op is costed: which achievable fractions apply and whether it moves data at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OpClass {
    Matmul,
    Conv,
    Attention,
    Elementwise,
    Normalization,
    Reduction,
    DataMovement,
    Other,
    /// Metadata-only ops (reshape, squeeze, shape): no data moved, no kernel launched.
    View,
}

impl OpClass {
    /// The class of an op type (domain ignored).
    pub fn of(op_type: &str) -> OpClass {
        use OpClass::*;
        match op_type {
            "MatMul" | "Gemm" | "MatMulInteger" | "QLinearMatMul" | "MatMulNBits"
            | "FusedMatMul" | "Einsum" => Matmul,
            "Conv" | "ConvTranspose" | "ConvInteger" | "QLinearConv" | "DeformConv" => Conv,
            "Attention" | "MultiHeadAttention" | "GroupQueryAttention" | "LinearAttention" => {
                Attention
            }
            "BatchNormalization"
            | "LayerNormalization"
            | "RMSNormalization"
            | "SimplifiedLayerNormalization"
            | "SkipLayerNormalization"
            | "InstanceNormalization"
            | "GroupNormalization"
            | "LpNormalization"
            | "MeanVarianceNormalization"
            | "Softmax"
            | "LogSoftmax"
            | "Hardmax" => Normalization,
            t if t.starts_with("Reduce") => Reduction,
            "GlobalAveragePool" | "GlobalMaxPool" | "AveragePool" | "MaxPool" | "LpPool"
            | "GlobalLpPool" | "ArgMax" | "ArgMin" | "TopK" | "CumSum" | "CumProd" => Reduction,
            "Transpose" | "Concat" | "Split" | "Slice" | "Gather" | "GatherElements"
            | "GatherND" | "Scatter" | "ScatterElements" | "ScatterND" | "Pad" | "Tile"
            | "Expand" | "Resize" | "Upsample" | "DepthToSpace" | "SpaceToDepth" | "Compress"
            | "ReverseSequence" | "NonZero" | "OneHot" | "Trilu" | "Range" | "ConstantOfShape"
            | "EyeLike" => DataMovement,
            "Reshape" | "Flatten" | "Squeeze" | "Unsqueeze" | "Identity" | "Shape" | "Size"
            | "Dropout" | "Constant" | "Input" | "Optional" | "OptionalGetElement" => View,
            "Add"
            | "Sub"
            | "Mul"
            | "Div"
            | "Pow"
            | "Mod"
            | "Neg"
            | "Abs"
            | "Sqrt"
            | "Reciprocal"
            | "Exp"
            | "Log"
            | "Erf"
            | "Tanh"
            | "Sigmoid"
            | "HardSigmoid"
            | "HardSwish"
            | "Relu"
            | "LeakyRelu"
            | "PRelu"
            | "Elu"
            | "Selu"
            | "Celu"
            | "Gelu"
            | "FastGelu"
            | "BiasGelu"
            | "Mish"
            | "Softplus"
            | "Softsign"
            | "Swish"
            | "Silu"
            | "Clip"
            | "Min"
            | "Max"
            | "Sum"
            | "Mean"
            | "Where"
            | "Cast"
            | "CastLike"
            | "Cos"
            | "Sin"
            | "Tan"
            | "Floor"
            | "Ceil"
            | "Round"
            | "Sign"
            | "Equal"
            | "Greater"
            | "GreaterOrEqual"
            | "Less"
            | "LessOrEqual"
            | "And"
            | "Or"
            | "Xor"
            | "Not"
            | "IsNaN"
            | "IsInf"
            | "BitShift"
            | "QuantizeLinear"
            | "DequantizeLinear"
            | "DynamicQuantizeLinear"
            | "RotaryEmbedding"
            | "ThresholdedRelu"
            | "Shrink"
            | "BitwiseAnd"
            | "BitwiseOr"
            | "BitwiseXor"
            | "BitwiseNot" => Elementwise,
            _ => Other,
        }
    }

    /// The key of this class in a profile's `achievable` table.
    pub fn key(self) -> &'static str {
        match self {
            OpClass::Matmul => "matmul",
            OpClass::Conv => "conv",
            OpClass::Attention => "attention",
            OpClass::Elementwise => "elementwise",
            OpClass::Normalization => "normalization",
            OpClass::Reduction => "reduction",
            OpClass::DataMovement => "data_movement",
            OpClass::Other => "other",
            OpClass::View => "view",
        }
    }
}

/// A group of tensors: how many elements, how many bytes as stored, how many tensors (a
/// palettised tensor carries one lookup table each).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Group {
    pub elems: u64,
    pub stored_bytes: u64,
    pub tensors: u32,
}

impl Group {
    fn add(&mut self, elems: u64, dtype: DType) {
        self.elems += elems;
        self.stored_bytes += dtype.bytes_for(elems as usize) as u64;
        self.tensors += 1;
    }
}

/// Which what-if option a weight answers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightClass {
    Matrix,
    Embedding,
    Fixed,
}

/// Weight groups by class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Weights {
    pub matrix: Group,
    pub embedding: Group,
    pub fixed: Group,
}

impl Weights {
    fn group(&mut self, c: WeightClass) -> &mut Group {
        match c {
            WeightClass::Matrix => &mut self.matrix,
            WeightClass::Embedding => &mut self.embedding,
            WeightClass::Fixed => &mut self.fixed,
        }
    }
}

/// The work of one op, independent of device and what-if options.
#[derive(Clone, Debug, Serialize)]
pub struct OpWork {
    /// Node name (ONNX node name, or the builder's unique name).
    pub name: String,
    /// `domain.OpType`, or `OpType` for the default domain.
    pub op_type: String,
    /// The layer path from provenance (`/layer1/0/conv1`).
    pub layer: String,
    /// Output 0's type with symbolic dims bound, e.g. `float[1, 64, 56, 56]`.
    pub shape: String,
    pub class: OpClass,
    /// All inputs are weights: computed ahead of time, free at run time.
    pub folded: bool,
    /// `Op::macs` with dims bound (as `petasos inspect` counts, folded and view ops included).
    pub macs: u64,
    /// Operations executed at run time: 2 x MACs, or one per output element for elementwise
    /// work, one per input element for reductions without MACs; 0 for views, data movement and
    /// folded ops.
    pub flops: u64,
    /// The element type the op computes in (its first float input or output, else f32).
    pub dtype: DType,
    /// Weights read (a Gather reads the rows it returns).
    pub weights_read: Weights,
    /// Weights whose storage this op owns.
    pub weights_owned: Weights,
    /// Float activations read and written (what `--activation-bits` changes).
    pub act_in: Group,
    pub act_out: Group,
    /// Integer and boolean activations read and written, in bytes.
    pub act_fixed_bytes: u64,
    /// KV-cache elements read, and written (new positions only).
    pub kv_read: Group,
    pub kv_write: Group,
}

/// The KV cache of a graph at the bound context.
#[derive(Clone, Debug, Default, Serialize)]
pub struct KvInfo {
    /// Cache tensors (past inputs in decode, present outputs in prefill).
    pub tensors: usize,
    /// Elements of all cache tensors at the bound context and batch.
    pub elems: u64,
    /// Bytes as stored (the graph's cache dtype).
    pub stored_bytes: u64,
    /// Layers owning a cache in the graph (cache tensors / 2).
    pub owners: u64,
    /// Owners with KV sharing on and off (from metadata `block1_layers` / `block2_layers`),
    /// when the model has shareable layers.
    pub owners_shared: Option<u64>,
    pub owners_unshared: Option<u64>,
}

/// Everything precomputed for a graph.
#[derive(Clone, Debug, Default)]
pub struct GraphWork {
    pub ops: Vec<OpWork>,
    /// Constants no run-time op reads (counted in weight storage at stored width).
    pub unowned: Weights,
    pub kv: KvInfo,
    /// The symbolic dims the graph uses and the values they were bound to (unbound ones: 1).
    pub dims: BTreeMap<String, u64>,
}

#[derive(Clone, Debug)]
enum Kind {
    /// A weight of `class`, derived from the constants `origins`.
    Weight {
        class: WeightClass,
        origins: Vec<ValueRef>,
    },
    Act,
    Kv,
}

/// `t` with symbols replaced by `dims` (else 1); every symbol met is recorded in `assumed`
/// with the value it was given.
fn bind(
    t: &ValueType,
    dims: &HashMap<String, u64>,
    assumed: &mut BTreeMap<String, u64>,
) -> ValueType {
    t.bind(&mut |n| {
        let v = dims.get(n).copied().unwrap_or(1);
        assumed.entry(n.to_string()).or_insert(v);
        v
    })
}

fn is_float(d: DType) -> bool {
    d.is_float()
}

/// Whether input slot `slot` of `op_type` takes a past K/V cache.
fn past_slot(op_type: &str, slot: usize) -> bool {
    matches!(
        (op_type, slot),
        ("Attention", 4 | 5) | ("GroupQueryAttention", 3 | 4) | ("MultiHeadAttention", 6 | 7)
    )
}

/// Whether output `out` of `op_type` is a present K/V cache.
fn present_slot(op_type: &str, out: usize) -> bool {
    matches!(
        (op_type, out),
        ("Attention", 1 | 2) | ("GroupQueryAttention", 1 | 2) | ("MultiHeadAttention", 1 | 2)
    )
}

/// Computes the work of every op of `g` (subgraphs included, their ops named
/// `outer/inner`) with symbolic dims bound by `dims`; `progress` is called with the number of
/// nodes done so far.
pub fn graph_work(
    g: &Graph,
    dims: &HashMap<String, u64>,
    progress: &mut dyn FnMut(usize),
) -> petasos_ir::Result<GraphWork> {
    let mut w = GraphWork::default();
    let mut assumed = BTreeMap::new();
    collect(g, "", dims, &mut assumed, &mut w, progress)?;
    w.kv = kv_info(g, dims, &mut assumed);
    w.dims = assumed;
    Ok(w)
}

fn collect(
    g: &Graph,
    prefix: &str,
    dims: &HashMap<String, u64>,
    assumed: &mut BTreeMap<String, u64>,
    w: &mut GraphWork,
    progress: &mut dyn FnMut(usize),
) -> petasos_ir::Result<()> {
    let order = g.topo_order()?;
    let mut kind: HashMap<ValueRef, Kind> = HashMap::new();
    let outputs: std::collections::HashSet<ValueRef> = g.outputs.iter().map(|o| o.value).collect();
    let bound = g.g.node_indices().map(|n| n.index() + 1).max().unwrap_or(0);
    let mut owned = vec![false; bound];
    // Constants used as Gather tables are embeddings.
    let mut embedding = vec![false; bound];
    for n in g.g.node_indices() {
        if g.g[n].op.op_type() == "Gather" {
            if let Some(Some(v)) = g.node_inputs(n).first() {
                if g.constant(v.node).is_some() {
                    embedding[v.node.index()] = true;
                }
            }
        }
    }
    for (done, &n) in order.iter().enumerate() {
        if done % 256 == 0 {
            progress(done);
        }
        let node = &g.g[n];
        let op_type = node.op.op_type();
        if let Some(c) = g.constant(n) {
            let class = if embedding[n.index()] {
                WeightClass::Embedding
            } else if is_float(c.dtype) && c.shape.len() >= 2 {
                WeightClass::Matrix
            } else {
                WeightClass::Fixed
            };
            kind.insert(
                ValueRef { node: n, out: 0 },
                Kind::Weight {
                    class,
                    origins: vec![ValueRef { node: n, out: 0 }],
                },
            );
            continue;
        }
        if op_type == "Input" {
            let v = ValueRef { node: n, out: 0 };
            let name = &node.outputs[0].name;
            let feeds_past = g
                .users(v)
                .iter()
                .any(|&(u, slot)| past_slot(g.g[u].op.op_type(), slot));
            let k = if feeds_past || name.starts_with("past") {
                Kind::Kv
            } else {
                Kind::Act
            };
            kind.insert(v, k);
            continue;
        }
        let ins = g.node_inputs(n);
        let in_kinds: Vec<Option<&Kind>> = ins
            .iter()
            .map(|v| v.as_ref().and_then(|v| kind.get(v)))
            .collect();
        let in_tys: Vec<Option<ValueType>> = ins
            .iter()
            .map(|v| {
                v.and_then(|v| g.value_type(v))
                    .map(|t| bind(t, dims, assumed))
            })
            .collect();
        let out_tys: Vec<ValueType> = node
            .outputs
            .iter()
            .map(|v| bind(&v.ty, dims, assumed))
            .collect();
        let tys: Vec<Option<&ValueType>> = in_tys.iter().map(|t| t.as_ref()).collect();
        let macs = node.op.macs(&tys, &out_tys);
        let class = OpClass::of(op_type);
        let present: Vec<&Kind> = in_kinds.iter().flatten().copied().collect();
        let folded = !node.op.is_random()
            && !present.is_empty()
            && present.len() == ins.iter().flatten().count()
            && present.iter().all(|k| matches!(k, Kind::Weight { .. }))
            && node.op.subgraphs().is_empty();
        let numel = |t: &ValueType| t.numel().unwrap_or(0);
        let out_elems: u64 = out_tys.iter().map(numel).sum();

        let mut ow = OpWork {
            name: if prefix.is_empty() {
                node.provenance.onnx_name.clone()
            } else {
                format!("{prefix}/{}", node.provenance.onnx_name)
            },
            op_type: if node.op.domain().is_empty() {
                op_type.to_string()
            } else {
                format!("{}.{}", node.op.domain(), op_type)
            },
            layer: node.provenance.layer_path.clone(),
            shape: out_tys
                .first()
                .map(|t| match &t.shape {
                    Some(s) => format!("{}{}", t.dtype, shape_string(s)),
                    None => format!("{}[?]", t.dtype),
                })
                .unwrap_or_default(),
            class,
            folded,
            macs,
            flops: 0,
            dtype: in_tys
                .iter()
                .flatten()
                .chain(out_tys.iter())
                .map(|t| t.dtype)
                .find(|d| is_float(*d))
                .unwrap_or(DType::F32),
            weights_read: Weights::default(),
            weights_owned: Weights::default(),
            act_in: Group::default(),
            act_out: Group::default(),
            act_fixed_bytes: 0,
            kv_read: Group::default(),
            kv_write: Group::default(),
        };

        // Output kinds.
        let concat_kv = op_type == "Concat" && present.iter().any(|k| matches!(k, Kind::Kv));
        let mut out_kinds = Vec::with_capacity(node.outputs.len());
        for i in 0..node.outputs.len() {
            let k = if folded {
                let mut origins = Vec::new();
                let mut class = WeightClass::Fixed;
                for k in &present {
                    if let Kind::Weight {
                        class: c,
                        origins: o,
                    } = k
                    {
                        origins.extend(o.iter().copied());
                        class = match (class, *c) {
                            (WeightClass::Embedding, _) | (_, WeightClass::Embedding) => {
                                WeightClass::Embedding
                            }
                            (WeightClass::Matrix, _) | (_, WeightClass::Matrix) => {
                                WeightClass::Matrix
                            }
                            _ => WeightClass::Fixed,
                        };
                    }
                }
                Kind::Weight { class, origins }
            } else if present_slot(op_type, i)
                || concat_kv
                || (class == OpClass::View
                    && matches!(in_kinds.first(), Some(Some(Kind::Kv)))
                    && !matches!(op_type, "Shape" | "Size"))
            {
                Kind::Kv
            } else {
                Kind::Act
            };
            out_kinds.push(k);
        }

        if !folded {
            // Storage: the first run-time reader owns each constant.
            for k in &present {
                if let Kind::Weight { origins, .. } = k {
                    for &o in origins {
                        if !owned[o.node.index()] {
                            owned[o.node.index()] = true;
                            if let Some(c) = g.constant(o.node) {
                                let class = match kind.get(&o) {
                                    Some(Kind::Weight { class, .. }) => *class,
                                    _ => WeightClass::Fixed,
                                };
                                ow.weights_owned.group(class).add(c.numel() as u64, c.dtype);
                            }
                        }
                    }
                }
            }
        }

        if !folded && class != OpClass::View {
            // Traffic.
            let mut kv_in_elems = 0u64;
            for (slot, (k, t)) in in_kinds.iter().zip(&in_tys).enumerate() {
                let (Some(k), Some(t)) = (k, t) else { continue };
                let e = numel(t);
                match k {
                    Kind::Weight { class: c, .. } => {
                        let e = if op_type == "Gather" && slot == 0 {
                            e.min(out_elems)
                        } else {
                            e
                        };
                        ow.weights_read.group(*c).add(e, t.dtype);
                    }
                    Kind::Kv if concat_kv => kv_in_elems += e,
                    Kind::Kv => ow.kv_read.add(e, t.dtype),
                    Kind::Act if is_float(t.dtype) => ow.act_in.add(e, t.dtype),
                    Kind::Act => ow.act_fixed_bytes += t.dtype.bytes_for(e as usize) as u64,
                }
            }
            let cache_in: u64 = in_kinds
                .iter()
                .zip(&in_tys)
                .filter(|(k, _)| matches!(k, Some(Kind::Kv)))
                .filter_map(|(_, t)| t.as_ref().map(numel))
                .sum();
            let mut present_elems = 0u64;
            for (i, t) in out_tys.iter().enumerate() {
                let v = ValueRef { node: n, out: i };
                if g.users(v).is_empty() && !outputs.contains(&v) {
                    continue; // never read: not written
                }
                let e = numel(t);
                match out_kinds.get(i) {
                    Some(Kind::Kv) if concat_kv => {
                        ow.kv_write.add(e.saturating_sub(kv_in_elems), t.dtype)
                    }
                    Some(Kind::Kv) => {
                        present_elems += e;
                        ow.kv_write.add(e, t.dtype);
                    }
                    _ if is_float(t.dtype) => ow.act_out.add(e, t.dtype),
                    _ => ow.act_fixed_bytes += t.dtype.bytes_for(e as usize) as u64,
                }
            }
            // An attention op extending a cache (its past, or a cache it borrows) writes only
            // the new positions.
            if present_elems > 0 && cache_in > 0 {
                let new = present_elems.saturating_sub(cache_in);
                let per = ow.kv_write.stored_bytes as f64 / ow.kv_write.elems.max(1) as f64;
                ow.kv_write.elems = new;
                ow.kv_write.stored_bytes = (new as f64 * per).round() as u64;
            }
            ow.flops = if macs > 0 {
                2 * macs
            } else {
                match class {
                    OpClass::Elementwise | OpClass::Normalization | OpClass::Other => out_elems,
                    OpClass::Reduction => ow.act_in.elems.max(out_elems),
                    _ => 0,
                }
            };
        }
        for (i, k) in out_kinds.into_iter().enumerate() {
            kind.insert(ValueRef { node: n, out: i }, k);
        }
        w.ops.push(ow);
        for (si, sg) in node.op.subgraphs().into_iter().enumerate() {
            let p = format!("{}{}#{si}", prefix, node.provenance.onnx_name);
            collect(sg, &p, dims, assumed, w, &mut |_| {})?;
        }
    }
    // Constants that no run-time op reads.
    for n in g.g.node_indices() {
        if let Some(c) = g.constant(n) {
            if !owned[n.index()] {
                let class = match kind.get(&ValueRef { node: n, out: 0 }) {
                    Some(Kind::Weight { class, .. }) => *class,
                    _ => WeightClass::Fixed,
                };
                w.unowned.group(class).add(c.numel() as u64, c.dtype);
            }
        }
    }
    progress(order.len());
    Ok(())
}

/// The cache of `g`: `past*` / past-slot graph inputs in decode, present outputs in prefill.
fn kv_info(g: &Graph, dims: &HashMap<String, u64>, assumed: &mut BTreeMap<String, u64>) -> KvInfo {
    let mut kv = KvInfo::default();
    let mut add = |t: &ValueType, kv: &mut KvInfo| {
        let e = bind(t, dims, assumed).numel().unwrap_or(0);
        kv.tensors += 1;
        kv.elems += e;
        kv.stored_bytes += t.dtype.bytes_for(e as usize) as u64;
    };
    for &i in &g.inputs {
        let v = ValueRef { node: i, out: 0 };
        let name = &g.g[i].outputs[0].name;
        let feeds_past = g
            .users(v)
            .iter()
            .any(|&(u, slot)| past_slot(g.g[u].op.op_type(), slot));
        if feeds_past || name.starts_with("past") {
            add(&g.g[i].outputs[0].ty, &mut kv);
        }
    }
    if kv.tensors == 0 {
        for o in &g.outputs {
            let op = g.g[o.value.node].op.op_type();
            if present_slot(op, o.value.out) || o.name.starts_with("present") {
                if let Some(t) = g.value_type(o.value) {
                    add(t, &mut kv);
                }
            }
        }
    }
    kv.owners = (kv.tensors as u64).div_ceil(2);
    let meta = |k: &str| g.metadata.get(k).and_then(|v| v.parse::<u64>().ok());
    if let (Some(b1), Some(b2)) = (meta("block1_layers"), meta("block2_layers")) {
        if b2 > 0 {
            kv.owners_shared = Some(b1);
            kv.owners_unshared = Some(b1 + b2);
        }
    }
    kv
}
