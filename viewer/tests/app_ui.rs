//! UI tests of the viewer app driven by egui_kittest: open a model, select a table row, search,
//! sort, and open a corrupt file (the error shows, the model stays).

#[path = "app_common.rs"]
mod common;

use common::{harness, model_source, wait_loaded, Dropped};
use egui_kittest::kittest::{NodeT, Queryable};
use petasos_viewer::doc::Document;
use petasos_viewer::search;
use petasos_viewer::table::{value, Col};
use std::sync::Arc;
use std::time::Duration;

fn load(source: &str) -> Document {
    Document::load_sync(source, "host").unwrap_or_else(|e| panic!("{source}: {e}"))
}

/// The preset always runs; the shared resnet18 too when PETASOS_SHARED is set.
fn sources() -> Vec<String> {
    let mut v = vec!["resnet18".to_string()];
    let shared = model_source("resnet18");
    if shared != "resnet18" {
        v.push(shared);
    } else {
        common::loud("NOT RUN: PETASOS_SHARED unset (shared resnet18.onnx; the preset ran)");
    }
    v
}

#[test]
fn clicking_a_row_selects_that_op() {
    for src in sources() {
        let doc = load(&src);
        assert!(doc.ops.len() > 20, "{src}: {} ops", doc.ops.len());
        let k = 4;
        let name = doc.ops[k].name.clone();
        let mut h = harness(doc, (1600.0, 900.0));
        common::settle(&mut h);
        assert_eq!(h.state().session.selection, None);
        h.get_by_label(&name).click();
        common::settle(&mut h);
        assert_eq!(
            h.state().session.selection,
            Some(k),
            "{src}: clicked {name}"
        );
        // The graph follows: it centres the op (expanding its group if collapsed).
        assert!(common::graph_shows(&h, k), "{src}: graph shows op {k}");
        let g = h.state().graph().expect("graph");
        let (r, v) = (
            g.node_screen_rect(k).expect("rect"),
            g.view_rect().expect("view"),
        );
        assert!(
            (r.center() - v.center()).length() < 40.0,
            "{src}: centred: {r:?} in {v:?}"
        );
        // The details panel shows it (heading = name, so the label now appears twice).
        assert!(h.query_all_by_label(&name).count() >= 2);
        // Escape clears the selection.
        h.key_press(egui::Key::Escape);
        h.run_steps(2);
        assert_eq!(h.state().session.selection, None);
    }
}

#[test]
fn search_conv_highlights_matches() {
    let doc = load(&model_source("resnet18"));
    let expected: Vec<usize> = doc
        .ops
        .iter()
        .enumerate()
        .filter(|(_, o)| {
            o.name.to_lowercase().contains("conv")
                || o.op_type.to_lowercase().contains("conv")
                || o.layer.to_lowercase().contains("conv")
        })
        .map(|(i, _)| i)
        .collect();
    let convs = doc.ops.iter().filter(|o| o.op_type == "Conv").count();
    let mut h = harness(doc, (1600.0, 900.0));
    h.run_steps(2);
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::F);
    h.run_steps(2);
    h.event(egui::Event::Text("conv".into()));
    h.run_steps(3);
    let s = &h.state().session.search;
    assert_eq!(s.text, "conv", "Ctrl+F focused the search box");
    assert!(!s.matches.is_empty());
    assert_eq!(s.matches, expected);
    assert_eq!(s.highlight.iter().filter(|&&b| b).count(), expected.len());
    // The graph is drawn with the same highlights.
    let hl = &h.state().node_style().highlight;
    let lit: Vec<usize> = (0..hl.len()).filter(|&i| hl[i]).collect();
    assert_eq!(lit, expected, "graph highlights = matches");
    // type: search finds exactly the Conv ops.
    let d = h.state().session.doc.as_ref().expect("doc");
    assert_eq!(search::find(&d.ops, "type:conv").len(), convs);
    assert!(
        h.get_by_label(&format!("{} matches", expected.len()))
            .rect()
            .width()
            > 0.0
    );
    // next moves the selection to the second match.
    h.get_by_label("next").click();
    h.run_steps(2);
    assert_eq!(h.state().session.selection, expected.get(1).copied());
}

#[test]
fn sorting_by_latency_puts_the_max_first() {
    let doc = load(&model_source("resnet18"));
    let lat: Vec<f64> = (0..doc.ops.len())
        .map(|i| value(&doc, i, Col::Latency))
        .collect();
    let max = lat.iter().copied().fold(f64::MIN, f64::max);
    let min = lat.iter().copied().fold(f64::MAX, f64::min);
    assert!(max > min, "latencies differ");
    let mut h = harness(doc, (1600.0, 900.0));
    h.run_steps(2);
    // The latency column starts right of the visible part of the table: scroll to it.
    h.get_by_label("latency").scroll_to_me();
    h.run_steps(3);
    h.get_by_label("latency").click();
    h.run_steps(3);
    let order = h.state().session.table.order().to_vec();
    assert_eq!(order.len(), lat.len());
    assert_eq!(lat[order[0]], max);
    let sorted: Vec<f64> = order.iter().map(|&i| lat[i]).collect();
    assert!(sorted.windows(2).all(|w| w[0] >= w[1]), "{sorted:?}");
    // Second click: ascending.
    h.get_by_label("latency v").scroll_to_me();
    h.run_steps(3);
    h.get_by_label("latency v").click();
    h.run_steps(3);
    let order = h.state().session.table.order().to_vec();
    assert_eq!(lat[order[0]], min);
}

#[test]
fn a_corrupt_file_shows_an_error_and_keeps_the_model() {
    let doc = load("resnet18");
    let (title, n) = (doc.title.clone(), doc.ops.len());
    let dir = std::env::temp_dir().join(format!("petasos-viewer-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let bad = dir.join("corrupt.onnx");
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&bad, garbage).expect("write garbage");
    let mut h = harness(doc, (1600.0, 900.0));
    h.run_steps(2);
    // Dropped onto the window, as a user would.
    h.input_mut()
        .dropped_files
        .push(Arc::new(Dropped(bad.clone())));
    wait_loaded(&mut h, Duration::from_secs(60));
    let err = h.state().session.error.clone().expect("an error is shown");
    assert!(err.contains("corrupt.onnx"), "{err}");
    assert!(h.query_by_label_contains("could not read model").is_some());
    let d = h
        .state()
        .session
        .doc
        .as_ref()
        .expect("the previous model stays");
    assert_eq!((d.title.as_str(), d.ops.len()), (title.as_str(), n));
    assert!(!h
        .state()
        .recent
        .items()
        .iter()
        .any(|s| s.contains("corrupt")));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_preset_opens_from_the_menu_and_joins_the_recent_files() {
    let mut h = common::H::builder()
        .with_size(egui::vec2(1600.0, 900.0))
        .build_eframe(|_cc| petasos_viewer::app::ViewerApp::empty("host"));
    h.run_steps(2);
    assert!(h.state().session.doc.is_none());
    h.get_by_label("Presets").click();
    h.run_steps(2);
    h.get_by_label("demo-cnn").click();
    wait_loaded(&mut h, Duration::from_secs(60));
    let s = h.state();
    let d = s.session.doc.as_ref().expect("demo-cnn opened");
    assert_eq!(d.title, "demo-cnn");
    assert!(!d.ops.is_empty());
    assert_eq!(
        s.recent.items().first().map(String::as_str),
        Some("demo-cnn")
    );
    assert!(s.session.error.is_none());
}

#[test]
fn a_newer_open_wins_over_one_in_flight() {
    let mut h = harness(load("demo-cnn"), (1600.0, 900.0));
    h.run_steps(1);
    let ctx = h.ctx.clone();
    h.state_mut().open(&ctx, "afm-server-ptmoe");
    h.step();
    h.state_mut().open(&ctx, "resnet18");
    wait_loaded(&mut h, Duration::from_secs(120));
    let s = h.state();
    assert_eq!(
        s.session.doc.as_ref().map(|d| d.title.as_str()),
        Some("resnet18")
    );
    assert!(s.session.error.is_none(), "{:?}", s.session.error);
}

#[test]
fn changing_the_device_reprices_without_reloading() {
    let mut h = harness(load("resnet18"), (1600.0, 900.0));
    h.run_steps(1);
    let before = h
        .state()
        .session
        .doc
        .as_ref()
        .map(|d| d.estimator.sums().latency_s);
    h.state_mut().set_device("apple-m2");
    h.run_steps(2);
    let s = h.state();
    let d = s.session.doc.as_ref().expect("doc");
    assert_eq!(d.estimator.device, "apple-m2");
    assert_ne!(Some(d.estimator.sums().latency_s), before);
    assert_eq!(s.device, "apple-m2");
    // An unknown device: an error, nothing changes.
    h.state_mut().set_device("no-such-device");
    let s = h.state();
    assert!(s
        .session
        .error
        .as_deref()
        .unwrap_or("")
        .contains("no-such-device"));
    assert_eq!(s.device, "apple-m2");
}

#[test]
fn the_window_keeps_drawing_while_a_big_model_loads() {
    let mut h = harness(load("demo-cnn"), (1600.0, 900.0));
    h.run_steps(1);
    let ctx = h.ctx.clone();
    h.state_mut().open(&ctx, "afm-server-ptmoe");
    let t0 = std::time::Instant::now();
    let mut frames = 0usize;
    let mut slowest = 0f64;
    let mut saw_progress = false;
    while h.state().is_loading() {
        assert!(t0.elapsed() < Duration::from_secs(120), "load finished");
        let t = std::time::Instant::now();
        h.step();
        slowest = slowest.max(t.elapsed().as_secs_f64());
        frames += 1;
        saw_progress |= h
            .query_all_by_label_contains("afm-server-ptmoe:")
            .next()
            .is_some();
        std::thread::sleep(Duration::from_millis(5));
    }
    h.run_steps(2);
    common::loud(&format!(
        "afm-server-ptmoe loaded in {:.2} s while the UI drew {frames} frames (slowest {:.1} ms)",
        t0.elapsed().as_secs_f64(),
        slowest * 1e3
    ));
    assert!(
        saw_progress,
        "the progress (model name and stage) was shown"
    );
    assert!(frames >= 3, "frames kept coming: {frames}");
    let d = h.state().session.doc.as_ref().expect("doc");
    assert_eq!(d.title, "afm-server-ptmoe");
    assert!(d.ops.len() > 10_000);
}

#[test]
fn cancel_keeps_the_previous_model_without_an_error() {
    let mut h = harness(load("demo-cnn"), (1600.0, 900.0));
    h.run_steps(1);
    let ctx = h.ctx.clone();
    h.state_mut().open(&ctx, "afm-server-ptmoe");
    h.step();
    h.get_by_label("Cancel").click();
    wait_loaded(&mut h, Duration::from_secs(120));
    let s = h.state();
    assert_eq!(
        s.session.doc.as_ref().map(|d| d.title.as_str()),
        Some("demo-cnn")
    );
    assert!(s.session.error.is_none(), "{:?}", s.session.error);
}

#[test]
fn clicking_a_graph_node_selects_its_table_row() {
    let doc = load("resnet18");
    let n = doc.ops.len();
    let mut h = harness(doc, (1600.0, 900.0));
    common::settle(&mut h);
    // Expand everything so each op has its own box, then bring one far down the table into view.
    if let Some(g) = h.state_mut().graph_mut() {
        g.expand_all();
    }
    common::settle(&mut h);
    let target = n - 3;
    h.state_mut().graph_mut().expect("graph").focus(target);
    common::settle(&mut h);
    assert_eq!(
        h.state().session.selection,
        None,
        "focus alone selects nothing"
    );
    let r = h
        .state()
        .graph()
        .and_then(|g| g.node_screen_rect(target))
        .expect("node on screen");
    h.hover_at(r.center());
    h.step();
    for pressed in [true, false] {
        h.event(egui::Event::PointerButton {
            pos: r.center(),
            button: egui::PointerButton::Primary,
            pressed,
            modifiers: egui::Modifiers::NONE,
        });
        h.step();
    }
    h.run_steps(3);
    assert_eq!(h.state().session.selection, Some(target));
    // The table scrolled to it: its row is drawn (rows are virtualised), besides the details
    // heading.
    let name = h.state().session.doc.as_ref().expect("doc").ops[target]
        .name
        .clone();
    assert!(h.query_all_by_label(&name).count() >= 2, "row {name} drawn");
}

#[test]
fn f_fits_the_graph_after_a_focus() {
    let doc = load("resnet18");
    let far = doc.ops.len() - 2;
    let mut h = harness(doc, (1600.0, 900.0));
    common::settle(&mut h);
    // A tall graph opens at a readable zoom on its top; Fit shows all of it.
    let opening = h.state().graph().expect("graph").camera().zoom;
    h.state_mut().graph_mut().expect("graph").fit();
    common::settle(&mut h);
    let fitted = h.state().graph().expect("graph").camera().zoom;
    assert!(fitted <= opening, "fitted {fitted} vs opening {opening}");
    h.state_mut().select(Some(far));
    common::settle(&mut h);
    h.state_mut()
        .graph_mut()
        .expect("graph")
        .set_camera(petasos_viewer::graph::Camera {
            center: egui::pos2(0.0, 0.0),
            zoom: fitted * 4.0,
        });
    h.run_steps(2);
    h.key_press(egui::Key::F);
    common::settle(&mut h);
    let z = h.state().graph().expect("graph").camera().zoom;
    assert!(
        (z - fitted).abs() < fitted * 0.05,
        "F fitted again: {z} vs {fitted}"
    );
}

#[test]
fn recent_files_are_saved_through_eframe_storage() {
    let mut app = petasos_viewer::app::ViewerApp::with_document(load("demo-cnn"));
    let mut st = petasos_viewer::recent::MemoryStorage::default();
    eframe::App::save(&mut app, &mut st);
    let back = petasos_viewer::recent::RecentFiles::load(Some(&st));
    assert_eq!(back.items(), ["demo-cnn".to_string()]);
}

#[test]
fn table_filters_by_op_type_and_text() {
    let doc = load("resnet18");
    let convs: Vec<usize> = (0..doc.ops.len())
        .filter(|&i| doc.ops[i].op_type == "Conv")
        .collect();
    let layer4: Vec<usize> = (0..doc.ops.len())
        .filter(|&i| {
            let o = &doc.ops[i];
            o.op_type == "Conv" && o.layer.to_lowercase().contains("layer4")
        })
        .collect();
    assert!(!layer4.is_empty() && layer4.len() < convs.len());
    let n = doc.ops.len();
    let mut h = harness(doc, (1600.0, 900.0));
    h.run_steps(2);
    // The op-type combo.
    h.get_by_label("type filter").click();
    h.run_steps(2);
    // The combo's entries are buttons; the table's "Conv" cells are labels.
    h.get_all_by_label("Conv")
        .find(|n| n.accesskit_node().role() != egui::accesskit::Role::Label)
        .expect("Conv in the combo")
        .click();
    h.run_steps(3);
    assert_eq!(h.state().session.table.type_filter.as_deref(), Some("Conv"));
    assert_eq!(h.state().session.table.order(), &convs[..]);
    assert!(h
        .query_by_label(&format!("{} of {n} ops", convs.len()))
        .is_some());
    // Text on top of the type.
    h.state_mut().session.table.filter = "LAYER4".into();
    h.run_steps(2);
    assert_eq!(h.state().session.table.order(), &layer4[..]);
}
