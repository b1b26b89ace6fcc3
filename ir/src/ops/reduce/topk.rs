//! `TopK`: the `k` largest (or smallest) values along an axis and their indices.

use super::common::{groups, one_axis, ungroup};
use crate::op::{opt, Attr, EvalCx, InferCx, Op};
use crate::ops::Registry;
use crate::shape::{Dim, ValueType};
use crate::tensor::{Data, Tensor};
use crate::{eval_err, infer_err, DType, Result};
use serde::{Deserialize, Serialize};
use std::any::Any;
use std::cmp::Ordering;

/// `TopK`: `k` comes from the attribute (opset 1) or the second input. Outputs are sorted
/// (equal values by lower index first) whether or not `sorted` is set.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TopK {
    pub axis: i64,
    pub largest: bool,
    pub sorted: bool,
    /// The `k` attribute of opset 1.
    pub k: Option<i64>,
}

/// Registers `TopK`.
pub fn register(r: &mut Registry) {
    r.add("TopK", |cx| {
        Ok(Box::new(TopK {
            axis: cx.i("axis", -1)?,
            largest: cx.i("largest", 1)? != 0,
            sorted: cx.i("sorted", 1)? != 0,
            k: cx.opt_i("k")?,
        }))
    });
}

/// Indices of the `k` top values of `v`, best first, ties by lower index.
pub fn top_indices<T: PartialOrd>(v: &[T], k: usize, largest: bool) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| {
        let o = v[a].partial_cmp(&v[b]).unwrap_or(Ordering::Equal);
        let o = if largest { o.reverse() } else { o };
        o.then(a.cmp(&b))
    });
    idx.truncate(k);
    idx
}

fn select<T: PartialOrd + Clone>(
    gs: &[Vec<T>],
    k: usize,
    largest: bool,
) -> (Vec<Vec<T>>, Vec<Vec<i128>>) {
    gs.iter()
        .map(|g| {
            let idx = top_indices(g, k, largest);
            (
                idx.iter().map(|&i| g[i].clone()).collect(),
                idx.iter().map(|&i| i as i128).collect(),
            )
        })
        .unzip()
}

#[typetag::serde]
impl Op for TopK {
    fn op_type(&self) -> &str {
        "TopK"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let x = cx.input(0)?;
        let Some(d) = &x.shape else {
            return Ok(vec![
                ValueType::unranked(x.dtype),
                ValueType::unranked(DType::I64),
            ]);
        };
        let ax = one_axis("TopK", self.axis, d.len()).map_err(|e| infer_err!("{e}"))?;
        let k = match self.k {
            Some(k) => Some(k),
            None => cx.value(1).map(|t| t.scalar_i64()).transpose()?,
        };
        let mut s = d.clone();
        s[ax] = match k {
            Some(k) if k >= 0 => Dim::Known(k as u64),
            Some(k) => return Err(infer_err!("TopK: k must be non-negative, got {k}")),
            None => cx.fresh_dim(),
        };
        Ok(vec![
            ValueType::new(x.dtype, s.clone()),
            ValueType::new(DType::I64, s),
        ])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = opt(inputs, 0).ok_or_else(|| eval_err!("TopK: missing input X"))?;
        let k = match (self.k, opt(inputs, 1)) {
            (Some(k), _) => k,
            (None, Some(t)) => t
                .scalar_i64()
                .map_err(|e| eval_err!("TopK: K input: {e}"))?,
            (None, None) => return Err(eval_err!("TopK: no k attribute or K input")),
        };
        let rank = x.rank();
        let ax = one_axis("TopK", self.axis, rank)?;
        let n = x.shape()[ax];
        if k < 0 || k as usize > n {
            return Err(eval_err!("TopK: k = {k} is out of range for axis size {n}"));
        }
        let k = k as usize;
        let mask: Vec<bool> = (0..rank).map(|i| i == ax).collect();
        let (vals, idx) = match x.data() {
            Data::F(a) => {
                let (v, i) = select(&groups(a, &mask)?, k, self.largest);
                (
                    Tensor::float(x.dtype(), ungroup(x.shape(), &mask, &[k], v)?),
                    i,
                )
            }
            Data::I(a) => {
                let (v, i) = select(&groups(a, &mask)?, k, self.largest);
                (
                    Tensor::int(x.dtype(), ungroup(x.shape(), &mask, &[k], v)?),
                    i,
                )
            }
            _ => return Err(eval_err!("TopK: unsupported input type {}", x.dtype())),
        };
        let idx = Tensor::int(DType::I64, ungroup(x.shape(), &mask, &[k], idx)?);
        Ok(vec![vals, idx])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        let mut v = vec![("axis", Attr::Int(self.axis))];
        if !self.largest {
            v.push(("largest", Attr::Int(0)));
        }
        if !self.sorted {
            v.push(("sorted", Attr::Int(0)));
        }
        if let Some(k) = self.k {
            v.push(("k", Attr::Int(k)));
        }
        v
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::top_indices;

    #[test]
    fn ties_go_to_lower_index() {
        let v = [3, 5, 5, 1, 3];
        assert_eq!(top_indices(&v, 3, true), vec![1, 2, 0]);
        assert_eq!(top_indices(&v, 3, false), vec![3, 0, 4]);
    }
}
