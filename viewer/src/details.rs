//! The details panel: the selected op's name, type, provenance, attributes, inputs and outputs
//! with dtypes and shapes, its estimate, and statistics of its weights with a histogram.

use crate::doc::{Document, Port, WeightStats};
use crate::table::{text, Col};
use egui::{Color32, RichText, Sense};

/// Draws the details of op `op` of `doc` (a hint when nothing is selected).
pub fn show(ui: &mut egui::Ui, doc: &Document, op: Option<usize>) {
    let Some(o) = op.and_then(|i| doc.ops.get(i).map(|o| (i, o))) else {
        ui.weak("Select an op in the table or the graph.");
        return;
    };
    let (i, o) = o;
    egui::ScrollArea::vertical()
        .id_salt("details-scroll")
        .show(ui, |ui| {
            ui.heading(&o.name);
            egui::Grid::new("details-head")
                .num_columns(2)
                .show(ui, |ui| {
                    ui.label("type");
                    ui.label(&o.op_type);
                    ui.end_row();
                    ui.label("layer");
                    value(ui, if o.layer.is_empty() { "-" } else { &o.layer });
                    ui.end_row();
                    if !o.source.is_empty() {
                        ui.label("source");
                        value(ui, &o.source);
                        ui.end_row();
                    }
                });
            egui::CollapsingHeader::new("Attributes")
                .default_open(true)
                .show(ui, |ui| {
                    if o.attributes.is_empty() {
                        ui.weak("(defaults)");
                    }
                    egui::Grid::new("details-attrs")
                        .num_columns(2)
                        .show(ui, |ui| {
                            for (k, v) in &o.attributes {
                                ui.label(k);
                                value(ui, v);
                                ui.end_row();
                            }
                        });
                });
            egui::CollapsingHeader::new("Inputs and outputs")
                .default_open(true)
                .show(ui, |ui| {
                    ports(ui, "details-ins", "in", &o.inputs);
                    ports(ui, "details-outs", "out", &o.outputs);
                });
            egui::CollapsingHeader::new("Estimate")
                .default_open(true)
                .show(ui, |ui| {
                    if doc.row(i).is_none() {
                        ui.weak("no estimate for this op");
                        return;
                    }
                    egui::Grid::new("details-est")
                        .num_columns(2)
                        .show(ui, |ui| {
                            for col in Col::ALL.into_iter().skip(3) {
                                ui.label(col.title());
                                ui.label(text(doc, i, col));
                                ui.end_row();
                            }
                        });
                });
            egui::CollapsingHeader::new(format!("Weights ({})", o.weights.len()))
                .default_open(true)
                .show(ui, |ui| {
                    if o.weights.is_empty() {
                        ui.weak("no constant inputs");
                    }
                    for w in &o.weights {
                        weight(ui, w);
                    }
                });
        });
}

/// A value cell: one line, cut with an ellipsis to the panel width (full text on hover).
fn value(ui: &mut egui::Ui, text: &str) {
    ui.add(egui::Label::new(text).truncate());
}

fn ports(ui: &mut egui::Ui, id: &str, dir: &str, ports: &[Port]) {
    egui::Grid::new(id)
        .num_columns(2)
        .striped(true)
        .show(ui, |ui| {
            for (k, p) in ports.iter().enumerate() {
                ui.label(format!("{dir} {k}"));
                if p.name.is_empty() && p.dtype.is_empty() {
                    ui.weak("(omitted)");
                } else {
                    ui.vertical(|ui| {
                        let name = if p.constant {
                            format!("{} (weight)", p.name)
                        } else {
                            p.name.clone()
                        };
                        value(ui, &name);
                        let ty = RichText::new(format!("{}{}", p.dtype, p.shape)).monospace();
                        ui.add(egui::Label::new(ty).truncate());
                    });
                }
                ui.end_row();
            }
        });
}

fn weight(ui: &mut egui::Ui, w: &WeightStats) {
    let dims: Vec<String> = w.shape.iter().map(|d| d.to_string()).collect();
    let head = format!("in {}: {} {}[{}]", w.slot, w.name, w.dtype, dims.join(","));
    ui.add(egui::Label::new(RichText::new(head).strong()).truncate());
    ui.label(format!("min {:.4}  max {:.4}", w.min, w.max));
    ui.label(format!("mean {:.4}  std {:.4}", w.mean, w.std));
    ui.label(format!("zeros {:.2}%", w.zero_fraction * 100.0));
    if w.sampled() {
        ui.weak(format!("sampled: {} of {} values", w.counted, w.numel));
    }
    histogram(ui, &w.hist, w.min, w.max);
    ui.add_space(6.0);
}

/// Bars of `hist` (bins spanning `[min, max]`) drawn with the painter; hover shows a bin.
fn histogram(ui: &mut egui::Ui, hist: &[u64], min: f64, max: f64) {
    let width = ui.available_width().clamp(120.0, 360.0);
    let (rect, resp) = ui.allocate_exact_size(egui::vec2(width, 70.0), Sense::hover());
    let p = ui.painter_at(rect);
    p.rect_filled(rect, 2.0, ui.visuals().extreme_bg_color);
    let top = hist.iter().copied().max().unwrap_or(0).max(1) as f32;
    let n = hist.len().max(1) as f32;
    let bw = rect.width() / n;
    for (k, &c) in hist.iter().enumerate() {
        let h = (c as f32 / top) * (rect.height() - 4.0);
        let x = rect.left() + k as f32 * bw;
        let r = egui::Rect::from_min_max(
            egui::pos2(x + 0.5, rect.bottom() - h),
            egui::pos2(x + bw - 0.5, rect.bottom()),
        );
        p.rect_filled(r, 0.0, Color32::from_rgb(90, 150, 230));
    }
    if let Some(pos) = resp.hover_pos() {
        let k = (((pos.x - rect.left()) / bw) as usize).min(hist.len().saturating_sub(1));
        let span = (max - min) / n as f64;
        let lo = min + span * k as f64;
        let c = hist.get(k).copied().unwrap_or(0);
        resp.on_hover_text(format!("[{lo:.4}, {:.4}): {c}", lo + span));
    }
}
