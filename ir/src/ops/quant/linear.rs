//! `QuantizeLinear`, `DequantizeLinear` (per-tensor, per-axis, blocked) and `DynamicQuantizeLinear`.

use crate::onnx::attrs::NodeCtx;
use crate::op::{norm_axis, opt, req, Attr, EvalCx, InferCx, Op};
use crate::shape::{Dim, ValueType};
use crate::tensor::{Data, Tensor};
use crate::{eval_err, DType, Result};
use ndarray::{ArrayD, IxDyn};
use serde::{Deserialize, Serialize};
use std::any::Any;

/// For each element of `x_shape` (row-major), the flat index of its scale / zero point in a
/// parameter of shape `p_shape`: one value, one per `axis` index, or one per block of
/// `block` along `axis`.
pub fn param_index(
    op: &str,
    x_shape: &[usize],
    p_shape: &[usize],
    axis: i64,
    block: usize,
) -> Result<Vec<usize>> {
    let n: usize = x_shape.iter().product();
    let pn: usize = p_shape.iter().product();
    if pn == 1 {
        return Ok(vec![0; n]);
    }
    let ax = norm_axis(axis, x_shape.len()).map_err(|e| eval_err!("{op}: {e}"))?;
    if block == 0 {
        if p_shape.len() != 1 || p_shape[0] != x_shape[ax] {
            return Err(eval_err!(
                "{op}: per-axis scale must be 1-D of length {} (axis {ax} of {x_shape:?}), got {p_shape:?}",
                x_shape[ax]
            ));
        }
    } else {
        let ok = p_shape.len() == x_shape.len()
            && p_shape
                .iter()
                .zip(x_shape)
                .enumerate()
                .all(|(i, (&p, &x))| {
                    if i == ax {
                        p == x.div_ceil(block)
                    } else {
                        p == x
                    }
                });
        if !ok {
            return Err(eval_err!(
                "{op}: blocked scale shape {p_shape:?} does not fit input {x_shape:?} with block_size {block} on axis {ax}"
            ));
        }
    }
    let mut out = Vec::with_capacity(n);
    let mut idx = vec![0usize; x_shape.len()];
    for _ in 0..n {
        out.push(match idx[ax].checked_div(block) {
            None => idx[ax],
            Some(bi) => {
                let mut f = 0;
                for (d, (&i, &p)) in idx.iter().zip(p_shape).enumerate() {
                    f = f * p + if d == ax { bi } else { i };
                }
                f
            }
        });
        for d in (0..x_shape.len()).rev() {
            idx[d] += 1;
            if idx[d] < x_shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    Ok(out)
}

/// The float type `a / b` is computed in by numpy for two float types.
pub fn promote_float(a: DType, b: DType) -> DType {
    if a == b {
        a
    } else if a == DType::F64 || b == DType::F64 {
        DType::F64
    } else {
        DType::F32
    }
}

/// Whether a type is one of the quantized output types.
fn is_quant_type(d: DType) -> bool {
    matches!(
        d,
        DType::U8
            | DType::I8
            | DType::U16
            | DType::I16
            | DType::U4
            | DType::I4
            | DType::U2
            | DType::I2
            | DType::F8E4M3FN
            | DType::F8E4M3FNUZ
            | DType::F8E5M2
            | DType::F8E5M2FNUZ
            | DType::F4E2M1
    )
}

fn dtype_attr(cx: &NodeCtx<'_>, name: &str) -> Result<Option<DType>> {
    match cx.i(name, 0)? {
        0 => Ok(None),
        c => DType::from_onnx_code(c as i32)
            .map(Some)
            .ok_or_else(|| cx.invalid(name, "unknown data type")),
    }
}

/// `y = saturate(round(x / scale) + zero_point)`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QuantizeLinear {
    pub axis: i64,
    pub saturate: bool,
    pub block_size: usize,
    pub output_dtype: Option<DType>,
    pub precision: Option<DType>,
}

/// Builds a `QuantizeLinear`.
pub fn build_quantize(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    let bs = cx.i("block_size", 0)?;
    let output_dtype = dtype_attr(cx, "output_dtype")?;
    if let Some(d) = output_dtype {
        if !is_quant_type(d) {
            return Err(cx.invalid("output_dtype", "not a quantized type"));
        }
    }
    Ok(Box::new(QuantizeLinear {
        axis: cx.i("axis", 1)?,
        saturate: cx.i("saturate", 1)? != 0,
        block_size: usize::try_from(bs).map_err(|_| cx.invalid("block_size", "is negative"))?,
        output_dtype,
        precision: dtype_attr(cx, "precision")?,
    }))
}

impl QuantizeLinear {
    fn out_dtype(&self, zp: Option<DType>) -> DType {
        zp.or(self.output_dtype).unwrap_or(DType::U8)
    }
}

#[typetag::serde]
impl Op for QuantizeLinear {
    fn op_type(&self) -> &str {
        "QuantizeLinear"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let x = cx.input(0)?;
        let dt = self.out_dtype(cx.opt_input(2).map(|t| t.dtype));
        Ok(vec![ValueType {
            dtype: dt,
            shape: x.shape.clone(),
        }])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let s = req(inputs, 1)?;
        let zp = opt(inputs, 2);
        let out = self.out_dtype(zp.map(|z| z.dtype()));
        if !is_quant_type(out) {
            return Err(eval_err!("QuantizeLinear: unsupported output type {out}"));
        }
        if let (Some(z), Some(o)) = (zp, self.output_dtype) {
            if z.dtype() != o {
                return Err(eval_err!(
                    "QuantizeLinear: zero point type {} differs from output_dtype {o}",
                    z.dtype()
                ));
            }
        }
        let xs = x.shape();
        let pidx = param_index("QuantizeLinear", xs, s.shape(), self.axis, self.block_size)?;
        let sv = s.to_f64_vec()?;
        let zv = match zp {
            Some(z) => {
                if z.len() != s.len() {
                    return Err(eval_err!(
                        "QuantizeLinear: zero point shape {:?} differs from scale shape {:?}",
                        z.shape(),
                        s.shape()
                    ));
                }
                z.to_f64_vec()?
            }
            None => vec![0.0; sv.len()],
        };
        let cdt = self
            .precision
            .unwrap_or_else(|| promote_float(x.dtype(), s.dtype()));
        let xv = x.to_f()?;
        let q: Vec<f64> = xv
            .iter()
            .zip(&pidx)
            .map(|(&v, &p)| cdt.round_f64(cdt.round_f64(v) / cdt.round_f64(sv[p])))
            .collect();
        if let Some((lo, hi)) = out.int_range() {
            let y: Vec<i128> = q
                .iter()
                .zip(&pidx)
                .map(|(&v, &p)| {
                    let r = v.round_ties_even() + zv[p];
                    r.clamp(lo as f64, hi as f64) as i128
                })
                .collect();
            let a = ArrayD::from_shape_vec(IxDyn(xs), y).map_err(|e| eval_err!("{e}"))?;
            return Ok(vec![Tensor::int(out, a)]);
        }
        let y: Vec<f64> = q.iter().zip(&pidx).map(|(&v, &p)| v + zv[p]).collect();
        let a = ArrayD::from_shape_vec(IxDyn(xs), y).map_err(|e| eval_err!("{e}"))?;
        Ok(vec![Tensor::float(DType::F64, a).cast(out, self.saturate)?])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        let mut v = vec![
            ("axis", Attr::Int(self.axis)),
            ("saturate", Attr::Int(self.saturate as i64)),
        ];
        if self.block_size != 0 {
            v.push(("block_size", Attr::Int(self.block_size as i64)));
        }
        if let Some(d) = self.output_dtype {
            v.push(("output_dtype", Attr::Int(d.onnx_code() as i64)));
        }
        if let Some(d) = self.precision {
            v.push(("precision", Attr::Int(d.onnx_code() as i64)));
        }
        v
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// `y = (x - zero_point) * scale`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DequantizeLinear {
    pub axis: i64,
    pub block_size: usize,
    pub output_dtype: Option<DType>,
}

/// Builds a `DequantizeLinear`.
pub fn build_dequantize(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    let bs = cx.i("block_size", 0)?;
    let output_dtype = dtype_attr(cx, "output_dtype")?;
    if output_dtype.is_some_and(|d| !d.is_float()) {
        return Err(cx.invalid("output_dtype", "must be a float type"));
    }
    Ok(Box::new(DequantizeLinear {
        axis: cx.i("axis", 1)?,
        block_size: usize::try_from(bs).map_err(|_| cx.invalid("block_size", "is negative"))?,
        output_dtype,
    }))
}

#[typetag::serde]
impl Op for DequantizeLinear {
    fn op_type(&self) -> &str {
        "DequantizeLinear"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let x = cx.input(0)?;
        let dt = self.output_dtype.unwrap_or(cx.input(1)?.dtype);
        Ok(vec![ValueType {
            dtype: dt,
            shape: x.shape.clone(),
        }])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let s = req(inputs, 1)?;
        let zp = opt(inputs, 2);
        if !s.dtype().is_float() {
            return Err(eval_err!(
                "DequantizeLinear: scale must be a float tensor, got {}",
                s.dtype()
            ));
        }
        let out = self.output_dtype.unwrap_or(s.dtype());
        let xs = x.shape();
        let pidx = param_index(
            "DequantizeLinear",
            xs,
            s.shape(),
            self.axis,
            self.block_size,
        )?;
        let sv = s.to_f64_vec()?;
        let zv = match zp {
            Some(z) => {
                if z.len() != s.len() {
                    return Err(eval_err!(
                        "DequantizeLinear: zero point shape {:?} differs from scale shape {:?}",
                        z.shape(),
                        s.shape()
                    ));
                }
                z.to_f64_vec()?
            }
            None => vec![0.0; sv.len()],
        };
        let y: Vec<f64> = x
            .to_f()?
            .iter()
            .zip(&pidx)
            .map(|(&v, &p)| DType::F32.round_f64(v - zv[p]) * sv[p])
            .collect();
        let a = ArrayD::from_shape_vec(IxDyn(xs), y).map_err(|e| eval_err!("{e}"))?;
        Ok(vec![Tensor::float(out, a)])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        let mut v = vec![("axis", Attr::Int(self.axis))];
        if self.block_size != 0 {
            v.push(("block_size", Attr::Int(self.block_size as i64)));
        }
        if let Some(d) = self.output_dtype {
            v.push(("output_dtype", Attr::Int(d.onnx_code() as i64)));
        }
        v
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Quantizes a float tensor to uint8 with a scale and zero point computed from its range.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DynamicQuantizeLinear;

/// `(y, scale, zero_point)` of `DynamicQuantizeLinear`, in float32 arithmetic.
pub fn dynamic_quantize(x: &[f32]) -> (Vec<u8>, f32, u8) {
    let maxx = x.iter().fold(0f32, |m, &v| if v > m { v } else { m });
    let minx = x.iter().fold(0f32, |m, &v| if v < m { v } else { m });
    let scale = if maxx == minx { 1.0 } else { maxx - minx } / 255f32;
    let zp = (0f32 - minx / scale).clamp(0.0, 255.0).round_ties_even();
    let y = x
        .iter()
        .map(|&v| ((v / scale).round_ties_even() + zp).clamp(0.0, 255.0) as u8)
        .collect();
    (y, scale, zp as u8)
}

#[typetag::serde]
impl Op for DynamicQuantizeLinear {
    fn op_type(&self) -> &str {
        "DynamicQuantizeLinear"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let x = cx.input(0)?;
        Ok(vec![
            ValueType {
                dtype: DType::U8,
                shape: x.shape.clone(),
            },
            ValueType::new(x.dtype, Vec::<Dim>::new()),
            ValueType::new(DType::U8, Vec::<Dim>::new()),
        ])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let Data::F(a) = x.data() else {
            return Err(eval_err!(
                "DynamicQuantizeLinear: input must be float, got {}",
                x.dtype()
            ));
        };
        let v: Vec<f32> = a.iter().map(|&v| v as f32).collect();
        let (y, s, z) = dynamic_quantize(&v);
        let ya = ArrayD::from_shape_vec(IxDyn(x.shape()), y.into_iter().map(i128::from).collect())
            .map_err(|e| eval_err!("{e}"))?;
        Ok(vec![
            Tensor::int(DType::U8, ya),
            Tensor::float(x.dtype(), ArrayD::from_elem(IxDyn(&[]), s as f64)),
            Tensor::int(DType::U8, ArrayD::from_elem(IxDyn(&[]), z as i128)),
        ])
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoRun;
    impl crate::op::SubgraphRunner for NoRun {
        fn run(&mut self, _g: &crate::Graph, _i: Vec<Tensor>) -> Result<Vec<Tensor>> {
            Err(eval_err!("no subgraphs"))
        }
    }

    fn run(op: &dyn Op, ins: &[&Tensor]) -> Tensor {
        let mut r = NoRun;
        let mut cx = EvalCx {
            num_outputs: 1,
            runner: &mut r,
        };
        let ins: Vec<Option<&Tensor>> = ins.iter().map(|t| Some(*t)).collect();
        op.eval(&mut cx, &ins).unwrap().remove(0)
    }

    fn f32s(shape: &[usize], v: &[f64]) -> Tensor {
        Tensor::float(
            DType::F32,
            ArrayD::from_shape_vec(IxDyn(shape), v.to_vec()).unwrap(),
        )
    }
    fn ints(d: DType, shape: &[usize], v: &[i128]) -> Tensor {
        Tensor::int(d, ArrayD::from_shape_vec(IxDyn(shape), v.to_vec()).unwrap())
    }

    fn q(axis: i64, block: usize) -> QuantizeLinear {
        QuantizeLinear {
            axis,
            saturate: true,
            block_size: block,
            output_dtype: None,
            precision: None,
        }
    }

    #[test]
    fn quantize_vectors() {
        let x = f32s(&[6], &[0.0, 2.0, 3.0, 1000.0, -254.0, -1000.0]);
        let y = run(
            &q(1, 0),
            &[&x, &f32s(&[], &[2.0]), &ints(DType::U8, &[], &[128])],
        );
        assert_eq!(y.to_i64_vec().unwrap(), vec![128, 129, 130, 255, 1, 0]);

        let x = f32s(
            &[3, 4],
            &[
                0.0, 2.5, 4.8, 8.6, -30.0, -20.0, 6.0, 9.0, 12.0, 15.0, 16.0, 40.0,
            ],
        );
        let y = run(
            &q(0, 0),
            &[
                &x,
                &f32s(&[3], &[2.0, 3.0, 4.0]),
                &ints(DType::I4, &[3], &[1, 1, 1]),
            ],
        );
        assert_eq!(y.dtype(), DType::I4);
        assert_eq!(
            y.to_i64_vec().unwrap(),
            vec![1, 2, 3, 5, -8, -6, 3, 4, 4, 5, 5, 7]
        );

        let x = f32s(
            &[3, 4],
            &[
                6.0, 12.0, 50.0, 5.0, 1.0, 8.0, 4.0, 5.0, 0.0, 20.0, 10.0, 4.0,
            ],
        );
        let s = f32s(&[3, 2], &[1.5, 2.5, 3.0, 4.9, 5.1, 6.9]);
        let z = ints(DType::U8, &[3, 2], &[0, 1, 1, 0, 2, 3]);
        let y = run(&q(1, 2), &[&x, &s, &z]);
        assert_eq!(
            y.to_i64_vec().unwrap(),
            vec![4, 8, 21, 3, 1, 4, 1, 1, 2, 6, 4, 4]
        );

        let x = f32s(&[5], &[0.0, 1.0, 2.0, 1e5, 200.0]);
        let mut op = q(1, 0);
        op.output_dtype = Some(DType::F8E4M3FN);
        let y = run(&op, &[&x, &f32s(&[], &[2.0])]);
        assert_eq!(y.to_f64_vec().unwrap(), vec![0.0, 0.5, 1.0, 448.0, 96.0]);
        op.output_dtype = Some(DType::F8E5M2);
        let y = run(&op, &[&x, &f32s(&[], &[2.0])]);
        assert_eq!(y.to_f64_vec().unwrap(), vec![0.0, 0.5, 1.0, 49152.0, 96.0]);
    }

    #[test]
    fn dequantize_and_dynamic() {
        let op = DequantizeLinear {
            axis: 1,
            block_size: 0,
            output_dtype: None,
        };
        let y = run(
            &op,
            &[
                &ints(DType::U8, &[4], &[0, 3, 128, 255]),
                &f32s(&[], &[2.0]),
                &ints(DType::U8, &[], &[128]),
            ],
        );
        assert_eq!(y.to_f64_vec().unwrap(), vec![-256.0, -250.0, 0.0, 254.0]);
        let (y, s, z) = dynamic_quantize(&[0.0, 2.0, -3.0, -2.5, 1.34, 0.5]);
        assert_eq!(s, 5.0 / 255.0);
        assert_eq!(z, 153);
        assert_eq!(y, vec![153, 255, 0, 26, 221, 179]);
    }
}
