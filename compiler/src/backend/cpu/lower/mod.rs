//! The lowering interface: how one kernel (a node, or a fused chain of nodes) becomes one C
//! function, and the dispatch table from op type to lowering.
//!
//! # Model
//! The scheduler groups the graph's op nodes into kernels (see [`FuseFn`]); each kernel is
//! lowered by the [`LowerFn`] registered for its first node's op type. The lowering gets a
//! [`LowerCx`] with every input and output of the kernel's nodes as a [`CTensor`] (a C pointer
//! expression, the dtype, the static shape, and the values when the tensor is a small
//! constant), and writes the body of `static void kN_name(void)` with [`LowerCx::line`]. It
//! may add init-time code ([`LowerCx::init_line`], run once by `model_init` after the weights
//! are mapped, e.g. weight packing; a failing init line `return`s a non-zero `int`), matching
//! cleanup ([`LowerCx::free_line`]), file-scope declarations ([`LowerCx::global`]), request
//! scratch memory valid during the kernel ([`LowerCx::scratch`]) and declare the runtime files
//! it calls into ([`LowerCx::need_rt`]).
//!
//! Tensors are row-major, contiguous, with static shapes. C element types: see [`ctype`]
//! (f16/bf16 are `uint16_t` storage converted through `pt_h2f`/`pt_f2h`/`pt_bf2f`/`pt_f2bf`
//! from `pt_rt.h`, bool is `uint8_t` 0/1). Inputs are `const`; outputs never alias inputs.
//! `CTensor::expr` is a local pointer variable valid in the kernel body; `CTensor::addr` is
//! an expression of the same pointer valid anywhere in `model.c` (use it in init code; graph
//! inputs and outputs only exist during `model_run`, so never read them at init).
//!
//! # How to add an op lowering
//! 1. In your family file `lower/<family>.rs`, write `fn lower_myop(cx: &mut LowerCx) ->
//!    Result<(), LowerError>`: read the op's attributes with `cx.op::<ir::ops::...::MyOp>()?`
//!    (or the node's `attrs()`), inputs with `cx.input(i)?` / `cx.opt_input(i)`, outputs with
//!    `cx.output(i)?`, and emit C with `cx.line(..)`. Anything you cannot lower (a dtype, an
//!    attribute value) returns `Err(cx.unsupported("what"))` — never wrong C.
//! 2. Add `pub fn register(r: &mut Registry) { r.op("MyOp", lower_myop); }` to the file (one
//!    `r.op` per op type; `r.fusion(..)` for fused chains anchored at an op type).
//! 3. Add `pub mod <family>;` and one `<family>::register(&mut r);` line to [`registry`] below.
//! 4. Test: `conformance --backend cpu test_myop` (tests/src/bin/conformance.rs), and a unit
//!    or golden test for tricky cases. `lower/basic.rs` is the worked example.
//!
//! Names from the model reach C only through [`crate::backend::cpu::sanitize`]
//! ([`LowerCx::fresh`] for identifiers, [`comment`] for comment text).

pub mod attention;
pub mod basic;
pub mod broadcast;
pub mod cast;
pub mod control;
pub mod einsum;
pub mod elementwise;
pub mod elementwise_binary;
pub mod elementwise_fuse;
pub mod elementwise_math;
pub mod elementwise_unary;
pub mod flex_mod;
pub mod fuse;
pub mod gather;
pub mod layout;
pub mod layout_rt;
pub mod loss;
pub mod lppool;
pub mod movement;
pub mod nn;
pub mod norm;
pub mod operand;
pub mod qonnx;
pub mod quant;
pub mod recurrent;
pub mod reduce;
pub mod reduce_nest;
pub mod resize;
pub mod sample;
pub mod scatter;
pub mod scatter_img;
pub mod seq_common;
pub mod shape;
pub mod signal;
pub mod softmax;

pub use super::sanitize::comment;
use super::sanitize::Namer;
use petasos_ir::graph::{Graph, Node, ValueRef};
use petasos_ir::{DType, Tensor};
use petgraph::stable_graph::NodeIndex;
use std::collections::{BTreeSet, HashSet};

/// Why a kernel could not be lowered.
#[derive(Debug, thiserror::Error)]
pub enum LowerError {
    /// No lowering is registered for the op type.
    #[error("op '{op}' (node '{node}') has no CPU lowering")]
    NoLowering { op: String, node: String },
    /// The op is lowered, but not this variant of it (dtype, attribute, rank...).
    #[error("op '{op}' (node '{node}'): {what} is not supported by the CPU backend")]
    Unsupported {
        op: String,
        node: String,
        what: String,
    },
    /// The node is malformed for its op (missing input, wrong type), or an internal error.
    #[error("op '{op}' (node '{node}'): {msg}")]
    Invalid {
        op: String,
        node: String,
        msg: String,
    },
}

/// Lowers one kernel into C (see the module docs).
pub type LowerFn = fn(&mut LowerCx<'_>) -> Result<(), LowerError>;

/// Extends a kernel anchored at `cx.anchor` with following nodes: returns the nodes to absorb,
/// in execution order (empty: no fusion). Use [`FuseCx::sole_user`] to walk the chain: it
/// only offers nodes that are safe to run inside the anchor's kernel. The anchor's lowering
/// then receives all of them in [`LowerCx::nodes`].
pub type FuseFn = fn(&FuseCx<'_>) -> Vec<NodeIndex>;

/// The lowerings and fusions of all families.
#[derive(Default)]
pub struct Registry {
    /// Op type (`domain.OpType` outside the default domain) -> lowering.
    pub lower: Vec<(&'static str, LowerFn)>,
    /// Op type of an anchor -> its fusion rule.
    pub fuse: Vec<(&'static str, FuseFn)>,
    /// Op types whose lowerings handle the minifloat and sub-byte dtypes (see
    /// [`storage_ctype`]); other kernels never see tensors of those dtypes.
    pub exotic: Vec<&'static str>,
}

impl Registry {
    /// Registers the lowering of `op_type`.
    pub fn op(&mut self, op_type: &'static str, f: LowerFn) {
        self.lower.push((op_type, f));
    }

    /// Registers a fusion rule for kernels anchored at `op_type`.
    pub fn fusion(&mut self, op_type: &'static str, f: FuseFn) {
        self.fuse.push((op_type, f));
    }

    /// Declares that the lowering of `op_type` handles minifloat and sub-byte tensors
    /// (through `lower::cast`'s load/store helpers).
    pub fn exotic_dtypes(&mut self, op_type: &'static str) {
        self.exotic.push(op_type);
    }

    /// Whether kernels anchored at `key` may see minifloat and sub-byte tensors.
    pub fn handles_exotic(&self, key: &str) -> bool {
        self.exotic.contains(&key)
    }

    /// The lowering of `key` (the last registered wins).
    pub fn lowering(&self, key: &str) -> Option<LowerFn> {
        self.lower
            .iter()
            .rev()
            .find(|(k, _)| *k == key)
            .map(|x| x.1)
    }

    /// The fusion rule of `key`, if any.
    pub fn fusion_rule(&self, key: &str) -> Option<FuseFn> {
        self.fuse.iter().rev().find(|(k, _)| *k == key).map(|x| x.1)
    }
}

/// All families' registrations. Family helpers: add one line here.
pub fn registry() -> Registry {
    let mut r = Registry::default();
    basic::register(&mut r);
    nn::register(&mut r);
    elementwise::register(&mut r);
    reduce::register(&mut r);
    softmax::register(&mut r);
    norm::register(&mut r);
    loss::register(&mut r);
    einsum::register(&mut r);
    lppool::register(&mut r);
    attention::register(&mut r);
    recurrent::register(&mut r);
    signal::register(&mut r);
    layout::register(&mut r);
    shape::register(&mut r);
    gather::register(&mut r);
    scatter::register(&mut r);
    resize::register(&mut r);
    sample::register(&mut r);
    scatter_img::register(&mut r);
    cast::register(&mut r);
    quant::register(&mut r);
    qonnx::register(&mut r);
    control::register(&mut r);
    r
}

/// The dispatch table: op type -> lowering.
pub fn table() -> Vec<(&'static str, LowerFn)> {
    registry().lower
}

/// The table key of a node: its op type, prefixed by `domain.` outside the default domain.
pub fn op_key(n: &Node) -> String {
    let d = n.op.domain();
    if d.is_empty() || d == "ai.onnx" {
        n.op.op_type().to_string()
    } else {
        format!("{d}.{}", n.op.op_type())
    }
}

/// The C element type of a dtype, `None` where the backend has no representation.
pub fn ctype(d: DType) -> Option<&'static str> {
    Some(match d {
        DType::F32 => "float",
        DType::F64 => "double",
        DType::F16 | DType::BF16 => "uint16_t",
        DType::I8 => "int8_t",
        DType::I16 => "int16_t",
        DType::I32 => "int32_t",
        DType::I64 => "int64_t",
        DType::U8 | DType::Bool => "uint8_t",
        DType::U16 => "uint16_t",
        DType::U32 => "uint32_t",
        DType::U64 => "uint64_t",
        _ => return None,
    })
}

/// The C storage type of a dtype, including the minifloat and sub-byte types (one `uint8_t`
/// code per float8 element; float4/int4/uint4/int2/uint2 packed into `uint8_t` bytes as in
/// ONNX raw data). Only kernels of [`Registry::handles_exotic`] op types get those tensors.
pub fn storage_ctype(d: DType) -> Option<&'static str> {
    ctype(d).or_else(|| cast::is_exotic(d).then_some("uint8_t"))
}

/// One tensor of a kernel as the generated C sees it.
#[derive(Clone, Debug)]
pub struct CTensor {
    /// A local `const T *` (inputs) or `T *` (outputs) variable, valid in the kernel body.
    pub expr: String,
    /// The same pointer as an expression valid anywhere in `model.c` (init code included).
    pub addr: String,
    pub dtype: DType,
    /// Static shape (empty: a scalar).
    pub shape: Vec<usize>,
    /// The values when the tensor is a constant of at most 65,536 elements.
    pub constant: Option<Tensor>,
    /// Whether the tensor is a constant (weights), whatever its size.
    pub is_const: bool,
    /// The value's name in the graph (raw: pass it through [`comment`] before emitting).
    pub name: String,
}

impl CTensor {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Rank.
    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// Row-major strides in elements.
    pub fn strides(&self) -> Vec<usize> {
        let mut s = vec![1; self.shape.len()];
        for i in (0..self.shape.len().saturating_sub(1)).rev() {
            s[i] = s[i + 1] * self.shape[i + 1];
        }
        s
    }

    /// The C element type (every tensor given to a lowering has one).
    pub fn ctype(&self) -> &'static str {
        ctype(self.dtype).unwrap_or("uint8_t")
    }

    /// Size in bytes.
    pub fn bytes(&self) -> usize {
        self.dtype.bytes_for(self.numel())
    }

    /// The C type values are computed in: `float` for f16/bf16, else the element type.
    pub fn compute_type(&self) -> &'static str {
        match self.dtype {
            DType::F16 | DType::BF16 => "float",
            _ => self.ctype(),
        }
    }

    /// An expression reading element `idx` (a C index expression) in the compute type.
    pub fn load(&self, idx: &str) -> String {
        match self.dtype {
            DType::F16 => format!("pt_h2f({}[{idx}])", self.expr),
            DType::BF16 => format!("pt_bf2f({}[{idx}])", self.expr),
            _ => format!("{}[{idx}]", self.expr),
        }
    }

    /// A statement writing `val` (in the compute type) to element `idx`.
    pub fn store(&self, idx: &str, val: &str) -> String {
        match self.dtype {
            DType::F16 => format!("{}[{idx}] = pt_f2h({val});", self.expr),
            DType::BF16 => format!("{}[{idx}] = pt_f2bf({val});", self.expr),
            DType::Bool => format!("{}[{idx}] = (uint8_t)(({val}) != 0);", self.expr),
            _ => format!("{}[{idx}] = ({})({val});", self.expr, self.ctype()),
        }
    }
}

/// The C code one kernel contributes.
#[derive(Clone, Debug, Default)]
pub struct KernelCode {
    /// Function body lines (indented).
    pub body: String,
    /// Init-time lines (run in `model_init`, inside `{ }` of their own).
    pub init: String,
    /// Cleanup lines (run in `model_free`).
    pub free: String,
    /// File-scope declarations.
    pub globals: String,
    /// Scratch bytes used during the kernel.
    pub scratch: u64,
    /// Runtime files needed (`pt_gemm.c`, ...).
    pub rt: BTreeSet<&'static str>,
}

/// What a lowering is given: the kernel's nodes and tensors, and where its C goes.
pub struct LowerCx<'a> {
    /// The (specialised) graph.
    pub g: &'a Graph,
    nodes: Vec<NodeIndex>,
    ins: Vec<Vec<Option<CTensor>>>,
    outs: Vec<Vec<CTensor>>,
    /// The kernel's function name (already unique).
    pub fn_name: String,
    namer: &'a mut Namer,
    code: KernelCode,
    depth: usize,
}

impl<'a> LowerCx<'a> {
    /// A context for the kernel `nodes` (anchor first) with tensors per node: `ins[k][slot]`
    /// (`None`: omitted optional input), `outs[k][i]`.
    pub(crate) fn new(
        g: &'a Graph,
        nodes: Vec<NodeIndex>,
        ins: Vec<Vec<Option<CTensor>>>,
        outs: Vec<Vec<CTensor>>,
        fn_name: String,
        namer: &'a mut Namer,
    ) -> LowerCx<'a> {
        LowerCx {
            g,
            nodes,
            ins,
            outs,
            fn_name,
            namer,
            code: KernelCode::default(),
            depth: 1,
        }
    }

    /// The emitted code.
    pub(crate) fn finish(self) -> KernelCode {
        self.code
    }

    /// The kernel's nodes, anchor first, in execution order.
    pub fn nodes(&self) -> &[NodeIndex] {
        &self.nodes
    }

    /// The anchor node.
    pub fn node(&self) -> &Node {
        &self.g.g[self.nodes[0]]
    }

    /// Node `k` of the kernel (0 = anchor).
    pub fn node_at(&self, k: usize) -> Result<&Node, LowerError> {
        self.nodes
            .get(k)
            .map(|&n| &self.g.g[n])
            .ok_or_else(|| self.invalid(format!("kernel has no node {k}")))
    }

    /// The anchor's name for messages (ONNX node name, else its first output's name).
    pub fn node_name(&self) -> String {
        node_label(self.node())
    }

    /// The anchor's op as its concrete type.
    pub fn op<T: 'static>(&self) -> Result<&T, LowerError> {
        self.node()
            .op
            .as_any()
            .downcast_ref::<T>()
            .ok_or_else(|| self.invalid("internal: unexpected op struct".into()))
    }

    /// Number of input slots of the anchor.
    pub fn num_inputs(&self) -> usize {
        self.ins.first().map_or(0, |v| v.len())
    }

    /// Number of outputs of the anchor.
    pub fn num_outputs(&self) -> usize {
        self.outs.first().map_or(0, |v| v.len())
    }

    /// Required input `i` of the anchor.
    pub fn input(&self, i: usize) -> Result<&CTensor, LowerError> {
        self.input_of(0, i)
    }

    /// Input `i` of the anchor if present.
    pub fn opt_input(&self, i: usize) -> Option<&CTensor> {
        self.ins
            .first()
            .and_then(|v| v.get(i))
            .and_then(|x| x.as_ref())
    }

    /// Output `i` of the anchor.
    pub fn output(&self, i: usize) -> Result<&CTensor, LowerError> {
        self.output_of(0, i)
    }

    /// Required input `i` of node `k` of the kernel.
    pub fn input_of(&self, k: usize, i: usize) -> Result<&CTensor, LowerError> {
        self.ins
            .get(k)
            .and_then(|v| v.get(i))
            .and_then(|x| x.as_ref())
            .ok_or_else(|| self.invalid(format!("missing required input {i}")))
    }

    /// Input `i` of node `k` if present.
    pub fn opt_input_of(&self, k: usize, i: usize) -> Option<&CTensor> {
        self.ins
            .get(k)
            .and_then(|v| v.get(i))
            .and_then(|x| x.as_ref())
    }

    /// Output `i` of node `k` of the kernel.
    pub fn output_of(&self, k: usize, i: usize) -> Result<&CTensor, LowerError> {
        self.outs
            .get(k)
            .and_then(|v| v.get(i))
            .ok_or_else(|| self.invalid(format!("missing output {i}")))
    }

    /// Appends one line (or several, split on `\n`) to the body. Indentation follows braces:
    /// a line ending in `{` indents the following lines, a line starting with `}` dedents.
    pub fn line(&mut self, s: impl AsRef<str>) {
        for l in s.as_ref().lines() {
            let l = l.trim();
            if l.starts_with('}') {
                self.depth = self.depth.saturating_sub(1).max(1);
            }
            if !l.is_empty() {
                for _ in 0..self.depth {
                    self.code.body.push_str("  ");
                }
                self.code.body.push_str(l);
            }
            self.code.body.push('\n');
            if l.ends_with('{') {
                self.depth += 1;
            }
        }
    }

    /// Closes `n` blocks (appends `n` lines `}`).
    pub fn close(&mut self, n: usize) {
        for _ in 0..n {
            self.line("}");
        }
    }

    /// Appends init-time code (run once by `model_init`; may `return` a non-zero int on error).
    pub fn init_line(&mut self, s: impl AsRef<str>) {
        for l in s.as_ref().lines() {
            self.code.init.push_str("    ");
            self.code.init.push_str(l);
            self.code.init.push('\n');
        }
    }

    /// Appends cleanup code (run by `model_free`, also after a failed init: must tolerate the
    /// init not having run, e.g. `free(NULL)`).
    pub fn free_line(&mut self, s: impl AsRef<str>) {
        for l in s.as_ref().lines() {
            self.code.free.push_str("  ");
            self.code.free.push_str(l);
            self.code.free.push('\n');
        }
    }

    /// Appends a file-scope declaration (e.g. `static void *k3_packed;`).
    pub fn global(&mut self, s: impl AsRef<str>) {
        self.code.globals.push_str(s.as_ref());
        if !s.as_ref().ends_with('\n') {
            self.code.globals.push('\n');
        }
    }

    /// A unique file-scope identifier made from this kernel's name and `base`.
    pub fn fresh(&mut self, base: &str) -> String {
        self.namer.ident(&format!("{}_", self.fn_name), base)
    }

    /// Reserves `bytes` of scratch memory for this kernel's run and returns a `uint8_t *`
    /// expression of its start (64-byte aligned; not preserved between runs or kernels).
    pub fn scratch(&mut self, bytes: u64) -> String {
        let off = self.code.scratch;
        self.code.scratch = off + bytes.div_ceil(64) * 64;
        format!("(pt_scratch + {off})")
    }

    /// Declares that the kernel calls into runtime file `file` (e.g. `pt_gemm.c`).
    pub fn need_rt(&mut self, file: &'static str) {
        self.code.rt.insert(file);
    }

    /// An error: `what` (a variant of the op) is not supported.
    pub fn unsupported(&self, what: impl Into<String>) -> LowerError {
        LowerError::Unsupported {
            op: op_key(self.node()),
            node: self.node_name(),
            what: what.into(),
        }
    }

    /// An error: the node is malformed for its op.
    pub fn invalid(&self, msg: String) -> LowerError {
        LowerError::Invalid {
            op: op_key(self.node()),
            node: self.node_name(),
            msg,
        }
    }

    /// The C element type of `t`, or an `unsupported` error naming the dtype.
    pub fn ctype_of(&self, t: &CTensor) -> Result<&'static str, LowerError> {
        ctype(t.dtype).ok_or_else(|| self.unsupported(format!("dtype {}", t.dtype)))
    }
}

/// A node's name for messages: its ONNX name, else its first output's name.
pub fn node_label(n: &Node) -> String {
    if n.provenance.onnx_name.is_empty() {
        n.outputs
            .first()
            .map(|v| v.name.clone())
            .unwrap_or_default()
    } else {
        n.provenance.onnx_name.clone()
    }
}

/// What a fusion rule sees: the graph, the anchor and the nodes already taken.
pub struct FuseCx<'a> {
    pub g: &'a Graph,
    pub anchor: NodeIndex,
    pub(crate) taken: &'a HashSet<NodeIndex>,
    pub(crate) graph_outputs: &'a HashSet<ValueRef>,
}

impl FuseCx<'_> {
    /// The op type of `n`.
    pub fn op_type(&self, n: NodeIndex) -> &str {
        self.g.g[n].op.op_type()
    }

    /// The single consumer `(node, slot)` of `n`'s single output, when `n` may be fused
    /// with it: the output is not a graph output and has exactly one reader, which is in no
    /// other kernel, and whose other inputs do not depend on the anchor (so they are computed
    /// before the kernel runs).
    pub fn sole_user(&self, n: NodeIndex) -> Option<(NodeIndex, usize)> {
        let node = self.g.g.node_weight(n)?;
        if node.outputs.len() != 1 {
            return None;
        }
        let v = ValueRef { node: n, out: 0 };
        if self.graph_outputs.contains(&v) {
            return None;
        }
        let users = self.g.users(v);
        let [(u, slot)] = users.as_slice() else {
            return None;
        };
        if self.taken.contains(u) {
            return None;
        }
        let others_ok = self.g.node_inputs(*u).iter().flatten().all(|x| {
            x.node == n
                || !petgraph::algo::has_path_connecting(&self.g.g, self.anchor, x.node, None)
        });
        others_ok.then_some((*u, *slot))
    }
}
