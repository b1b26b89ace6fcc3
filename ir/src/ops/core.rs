//! Structural ops: graph inputs, constants, identity, and opaque ops the library cannot run.

use super::Registry;
use crate::onnx::attrs::NodeCtx;
use crate::op::{req, Attr, EvalCx, InferCx, Op};
use crate::shape::ValueType;
use crate::tensor::Tensor;
use crate::weights::ConstTensor;
use crate::{import_err, infer_err, Error, Result};
use serde::{Deserialize, Serialize};
use std::any::Any;

/// Registers this family's builders.
pub fn register(r: &mut Registry) {
    r.add("Constant", build_constant);
    r.add("Identity", |_| Ok(Box::new(Identity)));
    r.add("OptionalHasElement", |_| Ok(Box::new(OptionalHasElement)));
    r.add("OptionalGetElement", |_| Ok(Box::new(OptionalGetElement)));
}

/// A formal input or a captured outer value of a graph; its value is supplied by the caller.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Input {
    pub ty: ValueType,
}

#[typetag::serde]
impl Op for Input {
    fn op_type(&self) -> &str {
        "Input"
    }
    fn infer(&self, _cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        Ok(vec![self.ty.clone()])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, _inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        Err(Error::Eval(
            "internal: Input nodes are bound by the interpreter".into(),
        ))
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A constant tensor (an ONNX initializer or `Constant` node).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Constant {
    pub value: ConstTensor,
}

#[typetag::serde]
impl Op for Constant {
    fn op_type(&self) -> &str {
        "Constant"
    }
    fn infer(&self, _cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        Ok(vec![ValueType::known(self.value.dtype, &self.value.shape)])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, _inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        Ok(vec![self.value.to_tensor()?])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        vec![("value", Attr::Tensor(self.value.clone()))]
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

fn build_constant(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    use crate::dtype::DType;
    use ndarray::{ArrayD, IxDyn};
    let one = |a: ArrayD<f64>, d: DType| ConstTensor::from_tensor(Tensor::from_f64_as(d, a));
    let value = if let Some(t) = cx.tensor_attr("value")? {
        t
    } else if let Some(v) = cx.opt_f("value_float")? {
        one(ArrayD::from_elem(IxDyn(&[]), v as f64), DType::F32)
    } else if let Some(v) = cx.floats("value_floats")? {
        one(
            ArrayD::from_shape_vec(IxDyn(&[v.len()]), v.iter().map(|&x| x as f64).collect())
                .map_err(|e| import_err!("{e}"))?,
            DType::F32,
        )
    } else if let Some(v) = cx.opt_i("value_int")? {
        ConstTensor::from_tensor(Tensor::from_i64(&[], vec![v])?)
    } else if let Some(v) = cx.ints("value_ints")? {
        ConstTensor::from_tensor(Tensor::from_i64(&[v.len()], v)?)
    } else if let Some(v) = cx.opt_s("value_string")? {
        ConstTensor::from_tensor(Tensor::string(ArrayD::from_elem(IxDyn(&[]), v)))
    } else if let Some(v) = cx.strings("value_strings")? {
        let n = v.len();
        ConstTensor::from_tensor(Tensor::string(
            ArrayD::from_shape_vec(IxDyn(&[n]), v).map_err(|e| import_err!("{e}"))?,
        ))
    } else {
        return Err(import_err!(
            "Constant node '{}' has no value attribute",
            cx.node_name
        ));
    };
    Ok(Box::new(Constant { value }))
}

/// Passes its input through unchanged.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Identity;

#[typetag::serde]
impl Op for Identity {
    fn op_type(&self) -> &str {
        "Identity"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        Ok(vec![cx.input(0)?.clone()])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        Ok(vec![req(inputs, 0)?.clone()])
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// `OptionalHasElement` over tensor values: true when the (optional) input is given. Values
/// are always tensors here (optional and sequence types are refused at import), so an input that
/// is present holds an element.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OptionalHasElement;

#[typetag::serde]
impl Op for OptionalHasElement {
    fn op_type(&self) -> &str {
        "OptionalHasElement"
    }
    fn infer(&self, _cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        Ok(vec![ValueType::known(crate::DType::Bool, &[])])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let has = inputs.first().copied().flatten().is_some();
        Ok(vec![Tensor::bool(ndarray::arr0(has).into_dyn())])
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// `OptionalGetElement` over tensor values: the input itself; an error when it is absent.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OptionalGetElement;

#[typetag::serde]
impl Op for OptionalGetElement {
    fn op_type(&self) -> &str {
        "OptionalGetElement"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        Ok(vec![cx.input(0)?.clone()])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        Ok(vec![req(inputs, 0)
            .map_err(|_| crate::eval_err!("OptionalGetElement: the optional input is empty"))?
            .clone()])
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// An op the library does not implement, kept with its attributes so the graph can be viewed
/// and exported. Inference leaves its outputs unknown; evaluation reports the missing op.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Opaque {
    pub op_type: String,
    pub domain: String,
    /// Attributes as `(name, rendered value)`, for display.
    pub attributes: Vec<(String, String)>,
    /// Declared output types where the model gave them.
    pub declared: Vec<Option<ValueType>>,
    /// Why it is opaque (unknown op, or a builder error).
    pub reason: String,
    /// The ONNX attributes verbatim (serialized protobuf bytes), for export.
    #[serde(skip)]
    pub raw_attrs: Vec<Vec<u8>>,
}

#[typetag::serde]
impl Op for Opaque {
    fn op_type(&self) -> &str {
        &self.op_type
    }
    fn domain(&self) -> &str {
        &self.domain
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let dt = cx
            .inputs
            .iter()
            .flatten()
            .next()
            .map(|t| t.dtype)
            .unwrap_or(crate::DType::F32);
        Ok((0..cx.num_outputs)
            .map(|i| {
                self.declared
                    .get(i)
                    .cloned()
                    .flatten()
                    .unwrap_or_else(|| ValueType::unranked(dt))
            })
            .collect())
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, _inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let op = if self.domain.is_empty() {
            self.op_type.clone()
        } else {
            format!("{}.{}", self.domain, self.op_type)
        };
        Err(Error::Unsupported {
            op,
            detail: if self.reason.is_empty() {
                String::new()
            } else {
                format!(" ({})", self.reason)
            },
        })
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Checks that a node has at least `n` inputs during inference.
pub fn need_inputs(cx: &InferCx<'_>, n: usize, op: &str) -> Result<()> {
    if cx.inputs.len() < n {
        return Err(infer_err!("{op} needs {n} inputs, got {}", cx.inputs.len()));
    }
    Ok(())
}
