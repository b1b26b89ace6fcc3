//! GraphView driven headlessly with egui_kittest (no GPU): clicking a node selects it, clicking
//! empty space clears the selection, `focus` brings a node into view (expanding the group
//! hiding it), double-clicking a collapsed group expands it, hovering a node shows a tooltip.

use egui::{Event, Modifiers, PointerButton, Pos2, Rect};
use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use petasos_viewer::graph::hierarchy::VisItem;
use petasos_viewer::graph::{synth, Camera, GEdge, GNode, GraphData, GraphView, NodeStyle};
use std::sync::Arc;

struct State {
    view: GraphView,
    sel: Option<usize>,
    style: NodeStyle,
}

fn harness(view: GraphView) -> Harness<'static, State> {
    let state = State {
        view,
        sel: None,
        style: NodeStyle::default(),
    };
    let mut h = Harness::builder()
        .with_size(egui::vec2(900.0, 700.0))
        .with_step_dt(1.0 / 60.0)
        .build_ui_state(
            |ui, s: &mut State| {
                s.view.show(ui, &s.style, &mut s.sel);
            },
            state,
        );
    h.run_steps(2);
    h
}

fn click(h: &mut Harness<'static, State>, pos: Pos2, count: usize) {
    h.hover_at(pos);
    h.step();
    // All presses and releases queued at once; egui spreads them over frames (60 fps here, well
    // within the double-click window).
    for _ in 0..count {
        for pressed in [true, false] {
            h.event(Event::PointerButton {
                pos,
                button: PointerButton::Primary,
                pressed,
                modifiers: Modifiers::NONE,
            });
        }
    }
    h.run_steps(4);
}

/// A small diamond with a tail: 0 -> {1, 2} -> 3 -> 4.
fn diamond() -> GraphData {
    let node = |label: &str, op: &str| GNode {
        label: label.into(),
        op_type: op.into(),
        path: format!("/m/{label}"),
    };
    let e = |from, to| GEdge {
        from,
        to,
        label: "float[1,8]".into(),
    };
    GraphData {
        nodes: vec![
            node("input_proj", "MatMul"),
            node("left", "Relu"),
            node("right", "Sigmoid"),
            node("join", "Add"),
            node("out", "Softmax"),
        ],
        edges: vec![e(0, 1), e(0, 2), e(1, 3), e(2, 3), e(3, 4)],
    }
}

fn visible(view: Rect, r: Rect) -> bool {
    view.contains_rect(r)
}

#[test]
fn clicking_a_node_selects_it_and_empty_space_clears() {
    let mut v = GraphView::with_budget(Arc::new(diamond()), None);
    v.wait_for_layout();
    v.fit();
    let mut h = harness(v);
    for target in [3usize, 1, 4] {
        let r = h.state().view.node_screen_rect(target).expect("laid out");
        let view = h.state().view.view_rect().expect("shown");
        assert!(
            visible(view, r),
            "fitted view shows node {target}: {r:?} in {view:?}"
        );
        click(&mut h, r.center(), 1);
        assert_eq!(h.state().sel, Some(target));
    }
    // Empty space: the view's top-left corner (the layout is centred, so nothing is there).
    let view = h.state().view.view_rect().expect("shown");
    click(&mut h, view.min + egui::vec2(3.0, 3.0), 1);
    assert_eq!(h.state().sel, None);
}

#[test]
fn focus_brings_a_node_into_view() {
    let data = Arc::new(synth::transformer(3000, 4));
    let n = data.nodes.len();
    let mut v = GraphView::with_budget(data, None);
    v.wait_for_layout();
    v.fit();
    let mut h = harness(v);
    let view = h.state().view.view_rect().expect("shown");
    let target = n * 2 / 3;
    // Fitted: a 3000-node graph is far too small to read.
    let before = h.state().view.node_screen_rect(target).expect("laid out");
    assert!(before.height() < 5.0, "fitted node is tiny: {before:?}");
    h.state_mut().view.focus(target);
    h.run_steps(1);
    let after = h.state().view.node_screen_rect(target).expect("laid out");
    assert!(visible(view, after), "{after:?} in {view:?}");
    assert!(
        after.height() >= 20.0,
        "focused node is readable: {after:?}"
    );
    assert!((after.center() - view.center()).length() < 2.0, "centred");
}

#[test]
fn focus_expands_the_group_hiding_the_node() {
    let data = Arc::new(synth::residual_chain(5000));
    let mut v = GraphView::new(data.clone()); // default collapse: groups hide most nodes
    v.wait_for_layout();
    v.fit();
    let target = 4321;
    let scene = v.scene().expect("laid out");
    let item = scene.vis.node_item[target];
    assert!(
        matches!(scene.vis.items[item], VisItem::Group(_)),
        "hidden at first"
    );
    let mut h = harness(v);
    h.state_mut().view.focus(target);
    h.state_mut().view.wait_for_layout();
    h.run_steps(1);
    let scene = h.state().view.scene().expect("laid out");
    assert_eq!(
        scene.vis.items[scene.vis.node_item[target]],
        VisItem::Node(target)
    );
    let view = h.state().view.view_rect().expect("shown");
    let r = h.state().view.node_screen_rect(target).expect("laid out");
    assert!(visible(view, r), "{r:?} in {view:?}");
}

#[test]
fn double_click_expands_a_collapsed_group() {
    let data = Arc::new(synth::residual_chain(3000));
    let mut v = GraphView::new(data.clone());
    v.wait_for_layout();
    v.fit();
    let scene = v.scene().expect("laid out");
    let before = scene.vis.items.len();
    let (item, g) = scene
        .vis
        .items
        .iter()
        .enumerate()
        .find_map(|(i, it)| match it {
            VisItem::Group(g) => Some((i, *g)),
            _ => None,
        })
        .expect("a collapsed group");
    let node = scene
        .vis
        .node_item
        .iter()
        .position(|&i| i == item)
        .expect("member");
    let mut h = harness(v);
    let view = h.state().view.view_rect().expect("shown");
    // Zoom onto the group's box so the double-click lands on it (not `focus`, which would
    // expand the group to reveal the node).
    let centre = h.state().view.scene().expect("laid out").layout.rects[item].center();
    h.state_mut().view.set_camera(Camera {
        center: centre,
        zoom: 1.0,
    });
    h.run_steps(1);
    let r = h.state().view.node_screen_rect(node).expect("laid out");
    assert!(visible(view, r));
    click(&mut h, r.center(), 2);
    h.state_mut().view.wait_for_layout();
    h.run_steps(1);
    assert!(h.state().view.hierarchy().is_expanded(g));
    let after = h.state().view.scene().expect("laid out").vis.items.len();
    assert!(after > before, "{after} > {before}");
    // The selection is untouched by group clicks.
    assert_eq!(h.state().sel, None);
}

#[test]
fn hovering_a_node_shows_its_tooltip() {
    let mut v = GraphView::with_budget(Arc::new(diamond()), None);
    v.wait_for_layout();
    v.fit();
    let mut h = harness(v);
    let r = h.state().view.node_screen_rect(2).expect("laid out");
    h.hover_at(r.center());
    h.run_steps(60); // past the tooltip delay
    assert!(
        h.query_by_label_contains("op: Sigmoid").is_some(),
        "tooltip with the op type"
    );
}

#[test]
fn hovering_an_edge_shows_its_shape() {
    let mut v = GraphView::with_budget(Arc::new(diamond()), None);
    v.wait_for_layout();
    v.fit();
    let mut h = harness(v);
    // Edge 4 (join -> out): the middle of its path, on screen.
    let (cam, view) = (
        h.state().view.camera(),
        h.state().view.view_rect().expect("shown"),
    );
    let path = h
        .state()
        .view
        .scene()
        .expect("laid out")
        .layout
        .edge_path(4)
        .to_vec();
    assert!(path.len() >= 2);
    let mid = cam.to_screen(view, path[0] + (path[path.len() - 1] - path[0]) * 0.5);
    h.hover_at(mid);
    h.run_steps(60); // past the tooltip delay
    assert!(
        h.query_by_label_contains("join -> out").is_some(),
        "edge tooltip"
    );
    assert!(
        h.query_by_label_contains("float[1,8]").is_some(),
        "edge shape"
    );
}

#[test]
fn pinch_zooms_around_the_pointer_and_f_fits() {
    let data = Arc::new(synth::transformer(1000, 2));
    let mut v = GraphView::with_budget(data, None);
    v.wait_for_layout();
    v.fit();
    let mut h = harness(v);
    let view = h.state().view.view_rect().expect("shown");
    let fitted = h.state().view.camera();
    let p = view.center() + egui::vec2(40.0, -120.0);
    let world_before = fitted.to_world(view, p);
    h.hover_at(p);
    h.event(Event::Zoom(1.5));
    h.step();
    let cam = h.state().view.camera();
    assert!(
        (cam.zoom / fitted.zoom - 1.5).abs() < 1e-3,
        "zoomed: {cam:?}"
    );
    let world_after = cam.to_world(view, p);
    assert!(
        (world_after - world_before).length() < 1e-2 / cam.zoom,
        "point under the pointer stays"
    );
    // Drag pans by the pointer's movement.
    h.event(Event::PointerButton {
        pos: p,
        button: PointerButton::Primary,
        pressed: true,
        modifiers: Modifiers::NONE,
    });
    h.step();
    for k in 1..=4 {
        h.hover_at(p + egui::vec2(0.0, 25.0 * k as f32));
        h.step();
    }
    h.event(Event::PointerButton {
        pos: p + egui::vec2(0.0, 100.0),
        button: PointerButton::Primary,
        pressed: false,
        modifiers: Modifiers::NONE,
    });
    h.step();
    let panned = h.state().view.camera();
    let moved = (cam.center - panned.center) * panned.zoom;
    assert!(
        moved.y > 50.0,
        "dragged down moves the camera up: {moved:?}"
    );
    // F fits again.
    h.hover_at(view.center());
    h.key_press(egui::Key::F);
    h.step();
    let refit = h.state().view.camera();
    assert!(
        (refit.zoom - fitted.zoom).abs() < 1e-6 && (refit.center - fitted.center).length() < 1e-3
    );
}

#[test]
fn clicking_the_minimap_moves_the_camera() {
    use petasos_viewer::graph::minimap::Minimap;
    let data = Arc::new(synth::transformer(2000, 4));
    let mut v = GraphView::with_budget(data, None);
    v.wait_for_layout();
    v.fit();
    let mut h = harness(v);
    // Zoomed in on the first node: the graph no longer fits, so the minimap shows.
    h.state_mut().view.focus(0);
    h.run_steps(1);
    let view = h.state().view.view_rect().expect("shown");
    let mini = Minimap::rect(view).expect("view large enough for a minimap");
    let target = mini.center() + egui::vec2(0.0, mini.height() * 0.3);
    let want = Minimap::to_world(h.state().view.scene().expect("laid out"), mini, target);
    let before = h.state().view.camera();
    click(&mut h, target, 1);
    let after = h.state().view.camera();
    assert!(
        (after.center - want).length() < 1.0,
        "{after:?} vs {want:?}"
    );
    assert!((after.center - before.center).length() > 100.0, "moved");
    assert_eq!(after.zoom, before.zoom);
    assert_eq!(h.state().sel, None, "a minimap click selects nothing");
}

#[test]
fn collapsed_group_tooltip_sums_the_metric() {
    let data = Arc::new(synth::residual_chain(3000));
    let values: Vec<f64> = (0..data.nodes.len())
        .map(|i| (i % 13) as f64 * 0.5)
        .collect();
    let mut v = GraphView::new(data.clone());
    v.set_metric("latency", values.clone());
    v.wait_for_layout();
    v.fit();
    let scene = v.scene().expect("laid out");
    let item = scene
        .vis
        .items
        .iter()
        .position(|it| matches!(it, VisItem::Group(_)))
        .expect("a collapsed group");
    let want: f64 = (0..data.nodes.len())
        .filter(|&n| scene.vis.node_item[n] == item)
        .map(|n| values[n])
        .sum();
    let count = scene.vis.item_count[item];
    let centre = scene.layout.rects[item].center();
    let mut h = harness(v);
    h.state_mut().view.set_camera(Camera {
        center: centre,
        zoom: 1.0,
    });
    h.run_steps(1);
    let view = h.state().view.view_rect().expect("shown");
    h.hover_at(view.center());
    h.run_steps(60);
    assert!(h
        .query_by_label_contains(&format!("{count} ops (collapsed)"))
        .is_some());
    assert!(
        h.query_by_label_contains(&format!("sum of latency: {want:.4}"))
            .is_some(),
        "sum {want}"
    );
}

#[test]
fn empty_graph_and_bad_edges_do_not_break_the_view() {
    let data = GraphData {
        nodes: vec![],
        edges: vec![GEdge {
            from: 3,
            to: 9,
            label: String::new(),
        }],
    };
    let mut v = GraphView::new(Arc::new(data));
    v.wait_for_layout();
    v.fit();
    let mut h = harness(v);
    let view = h.state().view.view_rect().expect("shown");
    click(&mut h, view.center(), 2);
    h.state_mut().view.focus(5);
    h.state_mut().view.fit();
    h.run_steps(2);
    assert_eq!(h.state().sel, None);
    assert!(h.state().view.node_screen_rect(0).is_none());
}

#[test]
fn layout_runs_off_thread_and_the_old_layout_stays_until_the_new_one_is_ready() {
    let data = Arc::new(synth::transformer(50_000, 8));
    let mut v = GraphView::new(data);
    // Just started: a progress fraction, no scene yet; the constructor did not block.
    let p = v.progress().expect("layout job running");
    assert!((0.0..=1.0).contains(&p));
    assert!(v.scene().is_none());
    v.wait_for_layout();
    v.fit();
    assert!(v.progress().is_none());
    let before = v.scene().expect("laid out").vis.items.len();
    let g = v
        .scene()
        .and_then(|s| {
            s.vis.items.iter().find_map(|it| match it {
                VisItem::Group(g) => Some(*g),
                _ => None,
            })
        })
        .expect("a collapsed group");
    v.set_group_expanded(g, true);
    // Re-layout pending: the old scene is still the one shown.
    assert!(v.progress().is_some());
    assert_eq!(v.scene().expect("old scene").vis.items.len(), before);
    v.wait_for_layout();
    v.fit();
    assert!(v.scene().expect("new scene").vis.items.len() > before);
}

#[test]
fn a_tall_graph_opens_readable_at_its_top() {
    // Fitted, a 3000-node graph's boxes are a few pixels; it opens instead at a zoom that draws
    // labels, with its first rank in view, and F fits it all.
    let data = Arc::new(synth::transformer(3000, 4));
    let mut v = GraphView::with_budget(data, None);
    v.wait_for_layout();
    let mut h = harness(v);
    let view = h.state().view.view_rect().expect("shown");
    let first = h.state().view.node_screen_rect(0).expect("laid out");
    assert!(first.height() >= 10.0, "opening box is readable: {first:?}");
    assert!(
        visible(view, first),
        "first node in view: {first:?} in {view:?}"
    );
    let opening = h.state().view.camera().zoom;
    h.hover_at(view.center());
    h.key_press(egui::Key::F);
    h.step();
    assert!(
        h.state().view.camera().zoom < opening * 0.5,
        "F fits the whole graph"
    );
}
