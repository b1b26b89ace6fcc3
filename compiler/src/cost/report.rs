//! The `petasos estimate` report: totals and one row per op with every roofline term, as
//! text, CSV and JSON.

use super::whatif::{Estimator, OpOptions, WhatIf};
use super::work::OpClass;
use crate::inspect::si;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;

/// Whole-model figures.
#[derive(Clone, Debug, Serialize)]
pub struct Totals {
    /// Weight storage (every constant once, at its what-if width; quantisation scales not
    /// included).
    pub weight_bytes: u64,
    /// KV cache at the context length, KV width and sharing option.
    pub kv_cache_bytes: u64,
    /// Layers owning a KV cache under the sharing option.
    pub kv_cache_owners: u64,
    /// Peak activation memory: the memory planner's arena (`plan::memory`) in execution order,
    /// at the activations' stored widths; `null` when the graph was not planned.
    pub peak_activation_bytes: Option<u64>,
    /// The largest set of activations live at one step (a lower bound for the arena).
    pub max_live_activation_bytes: Option<u64>,
    /// Every activation summed, as if none were ever freed (what planning saves against).
    pub naive_activation_bytes: Option<u64>,
    /// MACs as `Op::macs` counts them (equal to `petasos inspect` at the same dims).
    pub macs: u64,
    /// MACs after channel sparsity.
    pub effective_macs: u64,
    pub flops: f64,
    pub weight_traffic_bytes: f64,
    pub activation_traffic_bytes: f64,
    pub kv_traffic_bytes: f64,
    pub dram_bytes: f64,
    pub onchip_bytes: f64,
    /// Sums of the per-op terms (ops run one after another).
    pub compute_s: f64,
    pub memory_s: f64,
    pub overhead_s: f64,
    pub latency_s: f64,
    pub energy_j: f64,
    /// `energy_j / latency_s`.
    pub average_power_w: f64,
    pub ops: usize,
    pub compute_bound_ops: usize,
    pub memory_bound_ops: usize,
}

/// One op's row.
#[derive(Clone, Debug, Serialize)]
pub struct OpRow {
    pub name: String,
    pub op_type: String,
    pub layer: String,
    pub shape: String,
    pub class: OpClass,
    /// The unit precision it is priced at.
    pub precision: &'static str,
    pub macs: u64,
    pub flops: f64,
    pub weight_bytes: f64,
    pub activation_bytes: f64,
    pub kv_bytes: f64,
    pub dram_bytes: f64,
    pub onchip_bytes: f64,
    pub intensity: f64,
    pub compute_s: f64,
    pub memory_s: f64,
    pub overhead_s: f64,
    pub latency_s: f64,
    pub compute_energy_j: f64,
    pub memory_energy_j: f64,
    pub energy_j: f64,
    pub power_w: f64,
    /// `compute`, `memory`, or `none` (folded and view ops).
    pub bound: &'static str,
    /// The op's own what-if options, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub options: Option<OpOptions>,
}

/// What `petasos estimate` reports.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub model: String,
    pub device: String,
    pub unit: String,
    /// Symbolic dims and their values.
    pub dims: BTreeMap<String, u64>,
    pub what_if: WhatIf,
    pub totals: Totals,
    pub ops: Vec<OpRow>,
    /// Caveats that apply to this model.
    pub notes: Vec<String>,
}

impl Report {
    /// The report of `e` for the model called `model`.
    pub fn new(model: &str, e: &Estimator) -> Report {
        let s = e.sums();
        let costs = e.costs();
        let ops: Vec<OpRow> = e
            .work
            .ops
            .iter()
            .zip(costs)
            .enumerate()
            .map(|(i, (w, c))| OpRow {
                name: w.name.clone(),
                op_type: w.op_type.clone(),
                layer: w.layer.clone(),
                shape: w.shape.clone(),
                class: w.class,
                precision: c.precision_name(),
                macs: w.macs,
                flops: c.flops,
                weight_bytes: c.weight_bytes,
                activation_bytes: c.activation_bytes,
                kv_bytes: c.kv_bytes,
                dram_bytes: c.dram_bytes,
                onchip_bytes: c.onchip_bytes,
                intensity: c.intensity,
                compute_s: c.compute_s,
                memory_s: c.memory_s,
                overhead_s: c.overhead_s,
                latency_s: c.latency_s,
                compute_energy_j: c.compute_energy_j,
                memory_energy_j: c.memory_energy_j,
                energy_j: c.energy_j,
                power_w: c.power_w,
                bound: c.bound().as_str(),
                options: e.op_options(i),
            })
            .collect();
        let count = |b: &str| ops.iter().filter(|r| r.bound == b).count();
        let totals = Totals {
            weight_bytes: s.weight_bytes.round() as u64,
            kv_cache_bytes: e.kv_cache_bytes().round() as u64,
            kv_cache_owners: e.kv_owners(),
            peak_activation_bytes: None,
            max_live_activation_bytes: None,
            naive_activation_bytes: None,
            macs: e.work.ops.iter().map(|w| w.macs).sum(),
            effective_macs: s.macs.round() as u64,
            flops: s.flops,
            weight_traffic_bytes: s.weight_traffic_bytes,
            activation_traffic_bytes: s.activation_traffic_bytes,
            kv_traffic_bytes: s.kv_traffic_bytes,
            dram_bytes: s.dram_bytes,
            onchip_bytes: s.onchip_bytes,
            compute_s: s.compute_s,
            memory_s: s.memory_s,
            overhead_s: s.overhead_s,
            latency_s: s.latency_s,
            energy_j: s.energy_j,
            average_power_w: if s.latency_s > 0.0 {
                s.energy_j / s.latency_s
            } else {
                0.0
            },
            ops: ops.len(),
            compute_bound_ops: count("compute"),
            memory_bound_ops: count("memory"),
        };
        let mut notes = Vec::new();
        if ops.iter().any(|r| r.layer.contains("/experts")) {
            notes.push(
                "mixture-of-experts layers are priced as the graph computes them: every expert on every token (a runtime that runs only the top-k experts does less)".to_string(),
            );
        }
        if e.work.kv.owners_shared.is_some() {
            notes.push(
                "KV sharing changes the KV-cache size only; per-op cache traffic is the same either way".to_string(),
            );
        }
        Report {
            model: model.to_string(),
            device: e.device.clone(),
            unit: e.unit.clone(),
            dims: e.work.dims.clone(),
            what_if: e.what_if(),
            totals,
            ops,
            notes,
        }
    }

    /// The report as text: one row per op, then the totals.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let dims: Vec<String> = self.dims.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(
            o,
            "model: {}  device: {} ({})  dims: {}",
            self.model,
            self.device,
            self.unit,
            dims.join(", ")
        );
        let name_w = self
            .ops
            .iter()
            .map(|r| r.name.chars().count())
            .max()
            .unwrap_or(2)
            .clamp(2, 40);
        let layer_w = self
            .ops
            .iter()
            .map(|r| r.layer.chars().count())
            .max()
            .unwrap_or(5)
            .clamp(5, 36);
        let shape_w = self
            .ops
            .iter()
            .map(|r| r.shape.chars().count())
            .max()
            .unwrap_or(5)
            .clamp(5, 30);
        let _ = writeln!(
            o,
            "{:<name_w$} {:<18} {:<layer_w$} {:<shape_w$} {:>9} {:>9} {:>9} {:>10} {:>10} {:>9} {:>7}",
            "op", "op type", "layer", "shape", "MACs", "weight B", "act B", "latency", "energy", "power", "bound"
        );
        for r in &self.ops {
            let _ = writeln!(
                o,
                "{:<name_w$} {:<18} {:<layer_w$} {:<shape_w$} {:>9} {:>9} {:>9} {:>10} {:>10} {:>9} {:>7}",
                tail(&r.name, name_w),
                tail(&r.op_type, 18),
                tail(&r.layer, layer_w),
                tail(&r.shape, shape_w),
                si(r.macs),
                si(r.weight_bytes.round() as u64),
                si(r.activation_bytes.round() as u64),
                seconds(r.latency_s),
                joules(r.energy_j),
                format!("{:.2} W", r.power_w),
                r.bound
            );
        }
        let t = &self.totals;
        let _ = writeln!(o, "totals:");
        let _ = writeln!(
            o,
            "  MACs {} ({} after sparsity), FLOPs {}",
            si(t.macs),
            si(t.effective_macs),
            si(t.flops.round() as u64)
        );
        let _ = writeln!(
            o,
            "  weights {}, KV cache {} ({} owning layers), peak activations {}",
            bytes(t.weight_bytes),
            bytes(t.kv_cache_bytes),
            t.kv_cache_owners,
            match (t.peak_activation_bytes, t.naive_activation_bytes) {
                (Some(p), Some(n)) =>
                    format!("{} (naive sum of all activations {})", bytes(p), bytes(n)),
                (Some(p), None) => bytes(p),
                _ => "not planned".into(),
            }
        );
        let _ = writeln!(
            o,
            "  traffic: weights {}, activations {}, KV {} (DRAM {}, on-chip {})",
            bytes(t.weight_traffic_bytes.round() as u64),
            bytes(t.activation_traffic_bytes.round() as u64),
            bytes(t.kv_traffic_bytes.round() as u64),
            bytes(t.dram_bytes.round() as u64),
            bytes(t.onchip_bytes.round() as u64)
        );
        let _ = writeln!(
            o,
            "  latency {} (compute {}, memory {}, overhead {}), energy {}, average power {:.2} W",
            seconds(t.latency_s),
            seconds(t.compute_s),
            seconds(t.memory_s),
            seconds(t.overhead_s),
            joules(t.energy_j),
            t.average_power_w
        );
        let _ = writeln!(
            o,
            "  ops {}: {} compute-bound, {} memory-bound, {} free (folded or views)",
            t.ops,
            t.compute_bound_ops,
            t.memory_bound_ops,
            t.ops - t.compute_bound_ops - t.memory_bound_ops
        );
        for n in &self.notes {
            let _ = writeln!(o, "note: {n}");
        }
        o
    }

    /// The per-op rows as CSV (header first; every roofline term a column).
    pub fn csv(&self) -> String {
        let mut o = String::from(
            "name,op_type,layer,shape,class,precision,macs,flops,weight_bytes,activation_bytes,kv_bytes,dram_bytes,onchip_bytes,intensity,compute_s,memory_s,overhead_s,latency_s,compute_energy_j,memory_energy_j,energy_j,power_w,bound\n",
        );
        for r in &self.ops {
            let _ = writeln!(
                o,
                "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{:e},{:e},{:e},{:e},{:e},{:e},{:e},{},{}",
                csv_field(&r.name),
                csv_field(&r.op_type),
                csv_field(&r.layer),
                csv_field(&r.shape),
                r.class.key(),
                r.precision,
                r.macs,
                r.flops,
                r.weight_bytes,
                r.activation_bytes,
                r.kv_bytes,
                r.dram_bytes,
                r.onchip_bytes,
                r.intensity,
                r.compute_s,
                r.memory_s,
                r.overhead_s,
                r.latency_s,
                r.compute_energy_j,
                r.memory_energy_j,
                r.energy_j,
                r.power_w,
                r.bound
            );
        }
        o
    }
}

/// The last `w` characters of `s` (with a leading `~` when cut).
fn tail(s: &str, w: usize) -> String {
    let n = s.chars().count();
    if n <= w {
        s.to_string()
    } else {
        let skip = n - w + 1;
        format!("~{}", s.chars().skip(skip).collect::<String>())
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// `46720000` -> `46.72 MB`, `512` -> `512 B`.
pub fn bytes(n: u64) -> String {
    let s = si(n);
    if s.ends_with(|c: char| c.is_ascii_digit()) {
        format!("{s} B")
    } else {
        format!("{s}B")
    }
}

/// `1.5e-6` -> `1.50 us`.
pub fn seconds(s: f64) -> String {
    if s == 0.0 {
        "0".into()
    } else if s < 1e-3 {
        format!("{:.2} us", s * 1e6)
    } else if s < 1.0 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{s:.3} s")
    }
}

/// `2.5e-3` -> `2.50 mJ`.
pub fn joules(j: f64) -> String {
    if j == 0.0 {
        "0".into()
    } else if j < 1e-3 {
        format!("{:.2} uJ", j * 1e6)
    } else if j < 1.0 {
        format!("{:.2} mJ", j * 1e3)
    } else {
        format!("{j:.3} J")
    }
}
