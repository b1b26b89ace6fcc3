//! A protobuf wire-format pass over an ONNX file that lifts tensor payloads out.
//!
//! `onnx-protobuf` copies every `raw_data` field while parsing. To keep weights in the memory map,
//! [`strip`] re-encodes the model without the `raw_data` payloads of `TensorProto`s (wherever they
//! occur: initializers, `Constant` attributes, subgraphs, functions), recording each payload's byte
//! range in the original file and leaving in its place an unknown varint field
//! [`RANGE_FIELD`] holding the range's index. The stripped buffer is small and parses fast.
//! The pass also bounds nesting depth, so hostile files fail with a clear error instead of
//! exhausting the stack.

use crate::{import_err, Result};

/// The field number that marks a lifted payload in a stripped `TensorProto`.
pub const RANGE_FIELD: u32 = 1000;

/// Maximum nesting of messages accepted (a graph level costs three: graph, node, attribute).
pub const MAX_DEPTH: usize = 90;

/// Payloads smaller than this stay inline.
const MIN_LIFT: usize = 64;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Model,
    Graph,
    Node,
    Attr,
    Tensor,
    Sparse,
    Function,
}

fn child(kind: Kind, field: u32) -> Option<Kind> {
    use Kind::*;
    Some(match (kind, field) {
        (Model, 7) => Graph,
        (Model, 25) => Function,
        (Graph, 1) => Node,
        (Graph, 5) => Tensor,
        (Graph, 15) => Sparse,
        (Node, 5) => Attr,
        (Function, 7) => Node,
        (Function, 11) => Attr,
        (Attr, 5) | (Attr, 10) => Tensor,
        (Attr, 6) | (Attr, 11) => Graph,
        (Attr, 22) | (Attr, 23) => Sparse,
        (Sparse, 1) | (Sparse, 2) => Tensor,
        _ => return None,
    })
}

/// A stripped model: the re-encoded bytes and the lifted payload ranges `(offset, len)`.
pub struct Stripped {
    pub bytes: Vec<u8>,
    pub ranges: Vec<(usize, usize)>,
}

/// Strips `data` (a serialized `ModelProto`).
pub fn strip(data: &[u8]) -> Result<Stripped> {
    let mut s = Stripped {
        bytes: Vec::with_capacity(data.len().min(1 << 20)),
        ranges: Vec::new(),
    };
    let mut out = Vec::new();
    copy(Kind::Model, data, 0, 0, &mut out, &mut s.ranges)?;
    s.bytes = out;
    Ok(s)
}

fn read_varint(data: &[u8], pos: &mut usize) -> Result<u64> {
    let mut v: u64 = 0;
    for shift in (0..70).step_by(7) {
        let b = *data.get(*pos).ok_or_else(|| {
            import_err!("the file is truncated (inside a varint at byte {})", *pos)
        })?;
        *pos += 1;
        if shift >= 64 {
            return Err(import_err!("malformed varint at byte {}", *pos - 1));
        }
        v |= ((b & 0x7F) as u64) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(import_err!("malformed varint at byte {}", *pos))
}

fn write_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn copy(
    kind: Kind,
    data: &[u8],
    base: usize,
    depth: usize,
    out: &mut Vec<u8>,
    ranges: &mut Vec<(usize, usize)>,
) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(import_err!(
            "the model nests subgraphs too deeply (more than {} levels); refusing it",
            MAX_DEPTH / 3
        ));
    }
    let mut pos = 0;
    while pos < data.len() {
        let start = pos;
        let tag = read_varint(data, &mut pos)?;
        let field = (tag >> 3) as u32;
        let wt = (tag & 7) as u8;
        let tag_end = pos;
        if field == 0 {
            return Err(import_err!(
                "not an ONNX protobuf file (field number 0 at byte {})",
                base + start
            ));
        }
        match wt {
            0 => {
                read_varint(data, &mut pos)?;
                out.extend_from_slice(&data[start..pos]);
            }
            1 | 5 => {
                let w = if wt == 1 { 8 } else { 4 };
                if pos + w > data.len() {
                    return Err(import_err!(
                        "the file is truncated (at byte {})",
                        base + pos
                    ));
                }
                pos += w;
                out.extend_from_slice(&data[start..pos]);
            }
            2 => {
                let len = read_varint(data, &mut pos)?;
                let len = usize::try_from(len)
                    .map_err(|_| import_err!("field length {len} is too large"))?;
                let end = pos
                    .checked_add(len)
                    .filter(|&e| e <= data.len())
                    .ok_or_else(|| {
                        import_err!(
                        "the file is truncated: a field at byte {} claims {len} bytes, {} remain",
                        base + start,
                        data.len() - pos
                    )
                    })?;
                let body = &data[pos..end];
                if kind == Kind::Tensor && field == 9 && len >= MIN_LIFT {
                    write_varint(out, (RANGE_FIELD as u64) << 3);
                    write_varint(out, ranges.len() as u64);
                    ranges.push((base + pos, len));
                } else if let Some(ck) = child(kind, field) {
                    let mut sub = Vec::new();
                    copy(ck, body, base + pos, depth + 1, &mut sub, ranges)?;
                    out.extend_from_slice(&data[start..tag_end]);
                    write_varint(out, sub.len() as u64);
                    out.extend_from_slice(&sub);
                } else {
                    out.extend_from_slice(&data[start..end]);
                }
                pos = end;
            }
            _ => {
                return Err(import_err!(
                    "not an ONNX protobuf file (unsupported wire type {wt} at byte {})",
                    base + start
                ))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_and_garbage_are_errors() {
        assert!(strip(&[0x3A, 0x10, 0x01]).is_err()); // graph field claims 16 bytes
        assert!(strip(&[0x07]).is_err()); // wire type 7
        assert!(strip(&[]).is_ok());
    }
}
