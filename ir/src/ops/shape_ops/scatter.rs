//! Indexed writes: `ScatterElements` (and the old `Scatter`), `ScatterND`, `TensorScatter`,
//! with the `none`/`add`/`mul`/`max`/`min` reductions.

use super::common::{eval_axis, infer_axis, ravel, strides, unravel};
use super::gather::{element_targets, nd_offsets};
use crate::onnx::attrs::NodeCtx;
use crate::op::{opt, req, Attr, EvalCx, InferCx, Op};
use crate::shape::ValueType;
use crate::tensor::{Data, Tensor};
use crate::{eval_err, Result};
use ndarray::{ArrayD, IxDyn};
use serde::{Deserialize, Serialize};
use std::any::Any;

/// How a scattered value combines with the value already there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reduction {
    None,
    Add,
    Mul,
    Max,
    Min,
}

impl Reduction {
    fn parse(cx: &NodeCtx<'_>) -> Result<Reduction> {
        Ok(match cx.s("reduction", "none")?.as_str() {
            "none" => Reduction::None,
            "add" => Reduction::Add,
            "mul" => Reduction::Mul,
            "max" => Reduction::Max,
            "min" => Reduction::Min,
            _ => return Err(cx.invalid("reduction", "must be none, add, mul, max or min")),
        })
    }
    fn name(self) -> &'static str {
        match self {
            Reduction::None => "none",
            Reduction::Add => "add",
            Reduction::Mul => "mul",
            Reduction::Max => "max",
            Reduction::Min => "min",
        }
    }
    fn attrs(self) -> Vec<(&'static str, Attr)> {
        if self == Reduction::None {
            Vec::new()
        } else {
            vec![("reduction", Attr::Str(self.name().into()))]
        }
    }
}

/// Writes `updates`' elements (row-major) at flat positions `targets` of a copy of `data`.
pub fn scatter_into(
    op: &str,
    data: &Tensor,
    updates: &Tensor,
    targets: &[usize],
    red: Reduction,
) -> Result<Tensor> {
    if data.dtype() != updates.dtype() {
        return Err(eval_err!(
            "{op}: data is {} but updates are {}",
            data.dtype(),
            updates.dtype()
        ));
    }
    if updates.len() != targets.len() {
        return Err(eval_err!(
            "{op}: {} updates for {} target positions",
            updates.len(),
            targets.len()
        ));
    }
    let shape = data.shape().to_vec();
    fn apply<T: Clone>(
        op: &str,
        d: &ArrayD<T>,
        u: &ArrayD<T>,
        targets: &[usize],
        f: impl Fn(&T, &T) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut v: Vec<T> = d.iter().cloned().collect();
        for (x, &t) in u.iter().zip(targets) {
            let slot = v
                .get_mut(t)
                .ok_or_else(|| eval_err!("{op}: internal: target {t} out of range"))?;
            *slot = f(slot, x)?;
        }
        Ok(v)
    }
    let dt = data.dtype();
    fn arr<T>(op: &str, shape: &[usize], v: Vec<T>) -> Result<ArrayD<T>> {
        ArrayD::from_shape_vec(IxDyn(shape), v).map_err(|e| eval_err!("{op}: {e}"))
    }
    Ok(match (data.data(), updates.data()) {
        (Data::F(d), Data::F(u)) => {
            let v = apply(op, d, u, targets, |a, b| {
                Ok(match red {
                    Reduction::None => *b,
                    Reduction::Add => a + b,
                    Reduction::Mul => a * b,
                    Reduction::Max => a.max(*b),
                    Reduction::Min => a.min(*b),
                })
            })?;
            Tensor::float(dt, arr(op, &shape, v)?)
        }
        (Data::I(d), Data::I(u)) => {
            let v = apply(op, d, u, targets, |a, b| {
                Ok(match red {
                    Reduction::None => *b,
                    Reduction::Add => dt.wrap_int(a + b),
                    Reduction::Mul => dt.wrap_int(a.wrapping_mul(*b)),
                    Reduction::Max => *a.max(b),
                    Reduction::Min => *a.min(b),
                })
            })?;
            Tensor::int(dt, arr(op, &shape, v)?)
        }
        (Data::B(d), Data::B(u)) => {
            let v = apply(op, d, u, targets, |a, b| {
                Ok(match red {
                    Reduction::None => *b,
                    Reduction::Add | Reduction::Max => *a || *b,
                    Reduction::Mul | Reduction::Min => *a && *b,
                })
            })?;
            Tensor::bool(arr(op, &shape, v)?)
        }
        (Data::S(d), Data::S(u)) => {
            let v = apply(op, d, u, targets, |_, b| match red {
                Reduction::None => Ok(b.clone()),
                _ => Err(eval_err!(
                    "{op}: reduction '{}' is not defined for strings",
                    red.name()
                )),
            })?;
            Tensor::string(arr(op, &shape, v)?)
        }
        _ => return Err(eval_err!("{op}: data and updates carriers differ")),
    })
}

// ---------------------------------------------------------------------------------------------
// ScatterElements / Scatter

/// `out = data; out[m with m[axis] = indices[m]] (op)= updates[m]`. `legacy` is the opset 9-10
/// `Scatter` spelling.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScatterElements {
    pub axis: i64,
    pub reduction: Reduction,
    pub legacy: bool,
}

pub fn build_scatter_elements(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    Ok(Box::new(ScatterElements {
        axis: cx.i("axis", 0)?,
        reduction: Reduction::parse(cx)?,
        legacy: cx.op_type == "Scatter",
    }))
}

#[typetag::serde]
impl Op for ScatterElements {
    fn op_type(&self) -> &str {
        if self.legacy {
            "Scatter"
        } else {
            "ScatterElements"
        }
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        Ok(vec![cx.input(0)?.clone()])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let ind = req(inputs, 1)?;
        let upd = req(inputs, 2)?;
        let op = self.op_type();
        if ind.shape() != upd.shape() {
            return Err(eval_err!(
                "{op}: indices shape {:?} differs from updates shape {:?}",
                ind.shape(),
                upd.shape()
            ));
        }
        let targets = element_targets(op, x.shape(), ind, self.axis)?;
        Ok(vec![scatter_into(op, x, upd, &targets, self.reduction)?])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        let mut v = vec![("axis", Attr::Int(self.axis))];
        v.extend(self.reduction.attrs());
        v
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

// ---------------------------------------------------------------------------------------------
// ScatterND

/// Writes `updates` slices at the positions addressed by the last axis of `indices`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScatterND {
    pub reduction: Reduction,
}

pub fn build_scatter_nd(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    Ok(Box::new(ScatterND {
        reduction: Reduction::parse(cx)?,
    }))
}

#[typetag::serde]
impl Op for ScatterND {
    fn op_type(&self) -> &str {
        "ScatterND"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        Ok(vec![cx.input(0)?.clone()])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let ind = req(inputs, 1)?;
        let upd = req(inputs, 2)?;
        let (offs, len, mut want) = nd_offsets("ScatterND", x.shape(), ind, 0)?;
        let k = ind.shape()[ind.rank() - 1];
        want.extend_from_slice(&x.shape()[k..]);
        if upd.shape() != want.as_slice() {
            return Err(eval_err!(
                "ScatterND: updates shape {:?} should be {want:?}",
                upd.shape()
            ));
        }
        let mut targets = Vec::with_capacity(offs.len() * len);
        for o in offs {
            targets.extend(o..o + len);
        }
        Ok(vec![scatter_into(
            "ScatterND",
            x,
            upd,
            &targets,
            self.reduction,
        )?])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        self.reduction.attrs()
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

// ---------------------------------------------------------------------------------------------
// TensorScatter

/// KV-cache update: writes `update` into `past_cache` along `axis` starting at each batch's
/// `write_indices` entry (`circular` mode wraps around the cache length).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TensorScatter {
    pub axis: i64,
    pub circular: bool,
}

pub fn build_tensor_scatter(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    let mode = cx.s("mode", "linear")?;
    if mode != "linear" && mode != "circular" {
        return Err(cx.invalid("mode", "must be linear or circular"));
    }
    Ok(Box::new(TensorScatter {
        axis: cx.i("axis", -2)?,
        circular: mode == "circular",
    }))
}

#[typetag::serde]
impl Op for TensorScatter {
    fn op_type(&self) -> &str {
        "TensorScatter"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let x = cx.input(0)?;
        if let Some(r) = x.rank() {
            let a = infer_axis("TensorScatter", self.axis, r)?;
            if a == 0 {
                return Err(crate::infer_err!(
                    "TensorScatter: axis must not be the batch axis 0"
                ));
            }
        }
        Ok(vec![x.clone()])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let op = "TensorScatter";
        let x = req(inputs, 0)?;
        let upd = req(inputs, 1)?;
        let s = x.shape();
        let us = upd.shape();
        let r = s.len();
        let a = eval_axis(op, self.axis, r)?;
        if a == 0
            || us.len() != r
            || (0..r).any(|i| if i == a { us[i] > s[i] } else { us[i] != s[i] })
        {
            return Err(eval_err!(
                "{op}: update shape {us:?} does not fit cache shape {s:?} on axis {a}"
            ));
        }
        let wi: Vec<i64> = match opt(inputs, 2) {
            Some(t) => t.to_i64_vec()?,
            None => vec![0; s[0]],
        };
        if wi.len() != s[0] {
            return Err(eval_err!(
                "{op}: write_indices has {} entries for batch {}",
                wi.len(),
                s[0]
            ));
        }
        let st = strides(s);
        let mut m = vec![0usize; r];
        let mut targets = Vec::with_capacity(upd.len());
        for k in 0..upd.len() {
            unravel(k, us, &mut m);
            let start = wi[m[0]] as i128;
            let mut pos = start + m[a] as i128;
            if self.circular && s[a] > 0 {
                pos = pos.rem_euclid(s[a] as i128);
            }
            if pos < 0 || pos >= s[a] as i128 {
                return Err(eval_err!(
                    "{op}: write position {pos} (write index {start}) is outside the cache length {}",
                    s[a]
                ));
            }
            m[a] = pos as usize;
            targets.push(ravel(&m, &st));
        }
        Ok(vec![scatter_into(op, x, upd, &targets, Reduction::None)?])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        let mut v = vec![("axis", Attr::Int(self.axis))];
        if self.circular {
            v.push(("mode", Attr::Str("circular".into())));
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
    fn scatter_add_accumulates_duplicates() {
        let d = Tensor::from_f32(&[3], vec![1.0, 2.0, 3.0]).unwrap();
        let u = Tensor::from_f32(&[2], vec![10.0, 20.0]).unwrap();
        let r = scatter_into("t", &d, &u, &[1, 1], Reduction::Add).unwrap();
        assert_eq!(r.to_f64_vec().unwrap(), vec![1.0, 32.0, 3.0]);
        let r = scatter_into("t", &d, &u, &[0, 2], Reduction::Min).unwrap();
        assert_eq!(r.to_f64_vec().unwrap(), vec![1.0, 2.0, 3.0]);
    }

    #[test]
    fn negative_index_wraps_out_of_range_errors() {
        let d = Tensor::from_f32(&[1, 3], vec![0.0; 3]).unwrap();
        let i = Tensor::from_i64(&[1, 1], vec![-1]).unwrap();
        assert_eq!(element_targets("t", d.shape(), &i, 1).unwrap(), vec![2]);
        let i = Tensor::from_i64(&[1, 1], vec![3]).unwrap();
        assert!(element_targets("t", d.shape(), &i, 1).is_err());
    }
}
