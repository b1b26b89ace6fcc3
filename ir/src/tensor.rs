//! Runtime tensors of the reference interpreter.
//!
//! A [`Tensor`] is a dtype tag plus an n-dimensional array in a wide carrier type: every float
//! type lives in `f64`, every integer type in `i128`, bools in `bool`, strings in `String`.
//! Constructors round floats to the tag's precision and wrap integers to its width, so a tensor's
//! values are always exactly representable in its dtype.

use crate::dtype::{DClass, DType};
use crate::{eval_err, Error, Result};
use ndarray::{ArrayD, IxDyn};

/// The values of a tensor, in their wide carrier type.
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    F(ArrayD<f64>),
    I(ArrayD<i128>),
    B(ArrayD<bool>),
    S(ArrayD<String>),
}

/// Applies one generic expression to whichever array a [`Data`] holds, keeping the variant.
///
/// `map_data!(data, a => a.t().to_owned())` — the body is written once and instantiated for
/// every carrier type, so it must only use element-type-generic operations.
#[macro_export]
macro_rules! map_data {
    ($data:expr, $a:ident => $body:expr) => {
        match $data {
            $crate::tensor::Data::F($a) => $crate::tensor::Data::F($body),
            $crate::tensor::Data::I($a) => $crate::tensor::Data::I($body),
            $crate::tensor::Data::B($a) => $crate::tensor::Data::B($body),
            $crate::tensor::Data::S($a) => $crate::tensor::Data::S($body),
        }
    };
}

/// Like [`map_data!`] but for two tensors' data of the same variant (e.g. Concat, Where).
/// Evaluates to `Option<Data>`: `None` when the variants differ.
#[macro_export]
macro_rules! zip_data {
    ($x:expr, $y:expr, $a:ident, $b:ident => $body:expr) => {
        match ($x, $y) {
            ($crate::tensor::Data::F($a), $crate::tensor::Data::F($b)) => {
                Some($crate::tensor::Data::F($body))
            }
            ($crate::tensor::Data::I($a), $crate::tensor::Data::I($b)) => {
                Some($crate::tensor::Data::I($body))
            }
            ($crate::tensor::Data::B($a), $crate::tensor::Data::B($b)) => {
                Some($crate::tensor::Data::B($body))
            }
            ($crate::tensor::Data::S($a), $crate::tensor::Data::S($b)) => {
                Some($crate::tensor::Data::S($body))
            }
            _ => None,
        }
    };
}

/// A runtime tensor: dtype tag plus values.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    dtype: DType,
    data: Data,
}

impl Tensor {
    /// A float tensor; values are rounded to `dtype`'s precision.
    pub fn float(dtype: DType, mut a: ArrayD<f64>) -> Tensor {
        debug_assert!(dtype.is_float(), "Tensor::float with {dtype}");
        if dtype != DType::F64 {
            a.mapv_inplace(|v| dtype.round_f64(v));
        }
        Tensor {
            dtype,
            data: Data::F(a),
        }
    }

    /// An integer tensor; values are wrapped to `dtype`'s width.
    pub fn int(dtype: DType, mut a: ArrayD<i128>) -> Tensor {
        debug_assert!(dtype.is_int(), "Tensor::int with {dtype}");
        a.mapv_inplace(|v| dtype.wrap_int(v));
        Tensor {
            dtype,
            data: Data::I(a),
        }
    }

    pub fn bool(a: ArrayD<bool>) -> Tensor {
        Tensor {
            dtype: DType::Bool,
            data: Data::B(a),
        }
    }

    pub fn string(a: ArrayD<String>) -> Tensor {
        Tensor {
            dtype: DType::String,
            data: Data::S(a),
        }
    }

    /// A tensor from data already valid for `dtype` (layout ops that move values unchanged).
    /// Returns an error if the carrier does not match the dtype's class.
    pub fn from_data(dtype: DType, data: Data) -> Result<Tensor> {
        let ok = matches!(
            (dtype.class(), &data),
            (DClass::Float, Data::F(_))
                | (DClass::Int, Data::I(_))
                | (DClass::Bool, Data::B(_))
                | (DClass::String, Data::S(_))
        );
        if !ok {
            return Err(eval_err!(
                "internal: data carrier does not match dtype {dtype}"
            ));
        }
        Ok(Tensor { dtype, data })
    }

    /// A tensor of `dtype` from `f64` values, converting to the dtype's class
    /// (floats rounded, ints truncated toward zero and wrapped, bools `!= 0`).
    pub fn from_f64_as(dtype: DType, a: ArrayD<f64>) -> Tensor {
        match dtype.class() {
            DClass::Float => Tensor::float(dtype, a),
            DClass::Int => Tensor::int(dtype, a.mapv(f64_to_i128)),
            DClass::Bool => Tensor::bool(a.mapv(|v| v != 0.0)),
            DClass::String => Tensor::string(a.mapv(|v| v.to_string())),
        }
    }

    /// An f32 tensor from a shape and values. Errors if sizes disagree.
    pub fn from_f32(shape: &[usize], v: Vec<f32>) -> Result<Tensor> {
        let a = ArrayD::from_shape_vec(IxDyn(shape), v.into_iter().map(f64::from).collect())
            .map_err(|e| eval_err!("shape {shape:?}: {e}"))?;
        Ok(Tensor::float(DType::F32, a))
    }

    /// An i64 tensor from a shape and values. Errors if sizes disagree.
    pub fn from_i64(shape: &[usize], v: Vec<i64>) -> Result<Tensor> {
        let a = ArrayD::from_shape_vec(IxDyn(shape), v.into_iter().map(i128::from).collect())
            .map_err(|e| eval_err!("shape {shape:?}: {e}"))?;
        Ok(Tensor::int(DType::I64, a))
    }

    /// A 0-d tensor of `dtype` holding `v` (converted as in [`Tensor::from_f64_as`]).
    pub fn scalar(dtype: DType, v: f64) -> Tensor {
        Tensor::from_f64_as(dtype, ArrayD::from_elem(IxDyn(&[]), v))
    }

    /// A zero-filled tensor.
    pub fn zeros(dtype: DType, shape: &[usize]) -> Tensor {
        Tensor::from_f64_as(dtype, ArrayD::zeros(IxDyn(shape)))
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }
    pub fn data(&self) -> &Data {
        &self.data
    }
    pub fn into_data(self) -> Data {
        self.data
    }
    pub fn shape(&self) -> &[usize] {
        match &self.data {
            Data::F(a) => a.shape(),
            Data::I(a) => a.shape(),
            Data::B(a) => a.shape(),
            Data::S(a) => a.shape(),
        }
    }
    pub fn rank(&self) -> usize {
        self.shape().len()
    }
    pub fn len(&self) -> usize {
        self.shape().iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The float array; an error naming `what` if this is not a float tensor.
    pub fn as_f(&self) -> Result<&ArrayD<f64>> {
        match &self.data {
            Data::F(a) => Ok(a),
            _ => Err(eval_err!("expected a float tensor, got {}", self.dtype)),
        }
    }
    pub fn as_i(&self) -> Result<&ArrayD<i128>> {
        match &self.data {
            Data::I(a) => Ok(a),
            _ => Err(eval_err!("expected an integer tensor, got {}", self.dtype)),
        }
    }
    pub fn as_b(&self) -> Result<&ArrayD<bool>> {
        match &self.data {
            Data::B(a) => Ok(a),
            _ => Err(eval_err!("expected a bool tensor, got {}", self.dtype)),
        }
    }
    pub fn as_s(&self) -> Result<&ArrayD<String>> {
        match &self.data {
            Data::S(a) => Ok(a),
            _ => Err(eval_err!("expected a string tensor, got {}", self.dtype)),
        }
    }

    /// Values converted to `f64` (ints exactly where they fit, bools 0/1). Strings error.
    pub fn to_f(&self) -> Result<ArrayD<f64>> {
        Ok(match &self.data {
            Data::F(a) => a.clone(),
            Data::I(a) => a.mapv(|v| v as f64),
            Data::B(a) => a.mapv(|v| if v { 1.0 } else { 0.0 }),
            Data::S(_) => return Err(eval_err!("expected a numeric tensor, got string")),
        })
    }

    /// Values converted to `i128` (floats truncated toward zero, NaN to 0). Strings error.
    pub fn to_i(&self) -> Result<ArrayD<i128>> {
        Ok(match &self.data {
            Data::F(a) => a.mapv(f64_to_i128),
            Data::I(a) => a.clone(),
            Data::B(a) => a.mapv(i128::from),
            Data::S(_) => return Err(eval_err!("expected a numeric tensor, got string")),
        })
    }

    /// Values as a flat `i64` list (for shape, axes and index inputs).
    pub fn to_i64_vec(&self) -> Result<Vec<i64>> {
        Ok(self
            .to_i()?
            .iter()
            .map(|&v| v.clamp(i64::MIN as i128, i64::MAX as i128) as i64)
            .collect())
    }

    /// Values as a flat `f64` list.
    pub fn to_f64_vec(&self) -> Result<Vec<f64>> {
        Ok(self.to_f()?.iter().copied().collect())
    }

    /// The single value of a one-element tensor as `f64`.
    pub fn scalar_f64(&self) -> Result<f64> {
        let v = self.to_f64_vec()?;
        match v.as_slice() {
            [x] => Ok(*x),
            _ => Err(eval_err!(
                "expected a single value, got shape {:?}",
                self.shape()
            )),
        }
    }

    /// The single value of a one-element tensor as `i64`.
    pub fn scalar_i64(&self) -> Result<i64> {
        let v = self.to_i64_vec()?;
        match v.as_slice() {
            [x] => Ok(*x),
            _ => Err(eval_err!(
                "expected a single value, got shape {:?}",
                self.shape()
            )),
        }
    }

    /// Reshapes (element count must match).
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        if shape.iter().product::<usize>() != self.len() {
            return Err(eval_err!(
                "cannot reshape {:?} to {:?}",
                self.shape(),
                shape
            ));
        }
        let data = map_data!(&self.data, a => {
            let v: Vec<_> = a.iter().cloned().collect();
            ArrayD::from_shape_vec(IxDyn(shape), v).map_err(|e| Error::Eval(e.to_string()))?
        });
        Ok(Tensor {
            dtype: self.dtype,
            data,
        })
    }

    /// Converts to another dtype with ONNX `Cast` semantics (`saturate` applies to float8 targets;
    /// float8e8m0 targets round up, the default `round_mode`).
    pub fn cast(&self, to: DType, saturate: bool) -> Result<Tensor> {
        self.cast_with(to, saturate, "up")
    }

    /// [`Tensor::cast`] with the `round_mode` of float8e8m0 targets (`up`, `down`, `nearest`).
    pub fn cast_with(&self, to: DType, saturate: bool, round_mode: &str) -> Result<Tensor> {
        if to == self.dtype {
            return Ok(self.clone());
        }
        if to.class() == DClass::Float {
            let a = match &self.data {
                Data::S(a) => a.mapv(|s| parse_float(&s)),
                _ => self.to_f()?,
            };
            return Ok(Tensor {
                dtype: to,
                data: Data::F(a.mapv(|v| cast_to_float(to, v, saturate, round_mode))),
            });
        }
        Ok(match (&self.data, to.class()) {
            (Data::F(a), DClass::Int) => Tensor::int(to, a.mapv(f64_to_i128)),
            (Data::F(a), DClass::Bool) => Tensor::bool(a.mapv(|v| v != 0.0)),
            (Data::I(a), DClass::Int) => Tensor::int(to, a.clone()),
            (Data::I(a), DClass::Bool) => Tensor::bool(a.mapv(|v| v != 0)),
            (Data::B(a), DClass::Int) => Tensor::int(to, a.mapv(i128::from)),
            (Data::S(a), DClass::Int) => Tensor::int(
                to,
                a.mapv(|s| {
                    s.trim()
                        .parse::<i128>()
                        .unwrap_or_else(|_| f64_to_i128(parse_float(&s)))
                }),
            ),
            (Data::S(a), DClass::Bool) => Tensor::bool(a.mapv(|s| parse_float(&s) != 0.0)),
            (_, DClass::String) => Tensor::string(match &self.data {
                Data::F(a) => a.mapv(|v| format_float(v, self.dtype)),
                Data::I(a) => a.mapv(|v| v.to_string()),
                Data::B(a) => a.mapv(|v| if v { "1".into() } else { "0".into() }),
                Data::S(a) => a.clone(),
            }),
            (Data::B(a), DClass::Bool) => Tensor::bool(a.clone()),
            (_, DClass::Float) => {
                return Err(eval_err!("internal: float casts are handled above"));
            }
        })
    }
}

/// One value cast to the float type `to`: minifloats through their codecs (float8 saturating
/// when asked, float4 always saturating with NaN to 0, float8e8m0 by `round_mode`), others rounded.
fn cast_to_float(to: DType, v: f64, saturate: bool, round_mode: &str) -> f64 {
    use crate::minifloat::{decode, encode};
    match to {
        DType::F8E4M3FN | DType::F8E4M3FNUZ | DType::F8E5M2 | DType::F8E5M2FNUZ => {
            decode(to, encode(to, v, saturate))
        }
        DType::F4E2M1 if v.is_nan() => 0.0,
        DType::F4E2M1 => decode(to, encode(to, v, true)),
        DType::F8E8M0 => decode(to, e8m0_code(v, saturate, round_mode)),
        _ => to.round_f64(v),
    }
}

/// The float8e8m0 code of `v`: the exponent of `v` as a float32 (sign ignored), rounded by
/// `round_mode` from the mantissa bits; NaN and infinities give the NaN code 0xFF; with
/// `saturate`, rounding never carries past the largest exponent 0xFE.
fn e8m0_code(v: f64, saturate: bool, round_mode: &str) -> u8 {
    let bits = (v as f32).to_bits();
    let e = (bits >> 23) & 0xFF;
    if e == 0xFF {
        return 0xFF;
    }
    let frac = bits & 0x7F_FFFF;
    let round_up = match round_mode {
        "down" => false,
        "nearest" => {
            let guard = bits & 0x40_0000 != 0;
            let round = bits & 0x20_0000 != 0;
            let sticky = bits & 0x1F_FFFF != 0;
            guard && (round || sticky || e > 0)
        }
        _ => frac != 0,
    };
    if round_up && !(saturate && e == 0xFE) {
        (e + 1) as u8
    } else {
        e as u8
    }
}

/// Float to integer as C does: truncation toward zero; NaN becomes 0; saturating at i128 bounds.
pub fn f64_to_i128(v: f64) -> i128 {
    if v.is_nan() {
        0
    } else {
        v.trunc() as i128
    }
}

fn parse_float(s: &str) -> f64 {
    let t = s.trim();
    match t.to_ascii_lowercase().as_str() {
        "nan" | "+nan" | "-nan" => f64::NAN,
        "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
        "-inf" | "-infinity" => f64::NEG_INFINITY,
        _ => t.parse::<f64>().unwrap_or(f64::NAN),
    }
}

fn format_float(v: f64, d: DType) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "INF".into() } else { "-INF".into() };
    }
    if d == DType::F32 {
        format!("{}", v as f32)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_normalise() {
        let t = Tensor::float(DType::F16, ArrayD::from_elem(IxDyn(&[2]), 1.0 + 1e-5));
        assert_eq!(t.to_f64_vec().unwrap(), vec![1.0, 1.0]);
        let t = Tensor::int(DType::U8, ArrayD::from_elem(IxDyn(&[1]), 257));
        assert_eq!(t.to_i64_vec().unwrap(), vec![1]);
        assert!(Tensor::from_f32(&[2, 2], vec![1.0; 3]).is_err());
    }

    #[test]
    fn cast_float_to_int_truncates() {
        let t = Tensor::from_f32(&[3], vec![-1.7, 2.9, f32::NAN]).unwrap();
        assert_eq!(
            t.cast(DType::I32, true).unwrap().to_i64_vec().unwrap(),
            vec![-1, 2, 0]
        );
    }
}
