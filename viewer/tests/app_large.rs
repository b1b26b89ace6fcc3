//! A synthetic 50,000-op model in the app: the document builds, the table sorts, and frames
//! (egui pass with the virtualised table, while scrolling and jumping to far rows) stay fast.
//! Prints the measured times (build, sort, frame percentiles).

#[path = "app_common.rs"]
mod common;

use petasos_ir::builder::GraphBuilder;
use petasos_ir::{DType, ValueType};
use petasos_viewer::doc::Document;
use petasos_viewer::table::{value, Col};
use std::time::Instant;

/// A chain of `n` ops: MatMul (64x64 weight) then Relu, Add, Sigmoid, Mul repeating, in
/// blocks of 100 ops (layer paths `/block{k}`).
fn chain(n: usize) -> petasos_ir::Graph {
    let mut b = GraphBuilder::new("chain", 1);
    let mut x = b.input("x", ValueType::known(DType::F32, &[1, 64]));
    let mut skip = x;
    for i in 0..n {
        if i % 100 == 0 {
            if i > 0 {
                b.pop();
            }
            b.push(&format!("block{}", i / 100));
        }
        x = match i % 5 {
            0 => {
                let w = b.weight("w", DType::F32, &[64, 64], 0.1);
                b.op("MatMul", &[x, w], &[]).expect("matmul")
            }
            1 => b.op("Relu", &[x], &[]).expect("relu"),
            2 => {
                let y = b.op("Add", &[x, skip], &[]).expect("add");
                skip = y;
                y
            }
            3 => b.op("Sigmoid", &[x], &[]).expect("sigmoid"),
            _ => b.op("Mul", &[x, skip], &[]).expect("mul"),
        };
    }
    b.pop();
    b.output(x, "y");
    b.finish().expect("finish")
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let k = ((v.len() as f64 - 1.0) * p).round() as usize;
    v.get(k).copied().unwrap_or(0.0)
}

#[test]
fn fifty_thousand_rows_stay_fast() {
    let n = 50_000;
    let t = Instant::now();
    let g = chain(n);
    let built = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let doc = Document::from_graph(g, "chain50k", "host").expect("document");
    let doc_s = t.elapsed().as_secs_f64();
    assert_eq!(doc.ops.len(), n);
    assert!(
        doc.row_of_op.iter().all(|r| r.is_some()),
        "every op has an estimate"
    );
    assert_eq!(doc.graph_data.nodes.len(), n);
    let lat: Vec<f64> = (0..n).map(|i| value(&doc, i, Col::Latency)).collect();
    let max = lat.iter().copied().fold(f64::MIN, f64::max);

    let mut h = common::harness(doc, (1600.0, 900.0));
    h.run_steps(2);
    let t = Instant::now();
    h.state_mut().session.table.sort_by(Col::Latency);
    h.step();
    let sort_s = t.elapsed().as_secs_f64();
    let order = h.state().session.table.order().to_vec();
    assert_eq!(order.len(), n);
    assert_eq!(lat[order[0]], max);

    // Frames: scrolling the table, and jumping the selection to far rows.
    let mut frames = Vec::new();
    h.hover_at(egui::pos2(300.0, 450.0));
    h.step();
    for k in 0..120 {
        if k % 10 == 0 {
            h.state_mut().select(Some((k * 4099) % n));
        } else {
            h.event(egui::Event::MouseWheel {
                unit: egui::MouseWheelUnit::Line,
                delta: egui::vec2(0.0, -20.0),
                modifiers: egui::Modifiers::NONE,
                phase: egui::TouchPhase::Move,
                source: egui::MouseWheelSource::Wheel,
            });
        }
        let t = Instant::now();
        h.step();
        frames.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let (p50, p95, worst) = (
        pct(&mut frames, 0.5),
        pct(&mut frames, 0.95),
        pct(&mut frames, 1.0),
    );
    assert_eq!(
        h.state().tabs.tab,
        petasos_viewer::app::Tab::Hidden,
        "plots start hidden"
    );
    // The same with the plots tab open (every point of three plots drawn each frame).
    h.state_mut().tabs.tab = petasos_viewer::app::Tab::Plots;
    h.step();
    let mut plot_frames = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        h.step();
        plot_frames.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let plots_p50 = pct(&mut plot_frames, 0.5);
    common::loud(&format!(
        "50k ops with the plots tab open: frame p50 {plots_p50:.2} ms"
    ));
    common::loud(&format!(
        "50k ops: graph built in {built:.2} s, document (estimate + stats) {doc_s:.2} s, \
         sort by latency {:.1} ms; frame (egui pass: table, graph, details) p50 {p50:.2} ms, \
         p95 {p95:.2} ms, max {worst:.2} ms",
        sort_s * 1e3
    ));
    // Frame times are printed, not asserted (speed targets live in benchmarks:
    // `cargo run --release -p petasos-viewer --bin graph_bench`).
    assert!(h.state().session.selection.is_some());
}

/// Load times through the loader thread (import or build, estimate, statistics), printed;
/// the progress reaches 1.0 and the stages are reported.
#[test]
fn load_times_through_the_loader() {
    let mut sources: Vec<String> = ["resnet18", "llama2-7b", "afm-server-ptmoe"]
        .map(String::from)
        .to_vec();
    if let Some(m) = common::shared_models("load_times (shared models)") {
        for n in ["resnet18", "densenet121", "tiny_llama"] {
            sources.push(m.join(format!("{n}.onnx")).to_string_lossy().into_owned());
        }
    }
    for s in sources {
        let mut l = petasos_viewer::loader::Loader::spawn(&s, "host", || {});
        let t = Instant::now();
        let mut seen = Vec::new();
        let doc = loop {
            let p = l.progress();
            if seen.last() != Some(&p.stage) {
                seen.push(p.stage.clone());
            }
            if let Some(r) = l.poll() {
                break r.unwrap_or_else(|e| panic!("{s}: {e}"));
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        };
        let wall = t.elapsed().as_secs_f64();
        assert!(!doc.ops.is_empty());
        assert!(!seen.is_empty());
        assert_eq!(l.progress().fraction, 1.0, "{s}");
        common::loud(&format!(
            "load {s}: {} ops, {:.2} s (stages seen: {})",
            doc.ops.len(),
            wall,
            seen.join(" > ")
        ));
    }
}
