//! Comparing two priced models (e.g. resnet18 and a pruned copy from `petasos prune`): ops are
//! matched by node name first, then the rest by (layer path, op type) in execution order; totals
//! side by side with deltas, a per-op table (matched / only in A / only in B) sortable by
//! delta, and a one-line summary ("B is 23.4% faster, 41.0% fewer MACs, 2 ops removed").

use petasos_compiler::cost::report::{bytes, joules, seconds};
use petasos_compiler::cost::whatif::Sums;
use petasos_compiler::cost::Estimator;
use std::collections::{HashMap, VecDeque};

/// How a row was matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchKind {
    /// Same node name in both.
    ByName,
    /// Same layer path and op type, paired in execution order.
    ByLayer,
    OnlyA,
    OnlyB,
}

impl MatchKind {
    pub fn label(self) -> &'static str {
        match self {
            MatchKind::ByName => "matched (name)",
            MatchKind::ByLayer => "matched (layer)",
            MatchKind::OnlyA => "only in A",
            MatchKind::OnlyB => "only in B",
        }
    }
    /// Whether the row exists in both models.
    pub fn matched(self) -> bool {
        matches!(self, MatchKind::ByName | MatchKind::ByLayer)
    }
}

/// One op's figures in one model.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Side {
    pub latency_s: f64,
    pub energy_j: f64,
    pub macs: f64,
    pub weight_bytes: f64,
    pub dram_bytes: f64,
}

/// One row of the per-op table.
#[derive(Clone, Debug, PartialEq)]
pub struct OpPair {
    pub kind: MatchKind,
    /// Op indices in A and B.
    pub a: Option<usize>,
    pub b: Option<usize>,
    pub name: String,
    pub op_type: String,
    pub layer: String,
    /// Zero for the missing side.
    pub fig_a: Side,
    pub fig_b: Side,
}

impl OpPair {
    /// B's latency minus A's (a removed op counts as its whole latency removed).
    pub fn latency_delta(&self) -> f64 {
        self.fig_b.latency_s - self.fig_a.latency_s
    }
    pub fn macs_delta(&self) -> f64 {
        self.fig_b.macs - self.fig_a.macs
    }
}

/// The totals of one model.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Totals {
    pub sums: Sums,
    pub ops: usize,
}

/// Row order of the per-op table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SortBy {
    /// Most negative latency delta first (largest savings).
    #[default]
    LatencyDelta,
    /// Largest absolute latency change first.
    AbsLatencyDelta,
    MacsDelta,
    /// Execution order of A, then B's extra ops.
    Order,
    Name,
}

/// Which rows the table shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Filter {
    #[default]
    All,
    Matched,
    OnlyA,
    OnlyB,
    Changed,
}

/// A comparison of model A and model B.
pub struct Comparison {
    pub name_a: String,
    pub name_b: String,
    pub a: Totals,
    pub b: Totals,
    /// Rows in A's execution order, then B's unmatched ops in B's order.
    pub rows: Vec<OpPair>,
    pub sort: SortBy,
    pub filter: Filter,
    order: Vec<usize>,
    order_key: Option<(SortBy, Filter)>,
}

fn side(e: &Estimator, i: usize) -> Side {
    let c = e.cost(i);
    Side {
        latency_s: c.latency_s,
        energy_j: c.energy_j,
        macs: c.macs,
        weight_bytes: c.owned_weight_bytes,
        dram_bytes: c.dram_bytes,
    }
}

/// Pairs the ops of `a` and `b`: `(a index, b index, kind)`, every op of each side exactly
/// once. Names are matched first (duplicates paired in order), then the remaining ops by
/// (layer, op type) in order.
pub fn match_ops(a: &Estimator, b: &Estimator) -> Vec<(Option<usize>, Option<usize>, MatchKind)> {
    let (wa, wb) = (&a.work.ops, &b.work.ops);
    let mut b_of_a: Vec<Option<(usize, MatchKind)>> = vec![None; wa.len()];
    let mut taken_b = vec![false; wb.len()];
    let mut by_name: HashMap<&str, VecDeque<usize>> = HashMap::new();
    for (j, w) in wb.iter().enumerate() {
        if !w.name.is_empty() {
            by_name.entry(w.name.as_str()).or_default().push_back(j);
        }
    }
    for (i, w) in wa.iter().enumerate() {
        if let Some(j) = by_name.get_mut(w.name.as_str()).and_then(|q| q.pop_front()) {
            b_of_a[i] = Some((j, MatchKind::ByName));
            taken_b[j] = true;
        }
    }
    let mut by_layer: HashMap<(&str, &str), VecDeque<usize>> = HashMap::new();
    for (j, w) in wb.iter().enumerate() {
        if !taken_b[j] {
            by_layer
                .entry((w.layer.as_str(), w.op_type.as_str()))
                .or_default()
                .push_back(j);
        }
    }
    for (i, w) in wa.iter().enumerate() {
        if b_of_a[i].is_none() {
            if let Some(j) = by_layer
                .get_mut(&(w.layer.as_str(), w.op_type.as_str()))
                .and_then(|q| q.pop_front())
            {
                b_of_a[i] = Some((j, MatchKind::ByLayer));
                taken_b[j] = true;
            }
        }
    }
    let mut out: Vec<(Option<usize>, Option<usize>, MatchKind)> = b_of_a
        .iter()
        .enumerate()
        .map(|(i, m)| match m {
            Some((j, k)) => (Some(i), Some(*j), *k),
            None => (Some(i), None, MatchKind::OnlyA),
        })
        .collect();
    out.extend(
        taken_b
            .iter()
            .enumerate()
            .filter(|(_, t)| !**t)
            .map(|(j, _)| (None, Some(j), MatchKind::OnlyB)),
    );
    out
}

fn pct(a: f64, b: f64) -> Option<f64> {
    (a != 0.0).then(|| (b - a) / a * 100.0)
}

impl Comparison {
    /// Compares `a` and `b` as priced now (named "A" and "B"; see [`Comparison::with_names`]).
    pub fn new(a: &Estimator, b: &Estimator) -> Comparison {
        let rows = match_ops(a, b)
            .into_iter()
            .map(|(ia, ib, kind)| {
                let (src, i) = match (ia, ib) {
                    (Some(i), _) => (a, i),
                    (None, Some(j)) => (b, j),
                    // match_ops never yields a pair without a side.
                    (None, None) => (a, usize::MAX),
                };
                let w = src.work.ops.get(i);
                OpPair {
                    kind,
                    a: ia,
                    b: ib,
                    name: w.map(|w| w.name.clone()).unwrap_or_default(),
                    op_type: w.map(|w| w.op_type.clone()).unwrap_or_default(),
                    layer: w.map(|w| w.layer.clone()).unwrap_or_default(),
                    fig_a: ia.map(|i| side(a, i)).unwrap_or_default(),
                    fig_b: ib.map(|j| side(b, j)).unwrap_or_default(),
                }
            })
            .collect();
        Comparison {
            name_a: "A".into(),
            name_b: "B".into(),
            a: Totals {
                sums: a.sums(),
                ops: a.work.ops.len(),
            },
            b: Totals {
                sums: b.sums(),
                ops: b.work.ops.len(),
            },
            rows,
            sort: SortBy::default(),
            filter: Filter::default(),
            order: Vec::new(),
            order_key: None,
        }
    }

    /// Names the two sides in the table and summary.
    pub fn with_names(mut self, a: &str, b: &str) -> Comparison {
        self.name_a = a.to_string();
        self.name_b = b.to_string();
        self
    }

    /// Rows only in A (removed in B) and only in B (added).
    pub fn removed_added(&self) -> (usize, usize) {
        let c = |k| self.rows.iter().filter(|r| r.kind == k).count();
        (c(MatchKind::OnlyA), c(MatchKind::OnlyB))
    }

    /// One line: "B is 23.4% faster, 41.0% fewer MACs, 2 ops removed, 6 added".
    pub fn summary(&self) -> String {
        let (sa, sb) = (&self.a.sums, &self.b.sums);
        let mut parts = Vec::new();
        match pct(sa.latency_s, sb.latency_s) {
            Some(p) if p < 0.0 => parts.push(format!("{:.1}% faster", -p)),
            Some(p) if p > 0.0 => parts.push(format!("{p:.1}% slower")),
            Some(_) => parts.push("the same latency".into()),
            None => parts.push("latency n/a".into()),
        }
        match pct(sa.macs, sb.macs) {
            Some(p) if p < 0.0 => parts.push(format!("{:.1}% fewer MACs", -p)),
            Some(p) if p > 0.0 => parts.push(format!("{p:.1}% more MACs")),
            _ => parts.push("the same MACs".into()),
        }
        let (removed, added) = self.removed_added();
        let mut ops = Vec::new();
        if removed > 0 {
            ops.push(format!("{removed} ops removed"));
        }
        if added > 0 {
            ops.push(format!("{added} ops added"));
        }
        if ops.is_empty() {
            ops.push("every op matched".into());
        }
        parts.extend(ops);
        format!("{} is {}", self.name_b, parts.join(", "))
    }

    /// The (label, A, B, delta text, percent) lines of the totals table.
    pub fn total_lines(&self) -> Vec<(&'static str, String, String, String, Option<f64>)> {
        let (sa, sb) = (&self.a.sums, &self.b.sums);
        let by = |v: f64| bytes(v.max(0.0).round() as u64);
        let signed = |d: f64, f: &dyn Fn(f64) -> String| {
            if d < 0.0 {
                format!("-{}", f(-d))
            } else if d > 0.0 {
                format!("+{}", f(d))
            } else {
                "0".into()
            }
        };
        let macs = |v: f64| petasos_compiler::inspect::si(v.max(0.0).round() as u64);
        let line = |label, a: f64, b: f64, f: &dyn Fn(f64) -> String| {
            (label, f(a), f(b), signed(b - a, f), pct(a, b))
        };
        let count = |v: f64| format!("{v}");
        vec![
            line("latency", sa.latency_s, sb.latency_s, &seconds),
            line("energy", sa.energy_j, sb.energy_j, &joules),
            line("MACs", sa.macs, sb.macs, &macs),
            line("weight memory", sa.weight_bytes, sb.weight_bytes, &by),
            line("DRAM traffic", sa.dram_bytes, sb.dram_bytes, &by),
            line("ops", self.a.ops as f64, self.b.ops as f64, &count),
        ]
    }

    /// Row indices (into [`Comparison::rows`]) in the current sort and filter.
    pub fn order(&mut self) -> &[usize] {
        if self.order_key != Some((self.sort, self.filter)) {
            self.order = self.sorted(self.sort, self.filter);
            self.order_key = Some((self.sort, self.filter));
        }
        &self.order
    }

    /// Row indices in order `sort`, keeping the rows `filter` admits.
    pub fn sorted(&self, sort: SortBy, filter: Filter) -> Vec<usize> {
        let keep = |r: &OpPair| match filter {
            Filter::All => true,
            Filter::Matched => r.kind.matched(),
            Filter::OnlyA => r.kind == MatchKind::OnlyA,
            Filter::OnlyB => r.kind == MatchKind::OnlyB,
            Filter::Changed => r.fig_a != r.fig_b,
        };
        let mut v: Vec<usize> = (0..self.rows.len())
            .filter(|&i| self.rows.get(i).is_some_and(keep))
            .collect();
        let rows = &self.rows;
        let row = |i: usize| rows.get(i);
        let key = |i: usize, f: &dyn Fn(&OpPair) -> f64| row(i).map(f).unwrap_or(0.0);
        match sort {
            SortBy::Order => {}
            SortBy::LatencyDelta => v.sort_by(|&x, &y| {
                key(x, &OpPair::latency_delta).total_cmp(&key(y, &OpPair::latency_delta))
            }),
            SortBy::AbsLatencyDelta => v.sort_by(|&x, &y| {
                key(y, &|r| r.latency_delta().abs())
                    .total_cmp(&key(x, &|r| r.latency_delta().abs()))
            }),
            SortBy::MacsDelta => v.sort_by(|&x, &y| {
                key(x, &OpPair::macs_delta).total_cmp(&key(y, &OpPair::macs_delta))
            }),
            SortBy::Name => v.sort_by(|&x, &y| {
                let n = |i| row(i).map(|r| r.name.as_str()).unwrap_or("");
                n(x).cmp(n(y))
            }),
        }
        v
    }

    /// Draws the summary, the totals and the per-op table. Returns the row clicked, if any.
    pub fn show(&mut self, ui: &mut egui::Ui) -> Option<usize> {
        ui.strong(self.summary());
        egui::Grid::new("compare_totals")
            .num_columns(5)
            .striped(true)
            .show(ui, |ui| {
                ui.strong("total");
                ui.strong(&self.name_a);
                ui.strong(&self.name_b);
                ui.strong("delta");
                ui.strong("%");
                ui.end_row();
                for (label, a, b, d, p) in self.total_lines() {
                    ui.label(label);
                    ui.label(a);
                    ui.label(b);
                    ui.label(d);
                    ui.label(crate::whatif::delta_text(p));
                    ui.end_row();
                }
            });
        ui.separator();
        ui.horizontal(|ui| {
            egui::ComboBox::from_label("Show")
                .selected_text(match self.filter {
                    Filter::All => "all ops",
                    Filter::Matched => "matched",
                    Filter::OnlyA => "only in A",
                    Filter::OnlyB => "only in B",
                    Filter::Changed => "changed",
                })
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut self.filter, Filter::All, "all ops");
                    ui.selectable_value(&mut self.filter, Filter::Matched, "matched");
                    ui.selectable_value(&mut self.filter, Filter::OnlyA, "only in A");
                    ui.selectable_value(&mut self.filter, Filter::OnlyB, "only in B");
                    ui.selectable_value(&mut self.filter, Filter::Changed, "changed");
                });
            egui::ComboBox::from_label("Sort by")
                .selected_text(match self.sort {
                    SortBy::LatencyDelta => "latency delta",
                    SortBy::AbsLatencyDelta => "|latency delta|",
                    SortBy::MacsDelta => "MACs delta",
                    SortBy::Order => "execution order",
                    SortBy::Name => "name",
                })
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut self.sort, SortBy::LatencyDelta, "latency delta");
                    ui.selectable_value(&mut self.sort, SortBy::AbsLatencyDelta, "|latency delta|");
                    ui.selectable_value(&mut self.sort, SortBy::MacsDelta, "MACs delta");
                    ui.selectable_value(&mut self.sort, SortBy::Order, "execution order");
                    ui.selectable_value(&mut self.sort, SortBy::Name, "name");
                });
        });
        let order = self.order().to_vec();
        let rows = &self.rows;
        let mut clicked = None;
        let text_h = egui::TextStyle::Body.resolve(ui.style()).size + 4.0;
        egui_extras::TableBuilder::new(ui)
            .id_salt("compare_ops")
            .striped(true)
            .resizable(true)
            .column(egui_extras::Column::auto().at_least(160.0).clip(true))
            .column(egui_extras::Column::auto().at_least(80.0))
            .column(egui_extras::Column::auto().at_least(100.0))
            .columns(egui_extras::Column::auto().at_least(70.0), 5)
            .header(text_h, |mut h| {
                for t in [
                    "op",
                    "type",
                    "match",
                    "latency A",
                    "latency B",
                    "delta",
                    "%",
                    "MACs delta",
                ] {
                    h.col(|ui| {
                        ui.strong(t);
                    });
                }
            })
            .body(|body| {
                body.rows(text_h, order.len(), |mut row| {
                    let Some(&ri) = order.get(row.index()) else {
                        return;
                    };
                    let Some(r) = rows.get(ri) else {
                        return;
                    };
                    let d = r.latency_delta();
                    row.col(|ui| {
                        if ui.selectable_label(false, &r.name).clicked() {
                            clicked = Some(ri);
                        }
                    });
                    row.col(|ui| {
                        ui.label(&r.op_type);
                    });
                    row.col(|ui| {
                        ui.label(r.kind.label());
                    });
                    row.col(|ui| {
                        ui.label(if r.a.is_some() {
                            seconds(r.fig_a.latency_s)
                        } else {
                            "-".into()
                        });
                    });
                    row.col(|ui| {
                        ui.label(if r.b.is_some() {
                            seconds(r.fig_b.latency_s)
                        } else {
                            "-".into()
                        });
                    });
                    row.col(|ui| {
                        let t = if d < 0.0 {
                            format!("-{}", seconds(-d))
                        } else if d > 0.0 {
                            format!("+{}", seconds(d))
                        } else {
                            "0".into()
                        };
                        let colour = if d < 0.0 {
                            egui::Color32::from_rgb(40, 160, 70)
                        } else if d > 0.0 {
                            ui.visuals().error_fg_color
                        } else {
                            ui.visuals().text_color()
                        };
                        ui.colored_label(colour, t);
                    });
                    row.col(|ui| {
                        ui.label(match pct(r.fig_a.latency_s, r.fig_b.latency_s) {
                            Some(p) => format!("{p:+.1}%"),
                            None => "n/a".into(),
                        });
                    });
                    row.col(|ui| {
                        let m = r.macs_delta();
                        ui.label(if m == 0.0 {
                            "0".to_string()
                        } else {
                            let s = petasos_compiler::inspect::si(m.abs().round() as u64);
                            if m < 0.0 {
                                format!("-{s}")
                            } else {
                                format!("+{s}")
                            }
                        });
                    });
                });
            });
        clicked
    }
}
