//! [`GraphView`]: the graph widget. Holds the current scene (layout computed off the UI
//! thread), the camera, the collapse state and interaction state; `show` handles pan / zoom /
//! fit / click / double-click / hover and paints through [`super::draw`].

use super::draw::{draw, DrawArgs, DrawStats, OverviewCache, Palette, BOXES_ZOOM, FULL_ZOOM};
use super::hierarchy::{Hierarchy, VisItem};
use super::minimap::Minimap;
use super::worker::{LayoutJob, Poll, Scene};
use super::{GraphData, NodeStyle};
use egui::{Color32, Key, Pos2, Rect, Sense, Vec2};
use std::sync::Arc;
use std::time::Duration;

/// A huge graph opens with about this many boxes (groups collapsed to fit).
pub const DEFAULT_BUDGET: usize = 300;
/// Zoom range relative to fitting the whole graph (lower bound) and absolute (upper bound).
const MAX_ZOOM: f32 = 4.0;
/// `focus` zooms in to at least this factor so the node is readable.
const FOCUS_ZOOM: f32 = 0.8;

/// World point at the centre of the view and the scale (screen points per world unit).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Camera {
    /// World point shown at the centre of the view.
    pub center: Pos2,
    /// Screen points per world unit.
    pub zoom: f32,
}

impl Default for Camera {
    fn default() -> Self {
        Camera {
            center: Pos2::ZERO,
            zoom: 1.0,
        }
    }
}

impl Camera {
    /// World -> screen.
    pub fn to_screen(&self, view: Rect, p: Pos2) -> Pos2 {
        view.center() + (p - self.center) * self.zoom
    }

    /// Screen -> world.
    pub fn to_world(&self, view: Rect, p: Pos2) -> Pos2 {
        self.center + (p - view.center()) / self.zoom
    }

    /// A world rect on screen.
    pub fn rect_to_screen(&self, view: Rect, r: Rect) -> Rect {
        Rect::from_min_max(self.to_screen(view, r.min), self.to_screen(view, r.max))
    }

    /// The world rect the view shows.
    pub fn world_rect(&self, view: Rect) -> Rect {
        Rect::from_min_max(self.to_world(view, view.min), self.to_world(view, view.max))
    }
}

/// What the pointer is over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hover {
    Item(usize),
    Edge(usize),
}

/// The graph widget.
///
/// Interaction: drag pans; scroll or pinch zooms around the pointer; `F` (pointer over the
/// view) or the Fit button fits; click selects a node (writes the caller's selection; empty
/// space clears it); double-click on a collapsed group expands it, on a node inside a group
/// collapses that group; hovering shows node / group / edge tooltips; the minimap (shown when
/// the graph does not fit) moves the camera. Call [`GraphView::focus`] when the selection
/// changes elsewhere (e.g. the table), not every frame.
///
/// Layouts are computed on a worker thread; until one is ready the previous one stays on
/// screen and the toolbar shows the progress.
pub struct GraphView {
    data: Arc<GraphData>,
    hier: Hierarchy,
    scene: Option<Arc<Scene>>,
    job: Option<LayoutJob>,
    failed: bool,
    camera: Camera,
    fit_pending: bool,
    /// The first fit after opening: a graph too large to read when fitted opens at a readable
    /// zoom on its top (the inputs) instead.
    opening: bool,
    focus_pending: Option<usize>,
    anchor: Option<(usize, Vec2)>,
    view_rect: Option<Rect>,
    hover: Option<Hover>,
    selected_group: Option<usize>,
    metric: Option<(String, Vec<f64>)>,
    sums: Option<(u64, Vec<f64>)>,
    scene_gen: u64,
    item_fill: Vec<Option<Color32>>,
    item_hl: Vec<usize>,
    overview: OverviewCache,
    minimap: Minimap,
    stats: DrawStats,
}

impl GraphView {
    /// A view of `data` with groups collapsed to about [`DEFAULT_BUDGET`] boxes; starts the
    /// layout on a worker thread.
    pub fn new(data: Arc<GraphData>) -> GraphView {
        Self::with_budget(data, Some(DEFAULT_BUDGET))
    }

    /// Like [`GraphView::new`]; `budget: None` starts with every group expanded.
    pub fn with_budget(data: Arc<GraphData>, budget: Option<usize>) -> GraphView {
        let mut hier = Hierarchy::new(&data);
        if let Some(b) = budget {
            hier.auto_collapse(b);
        }
        let mut v = GraphView {
            data,
            hier,
            scene: None,
            job: None,
            failed: false,
            camera: Camera::default(),
            fit_pending: true,
            opening: true,
            focus_pending: None,
            anchor: None,
            view_rect: None,
            hover: None,
            selected_group: None,
            metric: None,
            sums: None,
            scene_gen: 0,
            item_fill: Vec::new(),
            item_hl: Vec::new(),
            overview: OverviewCache::default(),
            minimap: Minimap::default(),
            stats: DrawStats::default(),
        };
        v.relayout();
        v
    }

    /// The graph shown.
    pub fn data(&self) -> &Arc<GraphData> {
        &self.data
    }

    /// The hierarchy and its collapse state.
    pub fn hierarchy(&self) -> &Hierarchy {
        &self.hier
    }

    /// The current scene (visible graph + layout), if one is ready.
    pub fn scene(&self) -> Option<&Scene> {
        self.scene.as_deref()
    }

    /// Whether a layout is being computed; its progress fraction.
    pub fn progress(&self) -> Option<f32> {
        self.job.as_ref().map(|j| j.progress())
    }

    /// The camera.
    pub fn camera(&self) -> Camera {
        self.camera
    }

    /// Sets the camera (zoom clamped to a sane range).
    pub fn set_camera(&mut self, cam: Camera) {
        self.camera = Camera {
            center: cam.center,
            zoom: cam.zoom.clamp(1e-6, MAX_ZOOM),
        };
        self.fit_pending = false;
    }

    /// What the last frame drew.
    pub fn stats(&self) -> DrawStats {
        self.stats
    }

    /// Sets a per-node metric: collapsed groups show its sum and take the fill of their
    /// largest member. `values` is indexed by node.
    pub fn set_metric(&mut self, name: &str, values: Vec<f64>) {
        self.metric = Some((name.to_string(), values));
        self.sums = None;
    }

    /// Removes the metric set by [`GraphView::set_metric`].
    pub fn clear_metric(&mut self) {
        self.metric = None;
        self.sums = None;
    }

    /// The metric sum per visible item of `scene` (cached per scene and metric).
    fn item_sums(&mut self, scene: &Scene) -> Option<&[f64]> {
        let values = &self.metric.as_ref()?.1;
        let key = self.scene_gen;
        if self.sums.as_ref().map(|s| s.0) != Some(key) {
            let mut sums = vec![0.0; scene.vis.items.len()];
            for (n, &item) in scene.vis.node_item.iter().enumerate() {
                if let (Some(v), Some(s)) = (values.get(n), sums.get_mut(item)) {
                    if v.is_finite() {
                        *s += v;
                    }
                }
            }
            self.sums = Some((key, sums));
        }
        self.sums.as_ref().map(|s| s.1.as_slice())
    }

    /// Fits the whole graph into the view (on the next frame if the view has no size yet).
    pub fn fit(&mut self) {
        self.fit_pending = true;
        self.opening = false;
        self.focus_pending = None;
        self.apply_pending();
    }

    /// Centres the camera on `node` (expanding the groups hiding it, which re-lays out; the
    /// camera moves once that layout is ready).
    pub fn focus(&mut self, node: usize) {
        if node >= self.data.nodes.len() {
            return;
        }
        if self.hier.reveal(node) {
            self.relayout();
        }
        self.focus_pending = Some(node);
        self.fit_pending = false;
        self.apply_pending();
    }

    /// Expands or collapses group `g` and re-lays out (the old layout stays on screen until the
    /// new one is ready).
    pub fn set_group_expanded(&mut self, g: usize, expanded: bool) {
        if self.hier.set_expanded(g, expanded) {
            self.anchor_on_group(g);
            self.relayout();
        }
    }

    /// Expands every group and re-lays out.
    pub fn expand_all(&mut self) {
        self.hier.expand_all();
        self.relayout();
        self.fit_pending = true;
    }

    /// Collapses groups back to the default budget and re-lays out.
    pub fn collapse_default(&mut self) {
        self.hier.auto_collapse(DEFAULT_BUDGET);
        self.relayout();
        self.fit_pending = true;
    }

    /// Blocks until the pending layout (if any) is ready and installs it. For tests, the
    /// benchmark and headless use; the UI never calls it.
    pub fn wait_for_layout(&mut self) {
        if let Some(job) = self.job.take() {
            match job.wait() {
                Some(s) => self.install(s),
                None => self.failed = true,
            }
        }
    }

    /// The on-screen rect of the box showing `node` (itself or its collapsed group) in the
    /// last frame's view, if a layout and a view exist.
    pub fn node_screen_rect(&self, node: usize) -> Option<Rect> {
        let (scene, view) = (self.scene.as_ref()?, self.view_rect?);
        let item = *scene.vis.node_item.get(node)?;
        let r = scene.layout.rects.get(item)?;
        Some(self.camera.rect_to_screen(view, *r))
    }

    /// The view's screen rect in the last frame.
    pub fn view_rect(&self) -> Option<Rect> {
        self.view_rect
    }

    fn relayout(&mut self) {
        self.job = Some(LayoutJob::spawn(self.data.clone(), self.hier.clone()));
        self.failed = false;
    }

    /// Remembers where a node of group `g` is on screen so the new layout keeps it there.
    fn anchor_on_group(&mut self, g: usize) {
        let (Some(scene), Some(view)) = (self.scene.as_ref(), self.view_rect) else {
            return;
        };
        let node = (0..self.data.nodes.len()).find(|&n| {
            let mut cur = Some(self.hier.group_of(n));
            while let Some(c) = cur {
                if c == g {
                    return true;
                }
                cur = self.hier.groups().get(c).and_then(|x| x.parent);
            }
            false
        });
        if let Some(n) = node {
            if let Some(r) = scene
                .vis
                .node_item
                .get(n)
                .and_then(|&i| scene.layout.rects.get(i))
            {
                let at = self.camera.to_screen(view, r.center()) - view.center();
                self.anchor = Some((n, at));
            }
        }
    }

    fn install(&mut self, s: Scene) {
        let s = Arc::new(s);
        if let Some((n, at)) = self.anchor.take() {
            if let Some(r) = s.vis.node_item.get(n).and_then(|&i| s.layout.rects.get(i)) {
                self.camera.center = r.center() - at / self.camera.zoom;
            }
        }
        self.scene = Some(s);
        self.scene_gen += 1;
        self.hover = None;
        self.apply_pending();
    }

    fn poll(&mut self) {
        let got = match &self.job {
            Some(job) => job.poll(),
            None => return,
        };
        match got {
            Poll::Pending => {}
            Poll::Done(s) => {
                self.job = None;
                self.install(*s);
            }
            Poll::Failed => {
                self.job = None;
                self.failed = true;
            }
        }
    }

    /// Applies a pending fit / focus when both a scene and a view rect exist.
    fn apply_pending(&mut self) {
        let Some(scene) = self.scene.clone() else {
            return;
        };
        if self.job.is_some() && self.focus_pending.is_some() {
            // The node may be inside a group being expanded: wait for that layout.
            return;
        }
        if let Some(n) = self.focus_pending {
            if let Some(r) = scene
                .vis
                .node_item
                .get(n)
                .and_then(|&i| scene.layout.rects.get(i))
            {
                self.camera.center = r.center();
                self.camera.zoom = self.camera.zoom.clamp(FOCUS_ZOOM, MAX_ZOOM);
            }
            self.focus_pending = None;
        }
        if self.fit_pending {
            if let Some(view) = self.view_rect {
                let b = scene.layout.bounds.expand(20.0);
                let z = (view.width() / b.width()).min(view.height() / b.height());
                self.camera = Camera {
                    center: b.center(),
                    zoom: z.clamp(1e-6, 1.0),
                };
                if self.opening && z < FULL_ZOOM {
                    // Unreadable when fitted: the top of the graph at a zoom that shows labels
                    // (as wide as fits, within [FULL_ZOOM, FOCUS_ZOOM]).
                    let zr = (view.width() / b.width()).clamp(FULL_ZOOM, FOCUS_ZOOM);
                    self.camera = Camera {
                        center: egui::pos2(
                            b.center().x,
                            b.top() + (view.height() / 2.0 - 40.0) / zr,
                        ),
                        zoom: zr,
                    };
                }
                self.fit_pending = false;
                self.opening = false;
            }
        }
    }

    fn min_zoom(&self) -> f32 {
        match (&self.scene, self.view_rect) {
            (Some(s), Some(v)) => {
                let b = s.layout.bounds;
                ((v.width() / b.width()).min(v.height() / b.height()) * 0.5).clamp(1e-6, 0.5)
            }
            _ => 1e-6,
        }
    }

    /// Per-item fill and highlight from the per-node style (groups: fill of their hottest
    /// member by metric, else their first filled member; highlighted if any member is).
    fn style_items(&mut self, scene: &Scene, style: &NodeStyle) {
        let n_items = scene.vis.items.len();
        self.item_fill.clear();
        self.item_fill.resize(n_items, None);
        self.item_hl.clear();
        let flat = n_items == self.data.nodes.len();
        if flat {
            // Nothing collapsed: item i is node i.
            for i in 0..n_items {
                self.item_fill[i] = style.fill_of(i);
            }
            let hl = style.highlight.iter().take(n_items);
            self.item_hl
                .extend(hl.enumerate().filter(|(_, &h)| h).map(|(i, _)| i));
            return;
        }
        let mut best: Vec<f64> = vec![f64::NEG_INFINITY; n_items];
        let values = self.metric.as_ref().map(|m| &m.1);
        for (n, &item) in scene.vis.node_item.iter().enumerate() {
            if style.is_highlighted(n) {
                self.item_hl.push(item);
            }
            let Some(fill) = style.fill_of(n) else {
                continue;
            };
            let v = values.and_then(|v| v.get(n)).copied().unwrap_or(0.0);
            if self.item_fill[item].is_none() || v > best[item] {
                self.item_fill[item] = Some(fill);
                best[item] = v;
            }
        }
        self.item_hl.sort_unstable();
        self.item_hl.dedup();
    }

    /// Draws the view and handles its input. `sel` is the linked selection (a node index):
    /// clicking a node writes it, clicking empty space clears it.
    pub fn show(
        &mut self,
        ui: &mut egui::Ui,
        style: &NodeStyle,
        sel: &mut Option<usize>,
    ) -> egui::Response {
        self.poll();
        if self.job.is_some() {
            ui.ctx().request_repaint_after(Duration::from_millis(30));
        }
        ui.horizontal(|ui| {
            if ui
                .button("Fit")
                .on_hover_text("Fit the graph (F)")
                .clicked()
            {
                self.fit();
            }
            if ui.button("Expand all").clicked() {
                self.expand_all();
            }
            if ui.button("Collapse").clicked() {
                self.collapse_default();
            }
            if let Some(s) = &self.scene {
                ui.label(format!(
                    "{} boxes, {} ops",
                    s.vis.items.len(),
                    self.data.nodes.len()
                ));
            }
            if let Some(p) = self.progress() {
                ui.add(
                    egui::ProgressBar::new(p)
                        .desired_width(120.0)
                        .text("layout"),
                );
            }
            if self.failed {
                ui.colored_label(ui.visuals().error_fg_color, "layout failed");
            }
        });
        let (response, painter) = ui.allocate_painter(ui.available_size(), Sense::click_and_drag());
        response.widget_info(|| {
            egui::WidgetInfo::labeled(egui::accesskit::Role::Canvas, true, "Graph view")
        });
        let view = response.rect;
        self.view_rect = Some(view);
        self.apply_pending();
        let painter = painter.with_clip_rect(view);
        let Some(scene) = self.scene.clone() else {
            let msg = match self.progress() {
                Some(p) => format!("Laying out… {:.0}%", p * 100.0),
                None => "No layout".to_string(),
            };
            painter.text(
                view.center(),
                egui::Align2::CENTER_CENTER,
                msg,
                egui::FontId::proportional(16.0),
                ui.visuals().text_color(),
            );
            return response;
        };

        // The minimap (when the graph does not fit the view): pressing or dragging on it moves
        // the camera there, and the main view ignores that pointer interaction.
        let mini = Minimap::rect(view).filter(|_| {
            !self
                .camera
                .world_rect(view)
                .contains_rect(scene.layout.bounds)
        });
        // egui may run a frame in two passes with the same input; act on input once.
        let act = ui.ctx().current_pass_index() == 0;
        let in_mini = |p: Option<Pos2>| matches!((mini, p), (Some(m), Some(p)) if m.contains(p));
        let press = ui.input(|i| i.pointer.press_origin());
        let on_mini = in_mini(press)
            || ((response.clicked() || response.double_clicked())
                && in_mini(response.interact_pointer_pos()));
        if let (true, true, Some(m), Some(p)) =
            (act, on_mini, mini, response.interact_pointer_pos())
        {
            self.camera.center = Minimap::to_world(&scene, m, p);
        }

        // Pan and zoom.
        if act && response.dragged() && !on_mini {
            self.camera.center -= response.drag_delta() / self.camera.zoom;
        }
        if let Some(hp) = response.hover_pos().filter(|_| act) {
            let (scroll, pinch) = ui.input(|i| (i.smooth_scroll_delta.y, i.zoom_delta()));
            let factor = pinch * (scroll * 0.0025).exp();
            if (factor - 1.0).abs() > 1e-4 {
                let before = self.camera.to_world(view, hp);
                let zoom = (self.camera.zoom * factor).clamp(self.min_zoom(), MAX_ZOOM);
                self.camera.zoom = zoom;
                let after = self.camera.to_world(view, hp);
                self.camera.center += before - after;
            }
            if !ui.ctx().egui_wants_keyboard_input() && ui.input(|i| i.key_pressed(Key::F)) {
                self.fit();
            }
        }

        // Hit-testing through the spatial index.
        let pointer = response
            .hover_pos()
            .filter(|&p| !response.dragged() && !in_mini(Some(p)));
        self.hover = pointer.and_then(|p| {
            let w = self.camera.to_world(view, p);
            if let Some(i) = scene.index.item_at(w, &scene.layout.rects) {
                return Some(Hover::Item(i));
            }
            // Edges are only hoverable where they are drawn individually.
            if self.camera.zoom < BOXES_ZOOM {
                return None;
            }
            scene
                .index
                .edge_near(w, 5.0 / self.camera.zoom)
                .map(Hover::Edge)
        });
        let clicked_item = |resp: &egui::Response| {
            resp.interact_pointer_pos().and_then(|p| {
                scene
                    .index
                    .item_at(self.camera.to_world(view, p), &scene.layout.rects)
            })
        };
        if on_mini || !act {
            // Minimap interaction is handled above; a second pass repeats the same input.
        } else if response.double_clicked() {
            match clicked_item(&response).and_then(|i| scene.vis.items.get(i).copied()) {
                Some(VisItem::Group(g)) => self.set_group_expanded(g, true),
                Some(VisItem::Node(n)) => {
                    let g = self.hier.group_of(n);
                    if g != Hierarchy::ROOT {
                        self.set_group_expanded(g, false);
                    }
                }
                None => {}
            }
        } else if response.clicked() {
            match clicked_item(&response).and_then(|i| scene.vis.items.get(i).copied()) {
                Some(VisItem::Node(n)) => {
                    *sel = Some(n);
                    self.selected_group = None;
                }
                Some(VisItem::Group(g)) => self.selected_group = Some(g),
                None => {
                    *sel = None;
                    self.selected_group = None;
                }
            }
        }

        // Paint.
        self.style_items(&scene, style);
        let selected = match (*sel, self.selected_group) {
            (Some(n), _) => scene.vis.node_item.get(n).copied(),
            (None, Some(g)) => scene
                .vis
                .items
                .iter()
                .position(|&it| it == VisItem::Group(g)),
            _ => None,
        };
        let hovered = match self.hover {
            Some(Hover::Item(i)) => Some(i),
            _ => None,
        };
        self.item_sums(&scene);
        let sums = match (&self.metric, &self.sums) {
            (Some((name, _)), Some((_, s))) => Some((name.as_str(), s.as_slice())),
            _ => None,
        };
        self.stats = draw(
            &DrawArgs {
                painter: &painter,
                view,
                cam: self.camera,
                scene: &scene,
                item_fill: &self.item_fill,
                highlighted: &self.item_hl,
                sums,
                selected,
                hovered,
                palette: Palette::new(ui.visuals().dark_mode),
            },
            &mut self.overview,
        );
        if let Some(m) = mini {
            let world = self.camera.world_rect(view);
            let palette = Palette::new(ui.visuals().dark_mode);
            self.minimap
                .draw(&painter, m, &scene, &self.item_fill, world, palette);
        }
        if let Some(p) = self.progress() {
            painter.text(
                view.right_top() + egui::vec2(-8.0, 8.0),
                egui::Align2::RIGHT_TOP,
                format!("re-laying out… {:.0}%", p * 100.0),
                egui::FontId::proportional(12.0),
                ui.visuals().weak_text_color(),
            );
        }
        match self.hover {
            Some(h) => response.on_hover_ui_at_pointer(|ui| self.tooltip(ui, &scene, h)),
            None => response,
        }
    }

    fn tooltip(&self, ui: &mut egui::Ui, scene: &Scene, h: Hover) {
        match h {
            Hover::Item(i) => match scene.vis.items.get(i) {
                Some(&VisItem::Node(n)) => {
                    if let Some(node) = self.data.nodes.get(n) {
                        ui.strong(&node.label);
                        ui.label(format!("op: {}", node.op_type));
                        if !node.path.is_empty() {
                            ui.label(format!("path: {}", node.path));
                        }
                        if let Some((name, v)) = &self.metric {
                            if let Some(x) = v.get(n) {
                                ui.label(format!("{name}: {x:.4}"));
                            }
                        }
                    }
                }
                Some(&VisItem::Group(g)) => {
                    let path = self
                        .hier
                        .groups()
                        .get(g)
                        .map(|x| x.path.as_str())
                        .unwrap_or("");
                    ui.strong(path);
                    let count = scene.vis.item_count.get(i).copied().unwrap_or(0);
                    ui.label(format!("{count} ops (collapsed)"));
                    if let Some((name, v)) = &self.metric {
                        let sum: f64 = scene
                            .vis
                            .node_item
                            .iter()
                            .enumerate()
                            .filter(|&(_, &it)| it == i)
                            .filter_map(|(n, _)| v.get(n))
                            .sum();
                        ui.label(format!("sum of {name}: {sum:.4}"));
                    }
                    ui.weak("double-click to expand");
                }
                None => {}
            },
            Hover::Edge(e) => {
                if let Some(ve) = scene.vis.edges.get(e) {
                    if let Some(edge) = self.data.edges.get(ve.edge) {
                        ui.strong(if edge.label.is_empty() {
                            "(tensor)"
                        } else {
                            &edge.label
                        });
                        let name = |n: usize| {
                            self.data
                                .nodes
                                .get(n)
                                .map(|x| x.label.as_str())
                                .unwrap_or("?")
                        };
                        ui.label(format!("{} -> {}", name(edge.from), name(edge.to)));
                        if ve.count > 1 {
                            ui.weak(format!("+{} merged edges", ve.count - 1));
                        }
                    }
                }
            }
        }
    }
}
