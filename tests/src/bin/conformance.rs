//! Runs the ONNX node suite and prints each case's result.
//!
//! `conformance [FILTER] [--failures] [--write-allow FILE]`: FILTER keeps cases whose name
//! contains it; `--failures` prints the reason of each failing case (`--long`: untruncated); `--write-allow` writes the
//! names of passing cases (the allow-list).
//!
//! `conformance --backend cpu [FILTER] [--failures] [--keep] [--jobs N]`: the allow-listed
//! cases through the CPU backend (compile to C with `cc -O1`, run `main`, compare); prints
//! `N compiled+matched, M failed` and the failures grouped by reason (`no lowering for op X:
//! count`). `--keep` keeps each case's artifact under $TMPDIR/petasos-conf-cpu-PID/CASE/out.
//! Integer inputs that decide shapes are frozen to their recorded values when needed for
//! static shapes (`--no-freeze`: never). `--write-allow FILE` writes the matched cases;
//! `--require FILE` exits 1 when a case listed in FILE (tests/conformance/allow_cpu.txt in CI)
//! does not compile, run and match.

use petasos_tests::conformance::{cases, node_suite, run_all};
use petasos_tests::shared_dir;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let show = args.iter().any(|a| a == "--failures" || a == "--long");
    let long = args.iter().any(|a| a == "--long");
    let allow_out = args
        .iter()
        .position(|a| a == "--write-allow")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let filter = args
        .iter()
        .find(|a| !a.starts_with("--") && Some(*a) != allow_out.as_ref())
        .cloned()
        .unwrap_or_default();
    let Some(shared) = shared_dir() else {
        eprintln!("set PETASOS_SHARED to the shared data folder");
        std::process::exit(2);
    };
    if args
        .windows(2)
        .any(|w| w[0] == "--backend" && w[1] == "cpu")
    {
        cpu_main(&args, &shared, show, long);
        return;
    }
    let all = match cases(&node_suite(&shared)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot list the node suite: {e}");
            std::process::exit(2);
        }
    };
    let sel: Vec<_> = all
        .into_iter()
        .filter(|c| c.to_string_lossy().contains(&filter))
        .collect();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let res = run_all(&sel, threads);
    let mut passed = Vec::new();
    let mut failed = 0;
    for (name, r) in &res {
        match r {
            Ok(()) => passed.push(name.clone()),
            Err(e) => {
                failed += 1;
                if show {
                    let e: String = e.chars().take(if long { 100_000 } else { 300 }).collect();
                    println!("FAIL {name}: {e}");
                }
            }
        }
    }
    if let Some(path) = allow_out {
        let mut text = String::from(
            "# ONNX node-suite cases that pass (import + interpret + compare). Only add lines.\n",
        );
        for p in &passed {
            text.push_str(p);
            text.push('\n');
        }
        if let Err(e) = std::fs::write(&path, text) {
            eprintln!("cannot write {path}: {e}");
            std::process::exit(2);
        }
    }
    println!("conformance: {} passed, {} failed", passed.len(), failed);
}

/// `--backend cpu`: allow-listed cases through the CPU backend.
fn cpu_main(args: &[String], shared: &std::path::Path, show: bool, long: bool) {
    use petasos_tests::cpu_conformance::{allow_list, run_all_cpu, CpuRun};
    use std::collections::BTreeMap;
    let value_of = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let jobs: usize = value_of("--jobs")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        });
    let mut skip = vec!["cpu".to_string()];
    skip.extend(value_of("--jobs"));
    skip.extend(value_of("--write-allow"));
    skip.extend(value_of("--require"));
    let filter = args
        .iter()
        .find(|a| !a.starts_with("--") && !skip.contains(a))
        .cloned()
        .unwrap_or_default();
    let allow = match allow_list() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("cannot read the allow-list: {e}");
            std::process::exit(2);
        }
    };
    let suite = node_suite(shared);
    let sel: Vec<_> = allow
        .iter()
        .filter(|n| n.contains(&filter))
        .map(|n| suite.join(n))
        .filter(|p| p.join("model.onnx").is_file())
        .collect();
    // One folder per process: concurrent runs must not share case folders.
    let work = std::env::temp_dir().join(format!("petasos-conf-cpu-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&work);
    let mut run = CpuRun::new(work);
    run.keep = args.iter().any(|a| a == "--keep");
    run.freeze = !args.iter().any(|a| a == "--no-freeze");
    let t0 = std::time::Instant::now();
    let res = run_all_cpu(&sel, jobs, &run);
    if !run.keep {
        let _ = std::fs::remove_dir_all(&run.work);
    }
    let mut ok = 0;
    let mut matched = Vec::new();
    let mut groups: BTreeMap<String, usize> = BTreeMap::new();
    for (name, r) in &res {
        match r {
            Ok(()) => {
                ok += 1;
                matched.push(name.clone());
            }
            Err(f) => {
                *groups.entry(f.key.clone()).or_default() += 1;
                if show {
                    let m: String = f
                        .msg
                        .chars()
                        .take(if long { 100_000 } else { 300 })
                        .collect();
                    println!("FAIL {name} [{:?}] {m}", f.stage);
                }
            }
        }
    }
    let mut g: Vec<(String, usize)> = groups.into_iter().collect();
    g.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    if !g.is_empty() {
        println!("failures by reason:");
        for (k, n) in &g {
            println!("  {k}: {n}");
        }
    }
    println!(
        "conformance (cpu): {ok} compiled+matched, {} failed ({} allow-listed cases selected, {:.0} s)",
        res.len() - ok,
        res.len(),
        t0.elapsed().as_secs_f64()
    );
    if let Some(path) = value_of("--write-allow") {
        let mut text = String::from(
            "# ONNX node-suite cases the CPU backend compiles, runs and matches. Only add lines.\n",
        );
        for m in &matched {
            text.push_str(m);
            text.push('\n');
        }
        if let Err(e) = std::fs::write(&path, text) {
            eprintln!("cannot write {path}: {e}");
            std::process::exit(2);
        }
    }
    if let Some(path) = value_of("--require") {
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("cannot read {path}: {e}");
                std::process::exit(2);
            }
        };
        let got: std::collections::HashSet<&str> = matched.iter().map(|m| m.as_str()).collect();
        let missing: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#') && l.contains(&filter))
            .filter(|l| !got.contains(l))
            .collect();
        if !missing.is_empty() {
            eprintln!(
                "{} required case(s) of {path} no longer compile, run and match: {}",
                missing.len(),
                missing.join(", ")
            );
            std::process::exit(1);
        }
        println!("every required case of {path} matched");
    }
}
