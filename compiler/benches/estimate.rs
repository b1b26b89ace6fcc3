//! Estimate benchmark: `cargo bench -p petasos-compiler --bench estimate`.
//!
//! Times what `petasos estimate afm-server-ptmoe --device apple-m3-max` does short of printing
//! (build the 17k-node graph, compute per-op work, price it, plan activation memory, make the
//! report), several times,
//! and prints min/median/max against the 1 s target (release build). Then times what-if toggles:
//! setting and clearing one op's options (re-pricing that op and updating the totals), over many
//! ops, in microseconds per toggle. Exits 1 if the estimate median misses the target.

use petasos_compiler::cost::{
    estimate, DeviceProfile, EstimateOptions, OpOptions, Report, WhatIf, Width,
};
use std::time::Instant;

fn main() {
    let target_s = 1.0;
    let profile = match DeviceProfile::load("apple-m3-max") {
        Ok(p) => p,
        Err(e) => {
            println!("estimate bench: {e}");
            std::process::exit(1);
        }
    };
    let opts = EstimateOptions::default();
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..7 {
        let t = Instant::now();
        let g = match petasos_models::build("afm-server-ptmoe") {
            Ok(g) => g,
            Err(e) => {
                println!("estimate bench: building afm-server-ptmoe: {e}");
                std::process::exit(1);
            }
        };
        let e = match estimate(&g, &profile, None, &opts, WhatIf::default()) {
            Ok(e) => e,
            Err(e) => {
                println!("estimate bench: {e}");
                std::process::exit(1);
            }
        };
        let mut r = Report::new("afm-server-ptmoe", &e);
        let popts = petasos_compiler::plan::memory::PlanOptions {
            dims: opts.dims(),
            ..Default::default()
        };
        match petasos_compiler::plan::memory::plan(&g, &popts) {
            Ok(p) => r.totals.peak_activation_bytes = Some(p.arena_bytes),
            Err(err) => {
                println!("estimate bench: planning: {err}");
                std::process::exit(1);
            }
        }
        times.push(t.elapsed().as_secs_f64());
        std::hint::black_box(r);
        last = Some((g.g.node_count(), e));
    }
    times.sort_by(f64::total_cmp);
    let med = times[times.len() / 2];
    let Some((nodes, mut e)) = last else { return };
    println!(
        "estimate afm-server-ptmoe on apple-m3-max ({nodes} nodes, {} ops): min {:.3} s  median {:.3} s  max {:.3} s  (target < {target_s} s)",
        e.work.ops.len(),
        times[0],
        med,
        times[times.len() - 1]
    );

    // What-if toggles: set then clear 4-bit weights on every op in turn, several passes.
    let n = e.work.ops.len();
    let on = Some(OpOptions {
        weight_bits: Some(Width::Bits(4.0)),
        ..Default::default()
    });
    let passes = 5;
    let t = Instant::now();
    for _ in 0..passes {
        for i in 0..n {
            e.set_op_options(i, on);
            std::hint::black_box(e.sums());
            e.set_op_options(i, None);
        }
    }
    let toggles = (2 * passes * n) as f64;
    let per_us = t.elapsed().as_secs_f64() * 1e6 / toggles;
    println!(
        "what-if toggle (one op's options set or cleared, totals updated): {per_us:.3} us per toggle over {toggles} toggles"
    );
    let t = Instant::now();
    e.set_what_if(WhatIf {
        ops: OpOptions {
            weight_bits: Some(Width::Bits(4.0)),
            ..Default::default()
        },
        ..Default::default()
    });
    println!(
        "whole-model what-if (every op re-priced): {:.3} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    if med > target_s {
        println!("estimate median {med:.3} s exceeds the {target_s} s target");
        std::process::exit(1);
    }
}
