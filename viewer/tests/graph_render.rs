//! Renders the graph view with wgpu (software adapter, lavapipe, where installed) and checks
//! pixels: a node's box shows its metric fill, the background elsewhere. Writes the images
//! to the test's tmp dir for inspection. Prints a loud NOT RUN line when no adapter exists.

use egui_kittest::Harness;
use petasos_viewer::graph::{metric_colours, synth, Camera, GraphData, GraphView, NodeStyle};
use std::sync::Arc;

struct State {
    view: GraphView,
    sel: Option<usize>,
    style: NodeStyle,
}

fn style_for(g: &GraphData) -> NodeStyle {
    let values: Vec<f64> = (0..g.nodes.len()).map(|i| (i % 17) as f64).collect();
    NodeStyle {
        fill: metric_colours(&values),
        highlight: (0..g.nodes.len()).map(|i| i % 11 == 5).collect(),
    }
}

/// An RGBA8 image: width, height, pixels row-major.
struct Img(u32, u32, Vec<u8>);

impl Img {
    fn px(&self, x: u32, y: u32) -> [u8; 4] {
        let i = ((y * self.0 + x) * 4) as usize;
        [self.2[i], self.2[i + 1], self.2[i + 2], self.2[i + 3]]
    }
}

fn render(
    name: &str,
    view: GraphView,
    style: NodeStyle,
    cam: Option<Camera>,
) -> Option<(Img, Harness<'static, State>)> {
    let mut h = Harness::builder()
        .with_size(egui::vec2(1000.0, 700.0))
        .build_ui_state(
            |ui, s: &mut State| {
                s.view.show(ui, &s.style, &mut s.sel);
            },
            State {
                view,
                sel: Some(3),
                style,
            },
        );
    h.run_steps(2);
    if let Some(c) = cam {
        h.state_mut().view.set_camera(c);
        h.run_steps(1);
    }
    match h.render() {
        Ok(img) => {
            let path =
                std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.png"));
            match img.save(&path) {
                Ok(()) => eprintln!("wrote {}", path.display()),
                Err(e) => eprintln!("could not write {}: {e}", path.display()),
            }
            Some((Img(img.width(), img.height(), img.into_raw()), h))
        }
        Err(e) => {
            eprintln!("NOT RUN: no wgpu adapter ({e})");
            None
        }
    }
}

#[test]
fn rendered_boxes_show_their_fill() {
    let g = Arc::new(synth::transformer(600, 4));
    let style = style_for(&g);
    let mut v = GraphView::with_budget(g.clone(), None);
    v.wait_for_layout();
    v.fit();
    let centre = v
        .scene()
        .map(|s| s.layout.rects[40].center())
        .expect("laid out");
    let Some((img, h)) = render(
        "graph_full",
        v,
        style.clone(),
        Some(Camera {
            center: centre,
            zoom: 1.0,
        }),
    ) else {
        return;
    };
    let r = h.state().view.node_screen_rect(40).expect("laid out");
    let (x, y) = ((r.min.x + 3.0) as u32, (r.center().y) as u32);
    let px = img.px(x, y);
    let want = style.fill[40].expect("filled");
    let close = |a: u8, b: u8| (a as i32 - b as i32).abs() <= 12;
    assert!(
        close(px[0], want.r()) && close(px[1], want.g()) && close(px[2], want.b()),
        "pixel {px:?} at ({x},{y}) vs fill {want:?}"
    );
    // Not a uniform image.
    let first = img.px(0, img.1 - 1);
    assert!(img.2.chunks(4).any(|p| p != first));

    // The other levels of detail render too (images for inspection).
    let mut v = GraphView::new(g.clone());
    v.wait_for_layout();
    v.fit();
    let _ = render("graph_collapsed_fit", v, style.clone(), None);
    let mut v = GraphView::with_budget(Arc::new(synth::transformer(50_000, 8)), None);
    v.wait_for_layout();
    v.fit();
    let _ = render("graph_50k_fit", v, NodeStyle::default(), None);
    let mut v = GraphView::with_budget(g, None);
    v.wait_for_layout();
    v.fit();
    let c = v
        .scene()
        .map(|s| s.layout.bounds.center())
        .expect("laid out");
    let _ = render(
        "graph_boxes",
        v,
        style,
        Some(Camera {
            center: c,
            zoom: 0.2,
        }),
    );
}
