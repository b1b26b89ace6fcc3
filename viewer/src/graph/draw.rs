//! Painting a [`Scene`] through a camera with culling and three levels of detail:
//! `Full` (boxes with text, edges with arrow heads), `Boxes` (one mesh of filled quads and thin
//! edge quads, no text, no arrows) and `Overview` (boxes and edges binned into screen cells so
//! the work is bounded by the screen, not the graph).

use super::spatial::Seg;
use super::view::Camera;
use super::worker::{Scene, CHAR_W1, CHAR_W2, PAD_X};
use super::VisItem;
use egui::epaint::Mesh;
use egui::{pos2, vec2, Align2, Color32, FontId, Painter, Pos2, Rect, Shape, Stroke, StrokeKind};
use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

/// Zoom at and above which boxes carry text and edges arrow heads.
pub const FULL_ZOOM: f32 = 0.45;
/// Zoom at and above which boxes are drawn individually (below: binned overview).
pub const BOXES_ZOOM: f32 = 0.07;
/// Overview bin size in screen points.
const CELL: f32 = 3.0;

/// Level of detail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lod {
    /// Text, outlines, arrows.
    Full,
    /// Filled rects, plain edges.
    Boxes,
    /// Screen-binned.
    Overview,
}

impl Lod {
    /// The level of detail for a zoom factor.
    pub fn of(zoom: f32) -> Lod {
        if zoom >= FULL_ZOOM {
            Lod::Full
        } else if zoom >= BOXES_ZOOM {
            Lod::Boxes
        } else {
            Lod::Overview
        }
    }
}

/// Colours used for drawing.
#[derive(Clone, Copy, Debug)]
pub struct Palette {
    /// Default node fill.
    pub node: Color32,
    /// Default collapsed-group fill.
    pub group: Color32,
    /// Box outline.
    pub outline: Color32,
    /// Edges.
    pub edge: Color32,
    /// Selection outline and selected edges.
    pub select: Color32,
    /// Search highlight outline.
    pub highlight: Color32,
    /// Background.
    pub background: Color32,
}

impl Palette {
    /// A palette for dark or light visuals.
    pub fn new(dark: bool) -> Palette {
        if dark {
            Palette {
                node: Color32::from_rgb(58, 74, 98),
                group: Color32::from_rgb(84, 66, 104),
                outline: Color32::from_gray(140),
                edge: Color32::from_gray(120),
                select: Color32::from_rgb(255, 140, 0),
                highlight: Color32::from_rgb(0, 230, 255),
                background: Color32::from_gray(22),
            }
        } else {
            Palette {
                node: Color32::from_rgb(200, 215, 235),
                group: Color32::from_rgb(222, 205, 238),
                outline: Color32::from_gray(90),
                edge: Color32::from_gray(130),
                select: Color32::from_rgb(230, 100, 0),
                highlight: Color32::from_rgb(0, 140, 220),
                background: Color32::from_gray(250),
            }
        }
    }
}

/// Per-frame inputs of the painter.
pub struct DrawArgs<'a> {
    /// Where to paint (screen).
    pub painter: &'a Painter,
    /// The view's screen rect.
    pub view: Rect,
    /// The camera.
    pub cam: Camera,
    /// The scene.
    pub scene: &'a Scene,
    /// Fill per item (`None`: palette default).
    pub item_fill: &'a [Option<Color32>],
    /// Highlighted items (search matches), ascending.
    pub highlighted: &'a [usize],
    /// The metric's name and its sum per item, shown on group boxes (if a metric is set).
    pub sums: Option<(&'a str, &'a [f64])>,
    /// The selected item, if any.
    pub selected: Option<usize>,
    /// The hovered item, if any.
    pub hovered: Option<usize>,
    /// Colours.
    pub palette: Palette,
}

/// What a frame drew (for the benchmark and tests).
#[derive(Clone, Copy, Debug, Default)]
pub struct DrawStats {
    /// Level of detail used.
    pub lod: Option<Lod>,
    /// Boxes (or overview cells) drawn.
    pub boxes: usize,
    /// Edge segments drawn.
    pub segments: usize,
}

/// Text colour readable on `fill`.
fn text_on(fill: Color32) -> Color32 {
    let l = 0.299 * fill.r() as f32 + 0.587 * fill.g() as f32 + 0.114 * fill.b() as f32;
    if l > 140.0 {
        Color32::from_gray(20)
    } else {
        Color32::from_gray(235)
    }
}

/// `s` cut to at most `max` characters, with an ellipsis when cut (keeps the end for paths).
fn fit_text(s: &str, max: usize, keep_end: bool) -> String {
    let n = s.chars().count();
    if n <= max {
        return s.to_string();
    }
    let keep = max.saturating_sub(1);
    if keep_end {
        let tail: String = s.chars().skip(n - keep).collect();
        format!("…{tail}")
    } else {
        let head: String = s.chars().take(keep).collect();
        format!("{head}…")
    }
}

/// A number in 3 significant digits with a k/M/G/T suffix.
pub fn short_num(v: f64) -> String {
    let a = v.abs();
    let (d, suffix) = if a >= 1e12 {
        (1e12, "T")
    } else if a >= 1e9 {
        (1e9, "G")
    } else if a >= 1e6 {
        (1e6, "M")
    } else if a >= 1e3 {
        (1e3, "k")
    } else {
        (1.0, "")
    };
    let x = v / d;
    let digits = if x.abs() >= 100.0 {
        0
    } else if x.abs() >= 10.0 {
        1
    } else {
        2
    };
    format!("{x:.digits$}{suffix}")
}

/// The second text line of item `i`: groups get the metric sum appended.
fn second_line(a: &DrawArgs, i: usize, base: &str, group: bool) -> String {
    match a.sums {
        Some((name, sums)) if group => match sums.get(i) {
            Some(v) => format!("{base}, {name} {}", short_num(*v)),
            None => base.to_string(),
        },
        _ => base.to_string(),
    }
}

/// Adds a quad along the segment `a`-`b` of width `w` to `mesh`.
fn line_quad(mesh: &mut Mesh, a: Pos2, b: Pos2, w: f32, color: Color32) {
    let d = b - a;
    let len = d.length();
    if len <= f32::EPSILON {
        return;
    }
    let n = vec2(-d.y, d.x) * (0.5 * w / len);
    let i = mesh.vertices.len() as u32;
    mesh.colored_vertex(a + n, color);
    mesh.colored_vertex(a - n, color);
    mesh.colored_vertex(b - n, color);
    mesh.colored_vertex(b + n, color);
    mesh.add_triangle(i, i + 1, i + 2);
    mesh.add_triangle(i, i + 2, i + 3);
}

/// The last overview mesh, reused while the camera, view, scene and fills are unchanged (a
/// fitted view of a huge graph then costs almost nothing per frame).
#[derive(Default)]
pub struct OverviewCache {
    key: Option<(Camera, Rect, usize)>,
    fills: Vec<Option<Color32>>,
    mesh: Arc<Mesh>,
    stats: DrawStats,
}

/// A fast hasher for the overview's integer keys (a multiply-xorshift mix; keys are not
/// attacker-controlled).
#[derive(Default)]
pub struct MixHasher(u64);

impl Hasher for MixHasher {
    fn finish(&self) -> u64 {
        let mut x = self.0;
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^ (x >> 33)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ b as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0 ^ v).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// Paints the scene; returns what was drawn.
pub fn draw(a: &DrawArgs, cache: &mut OverviewCache) -> DrawStats {
    let lod = Lod::of(a.cam.zoom);
    a.painter.rect_filled(a.view, 0.0, a.palette.background);
    let world = a.cam.world_rect(a.view).expand(8.0 / a.cam.zoom.max(1e-6));
    let mut stats = match lod {
        Lod::Full => draw_full(a, world),
        Lod::Boxes => draw_boxes(a, world),
        Lod::Overview => overview_cached(a, world, cache),
    };
    draw_marks(a, world, lod);
    stats.lod = Some(lod);
    stats
}

/// Paints the part of the scene inside `world` binned into screen cells of `a.view`,
/// reusing the cached mesh while camera, view, scene and fills are unchanged.
pub fn overview_cached(a: &DrawArgs, world: Rect, cache: &mut OverviewCache) -> DrawStats {
    let key = Some((a.cam, a.view, a.scene as *const Scene as usize));
    if cache.key != key || cache.fills.as_slice() != a.item_fill {
        let (mesh, st) = draw_overview(a, world);
        cache.key = key;
        cache.fills.clear();
        cache.fills.extend_from_slice(a.item_fill);
        cache.mesh = Arc::new(mesh);
        cache.stats = st;
    }
    a.painter.add(Shape::mesh(cache.mesh.clone()));
    cache.stats
}

/// Whether edge `e` of the visible graph touches `item`.
fn touches(scene: &Scene, e: u32, item: Option<usize>) -> bool {
    match (item, scene.vis.edges.get(e as usize)) {
        (Some(i), Some(edge)) => edge.from == i || edge.to == i,
        _ => false,
    }
}

fn fill_of(a: &DrawArgs, i: usize) -> Color32 {
    match a.item_fill.get(i).copied().flatten() {
        Some(c) => c,
        None => match a.scene.vis.items.get(i) {
            Some(VisItem::Group(_)) => a.palette.group,
            _ => a.palette.node,
        },
    }
}

fn draw_full(a: &DrawArgs, world: Rect) -> DrawStats {
    let mut st = DrawStats::default();
    let z = a.cam.zoom;
    let mut shapes: Vec<Shape> = Vec::new();
    let mut arrows: Vec<Shape> = Vec::new();
    let width = (1.2 * z).clamp(1.0, 2.0);
    a.scene.index.segments_in(world, |s: &Seg| {
        let sel = touches(a.scene, s.edge, a.selected);
        let color = if sel {
            a.palette.select
        } else {
            a.palette.edge
        };
        let (p, q) = (a.cam.to_screen(a.view, s.a), a.cam.to_screen(a.view, s.b));
        shapes.push(Shape::line_segment([p, q], Stroke::new(width, color)));
        if s.last {
            let d = (q - p).normalized();
            let size = (7.0 * z).clamp(4.0, 10.0);
            let n = vec2(-d.y, d.x) * size * 0.45;
            let base = q - d * size;
            arrows.push(Shape::convex_polygon(
                vec![q, base + n, base - n],
                color,
                Stroke::NONE,
            ));
        }
        st.segments += 1;
    });
    a.painter.extend(shapes);
    a.painter.extend(arrows);
    let f1 = FontId::proportional(12.0 * z);
    let f2 = FontId::proportional(10.0 * z);
    a.scene.index.items_in(world, |i| {
        let Some(r) = a.scene.layout.rects.get(i) else {
            return;
        };
        let rs = a.cam.rect_to_screen(a.view, *r);
        let group = matches!(a.scene.vis.items.get(i), Some(VisItem::Group(_)));
        let fill = fill_of(a, i);
        let radius = if group { 7.0 * z } else { 3.0 * z };
        let outline = if a.hovered == Some(i) {
            Stroke::new(2.0, a.palette.select.gamma_multiply(0.7))
        } else {
            Stroke::new(if group { 1.5 } else { 1.0 }, a.palette.outline)
        };
        a.painter
            .rect(rs, radius, fill, outline, StrokeKind::Inside);
        if group {
            // A second outline marks a collapsed group (a stack of boxes).
            a.painter.rect_stroke(
                rs.translate(vec2(3.0, 3.0) * z),
                radius,
                Stroke::new(1.0, a.palette.outline),
                StrokeKind::Inside,
            );
        }
        if let Some(t) = a.scene.text.get(i) {
            let tc = text_on(fill);
            let inner = r.width() - 2.0 * PAD_X;
            // +0.5: the box was sized from these same estimates; do not cut by rounding.
            let n1 = (inner / CHAR_W1 + 0.5).max(1.0) as usize;
            let n2 = (inner / CHAR_W2 + 0.5).max(1.0) as usize;
            let c = rs.center();
            a.painter.text(
                pos2(c.x, c.y - 1.0 * z),
                Align2::CENTER_BOTTOM,
                fit_text(&t[0], n1, group),
                f1.clone(),
                tc,
            );
            a.painter.text(
                pos2(c.x, c.y + 1.0 * z),
                Align2::CENTER_TOP,
                fit_text(&second_line(a, i, &t[1], group), n2, false),
                f2.clone(),
                tc.gamma_multiply(0.85),
            );
        }
        st.boxes += 1;
    });
    st
}

fn draw_boxes(a: &DrawArgs, world: Rect) -> DrawStats {
    let mut st = DrawStats::default();
    let mut mesh = Mesh::default();
    a.scene.index.segments_in(world, |s: &Seg| {
        let color = if touches(a.scene, s.edge, a.selected) {
            a.palette.select
        } else {
            a.palette.edge
        };
        let (p, q) = (a.cam.to_screen(a.view, s.a), a.cam.to_screen(a.view, s.b));
        line_quad(&mut mesh, p, q, 1.0, color);
        st.segments += 1;
    });
    a.scene.index.items_in(world, |i| {
        if let Some(r) = a.scene.layout.rects.get(i) {
            mesh.add_colored_rect(a.cam.rect_to_screen(a.view, *r), fill_of(a, i));
            st.boxes += 1;
        }
    });
    a.painter.add(Shape::mesh(mesh));
    st
}

fn draw_overview(a: &DrawArgs, world: Rect) -> (Mesh, DrawStats) {
    let mut st = DrawStats::default();
    let cols = (a.view.width() / CELL).ceil().max(1.0) as i64;
    let rows = (a.view.height() / CELL).ceil().max(1.0) as i64;
    let cell_of = |p: Pos2| -> (i64, i64) {
        (
            ((p.x - a.view.min.x) / CELL).floor() as i64,
            ((p.y - a.view.min.y) / CELL).floor() as i64,
        )
    };
    let mut mesh = Mesh::default();
    let mut pairs: HashSet<u64, BuildHasherDefault<MixHasher>> = HashSet::default();
    // A segment shorter than one cell on screen spans at most adjacent cells: never drawn.
    let min_extent = CELL / a.cam.zoom.max(1e-9);
    a.scene
        .index
        .long_segments_in(min_extent, world, |s: &Seg| {
            let (p, q) = (a.cam.to_screen(a.view, s.a), a.cam.to_screen(a.view, s.b));
            let (cp, cq) = (cell_of(p), cell_of(q));
            if (cp.0 - cq.0).abs() <= 1 && (cp.1 - cq.1).abs() <= 1 {
                return; // hidden under the boxes' cells
            }
            // Cell coordinates fit in 16 bits each for any real screen (clamped otherwise).
            let c16 = |v: i64| (v.clamp(-32768, 32767) + 32768) as u64;
            let key = c16(cp.0) << 48 | c16(cp.1) << 32 | c16(cq.0) << 16 | c16(cq.1);
            if pairs.insert(key) {
                line_quad(&mut mesh, p, q, 1.0, a.palette.edge);
                st.segments += 1;
            }
        });
    let mut cells = vec![false; (cols * rows) as usize];
    a.scene.index.items_in(world, |i| {
        let Some(r) = a.scene.layout.rects.get(i) else {
            return;
        };
        let rs = a.cam.rect_to_screen(a.view, *r);
        let (c0, c1) = (cell_of(rs.min), cell_of(rs.max));
        let fill = fill_of(a, i);
        for cy in c0.1.max(0)..=c1.1.min(rows - 1) {
            for cx in c0.0.max(0)..=c1.0.min(cols - 1) {
                let k = (cy * cols + cx) as usize;
                if !cells[k] {
                    cells[k] = true;
                    let min = a.view.min + vec2(cx as f32, cy as f32) * CELL;
                    mesh.add_colored_rect(Rect::from_min_size(min, vec2(CELL, CELL)), fill);
                    st.boxes += 1;
                }
            }
        }
    });
    (mesh, st)
}

/// Selection and search-highlight outlines, drawn on top at every level of detail (with a
/// minimum on-screen size so they stay visible when zoomed out).
fn draw_marks(a: &DrawArgs, world: Rect, lod: Lod) {
    let min = if lod == Lod::Full { 0.0 } else { 8.0 };
    let mark = |i: usize, color: Color32, w: f32| {
        if let Some(r) = a.scene.layout.rects.get(i) {
            if !r.intersects(world) {
                return;
            }
            let mut rs = a.cam.rect_to_screen(a.view, *r);
            if rs.width() < min || rs.height() < min {
                rs = Rect::from_center_size(rs.center(), rs.size().max(vec2(min, min)));
            }
            a.painter.rect_stroke(
                rs.expand(w * 0.5 + 1.0),
                3.0,
                Stroke::new(w, color),
                StrokeKind::Middle,
            );
        }
    };
    for &i in a.highlighted {
        mark(i, a.palette.highlight, 2.0);
    }
    if let Some(i) = a.selected {
        mark(i, a.palette.select, 3.0);
    }
}
