//! `graph_bench`: times the graph view on synthetic 50,000-node graphs — layout (min/median over
//! runs) and headless frames (egui logic + tessellation, 1600x1000 points, no GPU) fitted to the
//! window and at 100% zoom while panning — and prints frame-time percentiles.
//!
//! Usage: `graph_bench [--nodes N] [--frames F] [--runs R]`.

use anyhow::{bail, Context as _, Result};
use egui::{pos2, vec2, Event, RawInput, Rect};
use petasos_viewer::graph::draw::FULL_ZOOM;
use petasos_viewer::graph::hierarchy::Hierarchy;
use petasos_viewer::graph::{
    build_scene, metric_colours, synth, Camera, GraphData, GraphView, NodeStyle,
};
use std::sync::Arc;
use std::time::Instant;

struct Args {
    nodes: usize,
    frames: usize,
    runs: usize,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        nodes: 50_000,
        frames: 200,
        runs: 5,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().with_context(|| format!("{k} needs a value"))?;
        let n: usize = v
            .parse()
            .with_context(|| format!("{k} {v}: not a number"))?;
        match k.as_str() {
            "--nodes" => a.nodes = n,
            "--frames" => a.frames = n.max(1),
            "--runs" => a.runs = n.max(1),
            _ => bail!("unknown argument {k} (use --nodes, --frames, --runs)"),
        }
    }
    Ok(a)
}

/// Sorted-sample percentile.
fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(name: &str, mut ms: Vec<f64>, extra: &str) {
    ms.sort_by(|a, b| a.total_cmp(b));
    println!(
        "  {name:<28} frames {:>4}  p50 {:>7.2} ms  p90 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms  {extra}",
        ms.len(),
        pct(&ms, 0.5),
        pct(&ms, 0.9),
        pct(&ms, 0.99),
        ms.last().copied().unwrap_or(f64::NAN)
    );
}

fn style_for(data: &GraphData) -> NodeStyle {
    let values: Vec<f64> = (0..data.nodes.len())
        .map(|i| ((i * 7919) % 1000) as f64 + 1.0)
        .collect();
    NodeStyle {
        fill: metric_colours(&values),
        highlight: (0..data.nodes.len()).map(|i| i % 500 == 0).collect(),
    }
}

/// Runs `frames` frames; `camera(f)` (if any) sets the camera before frame `f`. Returns the
/// per-frame CPU time (ms) of `Context::run_ui` + `Context::tessellate`, and a summary.
fn frames(
    view: &mut GraphView,
    style: &NodeStyle,
    frames: usize,
    camera: &dyn Fn(usize, &GraphView) -> Option<Camera>,
) -> (Vec<f64>, String) {
    let ctx = egui::Context::default();
    let screen = Rect::from_min_size(pos2(0.0, 0.0), vec2(1600.0, 1000.0));
    let mut sel = None;
    let mut times = Vec::with_capacity(frames);
    let (mut boxes, mut segs, mut prims) = (0usize, 0usize, 0usize);
    let mut lod = None;
    for f in 0..frames + 2 {
        if let Some(c) = camera(f, view) {
            view.set_camera(c);
        }
        let t = f as f32;
        let input = RawInput {
            screen_rect: Some(screen),
            time: Some(f as f64 / 60.0),
            events: vec![Event::PointerMoved(pos2(
                800.0 + 500.0 * (t * 0.05).sin(),
                550.0 + 300.0 * (t * 0.07).cos(),
            ))],
            ..RawInput::default()
        };
        let t0 = Instant::now();
        let out = ctx.run_ui(input, |ui| {
            view.show(ui, style, &mut sel);
        });
        let egui::FullOutput {
            shapes,
            pixels_per_point,
            mut textures_delta,
            ..
        } = out;
        let p = ctx.tessellate(shapes, pixels_per_point);
        textures_delta.clear();
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        // The first two frames warm up fonts and apply the initial fit.
        if f >= 2 {
            times.push(ms);
            let s = view.stats();
            boxes = boxes.max(s.boxes);
            segs = segs.max(s.segments);
            prims = prims.max(p.len());
            lod = s.lod;
        }
    }
    (
        times,
        format!("(lod {lod:?}, max {boxes} boxes, {segs} edge segments drawn)"),
    )
}

fn bench_graph(name: &str, data: GraphData, args: &Args) {
    let data = Arc::new(data);
    println!(
        "{name}: {} nodes, {} edges",
        data.nodes.len(),
        data.edges.len()
    );
    // Layout of the whole graph (every group expanded): the hardest case.
    let mut hier = Hierarchy::new(&data);
    hier.expand_all();
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..args.runs {
        let t0 = Instant::now();
        let s = build_scene(&data, &hier, &|_| {});
        times.push(t0.elapsed().as_secs_f64() * 1e3);
        last = Some(s);
    }
    times.sort_by(|a, b| a.total_cmp(b));
    if let Some(s) = &last {
        println!(
            "  layout (all expanded)        runs {:>4}  min {:>7.1} ms  median {:>7.1} ms  ({} ranks, {} dummies, bounds {:.0}x{:.0})",
            times.len(),
            times[0],
            pct(&times, 0.5),
            s.layout.rank_top.len(),
            s.layout.dummies,
            s.layout.bounds.width(),
            s.layout.bounds.height()
        );
    }
    let mut collapsed = Hierarchy::new(&data);
    collapsed.auto_collapse(petasos_viewer::graph::view::DEFAULT_BUDGET);
    let t0 = Instant::now();
    let cs = build_scene(&data, &collapsed, &|_| {});
    println!(
        "  layout (default collapse)    {:>7.1} ms  ({} boxes)",
        t0.elapsed().as_secs_f64() * 1e3,
        cs.vis.items.len()
    );

    let style = style_for(&data);
    let mut view = GraphView::with_budget(data.clone(), None);
    view.wait_for_layout();
    view.fit();
    let (t, s) = frames(&mut view, &style, args.frames, &|_, _| None);
    report("fit (all expanded)", t, &s);

    // 100% zoom and 15% zoom, panning along the graph (following the nodes in index order,
    // with a sideways sway) so the camera changes every frame.
    let centers: Vec<egui::Pos2> = view
        .scene()
        .map(|s| s.layout.rects.iter().map(|r| r.center()).collect())
        .unwrap_or_default();
    let centers = &centers;
    let follow = |zoom: f32, step: usize| {
        move |f: usize, _: &GraphView| {
            let c = centers.get((f * step) % centers.len().max(1)).copied()?;
            Some(Camera {
                center: c + vec2(300.0 * (f as f32 * 0.05).sin() / zoom.sqrt(), 0.0),
                zoom,
            })
        }
    };
    let (t, s) = frames(&mut view, &style, args.frames, &follow(1.0, 3));
    report("100% zoom, panning", t, &s);
    let (t, s) = frames(&mut view, &style, args.frames, &follow(0.15, 40));
    report("15% zoom, panning", t, &s);
    // The most text on screen: the smallest zoom that still draws labels.
    let (t, s) = frames(&mut view, &style, args.frames, &follow(FULL_ZOOM, 7));
    report("45% zoom (labels), panning", t, &s);

    // Zoomed out to the whole graph but moving every frame: the overview cannot be reused.
    view.fit();
    let fitted = view.camera();
    let sway = |f: usize, _: &GraphView| {
        Some(Camera {
            center: fitted.center + vec2((f % 7) as f32, (f % 5) as f32) / fitted.zoom,
            zoom: fitted.zoom,
        })
    };
    let (t, s) = frames(&mut view, &style, args.frames, &sway);
    report("fit zoom, panning", t, &s);

    let mut view = GraphView::new(data.clone());
    view.wait_for_layout();
    view.fit();
    let (t, s) = frames(&mut view, &style, args.frames, &|_, _| None);
    report("fit (default collapse)", t, &s);
}

fn main() -> Result<()> {
    let args = parse_args()?;
    println!(
        "graph_bench: {} nodes, {} frames per case, {} layout runs, screen 1600x1000",
        args.nodes, args.frames, args.runs
    );
    bench_graph("residual chain", synth::residual_chain(args.nodes), &args);
    bench_graph(
        "transformer (8 heads)",
        synth::transformer(args.nodes, 8),
        &args,
    );
    bench_graph(
        "wide transformer (64 heads)",
        synth::transformer(args.nodes, 64),
        &args,
    );
    Ok(())
}
