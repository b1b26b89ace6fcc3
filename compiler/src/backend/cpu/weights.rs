//! The weights blob (`weights.bin`): every constant the kernels read, little-endian at its
//! storage width, each at a 64-byte aligned offset, after a 64-byte header.
//!
//! Header: `PTWGHT01` (8 bytes), total file size (u64 LE), FNV-1a 64 hash of everything after
//! the header (u64 LE), zero padding to 64 bytes. `model_init` maps the file and checks the
//! size and the hash against the values compiled into `model.c`, so a blob from another
//! compile is refused instead of read.

use petasos_ir::Graph;
use petgraph::stable_graph::NodeIndex;

/// Header size and the alignment of every constant.
pub const ALIGN: usize = 64;
/// The magic at the start of the file.
pub const MAGIC: &[u8; 8] = b"PTWGHT01";

/// Errors building the blob.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("constant '{name}': {msg}")]
    Constant { name: String, msg: String },
}

/// The blob and each constant's byte offset in it.
#[derive(Debug, Clone)]
pub struct Blob {
    pub bytes: Vec<u8>,
    /// Offset of `constants[i]` from the start of the file.
    pub offsets: Vec<u64>,
    /// FNV-1a 64 of `bytes[ALIGN..]`.
    pub hash: u64,
}

/// Lays out the constant nodes `constants` of `g` in order.
pub fn build(g: &Graph, constants: &[NodeIndex]) -> Result<Blob, WeightsError> {
    let mut bytes = vec![0u8; ALIGN];
    let mut offsets = Vec::with_capacity(constants.len());
    for &n in constants {
        let name = g.g[n]
            .outputs
            .first()
            .map(|v| v.name.clone())
            .unwrap_or_default();
        let err = |msg: String| WeightsError::Constant {
            name: name.clone(),
            msg,
        };
        let c = g
            .constant(n)
            .ok_or_else(|| err("internal: not a constant node".into()))?;
        if super::lower::storage_ctype(c.dtype).is_none() {
            return Err(err(format!(
                "dtype {} is not supported by the CPU backend",
                c.dtype
            )));
        }
        let b = c
            .bytes()
            .map_err(|e| err(e.to_string()))?
            .ok_or_else(|| err("string tensors are not supported".into()))?;
        let want = c.nbytes();
        if b.len() < want {
            return Err(err(format!("{} bytes stored, {want} needed", b.len())));
        }
        let off = bytes.len().div_ceil(ALIGN) * ALIGN;
        bytes.resize(off, 0);
        bytes.extend_from_slice(&b[..want]);
        offsets.push(off as u64);
    }
    let total = bytes.len().div_ceil(ALIGN) * ALIGN;
    bytes.resize(total, 0);
    let hash = fnv1a(&bytes[ALIGN..]);
    bytes[..8].copy_from_slice(MAGIC);
    bytes[8..16].copy_from_slice(&(total as u64).to_le_bytes());
    bytes[16..24].copy_from_slice(&hash.to_le_bytes());
    Ok(Blob {
        bytes,
        offsets,
        hash,
    })
}

/// FNV-1a 64 (the C runtime computes the same in `pt_rt.c`).
pub fn fnv1a(b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &x in b {
        h ^= x as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}
