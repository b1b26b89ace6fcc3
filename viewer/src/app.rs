//! The eframe application: top bar (open, recent files, presets, device, search), the op
//! table on the left, the graph in the centre, the details of the selected op on the right,
//! and tabs for plots / what-if / compare at the bottom.
//!
//! All state a user acts on is in [`Session`] (one selection shared by table and graph).
//! Loads run on a [`Loader`] worker; a failed load shows its error in the window and keeps
//! the model that was open.

use crate::details;
use crate::doc::Document;
use crate::loader::Loader;
use crate::recent::RecentFiles;
use crate::search::Search;
use crate::table::{Col, TableState};
use egui::{Color32, Key, KeyboardShortcut, Modifiers, RichText};
use petasos_compiler::cost::report::{joules, seconds};

/// Default device profile.
pub const DEFAULT_DEVICE: &str = "host";

/// What the user is looking at and has chosen.
#[derive(Default)]
pub struct Session {
    pub doc: Option<Document>,
    /// Increments with each document opened (cache key for views).
    pub doc_id: u64,
    /// The selected op (index into `doc.ops`, = graph node = table row identity).
    pub selection: Option<usize>,
    pub search: Search,
    pub table: TableState,
    /// Increments whenever the estimator's options change (what-if, device).
    pub est_gen: u64,
    /// The last load error, shown until dismissed or the next successful load.
    pub error: Option<String>,
    /// Metric the graph colours nodes by.
    pub colour_metric: Option<Col>,
    /// A second model for the compare tab.
    pub compare: Option<Document>,
}

/// Bottom tabs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tab {
    Plots,
    WhatIf,
    Compare,
}

/// How the app starts.
#[derive(Clone, Debug, Default)]
pub struct StartOptions {
    pub model: Option<String>,
    pub compare: Option<String>,
    pub device: Option<String>,
}

/// The viewer application.
pub struct ViewerApp {
    pub session: Session,
    pub recent: RecentFiles,
    /// Device profile name or path new loads use.
    pub device: String,
    loader: Option<Loader>,
    compare_loader: Option<Loader>,
    /// Whether native file dialogs may open (off in tests).
    pub dialogs: bool,
    tab: Tab,
    focus_search: bool,
    /// Op to scroll the table to / focus in the graph on the next frame.
    reveal: Option<usize>,
    fit_request: bool,
    title_for: u64,
}

impl ViewerApp {
    /// An app with nothing open.
    pub fn empty(device: &str) -> ViewerApp {
        ViewerApp {
            session: Session::default(),
            recent: RecentFiles::default(),
            device: device.to_string(),
            loader: None,
            compare_loader: None,
            dialogs: false,
            tab: Tab::Plots,
            focus_search: false,
            reveal: None,
            fit_request: false,
            title_for: u64::MAX,
        }
    }

    /// An app showing `doc` (tests, or a caller that loaded synchronously).
    pub fn with_document(doc: Document) -> ViewerApp {
        let mut a = ViewerApp::empty(&doc.device);
        a.set_document(doc);
        a
    }

    /// The app eframe starts: recent files from storage, dialogs on, and the models of `opts`
    /// loading.
    pub fn new(cc: &eframe::CreationContext<'_>, opts: StartOptions) -> ViewerApp {
        let mut a = ViewerApp::empty(opts.device.as_deref().unwrap_or(DEFAULT_DEVICE));
        a.recent = RecentFiles::load(cc.storage);
        a.dialogs = true;
        if let Some(m) = &opts.model {
            a.open(&cc.egui_ctx, m);
        }
        if let Some(m) = &opts.compare {
            a.open_compare(&cc.egui_ctx, m);
        }
        a
    }

    /// Starts loading `source` (preset or path); the current model stays until it succeeds.
    pub fn open(&mut self, ctx: &egui::Context, source: &str) {
        if let Some(l) = self.loader.take() {
            l.cancel();
        }
        let c = ctx.clone();
        self.loader = Some(Loader::spawn(source, &self.device, move || {
            c.request_repaint()
        }));
    }

    /// Starts loading a second model for the compare tab.
    pub fn open_compare(&mut self, ctx: &egui::Context, source: &str) {
        let c = ctx.clone();
        self.compare_loader = Some(Loader::spawn(source, &self.device, move || {
            c.request_repaint()
        }));
        self.tab = Tab::Compare;
    }

    /// Whether a load is in flight.
    pub fn is_loading(&self) -> bool {
        self.loader.is_some() || self.compare_loader.is_some()
    }

    /// Replaces the open model.
    pub fn set_document(&mut self, doc: Document) {
        self.recent.push(&doc.source);
        let s = &mut self.session;
        s.doc = Some(doc);
        s.doc_id = s.doc_id.wrapping_add(1);
        s.selection = None;
        s.error = None;
        if let Some(d) = &s.doc {
            s.search.update(&d.ops, true);
        }
        self.fit_request = true;
    }

    /// Selects op `op` (or clears), scrolling the table and focusing the graph on it.
    pub fn select(&mut self, op: Option<usize>) {
        let n = self.session.doc.as_ref().map_or(0, |d| d.ops.len());
        self.session.selection = op.filter(|&i| i < n);
        self.reveal = self.session.selection;
    }

    /// Prices the open model (and the compared one) on `device`; later loads use it too.
    /// An unknown device shows an error and changes nothing.
    pub fn set_device(&mut self, device: &str) {
        let s = &mut self.session;
        for d in s.doc.iter_mut().chain(s.compare.iter_mut()) {
            if let Err(e) = d.reprice(device) {
                s.error = Some(e.to_string());
                return;
            }
        }
        self.device = device.to_string();
        s.est_gen = s.est_gen.wrapping_add(1);
    }

    /// Sets the search text and recomputes the matches.
    pub fn set_search(&mut self, text: &str) {
        self.session.search.text = text.to_string();
        if let Some(d) = &self.session.doc {
            self.session.search.update(&d.ops, false);
        }
    }

    /// Polls the loaders.
    fn poll_loads(&mut self) {
        if let Some(l) = &mut self.loader {
            if let Some(r) = l.poll() {
                let source = l.source.clone();
                self.loader = None;
                match r {
                    Ok(doc) => self.set_document(doc),
                    Err(e) => {
                        if !matches!(e, crate::doc::DocError::Cancelled { .. }) {
                            self.session.error = Some(e.to_string());
                            self.recent.remove(&source);
                        }
                    }
                }
            }
        }
        if let Some(l) = &mut self.compare_loader {
            if let Some(r) = l.poll() {
                self.compare_loader = None;
                match r {
                    Ok(doc) => self.session.compare = Some(doc),
                    Err(e) => self.session.error = Some(format!("compare: {e}")),
                }
            }
        }
    }

    fn open_dialog(&mut self, ctx: &egui::Context) {
        if !self.dialogs {
            return;
        }
        let picked = rfd::FileDialog::new()
            .add_filter("ONNX model", &["onnx"])
            .pick_file();
        if let Some(p) = picked {
            self.open(ctx, &p.to_string_lossy());
        }
    }

    fn shortcuts(&mut self, ctx: &egui::Context) {
        let open = KeyboardShortcut::new(Modifiers::COMMAND, Key::O);
        let find = KeyboardShortcut::new(Modifiers::COMMAND, Key::F);
        if ctx.input_mut(|i| i.consume_shortcut(&open)) {
            self.open_dialog(ctx);
        }
        if ctx.input_mut(|i| i.consume_shortcut(&find)) {
            self.focus_search = true;
        }
        let typing = ctx.egui_wants_keyboard_input();
        if ctx.input_mut(|i| i.consume_key(Modifiers::NONE, Key::Escape)) {
            self.select(None);
        }
        if !typing && ctx.input_mut(|i| i.consume_key(Modifiers::NONE, Key::F)) {
            self.fit_request = true;
        }
        let dropped: Vec<String> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_string_lossy().into_owned())
                .filter(|p| !p.is_empty())
                .collect()
        });
        if let Some(p) = dropped.first() {
            self.open(ctx, p);
        }
    }

    fn top_bar(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        ui.horizontal(|ui| {
            ui.menu_button("File", |ui| {
                if ui
                    .add_enabled(self.dialogs, egui::Button::new("Open…"))
                    .clicked()
                {
                    ui.close();
                    self.open_dialog(&ctx);
                }
                ui.menu_button("Recent", |ui| {
                    if self.recent.items().is_empty() {
                        ui.weak("(none)");
                    }
                    let mut pick = None;
                    for s in self.recent.items() {
                        if ui.button(s).clicked() {
                            pick = Some(s.clone());
                        }
                    }
                    if let Some(s) = pick {
                        ui.close();
                        self.open(&ctx, &s);
                    }
                });
            });
            ui.menu_button("Presets", |ui| {
                egui::ScrollArea::vertical()
                    .max_height(400.0)
                    .show(ui, |ui| {
                        for n in petasos_models::names() {
                            if ui.button(n).clicked() {
                                ui.close();
                                self.open(&ctx, n);
                            }
                        }
                    });
            });
            self.device_slot(ui);
            ui.separator();
            self.search_box(ui);
            if let Some(l) = &self.loader {
                ui.separator();
                let p = l.progress();
                ui.add(
                    egui::ProgressBar::new(p.fraction)
                        .desired_width(140.0)
                        .text(format!("{}: {}", short(&l.source), p.stage)),
                );
                if ui.button("Cancel").clicked() {
                    l.cancel();
                }
            }
        });
        if let Some(e) = self.session.error.clone() {
            ui.horizontal_wrapped(|ui| {
                ui.label(
                    RichText::new(format!("Error: {e}")).color(Color32::from_rgb(230, 80, 70)),
                );
                if ui.small_button("dismiss").clicked() {
                    self.session.error = None;
                }
            });
        }
    }

    /// Device choice; V3's `DevicePicker` replaces the combo box.
    fn device_slot(&mut self, ui: &mut egui::Ui) {
        let mut chosen = None;
        egui::ComboBox::from_label("device")
            .selected_text(self.device.clone())
            .show_ui(ui, |ui| {
                for n in petasos_compiler::cost::profile::builtin_names() {
                    if ui.selectable_label(self.device == n, n).clicked() {
                        chosen = Some(n.to_string());
                    }
                }
            });
        if let Some(d) = chosen.filter(|d| *d != self.device) {
            self.set_device(&d);
        }
    }

    fn search_box(&mut self, ui: &mut egui::Ui) {
        let r = ui.add(
            egui::TextEdit::singleline(&mut self.session.search.text)
                .id_salt("op-search")
                .hint_text("search (Ctrl+F), e.g. conv or type:Conv")
                .desired_width(220.0),
        );
        if self.focus_search {
            r.request_focus();
            self.focus_search = false;
        }
        if let Some(d) = &self.session.doc {
            if self.session.search.update(&d.ops, false) {
                if let Some(op) = self.session.search.current_op() {
                    self.reveal = Some(op);
                }
            }
        }
        let enter = r.lost_focus() && ui.input(|i| i.key_pressed(Key::Enter));
        let n = self.session.search.matches.len();
        if !self.session.search.text.trim().is_empty() {
            ui.label(format!("{n} matches"));
        }
        if ui
            .add_enabled(n > 0, egui::Button::new("previous"))
            .clicked()
        {
            let op = self.session.search.previous_match();
            self.select(op);
        }
        if (ui.add_enabled(n > 0, egui::Button::new("next")).clicked() || enter) && n > 0 {
            let op = self.session.search.next_match();
            self.select(op);
        }
    }

    fn status_bar(&self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| match &self.session.doc {
            None => {
                ui.weak("No model open: File > Open…, Presets, or drop an .onnx file here.");
            }
            Some(d) => {
                let s = d.estimator.sums();
                ui.label(format!(
                    "{}  |  {} ops  |  {} ({})  |  total latency {}  energy {}",
                    d.title,
                    d.ops.len(),
                    d.estimator.device,
                    d.estimator.unit,
                    seconds(s.latency_s),
                    joules(s.energy_j),
                ))
                .on_hover_text(format!(
                    "{}\nloaded in {:.2} s",
                    d.source,
                    d.load_time.as_secs_f64()
                ));
            }
        });
    }

    /// The bottom tabs; V3 fills plots, what-if and compare.
    fn tabs(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.selectable_value(&mut self.tab, Tab::Plots, "Plots");
            ui.selectable_value(&mut self.tab, Tab::WhatIf, "What-if");
            ui.selectable_value(&mut self.tab, Tab::Compare, "Compare");
        });
        ui.separator();
        match self.tab {
            Tab::Plots => {
                ui.weak("Plots: latency by op type, memory over time, MACs vs latency.");
            }
            Tab::WhatIf => {
                ui.weak("What-if: weight / activation bits, sparsity, KV options.");
            }
            Tab::Compare => match (&self.session.doc, &self.session.compare) {
                (Some(a), Some(b)) => {
                    let (sa, sb) = (a.estimator.sums(), b.estimator.sums());
                    ui.label(format!(
                        "{} vs {}: latency {} vs {}, energy {} vs {}",
                        a.title,
                        b.title,
                        seconds(sa.latency_s),
                        seconds(sb.latency_s),
                        joules(sa.energy_j),
                        joules(sb.energy_j)
                    ));
                }
                _ => {
                    ui.weak("Compare: start with --compare MODEL2.");
                }
            },
        }
    }

    /// The graph view. V1's `GraphView` draws here (node = op index, selection shared).
    fn graph_ui(&mut self, ui: &mut egui::Ui) {
        let Some(d) = &self.session.doc else {
            ui.centered_and_justified(|ui| {
                match &self.loader {
                    Some(l) => ui.label(format!("Loading {}…", l.source)),
                    None => ui.weak("Open a model to see its graph."),
                };
            });
            return;
        };
        let g = &d.graph_data;
        ui.label(format!(
            "Graph of {}: {} nodes, {} edges",
            d.title,
            g.nodes.len(),
            g.edges.len()
        ));
        if let Some(n) = self.session.selection.and_then(|i| g.nodes.get(i)) {
            ui.label(format!("selected: {} ({}) {}", n.label, n.op_type, n.path));
        }
        self.fit_request = false;
    }
}

/// The last path component of `s` (for progress text).
fn short(s: &str) -> String {
    std::path::Path::new(s)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| s.to_string())
}

impl eframe::App for ViewerApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.poll_loads();
        self.shortcuts(ctx);
        if self.title_for != self.session.doc_id {
            self.title_for = self.session.doc_id;
            let t = match &self.session.doc {
                Some(d) => format!("{} - petasos viewer", d.title),
                None => "petasos viewer".to_string(),
            };
            ctx.send_viewport_cmd(egui::ViewportCommand::Title(t));
        }
        if let Some(d) = &self.session.doc {
            self.session
                .table
                .refresh(d, self.session.doc_id, self.session.est_gen);
        }
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        egui::Panel::top("top-bar").show(ui, |ui| self.top_bar(ui));
        egui::Panel::bottom("status-bar").show(ui, |ui| self.status_bar(ui));
        egui::Panel::bottom("tabs")
            .resizable(true)
            .default_size(120.0)
            .show(ui, |ui| self.tabs(ui));
        egui::Panel::right("details")
            .resizable(true)
            .default_size(320.0)
            .show(ui, |ui| match &self.session.doc {
                Some(d) => details::show(ui, d, self.session.selection),
                None => {
                    ui.weak("Details of the selected op appear here.");
                }
            });
        egui::Panel::left("table")
            .resizable(true)
            .default_size(700.0)
            .max_size(ui.available_width() * 0.75)
            .show(ui, |ui| {
                let reveal = self.reveal;
                let Session {
                    doc,
                    table,
                    selection,
                    search,
                    ..
                } = &mut self.session;
                match doc {
                    Some(d) => {
                        if let Some(op) = table.show(ui, d, *selection, &search.highlight, reveal) {
                            *selection = Some(op);
                        }
                    }
                    None => {
                        ui.weak("No model open.");
                    }
                }
            });
        egui::CentralPanel::default().show(ui, |ui| self.graph_ui(ui));
        self.reveal = None;
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        self.recent.save(storage);
    }
}
