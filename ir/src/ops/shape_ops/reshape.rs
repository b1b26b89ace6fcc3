//! Ops that only relabel a tensor's shape: `Reshape`, `Shape`, `Size`, `Flatten`, `Squeeze`,
//! `Unsqueeze`, and `Expand` (broadcast to a shape).

use super::common::{
    const_ints, dim_product, dim_quotient, in_shape, norm_axes, to_sizes, vec_len,
};
use crate::onnx::attrs::NodeCtx;
use crate::op::{opt, req, Attr, EvalCx, InferCx, Op};
use crate::ops::util::{broadcast_shape, broadcast_to};
use crate::shape::{broadcast_shapes, Dim, ValueType};
use crate::tensor::Tensor;
use crate::{eval_err, infer_err, map_data, DType, Result};
use serde::{Deserialize, Serialize};
use std::any::Any;

// ---------------------------------------------------------------------------------------------
// Reshape

/// Reshapes to the shape given by input 1 (or the `shape` attribute before opset 5); `0` copies
/// the input dim unless `allowzero`, `-1` is inferred.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Reshape {
    pub allowzero: bool,
    /// The opset-1 `shape` attribute.
    pub shape_attr: Option<Vec<i64>>,
}

pub fn build_reshape(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    Ok(Box::new(Reshape {
        allowzero: cx.i("allowzero", 0)? != 0,
        shape_attr: if cx.opset < 5 {
            cx.ints("shape")?
        } else {
            None
        },
    }))
}

/// The concrete output shape of a reshape.
pub fn reshape_dims(input: &[usize], spec: &[i64], allowzero: bool) -> Result<Vec<usize>> {
    let mut out = Vec::with_capacity(spec.len());
    let mut infer_at = None;
    for (i, &s) in spec.iter().enumerate() {
        match s {
            0 if !allowzero => out.push(*input.get(i).ok_or_else(|| {
                eval_err!("Reshape: 0 at position {i} copies a dim the input {input:?} lacks")
            })?),
            -1 => {
                if infer_at.is_some() {
                    return Err(eval_err!("Reshape: more than one -1 in shape {spec:?}"));
                }
                infer_at = Some(i);
                out.push(1);
            }
            s if s < 0 => return Err(eval_err!("Reshape: invalid dim {s} in shape {spec:?}")),
            s => out.push(s as usize),
        }
    }
    let total = super::common::numel("Reshape", input)?;
    if let Some(i) = infer_at {
        if allowzero && spec.contains(&0) {
            return Err(eval_err!(
                "Reshape: shape {spec:?} has both 0 and -1 with allowzero"
            ));
        }
        let rest: usize = out
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| eval_err!("Reshape: shape {spec:?} is too large"))?;
        if rest == 0 || total % rest != 0 {
            return Err(eval_err!("Reshape: cannot reshape {input:?} to {spec:?}"));
        }
        out[i] = total / rest;
    }
    let n = out
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| eval_err!("Reshape: shape {spec:?} is too large"))?;
    if n != total {
        return Err(eval_err!(
            "Reshape: cannot reshape {input:?} ({total} elements) to {out:?}"
        ));
    }
    Ok(out)
}

/// The symbolic output shape of a reshape with a known `spec`.
/// One entry of a reshape's target shape in inference: a known integer or a symbolic dim.
enum Spec {
    Int(i64),
    Sym(Dim),
}

fn reshape_sym(
    cx: &InferCx<'_>,
    input: Option<&[Dim]>,
    spec: &[Spec],
    allowzero: bool,
) -> Result<Vec<Dim>> {
    let mut out = Vec::with_capacity(spec.len());
    let mut infer_at = None;
    let shown: Vec<String> = spec
        .iter()
        .map(|s| match s {
            Spec::Int(v) => v.to_string(),
            Spec::Sym(d) => d.to_string(),
        })
        .collect();
    let spec_str = format!("[{}]", shown.join(", "));
    for (i, s) in spec.iter().enumerate() {
        let s = match s {
            Spec::Int(v) => *v,
            Spec::Sym(d) => {
                out.push(d.clone());
                continue;
            }
        };
        out.push(match s {
            0 if !allowzero => match input {
                Some(d) => d.get(i).cloned().ok_or_else(|| {
                    infer_err!("Reshape: 0 at position {i} copies a dim the input lacks")
                })?,
                None => cx.fresh_dim(),
            },
            -1 => {
                if infer_at.is_some() {
                    return Err(infer_err!("Reshape: more than one -1 in shape {spec_str}"));
                }
                infer_at = Some(i);
                Dim::Known(1)
            }
            s if s < 0 => return Err(infer_err!("Reshape: invalid dim {s} in shape {spec_str}")),
            s => Dim::Known(s as u64),
        });
    }
    if let Some(i) = infer_at {
        let others: Vec<Dim> = out
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, d)| d.clone())
            .collect();
        out[i] = match input.and_then(|d| dim_quotient(d, &others)) {
            Some(d) => d,
            None => {
                if let (Some(d), Some(o)) = (input, dim_product(&others).known()) {
                    if let Some(t) = dim_product(d).known() {
                        if o == 0 || t % o != 0 {
                            return Err(infer_err!(
                                "Reshape: cannot reshape {t} elements to {spec_str}"
                            ));
                        }
                    }
                }
                cx.fresh_dim()
            }
        };
    } else if let Some(d) = input {
        if let (Some(a), Some(b)) = (dim_product(d).known(), dim_product(&out).known()) {
            if a != b {
                return Err(infer_err!(
                    "Reshape: cannot reshape {a} elements to {spec_str}"
                ));
            }
        }
    }
    Ok(out)
}

#[typetag::serde]
impl Op for Reshape {
    fn op_type(&self) -> &str {
        "Reshape"
    }
    fn infer_dims(&self, cx: &InferCx<'_>) -> Vec<Option<Vec<Dim>>> {
        vec![cx.dims_value(0)]
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let x = cx.input(0)?;
        let ints = match &self.shape_attr {
            Some(s) => Some(s.clone()),
            None => const_ints(cx, 1),
        };
        let spec: Option<Vec<Spec>> = match ints {
            Some(v) => Some(v.into_iter().map(Spec::Int).collect()),
            None => cx.dims_value(1).map(|d| {
                d.into_iter()
                    .map(|d| match d.known() {
                        Some(v) => Spec::Int(v as i64),
                        None => Spec::Sym(d),
                    })
                    .collect()
            }),
        };
        let shape = match spec {
            Some(s) => Some(reshape_sym(cx, x.shape.as_deref(), &s, self.allowzero)?),
            None => vec_len(cx, 1).map(|n| cx.fresh_shape(n)),
        };
        Ok(vec![ValueType {
            dtype: x.dtype,
            shape,
        }])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let spec = match &self.shape_attr {
            Some(s) => s.clone(),
            None => req(inputs, 1)?.to_i64_vec()?,
        };
        let dims = reshape_dims(x.shape(), &spec, self.allowzero)?;
        Ok(vec![x.reshape(&dims)?])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        let mut v = Vec::new();
        if self.allowzero {
            v.push(("allowzero", Attr::Int(1)));
        }
        if let Some(s) = &self.shape_attr {
            v.push(("shape", Attr::Ints(s.clone())));
        }
        v
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

// ---------------------------------------------------------------------------------------------
// Shape, Size

/// The shape of its input as a 1-D int64 tensor, optionally the dims `start..end`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Shape {
    pub start: Option<i64>,
    pub end: Option<i64>,
}

pub fn build_shape(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    Ok(Box::new(Shape {
        start: cx.opt_i("start")?,
        end: cx.opt_i("end")?,
    }))
}

impl Shape {
    /// The dims range `start..end` for a given rank (clamped, possibly empty).
    pub fn range(&self, rank: usize) -> (usize, usize) {
        let r = rank as i64;
        let norm = |v: i64| -> usize {
            let v = if v < 0 { v + r } else { v };
            v.clamp(0, r) as usize
        };
        let s = norm(self.start.unwrap_or(0));
        let e = norm(self.end.unwrap_or(r));
        (s, e.max(s))
    }
}

#[typetag::serde]
impl Op for Shape {
    fn op_type(&self) -> &str {
        "Shape"
    }
    fn infer_dims(&self, cx: &InferCx<'_>) -> Vec<Option<Vec<Dim>>> {
        let s = cx.opt_input(0).and_then(|t| t.shape.as_ref());
        vec![s.map(|s| {
            let (a, b) = self.range(s.len());
            s[a..b].to_vec()
        })]
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let d = match cx.rank(0) {
            Some(r) => {
                let (s, e) = self.range(r);
                Dim::Known((e - s) as u64)
            }
            None => cx.fresh_dim(),
        };
        Ok(vec![ValueType::new(DType::I64, vec![d])])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let (s, e) = self.range(x.rank());
        let v: Vec<i64> = x.shape()[s..e].iter().map(|&d| d as i64).collect();
        Ok(vec![Tensor::from_i64(&[v.len()], v)?])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        let mut v = Vec::new();
        if let Some(s) = self.start {
            v.push(("start", Attr::Int(s)));
        }
        if let Some(e) = self.end {
            v.push(("end", Attr::Int(e)));
        }
        v
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The number of elements of its input, as an int64 scalar.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Size;

#[typetag::serde]
impl Op for Size {
    fn op_type(&self) -> &str {
        "Size"
    }
    fn infer_dims(&self, cx: &InferCx<'_>) -> Vec<Option<Vec<Dim>>> {
        let s = cx.opt_input(0).and_then(|t| t.shape.as_ref());
        vec![s.map(|s| vec![dim_product(s)])]
    }
    fn infer(&self, _cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        Ok(vec![ValueType::new(DType::I64, vec![])])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        Ok(vec![Tensor::from_i64(&[], vec![x.len() as i64])?])
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

// ---------------------------------------------------------------------------------------------
// Flatten

/// Flattens to 2-D: dims before `axis` and dims from `axis` on.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Flatten {
    pub axis: i64,
}

fn flatten_axis(axis: i64, rank: usize) -> Option<usize> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    (0..=r).contains(&a).then_some(a as usize)
}

#[typetag::serde]
impl Op for Flatten {
    fn op_type(&self) -> &str {
        "Flatten"
    }
    fn infer_dims(&self, cx: &InferCx<'_>) -> Vec<Option<Vec<Dim>>> {
        vec![cx.dims_value(0)]
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let x = cx.input(0)?;
        let shape = match &x.shape {
            Some(s) => {
                let a = flatten_axis(self.axis, s.len()).ok_or_else(|| {
                    infer_err!(
                        "Flatten: axis {} is out of range for rank {}",
                        self.axis,
                        s.len()
                    )
                })?;
                vec![dim_product(&s[..a]), dim_product(&s[a..])]
            }
            None => cx.fresh_shape(2),
        };
        Ok(vec![ValueType::new(x.dtype, shape)])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let a = flatten_axis(self.axis, x.rank()).ok_or_else(|| {
            eval_err!(
                "Flatten: axis {} is out of range for rank {}",
                self.axis,
                x.rank()
            )
        })?;
        let s = x.shape();
        let (p, q) = (s[..a].iter().product(), s[a..].iter().product());
        Ok(vec![x.reshape(&[p, q])?])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        vec![("axis", Attr::Int(self.axis))]
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

// ---------------------------------------------------------------------------------------------
// Squeeze, Unsqueeze

/// Removes size-1 dims (`axes`, or all of them); axes are an attribute before opset 13.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Squeeze {
    pub axes_attr: Option<Vec<i64>>,
}

pub fn build_squeeze(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    Ok(Box::new(Squeeze {
        axes_attr: if cx.opset < 13 {
            cx.ints("axes")?
        } else {
            None
        },
    }))
}

impl Squeeze {
    fn axes_known(&self, cx: &InferCx<'_>) -> Option<Option<Vec<i64>>> {
        if let Some(a) = &self.axes_attr {
            return Some(Some(a.clone()));
        }
        if cx.opt_input(1).is_none() {
            return Some(None);
        }
        const_ints(cx, 1).map(Some)
    }
}

#[typetag::serde]
impl Op for Squeeze {
    fn op_type(&self) -> &str {
        "Squeeze"
    }
    fn infer_dims(&self, cx: &InferCx<'_>) -> Vec<Option<Vec<Dim>>> {
        vec![cx.dims_value(0)]
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let x = cx.input(0)?;
        let Some(s) = &x.shape else {
            return Ok(vec![ValueType::unranked(x.dtype)]);
        };
        let shape = match self.axes_known(cx) {
            Some(Some(axes)) => {
                let axes = norm_axes("Squeeze", &axes, s.len()).map_err(|e| infer_err!("{e}"))?;
                for &a in &axes {
                    if let Some(d) = s[a].known() {
                        if d != 1 {
                            return Err(infer_err!("Squeeze: axis {a} has size {d}, not 1"));
                        }
                    }
                }
                Some(
                    s.iter()
                        .enumerate()
                        .filter(|(i, _)| !axes.contains(i))
                        .map(|(_, d)| d.clone())
                        .collect(),
                )
            }
            Some(None) => {
                if s.iter().all(|d| d.known().is_some()) {
                    Some(s.iter().filter(|d| d.known() != Some(1)).cloned().collect())
                } else {
                    None
                }
            }
            None => vec_len(cx, 1)
                .and_then(|n| s.len().checked_sub(n))
                .map(|r| cx.fresh_shape(r)),
        };
        Ok(vec![ValueType {
            dtype: x.dtype,
            shape,
        }])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let axes = match &self.axes_attr {
            Some(a) => Some(a.clone()),
            None => opt(inputs, 1).map(|t| t.to_i64_vec()).transpose()?,
        };
        let s = x.shape();
        let keep: Vec<usize> = match axes {
            Some(axes) => {
                let axes = norm_axes("Squeeze", &axes, s.len())?;
                for &a in &axes {
                    if s[a] != 1 {
                        return Err(eval_err!("Squeeze: axis {a} has size {}, not 1", s[a]));
                    }
                }
                s.iter()
                    .enumerate()
                    .filter(|(i, _)| !axes.contains(i))
                    .map(|(_, &d)| d)
                    .collect()
            }
            None => s.iter().copied().filter(|&d| d != 1).collect(),
        };
        Ok(vec![x.reshape(&keep)?])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        match &self.axes_attr {
            Some(a) => vec![("axes", Attr::Ints(a.clone()))],
            None => Vec::new(),
        }
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Inserts size-1 dims at `axes` (of the output); axes are an attribute before opset 13.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Unsqueeze {
    pub axes_attr: Option<Vec<i64>>,
}

pub fn build_unsqueeze(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    Ok(Box::new(Unsqueeze {
        axes_attr: if cx.opset < 13 {
            cx.ints("axes")?
        } else {
            None
        },
    }))
}

/// Output dims of an unsqueeze: input dims with 1 inserted at the (normalised) axes.
fn unsqueeze_dims<D: Clone>(s: &[D], axes: &[i64], one: D) -> Result<Vec<D>> {
    let r = s.len() + axes.len();
    let axes = norm_axes("Unsqueeze", axes, r)?;
    let mut it = s.iter();
    let mut out = Vec::with_capacity(r);
    for i in 0..r {
        if axes.contains(&i) {
            out.push(one.clone());
        } else {
            out.push(
                it.next()
                    .cloned()
                    .ok_or_else(|| eval_err!("Unsqueeze: internal rank mismatch"))?,
            );
        }
    }
    Ok(out)
}

#[typetag::serde]
impl Op for Unsqueeze {
    fn op_type(&self) -> &str {
        "Unsqueeze"
    }
    fn infer_dims(&self, cx: &InferCx<'_>) -> Vec<Option<Vec<Dim>>> {
        vec![cx.dims_value(0)]
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let x = cx.input(0)?;
        let axes = match &self.axes_attr {
            Some(a) => Some(a.clone()),
            None => const_ints(cx, 1),
        };
        let shape = match (&x.shape, axes) {
            (Some(s), Some(axes)) => {
                Some(unsqueeze_dims(s, &axes, Dim::Known(1)).map_err(|e| infer_err!("{e}"))?)
            }
            (Some(s), None) => vec_len(cx, 1).map(|n| cx.fresh_shape(s.len() + n)),
            (None, _) => None,
        };
        Ok(vec![ValueType {
            dtype: x.dtype,
            shape,
        }])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let axes = match &self.axes_attr {
            Some(a) => a.clone(),
            None => req(inputs, 1)?.to_i64_vec()?,
        };
        let dims = unsqueeze_dims(x.shape(), &axes, 1usize)?;
        Ok(vec![x.reshape(&dims)?])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        match &self.axes_attr {
            Some(a) => vec![("axes", Attr::Ints(a.clone()))],
            None => Vec::new(),
        }
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

// ---------------------------------------------------------------------------------------------
// Expand

/// Broadcasts its input together with a shape (numpy rules, both ways).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Expand;

#[typetag::serde]
impl Op for Expand {
    fn op_type(&self) -> &str {
        "Expand"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let x = cx.input(0)?;
        let Some(s) = in_shape(cx, 0)? else {
            return Ok(vec![ValueType::unranked(x.dtype)]);
        };
        if let Some(v) = const_ints(cx, 1) {
            if let Some(d) = v.iter().find(|&&d| d < 0) {
                return Err(infer_err!("Expand: negative dim {d} in shape {v:?}"));
            }
        }
        let shape = match cx.dims_value(1) {
            Some(t) => Some(broadcast_shapes(s, &t).map_err(|e| infer_err!("Expand: {e}"))?),
            None => vec_len(cx, 1).map(|n| {
                let r = n.max(s.len());
                (0..r)
                    .map(|i| {
                        let d = (i + s.len()).checked_sub(r).map(|j| &s[j]);
                        match d {
                            Some(d) if d.known().is_some_and(|v| v != 1) => d.clone(),
                            _ => cx.fresh_dim(),
                        }
                    })
                    .collect()
            }),
        };
        Ok(vec![ValueType {
            dtype: x.dtype,
            shape,
        }])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let want = to_sizes("Expand", &req(inputs, 1)?.to_i64_vec()?)?;
        let out = broadcast_shape(x.shape(), &want)
            .map_err(|_| eval_err!("Expand: cannot broadcast {:?} to {want:?}", x.shape()))?;
        super::common::numel("Expand", &out)?;
        let data = map_data!(x.data(), a => broadcast_to(a, &out)?);
        Ok(vec![Tensor::from_data(x.dtype(), data)?])
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reshape_zero_and_minus_one() {
        assert_eq!(
            reshape_dims(&[2, 3, 4], &[0, -1], false).unwrap(),
            vec![2, 12]
        );
        assert_eq!(reshape_dims(&[0, 3], &[3, 0], true).unwrap(), vec![3, 0]);
        assert!(reshape_dims(&[2, 3], &[4, -1], false).is_err());
        assert!(reshape_dims(&[2, 3], &[-1, -1], false).is_err());
        assert!(reshape_dims(&[2, 3], &[0, 0, 0], false).is_err());
    }

    #[test]
    fn shape_range_clamps() {
        let s = Shape {
            start: Some(-10),
            end: Some(10),
        };
        assert_eq!(s.range(3), (0, 3));
        let s = Shape {
            start: Some(2),
            end: Some(1),
        };
        assert_eq!(s.range(3), (2, 2));
    }
}
