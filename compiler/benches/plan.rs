//! Memory-planner benchmark: `cargo bench -p petasos-compiler --bench plan` (or
//! `cargo run -p petasos-compiler --bench plan` for a dev build).
//!
//! Plans resnet18 (batch 1) and afm-server-ptmoe (~17k nodes; prefill S = 2048 and decode
//! T = 4096) several times each and prints build time, plan time (min/median/max), buffer count,
//! arena, largest live set and naive sum. Target: planning afm-server-ptmoe well under 100 ms in
//! a release build (the planner is `O((n + P) log n)`, `P` = overlapping buffer pairs). Prints
//! figures only; it asserts nothing about time.

use petasos_compiler::plan::{plan, Order, PlanOptions, Strategy};
use petasos_models::{build_with, BuildOptions, Phase};
use std::time::Instant;

fn mb(b: u64) -> f64 {
    b as f64 / 1e6
}

fn main() {
    let cases = [
        ("resnet18", Phase::Prefill, PlanOptions::default()),
        (
            "afm-server-ptmoe",
            Phase::Prefill,
            PlanOptions::default().with_dim("S", 2048),
        ),
        (
            "afm-server-ptmoe",
            Phase::Decode,
            PlanOptions::default().with_dim("T", 4096),
        ),
    ];
    for (name, phase, opts) in cases {
        let t = Instant::now();
        let bo = BuildOptions {
            phase,
            ..Default::default()
        };
        let g = match build_with(name, &bo) {
            Ok(g) => g,
            Err(e) => {
                println!("{name}: build failed: {e}");
                std::process::exit(1);
            }
        };
        let build_ms = t.elapsed().as_secs_f64() * 1e3;
        for (order, strategy) in [
            (Order::Graph, Strategy::Auto),
            (Order::Graph, Strategy::GreedyBySize),
            (Order::Graph, Strategy::Sweep),
            (Order::Insertion, Strategy::Auto),
        ] {
            let opts = PlanOptions {
                strategy,
                order,
                ..opts.clone()
            };
            let mut times = Vec::new();
            let mut last = None;
            for _ in 0..5 {
                let t = Instant::now();
                let p = match plan(&g, &opts) {
                    Ok(p) => p,
                    Err(e) => {
                        println!("{name}: plan failed: {e}");
                        std::process::exit(1);
                    }
                };
                times.push(t.elapsed().as_secs_f64() * 1e3);
                last = Some(p);
            }
            times.sort_by(f64::total_cmp);
            let Some(p) = last else { continue };
            println!(
            "{name} ({phase:?}, {order:?} order, {strategy:?} -> {:?}): {} nodes, {} buffers, {} steps; build {build_ms:.1} ms; plan \
             min {:.2} / median {:.2} / max {:.2} ms; arena {:.2} MB, max live {:.2} MB, naive \
             {:.2} MB, weights {:.1} MB",
            p.strategy,
            g.g.node_count(),
            p.buffers.len(),
            p.steps(),
            times[0],
            times[times.len() / 2],
            times[times.len() - 1],
            mb(p.arena_bytes),
            mb(p.max_live_bytes),
            mb(p.naive_bytes),
            mb(p.weight_bytes),
        );
        }
    }
}
