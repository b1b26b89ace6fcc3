//! Reading and writing single tensors as serialized `TensorProto` files (`.pb`) and numpy `.npy`.

use super::export::write_atomic;
use super::tensor_proto::{to_proto, Backing, TensorSource};
use crate::dtype::DType;
use crate::tensor::Tensor;
use crate::weights::{decode_le, encode_le, ConstTensor};
use crate::{import_err, Error, Result};
use onnx_protobuf::TensorProto;
use protobuf::Message;
use std::path::Path;
use std::sync::Arc;

/// Parses a serialized `TensorProto`. Returns the tensor and its name.
pub fn tensor_from_pb(bytes: &[u8]) -> Result<(String, Tensor)> {
    let t =
        TensorProto::parse_from_bytes(bytes).map_err(|e| import_err!("not a TensorProto: {e}"))?;
    let src = TensorSource::new(Backing::Bytes(Arc::from(&[][..])), Vec::new(), None);
    let c = src.load(&t)?;
    Ok((t.name.clone(), c.to_tensor()?))
}

/// Serializes a tensor as a `TensorProto`.
pub fn tensor_to_pb(name: &str, t: &Tensor) -> Result<Vec<u8>> {
    let p = to_proto(name, &ConstTensor::from_tensor(t.clone()))?;
    p.write_to_bytes().map_err(|e| Error::Export(e.to_string()))
}

fn npy_descr(d: DType) -> Option<&'static str> {
    Some(match d {
        DType::F64 => "<f8",
        DType::F32 => "<f4",
        DType::F16 => "<f2",
        DType::I64 => "<i8",
        DType::I32 => "<i4",
        DType::I16 => "<i2",
        DType::I8 => "|i1",
        DType::U64 => "<u8",
        DType::U32 => "<u4",
        DType::U16 => "<u2",
        DType::U8 => "|u1",
        DType::Bool => "|b1",
        _ => return None,
    })
}

/// Parses a numpy `.npy` file (version 1-3, little-endian, C order).
pub fn tensor_from_npy(b: &[u8]) -> Result<Tensor> {
    if b.len() < 10 || &b[..6] != b"\x93NUMPY" {
        return Err(import_err!("not a .npy file (bad magic)"));
    }
    let (hlen, start) = match b[6] {
        1 => (u16::from_le_bytes([b[8], b[9]]) as usize, 10),
        2 | 3 if b.len() >= 12 => (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12),
        v => return Err(import_err!(".npy version {v} is not supported")),
    };
    let header = b
        .get(start..start + hlen)
        .ok_or_else(|| import_err!(".npy header is truncated"))?;
    let header = String::from_utf8_lossy(header);
    let field = |key: &str| -> Option<String> {
        let i = header.find(&format!("'{key}'"))?;
        let rest = &header[i + key.len() + 2..];
        let rest = rest.trim_start().strip_prefix(':')?.trim_start();
        Some(rest.to_string())
    };
    let descr = field("descr").ok_or_else(|| import_err!(".npy header has no descr"))?;
    let descr = descr
        .trim_start_matches('\'')
        .split('\'')
        .next()
        .unwrap_or("")
        .to_string();
    let fortran = field("fortran_order")
        .map(|s| s.starts_with("True"))
        .unwrap_or(false);
    if fortran {
        return Err(import_err!(
            ".npy arrays in Fortran order are not supported"
        ));
    }
    let shape_s = field("shape").ok_or_else(|| import_err!(".npy header has no shape"))?;
    let inner = shape_s
        .trim_start_matches('(')
        .split(')')
        .next()
        .unwrap_or("");
    let shape: Vec<usize> = inner
        .split(',')
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| import_err!(".npy shape '{shape_s}' is malformed"))
        })
        .collect::<Result<_>>()?;
    let dtype = DType::ALL
        .iter()
        .copied()
        .find(|&d| {
            npy_descr(d).is_some_and(|x| {
                x == descr || x.replace('<', "|") == descr || x.replace('|', "<") == descr
            })
        })
        .ok_or_else(|| import_err!(".npy dtype '{descr}' is not supported"))?;
    decode_le(dtype, &shape, &b[start + hlen..])
}

/// Serializes a tensor as a numpy `.npy` (version 1).
pub fn tensor_to_npy(t: &Tensor) -> Result<Vec<u8>> {
    let descr = npy_descr(t.dtype())
        .ok_or_else(|| Error::Export(format!("{} cannot be written as .npy", t.dtype())))?;
    let shape = match t.shape() {
        [] => "()".to_string(),
        [x] => format!("({x},)"),
        s => format!(
            "({})",
            s.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&encode_le(t)?);
    Ok(out)
}

/// Reads a tensor from a `.pb` or `.npy` file (by extension; `.pb` otherwise).
pub fn read_tensor_file(path: &Path) -> Result<Tensor> {
    let b = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let r = if path.extension().is_some_and(|e| e == "npy") {
        tensor_from_npy(&b)
    } else {
        tensor_from_pb(&b).map(|x| x.1)
    };
    r.map_err(|e| import_err!("{}: {e}", path.display()))
}

/// Writes a tensor to a `.pb` or `.npy` file (by extension), atomically.
pub fn write_tensor_file(path: &Path, name: &str, t: &Tensor) -> Result<()> {
    let b = if path.extension().is_some_and(|e| e == "npy") {
        tensor_to_npy(t)?
    } else {
        tensor_to_pb(name, t)?
    };
    write_atomic(path, &b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_and_pb_round_trip() {
        let t = Tensor::from_f32(&[2, 3], vec![1.0, -2.0, 3.5, 0.0, 7.0, 8.0]).unwrap();
        assert_eq!(tensor_from_npy(&tensor_to_npy(&t).unwrap()).unwrap(), t);
        assert_eq!(
            tensor_from_pb(&tensor_to_pb("x", &t).unwrap()).unwrap().1,
            t
        );
        assert!(tensor_from_npy(b"garbage").is_err());
    }
}
