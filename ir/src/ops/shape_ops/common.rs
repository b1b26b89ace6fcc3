//! Helpers shared by the shape ops: flat indexing, element picking and constant-input reading.

use crate::dtype::DType;
use crate::op::InferCx;
use crate::shape::{Dim, Shape};
use crate::tensor::{Data, Tensor};
use crate::{eval_err, infer_err, Result};
use ndarray::{ArrayD, IxDyn};

/// Row-major strides of `shape` (in elements).
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Writes the multi-index of flat position `f` in `shape` into `out`.
pub fn unravel(mut f: usize, shape: &[usize], out: &mut [usize]) {
    for i in (0..shape.len()).rev() {
        let d = shape[i].max(1);
        out[i] = f % d;
        f /= d;
    }
}

/// The flat position of multi-index `idx` given row-major `strides`.
pub fn ravel(idx: &[usize], strides: &[usize]) -> usize {
    idx.iter().zip(strides).map(|(i, s)| i * s).sum()
}

/// Product of a concrete shape, refusing absurd sizes.
pub fn numel(op: &str, shape: &[usize]) -> Result<usize> {
    let mut n: usize = 1;
    for &d in shape {
        n = n
            .checked_mul(d)
            .filter(|&n| n <= 1usize << 40)
            .ok_or_else(|| eval_err!("{op}: output shape {shape:?} is too large"))?;
    }
    Ok(n)
}

/// Converts requested dims (from a model's values) to sizes, refusing negative ones.
pub fn to_sizes(op: &str, v: &[i64]) -> Result<Vec<usize>> {
    let s = v
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| eval_err!("{op}: dimension {d} is negative")))
        .collect::<Result<Vec<usize>>>()?;
    numel(op, &s)?;
    Ok(s)
}

/// Wraps a possibly negative index into `0..dim`, or errors naming the op.
pub fn wrap_index(op: &str, i: i128, dim: usize) -> Result<usize> {
    let d = dim as i128;
    let j = if i < 0 { i + d } else { i };
    if j < 0 || j >= d {
        return Err(eval_err!(
            "{op}: index {i} is out of range for a dimension of size {dim}"
        ));
    }
    Ok(j as usize)
}

fn flat<T: Clone>(a: &ArrayD<T>) -> Vec<T> {
    a.iter().cloned().collect()
}

fn pick_vec<T: Clone>(srcs: &[Vec<T>], picks: &[(usize, usize)], op: &str) -> Result<Vec<T>> {
    picks
        .iter()
        .map(|&(s, i)| {
            srcs.get(s)
                .and_then(|v| v.get(i))
                .cloned()
                .ok_or_else(|| eval_err!("{op}: internal: element ({s}, {i}) out of range"))
        })
        .collect()
}

/// A tensor of `dtype` and `shape` whose element `k` is element `picks[k].1` (flat, row-major)
/// of `srcs[picks[k].0]`. All sources must share a carrier type.
pub fn assemble(
    op: &str,
    dtype: DType,
    srcs: &[&Tensor],
    shape: &[usize],
    picks: &[(usize, usize)],
) -> Result<Tensor> {
    macro_rules! variant {
        ($var:ident, $get:ident) => {{
            let vs = srcs
                .iter()
                .map(|t| t.$get().map(flat))
                .collect::<Result<Vec<_>>>()
                .map_err(|e| eval_err!("{op}: {e}"))?;
            let v = pick_vec(&vs, picks, op)?;
            Data::$var(ArrayD::from_shape_vec(IxDyn(shape), v).map_err(|e| eval_err!("{op}: {e}"))?)
        }};
    }
    let data = match srcs.first().map(|t| t.data()) {
        Some(Data::F(_)) => variant!(F, as_f),
        Some(Data::I(_)) => variant!(I, as_i),
        Some(Data::B(_)) => variant!(B, as_b),
        Some(Data::S(_)) => variant!(S, as_s),
        None => return Err(eval_err!("{op}: internal: no source tensor")),
    };
    Tensor::from_data(dtype, data)
}

/// [`assemble`] from one source: element `k` of the result is flat element `idx[k]` of `t`.
pub fn take(op: &str, t: &Tensor, shape: &[usize], idx: &[usize]) -> Result<Tensor> {
    let picks: Vec<(usize, usize)> = idx.iter().map(|&i| (0, i)).collect();
    assemble(op, t.dtype(), &[t], shape, &picks)
}

/// A one-element tensor of `dtype` holding `v`'s single value (cast), for fill values.
pub fn fill_value(op: &str, dtype: DType, v: Option<&Tensor>) -> Result<Tensor> {
    match v {
        Some(t) if !t.is_empty() => {
            if t.len() != 1 {
                return Err(eval_err!(
                    "{op}: the fill value must hold one element, got shape {:?}",
                    t.shape()
                ));
            }
            t.cast(dtype, false)?.reshape(&[1])
        }
        _ => {
            if dtype == DType::String {
                Ok(Tensor::string(ArrayD::from_elem(
                    IxDyn(&[1]),
                    String::new(),
                )))
            } else {
                Ok(Tensor::zeros(dtype, &[1]))
            }
        }
    }
}

/// The integer values of input `i` if it is a known constant.
pub fn const_ints(cx: &InferCx<'_>, i: usize) -> Option<Vec<i64>> {
    cx.value(i).and_then(|t| t.to_i64_vec().ok())
}

/// The shape of input `i` if its rank is known (`Ok(None)` when unranked).
pub fn in_shape<'c>(cx: &'c InferCx<'_>, i: usize) -> Result<Option<&'c Shape>> {
    Ok(cx.input(i)?.shape.as_ref())
}

/// The length of 1-D input `i` if known (for shape/axes inputs whose values are unknown).
pub fn vec_len(cx: &InferCx<'_>, i: usize) -> Option<usize> {
    match cx.opt_input(i)?.shape.as_deref()? {
        [d] => d.known().map(|v| v as usize),
        [] => Some(1),
        _ => None,
    }
}

/// Normalises an axis in inference, with an inference error.
pub fn infer_axis(op: &str, axis: i64, rank: usize) -> Result<usize> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r.max(1) {
        return Err(infer_err!(
            "{op}: axis {axis} is out of range for rank {rank}"
        ));
    }
    Ok(a as usize)
}

/// Normalises an axis in evaluation.
pub fn eval_axis(op: &str, axis: i64, rank: usize) -> Result<usize> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r.max(1) {
        return Err(eval_err!(
            "{op}: axis {axis} is out of range for rank {rank}"
        ));
    }
    Ok(a as usize)
}

/// Normalises a list of distinct axes against `rank` (errors on duplicates or out of range).
pub fn norm_axes(op: &str, axes: &[i64], rank: usize) -> Result<Vec<usize>> {
    let mut out = Vec::with_capacity(axes.len());
    for &a in axes {
        let n = eval_axis(op, a, rank)?;
        if out.contains(&n) {
            return Err(eval_err!("{op}: axis {a} is repeated in {axes:?}"));
        }
        out.push(n);
    }
    Ok(out)
}

/// Product of dims (symbolic where needed).
pub fn dim_product(dims: &[Dim]) -> Dim {
    dims.iter().fold(Dim::Known(1), |acc, d| acc.mul(d))
}

/// Splits dims into the product of the known ones and the list of the others.
fn factor(dims: &[Dim]) -> (Option<u64>, Vec<Dim>) {
    let mut c: Option<u64> = Some(1);
    let mut syms = Vec::new();
    for d in dims {
        match d.known() {
            Some(v) => c = c.and_then(|c| c.checked_mul(v)),
            None => syms.push(d.clone()),
        }
    }
    (c, syms)
}

/// `product(total) / product(part)`, cancelling identical symbolic factors; `None` if it cannot
/// be worked out (a zero divisor, or a known remainder).
pub fn dim_quotient(total: &[Dim], part: &[Dim]) -> Option<Dim> {
    let (ct, mut st) = factor(total);
    let (cp, sp) = factor(part);
    let (ct, cp) = (ct?, cp?);
    if cp == 0 {
        return None;
    }
    let mut leftover = Vec::new();
    for d in sp {
        match st.iter().position(|x| *x == d) {
            Some(i) => {
                st.remove(i);
            }
            None => leftover.push(d),
        }
    }
    if leftover.is_empty() {
        if ct % cp != 0 {
            return None;
        }
        return Some(Dim::Known(ct / cp).mul(&dim_product(&st)));
    }
    let num = Dim::Known(ct).mul(&dim_product(&st));
    let den = Dim::Known(cp).mul(&dim_product(&leftover));
    Some(num.floor_div(&den))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotient_cancels_symbols() {
        let b = Dim::sym("b");
        let s = Dim::sym("s");
        let total = vec![b.clone(), s.clone(), Dim::Known(768)];
        let part = vec![b.clone(), s.clone(), Dim::Known(12)];
        assert_eq!(dim_quotient(&total, &part), Some(Dim::Known(64)));
        let part = vec![b.clone(), Dim::Known(12)];
        assert_eq!(dim_quotient(&total, &part), Some(Dim::Known(64).mul(&s)));
        assert_eq!(dim_quotient(&[Dim::Known(10)], &[Dim::Known(3)]), None);
    }

    #[test]
    fn index_helpers() {
        assert_eq!(strides(&[2, 3, 4]), vec![12, 4, 1]);
        let mut m = [0; 3];
        unravel(23, &[2, 3, 4], &mut m);
        assert_eq!(m, [1, 2, 3]);
        assert_eq!(wrap_index("t", -1, 4).unwrap(), 3);
        assert!(wrap_index("t", 4, 4).is_err());
        assert!(wrap_index("t", -5, 4).is_err());
    }
}
