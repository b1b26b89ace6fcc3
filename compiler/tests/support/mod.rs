//! Helpers shared by the CPU backend's integration tests (`tests/cpu_*.rs`): a per-test temp
//! folder, seeded input values, the quick warnings-are-errors compile options, running an
//! artifact's generated `main`, comparing outputs with the interpreter's, and running the
//! `petasos` binary.
//!
//! Each test file includes it with `mod support;` (`#[allow(dead_code)]` where it uses only
//! part of it).

use petasos_compiler::backend::cpu::{self, CpuOptions};
use petasos_ir::onnx::tensor_file::{read_tensor_file, write_tensor_file};
use petasos_ir::{Graph, Tensor};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A fresh, empty folder for one test, removed when dropped. Its name holds the test
/// binary's name and process id, so tests of different files never share one.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Creates (emptying it first) the folder for the test `name`.
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "petasos-{}-{}-{name}",
            env!("CARGO_CRATE_NAME"),
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `n` deterministic values in [-2, 2) from `seed`.
pub fn values(n: usize, seed: u64) -> Vec<f32> {
    values_in(n, seed, 2.0)
}

/// `n` deterministic values in [-half, half) from `seed` (an LCG; the same seed gives the
/// same values).
pub fn values_in(n: usize, seed: u64, half: f32) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) as f32 / (1u64 << 31) as f32) * (2.0 * half) - half
        })
        .collect()
}

/// Quick compile options for tests: `-O1`, warnings are errors (the generated C must be
/// clean).
pub fn quick() -> CpuOptions {
    let mut o = CpuOptions::default();
    o.cc.cflags = vec![
        "-O1".into(),
        "-Wall".into(),
        "-Wextra".into(),
        "-Werror".into(),
    ];
    o
}

/// [`quick`] with `-march=native` (the host's vector kernels).
pub fn quick_native() -> CpuOptions {
    let mut o = quick();
    o.cc.cflags.insert(1, "-march=native".into());
    o
}

/// Runs `main` of the artifact `out` on `inputs` (written to `work`) with the extra arguments
/// `args`: its outputs, or its exit code and stderr when it fails.
pub fn try_run_main(
    out: &Path,
    inputs: &[Tensor],
    work: &Path,
    args: &[&str],
) -> Result<Vec<Tensor>, (i32, String)> {
    let mut cmd = Command::new(out.join("main"));
    for (i, t) in inputs.iter().enumerate() {
        let p = work.join(format!("input_{i}.pb"));
        write_tensor_file(&p, &format!("in{i}"), t).expect("write input");
        cmd.arg("-i").arg(&p);
    }
    let res = work.join("res");
    let _ = std::fs::remove_dir_all(&res);
    std::fs::create_dir_all(&res).expect("res dir");
    let o = cmd
        .arg("-o")
        .arg(&res)
        .args(args)
        .output()
        .expect("run main");
    if !o.status.success() {
        return Err((
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        ));
    }
    Ok((0..)
        .map(|i| res.join(format!("output_{i}.pb")))
        .take_while(|p| p.is_file())
        .map(|p| read_tensor_file(&p).expect("read output"))
        .collect())
}

/// [`try_run_main`] without extra arguments; panics when `main` fails.
pub fn run_main(out: &Path, inputs: &[Tensor], work: &Path) -> Vec<Tensor> {
    run_main_args(out, inputs, work, &[])
}

/// [`try_run_main`] with `--threads threads`; panics when `main` fails.
pub fn run_main_threads(out: &Path, inputs: &[Tensor], work: &Path, threads: usize) -> Vec<Tensor> {
    run_main_args(out, inputs, work, &["--threads", &threads.to_string()])
}

fn run_main_args(out: &Path, inputs: &[Tensor], work: &Path, args: &[&str]) -> Vec<Tensor> {
    try_run_main(out, inputs, work, args)
        .unwrap_or_else(|(code, err)| panic!("main failed (exit {code}): {err}"))
}

/// How [`assert_match`] compares two elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    /// Floats within rtol 1e-3 / atol 1e-5, NaN exactly where the expected value is NaN;
    /// integers and booleans exactly.
    Close,
    /// Every element the same bits as `f64` ([`same`]): NaN for NaN, signed zeros kept.
    Bits,
}

/// Whether `a` and `b` are the same value: both NaN, the same bits, or equal and non-zero.
pub fn same(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits() || (a == b && a != 0.0)
}

/// Asserts `got` matches `want` by `cmp`: as many outputs, each of the same dtype and shape
/// and every element matching. Prints the largest float difference of each output.
pub fn assert_match(what: &str, got: &[Tensor], want: &[Tensor], cmp: Cmp) {
    assert_eq!(got.len(), want.len(), "{what}: number of outputs");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert_eq!(a.dtype(), b.dtype(), "{what} output {i}");
        assert_eq!(a.shape(), b.shape(), "{what} output {i}");
        if cmp == Cmp::Close && !b.dtype().is_float() {
            assert_eq!(
                a.to_i().expect("ints"),
                b.to_i().expect("ints"),
                "{what} output {i}"
            );
            continue;
        }
        let (x, y) = (a.to_f64_vec().expect("f"), b.to_f64_vec().expect("f"));
        let mut worst = 0.0f64;
        for (k, (p, q)) in x.iter().zip(&y).enumerate() {
            let ok = match cmp {
                Cmp::Bits => same(*p, *q),
                Cmp::Close if q.is_nan() => p.is_nan(),
                Cmp::Close => p == q || (p - q).abs() <= 1e-5 + 1e-3 * q.abs(),
            };
            assert!(ok, "{what} output {i} element {k}: got {p}, want {q}");
            if p != q && !q.is_nan() {
                worst = worst.max((p - q).abs());
            }
        }
        println!(
            "{what} output {i}: {} values, max |diff| {worst:e}",
            x.len()
        );
    }
}

/// [`assert_match`] with [`Cmp::Close`].
pub fn assert_close(what: &str, got: &[Tensor], want: &[Tensor]) {
    assert_match(what, got, want, Cmp::Close);
}

/// A copy of `g` compiled with `o` into `DIR/out` of a fresh [`TempDir`] for `name`; returns
/// the folder and the artifact's path.
pub fn compile(name: &str, g: &Graph, o: &CpuOptions) -> (TempDir, PathBuf) {
    let dir = TempDir::new(name);
    let out = dir.0.join("out");
    let mut gc = g.clone();
    cpu::compile(&mut gc, o, &out).expect("compile");
    (dir, out)
}

/// The interpreter's outputs of `g` on `inputs`.
pub fn interpret(g: &Graph, inputs: &[Tensor]) -> Vec<Tensor> {
    petasos_ir::interp::run(g, inputs.to_vec()).expect("interpret")
}

/// Compiles `g` with `o`, runs `main` on `inputs`, checks every output against the
/// interpreter by `cmp` and returns the generated `model.c`.
pub fn check_with(name: &str, g: &Graph, o: &CpuOptions, inputs: &[Tensor], cmp: Cmp) -> String {
    let want = interpret(g, inputs);
    let (dir, out) = compile(name, g, o);
    let got = run_main(&out, inputs, &dir.0);
    assert_match(name, &got, &want, cmp);
    std::fs::read_to_string(out.join("model.c")).expect("model.c")
}

/// [`check_with`] with [`quick`] options and [`Cmp::Close`].
pub fn check(name: &str, g: &Graph, inputs: Vec<Tensor>) -> String {
    check_with(name, g, &quick(), &inputs, Cmp::Close)
}

/// Runs the `petasos` binary with `args`.
pub fn petasos(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_petasos"))
        .args(args)
        .output()
        .expect("run petasos")
}

/// stdout then stderr of `o`, as text.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
