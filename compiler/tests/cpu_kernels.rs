//! The CPU backend's C kernels (`rt::KERNELS`: `src/backend/cpu/rt/pt_{gemm,conv,...}.c`), built with
//! the system C compiler and checked by the C driver `tests/kernels/test_kernels.c` against
//! naive reference loops (GEMM, conv with strides / padding / dilation / groups / depthwise,
//! pooling, every epilogue, 1-3 threads), once vectorised for the host and once with the
//! scalar fallback, both warnings-clean under `-Wall -Wextra -Werror`.
//!
//! The micro-benchmark (GFLOP/s and fraction of peak per resnet18 / mobilenet_v2 layer shape)
//! is an ignored test:
//! `cargo test -p petasos-compiler --test cpu_kernels -- --ignored --nocapture`
//! (env PT_BENCH_THREADS, PT_BENCH_RUNS, PT_PEAK_GFLOPS, PT_BENCH_FILTER).

use std::path::{Path, PathBuf};
use std::process::Command;

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cc() -> String {
    std::env::var("CC").unwrap_or_else(|_| "cc".to_string())
}

/// Whether a C compiler runs at all; prints a loud NOT RUN line when it does not.
fn have_cc() -> bool {
    let ok = Command::new(cc())
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        println!("NOT RUN: no C compiler ('{}')", cc());
    }
    ok
}

/// A fresh scratch folder for one test's binaries.
fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("petasos-cpu-kernels-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// Compiles the rt kernels plus `driver` (in tests/kernels) into `out`; panics with the
/// compiler's output on failure.
fn build(driver: &str, out: &Path, flags: &[&str]) {
    let rt = manifest().join("src/backend/cpu/rt");
    let mut cmd = Command::new(cc());
    cmd.args(["-std=c11", "-Wall", "-Wextra"])
        .args(flags)
        .arg(format!("-I{}", rt.display()));
    for f in petasos_compiler::backend::cpu::rt::KERNELS {
        cmd.arg(rt.join(f));
    }
    cmd.arg(manifest().join("tests/kernels").join(driver))
        .arg("-o")
        .arg(out)
        .args(["-lm", "-lpthread"]);
    let o = cmd.output().expect("run the C compiler");
    assert!(
        o.status.success(),
        "cc failed for {driver} {flags:?}:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Runs the correctness driver and checks it reports checks and no failures.
fn run_driver(exe: &Path, random_cases: &str) {
    let o = Command::new(exe)
        .arg(random_cases)
        .output()
        .expect("run test_kernels");
    let stdout = String::from_utf8_lossy(&o.stdout);
    print!("{stdout}");
    assert!(o.status.success(), "kernel test driver failed:\n{stdout}");
    let last = stdout.lines().last().unwrap_or("");
    let checks: usize = last
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(checks > 1000, "too few checks ran: {last}");
    assert!(last.ends_with(" 0 failures"), "failures: {last}");
}

#[test]
fn kernels_match_reference_vectorised() {
    if !have_cc() {
        return;
    }
    let dir = scratch("vec");
    let exe = dir.join("test_kernels");
    build("test_kernels.c", &exe, &["-O3", "-march=native", "-Werror"]);
    run_driver(&exe, "40");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn kernels_match_reference_scalar_fallback() {
    if !have_cc() {
        return;
    }
    let dir = scratch("scalar");
    let exe = dir.join("test_kernels");
    build("test_kernels.c", &exe, &["-O2", "-DPT_SCALAR", "-Werror"]);
    run_driver(&exe, "15");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
#[ignore = "micro-benchmark; run with --ignored --nocapture"]
fn kernels_bench() {
    if !have_cc() {
        return;
    }
    let dir = scratch("bench");
    let exe = dir.join("bench_kernels");
    build(
        "bench_kernels.c",
        &exe,
        &["-O3", "-march=native", "-Wno-unused-function"],
    );
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
    let mut cmd = Command::new(&exe);
    cmd.arg(env("PT_BENCH_THREADS", "1"))
        .arg(env("PT_BENCH_RUNS", "20"))
        .arg(env("PT_PEAK_GFLOPS", "175"));
    if let Ok(f) = std::env::var("PT_BENCH_FILTER") {
        cmd.arg(f);
    }
    let o = cmd.output().expect("run bench_kernels");
    print!("{}", String::from_utf8_lossy(&o.stdout));
    assert!(
        o.status.success(),
        "bench failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
