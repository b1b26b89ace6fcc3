//! Type conversions: `Cast`, `CastLike` (value conversion) and `BitCast` (bit reinterpretation).

use crate::onnx::attrs::NodeCtx;
use crate::op::{req, Attr, EvalCx, InferCx, Op};
use crate::ops::Registry;
use crate::shape::ValueType;
use crate::tensor::{Data, Tensor};
use crate::{eval_err, infer_err, DType, Result};
use serde::{Deserialize, Serialize};
use std::any::Any;

/// Registers this file's builders.
pub fn register(r: &mut Registry) {
    r.add("Cast", |cx| {
        let (saturate, round_mode) = cast_options(cx)?;
        Ok(Box::new(Cast {
            to: to_attr(cx)?,
            saturate,
            round_mode,
        }))
    });
    r.add("CastLike", |cx| {
        let (saturate, round_mode) = cast_options(cx)?;
        Ok(Box::new(CastLike {
            saturate,
            round_mode,
        }))
    });
    r.add("BitCast", |cx| {
        let to = to_attr(cx)?;
        if matches!(to, DType::String | DType::Complex64 | DType::Complex128) {
            return Err(cx.invalid("to", "BitCast cannot produce this type"));
        }
        Ok(Box::new(BitCast { to }))
    });
}

/// The required `to` attribute: a `TensorProto.DataType` code (or, in opset 1, its name).
fn to_attr(cx: &NodeCtx<'_>) -> Result<DType> {
    let code = match cx.opt_i("to") {
        Ok(Some(c)) => c,
        Ok(None) => return Err(cx.invalid("to", "is required")),
        Err(e) => {
            let name = cx.opt_s("to").map_err(|_| e)?.unwrap_or_default();
            return DType::ALL
                .iter()
                .copied()
                .find(|d| d.onnx_name().eq_ignore_ascii_case(&name))
                .ok_or_else(|| cx.invalid("to", &format!("unknown type name '{name}'")));
        }
    };
    i32::try_from(code)
        .ok()
        .and_then(DType::from_onnx_code)
        .ok_or_else(|| cx.invalid("to", &format!("unknown data type {code}")))
}

/// The `saturate` and `round_mode` attributes.
fn cast_options(cx: &NodeCtx<'_>) -> Result<(bool, String)> {
    let saturate = cx.i("saturate", 1)? != 0;
    let round_mode = cx.s("round_mode", "up")?;
    if !matches!(round_mode.as_str(), "up" | "down" | "nearest") {
        return Err(cx.invalid("round_mode", "must be up, down or nearest"));
    }
    Ok((saturate, round_mode))
}

fn cast_attrs(saturate: bool, round_mode: &str) -> Vec<(&'static str, Attr)> {
    let mut v = Vec::new();
    if !saturate {
        v.push(("saturate", Attr::Int(0)));
    }
    if round_mode != "up" {
        v.push(("round_mode", Attr::Str(round_mode.to_string())));
    }
    v
}

/// Converts values to another type.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Cast {
    pub to: DType,
    pub saturate: bool,
    pub round_mode: String,
}

#[typetag::serde]
impl Op for Cast {
    fn op_type(&self) -> &str {
        "Cast"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let mut t = cx.input(0)?.clone();
        t.dtype = self.to;
        Ok(vec![t])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        Ok(vec![x.cast_with(
            self.to,
            self.saturate,
            &self.round_mode,
        )?])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        let mut v = vec![("to", Attr::Int(self.to.onnx_code() as i64))];
        v.extend(cast_attrs(self.saturate, &self.round_mode));
        v
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Converts values to the type of its second input.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CastLike {
    pub saturate: bool,
    pub round_mode: String,
}

#[typetag::serde]
impl Op for CastLike {
    fn op_type(&self) -> &str {
        "CastLike"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let mut t = cx.input(0)?.clone();
        t.dtype = cx.input(1)?.dtype;
        Ok(vec![t])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let like = req(inputs, 1)?;
        Ok(vec![x.cast_with(
            like.dtype(),
            self.saturate,
            &self.round_mode,
        )?])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        cast_attrs(self.saturate, &self.round_mode)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Reinterprets the bits of each element as another type of the same width.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BitCast {
    pub to: DType,
}

fn bitcast_ok(from: DType, to: DType) -> std::result::Result<(), String> {
    let bad = |d: DType| matches!(d, DType::String | DType::Complex64 | DType::Complex128);
    if bad(from) || bad(to) {
        return Err(format!("BitCast between {from} and {to} is not supported"));
    }
    if from.bits() != to.bits() {
        return Err(format!(
            "BitCast needs types of the same width: {from} has {} bits, {to} has {}",
            from.bits(),
            to.bits()
        ));
    }
    Ok(())
}

/// The bit pattern of one value of type `d` (given in its carrier).
fn float_bits(d: DType, v: f64) -> u64 {
    match d {
        DType::F64 => v.to_bits(),
        DType::F32 => (v as f32).to_bits() as u64,
        DType::F16 => half::f16::from_f64(v).to_bits() as u64,
        DType::BF16 => half::bf16::from_f64(v).to_bits() as u64,
        _ => crate::minifloat::encode(d, v, false) as u64,
    }
}

/// The value of type `d` with bit pattern `b`.
fn float_from_bits(d: DType, b: u64) -> f64 {
    match d {
        DType::F64 => f64::from_bits(b),
        DType::F32 => f32::from_bits(b as u32) as f64,
        DType::F16 => half::f16::from_bits(b as u16).to_f64(),
        DType::BF16 => half::bf16::from_bits(b as u16).to_f64(),
        _ => crate::minifloat::decode(d, b as u8),
    }
}

/// Reinterprets `x`'s bits as type `to`.
pub(super) fn bitcast(x: &Tensor, to: DType) -> Result<Tensor> {
    let from = x.dtype();
    bitcast_ok(from, to).map_err(|e| eval_err!("{e}"))?;
    let mask: u128 = if from.bits() >= 64 {
        u64::MAX as u128
    } else {
        (1u128 << from.bits()) - 1
    };
    let bits = match x.data() {
        Data::F(a) => a.mapv(|v| float_bits(from, v)),
        Data::I(a) => a.mapv(|v| ((v as u128) & mask) as u64),
        Data::B(a) => a.mapv(u64::from),
        Data::S(_) => return Err(eval_err!("BitCast from string is not supported")),
    };
    let data = if to.is_float() {
        Data::F(bits.mapv(|b| float_from_bits(to, b)))
    } else if to.is_int() {
        Data::I(bits.mapv(|b| to.wrap_int(b as i128)))
    } else {
        Data::B(bits.mapv(|b| b != 0))
    };
    Tensor::from_data(to, data)
}

#[typetag::serde]
impl Op for BitCast {
    fn op_type(&self) -> &str {
        "BitCast"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let mut t = cx.input(0)?.clone();
        bitcast_ok(t.dtype, self.to).map_err(|e| infer_err!("{e}"))?;
        t.dtype = self.to;
        Ok(vec![t])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        Ok(vec![bitcast(req(inputs, 0)?, self.to)?])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        vec![("to", Attr::Int(self.to.onnx_code() as i64))]
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{ArrayD, IxDyn};

    #[test]
    fn bitcast_round_trips() {
        let t = Tensor::from_f32(&[2], vec![1.0, -2.5]).unwrap();
        let i = bitcast(&t, DType::I32).unwrap();
        assert_eq!(
            i.to_i64_vec().unwrap(),
            vec![0x3F80_0000, (-2.5f32).to_bits() as i32 as i64]
        );
        assert_eq!(bitcast(&i, DType::F32).unwrap(), t);
        let u = Tensor::int(DType::U16, ArrayD::from_elem(IxDyn(&[1]), 0xFFFF));
        assert_eq!(
            bitcast(&u, DType::I16).unwrap().to_i64_vec().unwrap(),
            vec![-1]
        );
        assert!(bitcast(&u, DType::I32).is_err());
    }

    #[test]
    fn e8m0_rounding_modes() {
        let t = Tensor::from_f32(&[4], vec![0.0, 1.1, 3.0, -4.0]).unwrap();
        let up = t.cast_with(DType::F8E8M0, true, "up").unwrap();
        assert_eq!(
            up.to_f64_vec().unwrap(),
            vec![2f64.powi(-127), 2.0, 4.0, 4.0]
        );
        let down = t.cast_with(DType::F8E8M0, true, "down").unwrap();
        assert_eq!(down.to_f64_vec().unwrap()[1..], [1.0, 2.0, 4.0]);
        let nan = Tensor::from_f32(&[1], vec![f32::INFINITY]).unwrap();
        assert!(nan.cast(DType::F8E8M0, true).unwrap().to_f64_vec().unwrap()[0].is_nan());
    }
}
