//! Built-in presets through the command line: listing with parameter counts, inspect by name,
//! decode phase, config overrides, interpret and export of a small preset, clear errors.

use std::process::{Command, Output};

fn petasos(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_petasos"))
        .args(args)
        .output()
        .expect("run petasos")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn one_line_error(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(1), "expected exit 1: {o:?}");
    let e = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(e.trim_end().lines().count(), 1, "not one line: {e}");
    e
}

#[test]
fn models_lists_presets_with_exact_parameter_counts() {
    let o = petasos(&["models"]);
    assert!(o.status.success());
    let text = stdout(&o);
    for (name, count) in [
        ("resnet18", "11,689,512"),
        ("resnet50", "25,557,032"),
        ("densenet121", "7,978,856"),
        ("mobilenet_v2", "3,504,872"),
        ("efficientnet_v2_s", "21,458,488"),
        ("vit_b_16", "86,567,656"),
        ("afm-ondevice-2025", "3,111,368,064"),
    ] {
        let line = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} not listed:\n{text}"));
        assert!(line.contains(count), "{name}: {line}");
    }
}

#[test]
fn inspect_a_preset_by_name_in_both_phases() {
    let o = petasos(&["inspect", "afm-ondevice-2025", "--json"]);
    assert!(o.status.success(), "{o:?}");
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert_eq!(v["metadata"]["kv_cache_values_per_token"], "17920");
    assert!(
        v["macs"].as_u64().unwrap_or(0) > 1_000_000_000,
        "{}",
        v["macs"]
    );
    let o = petasos(&[
        "inspect",
        "afm-ondevice-2025",
        "--phase",
        "decode",
        "--json",
    ]);
    assert!(o.status.success(), "{o:?}");
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    let inputs = v["inputs"].as_array().expect("inputs");
    // input_ids plus K and V for each of the 35 layers that own a cache.
    assert_eq!(inputs.len(), 1 + 2 * 35);
}

#[test]
fn overrides_change_the_graph_and_bad_configs_are_errors() {
    let o = petasos(&[
        "inspect",
        "llama-tiny",
        "--config",
        r#"{"layers": 1}"#,
        "--json",
    ]);
    assert!(o.status.success(), "{o:?}");
    let one: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    let o = petasos(&["inspect", "llama-tiny", "--json"]);
    let two: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert!(one["parameters"].as_u64() < two["parameters"].as_u64());

    let e = one_line_error(&petasos(&[
        "inspect",
        "llama-tiny",
        "--config",
        r#"{"heads": 0}"#,
    ]));
    assert!(e.contains("heads"), "{e}");
    let e = one_line_error(&petasos(&[
        "inspect",
        "llama-tiny",
        "--config",
        r#"{"nope": 1}"#,
    ]));
    assert!(e.contains("unknown config field 'nope'"), "{e}");
    let e = one_line_error(&petasos(&["inspect", "no-such-model"]));
    assert!(e.contains("not a built-in model"), "{e}");
}

#[test]
fn a_small_preset_exports_and_too_large_ones_refuse() {
    let dir = std::env::temp_dir().join(format!("petasos-presets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let out = dir.join("llama-tiny.onnx");
    let o = petasos(&[
        "export-onnx",
        "llama-tiny",
        "-o",
        out.to_str().expect("utf8"),
    ]);
    assert!(o.status.success(), "{o:?}");
    let g = petasos_ir::onnx::import_file(&out).expect("re-import");
    assert!(g.op_count() > 10);
    let e = one_line_error(&petasos(&[
        "export-onnx",
        "llama2-7b",
        "-o",
        dir.join("big.onnx").to_str().expect("utf8"),
    ]));
    assert!(e.contains("2 GiB"), "{e}");
    assert!(!dir.join("big.onnx").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn compile_runs_passes_reports_and_writes_an_equivalent_model() {
    let dir = std::env::temp_dir().join(format!("petasos-compile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let out = dir.join("tiny.onnx");
    let o = petasos(&[
        "compile",
        "llama-tiny",
        "--json",
        "-o",
        out.to_str().expect("utf8"),
    ]);
    assert!(o.status.success(), "{o:?}");
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    let names: Vec<&str> = v["passes"]
        .as_array()
        .expect("passes")
        .iter()
        .filter_map(|p| p["pass"].as_str())
        .collect();
    assert_eq!(names, petasos_passes::standard_pipeline());
    let g = petasos_ir::onnx::import_file(&out).expect("compiled model imports");
    assert!(g.op_count() > 10);
    let e = one_line_error(&petasos(&["compile", "llama-tiny", "--passes", "nope"]));
    assert!(e.contains("unknown pass 'nope'"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
