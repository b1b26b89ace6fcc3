//! Conversion between ONNX `TensorProto` and [`ConstTensor`], external data included.

use super::wire::RANGE_FIELD;
use crate::dtype::DType;
use crate::tensor::Tensor;
use crate::weights::{decode_le, ConstTensor, Storage};
use crate::{import_err, Result};
use memmap2::Mmap;
use ndarray::{ArrayD, IxDyn};
use onnx_protobuf::TensorProto;
use protobuf::UnknownValueRef;
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Largest element count accepted for one tensor (2^40).
pub const MAX_ELEMENTS: u64 = 1 << 40;

/// Where lifted payloads and external files are found.
pub struct TensorSource {
    /// The model file's bytes (a map of it, or an owned copy).
    pub backing: Backing,
    /// Payload ranges lifted by [`super::wire::strip`].
    pub ranges: Vec<(usize, usize)>,
    /// The model's folder, for external data; `None` refuses external data.
    pub dir: Option<PathBuf>,
    maps: RefCell<HashMap<PathBuf, Arc<Mmap>>>,
}

/// The bytes of the model file.
pub enum Backing {
    Map(Arc<Mmap>),
    Bytes(Arc<[u8]>),
}

impl TensorSource {
    pub fn new(
        backing: Backing,
        ranges: Vec<(usize, usize)>,
        dir: Option<PathBuf>,
    ) -> TensorSource {
        TensorSource {
            backing,
            ranges,
            dir,
            maps: RefCell::new(HashMap::new()),
        }
    }

    fn lifted(&self, idx: u64) -> Result<Storage> {
        let &(offset, len) = self
            .ranges
            .get(idx as usize)
            .ok_or_else(|| import_err!("internal: lifted payload {idx} is unknown"))?;
        Ok(match &self.backing {
            Backing::Map(m) => Storage::Mapped {
                map: m.clone(),
                offset,
                len,
            },
            Backing::Bytes(b) => Storage::Owned(Arc::from(&b[offset..offset + len])),
        })
    }

    fn external(&self, t: &TensorProto, name: &str) -> Result<Storage> {
        let mut location = None;
        let mut offset = 0u64;
        let mut length = None;
        for kv in &t.external_data {
            match kv.key.as_str() {
                "location" => location = Some(kv.value.clone()),
                "offset" => {
                    offset = kv.value.parse().map_err(|_| {
                        import_err!("tensor '{name}': bad external offset '{}'", kv.value)
                    })?
                }
                "length" => {
                    length = Some(kv.value.parse::<u64>().map_err(|_| {
                        import_err!("tensor '{name}': bad external length '{}'", kv.value)
                    })?)
                }
                _ => {}
            }
        }
        let location = location.ok_or_else(|| {
            import_err!("tensor '{name}' is stored externally but names no location")
        })?;
        let dir = self
            .dir
            .as_ref()
            .ok_or_else(|| import_err!("tensor '{name}' uses external data, which needs the model to be loaded from a file"))?;
        let rel = Path::new(&location);
        if rel.is_absolute()
            || rel.components().any(|c| {
                matches!(
                    c,
                    std::path::Component::ParentDir
                        | std::path::Component::Prefix(_)
                        | std::path::Component::RootDir
                )
            })
        {
            return Err(import_err!(
                "tensor '{name}': external data location '{location}' escapes the model's folder; refusing it"
            ));
        }
        let path = dir.join(rel);
        let canon_dir = dir
            .canonicalize()
            .map_err(|e| import_err!("model folder {}: {e}", dir.display()))?;
        let canon = path.canonicalize().map_err(|e| {
            import_err!(
                "tensor '{name}': external data file {}: {e}",
                path.display()
            )
        })?;
        if !canon.starts_with(&canon_dir) {
            return Err(import_err!(
                "tensor '{name}': external data location '{location}' resolves outside the model's folder; refusing it"
            ));
        }
        let map = {
            let mut maps = self.maps.borrow_mut();
            if let Some(m) = maps.get(&canon) {
                m.clone()
            } else {
                let f = std::fs::File::open(&canon)
                    .map_err(|e| import_err!("tensor '{name}': {}: {e}", canon.display()))?;
                // SAFETY: the map is read-only; a concurrent writer could change the weights we
                // read, which is the usual contract of memory-mapped model files.
                let m = Arc::new(unsafe { Mmap::map(&f) }.map_err(|e| {
                    import_err!("tensor '{name}': cannot map {}: {e}", canon.display())
                })?);
                maps.insert(canon.clone(), m.clone());
                m
            }
        };
        let file_len = map.len() as u64;
        let len = length.unwrap_or(file_len.saturating_sub(offset));
        if offset.checked_add(len).is_none_or(|e| e > file_len) {
            return Err(import_err!(
                "tensor '{name}': external range {offset}+{len} lies outside {} ({file_len} bytes)",
                canon.display()
            ));
        }
        Ok(Storage::Mapped {
            map,
            offset: offset as usize,
            len: len as usize,
        })
    }

    /// Converts a `TensorProto` (from a stripped model) to a constant.
    pub fn load(&self, t: &TensorProto) -> Result<ConstTensor> {
        let name = if t.name.is_empty() {
            "<unnamed>"
        } else {
            t.name.as_str()
        };
        let dtype = DType::from_onnx_code(t.data_type)
            .ok_or_else(|| import_err!("tensor '{name}' has unknown data type {}", t.data_type))?;
        let mut numel: u64 = 1;
        let mut shape = Vec::with_capacity(t.dims.len());
        for &d in &t.dims {
            if d < 0 {
                return Err(import_err!("tensor '{name}' has a negative dim {d}"));
            }
            numel = numel
                .checked_mul(d as u64)
                .filter(|&n| n <= MAX_ELEMENTS)
                .ok_or_else(|| {
                    import_err!(
                        "tensor '{name}' has shape {:?}, more than 2^40 elements",
                        t.dims
                    )
                })?;
            shape.push(d as usize);
        }
        if t.segment.is_some() {
            return Err(import_err!(
                "tensor '{name}' is segmented, which is not supported"
            ));
        }
        let n = numel as usize;
        let need = dtype.bytes_for(n);
        let check_len = |len: usize| -> Result<()> {
            if dtype != DType::String && len < need {
                return Err(import_err!(
                    "tensor '{name}' has {len} bytes of data but its shape {:?} of {dtype} needs {need}",
                    t.dims
                ));
            }
            Ok(())
        };
        let lifted = t
            .special_fields
            .unknown_fields()
            .iter()
            .find_map(|(f, v)| match (f, v) {
                (RANGE_FIELD, UnknownValueRef::Varint(i)) => Some(i),
                _ => None,
            });
        if t.data_location.value() == 1 {
            let storage = self.external(t, name)?;
            if let Storage::Mapped { len, .. } = &storage {
                check_len(*len)?;
            }
            return Ok(ConstTensor {
                dtype,
                shape,
                storage,
            });
        }
        if let Some(i) = lifted {
            let storage = self.lifted(i)?;
            if let Storage::Mapped { len, .. } = &storage {
                check_len(*len)?;
            }
            if let Storage::Owned(b) = &storage {
                check_len(b.len())?;
            }
            return Ok(ConstTensor {
                dtype,
                shape,
                storage,
            });
        }
        if !t.raw_data.is_empty() || (n == 0 && dtype != DType::String) {
            check_len(t.raw_data.len())?;
            return Ok(ConstTensor {
                dtype,
                shape,
                storage: Storage::Owned(Arc::from(&t.raw_data[..need])),
            });
        }
        let short = |have: usize| {
            import_err!(
                "tensor '{name}' has {have} values but its shape {:?} needs {n}",
                t.dims
            )
        };
        let sh = IxDyn(&shape);
        let tensor = match dtype {
            DType::F32 => {
                if t.float_data.len() < n {
                    return Err(short(t.float_data.len()));
                }
                Tensor::float(
                    dtype,
                    ArrayD::from_shape_vec(
                        sh,
                        t.float_data[..n].iter().map(|&v| v as f64).collect(),
                    )
                    .map_err(|e| import_err!("{e}"))?,
                )
            }
            DType::F64 => {
                if t.double_data.len() < n {
                    return Err(short(t.double_data.len()));
                }
                Tensor::float(
                    dtype,
                    ArrayD::from_shape_vec(sh, t.double_data[..n].to_vec())
                        .map_err(|e| import_err!("{e}"))?,
                )
            }
            DType::I64 => {
                if t.int64_data.len() < n {
                    return Err(short(t.int64_data.len()));
                }
                Tensor::int(
                    dtype,
                    ArrayD::from_shape_vec(
                        sh,
                        t.int64_data[..n].iter().map(|&v| v as i128).collect(),
                    )
                    .map_err(|e| import_err!("{e}"))?,
                )
            }
            DType::U32 | DType::U64 => {
                if t.uint64_data.len() < n {
                    return Err(short(t.uint64_data.len()));
                }
                Tensor::int(
                    dtype,
                    ArrayD::from_shape_vec(
                        sh,
                        t.uint64_data[..n].iter().map(|&v| v as i128).collect(),
                    )
                    .map_err(|e| import_err!("{e}"))?,
                )
            }
            DType::String => {
                if t.string_data.len() < n {
                    return Err(short(t.string_data.len()));
                }
                Tensor::string(
                    ArrayD::from_shape_vec(
                        sh,
                        t.string_data[..n]
                            .iter()
                            .map(|b| String::from_utf8_lossy(b).into_owned())
                            .collect(),
                    )
                    .map_err(|e| import_err!("{e}"))?,
                )
            }
            DType::I32 | DType::I16 | DType::I8 | DType::U16 | DType::U8 | DType::Bool => {
                if t.int32_data.len() < n {
                    return Err(short(t.int32_data.len()));
                }
                let a = ArrayD::from_shape_vec(
                    sh,
                    t.int32_data[..n].iter().map(|&v| v as i128).collect(),
                )
                .map_err(|e| import_err!("{e}"))?;
                if dtype == DType::Bool {
                    Tensor::bool(a.mapv(|v| v != 0))
                } else {
                    Tensor::int(dtype, a)
                }
            }
            DType::F16
            | DType::BF16
            | DType::F8E4M3FN
            | DType::F8E4M3FNUZ
            | DType::F8E5M2
            | DType::F8E5M2FNUZ
            | DType::F8E8M0 => {
                if t.int32_data.len() < n {
                    return Err(short(t.int32_data.len()));
                }
                let w = dtype.bits() / 8;
                let bytes: Vec<u8> = t.int32_data[..n]
                    .iter()
                    .flat_map(|&v| (v as u32).to_le_bytes()[..w].to_vec())
                    .collect();
                decode_le(dtype, &shape, &bytes)?
            }
            DType::I4 | DType::U4 | DType::F4E2M1 | DType::I2 | DType::U2 => {
                let per = 8 / dtype.bits();
                let nb = n.div_ceil(per);
                if t.int32_data.len() < nb {
                    return Err(short(t.int32_data.len() * per));
                }
                let bytes: Vec<u8> = t.int32_data[..nb].iter().map(|&v| v as u8).collect();
                decode_le(dtype, &shape, &bytes)?
            }
            DType::Complex64 | DType::Complex128 => {
                return Err(import_err!(
                    "tensor '{name}': complex tensors are not supported"
                ))
            }
        };
        Ok(ConstTensor::from_tensor(tensor))
    }
}

/// Converts a constant to a `TensorProto` with `raw_data` (or `string_data` for strings).
pub fn to_proto(name: &str, c: &ConstTensor) -> Result<TensorProto> {
    let mut t = TensorProto::new();
    t.name = name.to_string();
    t.data_type = c.dtype.onnx_code();
    t.dims = c.shape.iter().map(|&d| d as i64).collect();
    if c.dtype == DType::String {
        let v = c.to_tensor()?;
        t.string_data = v.as_s()?.iter().map(|s| s.as_bytes().to_vec()).collect();
    } else {
        let b = c
            .bytes()?
            .ok_or_else(|| crate::Error::Export(format!("tensor '{name}' has no bytes")))?;
        t.raw_data = b.into_owned();
    }
    Ok(t)
}
