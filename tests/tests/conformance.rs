//! The ONNX backend node suite, driven by the allow-list tests/conformance/allow.txt: every listed
//! case must pass (so the count only goes up). Prints `N passed, M failed` over the whole suite.

use petasos_tests::conformance::{cases, node_suite, run_all};
use petasos_tests::{shared_dir, skipped_loudly};
use std::collections::BTreeSet;

#[test]
fn node_suite_allow_list_passes() {
    let Some(shared) = shared_dir() else {
        skipped_loudly("node_suite_allow_list_passes");
        return;
    };
    let allow_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance/allow.txt");
    let allow: BTreeSet<String> = std::fs::read_to_string(&allow_path)
        .expect("tests/conformance/allow.txt")
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let all = cases(&node_suite(&shared)).expect("list the node suite");
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let results = run_all(&all, threads);
    let mut passed = 0;
    let mut regressions = Vec::new();
    let mut new_passes = Vec::new();
    for (name, r) in &results {
        match r {
            Ok(()) => {
                passed += 1;
                if !allow.contains(name) {
                    new_passes.push(name.clone());
                }
            }
            Err(e) if allow.contains(name) => regressions.push(format!("{name}: {e}")),
            Err(_) => {}
        }
    }
    let missing: Vec<&String> = allow
        .iter()
        .filter(|a| !results.iter().any(|(n, _)| n == *a))
        .collect();
    println!(
        "node suite: {} passed, {} failed ({} cases, {} allow-listed)",
        passed,
        results.len() - passed,
        results.len(),
        allow.len()
    );
    if !new_passes.is_empty() {
        println!(
            "{} cases pass but are not allow-listed yet (add them): {:?}",
            new_passes.len(),
            new_passes
        );
    }
    assert!(
        missing.is_empty(),
        "allow-listed cases missing from the suite: {missing:?}"
    );
    assert!(
        regressions.is_empty(),
        "allow-listed cases now fail:\n{}",
        regressions.join("\n")
    );
}
