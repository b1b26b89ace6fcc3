//! Runs the ONNX node suite and prints each case's result.
//!
//! `conformance [FILTER] [--failures] [--write-allow FILE]`: FILTER keeps cases whose name
//! contains it; `--failures` prints the reason of each failing case (`--long`: untruncated); `--write-allow` writes the
//! names of passing cases (the allow-list).

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
