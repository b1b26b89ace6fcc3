//! The op table: one row per op with the estimator's columns, sortable by any column, filtered
//! by op type and text, numeric columns with inline bars (fraction of the column's maximum),
//! virtualised rows so tens of thousands of ops stay fast.

use crate::doc::Document;
use egui::{Align, Color32, Layout, RichText, Sense};
use egui_extras::{Column, TableBuilder};
use petasos_compiler::cost::report::{joules, seconds};
use petasos_compiler::inspect::si;

/// A table column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Col {
    Name,
    OpType,
    Layer,
    Shape,
    Macs,
    Flops,
    WeightBytes,
    ActivationBytes,
    Latency,
    Energy,
    Power,
    Bound,
}

impl Col {
    /// Every column, in display order.
    pub const ALL: [Col; 12] = [
        Col::Name,
        Col::OpType,
        Col::Layer,
        Col::Shape,
        Col::Macs,
        Col::Flops,
        Col::WeightBytes,
        Col::ActivationBytes,
        Col::Latency,
        Col::Energy,
        Col::Power,
        Col::Bound,
    ];

    /// Header text.
    pub fn title(self) -> &'static str {
        match self {
            Col::Name => "name",
            Col::OpType => "op type",
            Col::Layer => "layer",
            Col::Shape => "shape",
            Col::Macs => "MACs",
            Col::Flops => "FLOPs",
            Col::WeightBytes => "weight bytes",
            Col::ActivationBytes => "activation bytes",
            Col::Latency => "latency",
            Col::Energy => "energy",
            Col::Power => "power",
            Col::Bound => "bound",
        }
    }

    /// Whether the column holds numbers (sorted largest first on the first click, with bars).
    pub fn numeric(self) -> bool {
        !matches!(
            self,
            Col::Name | Col::OpType | Col::Layer | Col::Shape | Col::Bound
        )
    }

    fn slot(self) -> usize {
        Col::ALL.iter().position(|c| *c == self).unwrap_or(0)
    }
}

/// The numeric value of `col` for op `op` (0 for text columns and ops without an estimate).
pub fn value(doc: &Document, op: usize, col: Col) -> f64 {
    let Some(row) = doc.row(op) else { return 0.0 };
    let Some(c) = doc.estimator.costs().get(row) else {
        return 0.0;
    };
    match col {
        Col::Macs => c.macs,
        Col::Flops => c.flops,
        Col::WeightBytes => c.weight_bytes,
        Col::ActivationBytes => c.activation_bytes,
        Col::Latency => c.latency_s,
        Col::Energy => c.energy_j,
        Col::Power => c.power_w,
        _ => 0.0,
    }
}

/// Bits per stored weight element that op `op` reads under the current options (what a
/// weight-bits what-if changes); NaN when it reads no weights or has no estimate.
pub fn weight_bits(doc: &Document, op: usize) -> f64 {
    let Some(row) = doc.row(op) else {
        return f64::NAN;
    };
    let (Some(w), Some(c)) = (
        doc.estimator.work.ops.get(row),
        doc.estimator.costs().get(row),
    ) else {
        return f64::NAN;
    };
    let r = &w.weights_read;
    let elems = r.matrix.elems + r.embedding.elems + r.fixed.elems;
    if elems == 0 {
        f64::NAN
    } else {
        c.weight_bytes * 8.0 / elems as f64
    }
}

/// What the graph colours its nodes by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColourBy {
    None,
    /// A numeric column's value.
    Column(Col),
    /// [`weight_bits`].
    WeightBits,
}

impl Default for ColourBy {
    fn default() -> Self {
        ColourBy::Column(Col::Latency)
    }
}

impl ColourBy {
    /// Every choice, in menu order.
    pub fn all() -> Vec<ColourBy> {
        let mut v = vec![ColourBy::None];
        v.extend(
            Col::ALL
                .into_iter()
                .filter(|c| c.numeric())
                .map(ColourBy::Column),
        );
        v.push(ColourBy::WeightBits);
        v
    }

    /// Menu text.
    pub fn title(self) -> &'static str {
        match self {
            ColourBy::None => "none",
            ColourBy::Column(c) => c.title(),
            ColourBy::WeightBits => "weight bits",
        }
    }

    /// The value per op (`None` for [`ColourBy::None`]).
    pub fn values(self, doc: &Document) -> Option<Vec<f64>> {
        let n = doc.ops.len();
        match self {
            ColourBy::None => None,
            ColourBy::Column(c) => Some((0..n).map(|i| value(doc, i, c)).collect()),
            ColourBy::WeightBits => Some((0..n).map(|i| weight_bits(doc, i)).collect()),
        }
    }

    /// How group boxes show a sum of it: (factor, label), e.g. latency in ms.
    pub fn sum_label(self) -> (f64, &'static str) {
        match self {
            ColourBy::Column(Col::Latency) => (1e3, "latency ms"),
            ColourBy::Column(Col::Energy) => (1e3, "energy mJ"),
            ColourBy::Column(Col::Power) => (1.0, "power W"),
            ColourBy::Column(Col::WeightBytes) => (1.0, "weight B"),
            ColourBy::Column(Col::ActivationBytes) => (1.0, "activation B"),
            c => (1.0, c.title()),
        }
    }

    /// Whether a log scale suits it (values spanning decades).
    pub fn log_scale(self) -> bool {
        matches!(self, ColourBy::Column(_))
    }
}

/// The cell text of `col` for op `op`.
pub fn text(doc: &Document, op: usize, col: Col) -> String {
    let Some(o) = doc.ops.get(op) else {
        return String::new();
    };
    let cost = doc.row(op).and_then(|r| doc.estimator.costs().get(r));
    let shape = || {
        doc.row(op)
            .and_then(|r| doc.estimator.work.ops.get(r))
            .map(|w| w.shape.clone())
            .unwrap_or_default()
    };
    if cost.is_none() && col.numeric() {
        return "-".into();
    }
    let v = value(doc, op, col);
    match col {
        Col::Name => o.name.clone(),
        Col::OpType => o.op_type.clone(),
        Col::Layer => o.layer.clone(),
        Col::Shape => shape(),
        Col::Macs | Col::Flops => si(v.round() as u64),
        Col::WeightBytes | Col::ActivationBytes => {
            petasos_compiler::cost::report::bytes(v.round() as u64)
        }
        Col::Latency => seconds(v),
        Col::Energy => joules(v),
        Col::Power => format!("{v:.2} W"),
        Col::Bound => cost.map(|c| c.bound().as_str()).unwrap_or("-").to_string(),
    }
}

/// What the cached row order was computed for: sort, type filter, text filter, document and
/// estimator generation, op count.
type OrderKey = (Option<(Col, bool)>, Option<String>, String, u64, usize);

/// Sort, filters and the cached row order.
#[derive(Clone, Debug, Default)]
pub struct TableState {
    /// Column and whether descending.
    pub sort: Option<(Col, bool)>,
    /// Only ops of this type (`None`: all).
    pub type_filter: Option<String>,
    /// Case-insensitive substring of name, type or layer.
    pub filter: String,
    order: Vec<usize>,
    maxima: Vec<f64>,
    key: Option<OrderKey>,
}

impl TableState {
    /// Sorts by `col`: a new column starts descending for numbers, ascending for text; the
    /// same column again flips the direction.
    pub fn sort_by(&mut self, col: Col) {
        self.sort = match self.sort {
            Some((c, desc)) if c == col => Some((c, !desc)),
            _ => Some((col, col.numeric())),
        };
    }

    /// Recomputes the row order if the sort, filters, document (`doc_id`) or estimator
    /// generation `est_gen` changed.
    pub fn refresh(&mut self, doc: &Document, doc_id: u64, est_gen: u64) {
        let key = (
            self.sort,
            self.type_filter.clone(),
            self.filter.clone(),
            doc_id ^ est_gen.rotate_left(32),
            doc.ops.len(),
        );
        if self.key.as_ref() == Some(&key) {
            return;
        }
        let f = self.filter.trim().to_lowercase();
        let mut order: Vec<usize> = doc
            .ops
            .iter()
            .enumerate()
            .filter(|(_, o)| self.type_filter.as_ref().is_none_or(|t| &o.op_type == t))
            .filter(|(_, o)| {
                f.is_empty()
                    || o.name.to_lowercase().contains(&f)
                    || o.op_type.to_lowercase().contains(&f)
                    || o.layer.to_lowercase().contains(&f)
            })
            .map(|(i, _)| i)
            .collect();
        if let Some((col, desc)) = self.sort {
            if col.numeric() {
                let vals: Vec<f64> = (0..doc.ops.len()).map(|i| value(doc, i, col)).collect();
                let v = |i: usize| vals.get(i).copied().unwrap_or(0.0);
                order.sort_by(|&a, &b| v(a).total_cmp(&v(b)));
            } else {
                let keys: Vec<String> = (0..doc.ops.len()).map(|i| text(doc, i, col)).collect();
                let k = |i: usize| keys.get(i).map(String::as_str).unwrap_or("");
                order.sort_by(|&a, &b| k(a).cmp(k(b)));
            }
            if desc {
                order.reverse();
            }
        }
        self.maxima = Col::ALL
            .iter()
            .map(|&c| {
                if c.numeric() {
                    (0..doc.ops.len())
                        .map(|i| value(doc, i, c))
                        .fold(0.0, f64::max)
                } else {
                    0.0
                }
            })
            .collect();
        self.order = order;
        self.key = Some(key);
    }

    /// The op indices in display order (after [`TableState::refresh`]).
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// Draws the filters and the table. `highlight[i]` marks search matches; `scroll_to`
    /// scrolls op `i` into view. Returns the op whose row was clicked.
    pub fn show(
        &mut self,
        ui: &mut egui::Ui,
        doc: &Document,
        selection: Option<usize>,
        highlight: &[bool],
        scroll_to: Option<usize>,
    ) -> Option<usize> {
        ui.horizontal(|ui| {
            let current = self
                .type_filter
                .clone()
                .unwrap_or_else(|| "all types".into());
            egui::ComboBox::from_label("type filter")
                .selected_text(current)
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut self.type_filter, None, "all types");
                    for t in &doc.op_types {
                        ui.selectable_value(&mut self.type_filter, Some(t.clone()), t);
                    }
                });
            ui.add(
                egui::TextEdit::singleline(&mut self.filter)
                    .hint_text("filter rows")
                    .desired_width(160.0),
            );
            ui.label(format!("{} of {} ops", self.order.len(), doc.ops.len()));
        });
        let mut clicked = None;
        let mut sort_click = None;
        egui::ScrollArea::horizontal()
            .id_salt("op-table-h")
            .show(ui, |ui| {
                self.table(
                    ui,
                    doc,
                    selection,
                    highlight,
                    scroll_to,
                    &mut clicked,
                    &mut sort_click,
                )
            });
        if let Some(c) = sort_click {
            self.sort_by(c);
        }
        clicked
    }

    /// The table itself (inside the horizontal scroll area).
    #[allow(clippy::too_many_arguments)]
    fn table(
        &self,
        ui: &mut egui::Ui,
        doc: &Document,
        selection: Option<usize>,
        highlight: &[bool],
        scroll_to: Option<usize>,
        clicked: &mut Option<usize>,
        sort_click: &mut Option<Col>,
    ) {
        let row_h = ui.text_style_height(&egui::TextStyle::Body) + 4.0;
        let mut tb = TableBuilder::new(ui)
            .id_salt("op-table")
            .striped(true)
            .resizable(true)
            .sense(Sense::click())
            .cell_layout(Layout::left_to_right(Align::Center))
            .column(Column::initial(150.0).at_least(60.0).clip(true))
            .column(Column::initial(80.0).clip(true))
            .column(Column::initial(140.0).clip(true))
            .column(Column::initial(120.0).clip(true))
            .columns(Column::initial(76.0).at_least(40.0).clip(true), 7)
            .column(Column::initial(64.0).at_least(40.0));
        if let Some(pos) = scroll_to.and_then(|op| self.order.iter().position(|&i| i == op)) {
            tb = tb.scroll_to_row(pos, Some(Align::Center));
        }
        tb.header(row_h + 2.0, |mut header| {
            for col in Col::ALL {
                header.col(|ui| {
                    let arrow = match self.sort {
                        Some((c, true)) if c == col => " v",
                        Some((c, false)) if c == col => " ^",
                        _ => "",
                    };
                    let b = egui::Button::new(
                        RichText::new(format!("{}{arrow}", col.title())).strong(),
                    )
                    .frame(false);
                    if ui.add(b).on_hover_text("click to sort").clicked() {
                        *sort_click = Some(col);
                    }
                });
            }
        })
        .body(|body| {
            body.rows(row_h, self.order.len(), |mut row| {
                let Some(&op) = self.order.get(row.index()) else {
                    return;
                };
                let selected = selection == Some(op);
                let hit = highlight.get(op).copied().unwrap_or(false);
                row.set_selected(selected);
                for col in Col::ALL {
                    row.col(|ui| {
                        let t = text(doc, op, col);
                        if col == Col::Name {
                            let mut rt = RichText::new(t);
                            if hit {
                                rt = rt.color(Color32::from_rgb(250, 200, 40)).strong();
                            }
                            if ui.selectable_label(selected, rt).clicked() {
                                *clicked = Some(op);
                            }
                        } else if col.numeric() {
                            let max = self.maxima.get(col.slot()).copied().unwrap_or(0.0);
                            let frac = if max > 0.0 {
                                (value(doc, op, col) / max).clamp(0.0, 1.0) as f32
                            } else {
                                0.0
                            };
                            let r = ui.max_rect();
                            let bar = egui::Rect::from_min_size(
                                egui::pos2(r.left(), r.top() + 2.0),
                                egui::vec2(r.width() * frac, r.height() - 4.0),
                            );
                            ui.painter().rect_filled(
                                bar,
                                2.0,
                                Color32::from_rgba_unmultiplied(70, 130, 220, 70),
                            );
                            ui.with_layout(Layout::right_to_left(Align::Center), |ui| {
                                ui.label(t);
                            });
                        } else {
                            ui.label(t);
                        }
                    });
                }
                if row.response().clicked() {
                    *clicked = Some(op);
                }
            });
        });
    }
}
