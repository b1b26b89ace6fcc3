//! Build-time benchmark of the built-in presets: `cargo bench -p petasos-models --bench build`.
//!
//! Builds every preset and computes its statistics (what `petasos inspect PRESET` does before
//! printing), several times each, and prints min/median/max. Target: the largest preset
//! (`afm-server-ptmoe`, ~148B parameters) under 1 s median in a release build, which holds
//! because weights are synthetic (a seed each, no bytes). Exits 1 if the target is missed.

use petasos_models::{build_with, presets, BuildOptions};
use std::time::Instant;

fn main() {
    let target_ms = 1000.0;
    let mut failed = false;
    for p in presets() {
        let mut times = Vec::new();
        let mut params = 0;
        for _ in 0..5 {
            let t = Instant::now();
            let g = match build_with(p.name, &BuildOptions::default()) {
                Ok(g) => g,
                Err(e) => {
                    println!("{}: build failed: {e}", p.name);
                    std::process::exit(1);
                }
            };
            std::hint::black_box(petasos_ir::stats::graph_stats(&g));
            params = petasos_models::learned_parameters(&g);
            std::hint::black_box(g);
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(f64::total_cmp);
        let med = times[times.len() / 2];
        println!(
            "build+stats {:<20} {:>17} params  min {:>8.2} ms  median {:>8.2} ms  max {:>8.2} ms",
            p.name,
            params,
            times[0],
            med,
            times[times.len() - 1]
        );
        if med > target_ms {
            println!(
                "{} median {med:.1} ms exceeds the {target_ms} ms target",
                p.name
            );
            failed = true;
        }
    }
    if failed {
        std::process::exit(1);
    }
}
