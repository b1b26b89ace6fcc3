//! Helpers shared by the analysis widget tests: models priced on a built-in device, shared
//! models from $PETASOS_SHARED, a pruned copy through the prune pass, a scratch folder.
#![allow(dead_code)]

use petasos_compiler::cost::{estimate, DeviceProfile, EstimateOptions, Estimator, WhatIf};
use petasos_ir::Graph;
use petasos_models::BuildOptions;
use petasos_passes::prune::heuristic::{Criterion, Scope};
use petasos_passes::prune::{prune, PruneMode, PruneOptions};
use std::path::PathBuf;

/// Loads `model` (built-in name or path).
pub fn load(model: &str) -> Graph {
    petasos_compiler::load::load_model(model, &BuildOptions::default())
        .unwrap_or_else(|e| panic!("loading {model}: {e:#}"))
}

/// Prices `g` on built-in profile `device` (default unit) with no options.
pub fn price(g: &Graph, device: &str) -> Estimator {
    let p = DeviceProfile::load(device).expect("built-in profile");
    estimate(g, &p, None, &EstimateOptions::default(), WhatIf::default()).expect("estimate")
}

/// `g` with a fraction `amount` of the input channels of every prunable layer removed (L2
/// scores, per layer, reordered): the library's prune pass, as `petasos prune` runs it.
pub fn pruned(g: &Graph, amount: f64) -> Graph {
    let mut p = g.clone();
    let opts = PruneOptions::heuristic(Criterion::L2, amount, Scope::Layer, PruneMode::Reorder);
    prune(&mut p, &opts).expect("prune");
    p
}

/// `$PETASOS_SHARED/models/NAME.onnx`, or `None` after printing the NOT RUN line.
pub fn shared_model(test: &str, name: &str) -> Option<PathBuf> {
    match std::env::var_os("PETASOS_SHARED") {
        Some(s) => {
            let p = PathBuf::from(s).join("models").join(format!("{name}.onnx"));
            assert!(p.is_file(), "{} is missing", p.display());
            Some(p)
        }
        None => {
            loud(&format!(
                "NOT RUN: PETASOS_SHARED unset ({test} on {name}.onnx)"
            ));
            None
        }
    }
}

/// A fresh, empty scratch folder for `test`.
pub fn scratch(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("petasos-analysis-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

/// Writes `line` to stderr past the test harness's output capture, so it shows in a normal
/// `cargo test` run.
pub fn loud(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}
