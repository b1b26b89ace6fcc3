//! Import-time benchmark: `cargo bench -p petasos-ir --bench import`.
//!
//! Imports ../shared/models/resnet18.onnx (47 MB; path from PETASOS_SHARED) repeatedly and
//! prints min/median/max. Target: median under 50 ms in a release build (weights stay in the
//! memory map, so import cost is the graph structure, not the bytes). Exits 1 if the target is
//! missed, 0 with a loud note if the model is absent.

use std::path::PathBuf;
use std::time::Instant;

fn main() {
    let Some(shared) = std::env::var_os("PETASOS_SHARED").map(PathBuf::from) else {
        println!("import bench: NOT RUN (set PETASOS_SHARED to the shared data folder)");
        return;
    };
    let target_ms = 50.0;
    let mut failed = false;
    for name in [
        "resnet18",
        "densenet121",
        "ch_PP-OCRv4_rec_infer",
        "tiny_llama",
    ] {
        let path = shared.join("models").join(format!("{name}.onnx"));
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let mut times = Vec::new();
        for _ in 0..15 {
            let t = Instant::now();
            match petasos_ir::onnx::import_file(&path) {
                Ok(g) => std::hint::black_box(g),
                Err(e) => {
                    println!("{name}: import failed: {e}");
                    std::process::exit(1);
                }
            };
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(f64::total_cmp);
        let med = times[times.len() / 2];
        println!(
            "import {name:<24} {:>6.1} MB  min {:>7.2} ms  median {:>7.2} ms  max {:>7.2} ms",
            size as f64 / 1e6,
            times[0],
            med,
            times[times.len() - 1]
        );
        if name == "resnet18" && med > target_ms {
            println!("resnet18 import median {med:.2} ms exceeds the {target_ms} ms target");
            failed = true;
        }
    }
    if failed {
        std::process::exit(1);
    }
}
