//! `petasos view`: starts the `petasos-viewer` next to the executable (or on PATH) with the
//! model, device and compare arguments; a clear error when the viewer is absent or fails.
//! A stand-in viewer script records its arguments, so no window opens.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A fresh folder holding a copy of `petasos` (so "next to the executable" is that folder).
fn sandbox(tag: &str) -> (PathBuf, PathBuf) {
    let d = std::env::temp_dir().join(format!("petasos_view_cli_{tag}_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    let exe = d.join("petasos");
    std::fs::copy(env!("CARGO_BIN_EXE_petasos"), &exe).expect("copy petasos");
    (d, exe)
}

fn run(exe: &Path, dir: &Path, args: &[&str]) -> Output {
    Command::new(exe)
        .args(args)
        .env("PATH", dir.join("empty-path"))
        .output()
        .expect("spawn petasos")
}

fn fake_viewer(dir: &Path, exit: i32) {
    let p = dir.join("petasos-viewer");
    let script = format!("#!/bin/sh\necho \"$@\" > \"${{0%/*}}/args.txt\"\nexit {exit}\n");
    std::fs::write(&p, script).expect("write fake viewer");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

#[test]
fn view_without_a_viewer_says_how_to_get_one() {
    let (dir, exe) = sandbox("absent");
    let o = run(&exe, &dir, &["view", "resnet18"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("petasos-viewer was not found"), "{err}");
    assert!(err.contains("cargo build -p petasos-viewer"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn view_passes_model_device_and_compare() {
    let (dir, exe) = sandbox("args");
    fake_viewer(&dir, 0);
    let o = run(
        &exe,
        &dir,
        &[
            "view",
            "resnet18",
            "--compare",
            "densenet121",
            "--device",
            "apple-m2",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let args = std::fs::read_to_string(dir.join("args.txt")).expect("viewer ran");
    assert_eq!(
        args.trim(),
        "resnet18 --device apple-m2 --compare densenet121"
    );
    // A failing viewer makes `petasos view` fail, naming it.
    fake_viewer(&dir, 3);
    let o = run(&exe, &dir, &["view", "resnet18"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("petasos-viewer exited"));
    let _ = std::fs::remove_dir_all(&dir);
}
