//! `MatMul` (numpy batch broadcasting, 1-D operands) and `Gemm`, plus the shared batched matmul kernel.

use crate::onnx::attrs::NodeCtx;
use crate::op::{opt, req, Attr, EvalCx, InferCx, Op};
use crate::ops::util::broadcast_shape;
use crate::shape::{broadcast_shapes, Dim, Shape, ValueType};
use crate::tensor::{Data, Tensor};
use crate::{eval_err, infer_err, DType, Result};
use ndarray::{ArrayD, Ix2, IxDyn, LinalgScalar};
use serde::{Deserialize, Serialize};
use std::any::Any;

/// Numpy `matmul` of two arrays: 1-D operands are promoted (a row for `a`, a column for `b`) and
/// the promoted axis removed again; batch dims broadcast.
pub fn matmul_arrays<T: LinalgScalar>(a: &ArrayD<T>, b: &ArrayD<T>) -> Result<ArrayD<T>> {
    if a.ndim() == 0 || b.ndim() == 0 {
        return Err(eval_err!("MatMul: operands must have rank >= 1"));
    }
    let a_vec = a.ndim() == 1;
    let b_vec = b.ndim() == 1;
    let a2 = if a_vec {
        a.view().insert_axis(ndarray::Axis(0)).into_owned()
    } else {
        a.clone()
    };
    let b2 = if b_vec {
        b.view().insert_axis(ndarray::Axis(1)).into_owned()
    } else {
        b.clone()
    };
    let (ra, rb) = (a2.ndim(), b2.ndim());
    let (m, k) = (a2.shape()[ra - 2], a2.shape()[ra - 1]);
    let (k2, n) = (b2.shape()[rb - 2], b2.shape()[rb - 1]);
    if k != k2 {
        return Err(eval_err!(
            "MatMul: inner dims differ: {:?} x {:?}",
            a.shape(),
            b.shape()
        ));
    }
    let batch = broadcast_shape(&a2.shape()[..ra - 2], &b2.shape()[..rb - 2])?;
    let mut a_full = batch.clone();
    a_full.extend([m, k]);
    let mut b_full = batch.clone();
    b_full.extend([k, n]);
    let av = a2
        .broadcast(IxDyn(&a_full))
        .ok_or_else(|| eval_err!("MatMul: cannot broadcast {:?}", a.shape()))?;
    let bv = b2
        .broadcast(IxDyn(&b_full))
        .ok_or_else(|| eval_err!("MatMul: cannot broadcast {:?}", b.shape()))?;
    let nb: usize = batch.iter().product();
    let a3 = av
        .to_shape((nb, m, k))
        .map_err(|e| eval_err!("MatMul: {e}"))?;
    let b3 = bv
        .to_shape((nb, k, n))
        .map_err(|e| eval_err!("MatMul: {e}"))?;
    let mut out = Vec::with_capacity(nb * m * n);
    for i in 0..nb {
        let x = a3.index_axis(ndarray::Axis(0), i);
        let y = b3.index_axis(ndarray::Axis(0), i);
        let x = x
            .into_dimensionality::<Ix2>()
            .map_err(|e| eval_err!("{e}"))?;
        let y = y
            .into_dimensionality::<Ix2>()
            .map_err(|e| eval_err!("{e}"))?;
        out.extend(x.dot(&y).iter().copied());
    }
    let mut shape = batch;
    if !a_vec {
        shape.push(m);
    }
    if !b_vec {
        shape.push(n);
    }
    ArrayD::from_shape_vec(IxDyn(&shape), out).map_err(|e| eval_err!("MatMul: {e}"))
}

/// Output shape of numpy `matmul` for symbolic shapes.
pub fn matmul_shape(a: &[Dim], b: &[Dim]) -> Result<Shape> {
    if a.is_empty() || b.is_empty() {
        return Err(infer_err!("MatMul: operands must have rank >= 1"));
    }
    let mut a2 = a.to_vec();
    let mut b2 = b.to_vec();
    if a.len() == 1 {
        a2.insert(0, Dim::Known(1));
    }
    if b.len() == 1 {
        b2.push(Dim::Known(1));
    }
    let (ra, rb) = (a2.len(), b2.len());
    if let (Some(x), Some(y)) = (a2[ra - 1].known(), b2[rb - 2].known()) {
        if x != y {
            return Err(infer_err!("MatMul: inner dims differ ({x} vs {y})"));
        }
    }
    let mut out = broadcast_shapes(&a2[..ra - 2], &b2[..rb - 2]).map_err(|e| infer_err!("{e}"))?;
    if a.len() > 1 {
        out.push(a2[ra - 2].clone());
    }
    if b.len() > 1 {
        out.push(b2[rb - 1].clone());
    }
    Ok(out)
}

/// MACs of a numpy `matmul` given both operand types: M*N*K*batch.
pub fn matmul_macs(a: Option<&ValueType>, b: Option<&ValueType>) -> u64 {
    let (Some(a), Some(b)) = (a, b) else { return 0 };
    let (Some(sa), Some(sb)) = (&a.shape, &b.shape) else {
        return 0;
    };
    let Ok(out) = matmul_shape(sa, sb) else {
        return 0;
    };
    let k = sa.last().and_then(|d| d.known()).unwrap_or(0);
    out.iter()
        .try_fold(k, |acc, d| acc.checked_mul(d.known()?))
        .unwrap_or(0)
}

/// Matrix product of a float or integer tensor pair, result in `dtype`.
pub fn matmul_tensors(a: &Tensor, b: &Tensor, dtype: DType) -> Result<Tensor> {
    match (a.data(), b.data()) {
        (Data::I(x), Data::I(y)) if dtype.is_int() => Ok(Tensor::int(dtype, matmul_arrays(x, y)?)),
        _ if dtype.is_float() => Ok(Tensor::float(dtype, matmul_arrays(&a.to_f()?, &b.to_f()?)?)),
        _ => Err(eval_err!(
            "MatMul: unsupported operand types {} and {}",
            a.dtype(),
            b.dtype()
        )),
    }
}

/// Numpy-style matrix product.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MatMul;

#[typetag::serde]
impl Op for MatMul {
    fn op_type(&self) -> &str {
        "MatMul"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let a = cx.input(0)?;
        let b = cx.input(1)?;
        Ok(vec![match (&a.shape, &b.shape) {
            (Some(x), Some(y)) => ValueType::new(a.dtype, matmul_shape(x, y)?),
            _ => ValueType::unranked(a.dtype),
        }])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let a = req(inputs, 0)?;
        let b = req(inputs, 1)?;
        if a.dtype() != b.dtype() {
            return Err(eval_err!(
                "MatMul: operand types differ ({} vs {})",
                a.dtype(),
                b.dtype()
            ));
        }
        Ok(vec![matmul_tensors(a, b, a.dtype())?])
    }
    fn macs(&self, inputs: &[Option<&ValueType>], _outputs: &[ValueType]) -> u64 {
        matmul_macs(
            inputs.first().copied().flatten(),
            inputs.get(1).copied().flatten(),
        )
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// General matrix multiply: `alpha * op(A) @ op(B) + beta * C`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Gemm {
    pub alpha: f32,
    pub beta: f32,
    pub trans_a: bool,
    pub trans_b: bool,
}

/// Builds a `Gemm`.
pub fn build_gemm(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    Ok(Box::new(Gemm {
        alpha: cx.f("alpha", 1.0)?,
        beta: cx.f("beta", 1.0)?,
        trans_a: cx.i("transA", 0)? != 0,
        trans_b: cx.i("transB", 0)? != 0,
    }))
}

impl Gemm {
    /// `(M, K, N)` from the operand shapes.
    fn dims<T: Clone>(&self, a: &[T], b: &[T]) -> Option<(T, T, T, T)> {
        if a.len() != 2 || b.len() != 2 {
            return None;
        }
        let (m, k) = if self.trans_a {
            (a[1].clone(), a[0].clone())
        } else {
            (a[0].clone(), a[1].clone())
        };
        let (k2, n) = if self.trans_b {
            (b[1].clone(), b[0].clone())
        } else {
            (b[0].clone(), b[1].clone())
        };
        Some((m, k, k2, n))
    }
}

#[typetag::serde]
impl Op for Gemm {
    fn op_type(&self) -> &str {
        "Gemm"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let a = cx.input(0)?;
        let b = cx.input(1)?;
        Ok(vec![match (&a.shape, &b.shape) {
            (Some(x), Some(y)) => {
                let (m, k, k2, n) = self
                    .dims(x, y)
                    .ok_or_else(|| infer_err!("Gemm: A and B must be 2-D"))?;
                if let (Some(p), Some(q)) = (k.known(), k2.known()) {
                    if p != q {
                        return Err(infer_err!("Gemm: inner dims differ ({p} vs {q})"));
                    }
                }
                ValueType::new(a.dtype, vec![m, n])
            }
            _ => ValueType::unranked(a.dtype),
        }])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let a = req(inputs, 0)?;
        let b = req(inputs, 1)?;
        let (m, k, k2, n) = self.dims(a.shape(), b.shape()).ok_or_else(|| {
            eval_err!(
                "Gemm: A and B must be 2-D, got {:?} and {:?}",
                a.shape(),
                b.shape()
            )
        })?;
        if k != k2 {
            return Err(eval_err!(
                "Gemm: inner dims differ: {:?} x {:?}",
                a.shape(),
                b.shape()
            ));
        }
        let c = opt(inputs, 2);
        let dt = a.dtype();
        let orient = |t: &Tensor, tr: bool| -> Result<ArrayD<f64>> {
            let x = t.to_f()?;
            Ok(if tr { x.reversed_axes() } else { x })
        };
        if dt.is_int() {
            let ai = a.as_i()?;
            let bi = b.as_i()?;
            let ai = if self.trans_a {
                ai.t().to_owned()
            } else {
                ai.clone()
            };
            let bi = if self.trans_b {
                bi.t().to_owned()
            } else {
                bi.clone()
            };
            let mut y = matmul_arrays(&ai, &bi)?;
            let (al, be) = (self.alpha as i128, self.beta as i128);
            y.mapv_inplace(|v| v * al);
            if let Some(c) = c {
                let cv = crate::ops::util::broadcast_to(&c.to_i()?, &[m, n])?;
                y = y + cv.mapv(|v| v * be);
            }
            return Ok(vec![Tensor::int(dt, y)]);
        }
        let mut y = matmul_arrays(&orient(a, self.trans_a)?, &orient(b, self.trans_b)?)?;
        let (al, be) = (self.alpha as f64, self.beta as f64);
        y.mapv_inplace(|v| v * al);
        if let Some(c) = c {
            let cv = crate::ops::util::broadcast_to(&c.to_f()?, &[m, n])?;
            y = y + cv.mapv(|v| v * be);
        }
        Ok(vec![Tensor::float(dt, y)])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        vec![
            ("alpha", Attr::Float(self.alpha)),
            ("beta", Attr::Float(self.beta)),
            ("transA", Attr::Int(self.trans_a as i64)),
            ("transB", Attr::Int(self.trans_b as i64)),
        ]
    }
    fn macs(&self, inputs: &[Option<&ValueType>], _outputs: &[ValueType]) -> u64 {
        let shape = |i: usize| {
            inputs
                .get(i)
                .copied()
                .flatten()
                .and_then(|t| t.shape.clone())
        };
        let (Some(a), Some(b)) = (shape(0), shape(1)) else {
            return 0;
        };
        match self.dims(&a, &b) {
            Some((m, k, _, n)) => match (m.known(), k.known(), n.known()) {
                (Some(m), Some(k), Some(n)) => m * k * n,
                _ => 0,
            },
            None => 0,
        }
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_vector_and_batch() {
        let a =
            ArrayD::from_shape_vec(IxDyn(&[2, 1, 2, 3]), (0..12).map(f64::from).collect()).unwrap();
        let b = ArrayD::from_shape_vec(IxDyn(&[3]), vec![1.0, 0.0, -1.0]).unwrap();
        let y = matmul_arrays(&a, &b).unwrap();
        assert_eq!(y.shape(), &[2, 1, 2]);
        assert_eq!(y.iter().copied().collect::<Vec<_>>(), vec![-2.0; 4]);
        let v = matmul_arrays(&b, &b).unwrap();
        assert_eq!(v.shape(), &[] as &[usize]);
        assert_eq!(v[[]], 2.0);
        let s = matmul_shape(
            &[Dim::sym("b"), Dim::Known(1), Dim::Known(4), Dim::Known(5)],
            &[Dim::Known(3), Dim::Known(5), Dim::Known(6)],
        )
        .unwrap();
        assert_eq!(
            s,
            vec![Dim::sym("b"), Dim::Known(3), Dim::Known(4), Dim::Known(6)]
        );
        let vt = |s: &[usize]| ValueType::known(DType::F32, s);
        assert_eq!(
            matmul_macs(Some(&vt(&[2, 4, 5])), Some(&vt(&[5, 6]))),
            2 * 4 * 5 * 6
        );
    }
}
