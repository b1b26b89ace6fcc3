//! The bottom tabs of the app: plots (latency by op type, memory over execution order, MACs
//! vs latency), the what-if panel, and the comparison with a second model. Each widget works
//! on estimator rows; clicks are mapped back to op indices for the linked selection.

use crate::app::Session;
use crate::compare::Comparison;
use crate::plots::{self, MemoryTimeline};
use crate::whatif::WhatIfPanel;

/// Which tab is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tab {
    /// Only the tab bar (the default for very large models, whose plots cost frame time).
    Hidden,
    Plots,
    WhatIf,
    Compare,
}

/// Models with more ops than this open with the tabs hidden (plots redraw every point each
/// frame).
pub const PLOTS_AUTO_MAX_OPS: usize = 5000;

/// State of the tabs (caches keyed by document id and estimator generation).
pub struct Tabs {
    pub tab: Tab,
    pub whatif: WhatIfPanel,
    comparison: Option<((u64, u64), Comparison)>,
    timeline: Option<(u64, Result<MemoryTimeline, String>)>,
}

impl Default for Tabs {
    fn default() -> Self {
        Tabs {
            tab: Tab::Plots,
            whatif: WhatIfPanel::new(),
            comparison: None,
            timeline: None,
        }
    }
}

impl Tabs {
    /// Forgets what was computed for the previous model (call when a document is replaced);
    /// hides the plots of a model with more than [`PLOTS_AUTO_MAX_OPS`] ops.
    pub fn reset_for(&mut self, ops: usize) {
        self.invalidate();
        if ops > PLOTS_AUTO_MAX_OPS && self.tab == Tab::Plots {
            self.tab = Tab::Hidden;
        }
    }

    /// Forgets the cached comparison, memory timeline and what-if baseline.
    pub fn invalidate(&mut self) {
        self.whatif.invalidate();
        self.comparison = None;
        self.timeline = None;
    }

    /// Draws the tab bar and the current tab. Returns an op the user picked (to select).
    /// Sets `s.est_gen` forward when a what-if option changed.
    pub fn show(&mut self, ui: &mut egui::Ui, s: &mut Session) -> Option<usize> {
        ui.horizontal(|ui| {
            ui.selectable_value(&mut self.tab, Tab::Hidden, "Hide");
            ui.selectable_value(&mut self.tab, Tab::Plots, "Plots");
            ui.selectable_value(&mut self.tab, Tab::WhatIf, "What-if");
            ui.selectable_value(&mut self.tab, Tab::Compare, "Compare");
        });
        ui.separator();
        let Some(doc) = s.doc.as_mut() else {
            ui.weak("Open a model first.");
            return None;
        };
        let selected_rows: Vec<usize> =
            s.selection.and_then(|op| doc.row(op)).into_iter().collect();
        let mut picked_row = None;
        match self.tab {
            Tab::Hidden => {}
            Tab::Plots => {
                let stale = self.timeline.as_ref().is_none_or(|(id, _)| *id != s.doc_id);
                if stale {
                    let tl =
                        MemoryTimeline::plan(&doc.graph, &doc.estimator).map_err(|e| e.to_string());
                    self.timeline = Some((s.doc_id, tl));
                }
                ui.columns(3, |cols| {
                    if let Some(c) = cols.get_mut(0) {
                        plots::show_latency_by_type(c, &doc.estimator);
                    }
                    if let Some(c) = cols.get_mut(1) {
                        match self.timeline.as_ref().map(|(_, t)| t) {
                            Some(Ok(tl)) => {
                                if let Some(r) = plots::show_memory_over_time(c, tl, &selected_rows)
                                {
                                    picked_row = Some(r);
                                }
                            }
                            Some(Err(e)) => {
                                c.weak(format!("memory plan unavailable: {e}"));
                            }
                            None => {}
                        }
                    }
                    if let Some(c) = cols.get_mut(2) {
                        let out = plots::show_macs_vs_latency(c, &doc.estimator, &selected_rows);
                        if out.clicked.is_some() {
                            picked_row = out.clicked;
                        }
                    }
                });
            }
            Tab::WhatIf => {
                egui::ScrollArea::vertical()
                    .id_salt("whatif-scroll")
                    .show(ui, |ui| {
                        if self.whatif.show(ui, &mut doc.estimator, &selected_rows) {
                            s.est_gen = s.est_gen.wrapping_add(1);
                        }
                    });
            }
            Tab::Compare => {
                match &s.compare {
                    None => {
                        ui.weak("No second model: start with --compare MODEL2, or File > Compare with….");
                    }
                    Some(b) => {
                        let key = (s.doc_id, s.est_gen);
                        if self.comparison.as_ref().is_none_or(|(k, _)| *k != key) {
                            let c = Comparison::new(&doc.estimator, &b.estimator)
                                .with_names(&doc.title, &b.title);
                            self.comparison = Some((key, c));
                        }
                        if let Some((_, c)) = &mut self.comparison {
                            egui::ScrollArea::vertical()
                                .id_salt("compare-scroll")
                                .show(ui, |ui| {
                                    if let Some(r) = c.show(ui).and_then(|r| c.rows.get(r)) {
                                        picked_row = r.a;
                                    }
                                });
                        }
                    }
                }
            }
        }
        picked_row.and_then(|r| doc.op_of(r))
    }
}
