//! Constant tensors (weights) and where their bytes live.
//!
//! A [`ConstTensor`] holds its bytes as a range of a memory-mapped file (imported models: the
//! weights are never copied), an owned buffer, a seed from which values are synthesised on demand
//! (built-in models without a weights file), or decoded values (strings, small typed constants).
//! Bytes are little-endian, sub-byte types packed low bits first, as in ONNX `raw_data`.

use crate::dtype::{DClass, DType};
use crate::tensor::{Data, Tensor};
use crate::{eval_err, Result};
use memmap2::Mmap;
use ndarray::{ArrayD, IxDyn};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::sync::Arc;

/// Where a constant's values live.
#[derive(Clone, Debug)]
pub enum Storage {
    /// A byte range of a memory-mapped file.
    Mapped {
        map: Arc<Mmap>,
        offset: usize,
        len: usize,
    },
    /// Bytes owned in memory.
    Owned(Arc<[u8]>),
    /// Values drawn uniformly from `[-scale, scale]` by a deterministic generator seeded with `seed`.
    Synthetic { seed: u64, scale: f32 },
    /// Already-decoded values.
    Values(Arc<Tensor>),
    /// Bytes not available (a graph deserialised without its weights).
    Detached { len: usize },
}

/// A constant tensor: type, shape and storage.
#[derive(Clone, Debug)]
pub struct ConstTensor {
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub storage: Storage,
}

impl ConstTensor {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Size of the stored values in bytes.
    pub fn nbytes(&self) -> usize {
        match &self.storage {
            Storage::Values(t) if t.dtype() == DType::String => t
                .as_s()
                .map(|a| a.iter().map(|s| s.len()).sum())
                .unwrap_or(0),
            _ => self.dtype.bytes_for(self.numel()),
        }
    }

    /// A constant holding `t`'s values (kept decoded).
    pub fn from_tensor(t: Tensor) -> ConstTensor {
        ConstTensor {
            dtype: t.dtype(),
            shape: t.shape().to_vec(),
            storage: Storage::Values(Arc::new(t)),
        }
    }

    /// A synthetic constant.
    pub fn synthetic(dtype: DType, shape: Vec<usize>, seed: u64, scale: f32) -> ConstTensor {
        ConstTensor {
            dtype,
            shape,
            storage: Storage::Synthetic { seed, scale },
        }
    }

    /// The raw little-endian bytes (borrowed from the map where possible). `None` for strings.
    pub fn bytes(&self) -> Result<Option<Cow<'_, [u8]>>> {
        if self.dtype == DType::String {
            return Ok(None);
        }
        Ok(Some(match &self.storage {
            Storage::Mapped { map, offset, len } => Cow::Borrowed(
                map.get(*offset..offset + len)
                    .ok_or_else(|| eval_err!("mapped range {offset}+{len} is outside the file"))?,
            ),
            Storage::Owned(b) => Cow::Borrowed(&b[..]),
            Storage::Values(t) => Cow::Owned(encode_le(t)?),
            Storage::Synthetic { .. } => Cow::Owned(encode_le(&self.to_tensor()?)?),
            Storage::Detached { .. } => return Err(eval_err!("constant values are not loaded")),
        }))
    }

    /// Decodes the values into a runtime tensor.
    pub fn to_tensor(&self) -> Result<Tensor> {
        match &self.storage {
            Storage::Values(t) => Ok((**t).clone()),
            Storage::Synthetic { seed, scale } => {
                let n = self.numel();
                let mut state = *seed;
                let vals: Vec<f64> = (0..n)
                    .map(|_| {
                        let u = splitmix64(&mut state);
                        let x = (u >> 11) as f64 / (1u64 << 53) as f64;
                        (2.0 * x - 1.0) * *scale as f64
                    })
                    .collect();
                let a = ArrayD::from_shape_vec(IxDyn(&self.shape), vals)
                    .map_err(|e| eval_err!("{e}"))?;
                Ok(Tensor::from_f64_as(self.dtype, a))
            }
            Storage::Detached { .. } => Err(eval_err!("constant values are not loaded")),
            Storage::Mapped { .. } | Storage::Owned(_) => {
                let b = self
                    .bytes()?
                    .ok_or_else(|| eval_err!("string constant has no bytes"))?;
                decode_le(self.dtype, &self.shape, &b)
            }
        }
    }
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Decodes little-endian bytes of `dtype` into a tensor of `shape`.
/// Errors if there are fewer bytes than the shape needs.
pub fn decode_le(dtype: DType, shape: &[usize], b: &[u8]) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let need = dtype.bytes_for(n);
    if b.len() < need {
        return Err(eval_err!(
            "tensor data is {} bytes but shape {:?} of {} needs {}",
            b.len(),
            shape,
            dtype,
            need
        ));
    }
    let sh = IxDyn(shape);
    let mk_f = |v: Vec<f64>| -> Result<Tensor> {
        Ok(Tensor::float(
            dtype,
            ArrayD::from_shape_vec(sh.clone(), v).map_err(|e| eval_err!("{e}"))?,
        ))
    };
    let mk_i = |v: Vec<i128>| -> Result<Tensor> {
        Ok(Tensor::int(
            dtype,
            ArrayD::from_shape_vec(sh.clone(), v).map_err(|e| eval_err!("{e}"))?,
        ))
    };
    macro_rules! chunks {
        ($t:ty, $conv:expr) => {{
            const W: usize = std::mem::size_of::<$t>();
            b[..need]
                .chunks_exact(W)
                .map(|c| $conv(<$t>::from_le_bytes(c.try_into().expect("chunk width"))))
                .collect::<Vec<_>>()
        }};
    }
    match dtype {
        DType::F64 => mk_f(chunks!(f64, |x| x)),
        DType::F32 => mk_f(chunks!(f32, f64::from)),
        DType::F16 => mk_f(chunks!(u16, |x| half::f16::from_bits(x).to_f64())),
        DType::BF16 => mk_f(chunks!(u16, |x| half::bf16::from_bits(x).to_f64())),
        DType::F8E4M3FN | DType::F8E4M3FNUZ | DType::F8E5M2 | DType::F8E5M2FNUZ | DType::F8E8M0 => {
            mk_f(
                b[..n]
                    .iter()
                    .map(|&c| crate::minifloat::decode(dtype, c))
                    .collect(),
            )
        }
        DType::F4E2M1 => mk_f(
            (0..n)
                .map(|i| crate::minifloat::decode(dtype, nibble(b, i)))
                .collect(),
        ),
        DType::I64 => mk_i(chunks!(i64, i128::from)),
        DType::I32 => mk_i(chunks!(i32, i128::from)),
        DType::I16 => mk_i(chunks!(i16, i128::from)),
        DType::I8 => mk_i(chunks!(i8, i128::from)),
        DType::U64 => mk_i(chunks!(u64, i128::from)),
        DType::U32 => mk_i(chunks!(u32, i128::from)),
        DType::U16 => mk_i(chunks!(u16, i128::from)),
        DType::U8 => mk_i(chunks!(u8, i128::from)),
        DType::I4 | DType::U4 => mk_i(
            (0..n)
                .map(|i| dtype.wrap_int(nibble(b, i) as i128))
                .collect(),
        ),
        DType::I2 | DType::U2 => mk_i(
            (0..n)
                .map(|i| dtype.wrap_int(((b[i / 4] >> ((i % 4) * 2)) & 3) as i128))
                .collect(),
        ),
        DType::Bool => Ok(Tensor::bool(
            ArrayD::from_shape_vec(sh.clone(), b[..n].iter().map(|&x| x != 0).collect())
                .map_err(|e| eval_err!("{e}"))?,
        )),
        DType::Complex64 | DType::Complex128 | DType::String => Err(eval_err!(
            "{dtype} tensors cannot be decoded from raw bytes"
        )),
    }
}

fn nibble(b: &[u8], i: usize) -> u8 {
    (b[i / 2] >> ((i % 2) * 4)) & 0xF
}

/// Encodes a tensor's values as little-endian bytes of its dtype.
pub fn encode_le(t: &Tensor) -> Result<Vec<u8>> {
    let d = t.dtype();
    let mut out = Vec::with_capacity(d.bytes_for(t.len()));
    match t.data() {
        Data::F(a) => match d {
            DType::F64 => a
                .iter()
                .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
            DType::F32 => a
                .iter()
                .for_each(|v| out.extend_from_slice(&(*v as f32).to_le_bytes())),
            DType::F16 => a
                .iter()
                .for_each(|v| out.extend_from_slice(&half::f16::from_f64(*v).to_le_bytes())),
            DType::BF16 => a
                .iter()
                .for_each(|v| out.extend_from_slice(&half::bf16::from_f64(*v).to_le_bytes())),
            DType::F4E2M1 => {
                let codes: Vec<u8> = a
                    .iter()
                    .map(|&v| crate::minifloat::encode(d, v, true))
                    .collect();
                pack_nibbles(&codes, &mut out);
            }
            DType::Complex64 | DType::Complex128 => return Err(eval_err!("cannot encode {d}")),
            _ => a
                .iter()
                .for_each(|&v| out.push(crate::minifloat::encode(d, v, true))),
        },
        Data::I(a) => match d {
            DType::I4 | DType::U4 => {
                let codes: Vec<u8> = a.iter().map(|&v| (v & 0xF) as u8).collect();
                pack_nibbles(&codes, &mut out);
            }
            DType::I2 | DType::U2 => {
                for chunk in a.iter().collect::<Vec<_>>().chunks(4) {
                    let mut byte = 0u8;
                    for (k, v) in chunk.iter().enumerate() {
                        byte |= ((**v & 3) as u8) << (2 * k);
                    }
                    out.push(byte);
                }
            }
            _ => {
                let w = d.bits() / 8;
                a.iter()
                    .for_each(|&v| out.extend_from_slice(&v.to_le_bytes()[..w]));
            }
        },
        Data::B(a) => a.iter().for_each(|&v| out.push(v as u8)),
        Data::S(_) => return Err(eval_err!("string tensors have no raw byte encoding")),
    }
    Ok(out)
}

fn pack_nibbles(codes: &[u8], out: &mut Vec<u8>) {
    for pair in codes.chunks(2) {
        let lo = pair[0] & 0xF;
        let hi = pair.get(1).copied().unwrap_or(0) & 0xF;
        out.push(lo | (hi << 4));
    }
}

/// The serialised form of a constant: small values inline, large ones by size only.
#[derive(Serialize, Deserialize)]
struct ConstRepr {
    dtype: DType,
    shape: Vec<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bytes: Option<Vec<u8>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    strings: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    synthetic: Option<(u64, f32)>,
    nbytes: usize,
}

/// Constants up to this size are serialised with their values.
const INLINE_LIMIT: usize = 4096;

impl Serialize for ConstTensor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let nbytes = self.nbytes();
        let mut r = ConstRepr {
            dtype: self.dtype,
            shape: self.shape.clone(),
            bytes: None,
            strings: None,
            synthetic: None,
            nbytes,
        };
        if let Storage::Synthetic { seed, scale } = self.storage {
            r.synthetic = Some((seed, scale));
        } else if self.dtype.class() == DClass::String {
            if let Ok(t) = self.to_tensor() {
                r.strings = t.as_s().ok().map(|a| a.iter().cloned().collect());
            }
        } else if nbytes <= INLINE_LIMIT {
            r.bytes = self.bytes().ok().flatten().map(|b| b.into_owned());
        }
        r.serialize(s)
    }
}

impl<'de> Deserialize<'de> for ConstTensor {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let r = ConstRepr::deserialize(d)?;
        let storage = if let Some((seed, scale)) = r.synthetic {
            Storage::Synthetic { seed, scale }
        } else if let Some(b) = r.bytes {
            Storage::Owned(Arc::from(b))
        } else if let Some(strs) = r.strings {
            let a =
                ArrayD::from_shape_vec(IxDyn(&r.shape), strs).map_err(serde::de::Error::custom)?;
            Storage::Values(Arc::new(Tensor::string(a)))
        } else {
            Storage::Detached { len: r.nbytes }
        };
        Ok(ConstTensor {
            dtype: r.dtype,
            shape: r.shape,
            storage,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip() {
        for d in [
            DType::F32,
            DType::F16,
            DType::BF16,
            DType::I64,
            DType::U8,
            DType::I4,
            DType::U2,
            DType::F8E4M3FN,
            DType::F4E2M1,
            DType::Bool,
        ] {
            let t = Tensor::from_f64_as(
                d,
                ArrayD::from_shape_vec(IxDyn(&[5]), vec![0.0, 1.0, -1.0, 2.0, 1.0]).unwrap(),
            );
            let t = if d.is_signed_int() || d.is_float() {
                t
            } else {
                t.cast(d, true).unwrap()
            };
            let b = encode_le(&t).unwrap();
            assert_eq!(b.len(), d.bytes_for(5), "{d}");
            assert_eq!(decode_le(d, &[5], &b).unwrap(), t, "{d}");
        }
    }

    #[test]
    fn short_data_is_an_error() {
        assert!(decode_le(DType::F32, &[4], &[0u8; 15]).is_err());
    }
}
