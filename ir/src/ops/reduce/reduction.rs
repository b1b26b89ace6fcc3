//! The `Reduce*` ops: Sum, Mean, Max, Min, Prod, L1, L2, LogSum, LogSumExp, SumSquare.

use super::common::{array, axes_mask, groups, reduced_dims, reduced_shape};
use crate::onnx::attrs::NodeCtx;
use crate::op::{opt, req, Attr, EvalCx, InferCx, Op};
use crate::ops::Registry;
use crate::shape::{Dim, ValueType};
use crate::tensor::{f64_to_i128, Data, Tensor};
use crate::{eval_err, infer_err, DType, Result};
use serde::{Deserialize, Serialize};
use std::any::Any;

/// Which reduction a [`Reduce`] computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReduceKind {
    Sum,
    Mean,
    Max,
    Min,
    Prod,
    L1,
    L2,
    LogSum,
    LogSumExp,
    SumSquare,
}

impl ReduceKind {
    const ALL: [(ReduceKind, &'static str); 10] = [
        (ReduceKind::Sum, "ReduceSum"),
        (ReduceKind::Mean, "ReduceMean"),
        (ReduceKind::Max, "ReduceMax"),
        (ReduceKind::Min, "ReduceMin"),
        (ReduceKind::Prod, "ReduceProd"),
        (ReduceKind::L1, "ReduceL1"),
        (ReduceKind::L2, "ReduceL2"),
        (ReduceKind::LogSum, "ReduceLogSum"),
        (ReduceKind::LogSumExp, "ReduceLogSumExp"),
        (ReduceKind::SumSquare, "ReduceSumSquare"),
    ];

    fn name(self) -> &'static str {
        ReduceKind::ALL
            .iter()
            .find(|(k, _)| *k == self)
            .map(|(_, n)| *n)
            .unwrap_or("Reduce")
    }

    /// The reduction of a group of float values; an empty group gives the identity.
    fn float(self, v: &[f64]) -> f64 {
        let sum = || v.iter().sum::<f64>();
        let sumsq = || v.iter().map(|x| x * x).sum::<f64>();
        let max = || {
            v.iter().fold(f64::NEG_INFINITY, |m, &x| {
                if m.is_nan() || x.is_nan() {
                    f64::NAN
                } else {
                    m.max(x)
                }
            })
        };
        match self {
            ReduceKind::Sum => sum(),
            ReduceKind::Mean => sum() / v.len() as f64,
            ReduceKind::Max => max(),
            ReduceKind::Min => v.iter().fold(f64::INFINITY, |m, &x| {
                if m.is_nan() || x.is_nan() {
                    f64::NAN
                } else {
                    m.min(x)
                }
            }),
            ReduceKind::Prod => v.iter().product(),
            ReduceKind::L1 => v.iter().map(|x| x.abs()).sum(),
            ReduceKind::L2 => sumsq().sqrt(),
            ReduceKind::LogSum => sum().ln(),
            ReduceKind::LogSumExp => {
                let m = max();
                if !m.is_finite() {
                    m
                } else {
                    m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
                }
            }
            ReduceKind::SumSquare => sumsq(),
        }
    }

    /// The exact integer reduction, or `None` for reductions computed through floats.
    fn int(self, v: &[i128], dt: DType) -> Option<i128> {
        let (lo, hi) = dt.int_range().unwrap_or((i128::MIN, i128::MAX));
        Some(match self {
            ReduceKind::Sum => v.iter().fold(0i128, |a, &x| a.wrapping_add(x)),
            ReduceKind::Prod => v.iter().fold(1i128, |a, &x| a.wrapping_mul(x)),
            ReduceKind::Max => v.iter().copied().max().unwrap_or(lo),
            ReduceKind::Min => v.iter().copied().min().unwrap_or(hi),
            ReduceKind::L1 => v.iter().fold(0i128, |a, &x| a.wrapping_add(x.abs())),
            ReduceKind::SumSquare => v
                .iter()
                .fold(0i128, |a, &x| a.wrapping_add(x.wrapping_mul(x))),
            _ => return None,
        })
    }
}

/// An ONNX `Reduce*` op. Axes come from the `axes` attribute (older opsets) or the optional
/// second input (ReduceSum from opset 13, the others from 18); none means all axes, or none
/// at all with `noop_with_empty_axes`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Reduce {
    pub kind: ReduceKind,
    /// The `axes` attribute, when the node has one.
    pub axes: Option<Vec<i64>>,
    pub keepdims: bool,
    pub noop_with_empty_axes: bool,
}

fn build(cx: &NodeCtx<'_>, kind: ReduceKind) -> Result<Box<dyn Op>> {
    Ok(Box::new(Reduce {
        kind,
        axes: cx.ints("axes")?.filter(|a| !a.is_empty()),
        keepdims: cx.i("keepdims", 1)? != 0,
        noop_with_empty_axes: cx.i("noop_with_empty_axes", 0)? != 0,
    }))
}

/// Registers the `Reduce*` builders.
pub fn register(r: &mut Registry) {
    r.add("ReduceSum", |cx| build(cx, ReduceKind::Sum));
    r.add("ReduceMean", |cx| build(cx, ReduceKind::Mean));
    r.add("ReduceMax", |cx| build(cx, ReduceKind::Max));
    r.add("ReduceMin", |cx| build(cx, ReduceKind::Min));
    r.add("ReduceProd", |cx| build(cx, ReduceKind::Prod));
    r.add("ReduceL1", |cx| build(cx, ReduceKind::L1));
    r.add("ReduceL2", |cx| build(cx, ReduceKind::L2));
    r.add("ReduceLogSum", |cx| build(cx, ReduceKind::LogSum));
    r.add("ReduceLogSumExp", |cx| build(cx, ReduceKind::LogSumExp));
    r.add("ReduceSumSquare", |cx| build(cx, ReduceKind::SumSquare));
}

impl Reduce {
    /// The reduced-axes mask from the raw axes list (empty: all axes, or none with noop).
    fn mask(&self, raw: &[i64], rank: usize) -> Result<Vec<bool>> {
        if raw.is_empty() {
            Ok(vec![!self.noop_with_empty_axes; rank])
        } else {
            axes_mask(self.kind.name(), raw, rank)
        }
    }
}

#[typetag::serde]
impl Op for Reduce {
    fn op_type(&self) -> &str {
        self.kind.name()
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let x = cx.input(0)?;
        let Some(dims) = &x.shape else {
            return Ok(vec![ValueType::unranked(x.dtype)]);
        };
        let raw: Option<Vec<i64>> = if let Some(a) = &self.axes {
            Some(a.clone())
        } else if let Some(t) = cx.opt_input(1) {
            if let Some(v) = cx.value(1) {
                Some(v.to_i64_vec()?)
            } else if t.shape.as_deref() == Some(&[Dim::Known(0)][..]) {
                Some(Vec::new())
            } else {
                None
            }
        } else {
            Some(Vec::new())
        };
        Ok(vec![match raw {
            Some(raw) => {
                let mask = self.mask(&raw, dims.len()).map_err(|e| infer_err!("{e}"))?;
                ValueType::new(x.dtype, reduced_dims(dims, &mask, self.keepdims))
            }
            None if self.keepdims => ValueType::new(x.dtype, cx.fresh_shape(dims.len())),
            None => ValueType::unranked(x.dtype),
        }])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let raw = match (&self.axes, opt(inputs, 1)) {
            (Some(a), _) => a.clone(),
            (None, Some(t)) => t.to_i64_vec()?,
            (None, None) => Vec::new(),
        };
        let mask = self.mask(&raw, x.rank())?;
        let shape = reduced_shape(x.shape(), &mask, self.keepdims);
        let dt = x.dtype();
        let k = self.kind;
        let out = match x.data() {
            Data::F(a) => {
                let v: Vec<f64> = groups(a, &mask)?.iter().map(|g| k.float(g)).collect();
                Tensor::float(dt, array(k.name(), &shape, v)?)
            }
            Data::I(a) => {
                let v: Vec<i128> = groups(a, &mask)?
                    .iter()
                    .map(|g| {
                        k.int(g, dt).unwrap_or_else(|| {
                            let f: Vec<f64> = g.iter().map(|&x| x as f64).collect();
                            f64_to_i128(k.float(&f))
                        })
                    })
                    .collect();
                Tensor::int(dt, array(k.name(), &shape, v)?)
            }
            Data::B(a) if matches!(k, ReduceKind::Max | ReduceKind::Min) => {
                let v: Vec<bool> = groups(a, &mask)?
                    .iter()
                    .map(|g| {
                        if k == ReduceKind::Max {
                            g.iter().any(|&b| b)
                        } else {
                            g.iter().all(|&b| b)
                        }
                    })
                    .collect();
                Tensor::bool(array(k.name(), &shape, v)?)
            }
            _ => {
                return Err(eval_err!(
                    "{}: unsupported input type {dt}",
                    self.kind.name()
                ))
            }
        };
        Ok(vec![out])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        let mut v = vec![("keepdims", Attr::Int(self.keepdims as i64))];
        if let Some(a) = &self.axes {
            v.push(("axes", Attr::Ints(a.clone())));
        }
        if self.noop_with_empty_axes {
            v.push(("noop_with_empty_axes", Attr::Int(1)));
        }
        v
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_groups_give_identities() {
        assert_eq!(ReduceKind::Sum.float(&[]), 0.0);
        assert_eq!(ReduceKind::Prod.float(&[]), 1.0);
        assert_eq!(ReduceKind::Max.float(&[]), f64::NEG_INFINITY);
        assert_eq!(ReduceKind::Min.float(&[]), f64::INFINITY);
        assert_eq!(ReduceKind::LogSum.float(&[]), f64::NEG_INFINITY);
        assert_eq!(ReduceKind::LogSumExp.float(&[]), f64::NEG_INFINITY);
        assert_eq!(ReduceKind::Min.int(&[], DType::U8), Some(255));
    }

    #[test]
    fn log_sum_exp_is_stable() {
        let v = ReduceKind::LogSumExp.float(&[1000.0, 1000.0]);
        assert!((v - (1000.0 + 2f64.ln())).abs() < 1e-9);
    }
}
