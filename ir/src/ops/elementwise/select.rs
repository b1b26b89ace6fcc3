//! Selection-like elementwise ops: `Where`, `Clip` and `Dropout`.

use super::math::{check_ratio, Rng};
use crate::onnx::attrs::NodeCtx;
use crate::op::{opt, req, Attr, EvalCx, InferCx, Op};
use crate::ops::util::{broadcast_shape, infer_broadcast};
use crate::ops::Registry;
use crate::shape::ValueType;
use crate::tensor::{Data, Tensor};
use crate::{eval_err, zip_data, DType, Result};
use ndarray::{ArrayD, IxDyn, Zip};
use serde::{Deserialize, Serialize};
use std::any::Any;

/// Registers this file's builders.
pub fn register(r: &mut Registry) {
    r.add("Where", |_| Ok(Box::new(Where)));
    r.add("Clip", build_clip);
    r.add("Dropout", build_dropout);
}

/// `cond ? x : y`, the three broadcast together.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Where;

fn select<T: Clone>(c: &ArrayD<bool>, x: &ArrayD<T>, y: &ArrayD<T>) -> Result<ArrayD<T>> {
    let s = broadcast_shape(&broadcast_shape(c.shape(), x.shape())?, y.shape())?;
    let view =
        |what: &str, sh: &[usize]| eval_err!("Where: cannot broadcast {what} {sh:?} to {s:?}");
    let cv = c
        .broadcast(IxDyn(&s))
        .ok_or_else(|| view("condition", c.shape()))?;
    let xv = x.broadcast(IxDyn(&s)).ok_or_else(|| view("X", x.shape()))?;
    let yv = y.broadcast(IxDyn(&s)).ok_or_else(|| view("Y", y.shape()))?;
    Ok(Zip::from(&cv)
        .and(&xv)
        .and(&yv)
        .map_collect(|&c, a, b| if c { a.clone() } else { b.clone() }))
}

#[typetag::serde]
impl Op for Where {
    fn op_type(&self) -> &str {
        "Where"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let dt = cx.input(1)?.dtype;
        Ok(vec![infer_broadcast(cx, Some(dt))?])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let c = req(inputs, 0)?.as_b()?;
        let x = req(inputs, 1)?;
        let y = req(inputs, 2)?;
        let data = zip_data!(x.data(), y.data(), a, b => select(c, a, b)?).ok_or_else(|| {
            eval_err!(
                "Where: X ({}) and Y ({}) must have the same type",
                x.dtype(),
                y.dtype()
            )
        })?;
        Ok(vec![Tensor::from_data(x.dtype(), data)?])
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Clamps to `[min, max]`: attributes before opset 11, optional inputs from 11 on.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Clip {
    /// The attribute bounds of opsets < 11 (`None`: unbounded).
    pub min: Option<f32>,
    pub max: Option<f32>,
}

fn build_clip(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    Ok(Box::new(Clip {
        min: cx.opt_f("min")?,
        max: cx.opt_f("max")?,
    }))
}

#[typetag::serde]
impl Op for Clip {
    fn op_type(&self) -> &str {
        "Clip"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        Ok(vec![cx.input(0)?.clone()])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let bound = |i: usize, attr: Option<f32>| -> Result<Option<Tensor>> {
            match opt(inputs, i) {
                Some(t) if t.len() == 1 => Ok(Some(t.reshape(&[])?)),
                Some(t) => Err(eval_err!(
                    "Clip: bound input {i} must be a scalar, got shape {:?}",
                    t.shape()
                )),
                None => Ok(attr.map(|v| Tensor::scalar(DType::F64, v as f64))),
            }
        };
        let lo = bound(1, self.min)?;
        let hi = bound(2, self.max)?;
        let out = match x.data() {
            Data::F(a) => {
                let lo = lo.map(|t| t.scalar_f64()).transpose()?;
                let hi = hi.map(|t| t.scalar_f64()).transpose()?;
                Tensor::float(
                    x.dtype(),
                    a.mapv(|v| {
                        let v = match lo {
                            Some(l) if v < l => l,
                            _ => v,
                        };
                        match hi {
                            Some(h) if v > h => h,
                            _ => v,
                        }
                    }),
                )
            }
            Data::I(a) => {
                let lo = lo.map(|t| t.to_i()).transpose()?;
                let hi = hi.map(|t| t.to_i()).transpose()?;
                let lo = lo.and_then(|t| t.iter().next().copied());
                let hi = hi.and_then(|t| t.iter().next().copied());
                Tensor::int(
                    x.dtype(),
                    a.mapv(|v| {
                        let v = lo.map_or(v, |l| v.max(l));
                        hi.map_or(v, |h| v.min(h))
                    }),
                )
            }
            _ => return Err(eval_err!("Clip: unsupported input type {}", x.dtype())),
        };
        Ok(vec![out])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        let mut v = Vec::new();
        if let Some(m) = self.min {
            v.push(("min", Attr::Float(m)));
        }
        if let Some(m) = self.max {
            v.push(("max", Attr::Float(m)));
        }
        v
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Dropout: identity with an all-true mask in inference; in training mode (opset 12+ input)
/// it zeroes elements with probability `ratio` from a generator seeded by `seed`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Dropout {
    /// The `ratio` attribute of opsets < 12 (unused: those run in inference mode).
    pub ratio: Option<f32>,
    pub seed: Option<i64>,
}

fn build_dropout(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    Ok(Box::new(Dropout {
        ratio: cx.opt_f("ratio")?,
        seed: cx.opt_i("seed")?,
    }))
}

#[typetag::serde]
impl Op for Dropout {
    fn op_type(&self) -> &str {
        "Dropout"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let x = cx.input(0)?.clone();
        let mut mask = x.clone();
        mask.dtype = DType::Bool;
        Ok(vec![x, mask])
    }
    fn eval(&self, cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let ratio = opt(inputs, 1).map(|t| t.scalar_f64()).transpose()?;
        let training = match opt(inputs, 2) {
            Some(t) => *t
                .as_b()?
                .iter()
                .next()
                .ok_or_else(|| eval_err!("Dropout: training_mode is empty"))?,
            None => false,
        };
        let ratio = ratio.unwrap_or(0.5);
        if !training || ratio == 0.0 {
            let mask = Tensor::bool(ArrayD::from_elem(IxDyn(x.shape()), true));
            return Ok(vec![x.clone(), mask]
                .into_iter()
                .take(cx.num_outputs.max(1))
                .collect());
        }
        check_ratio("Dropout", "ratio", ratio)?;
        let a = x.as_f()?;
        let mut rng = Rng::new(self.seed);
        let mask = a.mapv(|_| rng.uniform() >= ratio);
        let scale = if ratio < 1.0 {
            1.0 / (1.0 - ratio)
        } else {
            0.0
        };
        let y = ndarray::Zip::from(a)
            .and(&mask)
            .map_collect(|&v, &m| if m { v * scale } else { 0.0 });
        Ok(vec![Tensor::float(x.dtype(), y), Tensor::bool(mask)])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        let mut v = Vec::new();
        if let Some(r) = self.ratio {
            v.push(("ratio", Attr::Float(r)));
        }
        if let Some(s) = self.seed {
            v.push(("seed", Attr::Int(s)));
        }
        v
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}
