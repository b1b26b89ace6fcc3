//! Helpers shared by the `app_*` tests (included with `#[path]`, not a test target of its own).

#![allow(dead_code)]

use egui_kittest::Harness;
use petasos_viewer::app::ViewerApp;
use petasos_viewer::doc::Document;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Writes `line` to stderr past the test harness's output capture (a plain `cargo test`
/// shows it).
pub fn loud(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The shared models folder, or `None` (after a loud NOT RUN line) when unset.
pub fn shared_models(test: &str) -> Option<PathBuf> {
    match std::env::var_os("PETASOS_SHARED") {
        Some(s) => Some(PathBuf::from(s).join("models")),
        None => {
            loud(&format!("NOT RUN: PETASOS_SHARED unset ({test})"));
            None
        }
    }
}

/// resnet18 from `$PETASOS_SHARED`, else the built-in preset `fallback`.
pub fn model_source(fallback: &str) -> String {
    match std::env::var_os("PETASOS_SHARED") {
        Some(s) => PathBuf::from(s)
            .join("models/resnet18.onnx")
            .to_string_lossy()
            .into_owned(),
        None => fallback.to_string(),
    }
}

/// The harness type of the app tests.
pub type H = Harness<'static, ViewerApp>;

/// A harness around an app showing `doc`.
pub fn harness(doc: Document, size: (f32, f32)) -> Harness<'static, ViewerApp> {
    Harness::builder()
        .with_size(egui::vec2(size.0, size.1))
        .build_eframe(move |_cc| ViewerApp::with_document(doc))
}

/// Steps the harness until no load is in flight (at most `limit`).
pub fn wait_loaded(h: &mut Harness<'static, ViewerApp>, limit: Duration) {
    let t0 = Instant::now();
    h.step();
    while h.state().is_loading() {
        assert!(t0.elapsed() < limit, "load did not finish in {limit:?}");
        std::thread::sleep(Duration::from_millis(10));
        h.step();
    }
    h.run_steps(3);
}

/// A file dropped on the window (as eframe reports one).
#[derive(Debug)]
pub struct Dropped(pub PathBuf);

impl egui::DroppedFile for Dropped {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

/// Waits for the graph's pending layout and draws a few frames.
pub fn settle(h: &mut H) {
    for _ in 0..3 {
        if let Some(g) = h.state_mut().graph_mut() {
            g.wait_for_layout();
        }
        h.run_steps(2);
    }
}

/// Whether the graph shows op `op` inside its view (its box or its collapsed group's).
pub fn graph_shows(h: &H, op: usize) -> bool {
    let Some(g) = h.state().graph() else {
        return false;
    };
    match (g.node_screen_rect(op), g.view_rect()) {
        (Some(r), Some(v)) => v.contains(r.center()),
        _ => false,
    }
}
