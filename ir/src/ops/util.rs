//! Helpers shared by op families: broadcasting, common inference rules.

use crate::op::InferCx;
use crate::shape::{broadcast_shapes, ValueType};
use crate::{eval_err, infer_err, DType, Result};
use ndarray::{ArrayD, IxDyn, Zip};

/// Numpy broadcasting of two concrete shapes.
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for (i, o) in out.iter_mut().enumerate() {
        let x = if i + a.len() >= n {
            a[i + a.len() - n]
        } else {
            1
        };
        let y = if i + b.len() >= n {
            b[i + b.len() - n]
        } else {
            1
        };
        *o = if x == y || y == 1 {
            x
        } else if x == 1 {
            y
        } else {
            return Err(eval_err!("cannot broadcast shapes {a:?} and {b:?}"));
        };
    }
    Ok(out)
}

/// Broadcasts an array to `shape` (a copy).
pub fn broadcast_to<T: Clone>(a: &ArrayD<T>, shape: &[usize]) -> Result<ArrayD<T>> {
    Ok(a.broadcast(IxDyn(shape))
        .ok_or_else(|| eval_err!("cannot broadcast {:?} to {:?}", a.shape(), shape))?
        .to_owned())
}

/// Applies `f` elementwise over two arrays broadcast together.
pub fn zip_broadcast<A: Clone, B: Clone, C>(
    a: &ArrayD<A>,
    b: &ArrayD<B>,
    f: impl Fn(&A, &B) -> C,
) -> Result<ArrayD<C>> {
    let s = broadcast_shape(a.shape(), b.shape())?;
    let av = a
        .broadcast(IxDyn(&s))
        .ok_or_else(|| eval_err!("broadcast {:?} to {:?}", a.shape(), s))?;
    let bv = b
        .broadcast(IxDyn(&s))
        .ok_or_else(|| eval_err!("broadcast {:?} to {:?}", b.shape(), s))?;
    Ok(Zip::from(&av).and(&bv).map_collect(f))
}

/// Output type of an elementwise op over inputs `0..n` broadcast together, with `dtype`
/// (or input 0's dtype when `None`).
pub fn infer_broadcast(cx: &InferCx<'_>, dtype: Option<DType>) -> Result<ValueType> {
    let first = cx.input(0)?;
    let dt = dtype.unwrap_or(first.dtype);
    let mut shape = match &first.shape {
        Some(s) => s.clone(),
        None => return Ok(ValueType::unranked(dt)),
    };
    for t in cx.inputs.iter().skip(1).flatten() {
        match &t.shape {
            Some(s) => shape = broadcast_shapes(&shape, s).map_err(|e| infer_err!("{e}"))?,
            None => return Ok(ValueType::unranked(dt)),
        }
    }
    Ok(ValueType::new(dt, shape))
}

/// Output types equal to input `i`'s type, `n` times.
pub fn same_as_input(cx: &InferCx<'_>, i: usize, n: usize) -> Result<Vec<ValueType>> {
    let t = cx.input(i)?.clone();
    Ok(vec![t; n.max(1)])
}
