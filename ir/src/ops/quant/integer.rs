//! Integer matrix products: `MatMulInteger` (int32 accumulation) and `QLinearMatMul` (requantized).

use crate::op::{opt, req, EvalCx, InferCx, Op};
use crate::ops::linalg::matmul::{matmul_arrays, matmul_macs, matmul_shape};
use crate::ops::util::zip_broadcast;
use crate::shape::ValueType;
use crate::tensor::Tensor;
use crate::{eval_err, DType, Result};
use ndarray::{ArrayD, Axis};
use serde::{Deserialize, Serialize};
use std::any::Any;

/// A zero point or scale of operand A: 1-D values of length > 1 are per row (axis -2 of A),
/// so they get a trailing unit axis to broadcast that way.
fn per_row<T: Clone>(p: ArrayD<T>, a_rank: usize) -> ArrayD<T> {
    if p.ndim() == 1 && p.len() > 1 && a_rank >= 2 {
        p.insert_axis(Axis(1))
    } else {
        p
    }
}

/// `operand - zero_point` as `i128`, the zero point broadcast (per row for A).
fn centred(x: &Tensor, zp: Option<&Tensor>, is_a: bool) -> Result<ArrayD<i128>> {
    let xi = x.to_i()?;
    match zp {
        None => Ok(xi),
        Some(z) => {
            let zi = z.to_i()?;
            let zi = if is_a { per_row(zi, xi.ndim()) } else { zi };
            zip_broadcast(&xi, &zi, |a, b| a - b)
        }
    }
}

fn infer_matmul(cx: &InferCx<'_>, a: usize, b: usize, dt: DType) -> Result<Vec<ValueType>> {
    let (x, y) = (cx.input(a)?, cx.input(b)?);
    Ok(vec![match (&x.shape, &y.shape) {
        (Some(p), Some(q)) => ValueType::new(dt, matmul_shape(p, q)?),
        _ => ValueType::unranked(dt),
    }])
}

/// `int32((A - a_zero_point) @ (B - b_zero_point))`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MatMulInteger;

#[typetag::serde]
impl Op for MatMulInteger {
    fn op_type(&self) -> &str {
        "MatMulInteger"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        infer_matmul(cx, 0, 1, DType::I32)
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let a = req(inputs, 0)?;
        let b = req(inputs, 1)?;
        if !a.dtype().is_int() || !b.dtype().is_int() {
            return Err(eval_err!(
                "MatMulInteger: operands must be integers, got {} and {}",
                a.dtype(),
                b.dtype()
            ));
        }
        let x = centred(a, opt(inputs, 2), true)?;
        let y = centred(b, opt(inputs, 3), false)?;
        Ok(vec![Tensor::int(DType::I32, matmul_arrays(&x, &y)?)])
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

/// `y = saturate(round((a - a_zp) @ (b - b_zp) * a_scale * b_scale / y_scale) + y_zp)`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QLinearMatMul;

#[typetag::serde]
impl Op for QLinearMatMul {
    fn op_type(&self) -> &str {
        "QLinearMatMul"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let dt = cx
            .opt_input(7)
            .map(|t| t.dtype)
            .unwrap_or(cx.input(0)?.dtype);
        infer_matmul(cx, 0, 3, dt)
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let a = req(inputs, 0)?;
        let a_s = req(inputs, 1)?;
        let b = req(inputs, 3)?;
        let b_s = req(inputs, 4)?;
        let y_s = req(inputs, 6)?;
        let y_zp = opt(inputs, 7);
        let out = y_zp.map(|t| t.dtype()).unwrap_or(a.dtype());
        let (lo, hi) = out
            .int_range()
            .ok_or_else(|| eval_err!("QLinearMatMul: output type {out} is not an integer type"))?;
        let x = centred(a, opt(inputs, 2), true)?;
        let y = centred(b, opt(inputs, 5), false)?;
        let c = matmul_arrays(&x, &y)?.mapv(|v| v as f64);
        // The requantization multiplier, rounded to the scales' type as numpy computes it.
        let sdt = a_s.dtype();
        let ab = zip_broadcast(&per_row(a_s.to_f()?, a.rank()), &b_s.to_f()?, |p, q| {
            sdt.round_f64(p * q)
        })?;
        let m = zip_broadcast(&ab, &y_s.to_f()?, |p, q| sdt.round_f64(p / q))?;
        let d = zip_broadcast(&c, &m, |p, q| p * q)?;
        let d = match y_zp {
            Some(z) => zip_broadcast(&d, &z.to_f()?, |p, q| p + q)?,
            None => d,
        };
        let r = d.mapv(|v| v.round_ties_even().clamp(lo as f64, hi as f64) as i128);
        Ok(vec![Tensor::int(out, r)])
    }
    fn macs(&self, inputs: &[Option<&ValueType>], _outputs: &[ValueType]) -> u64 {
        matmul_macs(
            inputs.first().copied().flatten(),
            inputs.get(3).copied().flatten(),
        )
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
    fn matmul_integer_vector() {
        let a = Tensor::int(
            DType::U8,
            ArrayD::from_shape_vec(IxDyn(&[4, 3]), vec![11, 7, 3, 10, 6, 2, 9, 5, 1, 8, 4, 0])
                .unwrap(),
        );
        let b = Tensor::int(
            DType::U8,
            ArrayD::from_shape_vec(IxDyn(&[3, 2]), vec![1, 4, 2, 5, 3, 6]).unwrap(),
        );
        let z = Tensor::int(DType::U8, ArrayD::from_elem(IxDyn(&[]), 12));
        let x = centred(&a, Some(&z), true).unwrap();
        let y = centred(&b, None, false).unwrap();
        let r = matmul_arrays(&x, &y).unwrap();
        assert_eq!(
            r.iter().copied().collect::<Vec<_>>(),
            vec![-38, -83, -44, -98, -50, -113, -56, -128]
        );
        // Per-row zero point of A.
        let zr = Tensor::int(
            DType::U8,
            ArrayD::from_shape_vec(IxDyn(&[4]), vec![1, 0, 0, 0]).unwrap(),
        );
        let x = centred(&a, Some(&zr), true).unwrap();
        assert_eq!(x[[0, 0]], 10);
        assert_eq!(x[[1, 0]], 10);
    }
}
