//! Screenshots of the app (table, the graph coloured by latency and centred on the slowest op,
//! details of that op) rendered with wgpu and compared with the
//! golden images in `tests/snapshots/` (`UPDATE_SNAPSHOTS=1` rewrites them). Needs a wgpu
//! adapter (lavapipe from `mesa-vulkan-drivers` on a headless machine); without one the test
//! prints `NOT RUN: no wgpu adapter`.

#[path = "app_common.rs"]
mod common;

use egui_kittest::{Harness, SnapshotOptions, SnapshotResults};
use petasos_viewer::app::ViewerApp;
use petasos_viewer::doc::Document;

/// Renders `doc` with op `select` selected and compares it with snapshot `name`, adding the
/// result to `results`. Returns false (after a NOT RUN line) when there is no adapter.
fn snapshot(doc: Document, select: usize, name: &str, results: &mut SnapshotResults) -> bool {
    let mut h: Harness<'static, ViewerApp> = Harness::builder()
        .with_size(egui::vec2(1600.0, 900.0))
        .wgpu()
        .build_eframe(move |_cc| ViewerApp::with_document(doc));
    common::settle(&mut h);
    h.state_mut().select(Some(select));
    // The graph around the selected op (selecting focuses it) and the table, plots tab closed.
    h.state_mut().tabs.tab = petasos_viewer::app::Tab::Hidden;
    common::settle(&mut h);
    if let Err(e) = h.render() {
        common::loud(&format!("NOT RUN: no wgpu adapter ({name}: {e})"));
        return false;
    }
    // Up to 2,000 of the 1.44M pixels may differ (another CPU's software rasteriser may round
    // anti-aliased edges differently); a moved or changed widget changes far more.
    h.snapshot_options(name, &SnapshotOptions::new().max_failed_pixels(2000));
    results.extend_harness(&mut h);
    true
}

/// The op with the largest latency (what a user selects first).
fn hottest(doc: &Document) -> usize {
    (0..doc.ops.len())
        .max_by(|&a, &b| {
            let v = |i| petasos_viewer::table::value(doc, i, petasos_viewer::table::Col::Latency);
            v(a).total_cmp(&v(b))
        })
        .unwrap_or(0)
}

#[test]
fn preset_snapshot() {
    let doc = Document::load_sync("resnet18", "host").expect("preset");
    let k = hottest(&doc);
    let mut results = SnapshotResults::new();
    snapshot(doc, k, "app_preset_resnet18", &mut results);
    results.unwrap();
}

#[test]
fn shared_model_snapshots() {
    let Some(models) = common::shared_models("shared_model_snapshots") else {
        return;
    };
    let mut results = SnapshotResults::new();
    for name in ["resnet18", "densenet121"] {
        let path = models.join(format!("{name}.onnx"));
        let doc =
            Document::load_sync(&path.to_string_lossy(), "host").unwrap_or_else(|e| panic!("{e}"));
        let k = hottest(&doc);
        if !snapshot(doc, k, &format!("app_{name}"), &mut results) {
            return;
        }
    }
    results.unwrap();
}
