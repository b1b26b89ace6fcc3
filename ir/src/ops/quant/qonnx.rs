//! QONNX custom ops `Quant` (alias `IntQuant`), `BipolarQuant` and `Trunc`, in any of the three
//! QONNX domains; each op keeps the domain it was imported from for export.

use crate::onnx::attrs::NodeCtx;
use crate::op::{req, Attr, EvalCx, InferCx, Op};
use crate::ops::util::{broadcast_shape, broadcast_to};
use crate::shape::ValueType;
use crate::tensor::Tensor;
use crate::{eval_err, DType, Result};
use ndarray::{ArrayD, IxDyn, Zip};
use serde::{Deserialize, Serialize};
use std::any::Any;

/// How `Quant` and `Trunc` round to integers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rounding {
    /// Round half to even.
    Round,
    Ceil,
    Floor,
    /// Away from zero: `sign * ceil(|x|)`.
    Up,
    /// Toward zero.
    Down,
    HalfUp,
    HalfDown,
}

impl Rounding {
    /// Parses a mode name (case-insensitive).
    pub fn parse(s: &str) -> Option<Rounding> {
        Some(match s.to_ascii_uppercase().as_str() {
            "ROUND" | "HALF_EVEN" => Rounding::Round,
            "CEIL" => Rounding::Ceil,
            "FLOOR" => Rounding::Floor,
            "UP" => Rounding::Up,
            "DOWN" => Rounding::Down,
            "HALF_UP" => Rounding::HalfUp,
            "HALF_DOWN" => Rounding::HalfDown,
            _ => return None,
        })
    }
    /// The canonical name.
    pub fn name(self) -> &'static str {
        match self {
            Rounding::Round => "ROUND",
            Rounding::Ceil => "CEIL",
            Rounding::Floor => "FLOOR",
            Rounding::Up => "UP",
            Rounding::Down => "DOWN",
            Rounding::HalfUp => "HALF_UP",
            Rounding::HalfDown => "HALF_DOWN",
        }
    }
    /// Rounds one value.
    pub fn apply(self, x: f64) -> f64 {
        let s = x.signum();
        match self {
            Rounding::Round => x.round_ties_even(),
            Rounding::Ceil => x.ceil(),
            Rounding::Floor => x.floor(),
            Rounding::Up => s * x.abs().ceil(),
            Rounding::Down => x.trunc(),
            Rounding::HalfUp => s * (x.abs() + 0.5).floor(),
            Rounding::HalfDown => s * (x.abs() - 0.5).ceil(),
        }
    }
}

fn rounding_attr(cx: &NodeCtx<'_>, default: &str) -> Result<Rounding> {
    let s = cx.s("rounding_mode", default)?;
    Rounding::parse(&s).ok_or_else(|| cx.invalid("rounding_mode", &format!("unknown mode '{s}'")))
}

/// `(min, max)` integer of a `bits`-wide range.
pub fn int_bounds(signed: bool, narrow: bool, bits: f64) -> (f64, f64) {
    let n = narrow as i32 as f64;
    if signed {
        (-(2f64.powf(bits - 1.0)) + n, 2f64.powf(bits - 1.0) - 1.0)
    } else {
        (0.0, 2f64.powf(bits) - 1.0 - n)
    }
}

/// All inputs broadcast together as `f64` arrays (values of the input's own type).
fn broadcast_all(op: &str, ts: &[&Tensor]) -> Result<(Vec<usize>, Vec<ArrayD<f64>>)> {
    let mut shape: Vec<usize> = Vec::new();
    for t in ts {
        shape = broadcast_shape(&shape, t.shape()).map_err(|e| eval_err!("{op}: {e}"))?;
    }
    let arrs = ts
        .iter()
        .map(|t| broadcast_to(&t.to_f()?, &shape))
        .collect::<Result<Vec<_>>>()?;
    Ok((shape, arrs))
}

fn float_input<'t>(op: &str, inputs: &[Option<&'t Tensor>]) -> Result<&'t Tensor> {
    let x = req(inputs, 0)?;
    if !x.dtype().is_float() {
        return Err(eval_err!(
            "{op}: input must be a float tensor, got {}",
            x.dtype()
        ));
    }
    Ok(x)
}

fn infer_like_x(cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
    // The output broadcasts X with the parameters; in practice it has X's shape.
    Ok(vec![crate::ops::util::infer_broadcast(
        cx,
        Some(cx.input(0)?.dtype),
    )?])
}

/// QONNX integer quantization: `Y = (round(clip(X/scale + zeropt)) - zeropt) * scale`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QonnxQuant {
    pub domain: String,
    /// `Quant` or `IntQuant`.
    pub name: String,
    pub signed: bool,
    pub narrow: bool,
    pub rounding: Rounding,
}

/// Builds a `Quant` / `IntQuant`.
pub fn build_quant(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    Ok(Box::new(QonnxQuant {
        domain: cx.domain.to_string(),
        name: cx.op_type.to_string(),
        signed: cx.i("signed", 1)? != 0,
        narrow: cx.i("narrow", 0)? != 0,
        rounding: rounding_attr(cx, "ROUND")?,
    }))
}

/// Parameters of `Quant` besides the per-element values.
#[derive(Clone, Copy, Debug)]
pub struct QuantParams {
    pub signed: bool,
    pub narrow: bool,
    pub rounding: Rounding,
    /// The float type the arithmetic is rounded to (QONNX computes in the input's type).
    pub dtype: DType,
}

/// One element of `Quant`.
pub fn quant_one(x: f64, s: f64, z: f64, bits: f64, p: QuantParams) -> f64 {
    let (signed, narrow, r, dt) = (p.signed, p.narrow, p.rounding, p.dtype);
    let t = dt.round_f64(dt.round_f64(x / s) + z);
    let q = if bits == 1.0 && signed {
        if t >= 0.0 {
            1.0
        } else {
            -1.0
        }
    } else {
        let (lo, hi) = int_bounds(signed, narrow, bits);
        r.apply(t.clamp(lo, hi))
    };
    (q - z) * s
}

#[typetag::serde]
impl Op for QonnxQuant {
    fn op_type(&self) -> &str {
        &self.name
    }
    fn domain(&self) -> &str {
        &self.domain
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        infer_like_x(cx)
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = float_input("Quant", inputs)?;
        let ins = [x, req(inputs, 1)?, req(inputs, 2)?, req(inputs, 3)?];
        let (shape, a) = broadcast_all("Quant", &ins)?;
        let dt = x.dtype();
        let p = QuantParams {
            signed: self.signed,
            narrow: self.narrow,
            rounding: self.rounding,
            dtype: dt,
        };
        let mut out = ArrayD::<f64>::zeros(IxDyn(&shape));
        Zip::from(&mut out)
            .and(&a[0])
            .and(&a[1])
            .and(&a[2])
            .and(&a[3])
            .for_each(|o, &x, &s, &z, &b| {
                *o = quant_one(x, s, z, b, p);
            });
        Ok(vec![Tensor::float(dt, out)])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        vec![
            ("signed", Attr::Int(self.signed as i64)),
            ("narrow", Attr::Int(self.narrow as i64)),
            ("rounding_mode", Attr::Str(self.rounding.name().to_string())),
        ]
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// QONNX binary quantization: `Y = scale * (X >= 0 ? 1 : -1)`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BipolarQuant {
    pub domain: String,
}

#[typetag::serde]
impl Op for BipolarQuant {
    fn op_type(&self) -> &str {
        "BipolarQuant"
    }
    fn domain(&self) -> &str {
        &self.domain
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        infer_like_x(cx)
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = float_input("BipolarQuant", inputs)?;
        let (_, a) = broadcast_all("BipolarQuant", &[x, req(inputs, 1)?])?;
        let out = Zip::from(&a[0])
            .and(&a[1])
            .map_collect(|&x, &s| if x >= 0.0 { s } else { -s });
        Ok(vec![Tensor::float(x.dtype(), out)])
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// QONNX truncation of a quantized value to fewer bits. Version 1 takes
/// `(X, scale, zeropt, in_bits, out_bits)`; version 2 `(X, scale, zeropt, in_bits, out_scale,
/// out_bits)` (or with an unused `out_zeropt` before `out_bits`) and clamps to the output range.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QonnxTrunc {
    pub domain: String,
    pub signed: bool,
    pub narrow: bool,
    pub rounding: Rounding,
    /// Whether `signed` / `narrow` were given (version 2 attributes), for export.
    pub v2_attrs: bool,
}

/// Builds a `Trunc`.
pub fn build_trunc(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    Ok(Box::new(QonnxTrunc {
        domain: cx.domain.to_string(),
        signed: cx.i("signed", 1)? != 0,
        narrow: cx.i("narrow", 0)? != 0,
        rounding: rounding_attr(cx, "FLOOR")?,
        v2_attrs: cx.has("signed") || cx.has("narrow") || cx.num_inputs > 5,
    }))
}

/// One element of `Trunc` version 1.
pub fn trunc_v1(x: f64, s: f64, z: f64, in_bits: f64, out_bits: f64, r: Rounding) -> f64 {
    let y = (x / s + z).round_ties_even();
    let y = r.apply(y / 2f64.powf(in_bits - out_bits));
    (y - z) * s
}

impl QonnxTrunc {
    /// One element of `Trunc` version 2.
    pub fn v2(&self, x: f64, s: f64, z: f64, out_scale: f64, out_bits: f64) -> f64 {
        let y = (x / s + z).round_ties_even();
        let t = 2f64.powf((out_scale / s).log2().round_ties_even());
        let (lo, hi) = int_bounds(self.signed, self.narrow, out_bits);
        let y = self.rounding.apply((y / t).clamp(lo, hi));
        (y - z / t) * out_scale
    }
}

#[typetag::serde]
impl Op for QonnxTrunc {
    fn op_type(&self) -> &str {
        "Trunc"
    }
    fn domain(&self) -> &str {
        &self.domain
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        infer_like_x(cx)
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = float_input("Trunc", inputs)?;
        let n = inputs.len();
        let dt = x.dtype();
        if n <= 5 {
            let ins = [
                x,
                req(inputs, 1)?,
                req(inputs, 2)?,
                req(inputs, 3)?,
                req(inputs, 4)?,
            ];
            let (shape, a) = broadcast_all("Trunc", &ins)?;
            let mut out = ArrayD::<f64>::zeros(IxDyn(&shape));
            Zip::from(&mut out)
                .and(&a[0])
                .and(&a[1])
                .and(&a[2])
                .and(&a[3])
                .and(&a[4])
                .for_each(|o, &x, &s, &z, &ib, &ob| {
                    *o = trunc_v1(x, s, z, ib, ob, self.rounding);
                });
            return Ok(vec![Tensor::float(dt, out)]);
        }
        let out_bits_at = if n >= 7 { 6 } else { 5 };
        let ins = [
            x,
            req(inputs, 1)?,
            req(inputs, 2)?,
            req(inputs, 4)?,
            req(inputs, out_bits_at)?,
        ];
        let (shape, a) = broadcast_all("Trunc", &ins)?;
        let mut out = ArrayD::<f64>::zeros(IxDyn(&shape));
        Zip::from(&mut out)
            .and(&a[0])
            .and(&a[1])
            .and(&a[2])
            .and(&a[3])
            .and(&a[4])
            .for_each(|o, &x, &s, &z, &os, &ob| {
                *o = self.v2(x, s, z, os, ob);
            });
        Ok(vec![Tensor::float(dt, out)])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        let mut v = vec![("rounding_mode", Attr::Str(self.rounding.name().to_string()))];
        if self.v2_attrs {
            v.push(("signed", Attr::Int(self.signed as i64)));
            v.push(("narrow", Attr::Int(self.narrow as i64)));
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
    fn rounding_table() {
        let xs = [5.5, 2.5, 1.6, 1.1, 1.0, -1.0, -1.1, -1.6, -2.5, -5.5];
        let table: [(&str, [f64; 10]); 7] = [
            ("ROUND", [6., 2., 2., 1., 1., -1., -1., -2., -2., -6.]),
            ("ceil", [6., 3., 2., 2., 1., -1., -1., -1., -2., -5.]),
            ("FLOOR", [5., 2., 1., 1., 1., -1., -2., -2., -3., -6.]),
            ("UP", [6., 3., 2., 2., 1., -1., -2., -2., -3., -6.]),
            ("DOWN", [5., 2., 1., 1., 1., -1., -1., -1., -2., -5.]),
            ("HALF_UP", [6., 3., 2., 1., 1., -1., -1., -2., -3., -6.]),
            ("HALF_DOWN", [5., 2., 2., 1., 1., -1., -1., -2., -2., -5.]),
        ];
        for (mode, want) in table {
            let r = Rounding::parse(mode).unwrap();
            let got: Vec<f64> = xs.iter().map(|&x| r.apply(x)).collect();
            assert_eq!(got, want, "{mode}");
        }
        assert!(Rounding::parse("ROUND_TO_ZERO").is_none());
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6
    }

    #[test]
    fn quant_vectors() {
        use Rounding::*;
        // x, scale, zp, bits, signed, narrow, mode -> y; computed in float32 as QONNX does.
        let f = |x: f64| x as f32 as f64;
        type Case = (f64, f64, f64, f64, bool, bool, Rounding, f64);
        let cases: [Case; 15] = [
            (0.37, 0.1, 0.0, 4.0, true, false, Round, 0.4),
            (0.37, 0.1, 0.0, 4.0, true, false, Floor, 0.3),
            (0.37, 0.1, 0.0, 4.0, true, false, Ceil, 0.4),
            (1.0, 0.1, 0.0, 4.0, true, false, Round, 0.7),
            (-1.0, 0.1, 0.0, 4.0, true, false, Round, -0.8),
            (-1.0, 0.1, 0.0, 4.0, true, true, Round, -0.7),
            (20.0, 1.0, 0.0, 4.0, false, false, Round, 15.0),
            (20.0, 1.0, 0.0, 4.0, false, true, Round, 14.0),
            (-3.7, 1.0, 0.0, 4.0, false, false, Round, 0.0),
            (0.2, 0.5, 2.0, 3.0, false, false, Round, 0.0),
            (-5.0, 0.5, 2.0, 3.0, false, false, Round, -1.0),
            (0.625, 0.25, 0.0, 8.0, true, false, Round, 0.5),
            (0.625, 0.25, 0.0, 8.0, true, false, HalfUp, 0.75),
            (0.375, 0.25, 0.0, 8.0, true, false, Round, 0.5),
            (0.3, 1.0, 0.0, 1.0, true, false, Round, 1.0),
        ];
        let p = |signed, narrow, rounding| QuantParams {
            signed,
            narrow,
            rounding,
            dtype: DType::F32,
        };
        for (x, s, z, b, sg, nw, r, want) in cases {
            let got = quant_one(f(x), f(s), z, b, p(sg, nw, r));
            assert!(
                close(got, want),
                "quant({x}, {s}, {z}, {b}) = {got}, want {want}"
            );
        }
        assert_eq!(quant_one(-0.3, 1.0, 0.0, 1.0, p(true, false, Round)), -1.0);
    }

    #[test]
    fn trunc_vectors() {
        let r = Rounding::Floor;
        assert_eq!(trunc_v1(100.0, 1.0, 0.0, 8.0, 4.0, r), 6.0);
        assert_eq!(trunc_v1(-100.0, 1.0, 0.0, 8.0, 4.0, r), -7.0);
        let t = QonnxTrunc {
            domain: String::new(),
            signed: true,
            narrow: false,
            rounding: r,
            v2_attrs: true,
        };
        assert_eq!(t.v2(100.0, 1.0, 0.0, 16.0, 4.0), 96.0);
        assert_eq!(t.v2(-100.0, 1.0, 0.0, 16.0, 4.0), -112.0);
        assert_eq!(t.v2(127.0, 1.0, 0.0, 16.0, 4.0), 112.0);
    }

    #[test]
    fn bipolar_vector() {
        let x = Tensor::from_f32(&[3], vec![-0.2, 0.0, 3.0]).unwrap();
        let s = Tensor::from_f32(&[], vec![0.5]).unwrap();
        let (_, a) = broadcast_all("BipolarQuant", &[&x, &s]).unwrap();
        let y: Vec<f64> = a[0]
            .iter()
            .zip(a[1].iter())
            .map(|(&x, &s)| if x >= 0.0 { s } else { -s })
            .collect();
        assert_eq!(y, vec![-0.5, 0.5, 0.5]);
    }

    /// The QONNX model's `onnx.brevitas` Quant nodes import as typed ops and export with their
    /// domain and attributes (runs only where PETASOS_SHARED points at the shared data).
    #[test]
    fn qonnx_model_keeps_domain() {
        let Some(shared) = std::env::var_os("PETASOS_SHARED") else {
            return;
        };
        let path = std::path::Path::new(&shared).join("models/espcn_subpixel_quant.onnx");
        if !path.is_file() {
            return;
        }
        let g = crate::onnx::import_file(&path).unwrap();
        let quants: Vec<&QonnxQuant> =
            g.g.node_weights()
                .filter_map(|n| n.op.as_any().downcast_ref::<QonnxQuant>())
                .collect();
        assert_eq!(quants.len(), 8);
        assert!(quants.iter().all(|q| q.domain == "onnx.brevitas"));
        assert!(quants.iter().any(|q| q.signed && q.narrow));
        let m = crate::onnx::export_model(&g).unwrap();
        let nodes: Vec<_> = m
            .graph
            .node
            .iter()
            .filter(|n| n.op_type == "Quant")
            .collect();
        assert_eq!(nodes.len(), 8);
        for n in nodes {
            assert_eq!(n.domain, "onnx.brevitas");
            let names: Vec<&str> = n.attribute.iter().map(|a| a.name.as_str()).collect();
            assert!(names.contains(&"signed") && names.contains(&"narrow"));
        }
        assert!(m.opset_import.iter().any(|o| o.domain == "onnx.brevitas"));
    }
}
