//! Ops that create tensors from sizes or patterns: `ConstantOfShape`, `Range`, `EyeLike`,
//! `OneHot`, `Trilu`.

use super::common::{assemble, const_ints, fill_value, numel, to_sizes, unravel, vec_len};
use crate::onnx::attrs::NodeCtx;
use crate::op::{opt, req, Attr, EvalCx, InferCx, Op};
use crate::shape::{Dim, ValueType};
use crate::tensor::Tensor;
use crate::weights::ConstTensor;
use crate::{eval_err, infer_err, DType, Result};
use ndarray::{ArrayD, IxDyn};
use serde::{Deserialize, Serialize};
use std::any::Any;

// ---------------------------------------------------------------------------------------------
// ConstantOfShape

/// A tensor of the given shape filled with `value` (default float32 zero).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConstantOfShape {
    pub value: Option<ConstTensor>,
}

pub fn build_constant_of_shape(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    let value = cx.tensor_attr("value")?;
    if value.as_ref().is_some_and(|v| v.numel() != 1) {
        return Err(cx.invalid("value", "must hold exactly one element"));
    }
    Ok(Box::new(ConstantOfShape { value }))
}

impl ConstantOfShape {
    fn dtype(&self) -> DType {
        self.value.as_ref().map(|v| v.dtype).unwrap_or(DType::F32)
    }
}

#[typetag::serde]
impl Op for ConstantOfShape {
    fn op_type(&self) -> &str {
        "ConstantOfShape"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        if let Some(d) = const_ints(cx, 0).and_then(|v| v.into_iter().find(|&d| d < 0)) {
            return Err(infer_err!("ConstantOfShape: negative dim {d}"));
        }
        let shape = match cx.dims_value(0) {
            Some(v) => Some(v),
            None => vec_len(cx, 0).map(|n| cx.fresh_shape(n)),
        };
        Ok(vec![ValueType {
            dtype: self.dtype(),
            shape,
        }])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let shape = to_sizes("ConstantOfShape", &req(inputs, 0)?.to_i64_vec()?)?;
        let v = self.value.as_ref().map(|c| c.to_tensor()).transpose()?;
        let fill = fill_value("ConstantOfShape", self.dtype(), v.as_ref())?;
        let n = numel("ConstantOfShape", &shape)?;
        Ok(vec![assemble(
            "ConstantOfShape",
            self.dtype(),
            &[&fill],
            &shape,
            &vec![(0, 0); n],
        )?])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        match &self.value {
            Some(v) => vec![("value", Attr::Tensor(v.clone()))],
            None => Vec::new(),
        }
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

// ---------------------------------------------------------------------------------------------
// Range

/// `start, start + delta, ...` up to (excluding) `limit`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Range;

/// Number of elements of a range: `max(ceil((limit - start) / delta), 0)`.
fn range_len(start: f64, limit: f64, delta: f64) -> Result<usize> {
    if delta == 0.0 || !delta.is_finite() || !start.is_finite() || !limit.is_finite() {
        return Err(eval_err!(
            "Range: start {start}, limit {limit} and delta {delta} must be finite, delta non-zero"
        ));
    }
    let n = ((limit - start) / delta).ceil().max(0.0);
    if n > (1u64 << 32) as f64 {
        return Err(eval_err!("Range: {n} elements is too many"));
    }
    Ok(n as usize)
}

#[typetag::serde]
impl Op for Range {
    fn op_type(&self) -> &str {
        "Range"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let dt = cx.input(0)?.dtype;
        let v = |i| cx.value(i).and_then(|t: &Tensor| t.scalar_f64().ok());
        let d = match (v(0), v(1), v(2)) {
            (Some(a), Some(b), Some(c)) => Dim::Known(range_len(a, b, c)? as u64),
            _ => cx.fresh_dim(),
        };
        Ok(vec![ValueType::new(dt, vec![d])])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let (s, l, d) = (req(inputs, 0)?, req(inputs, 1)?, req(inputs, 2)?);
        let dt = s.dtype();
        if dt.is_int() {
            let (a, b, c) = (
                s.to_i()?.iter().next().copied().unwrap_or(0),
                l.to_i()?.iter().next().copied().unwrap_or(0),
                d.to_i()?.iter().next().copied().unwrap_or(0),
            );
            if s.len() != 1 || l.len() != 1 || d.len() != 1 || c == 0 {
                return Err(eval_err!(
                    "Range: start, limit and delta must be scalars and delta non-zero"
                ));
            }
            let n = if (c > 0 && b > a) || (c < 0 && b < a) {
                ((b - a).abs() + c.abs() - 1) / c.abs()
            } else {
                0
            };
            if n > 1 << 32 {
                return Err(eval_err!("Range: {n} elements is too many"));
            }
            let v: Vec<i128> = (0..n).map(|i| a + i * c).collect();
            let arr = ArrayD::from_shape_vec(IxDyn(&[n as usize]), v)
                .map_err(|e| eval_err!("Range: {e}"))?;
            return Ok(vec![Tensor::int(dt, arr)]);
        }
        let (a, b, c) = (s.scalar_f64()?, l.scalar_f64()?, d.scalar_f64()?);
        let n = range_len(a, b, c)?;
        let arr = ArrayD::from_shape_vec(IxDyn(&[n]), (0..n).map(|i| a + i as f64 * c).collect())
            .map_err(|e| eval_err!("Range: {e}"))?;
        Ok(vec![Tensor::from_f64_as(dt, arr)])
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

// ---------------------------------------------------------------------------------------------
// EyeLike

/// A 2-D tensor shaped like its input with ones on diagonal `k`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EyeLike {
    pub dtype: Option<DType>,
    pub k: i64,
}

pub fn build_eye_like(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    let dtype = match cx.opt_i("dtype")? {
        Some(c) => Some(
            DType::from_onnx_code(c as i32)
                .ok_or_else(|| cx.invalid("dtype", "is not a known data type"))?,
        ),
        None => None,
    };
    Ok(Box::new(EyeLike {
        dtype,
        k: cx.i("k", 0)?,
    }))
}

#[typetag::serde]
impl Op for EyeLike {
    fn op_type(&self) -> &str {
        "EyeLike"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let x = cx.input(0)?;
        if x.rank().is_some_and(|r| r != 2) {
            return Err(infer_err!("EyeLike: input must be 2-D"));
        }
        Ok(vec![ValueType {
            dtype: self.dtype.unwrap_or(x.dtype),
            shape: x.shape.clone(),
        }])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let [r, c] = x.shape() else {
            return Err(eval_err!("EyeLike: input must be 2-D, got {:?}", x.shape()));
        };
        let k = self.k as i128;
        let a = ArrayD::from_shape_fn(IxDyn(&[*r, *c]), |ix| {
            if ix[1] as i128 - ix[0] as i128 == k {
                1.0
            } else {
                0.0
            }
        });
        Ok(vec![Tensor::from_f64_as(
            self.dtype.unwrap_or(x.dtype()),
            a,
        )])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        let mut v = vec![("k", Attr::Int(self.k))];
        if let Some(d) = self.dtype {
            v.push(("dtype", Attr::Int(d.onnx_code() as i64)));
        }
        v
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

// ---------------------------------------------------------------------------------------------
// OneHot

/// One-hot encodes `indices` (negative ones wrap, out-of-range ones give all-off) with a new
/// axis of size `depth` at `axis`, using `values = [off, on]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OneHot {
    pub axis: i64,
}

impl OneHot {
    fn axis_for(&self, rank: usize) -> Result<usize> {
        let r = rank as i64 + 1;
        let a = if self.axis < 0 {
            self.axis + r
        } else {
            self.axis
        };
        if a < 0 || a >= r {
            return Err(eval_err!(
                "OneHot: axis {} is out of range for output rank {r}",
                self.axis
            ));
        }
        Ok(a as usize)
    }
}

#[typetag::serde]
impl Op for OneHot {
    fn op_type(&self) -> &str {
        "OneHot"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let i = cx.input(0)?;
        let v = cx.input(2)?;
        let shape = match &i.shape {
            Some(s) => {
                let a = self.axis_for(s.len()).map_err(|e| infer_err!("{e}"))?;
                let d = match cx.value(1).and_then(|t| t.scalar_f64().ok()) {
                    Some(d) if d >= 1.0 => Dim::Known(d as u64),
                    _ => cx.fresh_dim(),
                };
                let mut out = s.clone();
                out.insert(a, d);
                Some(out)
            }
            None => None,
        };
        Ok(vec![ValueType {
            dtype: v.dtype,
            shape,
        }])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let ind = req(inputs, 0)?;
        let depth = req(inputs, 1)?.scalar_f64()?;
        let vals = req(inputs, 2)?;
        if !(depth >= 1.0 && depth <= (1u64 << 32) as f64) {
            return Err(eval_err!("OneHot: depth {depth} must be a positive count"));
        }
        let depth = depth as usize;
        if vals.len() != 2 {
            return Err(eval_err!(
                "OneHot: values must hold [off, on], got shape {:?}",
                vals.shape()
            ));
        }
        let s = ind.shape();
        let a = self.axis_for(s.len())?;
        let mut out = s.to_vec();
        out.insert(a, depth);
        let n = numel("OneHot", &out)?;
        let iv = ind.to_i()?;
        let iv: Vec<i128> = iv.iter().copied().collect();
        let mut m = vec![0usize; out.len()];
        let mut picks = Vec::with_capacity(n);
        for k in 0..n {
            unravel(k, &out, &mut m);
            let pos = m[a];
            let mut src = 0usize;
            for (j, (&mj, &dj)) in m.iter().zip(&out).enumerate() {
                if j != a {
                    src = src * dj + mj;
                }
            }
            let v = iv.get(src).copied().unwrap_or(i128::MIN);
            let v = if v < 0 { v + depth as i128 } else { v };
            picks.push((0, usize::from(v == pos as i128)));
        }
        let vflat = vals.reshape(&[2])?;
        Ok(vec![assemble(
            "OneHot",
            vals.dtype(),
            &[&vflat],
            &out,
            &picks,
        )?])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        vec![("axis", Attr::Int(self.axis))]
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

// ---------------------------------------------------------------------------------------------
// Trilu

/// Keeps the upper (or lower) triangle of the last two axes from diagonal `k`, zeroing the rest.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Trilu {
    pub upper: bool,
}

#[typetag::serde]
impl Op for Trilu {
    fn op_type(&self) -> &str {
        "Trilu"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let x = cx.input(0)?;
        if x.rank().is_some_and(|r| r < 2) {
            return Err(infer_err!("Trilu: input must have rank at least 2"));
        }
        Ok(vec![x.clone()])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let k = match opt(inputs, 1) {
            Some(t) => t.scalar_i64()? as i128,
            None => 0,
        };
        let s = x.shape();
        let r = s.len();
        if r < 2 {
            return Err(eval_err!(
                "Trilu: input must have rank at least 2, got {s:?}"
            ));
        }
        let (rows, cols) = (s[r - 2], s[r - 1]);
        let zero = fill_value("Trilu", x.dtype(), None)?;
        let picks: Vec<(usize, usize)> = (0..x.len())
            .map(|f| {
                let j = (f % cols.max(1)) as i128;
                let i = ((f / cols.max(1)) % rows.max(1)) as i128;
                let keep = if self.upper { j - i >= k } else { j - i <= k };
                if keep {
                    (0, f)
                } else {
                    (1, 0)
                }
            })
            .collect();
        Ok(vec![assemble("Trilu", x.dtype(), &[x, &zero], s, &picks)?])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        vec![("upper", Attr::Int(i64::from(self.upper)))]
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_lengths() {
        assert_eq!(range_len(3.0, 9.0, 3.0).unwrap(), 2);
        assert_eq!(range_len(10.0, 6.0, -3.0).unwrap(), 2);
        assert_eq!(range_len(1.0, 0.0, 1.0).unwrap(), 0);
        assert!(range_len(0.0, 1.0, 0.0).is_err());
    }
}
