//! The ONNX backend node-suite harness: import, interpret and compare one case.

use crate::compare::compare;
use crate::signature::signature;
use petasos_ir::onnx::{import_file, tensor_file::read_tensor_file};
use petasos_ir::{interp, Tensor};
use std::path::{Path, PathBuf};

/// Relative and absolute tolerances of the node suite.
pub const RTOL: f64 = 1e-3;
pub const ATOL: f64 = 1e-5;

/// The node-suite folder under the shared data folder.
pub fn node_suite(shared: &Path) -> PathBuf {
    shared.join("onnx-node-tests").join("node")
}

/// All case folders, sorted by name.
pub fn cases(suite: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(suite)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("model.onnx").is_file())
        .collect();
    v.sort();
    Ok(v)
}

/// Reads `test_data_set_0/{prefix}_N.pb` in order.
pub fn read_set(case: &Path, prefix: &str) -> Result<Vec<Tensor>, String> {
    let ds = case.join("test_data_set_0");
    let mut out = Vec::new();
    for i in 0.. {
        let p = ds.join(format!("{prefix}_{i}.pb"));
        if !p.is_file() {
            break;
        }
        out.push(read_tensor_file(&p).map_err(|e| e.to_string())?);
    }
    Ok(out)
}

/// Runs one case: `Ok(())` when every output matches. The graph is first exported to ONNX and
/// re-imported; the round trip must keep its signature, and the re-imported graph is what runs.
pub fn run_case(case: &Path) -> Result<(), String> {
    let g = import_file(&case.join("model.onnx")).map_err(|e| e.to_string())?;
    let inputs = read_set(case, "input")?;
    let want = read_set(case, "output")?;
    if want.is_empty() {
        return Err("the case has no recorded outputs (sequence/optional values)".into());
    }
    let g = round_trip(&g)?;
    let got = interp::run(&g, inputs).map_err(|e| e.to_string())?;
    if got.len() < want.len() {
        return Err(format!("{} outputs, expected {}", got.len(), want.len()));
    }
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        compare(g, w, RTOL, ATOL).map_err(|e| format!("output {i}: {e}"))?;
    }
    Ok(())
}

/// Runs a case, turning a panic into a failure.
pub fn run_case_caught(case: &Path) -> Result<(), String> {
    match std::panic::catch_unwind(|| run_case(case)) {
        Ok(r) => r,
        Err(p) => Err(format!(
            "PANIC: {}",
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        )),
    }
}

/// Runs many cases on `threads` worker threads; results in input order.
pub fn run_all(cases: &[PathBuf], threads: usize) -> Vec<(String, Result<(), String>)> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    let next = AtomicUsize::new(0);
    let results = Mutex::new(vec![None; cases.len()]);
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= cases.len() {
                    break;
                }
                let r = run_case_caught(&cases[i]);
                if let Ok(mut v) = results.lock() {
                    v[i] = Some(r);
                }
            });
        }
    });
    let results = results.into_inner().unwrap_or_default();
    cases
        .iter()
        .zip(results)
        .map(|(c, r)| {
            let name = c
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            (name, r.unwrap_or_else(|| Err("not run".into())))
        })
        .collect()
}

/// Exports `g` to ONNX bytes, re-imports it, and checks the signature is unchanged.
pub fn round_trip(g: &petasos_ir::Graph) -> Result<petasos_ir::Graph, String> {
    use protobuf::Message;
    let bytes = petasos_ir::onnx::export_model(g)
        .and_then(|m| {
            m.write_to_bytes()
                .map_err(|e| petasos_ir::Error::Export(e.to_string()))
        })
        .map_err(|e| format!("round trip: {e}"))?;
    let g2 = petasos_ir::onnx::import_bytes(&bytes)
        .map_err(|e| format!("round trip: re-import: {e}"))?;
    let (a, b) = (signature(g), signature(&g2));
    if a != b {
        let i = a
            .iter()
            .zip(&b)
            .position(|(x, y)| x != y)
            .unwrap_or(a.len().min(b.len()));
        return Err(format!(
            "round trip changed the graph: {:?} became {:?}",
            a.get(i),
            b.get(i)
        ));
    }
    Ok(g2)
}
