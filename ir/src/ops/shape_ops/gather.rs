//! Indexed reads: `Gather`, `GatherElements`, `GatherND` (negative indices wrap; out-of-range
//! indices are errors).

use super::common::{eval_axis, infer_axis, ravel, strides, take, unravel, wrap_index};
use crate::op::{req, Attr, EvalCx, InferCx, Op};
use crate::shape::{Dim, ValueType};
use crate::tensor::Tensor;
use crate::{eval_err, infer_err, Result};
use serde::{Deserialize, Serialize};
use std::any::Any;

// ---------------------------------------------------------------------------------------------
// Gather

/// Picks slices along `axis` by an index tensor: output is
/// `data.shape[..axis] + indices.shape + data.shape[axis+1..]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Gather {
    pub axis: i64,
}

#[typetag::serde]
impl Op for Gather {
    fn op_type(&self) -> &str {
        "Gather"
    }
    fn infer_dims(&self, cx: &InferCx<'_>) -> Vec<Option<Vec<Dim>>> {
        if cx.rank(0) != Some(1) {
            return vec![None];
        }
        let (Some(d), Some(ix)) = (cx.dims_value(0), super::common::const_ints(cx, 1)) else {
            return vec![None];
        };
        let picked: Option<Vec<Dim>> = ix
            .iter()
            .map(|&i| {
                wrap_index("Gather", i as i128, d.len())
                    .ok()
                    .map(|j| d[j].clone())
            })
            .collect();
        vec![picked]
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let x = cx.input(0)?;
        let i = cx.input(1)?;
        let shape = match (&x.shape, &i.shape) {
            (Some(s), Some(is)) => {
                let a = infer_axis("Gather", self.axis, s.len())?;
                let mut out: Vec<Dim> = s[..a].to_vec();
                out.extend(is.iter().cloned());
                out.extend(s[a + 1..].iter().cloned());
                Some(out)
            }
            _ => None,
        };
        Ok(vec![ValueType {
            dtype: x.dtype,
            shape,
        }])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let ind = req(inputs, 1)?;
        let s = x.shape();
        let a = eval_axis("Gather", self.axis, s.len())?;
        let d = s[a];
        let idx: Vec<usize> = ind
            .to_i()?
            .iter()
            .map(|&v| wrap_index("Gather", v, d))
            .collect::<Result<_>>()?;
        let outer: usize = s[..a].iter().product();
        let inner: usize = s[a + 1..].iter().product();
        let mut out: Vec<usize> = s[..a].to_vec();
        out.extend_from_slice(ind.shape());
        out.extend_from_slice(&s[a + 1..]);
        let mut flat = Vec::with_capacity(outer * idx.len() * inner);
        for o in 0..outer {
            for &k in &idx {
                let base = (o * d + k) * inner;
                flat.extend(base..base + inner);
            }
        }
        Ok(vec![take("Gather", x, &out, &flat)?])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        vec![("axis", Attr::Int(self.axis))]
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

// ---------------------------------------------------------------------------------------------
// GatherElements

/// Element-wise gather along `axis`: `out[m] = data[m with m[axis] = indices[m]]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GatherElements {
    pub axis: i64,
}

#[typetag::serde]
impl Op for GatherElements {
    fn op_type(&self) -> &str {
        "GatherElements"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let x = cx.input(0)?;
        let i = cx.input(1)?;
        if let (Some(a), Some(b)) = (x.rank(), i.rank()) {
            if a != b {
                return Err(infer_err!(
                    "GatherElements: data rank {a} and indices rank {b} differ"
                ));
            }
        }
        Ok(vec![ValueType {
            dtype: x.dtype,
            shape: i.shape.clone(),
        }])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let ind = req(inputs, 1)?;
        let targets = element_targets("GatherElements", x.shape(), ind, self.axis)?;
        Ok(vec![take("GatherElements", x, ind.shape(), &targets)?])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        vec![("axis", Attr::Int(self.axis))]
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// For each element of `ind` (row-major), the flat position in a tensor of shape `data` that
/// it addresses along `axis` (shared by GatherElements and ScatterElements).
pub fn element_targets(op: &str, data: &[usize], ind: &Tensor, axis: i64) -> Result<Vec<usize>> {
    let r = data.len();
    let is = ind.shape();
    if is.len() != r {
        return Err(eval_err!(
            "{op}: indices rank {} differs from data rank {r}",
            is.len()
        ));
    }
    let a = eval_axis(op, axis, r)?;
    for i in 0..r {
        if i != a && is[i] > data[i] {
            return Err(eval_err!(
                "{op}: indices shape {is:?} exceeds data shape {data:?} on axis {i}"
            ));
        }
    }
    let st = strides(data);
    let mut m = vec![0usize; r];
    ind.to_i()?
        .iter()
        .enumerate()
        .map(|(k, &v)| {
            unravel(k, is, &mut m);
            m[a] = wrap_index(op, v, data[a])?;
            Ok(ravel(&m, &st))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// GatherND

/// Gathers slices addressed by the last axis of `indices`, after `batch_dims` shared leading dims.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GatherND {
    pub batch_dims: i64,
}

/// Geometry of a GatherND/ScatterND: for each index tuple, the flat offset of the addressed
/// slice in the data, plus the slice length. Returns `(offsets, slice_len, tuple_dims)`.
pub fn nd_offsets(
    op: &str,
    data: &[usize],
    ind: &Tensor,
    batch_dims: usize,
) -> Result<(Vec<usize>, usize, Vec<usize>)> {
    let is = ind.shape();
    let q = is.len();
    if q == 0 {
        return Err(eval_err!("{op}: indices must have rank at least 1"));
    }
    let k = is[q - 1];
    let b = batch_dims;
    if b >= q || b + k > data.len() {
        return Err(eval_err!(
            "{op}: indices shape {is:?} with batch_dims {b} does not fit data shape {data:?}"
        ));
    }
    if data[..b] != is[..b] {
        return Err(eval_err!(
            "{op}: batch dims of data {data:?} and indices {is:?} differ"
        ));
    }
    let st = strides(data);
    let slice_len: usize = data[b + k..].iter().product();
    let tuple_dims = is[..q - 1].to_vec();
    let vals = ind.to_i()?;
    let vals: Vec<i128> = vals.iter().copied().collect();
    let n_tuples: usize = tuple_dims.iter().product();
    let per_batch: usize = is[b..q - 1].iter().product();
    let mut offsets = Vec::with_capacity(n_tuples);
    let mut bm = vec![0usize; b];
    for t in 0..n_tuples {
        let batch = t.checked_div(per_batch).unwrap_or(0);
        unravel(batch, &data[..b], &mut bm);
        let mut off: usize = bm.iter().zip(&st).map(|(i, s)| i * s).sum();
        for j in 0..k {
            let v = vals
                .get(t * k + j)
                .copied()
                .ok_or_else(|| eval_err!("{op}: internal index error"))?;
            off += wrap_index(op, v, data[b + j])? * st[b + j];
        }
        offsets.push(off);
    }
    Ok((offsets, slice_len, tuple_dims))
}

#[typetag::serde]
impl Op for GatherND {
    fn op_type(&self) -> &str {
        "GatherND"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let x = cx.input(0)?;
        let i = cx.input(1)?;
        let b = self.batch_dims.max(0) as usize;
        let shape = match (&x.shape, &i.shape) {
            (Some(s), Some(is)) if !is.is_empty() => match is[is.len() - 1].known() {
                Some(k) => {
                    let k = k as usize;
                    if b + k > s.len() {
                        return Err(infer_err!(
                            "GatherND: index tuples of length {k} after {b} batch dims exceed data rank {}",
                            s.len()
                        ));
                    }
                    let mut out: Vec<Dim> = is[..is.len() - 1].to_vec();
                    out.extend(s[b + k..].iter().cloned());
                    Some(out)
                }
                None => None,
            },
            _ => None,
        };
        Ok(vec![ValueType {
            dtype: x.dtype,
            shape,
        }])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let ind = req(inputs, 1)?;
        if self.batch_dims < 0 {
            return Err(eval_err!("GatherND: batch_dims must be non-negative"));
        }
        let (offs, len, mut out) =
            nd_offsets("GatherND", x.shape(), ind, self.batch_dims as usize)?;
        let k = ind.shape()[ind.rank() - 1];
        out.extend_from_slice(&x.shape()[self.batch_dims as usize + k..]);
        let mut idx = Vec::with_capacity(offs.len() * len);
        for o in offs {
            idx.extend(o..o + len);
        }
        Ok(vec![take("GatherND", x, &out, &idx)?])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        vec![("batch_dims", Attr::Int(self.batch_dims))]
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}
