//! The op trait every node's operation implements, and the contexts it is given.
//!
//! An op is a struct with typed attributes implementing [`Op`]: it knows its ONNX name, infers its
//! output types, evaluates itself in the reference interpreter, reports its attributes for export
//! and its work (MACs). Ops are trait objects serialised through `typetag`, registered for import
//! by ONNX name in [`crate::ops::registry`].

use crate::graph::Graph;
use crate::shape::{Dim, ValueType};
use crate::tensor::Tensor;
use crate::weights::ConstTensor;
use crate::{eval_err, infer_err, Result};
use std::any::Any;
use std::cell::Cell;
use std::fmt::Debug;

/// An ONNX attribute value, as an op reports it for export.
#[derive(Clone, Debug)]
pub enum Attr {
    Int(i64),
    Float(f32),
    Str(String),
    Ints(Vec<i64>),
    Floats(Vec<f32>),
    Strs(Vec<String>),
    Tensor(ConstTensor),
    Tensors(Vec<ConstTensor>),
    Graph(Box<Graph>),
    Graphs(Vec<Graph>),
}

/// The operation of a node.
#[typetag::serde(tag = "op")]
pub trait Op: Debug + Send + Sync + dyn_clone::DynClone + Any {
    /// The ONNX op type (`Conv`, `Quant`, ...).
    fn op_type(&self) -> &str;

    /// The ONNX domain (`""` is the default `ai.onnx` domain).
    fn domain(&self) -> &str {
        ""
    }

    /// Output types from input types (and input values where they are constants).
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>>;

    /// Reference evaluation: simple and obviously correct. `inputs[i]` is `None` for an omitted
    /// optional input. Returns `cx.num_outputs` tensors (or more; extra ones are dropped).
    fn eval(&self, cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>>;

    /// ONNX attributes for export, only those differing from defaults need be listed.
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        Vec::new()
    }

    /// Multiply-accumulate count given the node's input and output types (0 if unknown).
    fn macs(&self, _inputs: &[Option<&ValueType>], _outputs: &[ValueType]) -> u64 {
        0
    }

    /// Subgraphs held by this op (If branches, Loop and Scan bodies), for traversal and export.
    fn subgraphs(&self) -> Vec<&Graph> {
        Vec::new()
    }

    /// Whether evaluating it twice on the same inputs may give different outputs (random ops).
    fn is_random(&self) -> bool {
        false
    }

    /// Output values inference can tell without evaluating: integer shape values as dims,
    /// possibly symbolic (e.g. `Shape` of a partly known shape, then `Gather`, `Concat`).
    /// Entry `i` is output `i`'s values in row-major order, `None` when unknown.
    fn infer_dims(&self, _cx: &InferCx<'_>) -> Vec<Option<Vec<Dim>>> {
        Vec::new()
    }

    /// Downcasting support.
    fn as_any(&self) -> &dyn Any;
}

dyn_clone::clone_trait_object!(Op);

/// What shape inference knows about a node's inputs.
pub struct InferCx<'a> {
    /// Input types; `None` for omitted optional inputs.
    pub inputs: &'a [Option<ValueType>],
    /// Input values that are known constants.
    pub values: &'a [Option<Tensor>],
    /// Number of outputs the node declares.
    pub num_outputs: usize,
    /// Counter for fresh symbolic dims.
    pub fresh: &'a Cell<u64>,
    /// Integer input values known as (possibly symbolic) dims, from [`Op::infer_dims`].
    pub dims: &'a [Option<Vec<Dim>>],
}

impl<'a> InferCx<'a> {
    /// The type of input `i`, or an error if it is absent.
    pub fn input(&self, i: usize) -> Result<&ValueType> {
        self.inputs
            .get(i)
            .and_then(|x| x.as_ref())
            .ok_or_else(|| infer_err!("missing required input {i}"))
    }
    /// The type of input `i` if present.
    pub fn opt_input(&self, i: usize) -> Option<&ValueType> {
        self.inputs.get(i).and_then(|x| x.as_ref())
    }
    /// The constant value of input `i`, if known.
    pub fn value(&self, i: usize) -> Option<&Tensor> {
        self.values.get(i).and_then(|x| x.as_ref())
    }
    /// The values of integer input `i` as dims: symbolic ones from inference, or a known
    /// constant whose entries are all non-negative.
    pub fn dims_value(&self, i: usize) -> Option<Vec<Dim>> {
        if let Some(d) = self.dims.get(i).and_then(|d| d.as_ref()) {
            return Some(d.clone());
        }
        let t = self.value(i)?;
        if !t.dtype().is_int() {
            return None;
        }
        t.to_i64_vec()
            .ok()?
            .into_iter()
            .map(|v| u64::try_from(v).ok().map(Dim::Known))
            .collect()
    }
    /// A new symbolic dim (for data-dependent sizes).
    pub fn fresh_dim(&self) -> Dim {
        let n = self.fresh.get();
        self.fresh.set(n + 1);
        Dim::sym(&format!("unk__{n}"))
    }
    /// A shape of `rank` fresh dims.
    pub fn fresh_shape(&self, rank: usize) -> Vec<Dim> {
        (0..rank).map(|_| self.fresh_dim()).collect()
    }
    /// The rank of input `i` if known.
    pub fn rank(&self, i: usize) -> Option<usize> {
        self.opt_input(i).and_then(|t| t.rank())
    }
}

/// Runs a subgraph on behalf of an op (If, Loop, Scan), supplied by the interpreter.
pub trait SubgraphRunner {
    /// Runs `g` with `inputs` bound to its formal inputs in order and its captures resolved
    /// from the enclosing scope; returns its outputs in order.
    fn run(&mut self, g: &Graph, inputs: Vec<Tensor>) -> Result<Vec<Tensor>>;
}

/// What evaluation is given besides the inputs.
pub struct EvalCx<'a> {
    /// Number of outputs the node declares.
    pub num_outputs: usize,
    /// Runs subgraphs (only ops with subgraphs use it).
    pub runner: &'a mut dyn SubgraphRunner,
}

/// Input `i` or an error naming it.
pub fn req<'t>(inputs: &[Option<&'t Tensor>], i: usize) -> Result<&'t Tensor> {
    inputs
        .get(i)
        .copied()
        .flatten()
        .ok_or_else(|| eval_err!("missing required input {i}"))
}

/// Input `i` if present.
pub fn opt<'t>(inputs: &[Option<&'t Tensor>], i: usize) -> Option<&'t Tensor> {
    inputs.get(i).copied().flatten()
}

/// Normalises a possibly negative axis against `rank`.
pub fn norm_axis(axis: i64, rank: usize) -> Result<usize> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r {
        return Err(eval_err!("axis {axis} is out of range for rank {rank}"));
    }
    Ok(a as usize)
}
