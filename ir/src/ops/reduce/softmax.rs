//! `Softmax`, `LogSoftmax` and `Hardmax` (opset < 13: over the 2-D coercion at `axis`; from
//! 13: along the single `axis`).

use super::arg::pick;
use super::common::{floats, groups, one_axis, ungroup};
use crate::op::{req, Attr, EvalCx, InferCx, Op};
use crate::ops::util::same_as_input;
use crate::ops::Registry;
use crate::shape::ValueType;
use crate::tensor::Tensor;
use crate::Result;
use ndarray::ArrayD;
use serde::{Deserialize, Serialize};
use std::any::Any;

/// Which normalised exponential a [`SoftmaxLike`] computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SoftKind {
    Softmax,
    LogSoftmax,
    Hardmax,
}

/// `Softmax`, `LogSoftmax` or `Hardmax`. With `legacy` (opset < 13) the input is seen as a
/// matrix `[prod(dims[..axis]), prod(dims[axis..])]` and each row is normalised.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SoftmaxLike {
    pub kind: SoftKind,
    pub axis: i64,
    pub legacy: bool,
}

/// Registers the three builders.
pub fn register(r: &mut Registry) {
    fn build(cx: &crate::onnx::attrs::NodeCtx<'_>, kind: SoftKind) -> Result<Box<dyn Op>> {
        let legacy = cx.opset < 13;
        Ok(Box::new(SoftmaxLike {
            kind,
            axis: cx.i("axis", if legacy { 1 } else { -1 })?,
            legacy,
        }))
    }
    r.add("Softmax", |cx| build(cx, SoftKind::Softmax));
    r.add("LogSoftmax", |cx| build(cx, SoftKind::LogSoftmax));
    r.add("Hardmax", |cx| build(cx, SoftKind::Hardmax));
}

/// Softmax of one group of values.
pub fn softmax(v: &[f64]) -> Vec<f64> {
    let m = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = v.iter().map(|x| (x - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|x| x / s).collect()
}

/// Log-softmax of one group of values.
pub fn log_softmax(v: &[f64]) -> Vec<f64> {
    let m = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let ls = v.iter().map(|x| (x - m).exp()).sum::<f64>().ln();
    v.iter().map(|x| x - m - ls).collect()
}

/// Applies `f` to each group of `a` along the masked axes (shape unchanged).
pub fn map_groups(
    a: &ArrayD<f64>,
    mask: &[bool],
    f: impl Fn(&[f64]) -> Vec<f64>,
) -> Result<ArrayD<f64>> {
    let red: Vec<usize> = a
        .shape()
        .iter()
        .zip(mask)
        .filter(|(_, &m)| m)
        .map(|(d, _)| *d)
        .collect();
    let out: Vec<Vec<f64>> = groups(a, mask)?.iter().map(|g| f(g)).collect();
    ungroup(a.shape(), mask, &red, out)
}

impl SoftmaxLike {
    fn name(&self) -> &'static str {
        match self.kind {
            SoftKind::Softmax => "Softmax",
            SoftKind::LogSoftmax => "LogSoftmax",
            SoftKind::Hardmax => "Hardmax",
        }
    }
}

#[typetag::serde]
impl Op for SoftmaxLike {
    fn op_type(&self) -> &str {
        self.name()
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        same_as_input(cx, 0, 1)
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let a = floats(self.name(), x)?;
        let rank = x.rank();
        let mask: Vec<bool> = if rank == 0 {
            Vec::new()
        } else {
            let ax = one_axis(self.name(), self.axis, rank)?;
            (0..rank)
                .map(|i| if self.legacy { i >= ax } else { i == ax })
                .collect()
        };
        let y = match self.kind {
            SoftKind::Softmax => map_groups(a, &mask, softmax)?,
            SoftKind::LogSoftmax => map_groups(a, &mask, log_softmax)?,
            SoftKind::Hardmax => map_groups(a, &mask, |g| {
                let mut o = vec![0.0; g.len()];
                if !g.is_empty() {
                    o[pick(g, true, false)] = 1.0;
                }
                o
            })?,
        };
        Ok(vec![Tensor::float(x.dtype(), y)])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        vec![("axis", Attr::Int(self.axis))]
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::IxDyn;

    #[test]
    fn legacy_softmax_coerces_to_2d() {
        let a = ArrayD::from_shape_vec(IxDyn(&[1, 2, 2]), vec![0.0, 0.0, 0.0, 0.0]).unwrap();
        // Over axes 1 and 2 together: each of the 4 values gets 1/4.
        let y = map_groups(&a, &[false, true, true], softmax).unwrap();
        assert!(y.iter().all(|&v| (v - 0.25).abs() < 1e-12));
        let y = map_groups(&a, &[false, false, true], softmax).unwrap();
        assert!(y.iter().all(|&v| (v - 0.5).abs() < 1e-12));
    }
}
