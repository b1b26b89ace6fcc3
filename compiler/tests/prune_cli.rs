//! `petasos prune` and `petasos compile --passes prune`: bad input exits non-zero with a
//! one-line message naming the problem; `--json` totals exist and add up; written models
//! re-import; the masked model is written from the same plan.

use petasos_ir::builder::GraphBuilder;
use petasos_ir::op::Attr;
use petasos_ir::{DType, ValueType};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn petasos(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_petasos"))
        .args(args)
        .output()
        .expect("spawn petasos")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("petasos_prune_cli_{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

/// Conv(3->8) -> Relu -> two 1x1 convs (8->4) ("/k1/Conv", "/k2/Conv"), summed: the first
/// segment is prunable (two consumers), the rest is not.
fn fan_model(path: &Path) {
    let mut b = GraphBuilder::new("fan", 3);
    let x = b.input("x", ValueType::known(DType::F32, &[1, 3, 8, 8]));
    let w = b.weight("w", DType::F32, &[8, 3, 3, 3], 0.3);
    let p = b
        .op("Conv", &[x, w], &[("pads", Attr::Ints(vec![1, 1, 1, 1]))])
        .unwrap();
    let r = b.op("Relu", &[p], &[]).unwrap();
    let mut outs = Vec::new();
    for k in ["k1", "k2"] {
        b.push(k);
        let w = b.weight("w", DType::F32, &[4, 8, 1, 1], 0.3);
        outs.push(b.op("Conv", &[r, w], &[]).unwrap());
        b.pop();
    }
    let y = b.op("Add", &outs, &[]).unwrap();
    b.output(y, "y");
    petasos_ir::onnx::save_model(&b.finish().unwrap(), path).unwrap();
}

/// One Conv whose output is the graph output: nothing to prune.
fn single_model(path: &Path) {
    let mut b = GraphBuilder::new("single", 1);
    let x = b.input("x", ValueType::known(DType::F32, &[1, 3, 8, 8]));
    let w = b.weight("w", DType::F32, &[4, 3, 3, 3], 0.3);
    let y = b.op("Conv", &[x, w], &[]).unwrap();
    b.output(y, "y");
    petasos_ir::onnx::save_model(&b.finish().unwrap(), path).unwrap();
}

/// Asserts `o` failed with one stderr line containing every phrase.
fn fails_with(o: &Output, phrases: &[&str]) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "expected failure, stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("petasos: error:"), "{err}");
    for p in phrases {
        assert!(err.contains(p), "missing '{p}' in: {err}");
    }
}

#[test]
fn bad_input_is_a_one_line_error() {
    let model = tmp("fan.onnx");
    fan_model(&model);
    let m = model.to_str().unwrap();
    fails_with(
        &petasos(&["prune", m, "--amount", "1.0"]),
        &["amount 1", "[0, 1)"],
    );
    fails_with(
        &petasos(&["prune", m, "--amount", "-0.2"]),
        &["amount -0.2", "[0, 1)"],
    );
    fails_with(&petasos(&["prune", m]), &["--amount", "--masks"]);

    let masks = tmp("unknown.json");
    std::fs::write(&masks, r#"{"/nope/Conv": [true, false]}"#).unwrap();
    fails_with(
        &petasos(&["prune", m, "--masks", masks.to_str().unwrap()]),
        &["'/nope/Conv'", "/k1/Conv"],
    );
    let masks = tmp("short.json");
    std::fs::write(&masks, r#"{"/k1/Conv": [1, 0, 1]}"#).unwrap();
    fails_with(
        &petasos(&["prune", m, "--masks", masks.to_str().unwrap()]),
        &["/k1/Conv", "3 entries", "8 input channels"],
    );
    let masks = tmp("bad.json");
    std::fs::write(&masks, r#"{"/k1/Conv": [1, 0, 2, 1, 1, 1, 1, 1]}"#).unwrap();
    fails_with(
        &petasos(&["prune", m, "--masks", masks.to_str().unwrap()]),
        &["entry 2", "true/false or 1/0"],
    );

    let single = tmp("single.onnx");
    single_model(&single);
    let s = single.to_str().unwrap();
    fails_with(
        &petasos(&["prune", s, "--amount", "0.3"]),
        &["no prunable layer", "graph output 'y'"],
    );
    fails_with(
        &petasos(&["compile", s, "--passes", "prune", "--prune-amount", "0.3"]),
        &["prune", "no prunable layer"],
    );
    fails_with(
        &petasos(&["compile", m, "--passes", "prune", "--prune-amount", "1.5"]),
        &["1.5", "[0, 1)"],
    );
}

#[test]
fn json_totals_and_written_models() {
    let model = tmp("fan2.onnx");
    fan_model(&model);
    let (out, masked) = (tmp("pruned.onnx"), tmp("masked.onnx"));
    let o = petasos(&[
        "prune",
        model.to_str().unwrap(),
        "--amount",
        "0.5",
        "--heuristic",
        "fpgm",
        "-o",
        out.to_str().unwrap(),
        "--masked-out",
        masked.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let t = &v["totals"];
    for k in [
        "gathers",
        "slices",
        "params_before",
        "params_after",
        "macs_before",
        "macs_after",
    ] {
        assert!(t[k].is_u64(), "totals.{k} missing: {t}");
    }
    assert!(t["params_after"].as_u64() < t["params_before"].as_u64());
    assert!(t["macs_after"].as_u64() < t["macs_before"].as_u64());
    let segs = v["segments"].as_array().unwrap();
    let removed: u64 = segs
        .iter()
        .map(|s| s["params_removed"].as_u64().unwrap())
        .sum();
    assert_eq!(
        removed,
        t["params_before"].as_u64().unwrap() - t["params_after"].as_u64().unwrap()
    );
    let pruned = petasos_ir::onnx::import_file(&out).unwrap();
    let gathers = pruned
        .g
        .node_weights()
        .filter(|n| n.op.op_type() == "Gather")
        .count();
    assert_eq!(gathers as u64, t["gathers"].as_u64().unwrap());
    let m = petasos_ir::onnx::import_file(&masked).unwrap();
    let x = petasos_ir::Tensor::from_f32(
        &[1, 3, 8, 8],
        (0..192).map(|i| (i as f32 * 0.37).sin()).collect(),
    )
    .unwrap();
    let a = petasos_ir::interp::run(&pruned, vec![x.clone()]).unwrap();
    let b = petasos_ir::interp::run(&m, vec![x]).unwrap();
    let (a, b) = (a[0].to_f64_vec().unwrap(), b[0].to_f64_vec().unwrap());
    let scale = b.iter().fold(0f64, |s, v| s.max(v.abs()));
    assert!(a.iter().zip(&b).all(|(p, q)| (p - q).abs() <= 1e-5 * scale));

    // The table form names the segment and the totals line.
    let o = petasos(&[
        "prune",
        model.to_str().unwrap(),
        "--amount",
        "0.5",
        "--no-reorder",
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success());
    assert!(
        text.contains("gathers b->a") && text.contains("mode no-reorder"),
        "{text}"
    );

    // --cover-gathers leaves no gather (explicit masks making one unavoidable: E5-like).
    let masks = tmp("cover.json");
    std::fs::write(
        &masks,
        r#"{"/k1/Conv": [1, 1, 0, 0, 1, 1, 1, 1], "/k2/Conv": [0, 1, 1, 1, 0, 1, 1, 0]}"#,
    )
    .unwrap();
    let mut gathers = Vec::new();
    for extra in [None, Some("--no-reorder"), Some("--cover-gathers")] {
        let mut args = vec![
            "prune",
            model.to_str().unwrap(),
            "--masks",
            masks.to_str().unwrap(),
            "--json",
        ];
        args.extend(extra);
        let o = petasos(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        gathers.push(v["totals"]["gathers"].as_u64().unwrap());
    }
    assert_eq!(gathers[1], 2, "baseline gathers both: {gathers:?}");
    assert!(gathers[0] < gathers[1], "{gathers:?}");
    assert_eq!(gathers[2], 0, "{gathers:?}");

    // compile --passes prune reports the pass.
    let o = petasos(&[
        "compile",
        model.to_str().unwrap(),
        "--passes",
        "prune,dce",
        "--prune-amount",
        "0.5",
        "--prune-heuristic",
        "l1",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["passes"][0]["pass"], "prune");
    assert_eq!(v["passes"][0]["rewrites"], 1);
    let summary = v["passes"][0]["summary"].as_str().unwrap();
    assert!(summary.contains("0.50 by L1"), "{summary}");
}
