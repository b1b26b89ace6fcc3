//! The analysis widgets inside the app: a what-if through the What-if tab changes the totals
//! and the table; the selected-ops scope touches only the selected op; the compare tab shows
//! the deltas against a second model opened through the loader; the table exports as CSV in
//! its current order; the plots tab draws and a device change keeps the what-if options.

#[path = "app_common.rs"]
mod common;

use common::{harness, wait_loaded, H};
use egui_kittest::kittest::{NodeT, Queryable};
use petasos_compiler::cost::Width;
use petasos_viewer::app::Tab;
use petasos_viewer::doc::Document;
use petasos_viewer::table::{text, value, weight_bits, Col, ColourBy};
use std::time::Duration;

fn load(source: &str) -> Document {
    Document::load_sync(source, "host").unwrap_or_else(|e| panic!("{source}: {e}"))
}

fn pick(h: &mut H, combo: &str, item: &str) {
    h.get_by_label(combo).click();
    h.run_steps(3);
    h.get_by_label(item).click();
    h.run_steps(3);
}

fn open_tab(h: &mut H, tab: &str) {
    h.get_by_label(tab).click();
    h.run_steps(3);
}

#[test]
fn whole_model_what_if_changes_totals_and_table() {
    let doc = load("resnet18");
    let conv = doc
        .ops
        .iter()
        .position(|o| o.op_type == "Conv")
        .expect("a conv");
    let before_w = doc.estimator.sums().weight_bytes;
    let before_cell = text(&doc, conv, Col::WeightBytes);
    let bits_before = weight_bits(&doc, conv);
    let mut h = harness(doc, (1600.0, 900.0));
    h.state_mut().session.colour_by = ColourBy::WeightBits;
    h.run_steps(2);
    let fill_before = h.state().node_style().fill.get(conv).copied().flatten();
    let gen0 = h.state().session.est_gen;
    open_tab(&mut h, "What-if");
    pick(&mut h, "Weight bits", "4 bit");
    let s = h.state();
    let d = s.session.doc.as_ref().expect("doc");
    assert_eq!(
        d.estimator.what_if().ops.weight_bits,
        Some(Width::Bits(4.0))
    );
    let after_w = d.estimator.sums().weight_bytes;
    assert!(after_w < before_w / 7.0, "{before_w} -> {after_w}");
    assert_ne!(s.session.est_gen, gen0, "the table was told");
    assert_ne!(text(d, conv, Col::WeightBytes), before_cell);
    // Coloured by weight bits: the conv went from 32 to ~4 bits (its fp32 bias stays), and
    // the graph's fill was recomputed.
    assert_eq!(bits_before, 32.0);
    let bits = weight_bits(d, conv);
    assert!((4.0..4.5).contains(&bits), "{bits}");
    let fill_after = s.node_style().fill.get(conv).copied().flatten();
    assert!(fill_after.is_some());
    assert_ne!(fill_before, fill_after);
    // The options survive a device change (re-priced, not reset).
    h.state_mut().set_device("apple-m2");
    h.run_steps(2);
    let d = h.state().session.doc.as_ref().expect("doc");
    assert_eq!(d.estimator.device, "apple-m2");
    assert_eq!(
        d.estimator.what_if().ops.weight_bits,
        Some(Width::Bits(4.0))
    );
}

#[test]
fn selected_scope_changes_only_the_selected_op() {
    let doc = load("resnet18");
    let k = doc
        .ops
        .iter()
        .position(|o| o.op_type == "Conv")
        .expect("a conv");
    let row = doc.row(k).expect("estimated");
    let total_before = doc.estimator.sums().weight_bytes;
    let op_before = value(&doc, k, Col::WeightBytes);
    let mut h = harness(doc, (1600.0, 900.0));
    h.state_mut().select(Some(k));
    h.run_steps(2);
    open_tab(&mut h, "What-if");
    h.get_by_label("selected ops (1)").click();
    h.run_steps(2);
    pick(&mut h, "Weight bits", "4 bit");
    let d = h.state().session.doc.as_ref().expect("doc");
    assert_eq!(
        d.estimator.what_if().ops.weight_bits,
        None,
        "model options untouched"
    );
    let own = d
        .estimator
        .op_options(row)
        .expect("the op has its own options");
    assert_eq!(own.weight_bits, Some(Width::Bits(4.0)));
    let set: Vec<usize> = (0..d.estimator.work.ops.len())
        .filter(|&i| d.estimator.op_options(i).is_some())
        .collect();
    assert_eq!(set, vec![row]);
    let op_after = value(d, k, Col::WeightBytes);
    assert!(op_after < op_before, "{op_before} -> {op_after}");
    let drop = total_before - d.estimator.sums().weight_bytes;
    assert!(
        drop > 0.0 && drop < total_before / 2.0,
        "only one op's weights: {drop}"
    );
}

#[test]
fn compare_tab_shows_deltas_against_a_second_model() {
    let mut h = harness(load("resnet18"), (1600.0, 900.0));
    h.run_steps(1);
    let ctx = h.ctx.clone();
    h.state_mut().open_compare(&ctx, "resnet50");
    wait_loaded(&mut h, Duration::from_secs(120));
    assert_eq!(h.state().tabs.tab, Tab::Compare);
    let b = h.state().session.compare.as_ref().expect("compare loaded");
    let a = h.state().session.doc.as_ref().expect("doc");
    let slower = b.estimator.sums().latency_s > a.estimator.sums().latency_s;
    assert!(
        slower,
        "resnet50 is slower than resnet18 on the same device"
    );
    let summary = h
        .query_by_label_contains("resnet50 is ")
        .expect("summary line shown");
    let n = summary.accesskit_node();
    let line = n.label().or_else(|| n.value()).unwrap_or_default();
    assert!(
        line.contains("slower") && line.contains("more MACs"),
        "{line}"
    );
}

#[test]
fn csv_export_follows_the_table_order() {
    let doc = load("resnet18");
    let n = doc.ops.len();
    let lat: Vec<f64> = (0..n).map(|i| value(&doc, i, Col::Latency)).collect();
    let top = (0..n)
        .max_by(|&a, &b| lat[a].total_cmp(&lat[b]))
        .expect("ops");
    let top_name = doc.ops[top].name.clone();
    let mut h = harness(doc, (1600.0, 900.0));
    h.state_mut().session.table.sort_by(Col::Latency);
    h.run_steps(2);
    let dir = std::env::temp_dir().join(format!("petasos-viewer-csv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("table.csv");
    h.state_mut().export_csv(&path).expect("export");
    let csv = std::fs::read_to_string(&path).expect("written");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), n + 1, "header + one row per op");
    assert!(
        lines[1].starts_with(&format!("{top_name},")),
        "{}",
        lines[1]
    );
    assert!(h
        .state()
        .notice
        .as_deref()
        .unwrap_or("")
        .contains("table.csv"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn plots_tab_draws_for_the_open_model() {
    let mut h = harness(load("resnet18"), (1600.0, 900.0));
    h.run_steps(2);
    open_tab(&mut h, "What-if");
    open_tab(&mut h, "Plots");
    assert_eq!(h.state().tabs.tab, Tab::Plots);
    // The memory plot's caption names the planner's arena.
    assert!(
        h.query_by_label_contains("arena").is_some() || h.query_by_label_contains("peak").is_some()
    );
}
