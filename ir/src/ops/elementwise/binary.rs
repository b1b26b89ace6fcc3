//! Binary ops with numpy broadcasting: arithmetic, comparisons, logic, bitwise ops and `PRelu`.

use crate::onnx::attrs::NodeCtx;
use crate::op::{req, Attr, EvalCx, InferCx, Op};
use crate::ops::util::{infer_broadcast, zip_broadcast};
use crate::ops::Registry;
use crate::shape::{broadcast_shapes, Dim, ValueType};
use crate::tensor::{f64_to_i128, Data, Tensor};
use crate::{eval_err, infer_err, DType, Result};
use ndarray::ArrayD;
use serde::{Deserialize, Serialize};
use std::any::Any;

/// Which binary function a [`BinaryOp`] computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BinFn {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    /// `fmod`: C `fmod` (sign of the dividend) instead of the sign of the divisor.
    Mod {
        fmod: bool,
    },
    Equal,
    Greater,
    GreaterOrEqual,
    Less,
    LessOrEqual,
    And,
    Or,
    Xor,
    /// `left`: shift direction.
    BitShift {
        left: bool,
    },
    BitwiseAnd,
    BitwiseOr,
    BitwiseXor,
    PRelu,
}

/// Registers this file's builders.
pub fn register(r: &mut Registry) {
    r.add("Add", |cx| legacy(BinFn::Add, cx));
    r.add("Sub", |cx| legacy(BinFn::Sub, cx));
    r.add("Mul", |cx| legacy(BinFn::Mul, cx));
    r.add("Div", |cx| legacy(BinFn::Div, cx));
    r.add("Pow", |cx| legacy(BinFn::Pow, cx));
    r.add("Mod", |cx| {
        let fmod = match cx.i("fmod", 0)? {
            0 => false,
            1 => true,
            _ => return Err(cx.invalid("fmod", "must be 0 or 1")),
        };
        bin(BinFn::Mod { fmod })
    });
    r.add("Equal", |cx| legacy(BinFn::Equal, cx));
    r.add("Greater", |cx| legacy(BinFn::Greater, cx));
    r.add("GreaterOrEqual", |_| bin(BinFn::GreaterOrEqual));
    r.add("Less", |cx| legacy(BinFn::Less, cx));
    r.add("LessOrEqual", |_| bin(BinFn::LessOrEqual));
    r.add("And", |cx| legacy(BinFn::And, cx));
    r.add("Or", |cx| legacy(BinFn::Or, cx));
    r.add("Xor", |cx| legacy(BinFn::Xor, cx));
    r.add("BitShift", |cx| {
        let left = match cx.s("direction", "")?.as_str() {
            "LEFT" => true,
            "RIGHT" => false,
            _ => return Err(cx.invalid("direction", "must be LEFT or RIGHT")),
        };
        bin(BinFn::BitShift { left })
    });
    r.add("BitwiseAnd", |_| bin(BinFn::BitwiseAnd));
    r.add("BitwiseOr", |_| bin(BinFn::BitwiseOr));
    r.add("BitwiseXor", |_| bin(BinFn::BitwiseXor));
    r.add("PRelu", |_| bin(BinFn::PRelu));
}

fn bin(f: BinFn) -> Result<Box<dyn Op>> {
    Ok(Box::new(BinaryOp {
        f,
        broadcast: false,
        axis: None,
    }))
}

/// Ops of opsets < 7 with the legacy `broadcast`/`axis` attributes.
fn legacy(f: BinFn, cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    if cx.opset >= 7 {
        return bin(f);
    }
    let broadcast = cx.i("broadcast", 0)? != 0;
    Ok(Box::new(BinaryOp {
        f,
        broadcast,
        axis: if broadcast { cx.opt_i("axis")? } else { None },
    }))
}

/// A broadcasting binary elementwise op.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BinaryOp {
    pub f: BinFn,
    /// The legacy (opset < 7) `broadcast` attribute; numpy broadcasting applies either way.
    pub broadcast: bool,
    /// The legacy `axis` at which B's dims align with A's (with `broadcast`).
    pub axis: Option<i64>,
}

/// B's shape aligned at `axis` of a rank-`rank_a` A (legacy broadcasting): B's dims are padded
/// with `one` on both sides so numpy broadcasting then applies.
fn align_at<T: Clone>(
    b: &[T],
    rank_a: usize,
    axis: i64,
    one: T,
) -> std::result::Result<Vec<T>, String> {
    let ax = if axis < 0 { axis + rank_a as i64 } else { axis };
    if ax < 0 || ax as usize + b.len() > rank_a {
        return Err(format!(
            "legacy broadcast axis {axis} does not fit B of rank {} into A of rank {rank_a}",
            b.len()
        ));
    }
    let ax = ax as usize;
    let mut v = vec![one.clone(); ax];
    v.extend_from_slice(b);
    v.resize(rank_a, one);
    Ok(v)
}

impl BinFn {
    fn name(self) -> &'static str {
        match self {
            BinFn::Add => "Add",
            BinFn::Sub => "Sub",
            BinFn::Mul => "Mul",
            BinFn::Div => "Div",
            BinFn::Pow => "Pow",
            BinFn::Mod { .. } => "Mod",
            BinFn::Equal => "Equal",
            BinFn::Greater => "Greater",
            BinFn::GreaterOrEqual => "GreaterOrEqual",
            BinFn::Less => "Less",
            BinFn::LessOrEqual => "LessOrEqual",
            BinFn::And => "And",
            BinFn::Or => "Or",
            BinFn::Xor => "Xor",
            BinFn::BitShift { .. } => "BitShift",
            BinFn::BitwiseAnd => "BitwiseAnd",
            BinFn::BitwiseOr => "BitwiseOr",
            BinFn::BitwiseXor => "BitwiseXor",
            BinFn::PRelu => "PRelu",
        }
    }

    fn is_comparison(self) -> bool {
        matches!(
            self,
            BinFn::Equal
                | BinFn::Greater
                | BinFn::GreaterOrEqual
                | BinFn::Less
                | BinFn::LessOrEqual
        )
    }

    fn compare<T: PartialOrd>(self, a: &T, b: &T) -> bool {
        match self {
            BinFn::Equal => a == b,
            BinFn::Greater => a > b,
            BinFn::GreaterOrEqual => a >= b,
            BinFn::Less => a < b,
            _ => a <= b,
        }
    }

    /// Float arithmetic (`Pow` included).
    fn float(self, a: f64, b: f64) -> Option<f64> {
        Some(match self {
            BinFn::Add => a + b,
            BinFn::Sub => a - b,
            BinFn::Mul => a * b,
            BinFn::Div => a / b,
            BinFn::Pow => a.powf(b),
            BinFn::Mod { fmod: true } => a % b,
            BinFn::Mod { fmod: false } => floor_mod_f(a, b),
            BinFn::PRelu => {
                if a < 0.0 {
                    a * b
                } else {
                    a
                }
            }
            _ => return None,
        })
    }

    /// Integer arithmetic on values of width `bits` (before wrapping to the output type).
    fn int(self, a: i128, b: i128, bits: u32, signed: bool) -> Option<i128> {
        Some(match self {
            BinFn::Add => a.wrapping_add(b),
            BinFn::Sub => a.wrapping_sub(b),
            BinFn::Mul => a.wrapping_mul(b),
            // Integer division truncates; division by zero gives 0 (as numpy does).
            BinFn::Div => a.checked_div(b).unwrap_or(0),
            BinFn::Pow => int_pow(a, b),
            BinFn::Mod { fmod: true } => a.checked_rem(b).unwrap_or(0),
            BinFn::Mod { fmod: false } => match a.checked_rem(b) {
                Some(r) if r != 0 && ((r < 0) != (b < 0)) => r + b,
                Some(r) => r,
                None => 0,
            },
            BinFn::BitShift { left } => {
                if b < 0 || b >= bits as i128 {
                    if !left && signed && a < 0 {
                        -1
                    } else {
                        0
                    }
                } else if left {
                    a << b
                } else {
                    a >> b
                }
            }
            BinFn::BitwiseAnd => a & b,
            BinFn::BitwiseOr => a | b,
            BinFn::BitwiseXor => a ^ b,
            BinFn::PRelu => {
                if a < 0 {
                    a.wrapping_mul(b)
                } else {
                    a
                }
            }
            _ => return None,
        })
    }
}

/// numpy's `mod` for floats: the result takes the sign of the divisor.
fn floor_mod_f(a: f64, b: f64) -> f64 {
    let r = a % b;
    if r != 0.0 && ((r < 0.0) != (b < 0.0)) {
        r + b
    } else {
        r
    }
}

/// Integer power, wrapping; negative exponents go through floats and truncate (as numpy casts).
fn int_pow(a: i128, b: i128) -> i128 {
    if b < 0 {
        return f64_to_i128((a as f64).powf(b as f64));
    }
    let (mut base, mut e, mut acc) = (a, b as u128, 1i128);
    while e > 0 {
        if e & 1 == 1 {
            acc = acc.wrapping_mul(base);
        }
        base = base.wrapping_mul(base);
        e >>= 1;
    }
    acc
}

/// Evaluates `f` on two tensors broadcast together.
pub(super) fn eval_binary(f: BinFn, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let op = f.name();
    let bad = || {
        eval_err!(
            "{op}: unsupported input types {} and {}",
            a.dtype(),
            b.dtype()
        )
    };
    let dt = a.dtype();
    if f.is_comparison() {
        let out: ArrayD<bool> = match (a.data(), b.data()) {
            (Data::F(x), Data::F(y)) => zip_broadcast(x, y, |p, q| f.compare(p, q))?,
            (Data::I(x), Data::I(y)) => zip_broadcast(x, y, |p, q| f.compare(p, q))?,
            (Data::B(x), Data::B(y)) => zip_broadcast(x, y, |p, q| f.compare(p, q))?,
            (Data::S(x), Data::S(y)) => zip_broadcast(x, y, |p, q| f.compare(p, q))?,
            (Data::S(_), _) | (_, Data::S(_)) => return Err(bad()),
            _ => zip_broadcast(&a.to_f()?, &b.to_f()?, |p, q| f.compare(p, q))?,
        };
        return Ok(Tensor::bool(out));
    }
    if matches!(f, BinFn::And | BinFn::Or | BinFn::Xor) {
        let (Data::B(x), Data::B(y)) = (a.data(), b.data()) else {
            return Err(bad());
        };
        return Ok(Tensor::bool(zip_broadcast(x, y, |&p, &q| match f {
            BinFn::And => p && q,
            BinFn::Or => p || q,
            _ => p != q,
        })?));
    }
    match (a.data(), b.data()) {
        (Data::F(x), Data::F(y)) if f.float(0.0, 0.0).is_some() => {
            let out = zip_broadcast(x, y, |&p, &q| f.float(p, q).unwrap_or(f64::NAN))?;
            Ok(Tensor::float(dt, out))
        }
        (Data::I(x), Data::I(y)) if f.int(0, 1, 64, true).is_some() => {
            let (bits, signed) = (dt.bits() as u32, dt.is_signed_int());
            let out = zip_broadcast(x, y, |&p, &q| f.int(p, q, bits, signed).unwrap_or(0))?;
            Ok(Tensor::int(dt, out))
        }
        // Pow allows the exponent's type to differ from the base's; the output has the base's.
        (Data::F(x), Data::I(_)) if f == BinFn::Pow => {
            let out = zip_broadcast(x, &b.to_f()?, |&p, &q| p.powf(q))?;
            Ok(Tensor::float(dt, out))
        }
        (Data::I(_), Data::F(y)) if f == BinFn::Pow => {
            let out = zip_broadcast(&a.to_f()?, y, |&p, &q| p.powf(q))?;
            Ok(Tensor::from_f64_as(dt, out))
        }
        _ => Err(bad()),
    }
}

#[typetag::serde]
impl Op for BinaryOp {
    fn op_type(&self) -> &str {
        self.f.name()
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let dt = if self.f.is_comparison() {
            Some(DType::Bool)
        } else {
            None
        };
        if let (Some(axis), Some(ra)) = (self.axis, cx.rank(0)) {
            let a = cx.input(0)?;
            let dt = dt.unwrap_or(a.dtype);
            let Some(bs) = &cx.input(1)?.shape else {
                return Ok(vec![ValueType::unranked(dt)]);
            };
            let bs = align_at(bs, ra, axis, Dim::Known(1)).map_err(|e| infer_err!("{e}"))?;
            let out = broadcast_shapes(a.shape.as_deref().unwrap_or(&[]), &bs)
                .map_err(|e| infer_err!("{e}"))?;
            return Ok(vec![ValueType::new(dt, out)]);
        }
        Ok(vec![infer_broadcast(cx, dt)?])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let a = req(inputs, 0)?;
        let b = req(inputs, 1)?;
        if let Some(axis) = self.axis {
            let bs = align_at(b.shape(), a.rank(), axis, 1).map_err(|e| eval_err!("{e}"))?;
            return Ok(vec![eval_binary(self.f, a, &b.reshape(&bs)?)?]);
        }
        Ok(vec![eval_binary(self.f, a, b)?])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        let mut v = Vec::new();
        if self.broadcast {
            v.push(("broadcast", Attr::Int(1)));
        }
        if let Some(a) = self.axis {
            v.push(("axis", Attr::Int(a)));
        }
        v.extend(match self.f {
            BinFn::Mod { fmod: true } => vec![("fmod", Attr::Int(1))],
            BinFn::BitShift { left } => vec![(
                "direction",
                Attr::Str(if left { "LEFT" } else { "RIGHT" }.into()),
            )],
            _ => Vec::new(),
        });
        v
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::IxDyn;

    fn ints(d: DType, v: &[i128]) -> Tensor {
        Tensor::int(
            d,
            ArrayD::from_shape_vec(IxDyn(&[v.len()]), v.to_vec()).unwrap(),
        )
    }

    #[test]
    fn integer_div_and_mod() {
        let a = ints(DType::I32, &[-7, 7, -7, 7, 5]);
        let b = ints(DType::I32, &[2, -2, -2, 2, 0]);
        let div = eval_binary(BinFn::Div, &a, &b).unwrap();
        assert_eq!(div.to_i64_vec().unwrap(), vec![-3, -3, 3, 3, 0]);
        let m = eval_binary(BinFn::Mod { fmod: false }, &a, &b).unwrap();
        assert_eq!(m.to_i64_vec().unwrap(), vec![1, -1, -1, 1, 0]);
        let m = eval_binary(BinFn::Mod { fmod: true }, &a, &b).unwrap();
        assert_eq!(m.to_i64_vec().unwrap(), vec![-1, 1, -1, 1, 0]);
    }

    #[test]
    fn bitshift_edges() {
        let a = ints(DType::I8, &[-16, 64, 1, -1]);
        let b = ints(DType::I8, &[2, 1, 8, -1]);
        let r = eval_binary(BinFn::BitShift { left: false }, &a, &b).unwrap();
        assert_eq!(r.to_i64_vec().unwrap(), vec![-4, 32, 0, -1]);
        let l = eval_binary(BinFn::BitShift { left: true }, &a, &b).unwrap();
        assert_eq!(l.to_i64_vec().unwrap(), vec![-64, -128, 0, 0]);
    }

    #[test]
    fn legacy_axis_alignment() {
        assert_eq!(align_at(&[3], 4, 1, 1).unwrap(), vec![1, 3, 1, 1]);
        assert_eq!(align_at(&[3, 4], 4, -2, 1).unwrap(), vec![1, 1, 3, 4]);
        assert!(align_at(&[3, 4], 4, 3, 1).is_err());
        let op = BinaryOp {
            f: BinFn::Add,
            broadcast: true,
            axis: Some(1),
        };
        let a = Tensor::from_f32(&[1, 2, 2], vec![0.0; 4]).unwrap();
        let b = Tensor::from_f32(&[2], vec![1.0, 2.0]).unwrap();
        let out = super::super::math::eval_op(&op, &[Some(&a), Some(&b)], 1).unwrap();
        assert_eq!(out[0].to_f64_vec().unwrap(), vec![1.0, 1.0, 2.0, 2.0]);
    }

    #[test]
    fn float_mod_sign_of_divisor() {
        assert_eq!(floor_mod_f(-1.0, 3.0), 2.0);
        assert_eq!(floor_mod_f(1.0, -3.0), -2.0);
        assert_eq!(floor_mod_f(-1.0, f64::INFINITY), f64::INFINITY);
        assert!(floor_mod_f(1.0, 0.0).is_nan());
    }
}
