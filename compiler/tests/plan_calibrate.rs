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
    // It is a device profile the cost model loads.
    petasos_compiler::cost::DeviceProfile::parse(&text, "calibrated").expect("loads as a profile");
    let cpu = &v["units"]["cpu"];
    for (what, x) in [
        ("f32 peak", &cpu["peak_ops_per_s"]["f32"]),
        ("int8 peak", &cpu["peak_ops_per_s"]["int8"]),
        ("launch overhead", &cpu["launch_overhead_s"]),
        (
            "DRAM bandwidth",
            &v["memory"]["dram"]["bandwidth_bytes_per_s"],
        ),
        (
            "on-chip bandwidth",
            &v["memory"]["onchip"]["bandwidth_bytes_per_s"],
        ),
    ] {
        let val = x["value"].as_float().unwrap_or(-1.0);
        assert!(val > 0.0 && val.is_finite(), "{what} = {val}");
        let src = x["source"].as_str().unwrap_or("");
        assert!(src.starts_with("measured:"), "source of {what}: {src:?}");
    }
    let e = &cpu["energy_pj_per_op"]["f32"];
    assert!(e["source"].as_str().unwrap_or("").starts_with("estimate:"));
    // The per-shape GEMM rates are recorded (as comments).
    assert_eq!(text.lines().filter(|l| l.starts_with("# sgemm")).count(), 5);
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
