//! Numerical equivalence of the standard pipeline on real graphs: the built-in `resnet18` and
//! `mobilenet_v2` at 1x3x32x32 and, when PETASOS_SHARED names the shared data folder, every
//! model in its `models/` folder (run on its recorded inputs where it has them). Outputs before
//! and after must agree within 1e-5 relative to max|out|; integer and bool outputs exactly.

use petasos_ir::onnx::import_file;
use petasos_ir::onnx::tensor_file::read_tensor_file;
use petasos_ir::stats::graph_stats;
use petasos_ir::verify::verify;
use petasos_ir::{interp, Graph, Tensor};
use petasos_models::{build_with, BuildOptions};
use petasos_passes::PassManager;
use std::path::{Path, PathBuf};

fn compare(before: &[Tensor], after: &[Tensor]) -> Result<(), String> {
    if before.len() != after.len() {
        return Err(format!("{} outputs, then {}", before.len(), after.len()));
    }
    for (i, (a, b)) in before.iter().zip(after).enumerate() {
        if a.dtype() != b.dtype() || a.shape() != b.shape() {
            return Err(format!(
                "output {i}: {} {:?} became {} {:?}",
                a.dtype(),
                a.shape(),
                b.dtype(),
                b.shape()
            ));
        }
        let (Ok(x), Ok(y)) = (a.to_f64_vec(), b.to_f64_vec()) else {
            if a != b {
                return Err(format!("output {i} differs"));
            }
            continue;
        };
        let scale = x
            .iter()
            .filter(|v| v.is_finite())
            .fold(0f64, |m, v| m.max(v.abs()));
        let tol = if a.dtype().is_float() {
            1e-5 * scale
        } else {
            0.0
        };
        for (k, (p, q)) in x.iter().zip(&y).enumerate() {
            let same = p == q || (p.is_nan() && q.is_nan()) || (p - q).abs() <= tol;
            if !same {
                return Err(format!("output {i} element {k}: {p} became {q}"));
            }
        }
    }
    Ok(())
}

/// Runs the standard pipeline on `g`, prints the figures, and (with `inputs`) checks outputs.
fn check(label: &str, g: &Graph, inputs: Option<Vec<Tensor>>) -> Result<(), String> {
    let mut h = g.clone();
    let report = PassManager::standard()
        .run(&mut h)
        .map_err(|e| format!("pipeline: {e}"))?;
    verify(&h).map_err(|e| format!("verify: {e}"))?;
    let (s0, s1) = (graph_stats(g), graph_stats(&h));
    println!(
        "{label}: nodes {} -> {}, parameters {} -> {}, rewrites {}",
        s0.nodes, s1.nodes, s0.parameters, s1.parameters, report.rewrites
    );
    for p in &report.passes {
        println!(
            "    {:<10} {:>9.1} ms  {}",
            p.pass,
            p.time.as_secs_f64() * 1e3,
            p.summary
        );
    }
    let Some(inputs) = inputs else {
        println!("    (no recorded inputs: outputs not compared)");
        return Ok(());
    };
    let before = interp::run(g, inputs.clone()).map_err(|e| format!("run before: {e}"))?;
    let after = interp::run(&h, inputs).map_err(|e| format!("run after: {e}"))?;
    compare(&before, &after)
}

fn image_input() -> Tensor {
    let n = 3 * 32 * 32;
    let v = (0..n)
        .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    Tensor::from_f32(&[1, 3, 32, 32], v).unwrap()
}

fn builtin(name: &str) -> Graph {
    let opts = BuildOptions {
        overrides: Some(serde_json::json!({ "image_size": 32 })),
        ..Default::default()
    };
    build_with(name, &opts).unwrap()
}

#[test]
fn standard_pipeline_keeps_resnet18_outputs() {
    let g = builtin("resnet18");
    check("resnet18 (built-in, 32x32)", &g, Some(vec![image_input()])).unwrap();
}

#[test]
fn standard_pipeline_keeps_mobilenet_v2_outputs() {
    let g = builtin("mobilenet_v2");
    check(
        "mobilenet_v2 (built-in, 32x32)",
        &g,
        Some(vec![image_input()]),
    )
    .unwrap();
}

fn recorded_inputs(dir: &Path) -> Option<Vec<Tensor>> {
    let ds = dir.join("test_data_set_0");
    let mut v = Vec::new();
    for i in 0.. {
        let p = ds.join(format!("input_{i}.pb"));
        if !p.is_file() {
            break;
        }
        v.push(read_tensor_file(&p).ok()?);
    }
    (!v.is_empty()).then_some(v)
}

#[test]
fn standard_pipeline_keeps_shared_model_outputs() {
    let Some(shared) = std::env::var_os("PETASOS_SHARED").map(PathBuf::from) else {
        eprintln!(
            "\n!!!!! standard_pipeline_keeps_shared_model_outputs: NOT RUN — set PETASOS_SHARED \
             to the shared data folder !!!!!\n"
        );
        println!("standard_pipeline_keeps_shared_model_outputs: NOT RUN (PETASOS_SHARED unset)");
        return;
    };
    let dir = shared.join("models");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "onnx"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no models in {}", dir.display());
    let mut failures = Vec::new();
    for f in &files {
        let name = f.file_stem().unwrap().to_string_lossy().to_string();
        let t = std::time::Instant::now();
        let res = import_file(f)
            .map_err(|e| format!("import: {e}"))
            .and_then(|g| check(&name, &g, recorded_inputs(&dir.join(&name))));
        match res {
            Ok(()) => println!("ok   {name} ({:.1}s)", t.elapsed().as_secs_f64()),
            Err(e) => {
                println!("FAIL {name}: {e}");
                failures.push(name);
            }
        }
    }
    assert!(failures.is_empty(), "models failing: {failures:?}");
}
