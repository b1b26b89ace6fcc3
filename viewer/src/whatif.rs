//! The what-if panel: weight, embedding and activation bits, channel sparsity, KV-cache bits
//! and KV sharing, applied to the whole model (`Estimator::set_what_if`) or to the selected ops
//! (`Estimator::set_op_options` per op: only those ops are re-priced), with the predicted
//! totals before -> after and the ops whose latency changed most.
//!
//! "Before" is the estimate without any option: a [`Baseline`] taken from the estimator the
//! first time the panel sees it (options cleared, read, restored), rebuilt when the estimator's
//! device, unit or work changes, or on [`WhatIfPanel::invalidate`].

use petasos_compiler::cost::report::{bytes, joules, seconds};
use petasos_compiler::cost::whatif::Sums;
use petasos_compiler::cost::{Estimator, OpOptions, WhatIf, Width};

/// What the controls act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Scope {
    /// Whole-model options.
    #[default]
    Model,
    /// Per-op options of the selected ops.
    Selected,
}

/// Weight widths offered (the `None` entry is "stored" for the model, "as model" per op).
pub const WEIGHT_WIDTHS: [Width; 9] = [
    Width::Bits(16.0),
    Width::Bits(8.0),
    Width::Bits(4.0),
    Width::Bits(3.56),
    Width::Bits(2.0),
    Width::Palette(2),
    Width::Palette(4),
    Width::Palette(6),
    Width::Palette(8),
];

/// Activation widths offered, in bits.
pub const ACTIVATION_BITS: [f64; 4] = [32.0, 16.0, 8.0, 4.0];

/// KV-cache widths offered, in bits.
pub const KV_BITS: [f64; 4] = [16.0, 8.0, 4.0, 2.0];

/// The label a weight width has in the combos: `4 bit`, `3.56 bit`, `palette 4 bit`, `stored`.
pub fn width_label(w: Width) -> String {
    match w {
        Width::Stored => "stored".into(),
        Width::Bits(b) => format!("{b} bit"),
        Width::Palette(n) => format!("palette {n} bit"),
    }
}

/// The estimate with no option set: totals and every op's latency.
#[derive(Clone, Debug)]
pub struct Baseline {
    pub sums: Sums,
    pub latency_s: Vec<f64>,
    key: Key,
}

/// What identifies the estimator a baseline was taken from.
#[derive(Clone, Debug, PartialEq)]
struct Key {
    device: String,
    unit: String,
    ops: usize,
    macs: u64,
    first: String,
    last: String,
}

impl Key {
    fn of(est: &Estimator) -> Key {
        let ops = &est.work.ops;
        Key {
            device: est.device.clone(),
            unit: est.unit.clone(),
            ops: ops.len(),
            macs: ops.iter().map(|w| w.macs).fold(0u64, u64::wrapping_add),
            first: ops.first().map(|w| w.name.clone()).unwrap_or_default(),
            last: ops.last().map(|w| w.name.clone()).unwrap_or_default(),
        }
    }
}

impl Baseline {
    /// The estimate of `est` without options; `est` is left as it was (its options are
    /// cleared, read and restored: two full re-pricings).
    pub fn take(est: &mut Estimator) -> Baseline {
        let key = Key::of(est);
        let global = est.what_if();
        let n = est.work.ops.len();
        let overrides: Vec<(usize, OpOptions)> = (0..n)
            .filter_map(|i| est.op_options(i).map(|o| (i, o)))
            .collect();
        for &(i, _) in &overrides {
            est.set_op_options(i, None);
        }
        est.set_what_if(WhatIf::default());
        let sums = est.sums();
        let latency_s = est.costs().iter().map(|c| c.latency_s).collect();
        est.set_what_if(global);
        for (i, o) in overrides {
            est.set_op_options(i, Some(o));
        }
        Baseline {
            sums,
            latency_s,
            key,
        }
    }

    fn fits(&self, est: &Estimator) -> bool {
        self.key == Key::of(est)
    }
}

/// One line of the totals table.
#[derive(Clone, Debug, PartialEq)]
pub struct TotalLine {
    pub label: &'static str,
    pub before: f64,
    pub after: f64,
    /// `(after - before) / before` in percent; `None` when `before` is 0.
    pub delta_pct: Option<f64>,
    pub text_before: String,
    pub text_after: String,
}

fn pct(before: f64, after: f64) -> Option<f64> {
    (before != 0.0).then(|| (after - before) / before * 100.0)
}

fn power(s: &Sums) -> f64 {
    if s.latency_s > 0.0 {
        s.energy_j / s.latency_s
    } else {
        0.0
    }
}

/// The totals the panel shows: latency, energy, average power, weight memory, DRAM traffic,
/// MACs (after sparsity).
pub fn total_lines(before: &Sums, after: &Sums) -> Vec<TotalLine> {
    let line = |label, b: f64, a: f64, f: &dyn Fn(f64) -> String| TotalLine {
        label,
        before: b,
        after: a,
        delta_pct: pct(b, a),
        text_before: f(b),
        text_after: f(a),
    };
    let by = |v: f64| bytes(v.max(0.0).round() as u64);
    let watts = |v: f64| format!("{v:.2} W");
    let macs = |v: f64| petasos_compiler::inspect::si(v.max(0.0).round() as u64);
    vec![
        line("latency", before.latency_s, after.latency_s, &seconds),
        line("energy", before.energy_j, after.energy_j, &joules),
        line("average power", power(before), power(after), &watts),
        line(
            "weight memory",
            before.weight_bytes,
            after.weight_bytes,
            &by,
        ),
        line("DRAM traffic", before.dram_bytes, after.dram_bytes, &by),
        line("MACs", before.macs, after.macs, &macs),
    ]
}

/// One op's latency change.
#[derive(Clone, Debug, PartialEq)]
pub struct OpDelta {
    pub op: usize,
    pub before_s: f64,
    pub after_s: f64,
}

/// The `k` ops whose latency changed most (by absolute change, largest first; unchanged ops
/// are left out).
pub fn top_latency_deltas(base: &Baseline, est: &Estimator, k: usize) -> Vec<OpDelta> {
    let mut v: Vec<OpDelta> = est
        .costs()
        .iter()
        .zip(&base.latency_s)
        .enumerate()
        .filter(|(_, (c, b))| c.latency_s != **b)
        .map(|(op, (c, &b))| OpDelta {
            op,
            before_s: b,
            after_s: c.latency_s,
        })
        .collect();
    v.sort_by(|a, b| {
        (b.after_s - b.before_s)
            .abs()
            .total_cmp(&(a.after_s - a.before_s).abs())
            .then(a.op.cmp(&b.op))
    });
    v.truncate(k);
    v
}

/// The panel's state: the scope and the baseline. The options themselves live in the
/// estimator (whole-model and per-op), so the panel always shows what is priced.
#[derive(Default)]
pub struct WhatIfPanel {
    pub scope: Scope,
    baseline: Option<Baseline>,
}

impl WhatIfPanel {
    pub fn new() -> WhatIfPanel {
        WhatIfPanel::default()
    }

    /// Forgets the baseline (call after replacing the estimator by one of another model or
    /// device; a change of device, unit or work is also detected on its own).
    pub fn invalidate(&mut self) {
        self.baseline = None;
    }

    /// The baseline for `est`, taken now if missing or stale.
    pub fn baseline(&mut self, est: &mut Estimator) -> &Baseline {
        if self.baseline.as_ref().is_some_and(|b| !b.fits(est)) {
            self.baseline = None;
        }
        self.baseline.get_or_insert_with(|| Baseline::take(est))
    }

    /// Draws the panel and applies changes to `est` at once. `selected` are estimator op
    /// indices (out-of-range ones are ignored). Returns whether any option changed.
    pub fn show(&mut self, ui: &mut egui::Ui, est: &mut Estimator, selected: &[usize]) -> bool {
        let n = est.work.ops.len();
        let selected: Vec<usize> = selected.iter().copied().filter(|&i| i < n).collect();
        self.baseline(est);
        let mut changed = false;

        ui.horizontal(|ui| {
            ui.label("Apply to:");
            ui.selectable_value(&mut self.scope, Scope::Model, "whole model");
            let sel = format!("selected ops ({})", selected.len());
            ui.add_enabled_ui(!selected.is_empty(), |ui| {
                ui.selectable_value(&mut self.scope, Scope::Selected, sel);
            });
        });
        if self.scope == Scope::Selected && selected.is_empty() {
            self.scope = Scope::Model;
        }

        // The options being edited: the model's, or the first selected op's own.
        let mut w = est.what_if();
        let mut o = match self.scope {
            Scope::Model => w.ops,
            Scope::Selected => selected
                .first()
                .and_then(|&i| est.op_options(i))
                .unwrap_or_default(),
        };
        let before = o;
        let per_op = self.scope == Scope::Selected;
        let none_label = if per_op { "as model" } else { "stored" };

        egui::Grid::new("whatif_controls")
            .num_columns(2)
            .show(ui, |ui| {
                ui.label("Weights");
                width_combo(ui, "Weight bits", &mut o.weight_bits, none_label, per_op);
                ui.end_row();
                ui.label("Embeddings");
                width_combo(
                    ui,
                    "Embedding bits",
                    &mut o.embedding_bits,
                    "as weights",
                    true,
                );
                ui.end_row();
                ui.label("Activations");
                bits_combo(
                    ui,
                    "Activation bits",
                    &mut o.activation_bits,
                    none_label,
                    &ACTIVATION_BITS,
                );
                ui.end_row();
                ui.label("Channels");
                let mut s = o.sparsity.unwrap_or(0.0);
                let r = ui.add(
                    egui::Slider::new(&mut s, 0.0..=0.95)
                        .text("Channel sparsity")
                        .fixed_decimals(2),
                );
                if r.changed() {
                    o.sparsity = (s > 0.0).then_some(s.clamp(0.0, 0.95));
                }
                ui.end_row();
                ui.label("KV cache");
                ui.add_enabled_ui(!per_op, |ui| {
                    let mut kv = w.kv_bits;
                    bits_combo(ui, "KV-cache bits", &mut kv, "stored", &KV_BITS);
                    let mut sharing = w.kv_sharing;
                    egui::ComboBox::from_label("KV sharing")
                        .selected_text(match sharing {
                            None => "as built",
                            Some(true) => "on",
                            Some(false) => "off",
                        })
                        .show_ui(ui, |ui| {
                            ui.selectable_value(&mut sharing, None, "as built");
                            ui.selectable_value(&mut sharing, Some(true), "on");
                            ui.selectable_value(&mut sharing, Some(false), "off");
                        });
                    if kv != w.kv_bits || sharing != w.kv_sharing {
                        w.kv_bits = kv;
                        w.kv_sharing = sharing;
                        est.set_what_if(w);
                        changed = true;
                    }
                });
                ui.end_row();
            });

        if o != before {
            changed = true;
            match self.scope {
                Scope::Model => {
                    let mut w = est.what_if();
                    w.ops = o;
                    est.set_what_if(w);
                }
                Scope::Selected => {
                    let set = (o != OpOptions::default()).then_some(o);
                    for &i in &selected {
                        est.set_op_options(i, set);
                    }
                }
            }
        }

        ui.horizontal(|ui| {
            let reset_label = match self.scope {
                Scope::Model => "Reset model options",
                Scope::Selected => "Reset selected ops",
            };
            if ui.button(reset_label).clicked() {
                match self.scope {
                    Scope::Model => est.set_what_if(WhatIf::default()),
                    Scope::Selected => {
                        for &i in &selected {
                            est.set_op_options(i, None);
                        }
                    }
                }
                changed = true;
            }
            if ui.button("Reset all").clicked() {
                for i in 0..n {
                    if est.op_options(i).is_some() {
                        est.set_op_options(i, None);
                    }
                }
                est.set_what_if(WhatIf::default());
                changed = true;
            }
            let per_op_count = (0..n).filter(|&i| est.op_options(i).is_some()).count();
            if per_op_count > 0 {
                ui.weak(format!("{per_op_count} ops have their own options"));
            }
        });

        ui.separator();
        let base = self.baseline(est).clone();
        let after = est.sums();
        egui::Grid::new("whatif_totals")
            .num_columns(4)
            .striped(true)
            .show(ui, |ui| {
                ui.strong("total");
                ui.strong("before");
                ui.strong("after");
                ui.strong("change");
                ui.end_row();
                for l in total_lines(&base.sums, &after) {
                    ui.label(l.label);
                    ui.label(&l.text_before);
                    ui.label(&l.text_after);
                    ui.label(delta_text(l.delta_pct));
                    ui.end_row();
                }
            });

        ui.separator();
        ui.strong("Largest per-op latency changes");
        let top = top_latency_deltas(&base, est, 10);
        if top.is_empty() {
            ui.weak("no op's latency changed");
        } else {
            egui::Grid::new("whatif_top")
                .num_columns(4)
                .striped(true)
                .show(ui, |ui| {
                    ui.strong("op");
                    ui.strong("before");
                    ui.strong("after");
                    ui.strong("change");
                    ui.end_row();
                    for d in top {
                        let name = est
                            .work
                            .ops
                            .get(d.op)
                            .map(|w| w.name.as_str())
                            .unwrap_or("?");
                        ui.label(name);
                        ui.label(seconds(d.before_s));
                        ui.label(seconds(d.after_s));
                        ui.label(delta_text(pct(d.before_s, d.after_s)));
                        ui.end_row();
                    }
                });
        }
        changed
    }
}

/// `-75.0%`, `+3.2%`, `0%` or `n/a`.
pub fn delta_text(p: Option<f64>) -> String {
    match p {
        None => "n/a".into(),
        Some(0.0) => "0%".into(),
        Some(p) => format!("{p:+.1}%"),
    }
}

fn width_combo(
    ui: &mut egui::Ui,
    label: &str,
    v: &mut Option<Width>,
    none_label: &str,
    offer_stored: bool,
) {
    let text = match v {
        None => none_label.to_string(),
        Some(w) => width_label(*w),
    };
    egui::ComboBox::from_label(label)
        .selected_text(text)
        .show_ui(ui, |ui| {
            ui.selectable_value(v, None, none_label);
            if offer_stored {
                ui.selectable_value(v, Some(Width::Stored), "stored");
            }
            for w in WEIGHT_WIDTHS {
                ui.selectable_value(v, Some(w), width_label(w));
            }
        });
}

fn bits_combo(ui: &mut egui::Ui, label: &str, v: &mut Option<f64>, none_label: &str, bits: &[f64]) {
    let text = match v {
        None => none_label.to_string(),
        Some(b) => format!("{b} bit"),
    };
    egui::ComboBox::from_label(label)
        .selected_text(text)
        .show_ui(ui, |ui| {
            ui.selectable_value(v, None, none_label);
            for &b in bits {
                ui.selectable_value(v, Some(b), format!("{b} bit"));
            }
        });
}
