//! Plots of a priced model (egui_plot): latency by op type (sorted bars), activation memory
//! over execution order, and MACs vs latency per op (log-log scatter; selected ops
//! highlighted; a click picks an op).
//!
//! Memory over time comes from the memory planner (`petasos_compiler::plan::plan`): its
//! `timeline` is the sum of the activation buffers live at each step (inputs, intermediates and
//! outputs, by liveness interval), in the same topological order the estimator walks. Steps
//! are mapped to estimator ops by node name, so the plot links to the same op indices.

use egui::{Color32, Pos2};
use egui_plot::{Bar, BarChart, Line, MarkerShape, Plot, PlotPoint, PlotPoints, Points, VLine};
use petasos_compiler::cost::report::{bytes, seconds};
use petasos_compiler::cost::Estimator;
use petasos_compiler::plan::{MemoryPlan, PlanError, PlanOptions};
use petasos_ir::Graph;
use std::collections::{HashMap, VecDeque};

/// Total latency of one op type.
#[derive(Clone, Debug, PartialEq)]
pub struct TypeLatency {
    pub op_type: String,
    pub latency_s: f64,
    pub ops: usize,
}

/// Latency summed by op type, largest first (ties by name).
pub fn latency_by_type(est: &Estimator) -> Vec<TypeLatency> {
    let mut m: HashMap<&str, (f64, usize)> = HashMap::new();
    for (w, c) in est.work.ops.iter().zip(est.costs()) {
        let e = m.entry(w.op_type.as_str()).or_default();
        e.0 += c.latency_s;
        e.1 += 1;
    }
    let mut v: Vec<TypeLatency> = m
        .into_iter()
        .map(|(t, (l, n))| TypeLatency {
            op_type: t.to_string(),
            latency_s: l,
            ops: n,
        })
        .collect();
    v.sort_by(|a, b| {
        b.latency_s
            .total_cmp(&a.latency_s)
            .then_with(|| a.op_type.cmp(&b.op_type))
    });
    v
}

/// A time unit for axis values: (divisor, suffix) so that `max / divisor` reads well.
fn time_unit(max_s: f64) -> (f64, &'static str) {
    if max_s >= 1.0 {
        (1.0, "s")
    } else if max_s >= 1e-3 {
        (1e-3, "ms")
    } else {
        (1e-6, "us")
    }
}

/// Horizontal bars of latency by op type, largest at the top.
pub fn show_latency_by_type(ui: &mut egui::Ui, est: &Estimator) -> egui::Response {
    let types = latency_by_type(est);
    let total: f64 = types.iter().map(|t| t.latency_s).sum();
    let (div, unit) = time_unit(types.first().map(|t| t.latency_s).unwrap_or(0.0));
    let n = types.len();
    let bars: Vec<Bar> = types
        .iter()
        .enumerate()
        .map(|(i, t)| {
            Bar::new((n - 1 - i) as f64, t.latency_s / div)
                .name(&t.op_type)
                .width(0.7)
        })
        .collect();
    let names: Vec<String> = types.iter().map(|t| t.op_type.clone()).collect();
    let info: Vec<String> = types
        .iter()
        .map(|t| {
            let share = if total > 0.0 {
                t.latency_s / total * 100.0
            } else {
                0.0
            };
            format!(
                "{}: {} ({} ops, {share:.1}% of latency)",
                t.op_type,
                seconds(t.latency_s),
                t.ops
            )
        })
        .collect();
    let chart = BarChart::new("latency by op type", bars)
        .horizontal()
        .color(Color32::from_rgb(70, 130, 200))
        .element_formatter(Box::new(move |b: &Bar, _| {
            let i = n
                .saturating_sub(1)
                .saturating_sub(b.argument.round() as usize);
            info.get(i).cloned().unwrap_or_default()
        }));
    Plot::new("latency_by_type")
        .x_axis_label(format!("latency ({unit})"))
        .y_axis_formatter(move |m, _| {
            let r = m.value.round();
            if (m.value - r).abs() > 1e-6 || r < 0.0 {
                return String::new();
            }
            let i = n.saturating_sub(1).saturating_sub(r as usize);
            if r as usize >= n {
                return String::new();
            }
            names.get(i).cloned().unwrap_or_default()
        })
        .y_axis_min_width(90.0)
        .allow_scroll(false)
        .show(ui, |p| p.bar_chart(chart))
        .response
}

/// Activation bytes live at each execution step, mapped to estimator ops.
#[derive(Clone, Debug)]
pub struct MemoryTimeline {
    /// Live activation bytes at step `i` (the planner's timeline).
    pub live_bytes: Vec<u64>,
    /// The estimator op each step runs (`None` when no op of that name was priced).
    pub op_of_step: Vec<Option<usize>>,
    /// The op name at each step.
    pub names: Vec<String>,
    /// The planner's arena (peak activation memory with reuse) and its lower bound.
    pub arena_bytes: u64,
    pub max_live_bytes: u64,
    pub peak_step: usize,
}

impl MemoryTimeline {
    /// Plans `g` with the dims `est` was priced at and builds the timeline. `g` must be the
    /// graph `est` was computed from.
    pub fn plan(g: &Graph, est: &Estimator) -> Result<MemoryTimeline, PlanError> {
        let mut opts = PlanOptions::default();
        for (k, v) in &est.work.dims {
            opts.dims.insert(k.clone(), *v);
        }
        let plan = petasos_compiler::plan::plan(g, &opts)?;
        Ok(MemoryTimeline::from_plan(g, &plan, est))
    }

    /// The timeline of an existing plan of `g`.
    pub fn from_plan(g: &Graph, plan: &MemoryPlan, est: &Estimator) -> MemoryTimeline {
        let mut by_name: HashMap<&str, VecDeque<usize>> = HashMap::new();
        for (i, w) in est.work.ops.iter().enumerate() {
            by_name.entry(w.name.as_str()).or_default().push_back(i);
        }
        let names: Vec<String> = plan
            .order
            .iter()
            .map(|&n| {
                g.g.node_weight(n)
                    .map(|node| node.provenance.onnx_name.clone())
                    .unwrap_or_default()
            })
            .collect();
        let op_of_step = names
            .iter()
            .map(|n| by_name.get_mut(n.as_str()).and_then(|q| q.pop_front()))
            .collect();
        MemoryTimeline {
            live_bytes: plan.timeline.clone(),
            op_of_step,
            names,
            arena_bytes: plan.arena_bytes,
            max_live_bytes: plan.max_live_bytes,
            peak_step: plan.peak_step,
        }
    }

    /// The step at which estimator op `op` runs.
    pub fn step_of_op(&self, op: usize) -> Option<usize> {
        self.op_of_step.iter().position(|o| *o == Some(op))
    }
}

/// A decimal byte unit for axis values (as the totals print them).
fn byte_unit(max: u64) -> (f64, &'static str) {
    if max >= 1_000_000_000 {
        (1e9, "GB")
    } else if max >= 1_000_000 {
        (1e6, "MB")
    } else {
        (1e3, "kB")
    }
}

/// Live activation memory per step, selected ops as vertical lines, the peak marked. Returns
/// the estimator op of the step clicked.
pub fn show_memory_over_time(
    ui: &mut egui::Ui,
    tl: &MemoryTimeline,
    selected: &[usize],
) -> Option<usize> {
    let max = tl.live_bytes.iter().copied().max().unwrap_or(0);
    let (div, unit) = byte_unit(max);
    ui.label(format!(
        "live activations per step (memory planner): peak {} at step {}, arena {}",
        bytes(tl.max_live_bytes),
        tl.peak_step,
        bytes(tl.arena_bytes)
    ));
    let pts: Vec<[f64; 2]> = tl
        .live_bytes
        .iter()
        .enumerate()
        .map(|(i, &b)| [i as f64, b as f64 / div])
        .collect();
    let names = tl.names.clone();
    let live = tl.live_bytes.clone();
    let sel_steps: Vec<usize> = selected.iter().filter_map(|&o| tl.step_of_op(o)).collect();
    let peak = tl.peak_step;
    let peak_y = tl.live_bytes.get(peak).copied().unwrap_or(0) as f64 / div;
    let steps = tl.live_bytes.len();
    let r = Plot::new("memory_over_time")
        .x_axis_label("execution step")
        .y_axis_label(format!("live activations ({unit})"))
        .y_axis_min_width(40.0)
        .allow_scroll(false)
        .label_formatter(move |pos| {
            let x = match pos {
                egui_plot::HoverPosition::NearDataPoint { position, .. } => position.x,
                egui_plot::HoverPosition::Elsewhere { position } => position.x,
            };
            let i = x.round();
            if i < 0.0 || i as usize >= steps {
                return None;
            }
            let i = i as usize;
            Some(format!(
                "step {i}: {}\n{}",
                names.get(i).map(String::as_str).unwrap_or(""),
                bytes(live.get(i).copied().unwrap_or(0))
            ))
        })
        .show(ui, |p| {
            p.line(
                Line::new("live activations", PlotPoints::new(pts))
                    .color(Color32::from_rgb(70, 130, 200))
                    .fill(0.0),
            );
            for s in &sel_steps {
                p.add(VLine::new("selected", *s as f64).color(Color32::from_rgb(230, 120, 30)));
            }
            p.points(
                Points::new("peak", vec![[peak as f64, peak_y]])
                    .shape(MarkerShape::Diamond)
                    .radius(5.0)
                    .color(Color32::from_rgb(200, 50, 50)),
            );
            if p.response().clicked() {
                p.pointer_coordinate().map(|c| c.x.round())
            } else {
                None
            }
        });
    r.inner
        .filter(|x| *x >= 0.0)
        .and_then(|x| tl.op_of_step.get(x as usize).copied().flatten())
}

/// The scatter's points: `(op, [log10 MACs, log10 latency in us])` for every op with MACs and
/// latency above zero (MACs after sparsity, as priced).
pub fn scatter_points(est: &Estimator) -> Vec<(usize, [f64; 2])> {
    est.costs()
        .iter()
        .enumerate()
        .filter(|(_, c)| c.macs > 0.0 && c.latency_s > 0.0)
        .map(|(i, c)| (i, [c.macs.log10(), (c.latency_s * 1e6).log10()]))
        .collect()
}

/// The point nearest to `at` within `max_dist` (screen units), by op.
pub fn nearest_point(points: &[(usize, Pos2)], at: Pos2, max_dist: f32) -> Option<usize> {
    points
        .iter()
        .map(|(i, p)| (*i, p.distance(at)))
        .filter(|(_, d)| *d <= max_dist)
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(i, _)| i)
}

/// What the scatter reports.
pub struct ScatterOutput {
    /// The op whose point was clicked this frame.
    pub clicked: Option<usize>,
    /// Plot <-> screen mapping of this frame (to locate a point on screen).
    pub transform: egui_plot::PlotTransform,
}

/// The label of a log-axis mark: `10^v` at whole powers of ten, nothing between.
fn pow10_mark(v: f64) -> String {
    if (v - v.round()).abs() > 1e-6 {
        return String::new();
    }
    pow10_label(v.round())
}

/// `10^v` in short form (`100k`, `3M`, `0.50`).
fn pow10_label(v: f64) -> String {
    let p = 10f64.powf(v);
    if p >= 1e9 {
        format!("{:.0}G", p / 1e9)
    } else if p >= 1e6 {
        format!("{:.0}M", p / 1e6)
    } else if p >= 1e3 {
        format!("{:.0}k", p / 1e3)
    } else if p >= 1.0 {
        format!("{p:.0}")
    } else {
        format!("{p:.2}")
    }
}

/// MACs vs latency per op on log axes (ops without MACs are left out and counted);
/// `selected` ops drawn larger in another colour. A click within 10 points of a point picks
/// its op.
pub fn show_macs_vs_latency(
    ui: &mut egui::Ui,
    est: &Estimator,
    selected: &[usize],
) -> ScatterOutput {
    let pts = scatter_points(est);
    let left_out = est.work.ops.len() - pts.len();
    ui.label(format!(
        "{} ops with MACs and latency (log-log); {left_out} ops without MACs not shown",
        pts.len()
    ));
    let is_sel = |i: usize| selected.contains(&i);
    let normal: Vec<[f64; 2]> = pts
        .iter()
        .filter(|(i, _)| !is_sel(*i))
        .map(|p| p.1)
        .collect();
    let sel: Vec<[f64; 2]> = pts
        .iter()
        .filter(|(i, _)| is_sel(*i))
        .map(|p| p.1)
        .collect();
    let names: HashMap<(i64, i64), String> = pts
        .iter()
        .filter_map(|(i, p)| {
            est.work
                .ops
                .get(*i)
                .map(|w| (key(p), format!("{} ({})", w.name, w.op_type)))
        })
        .collect();
    let r = Plot::new("macs_vs_latency")
        .x_axis_label("MACs (log)")
        .y_axis_label("latency, us (log)")
        .x_grid_spacer(egui_plot::log_grid_spacer(10))
        .y_grid_spacer(egui_plot::log_grid_spacer(10))
        .x_axis_formatter(|m, _| pow10_mark(m.value))
        .y_axis_formatter(|m, _| pow10_mark(m.value))
        .allow_scroll(false)
        .label_formatter(move |pos| match pos {
            egui_plot::HoverPosition::NearDataPoint { position, .. } => {
                let n = names
                    .get(&key(&[position.x, position.y]))
                    .cloned()
                    .unwrap_or_default();
                Some(format!(
                    "{n}\n{} MACs, {}",
                    pow10_label(position.x),
                    seconds(10f64.powf(position.y) * 1e-6)
                ))
            }
            egui_plot::HoverPosition::Elsewhere { .. } => None,
        })
        .show(ui, |p| {
            p.points(
                Points::new("ops", normal)
                    .radius(2.5)
                    .color(Color32::from_rgb(70, 130, 200)),
            );
            if !sel.is_empty() {
                p.points(
                    Points::new("selected", sel)
                        .radius(5.0)
                        .shape(MarkerShape::Diamond)
                        .color(Color32::from_rgb(230, 120, 30)),
                );
            }
            if p.response().clicked() {
                p.response().interact_pointer_pos()
            } else {
                None
            }
        });
    let clicked = r.inner.and_then(|at| {
        let screen: Vec<(usize, Pos2)> = pts
            .iter()
            .map(|(i, v)| {
                (
                    *i,
                    r.transform.position_from_point(&PlotPoint::new(v[0], v[1])),
                )
            })
            .collect();
        nearest_point(&screen, at, 10.0)
    });
    ScatterOutput {
        clicked,
        transform: r.transform,
    }
}

/// A hashable key of a plotted point (1e-9 resolution).
fn key(p: &[f64; 2]) -> (i64, i64) {
    ((p[0] * 1e9).round() as i64, (p[1] * 1e9).round() as i64)
}
