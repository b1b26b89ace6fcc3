//! Ops that move elements between tensors: `Transpose`, `Concat`, `Split`.

use super::common::{assemble, const_ints, eval_axis, infer_axis, take};
use crate::onnx::attrs::NodeCtx;
use crate::op::{opt, req, Attr, EvalCx, InferCx, Op};
use crate::shape::{Dim, ValueType};
use crate::tensor::Tensor;
use crate::{eval_err, infer_err, map_data, Result};
use ndarray::IxDyn;
use serde::{Deserialize, Serialize};
use std::any::Any;

// ---------------------------------------------------------------------------------------------
// Transpose

/// Permutes the axes (`perm`, default reversed).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Transpose {
    pub perm: Option<Vec<i64>>,
}

impl Transpose {
    fn perm_for(&self, rank: usize) -> Result<Vec<usize>> {
        let p: Vec<usize> = match &self.perm {
            None => (0..rank).rev().collect(),
            Some(p) => {
                if p.len() != rank {
                    return Err(eval_err!(
                        "Transpose: perm {p:?} does not match rank {rank}"
                    ));
                }
                p.iter()
                    .map(|&a| eval_axis("Transpose", a, rank))
                    .collect::<Result<_>>()?
            }
        };
        let mut seen = vec![false; rank];
        for &a in &p {
            if std::mem::replace(&mut seen[a], true) {
                return Err(eval_err!("Transpose: perm {p:?} repeats axis {a}"));
            }
        }
        Ok(p)
    }
}

#[typetag::serde]
impl Op for Transpose {
    fn op_type(&self) -> &str {
        "Transpose"
    }
    fn infer_dims(&self, cx: &InferCx<'_>) -> Vec<Option<Vec<Dim>>> {
        vec![cx
            .dims_value(0)
            .filter(|_| cx.rank(0).is_some_and(|r| r <= 1))]
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let x = cx.input(0)?;
        let shape = match &x.shape {
            Some(s) => {
                let p = self.perm_for(s.len()).map_err(|e| infer_err!("{e}"))?;
                Some(p.iter().map(|&a| s[a].clone()).collect())
            }
            None => self.perm.as_ref().map(|p| cx.fresh_shape(p.len())),
        };
        Ok(vec![ValueType {
            dtype: x.dtype,
            shape,
        }])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let p = self.perm_for(x.rank())?;
        let data = map_data!(x.data(), a => a
            .view()
            .permuted_axes(IxDyn(&p))
            .as_standard_layout()
            .into_owned());
        Ok(vec![Tensor::from_data(x.dtype(), data)?])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        match &self.perm {
            Some(p) => vec![("perm", Attr::Ints(p.clone()))],
            None => Vec::new(),
        }
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

// ---------------------------------------------------------------------------------------------
// Concat

/// Joins its inputs along `axis`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Concat {
    pub axis: i64,
}

#[typetag::serde]
impl Op for Concat {
    fn op_type(&self) -> &str {
        "Concat"
    }
    fn infer_dims(&self, cx: &InferCx<'_>) -> Vec<Option<Vec<Dim>>> {
        let mut out = Vec::new();
        for i in 0..cx.inputs.len() {
            if cx.opt_input(i).is_none() {
                continue;
            }
            match (cx.rank(i), cx.dims_value(i)) {
                (Some(1), Some(d)) => out.extend(d),
                _ => return vec![None],
            }
        }
        vec![Some(out)]
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let first = cx.input(0)?;
        let ranked: Vec<&Vec<Dim>> = cx
            .inputs
            .iter()
            .flatten()
            .filter_map(|t| t.shape.as_ref())
            .collect();
        let Some(base) = ranked.first() else {
            return Ok(vec![ValueType::unranked(first.dtype)]);
        };
        let r = base.len();
        let a = infer_axis("Concat", self.axis, r)?;
        let all_ranked = ranked.len() == cx.inputs.iter().flatten().count();
        let mut out: Vec<Dim> = Vec::with_capacity(r);
        for i in 0..r {
            if i == a {
                out.push(if all_ranked {
                    ranked.iter().fold(Dim::Known(0), |acc, s| match s.get(i) {
                        Some(d) => acc.add(d),
                        None => acc,
                    })
                } else {
                    cx.fresh_dim()
                });
                continue;
            }
            let mut d = base[i].clone();
            for s in &ranked {
                if s.len() != r {
                    return Err(infer_err!(
                        "Concat: inputs have different ranks ({} and {})",
                        r,
                        s.len()
                    ));
                }
                match (d.known(), s[i].known()) {
                    (Some(p), Some(q)) if p != q => {
                        return Err(infer_err!(
                            "Concat: dim {i} differs between inputs ({p} vs {q})"
                        ))
                    }
                    (None, Some(_)) => d = s[i].clone(),
                    _ => {}
                }
            }
            out.push(d);
        }
        Ok(vec![ValueType::new(first.dtype, out)])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let xs: Vec<&Tensor> = inputs.iter().flatten().copied().collect();
        let first = xs
            .first()
            .ok_or_else(|| eval_err!("Concat: needs at least one input"))?;
        let r = first.rank();
        let a = eval_axis("Concat", self.axis, r)?;
        let mut out = first.shape().to_vec();
        out[a] = 0;
        for x in &xs {
            let s = x.shape();
            if s.len() != r || (0..r).any(|i| i != a && s[i] != first.shape()[i]) {
                return Err(eval_err!(
                    "Concat: input shapes {:?} and {:?} differ off axis {a}",
                    first.shape(),
                    s
                ));
            }
            if x.dtype() != first.dtype() {
                return Err(eval_err!(
                    "Concat: inputs have different types ({} and {})",
                    first.dtype(),
                    x.dtype()
                ));
            }
            out[a] += s[a];
        }
        let outer: usize = out[..a].iter().product();
        let inner: usize = out[a + 1..].iter().product();
        let mut picks = Vec::with_capacity(outer * out[a] * inner);
        for o in 0..outer {
            for (k, x) in xs.iter().enumerate() {
                let run = x.shape()[a] * inner;
                picks.extend((0..run).map(|j| (k, o * run + j)));
            }
        }
        Ok(vec![assemble("Concat", first.dtype(), &xs, &out, &picks)?])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        vec![("axis", Attr::Int(self.axis))]
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

// ---------------------------------------------------------------------------------------------
// Split

/// Splits along `axis` into pieces given by `split` (attribute before opset 13, input after),
/// or into `num_outputs` (or as many as outputs) near-equal pieces, the last one smaller.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Split {
    pub axis: i64,
    pub split_attr: Option<Vec<i64>>,
    pub num_outputs: Option<i64>,
}

pub fn build_split(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    let num_outputs = cx.opt_i("num_outputs")?;
    if num_outputs.is_some_and(|n| n < 1) {
        return Err(cx.invalid("num_outputs", "must be positive"));
    }
    Ok(Box::new(Split {
        axis: cx.i("axis", 0)?,
        split_attr: if cx.opset < 13 {
            cx.ints("split")?
        } else {
            None
        },
        num_outputs,
    }))
}

impl Split {
    /// Equal-split sizes of a dim of size `d` into `n` pieces.
    fn equal(d: usize, n: usize) -> Vec<usize> {
        let n = n.max(1);
        if d.is_multiple_of(n) {
            return vec![d / n; n];
        }
        let c = d / n + 1;
        let mut v = vec![c; n];
        let last = d as i64 - (c * (n - 1)) as i64;
        v[n - 1] = last.max(0) as usize;
        v
    }
    fn pieces(&self, num_outputs: usize) -> usize {
        self.num_outputs.map(|n| n as usize).unwrap_or(num_outputs)
    }
}

#[typetag::serde]
impl Op for Split {
    fn op_type(&self) -> &str {
        "Split"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let x = cx.input(0)?;
        let n = cx.num_outputs;
        let Some(s) = &x.shape else {
            return Ok(vec![ValueType::unranked(x.dtype); n.max(1)]);
        };
        let a = infer_axis("Split", self.axis, s.len())?;
        let sizes = match &self.split_attr {
            Some(v) => Some(v.clone()),
            None if cx.opt_input(1).is_some() => const_ints(cx, 1),
            None => None,
        };
        let dims: Vec<Dim> = match sizes {
            Some(v) => {
                if v.len() != n || v.iter().any(|&d| d < 0) {
                    return Err(infer_err!(
                        "Split: split {v:?} does not give {n} non-negative sizes"
                    ));
                }
                if let Some(d) = s[a].known() {
                    if v.iter().sum::<i64>() as u64 != d {
                        return Err(infer_err!(
                            "Split: split {v:?} does not add up to the dim {d}"
                        ));
                    }
                }
                v.iter().map(|&d| Dim::Known(d as u64)).collect()
            }
            None if cx.opt_input(1).is_some() => cx.fresh_shape(n),
            None => {
                let p = self.pieces(n);
                match s[a].known() {
                    Some(d) => Split::equal(d as usize, p)
                        .into_iter()
                        .map(|v| Dim::Known(v as u64))
                        .collect(),
                    None => {
                        let pd = Dim::Known(p as u64);
                        let c = s[a].ceil_div(&pd);
                        let mut v = vec![c.clone(); p];
                        if let Some(l) = v.last_mut() {
                            *l = s[a].sub(&c.mul(&Dim::Known(p as u64 - 1)));
                        }
                        v
                    }
                }
            }
        };
        Ok(dims
            .into_iter()
            .map(|d| {
                let mut sh = s.clone();
                sh[a] = d;
                ValueType::new(x.dtype, sh)
            })
            .collect())
    }
    fn eval(&self, cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let s = x.shape().to_vec();
        let a = eval_axis("Split", self.axis, s.len())?;
        let sizes: Vec<usize> = match &self.split_attr {
            Some(v) => super::common::to_sizes("Split", v)?,
            None => match opt(inputs, 1) {
                Some(t) => super::common::to_sizes("Split", &t.to_i64_vec()?)?,
                None => Split::equal(s[a], self.pieces(cx.num_outputs)),
            },
        };
        if sizes.iter().sum::<usize>() != s[a] {
            return Err(eval_err!(
                "Split: sizes {sizes:?} do not add up to the dim {} of axis {a}",
                s[a]
            ));
        }
        let outer: usize = s[..a].iter().product();
        let inner: usize = s[a + 1..].iter().product();
        let mut outs = Vec::with_capacity(sizes.len());
        let mut pos = 0;
        for &k in &sizes {
            let mut sh = s.clone();
            sh[a] = k;
            let mut idx = Vec::with_capacity(outer * k * inner);
            for o in 0..outer {
                let base = (o * s[a] + pos) * inner;
                idx.extend(base..base + k * inner);
            }
            outs.push(take("Split", x, &sh, &idx)?);
            pos += k;
        }
        Ok(outs)
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        let mut v = vec![("axis", Attr::Int(self.axis))];
        if let Some(s) = &self.split_attr {
            v.push(("split", Attr::Ints(s.clone())));
        }
        if let Some(n) = self.num_outputs {
            v.push(("num_outputs", Attr::Int(n)));
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
    fn uneven_split_last_smaller() {
        assert_eq!(Split::equal(7, 3), vec![3, 3, 1]);
        assert_eq!(Split::equal(6, 3), vec![2, 2, 2]);
    }
}
