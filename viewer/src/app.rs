//! The eframe application: top bar (open, recent files, presets, device, search), the op
//! table on the left, the graph in the centre, the details of the selected op on the right,
//! and tabs for plots / what-if / compare at the bottom.
//!
//! All state a user acts on is in [`Session`] (one selection shared by table and graph).
//! Loads run on a [`Loader`] worker; a failed load shows its error in the window and keeps
//! the model that was open.

use crate::details;
use crate::device::{DevicePicker, ProfileSource};
use crate::doc::Document;
use crate::export;
use crate::graph::colour::metric_colours_scaled;
use crate::graph::{GraphView, NodeStyle};
use crate::loader::Loader;
use crate::recent::RecentFiles;
use crate::search::Search;
use crate::table::{ColourBy, TableState};
use crate::tabs::Tabs;
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
    /// What the graph colours nodes by (latency by default).
    pub colour_by: ColourBy,
    /// A second model for the compare tab.
    pub compare: Option<Document>,
}

pub use crate::tabs::Tab;

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
    pub tabs: Tabs,
    picker: DevicePicker,
    /// Pending PNG export.
    png: Option<std::sync::mpsc::Receiver<Result<std::path::PathBuf, export::ExportError>>>,
    /// A transient message (export done, ...).
    pub notice: Option<String>,
    focus_search: bool,
    /// Op to scroll the table to / focus in the graph on the next frame.
    reveal: Option<usize>,
    fit_request: bool,
    /// The graph view of the open document (layout on its own worker).
    graph: Option<GraphView>,
    /// Fill and highlight per node, passed to the graph view.
    style: NodeStyle,
    /// What `style.fill` was computed for: (document, estimator generation, metric).
    style_key: Option<(u64, u64, ColourBy)>,
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
            tabs: Tabs::default(),
            picker: DevicePicker::new(device),
            png: None,
            notice: None,
            focus_search: false,
            reveal: None,
            fit_request: false,
            graph: None,
            style: NodeStyle::default(),
            style_key: None,
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
        self.tabs.tab = Tab::Compare;
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
        s.est_gen = s.est_gen.wrapping_add(1);
        self.tabs
            .reset_for(s.doc.as_ref().map_or(0, |d| d.ops.len()));
        if let Some(d) = &s.doc {
            s.search.update(&d.ops, true);
            self.graph = Some(GraphView::new(d.graph_data.clone()));
        }
        self.style_key = None;
    }

    /// Selects op `op` (or clears), scrolling the table and focusing the graph on it.
    pub fn select(&mut self, op: Option<usize>) {
        let n = self.session.doc.as_ref().map_or(0, |d| d.ops.len());
        self.session.selection = op.filter(|&i| i < n);
        self.reveal = self.session.selection;
        if let (Some(g), Some(op)) = (&mut self.graph, self.session.selection) {
            g.focus(op);
        }
    }

    /// The graph view of the open model.
    pub fn graph(&self) -> Option<&GraphView> {
        self.graph.as_ref()
    }

    /// The graph view, mutable (tests wait for its layout).
    pub fn graph_mut(&mut self) -> Option<&mut GraphView> {
        self.graph.as_mut()
    }

    /// The node style the graph is drawn with.
    pub fn node_style(&self) -> &NodeStyle {
        &self.style
    }

    /// Recomputes the node fills if the model, the prices or the metric changed, and copies
    /// the search highlights.
    fn refresh_style(&mut self) {
        let s = &self.session;
        let Some(d) = &s.doc else { return };
        let key = (s.doc_id, s.est_gen, s.colour_by);
        if self.style_key != Some(key) {
            let values = s.colour_by.values(d);
            self.style.fill = match &values {
                Some(v) => metric_colours_scaled(v, s.colour_by.log_scale()),
                None => Vec::new(),
            };
            if let (Some(g), Some(v)) = (&mut self.graph, values) {
                let (k, label) = s.colour_by.sum_label();
                g.set_metric(label, v.iter().map(|x| x * k).collect());
            }
            self.style_key = Some(key);
        }
        self.style.highlight.clone_from(&s.search.highlight);
    }

    /// Prices the open model (and the compared one) on `device`; later loads use it too.
    /// An unknown device shows an error and changes nothing.
    pub fn set_device(&mut self, device: &str) {
        match self.picker.choose_builtin(device) {
            Some(p) => self.apply_profile(&p, device),
            None => {
                let why = self.picker.error().unwrap_or("unknown device").to_string();
                self.session.error = Some(format!("device '{device}': {why}"));
            }
        }
    }

    /// Re-prices the open models on `profile` (the picker's unit); `device` (a built-in name
    /// or a file path) is used for later loads.
    fn apply_profile(&mut self, profile: &petasos_compiler::cost::DeviceProfile, device: &str) {
        let unit = self.picker.unit().map(str::to_string);
        let s = &mut self.session;
        for d in s.doc.iter_mut().chain(s.compare.iter_mut()) {
            if let Err(e) = d.reprice_with(profile, unit.as_deref(), device) {
                s.error = Some(e.to_string());
                return;
            }
        }
        self.device = device.to_string();
        s.est_gen = s.est_gen.wrapping_add(1);
        self.tabs.whatif.invalidate();
    }

    /// Writes the table (current row order and filters) as CSV to `path`, atomically.
    pub fn export_csv(&mut self, path: &std::path::Path) -> Result<(), export::ExportError> {
        let Some(d) = &self.session.doc else {
            return Ok(());
        };
        let rows: Vec<usize> = self
            .session
            .table
            .order()
            .iter()
            .filter_map(|&op| d.row(op))
            .collect();
        let csv = export::estimator_csv(&d.estimator, &rows)?;
        export::write_atomic(path, csv.as_bytes())?;
        self.notice = Some(format!("table written to {}", path.display()));
        Ok(())
    }

    /// Saves the next frame as a PNG at `path` (the result shows when it arrives).
    pub fn export_png(&mut self, ctx: &egui::Context, path: std::path::PathBuf) {
        self.png = Some(export::request_png(ctx, path));
    }

    fn save_dialog(&self, what: &str, ext: &str) -> Option<std::path::PathBuf> {
        if !self.dialogs {
            return None;
        }
        let stem = self
            .session
            .doc
            .as_ref()
            .map_or("petasos", |d| d.title.as_str());
        rfd::FileDialog::new()
            .add_filter(what, &[ext])
            .set_file_name(format!("{stem}.{ext}"))
            .save_file()
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
                    Ok(doc) => {
                        let doc = self.on_picked_unit(doc);
                        self.set_document(doc)
                    }
                    Err(e) => {
                        if !matches!(e, crate::doc::DocError::Cancelled { .. }) {
                            self.session.error = Some(e.to_string());
                            self.recent.remove(&source);
                        }
                    }
                }
            }
        }
        if let Some(rx) = &self.png {
            if let Ok(r) = rx.try_recv() {
                self.png = None;
                match r {
                    Ok(p) => self.notice = Some(format!("view saved to {}", p.display())),
                    Err(e) => self.session.error = Some(e.to_string()),
                }
            }
        }
        if let Some(l) = &mut self.compare_loader {
            if let Some(r) = l.poll() {
                self.compare_loader = None;
                match r {
                    Ok(doc) => self.session.compare = Some(self.on_picked_unit(doc)),
                    Err(e) => self.session.error = Some(format!("compare: {e}")),
                }
            }
        }
    }

    /// `doc` priced on the unit chosen in the device picker (loads use the default unit).
    fn on_picked_unit(&mut self, mut doc: Document) -> Document {
        if let (Some(p), Some(u)) = (self.picker.profile(), self.picker.unit()) {
            if doc.estimator.unit != u {
                if let Err(e) = doc.reprice_with(p, Some(u), &self.device) {
                    self.session.error = Some(e.to_string());
                }
            }
        }
        doc
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
                if ui
                    .add_enabled(self.dialogs, egui::Button::new("Compare with…"))
                    .clicked()
                {
                    ui.close();
                    if let Some(p) = rfd::FileDialog::new()
                        .add_filter("ONNX model", &["onnx"])
                        .pick_file()
                    {
                        self.open_compare(&ctx, &p.to_string_lossy());
                    }
                }
                let has_doc = self.session.doc.is_some();
                if ui
                    .add_enabled(
                        has_doc && self.dialogs,
                        egui::Button::new("Export table as CSV…"),
                    )
                    .clicked()
                {
                    ui.close();
                    if let Some(p) = self.save_dialog("CSV", "csv") {
                        if let Err(e) = self.export_csv(&p) {
                            self.session.error = Some(e.to_string());
                        }
                    }
                }
                if ui
                    .add_enabled(
                        has_doc && self.dialogs,
                        egui::Button::new("Export view as PNG…"),
                    )
                    .clicked()
                {
                    ui.close();
                    if let Some(p) = self.save_dialog("PNG image", "png") {
                        self.export_png(&ctx, p);
                    }
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
        ui.horizontal(|ui| self.device_slot(ui));
        if let Some(n) = self.notice.clone() {
            ui.horizontal(|ui| {
                ui.label(n);
                if ui.small_button("ok").clicked() {
                    self.notice = None;
                }
            });
        }
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

    /// The device picker (built-in profiles, units, profile files); a choice re-prices.
    fn device_slot(&mut self, ui: &mut egui::Ui) {
        ui.label("device:");
        if let Some(p) = self.picker.show(ui) {
            let name = match self.picker.source() {
                ProfileSource::Builtin(n) | ProfileSource::File(n) => n.clone(),
            };
            self.apply_profile(&p, &name);
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

    /// The graph view (node = op index; the selection is shared with the table).
    fn graph_ui(&mut self, ui: &mut egui::Ui) {
        if self.session.doc.is_none() {
            ui.centered_and_justified(|ui| {
                match &self.loader {
                    Some(l) => ui.label(format!("Loading {}…", l.source)),
                    None => ui.weak("Open a model to see its graph."),
                };
            });
            return;
        }
        ui.horizontal(|ui| {
            let m = &mut self.session.colour_by;
            egui::ComboBox::from_label("colour by")
                .selected_text(m.title())
                .show_ui(ui, |ui| {
                    for c in ColourBy::all() {
                        ui.selectable_value(m, c, c.title());
                    }
                });
            if m.log_scale() {
                ui.weak("(log scale)");
            }
        });
        self.refresh_style();
        let Some(g) = &mut self.graph else { return };
        if std::mem::take(&mut self.fit_request) {
            g.fit();
        }
        let before = self.session.selection;
        g.show(ui, &self.style, &mut self.session.selection);
        if self.session.selection != before {
            self.reveal = self.session.selection;
        }
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
            .resizable(self.tabs.tab != Tab::Hidden)
            .default_size(240.0)
            .show(ui, |ui| {
                if let Some(op) = self.tabs.show(ui, &mut self.session) {
                    self.select(Some(op));
                }
            });
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
                // Taken here: a reveal set later in this frame (graph click) scrolls next frame.
                let reveal = self.reveal.take();
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
                            if let Some(g) = &mut self.graph {
                                g.focus(op);
                            }
                        }
                    }
                    None => {
                        ui.weak("No model open.");
                    }
                }
            });
        egui::CentralPanel::default().show(ui, |ui| self.graph_ui(ui));
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        self.recent.save(storage);
    }
}
