//! Plots: latency by op type sums to the total and is sorted; the memory timeline is the
//! planner's and maps every step to its estimator op; the three plots draw headlessly, and a
//! click on a scatter point returns its op.

mod analysis_common;

use analysis_common::{load, price};
use egui_kittest::Harness;
use petasos_compiler::cost::Estimator;
use petasos_compiler::plan::{plan, PlanOptions};
use petasos_viewer::plots::{
    latency_by_type, nearest_point, scatter_points, show_latency_by_type, show_macs_vs_latency,
    show_memory_over_time, MemoryTimeline,
};

#[test]
fn latency_by_type_is_sorted_and_complete() {
    let g = load("resnet18");
    let est = price(&g, "apple-m2");
    let types = latency_by_type(&est);
    let total: f64 = types.iter().map(|t| t.latency_s).sum();
    let want = est.sums().latency_s;
    assert!((total - want).abs() <= 1e-9 * want, "{total} vs {want}");
    assert_eq!(
        types.iter().map(|t| t.ops).sum::<usize>(),
        est.work.ops.len()
    );
    assert!(types.windows(2).all(|w| w[0].latency_s >= w[1].latency_s));
    assert_eq!(types.first().map(|t| t.op_type.as_str()), Some("Conv"));
}

#[test]
fn memory_timeline_is_the_planners() {
    let g = load("resnet18");
    let est = price(&g, "apple-m2");
    let tl = MemoryTimeline::plan(&g, &est).expect("plan");
    let p = plan(&g, &PlanOptions::default()).expect("plan");
    assert_eq!(tl.live_bytes, p.timeline);
    assert_eq!(tl.live_bytes.iter().max().copied(), Some(p.max_live_bytes));
    assert_eq!(tl.live_bytes.len(), est.work.ops.len(), "one step per op");
    for (step, op) in tl.op_of_step.iter().enumerate() {
        let op = op.unwrap_or_else(|| panic!("step {step} has no op"));
        assert_eq!(est.work.ops[op].name, tl.names[step]);
    }
    assert!(tl.max_live_bytes > 0 && tl.arena_bytes >= tl.max_live_bytes);
}

#[test]
fn nearest_point_picks_within_reach() {
    let pts = [
        (7, egui::pos2(10.0, 10.0)),
        (3, egui::pos2(20.0, 10.0)),
        (9, egui::pos2(100.0, 100.0)),
    ];
    assert_eq!(nearest_point(&pts, egui::pos2(12.0, 11.0), 10.0), Some(7));
    assert_eq!(nearest_point(&pts, egui::pos2(17.0, 10.0), 10.0), Some(3));
    assert_eq!(nearest_point(&pts, egui::pos2(60.0, 60.0), 10.0), None);
}

struct State {
    est: Estimator,
    tl: MemoryTimeline,
    selected: Vec<usize>,
    clicked: Option<usize>,
    transform: Option<egui_plot::PlotTransform>,
}

#[test]
fn plots_draw_and_a_click_picks_an_op() {
    let g = load("resnet18");
    let est = price(&g, "apple-m2");
    let tl = MemoryTimeline::plan(&g, &est).expect("plan");
    let pts = scatter_points(&est);
    assert!(pts.len() > 20);
    // The op with the most MACs, highlighted as selected.
    let &(target, at) = pts
        .iter()
        .max_by(|a, b| a.1[0].total_cmp(&b.1[0]))
        .expect("points");
    let state = State {
        est,
        tl,
        selected: vec![target],
        clicked: None,
        transform: None,
    };
    let mut h = Harness::builder()
        .with_size([700.0, 1200.0])
        .build_ui_state(
            |ui, s: &mut State| {
                ui.allocate_ui(egui::vec2(680.0, 300.0), |ui| {
                    show_latency_by_type(ui, &s.est);
                });
                ui.allocate_ui(egui::vec2(680.0, 300.0), |ui| {
                    show_memory_over_time(ui, &s.tl, &s.selected);
                });
                ui.allocate_ui(egui::vec2(680.0, 400.0), |ui| {
                    let out = show_macs_vs_latency(ui, &s.est, &s.selected);
                    if out.clicked.is_some() {
                        s.clicked = out.clicked;
                    }
                    s.transform = Some(out.transform);
                });
            },
            state,
        );
    let t = h.state().transform.expect("scatter drawn");
    let pos = t.position_from_point(&egui_plot::PlotPoint::new(at[0], at[1]));
    assert!(
        t.frame().contains(pos),
        "point {pos:?} inside {:?}",
        t.frame()
    );
    // Click a little off the point: still within reach.
    let press = |pressed| egui::Event::PointerButton {
        pos: pos + egui::vec2(2.0, -2.0),
        button: egui::PointerButton::Primary,
        pressed,
        modifiers: egui::Modifiers::NONE,
    };
    h.hover_at(pos + egui::vec2(2.0, -2.0));
    h.run();
    h.event(press(true));
    h.step();
    h.event(press(false));
    h.run();
    let s = h.state();
    let got = s.clicked.expect("a click on a point picks an op");
    // Ops with identical MACs and latency share a point; any of them is right.
    let p = pts
        .iter()
        .find(|p| p.0 == got)
        .expect("clicked op is plotted")
        .1;
    assert!(
        (p[0] - at[0]).abs() < 1e-9 && (p[1] - at[1]).abs() < 1e-9,
        "clicked op {got} at {p:?}, wanted {target} at {at:?}"
    );
}
