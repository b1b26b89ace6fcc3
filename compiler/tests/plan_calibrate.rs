//! `petasos calibrate --quick`: writes a parseable `host` profile with positive measured
//! numbers, a source for each, and the same structure every run; a bad output path is a
//! one-line error that leaves nothing behind.

use std::process::Command;

fn calibrate(out: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_petasos"))
        .args(["calibrate", "--quick", "-o"])
        .arg(out)
        .output()
        .expect("run petasos")
}

/// The profile's keys, table by table, in order (values left out).
fn structure(v: &toml::Value) -> Vec<String> {
    let mut keys = Vec::new();
    if let Some(t) = v.as_table() {
        for (k, x) in t {
            keys.push(k.clone());
            if x.is_table() || x.is_array() {
                let inner = match x {
                    toml::Value::Array(a) => a.iter().flat_map(structure).collect(),
                    _ => structure(x),
                };
                keys.extend(inner.into_iter().map(|s| format!("{k}.{s}")));
            }
        }
    }
    keys
}

#[test]
fn quick_calibration_writes_a_parseable_host_profile() {
    let dir = std::env::temp_dir().join(format!("petasos-calibrate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("host.toml");
    let o = calibrate(&path);
    assert!(o.status.success(), "{o:?}");
    let text = std::fs::read_to_string(&path).unwrap();
    let v: toml::Value = toml::from_str(&text).expect("valid TOML");
    assert_eq!(v["name"].as_str(), Some("host"));
    for (table, key) in [
        ("compute", "f32_gflops"),
        ("compute", "f16_gflops"),
        ("compute", "int8_gops"),
        ("memory", "dram_gbps"),
        ("memory", "l2_gbps"),
        ("overhead", "launch_us"),
        ("overhead", "dispatch_us"),
        ("energy", "pj_per_flop_f32"),
        ("energy", "pj_per_byte_dram"),
    ] {
        let x = v[table][key].as_float().unwrap_or(-1.0);
        assert!(x > 0.0 && x.is_finite(), "{table}.{key} = {x}");
        let src = v["source"][key].as_str().unwrap_or("");
        assert!(
            src.starts_with("measured:") || src.starts_with("estimate:"),
            "source of {key}: {src:?}"
        );
    }
    let gemm = v["gemm_f32"].as_array().expect("gemm_f32 table array");
    assert_eq!(gemm.len(), 5);
    assert!(gemm
        .iter()
        .all(|g| g["gflops"].as_float().unwrap_or(0.0) > 0.0));
    // Same structure on a second run; no temporary file left behind.
    let o = calibrate(&path);
    assert!(o.status.success(), "{o:?}");
    let w: toml::Value = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(structure(&v), structure(&w));
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["host.toml"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_unwritable_path_is_a_one_line_error() {
    let o = calibrate(std::path::Path::new("/nonexistent-dir/host.toml"));
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        e.trim_end().lines().count(),
        1,
        "one line, before measuring: {e}"
    );
    assert!(
        e.starts_with("petasos: error: writing /nonexistent-dir/host.toml"),
        "{e}"
    );
}
