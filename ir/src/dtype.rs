//! Element types of tensors: the ONNX data types plus the sub-byte storage types.
//!
//! Every float type is computed in `f64` by the reference interpreter and rounded back to its
//! own precision after each op ([`DType::round_f64`]); every integer type is computed in `i128`
//! and wrapped to its own width ([`DType::wrap_int`]). This keeps each op written once.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The element type of a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    F64,
    F32,
    F16,
    BF16,
    /// float8 e4m3, finite only (no infinities, one NaN pattern).
    F8E4M3FN,
    /// float8 e4m3, finite only, unsigned zero, NaN = 0x80.
    F8E4M3FNUZ,
    /// float8 e5m2 (IEEE-like, with infinities).
    F8E5M2,
    /// float8 e5m2, finite only, unsigned zero, NaN = 0x80.
    F8E5M2FNUZ,
    /// float4 e2m1 (finite only).
    F4E2M1,
    /// float8 e8m0: an exponent-only scale type.
    F8E8M0,
    I64,
    I32,
    I16,
    I8,
    I4,
    I2,
    U64,
    U32,
    U16,
    U8,
    U4,
    U2,
    Bool,
    String,
    Complex64,
    Complex128,
}

/// The broad class an element type is computed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DClass {
    Float,
    Int,
    Bool,
    String,
}

impl DType {
    /// All types, in a stable order.
    pub const ALL: [DType; 26] = [
        DType::F64,
        DType::F32,
        DType::F16,
        DType::BF16,
        DType::F8E4M3FN,
        DType::F8E4M3FNUZ,
        DType::F8E5M2,
        DType::F8E5M2FNUZ,
        DType::F4E2M1,
        DType::F8E8M0,
        DType::I64,
        DType::I32,
        DType::I16,
        DType::I8,
        DType::I4,
        DType::I2,
        DType::U64,
        DType::U32,
        DType::U16,
        DType::U8,
        DType::U4,
        DType::U2,
        DType::Bool,
        DType::String,
        DType::Complex64,
        DType::Complex128,
    ];

    /// The ONNX `TensorProto.DataType` code.
    pub fn onnx_code(self) -> i32 {
        match self {
            DType::F32 => 1,
            DType::U8 => 2,
            DType::I8 => 3,
            DType::U16 => 4,
            DType::I16 => 5,
            DType::I32 => 6,
            DType::I64 => 7,
            DType::String => 8,
            DType::Bool => 9,
            DType::F16 => 10,
            DType::F64 => 11,
            DType::U32 => 12,
            DType::U64 => 13,
            DType::Complex64 => 14,
            DType::Complex128 => 15,
            DType::BF16 => 16,
            DType::F8E4M3FN => 17,
            DType::F8E4M3FNUZ => 18,
            DType::F8E5M2 => 19,
            DType::F8E5M2FNUZ => 20,
            DType::U4 => 21,
            DType::I4 => 22,
            DType::F4E2M1 => 23,
            DType::F8E8M0 => 24,
            DType::U2 => 25,
            DType::I2 => 26,
        }
    }

    /// The type for an ONNX `TensorProto.DataType` code, if known.
    pub fn from_onnx_code(code: i32) -> Option<DType> {
        DType::ALL.iter().copied().find(|d| d.onnx_code() == code)
    }

    /// The class this type is computed in.
    pub fn class(self) -> DClass {
        use DType::*;
        match self {
            F64 | F32 | F16 | BF16 | F8E4M3FN | F8E4M3FNUZ | F8E5M2 | F8E5M2FNUZ | F4E2M1
            | F8E8M0 | Complex64 | Complex128 => DClass::Float,
            I64 | I32 | I16 | I8 | I4 | I2 | U64 | U32 | U16 | U8 | U4 | U2 => DClass::Int,
            Bool => DClass::Bool,
            String => DClass::String,
        }
    }

    pub fn is_float(self) -> bool {
        self.class() == DClass::Float
    }
    pub fn is_int(self) -> bool {
        self.class() == DClass::Int
    }
    pub fn is_signed_int(self) -> bool {
        matches!(
            self,
            DType::I64 | DType::I32 | DType::I16 | DType::I8 | DType::I4 | DType::I2
        )
    }

    /// Storage size in bits of one element (strings count as 0: variable length).
    pub fn bits(self) -> usize {
        use DType::*;
        match self {
            F64 | I64 | U64 | Complex64 => 64,
            Complex128 => 128,
            F32 | I32 | U32 => 32,
            F16 | BF16 | I16 | U16 => 16,
            F8E4M3FN | F8E4M3FNUZ | F8E5M2 | F8E5M2FNUZ | F8E8M0 | I8 | U8 | Bool => 8,
            I4 | U4 | F4E2M1 => 4,
            I2 | U2 => 2,
            String => 0,
        }
    }

    /// Bytes needed to store `n` elements (sub-byte types packed, rounded up).
    pub fn bytes_for(self, n: usize) -> usize {
        (n * self.bits()).div_ceil(8)
    }

    /// Range of an integer type as `(min, max)`.
    pub fn int_range(self) -> Option<(i128, i128)> {
        use DType::*;
        Some(match self {
            I64 => (i64::MIN as i128, i64::MAX as i128),
            I32 => (i32::MIN as i128, i32::MAX as i128),
            I16 => (i16::MIN as i128, i16::MAX as i128),
            I8 => (-128, 127),
            I4 => (-8, 7),
            I2 => (-2, 1),
            U64 => (0, u64::MAX as i128),
            U32 => (0, u32::MAX as i128),
            U16 => (0, u16::MAX as i128),
            U8 => (0, 255),
            U4 => (0, 15),
            U2 => (0, 3),
            _ => return None,
        })
    }

    /// Wraps an integer to this type's width (two's complement), as C casts do.
    pub fn wrap_int(self, v: i128) -> i128 {
        let bits = self.bits() as u32;
        if bits == 0 || bits >= 128 || !self.is_int() {
            return v;
        }
        let mask: i128 = (1i128 << bits) - 1;
        let u = v & mask;
        if self.is_signed_int() && u >= (1i128 << (bits - 1)) {
            u - (1i128 << bits)
        } else {
            u
        }
    }

    /// Saturates an integer into this type's range.
    pub fn saturate_int(self, v: i128) -> i128 {
        match self.int_range() {
            Some((lo, hi)) => v.clamp(lo, hi),
            None => v,
        }
    }

    /// Rounds an `f64` to the nearest value representable in this float type
    /// (round-to-nearest-even; out-of-range values follow the type's non-saturating cast rule).
    pub fn round_f64(self, v: f64) -> f64 {
        match self {
            DType::F64 | DType::Complex128 => v,
            DType::F32 | DType::Complex64 => v as f32 as f64,
            DType::F16 => half::f16::from_f64(v).to_f64(),
            DType::BF16 => half::bf16::from_f64(v).to_f64(),
            DType::F8E4M3FN
            | DType::F8E4M3FNUZ
            | DType::F8E5M2
            | DType::F8E5M2FNUZ
            | DType::F4E2M1
            | DType::F8E8M0 => {
                crate::minifloat::decode(self, crate::minifloat::encode(self, v, false))
            }
            _ => v,
        }
    }

    /// The lower-case ONNX-style name (`float`, `int64`, ...).
    pub fn onnx_name(self) -> &'static str {
        use DType::*;
        match self {
            F64 => "double",
            F32 => "float",
            F16 => "float16",
            BF16 => "bfloat16",
            F8E4M3FN => "float8e4m3fn",
            F8E4M3FNUZ => "float8e4m3fnuz",
            F8E5M2 => "float8e5m2",
            F8E5M2FNUZ => "float8e5m2fnuz",
            F4E2M1 => "float4e2m1",
            F8E8M0 => "float8e8m0",
            I64 => "int64",
            I32 => "int32",
            I16 => "int16",
            I8 => "int8",
            I4 => "int4",
            I2 => "int2",
            U64 => "uint64",
            U32 => "uint32",
            U16 => "uint16",
            U8 => "uint8",
            U4 => "uint4",
            U2 => "uint2",
            Bool => "bool",
            String => "string",
            Complex64 => "complex64",
            Complex128 => "complex128",
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.onnx_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn onnx_codes_round_trip() {
        for d in DType::ALL {
            assert_eq!(DType::from_onnx_code(d.onnx_code()), Some(d));
        }
        assert_eq!(DType::from_onnx_code(0), None);
        assert_eq!(DType::from_onnx_code(99), None);
    }

    #[test]
    fn wrapping_and_rounding() {
        assert_eq!(DType::I8.wrap_int(130), -126);
        assert_eq!(DType::U8.wrap_int(-1), 255);
        assert_eq!(DType::I4.wrap_int(9), -7);
        assert_eq!(DType::U64.wrap_int(-1), u64::MAX as i128);
        assert_eq!(DType::F32.round_f64(0.1), 0.1f32 as f64);
        assert_eq!(DType::F16.round_f64(1.0 + 1e-5), 1.0);
    }
}
