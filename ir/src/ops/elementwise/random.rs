//! Random elementwise ops: `Bernoulli` and `RandomUniformLike` (seeded MT19937 draws).

use super::math::{check_ratio, Rng};
use crate::onnx::attrs::NodeCtx;
use crate::op::{req, Attr, EvalCx, InferCx, Op};
use crate::ops::Registry;
use crate::shape::ValueType;
use crate::tensor::Tensor;
use crate::{DType, Result};
use serde::{Deserialize, Serialize};
use std::any::Any;

/// Registers this file's builders.
pub fn register(r: &mut Registry) {
    r.add("Bernoulli", |cx| {
        Ok(Box::new(Bernoulli {
            dtype: dtype_attr(cx)?,
            seed: cx.opt_f("seed")?,
        }))
    });
    r.add("RandomUniformLike", |cx| {
        let dtype = dtype_attr(cx)?;
        if dtype.is_some_and(|d| !d.is_float()) {
            return Err(cx.invalid("dtype", "must be a float type"));
        }
        Ok(Box::new(RandomUniformLike {
            dtype,
            low: cx.f("low", 0.0)?,
            high: cx.f("high", 1.0)?,
            seed: cx.opt_f("seed")?,
        }))
    });
}

fn dtype_attr(cx: &NodeCtx<'_>) -> Result<Option<DType>> {
    match cx.opt_i("dtype")? {
        None => Ok(None),
        Some(c) => i32::try_from(c)
            .ok()
            .and_then(DType::from_onnx_code)
            .filter(|d| !matches!(d, DType::String | DType::Complex64 | DType::Complex128))
            .map(Some)
            .ok_or_else(|| cx.invalid("dtype", &format!("unsupported data type {c}"))),
    }
}

fn seed_attrs(seed: Option<f32>, dtype: Option<DType>) -> Vec<(&'static str, Attr)> {
    let mut v = Vec::new();
    if let Some(d) = dtype {
        v.push(("dtype", Attr::Int(d.onnx_code() as i64)));
    }
    if let Some(s) = seed {
        v.push(("seed", Attr::Float(s)));
    }
    v
}

/// Draws 1 with probability `p` (the input's values), else 0.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Bernoulli {
    /// The output type (`None`: the input's).
    pub dtype: Option<DType>,
    pub seed: Option<f32>,
}

#[typetag::serde]
impl Op for Bernoulli {
    fn op_type(&self) -> &str {
        "Bernoulli"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let mut t = cx.input(0)?.clone();
        t.dtype = self.dtype.unwrap_or(t.dtype);
        Ok(vec![t])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let p = x.to_f()?;
        for &v in p.iter() {
            check_ratio("Bernoulli", "each probability", v)?;
        }
        let mut rng = Rng::from_float_seed(self.seed);
        let out = p.mapv(|v| if rng.uniform() < v { 1.0 } else { 0.0 });
        Ok(vec![Tensor::from_f64_as(
            self.dtype.unwrap_or(x.dtype()),
            out,
        )])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        seed_attrs(self.seed, self.dtype)
    }
    fn is_random(&self) -> bool {
        true
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Uniform values in `[low, high)` with the input's shape.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RandomUniformLike {
    /// The output type (`None`: the input's).
    pub dtype: Option<DType>,
    pub low: f32,
    pub high: f32,
    pub seed: Option<f32>,
}

#[typetag::serde]
impl Op for RandomUniformLike {
    fn op_type(&self) -> &str {
        "RandomUniformLike"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let mut t = cx.input(0)?.clone();
        t.dtype = self.dtype.unwrap_or(t.dtype);
        Ok(vec![t])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let dt = self.dtype.unwrap_or(x.dtype());
        let (lo, hi) = (self.low as f64, self.high as f64);
        let mut rng = Rng::from_float_seed(self.seed);
        let out = ndarray::ArrayD::from_shape_fn(x.shape(), |_| lo + (hi - lo) * rng.uniform());
        Ok(vec![Tensor::from_f64_as(dt, out)])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        let mut v = seed_attrs(self.seed, self.dtype);
        v.push(("low", Attr::Float(self.low)));
        v.push(("high", Attr::Float(self.high)));
        v
    }
    fn is_random(&self) -> bool {
        true
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}
