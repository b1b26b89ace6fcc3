//! `petasos-viewer [MODEL] [--compare MODEL2] [--device NAME]`: the desktop viewer.

use anyhow::Result;
use clap::Parser;
use petasos_viewer::app::{StartOptions, ViewerApp, DEFAULT_DEVICE};

/// petasos viewer: per-op estimates of a model in a table and a graph.
#[derive(Parser)]
#[command(name = "petasos-viewer", version, about)]
struct Args {
    /// An .onnx file or a built-in model name (see `petasos models`).
    model: Option<String>,
    /// A second model to compare with the first.
    #[arg(long)]
    compare: Option<String>,
    /// Device profile: a built-in name or a .toml file.
    #[arg(long, default_value = DEFAULT_DEVICE)]
    device: String,
}

fn main() -> Result<()> {
    let a = Args::parse();
    let opts = StartOptions {
        model: a.model,
        compare: a.compare,
        device: Some(a.device),
    };
    let native = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_inner_size([1500.0, 900.0])
            .with_drag_and_drop(true),
        ..Default::default()
    };
    eframe::run_native(
        "petasos-viewer",
        native,
        Box::new(move |cc| Ok(Box::new(ViewerApp::new(cc, opts)))),
    )
    .map_err(|e| anyhow::anyhow!("starting the window: {e}"))
}
