//! The minimap: the whole layout binned into a small corner rect (cached: it only changes with
//! the scene or the fills), with the main view's visible area outlined. Pressing or dragging on
//! it moves the main camera there.

use super::draw::{overview_cached, DrawArgs, OverviewCache, Palette};
use super::view::Camera;
use super::worker::Scene;
use egui::{vec2, Color32, Painter, Pos2, Rect, Stroke, StrokeKind};

/// Minimap size (points) and its margin from the view's corner.
const SIZE: egui::Vec2 = vec2(180.0, 140.0);
const MARGIN: f32 = 8.0;

/// The minimap's state (its cached mesh).
#[derive(Default)]
pub struct Minimap {
    cache: OverviewCache,
}

impl Minimap {
    /// Where the minimap goes in `view` (bottom-right), or `None` when the view is too small.
    pub fn rect(view: Rect) -> Option<Rect> {
        if view.width() < 3.0 * SIZE.x || view.height() < 2.5 * SIZE.y {
            return None;
        }
        Some(Rect::from_min_size(
            view.max - SIZE - vec2(MARGIN, MARGIN),
            SIZE,
        ))
    }

    /// The camera that fits `bounds` into `mini`.
    pub fn camera(bounds: Rect, mini: Rect) -> Camera {
        let b = bounds.expand(10.0);
        let z = (mini.width() / b.width()).min(mini.height() / b.height());
        Camera {
            center: b.center(),
            zoom: z.max(1e-9),
        }
    }

    /// The world point under screen point `p` of the minimap.
    pub fn to_world(scene: &Scene, mini: Rect, p: Pos2) -> Pos2 {
        Self::camera(scene.layout.bounds, mini).to_world(mini, p)
    }

    /// Paints the minimap for `scene` with the main view's visible world rect outlined.
    pub fn draw(
        &mut self,
        painter: &Painter,
        mini: Rect,
        scene: &Scene,
        item_fill: &[Option<Color32>],
        visible_world: Rect,
        palette: Palette,
    ) {
        let painter = painter.with_clip_rect(mini);
        painter.rect_filled(mini, 4.0, palette.background.gamma_multiply(0.92));
        let cam = Self::camera(scene.layout.bounds, mini);
        let args = DrawArgs {
            painter: &painter,
            view: mini,
            cam,
            scene,
            item_fill,
            highlighted: &[],
            sums: None,
            selected: None,
            hovered: None,
            palette,
        };
        overview_cached(&args, scene.layout.bounds.expand(10.0), &mut self.cache);
        let mut vis = cam.rect_to_screen(mini, visible_world);
        // Keep the outline visible when the view is tiny relative to the graph.
        if vis.width() < 4.0 || vis.height() < 4.0 {
            vis = Rect::from_center_size(vis.center(), vis.size().max(vec2(4.0, 4.0)));
        }
        painter.rect_stroke(
            vis,
            1.0,
            Stroke::new(1.5, palette.select),
            StrokeKind::Middle,
        );
        painter.rect_stroke(
            mini,
            4.0,
            Stroke::new(1.0, palette.outline),
            StrokeKind::Inside,
        );
    }
}
