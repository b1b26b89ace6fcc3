//! The roofline: latency, energy and power of one op from its work, the resolved what-if
//! options and a device unit.
//!
//! ```text
//! compute_s = flops / (peak[precision] x achievable[class].compute)
//! memory_s  = dram_bytes / (dram_bw x achievable[class].memory)
//!           + onchip_bytes / (onchip_bw x achievable[class].memory)
//! latency_s = max(compute_s, memory_s) + launch_overhead_s        bound = the larger term
//! energy_j  = flops x pJ/op[precision] + dram_bytes x pJ/B(dram) + onchip_bytes x pJ/B(onchip)
//! power_w   = energy_j / latency_s
//! ```
//!
//! Weights and the KV cache stream from DRAM; an op's activations (read + written) come from
//! the on-chip level when they fit in its capacity, else from DRAM. Folded and view ops cost
//! nothing. The precision an op computes in follows its activations: the what-if activation
//! width when given (>= 32 bits: f32, > 8: f16, > 4: int8, else int4), else its dtype; a
//! precision the unit lacks is replaced as [`super::profile::Unit::precision`] says.

use super::profile::{DeviceProfile, Fraction, Unit, PRECISIONS};
use super::whatif::Resolved;
use super::work::{OpClass, OpWork};
use super::CostError;
use petasos_ir::DType;
use serde::Serialize;

/// Which roofline term limits an op.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Bound {
    Compute,
    Memory,
    /// Folded or view ops: no run-time cost.
    None,
}

impl Bound {
    pub fn as_str(self) -> &'static str {
        match self {
            Bound::Compute => "compute",
            Bound::Memory => "memory",
            Bound::None => "none",
        }
    }
}

/// A unit of a profile flattened for fast evaluation.
#[derive(Clone, Debug)]
pub struct UnitModel {
    /// For each wanted precision (index into [`PRECISIONS`]): the index used, its peak ops/s
    /// and its pJ per op.
    resolve: [(usize, f64, f64); 5],
    /// `(compute, memory)` fractions by class (index: [`class_index`]).
    frac: [(f64, f64); 8],
    pub overhead_s: f64,
    pub dram_bw: f64,
    pub dram_pj: f64,
    pub onchip_bw: f64,
    pub onchip_pj: f64,
    pub onchip_capacity: f64,
}

fn class_index(c: OpClass) -> usize {
    match c {
        OpClass::Matmul => 0,
        OpClass::Conv => 1,
        OpClass::Attention => 2,
        OpClass::Elementwise => 3,
        OpClass::Normalization => 4,
        OpClass::Reduction => 5,
        OpClass::DataMovement => 6,
        OpClass::Other | OpClass::View => 7,
    }
}

impl UnitModel {
    /// Flattens unit `unit` (the default when `None`) of `p`.
    pub fn new(p: &DeviceProfile, unit: Option<&str>) -> Result<(String, UnitModel), CostError> {
        let (name, u) = p.unit(unit)?;
        let a = &u.achievable;
        let f = |x: &Fraction| (x.compute, x.memory);
        let resolve = std::array::from_fn(|i| precision_entry(u, PRECISIONS[i]));
        let m = UnitModel {
            resolve,
            frac: [
                f(&a.matmul),
                f(&a.conv),
                f(&a.attention),
                f(&a.elementwise),
                f(&a.normalization),
                f(&a.reduction),
                f(&a.data_movement),
                f(&a.other),
            ],
            overhead_s: u.launch_overhead_s.value,
            dram_bw: p.memory.dram.bandwidth_bytes_per_s.value,
            dram_pj: p.memory.dram.energy_pj_per_byte.value,
            onchip_bw: p.memory.onchip.bandwidth_bytes_per_s.value,
            onchip_pj: p.memory.onchip.energy_pj_per_byte.value,
            onchip_capacity: p
                .memory
                .onchip
                .capacity_bytes
                .as_ref()
                .map(|c| c.value)
                .unwrap_or(0.0),
        };
        Ok((name.to_string(), m))
    }
}

fn precision_entry(u: &Unit, want: &str) -> (usize, f64, f64) {
    let key = u.precision(want);
    let idx = PRECISIONS.iter().position(|p| *p == key).unwrap_or(4);
    let peak = u.peak_ops_per_s.get(key).map(|s| s.value).unwrap_or(1.0);
    let pj = u.energy_pj_per_op.get(key).map(|s| s.value).unwrap_or(0.0);
    (idx, peak, pj)
}

/// The precision (index into [`PRECISIONS`]) an op computing in `dtype` wants, or at
/// `act_bits` when given.
pub fn wanted_precision(dtype: DType, act_bits: Option<f64>) -> usize {
    match act_bits {
        Some(b) if b >= 32.0 => 4,
        Some(b) if b > 8.0 => {
            if dtype == DType::BF16 {
                3
            } else {
                2
            }
        }
        Some(b) if b > 4.0 => 1,
        Some(_) => 0,
        None => match dtype {
            DType::F16 => 2,
            DType::BF16 => 3,
            DType::F8E4M3FN
            | DType::F8E4M3FNUZ
            | DType::F8E5M2
            | DType::F8E5M2FNUZ
            | DType::I8
            | DType::U8 => 1,
            DType::F4E2M1 | DType::I4 | DType::U4 | DType::I2 | DType::U2 => 0,
            _ => 4,
        },
    }
}

/// The cost of one op, every term of the roofline visible.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct OpCost {
    /// Index into [`PRECISIONS`] of the precision computed in.
    #[serde(skip)]
    pub precision: usize,
    /// MACs and FLOPs after channel sparsity.
    pub macs: f64,
    pub flops: f64,
    /// Bytes moved: weights read, activations read + written, KV cache read + written.
    pub weight_bytes: f64,
    pub activation_bytes: f64,
    pub kv_bytes: f64,
    /// Weight storage this op owns.
    pub owned_weight_bytes: f64,
    /// Where the moved bytes come from.
    pub dram_bytes: f64,
    pub onchip_bytes: f64,
    /// FLOPs per byte moved.
    pub intensity: f64,
    pub compute_s: f64,
    pub memory_s: f64,
    pub overhead_s: f64,
    pub latency_s: f64,
    pub compute_energy_j: f64,
    pub memory_energy_j: f64,
    pub energy_j: f64,
    pub power_w: f64,
    #[serde(skip)]
    pub bound: Option<Bound>,
}

impl OpCost {
    /// The precision's name (`f16`, `int8`, ...).
    pub fn precision_name(&self) -> &'static str {
        PRECISIONS[self.precision.min(4)]
    }
    /// The limiting term.
    pub fn bound(&self) -> Bound {
        self.bound.unwrap_or(Bound::None)
    }
}

/// The cost of `w` under options `o` (KV-cache width `kv_bits`) on unit `m`.
pub fn op_cost(w: &OpWork, o: &Resolved, kv_bits: Option<f64>, m: &UnitModel) -> OpCost {
    let keep = 1.0 - o.sparsity;
    let wr = &w.weights_read;
    let ow = &w.weights_owned;
    let owned_weight_bytes = o.weight_bits.bytes(&ow.matrix, keep)
        + o.embedding_bits.bytes(&ow.embedding, 1.0)
        + ow.fixed.stored_bytes as f64;
    let want = wanted_precision(w.dtype, o.activation_bits);
    let (precision, peak, pj) = m.resolve[want];
    if w.folded || w.class == OpClass::View {
        return OpCost {
            precision,
            macs: w.macs as f64 * keep,
            owned_weight_bytes,
            bound: Some(Bound::None),
            ..OpCost::default()
        };
    }
    let weight_bytes = o.weight_bits.bytes(&wr.matrix, keep)
        + o.embedding_bits.bytes(&wr.embedding, 1.0)
        + wr.fixed.stored_bytes as f64;
    let act = |g: &super::work::Group| match o.activation_bits {
        Some(b) => g.elems as f64 * b / 8.0,
        None => g.stored_bytes as f64,
    };
    let activation_bytes = act(&w.act_in) + act(&w.act_out) + w.act_fixed_bytes as f64;
    let kv = |g: &super::work::Group| match kv_bits {
        Some(b) => g.elems as f64 * b / 8.0,
        None => g.stored_bytes as f64,
    };
    let kv_bytes = kv(&w.kv_read) + kv(&w.kv_write);
    let (onchip_bytes, act_dram) = if activation_bytes <= m.onchip_capacity {
        (activation_bytes, 0.0)
    } else {
        (0.0, activation_bytes)
    };
    let dram_bytes = weight_bytes + kv_bytes + act_dram;
    let flops = w.flops as f64 * keep;
    let (fc, fm) = m.frac[class_index(w.class)];
    let compute_s = flops / (peak * fc);
    let memory_s = dram_bytes / (m.dram_bw * fm) + onchip_bytes / (m.onchip_bw * fm);
    let overhead_s = m.overhead_s;
    let latency_s = compute_s.max(memory_s) + overhead_s;
    let compute_energy_j = flops * pj * 1e-12;
    let memory_energy_j = (dram_bytes * m.dram_pj + onchip_bytes * m.onchip_pj) * 1e-12;
    let energy_j = compute_energy_j + memory_energy_j;
    let moved = dram_bytes + onchip_bytes;
    OpCost {
        precision,
        macs: w.macs as f64 * keep,
        flops,
        weight_bytes,
        activation_bytes,
        kv_bytes,
        owned_weight_bytes,
        dram_bytes,
        onchip_bytes,
        intensity: if moved > 0.0 { flops / moved } else { 0.0 },
        compute_s,
        memory_s,
        overhead_s,
        latency_s,
        compute_energy_j,
        memory_energy_j,
        energy_j,
        power_w: if latency_s > 0.0 {
            energy_j / latency_s
        } else {
            0.0
        },
        bound: Some(if compute_s >= memory_s {
            Bound::Compute
        } else {
            Bound::Memory
        }),
    }
}
