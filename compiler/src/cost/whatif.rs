//! What-if options and the [`Estimator`] that evaluates them without touching the graph.
//!
//! The graph's work is computed once ([`super::work`]); an option only changes how that work
//! is priced. Options are whole-model ([`WhatIf`]) or per op ([`OpOptions`] overriding the
//! whole-model ones field by field). Toggling one op's options re-prices that op alone and
//! updates the running totals by the difference, so the viewer can do it on every click.
//!
//! - weight bits (`16`, `8`, `4`, `3.56`, `2`, or palettised `p4` = 4-bit indices into a
//!   per-tensor fp16 lookup table of 2^n entries): matrix weights; embeddings follow it unless
//!   embedding bits are given;
//! - embedding bits: embedding tables (and a tied output head folded from them);
//! - activation bits: float activations, and the precision ops compute in;
//! - channel sparsity (per layer, a fraction in `[0, 1)`): removes that fraction of output
//!   channels, scaling matrix weights, MACs and FLOPs by `1 - s`;
//! - KV-cache bits and KV sharing (whole model): the cache size; with sharing off every
//!   layer of a KV-sharing model owns a cache (the per-op cache traffic is unchanged: a
//!   borrowing layer reads a cache of the same length either way).

use super::profile::DeviceProfile;
use super::roofline::{op_cost, OpCost, UnitModel};
use super::work::{GraphWork, Group};
use super::CostError;
use serde::Serialize;
use std::str::FromStr;

/// Storage width of a weight group.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Width {
    /// As stored in the graph.
    #[default]
    Stored,
    /// `b` bits per element (may be fractional: 3.56 is a mixed-precision average).
    Bits(f64),
    /// `n`-bit indices into a per-tensor lookup table of `2^n` fp16 values.
    Palette(u8),
}

impl Width {
    /// Bytes of `g` at this width with a fraction `keep` of its elements.
    pub fn bytes(self, g: &Group, keep: f64) -> f64 {
        match self {
            Width::Stored => g.stored_bytes as f64 * keep,
            Width::Bits(b) => g.elems as f64 * keep * b / 8.0,
            Width::Palette(n) => {
                g.elems as f64 * keep * f64::from(n) / 8.0
                    + f64::from(g.tensors) * (1u64 << n) as f64 * 2.0
            }
        }
    }
}

impl std::fmt::Display for Width {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Width::Stored => write!(f, "stored"),
            Width::Bits(b) => write!(f, "{b}"),
            Width::Palette(n) => write!(f, "p{n}"),
        }
    }
}

impl FromStr for Width {
    type Err = CostError;
    /// `16`, `3.56`, `stored`, or `p4` / `pal4` / `palette4` for palettised 4-bit.
    fn from_str(s: &str) -> Result<Width, CostError> {
        let bad = || {
            CostError::WhatIf(format!(
                "bad weight width '{s}' (want bits in (0, 32] such as 16, 8, 4, 3.56, 2, or pN for N-bit palettisation, N in 1..=8)"
            ))
        };
        let t = s.trim().to_ascii_lowercase();
        if t == "stored" {
            return Ok(Width::Stored);
        }
        for p in ["palette", "pal", "p"] {
            if let Some(n) = t.strip_prefix(p) {
                let n: u8 = n.parse().map_err(|_| bad())?;
                return if (1..=8).contains(&n) {
                    Ok(Width::Palette(n))
                } else {
                    Err(bad())
                };
            }
        }
        let b: f64 = t.parse().map_err(|_| bad())?;
        if b > 0.0 && b <= 32.0 {
            Ok(Width::Bits(b))
        } else {
            Err(bad())
        }
    }
}

/// Parses an activation or KV-cache width in bits (`(0, 64]`).
pub fn parse_bits(what: &str, s: &str) -> Result<f64, CostError> {
    match s.trim().parse::<f64>() {
        Ok(b) if b > 0.0 && b <= 64.0 => Ok(b),
        _ => Err(CostError::WhatIf(format!(
            "bad {what} '{s}' (want a bit width in (0, 64], e.g. 16 or 8)"
        ))),
    }
}

/// Options that apply per op (or to every op, as part of [`WhatIf`]); `None` = not set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct OpOptions {
    pub weight_bits: Option<Width>,
    pub embedding_bits: Option<Width>,
    pub activation_bits: Option<f64>,
    /// Fraction of output channels removed, in `[0, 1)`.
    pub sparsity: Option<f64>,
}

impl OpOptions {
    /// `self` with the fields `over` sets replaced.
    pub fn with(&self, over: &OpOptions) -> OpOptions {
        OpOptions {
            weight_bits: over.weight_bits.or(self.weight_bits),
            embedding_bits: over.embedding_bits.or(self.embedding_bits),
            activation_bits: over.activation_bits.or(self.activation_bits),
            sparsity: over.sparsity.or(self.sparsity),
        }
    }

    /// Sets one option from `key=value` (`weight-bits`, `embedding-bits`, `activation-bits`,
    /// `sparsity`).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), CostError> {
        match key.trim().replace('_', "-").as_str() {
            "weight-bits" => self.weight_bits = Some(value.parse()?),
            "embedding-bits" => self.embedding_bits = Some(value.parse()?),
            "activation-bits" => self.activation_bits = Some(parse_bits("activation bits", value)?),
            "sparsity" => {
                let s: f64 = value.trim().parse().map_err(|_| {
                    CostError::WhatIf(format!("bad sparsity '{value}' (want a fraction in [0, 1))"))
                })?;
                if !(0.0..1.0).contains(&s) {
                    return Err(CostError::WhatIf(format!(
                        "sparsity {s} is outside [0, 1)"
                    )));
                }
                self.sparsity = Some(s);
            }
            k => {
                return Err(CostError::WhatIf(format!(
                    "unknown per-op option '{k}' (options: weight-bits, embedding-bits, activation-bits, sparsity)"
                )))
            }
        }
        Ok(())
    }

    /// The options an op is priced with.
    pub fn resolve(&self) -> Resolved {
        let weight_bits = self.weight_bits.unwrap_or_default();
        Resolved {
            weight_bits,
            embedding_bits: self.embedding_bits.unwrap_or(weight_bits),
            activation_bits: self.activation_bits,
            sparsity: self.sparsity.unwrap_or(0.0),
        }
    }
}

/// Fully resolved per-op options.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Resolved {
    pub weight_bits: Width,
    pub embedding_bits: Width,
    pub activation_bits: Option<f64>,
    pub sparsity: f64,
}

/// Whole-model what-if options.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct WhatIf {
    /// Defaults for every op.
    pub ops: OpOptions,
    pub kv_bits: Option<f64>,
    /// `None`: as the graph was built.
    pub kv_sharing: Option<bool>,
}

/// Running sums over the ops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Sums {
    pub macs: f64,
    pub flops: f64,
    pub weight_bytes: f64,
    pub weight_traffic_bytes: f64,
    pub activation_traffic_bytes: f64,
    pub kv_traffic_bytes: f64,
    pub dram_bytes: f64,
    pub onchip_bytes: f64,
    pub compute_s: f64,
    pub memory_s: f64,
    pub overhead_s: f64,
    pub latency_s: f64,
    pub energy_j: f64,
}

impl Sums {
    fn add(&mut self, c: &OpCost, sign: f64) {
        self.macs += sign * c.macs;
        self.flops += sign * c.flops;
        self.weight_bytes += sign * c.owned_weight_bytes;
        self.weight_traffic_bytes += sign * c.weight_bytes;
        self.activation_traffic_bytes += sign * c.activation_bytes;
        self.kv_traffic_bytes += sign * c.kv_bytes;
        self.dram_bytes += sign * c.dram_bytes;
        self.onchip_bytes += sign * c.onchip_bytes;
        self.compute_s += sign * c.compute_s;
        self.memory_s += sign * c.memory_s;
        self.overhead_s += sign * c.overhead_s;
        self.latency_s += sign * c.latency_s;
        self.energy_j += sign * c.energy_j;
    }
}

/// A priced graph: its work, a device unit, the options, every op's cost and the totals.
pub struct Estimator {
    pub work: GraphWork,
    pub device: String,
    pub unit: String,
    model: UnitModel,
    global: WhatIf,
    overrides: Vec<Option<OpOptions>>,
    costs: Vec<OpCost>,
    sums: Sums,
    /// Weight storage of constants no op reads (stored width).
    unowned_bytes: f64,
}

impl Estimator {
    /// Prices `work` on unit `unit` (the default when `None`) of `profile` under `what_if`.
    pub fn new(
        work: GraphWork,
        profile: &DeviceProfile,
        unit: Option<&str>,
        what_if: WhatIf,
    ) -> Result<Estimator, CostError> {
        let (unit, model) = UnitModel::new(profile, unit)?;
        let n = work.ops.len();
        let u = &work.unowned;
        let unowned_bytes =
            (u.matrix.stored_bytes + u.embedding.stored_bytes + u.fixed.stored_bytes) as f64;
        let mut e = Estimator {
            work,
            device: profile.name.clone(),
            unit,
            model,
            global: what_if,
            overrides: vec![None; n],
            costs: Vec::new(),
            sums: Sums::default(),
            unowned_bytes,
        };
        e.reprice_all();
        Ok(e)
    }

    /// Re-prices every op (after a whole-model option changed).
    fn reprice_all(&mut self) {
        self.costs = (0..self.work.ops.len()).map(|i| self.price(i)).collect();
        self.sums = Sums::default();
        for c in &self.costs {
            self.sums.add(c, 1.0);
        }
    }

    fn price(&self, i: usize) -> OpCost {
        let o = match &self.overrides[i] {
            Some(over) => self.global.ops.with(over),
            None => self.global.ops,
        };
        op_cost(
            &self.work.ops[i],
            &o.resolve(),
            self.global.kv_bits,
            &self.model,
        )
    }

    /// The whole-model options.
    pub fn what_if(&self) -> WhatIf {
        self.global
    }

    /// Replaces the whole-model options and re-prices every op.
    pub fn set_what_if(&mut self, w: WhatIf) {
        self.global = w;
        self.reprice_all();
    }

    /// Sets (or with `None` clears) op `i`'s own options and re-prices it alone: the totals
    /// change by the difference. Panics if `i` is out of range (indices come from
    /// [`Estimator::find_ops`]).
    pub fn set_op_options(&mut self, i: usize, o: Option<OpOptions>) {
        self.overrides[i] = o;
        let new = self.price(i);
        let old = std::mem::replace(&mut self.costs[i], new);
        self.sums.add(&old, -1.0);
        self.sums.add(&new, 1.0);
    }

    /// Op `i`'s own options.
    pub fn op_options(&self, i: usize) -> Option<OpOptions> {
        self.overrides.get(i).copied().flatten()
    }

    /// The ops `key` names: the op with that node name, else the ops with that layer path,
    /// else the ops under it (`/layers.3` covers `/layers.3/attn/q_proj`, not `/layers.30`).
    pub fn find_ops(&self, key: &str) -> Result<Vec<usize>, CostError> {
        let ops = &self.work.ops;
        let by = |f: &dyn Fn(&super::work::OpWork) -> bool| -> Vec<usize> {
            ops.iter()
                .enumerate()
                .filter(|(_, w)| f(w))
                .map(|(i, _)| i)
                .collect()
        };
        let mut v = by(&|w| w.name == key);
        if v.is_empty() {
            v = by(&|w| w.layer == key);
        }
        if v.is_empty() && !key.is_empty() {
            let pre = format!("{}/", key.trim_end_matches('/'));
            v = by(&|w| w.layer.starts_with(&pre));
        }
        if v.is_empty() {
            let example = ops
                .iter()
                .find(|w| !w.layer.is_empty())
                .or(ops.first())
                .map(|w| format!("'{}' or layer '{}'", w.name, w.layer))
                .unwrap_or_else(|| "(the model has no ops)".into());
            return Err(CostError::UnknownOp {
                key: key.to_string(),
                example,
            });
        }
        Ok(v)
    }

    /// Op `i`'s cost.
    pub fn cost(&self, i: usize) -> &OpCost {
        &self.costs[i]
    }

    /// All ops' costs, in execution order.
    pub fn costs(&self) -> &[OpCost] {
        &self.costs
    }

    /// Running totals (updated incrementally by [`Estimator::set_op_options`]).
    pub fn sums(&self) -> Sums {
        let mut s = self.sums;
        s.weight_bytes += self.unowned_bytes;
        s
    }

    /// KV-cache bytes at the bound context under the current KV options.
    pub fn kv_cache_bytes(&self) -> f64 {
        let kv = &self.work.kv;
        if kv.elems == 0 || kv.owners == 0 {
            return 0.0;
        }
        let owners = match (self.global.kv_sharing, kv.owners_shared, kv.owners_unshared) {
            (Some(true), Some(s), _) => s,
            (Some(false), _, Some(u)) => u,
            _ => kv.owners,
        };
        let per_elem = match self.global.kv_bits {
            Some(b) => b / 8.0,
            None => kv.stored_bytes as f64 / kv.elems as f64,
        };
        kv.elems as f64 / kv.owners as f64 * owners as f64 * per_elem
    }

    /// Cache-owning layers under the current KV-sharing option.
    pub fn kv_owners(&self) -> u64 {
        let kv = &self.work.kv;
        match (self.global.kv_sharing, kv.owners_shared, kv.owners_unshared) {
            (Some(true), Some(s), _) => s,
            (Some(false), _, Some(u)) => u,
            _ => kv.owners,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_parse_and_price() {
        assert_eq!("3.56".parse::<Width>().unwrap(), Width::Bits(3.56));
        assert_eq!("p4".parse::<Width>().unwrap(), Width::Palette(4));
        assert_eq!("palette2".parse::<Width>().unwrap(), Width::Palette(2));
        assert_eq!("stored".parse::<Width>().unwrap(), Width::Stored);
        for bad in ["0", "33", "p0", "p9", "four", "-2", ""] {
            assert!(bad.parse::<Width>().is_err(), "{bad}");
        }
        let g = Group {
            elems: 1000,
            stored_bytes: 4000,
            tensors: 2,
        };
        assert_eq!(Width::Stored.bytes(&g, 0.5), 2000.0);
        assert_eq!(Width::Bits(2.0).bytes(&g, 1.0), 250.0);
        // Two 16-entry fp16 tables.
        assert_eq!(Width::Palette(4).bytes(&g, 1.0), 500.0 + 2.0 * 16.0 * 2.0);
    }

    #[test]
    fn per_op_options_override_field_by_field() {
        let mut g = OpOptions::default();
        g.set("weight-bits", "4").unwrap();
        g.set("activation_bits", "16").unwrap();
        let mut o = OpOptions::default();
        o.set("weight-bits", "2").unwrap();
        let m = g.with(&o).resolve();
        assert_eq!(m.weight_bits, Width::Bits(2.0));
        // Embeddings follow the weight width unless set.
        assert_eq!(m.embedding_bits, Width::Bits(2.0));
        assert_eq!(m.activation_bits, Some(16.0));
        assert!(o.set("sparsity", "1").is_err());
        assert!(o.set("depth", "1").is_err());
    }
}
