//! The CPU backend through the `petasos` command line: compile/run/bench/profile, determinism,
//! hostile names, and the error cases (unsupported op, missing compiler, compiler error,
//! wrong input shape or dtype) leaving nothing half-written.

#[allow(dead_code)]
mod support;

use petasos_ir::builder::GraphBuilder;
use petasos_ir::onnx::tensor_file::{read_tensor_file, write_tensor_file};
use petasos_ir::{DType, Graph, Tensor, ValueType};
use std::path::Path;
use std::process::Output;
use support::{petasos, text, TempDir};

/// `petasos compile MODEL --target cpu -o OUT EXTRA...`.
fn compile_cpu(model: &str, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "compile",
        model,
        "--target",
        "cpu",
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    petasos(&args)
}

/// `petasos run ART -i INPUT -o RES`.
fn run_cpu(art: &Path, input: &str, res: &Path) -> Output {
    petasos(&[
        "run",
        art.to_str().unwrap(),
        "-i",
        input,
        "-o",
        res.to_str().unwrap(),
    ])
}

/// x[1,64,64] -> (Relu -> Add x) repeated `n` times; output named `y`.
fn chain(n: usize, input_name: &str) -> Graph {
    chain_of(n, input_name, 64)
}

/// x[1,w,w] -> (Relu -> Add x) repeated `n` times; output named `y`.
fn chain_of(n: usize, input_name: &str, w: usize) -> Graph {
    let mut b = GraphBuilder::new("chain", 3);
    let x = b.input(input_name, ValueType::known(DType::F32, &[1, w, w]));
    let mut v = x;
    for _ in 0..n {
        let r = b.op("Relu", &[v], &[]).expect("relu");
        v = b.op("Add", &[r, x], &[]).expect("add");
    }
    b.output(v, "y");
    b.finish().expect("graph")
}

fn save(g: &Graph, dir: &Path) -> String {
    let p = dir.join("m.onnx");
    petasos_ir::onnx::save_model(g, &p).expect("save");
    p.to_string_lossy().into_owned()
}

fn input(dir: &Path, shape: &[usize]) -> String {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
        .collect();
    let p = dir.join("x.pb");
    write_tensor_file(&p, "x", &Tensor::from_f32(shape, v).expect("x")).expect("write");
    p.to_string_lossy().into_owned()
}

#[test]
fn compile_run_matches_interpret_and_is_deterministic() {
    let d = TempDir::new("run");
    let m = save(&chain(3, "x"), &d.0);
    let x = input(&d.0, &[1, 64, 64]);
    let (a, b) = (d.0.join("a"), d.0.join("b"));
    for out in [&a, &b] {
        let o = compile_cpu(&m, out, &["--cflags", "-O1"]);
        assert!(o.status.success(), "{}", text(&o));
    }
    for f in [
        "model.c",
        "model.h",
        "weights.bin",
        "plan.json",
        "main",
        "libmodel.so",
    ] {
        let (p, q) = (std::fs::read(a.join(f)), std::fs::read(b.join(f)));
        assert!(p.is_ok(), "{f} missing");
        assert!(p.ok() == q.ok(), "{f} differs between two compiles");
    }
    let (ro, ri) = (d.0.join("ro"), d.0.join("ri"));
    let o = run_cpu(&a, &x, &ro);
    assert!(o.status.success(), "{}", text(&o));
    let o = petasos(&["interpret", &m, "-i", &x, "-o", ri.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let got = read_tensor_file(&ro.join("output_0.pb")).expect("ours");
    let want = read_tensor_file(&ri.join("output_0.pb")).expect("interp");
    assert_eq!(got.shape(), want.shape());
    let (g, w) = (got.to_f64_vec().unwrap(), want.to_f64_vec().unwrap());
    assert!(g
        .iter()
        .zip(&w)
        .all(|(p, q)| (p - q).abs() <= 1e-5 + 1e-3 * q.abs()));
    assert!(g.iter().any(|&v| v != 0.0));
}

#[test]
fn bench_and_profile() {
    let d = TempDir::new("bench");
    // Relu -> Add x -> Softmax, 12 times: the elementwise pairs fuse, the Softmaxes do not, so
    // the profile has many kernels to sum.
    let mut b = GraphBuilder::new("chain", 13);
    let x = b.input("x", ValueType::known(DType::F32, &[1, 512, 512]));
    let mut v = x;
    for _ in 0..12 {
        let r = b.op("Relu", &[v], &[]).expect("relu");
        let a = b.op("Add", &[r, x], &[]).expect("add");
        v = b.op("Softmax", &[a], &[]).expect("softmax");
    }
    b.output(v, "y");
    let m = save(&b.finish().expect("graph"), &d.0);
    let out = d.0.join("out");
    let o = compile_cpu(&m, &out, &["--profile"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = petasos(&[
        "bench",
        out.to_str().unwrap(),
        "--runs",
        "15",
        "--threads",
        "1",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let s = String::from_utf8_lossy(&o.stdout).into_owned();
    let last = s.lines().last().unwrap_or("");
    let med: f64 = last
        .strip_prefix("median_ms=")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("last line is not median_ms=: {s}"));
    assert!(med > 0.0);
    let get = |k: &str| -> f64 {
        s.lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {k} in {s}"))
    };
    let (sum, run) = (get("profile_sum_ms="), get("profile_run_ms="));
    assert!(
        sum <= run * 1.001 && sum >= 0.9 * run,
        "profile sum {sum} vs run {run}"
    );
    let trace = std::fs::read_to_string(out.join("trace.json")).expect("trace.json");
    let v: serde_json::Value = serde_json::from_str(&trace).expect("trace is JSON");
    let events = v["traceEvents"].as_array().expect("events");
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("plan.json")).expect("plan"))
            .expect("plan is JSON");
    let kernels = plan["kernels"].as_array().expect("kernels").len();
    assert!(
        kernels >= 12,
        "{kernels} kernels: the Softmaxes cannot fuse"
    );
    assert_eq!(
        events.len(),
        1 + kernels,
        "model_run + one event per kernel"
    );
    let csv = std::fs::read_to_string(out.join("ops.csv")).expect("ops.csv");
    assert_eq!(csv.lines().count(), 1 + kernels);
    assert!(csv.lines().nth(1).unwrap_or("").contains("Relu"));
}

#[test]
fn hostile_names_are_sanitised() {
    let d = TempDir::new("names");
    let evil = "x */ #include <stdio.h> /* \" \\ ??/ é";
    let g = chain(1, evil);
    let m = save(&g, &d.0);
    let out = d.0.join("out");
    let o = compile_cpu(&m, &out, &["--cflags", "-O1 -Wall -Wextra -Werror"]);
    assert!(o.status.success(), "{}", text(&o));
    let c = std::fs::read_to_string(out.join("model.c")).expect("model.c");
    // Outside string literals, the name may only appear inside comments it cannot close.
    let code = strip_strings(&c);
    assert!(
        !code.contains("*/ #include"),
        "a model name closed a comment"
    );
    let directives: Vec<&str> = c.lines().filter(|l| l.starts_with('#')).collect();
    assert!(
        directives.iter().all(|l| !l.contains("stdio")),
        "a model name reached the C source as a directive: {directives:?}"
    );
    assert!(
        c.contains("\\303\\251"),
        "non-ASCII names are octal-escaped in string literals"
    );
    let x = input(&d.0, &[1, 64, 64]);
    let o = run_cpu(&out, &x, &d.0.join("r"));
    assert!(o.status.success(), "{}", text(&o));
}

/// `src` with the contents of every string literal removed.
fn strip_strings(src: &str) -> String {
    let (mut out, mut in_str, mut esc) = (String::new(), false, false);
    for ch in src.chars() {
        if in_str {
            if esc {
                esc = false;
            } else if ch == '\\' {
                esc = true;
            } else if ch == '"' {
                in_str = false;
                out.push(ch);
            }
        } else {
            if ch == '"' {
                in_str = true;
            }
            out.push(ch);
        }
    }
    out
}

/// Compiles a good artifact into `out`, then checks that a failing compile into the same
/// folder reports `expect` and leaves the previous artifact exactly as it was.
fn failing_compile_keeps_out(name: &str, model: &str, extra: &[&str], expect: &str, d: &TempDir) {
    let out = d.0.join(format!("out-{name}"));
    let good = save(&chain(1, "x"), &d.0);
    let o = compile_cpu(&good, &out, &["--cflags", "-O1"]);
    assert!(o.status.success(), "{}", text(&o));
    let before = std::fs::read(out.join("model.c")).expect("model.c");
    let o = compile_cpu(model, &out, extra);
    assert!(!o.status.success(), "{name}: compile should fail");
    let t = text(&o);
    assert!(t.contains(expect), "{name}: message lacks '{expect}': {t}");
    assert_eq!(
        std::fs::read(out.join("model.c")).ok(),
        Some(before),
        "{name}: OUT changed"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&d.0)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{name}: staging folder left behind");
}

#[test]
fn compile_errors_are_clear_and_atomic() {
    let d = TempDir::new("errors");
    // An op without a lowering.
    let mut b = GraphBuilder::new("sin", 0);
    let x = b.input("x", ValueType::known(DType::F32, &[4]));
    let s = b.op("Dropout", &[x], &[]).expect("dropout");
    b.output(s, "y");
    let sin = d.0.join("sin.onnx");
    petasos_ir::onnx::save_model(&b.finish().expect("g"), &sin).expect("save");
    let good = save(&chain(1, "x"), &d.0);
    failing_compile_keeps_out(
        "unsupported",
        sin.to_str().unwrap(),
        &[],
        "op 'Dropout' (node",
        &d,
    );
    failing_compile_keeps_out(
        "nocc",
        &good,
        &["--cc", "/nonexistent/cc"],
        "C compiler '/nonexistent/cc' not found",
        &d,
    );
    failing_compile_keeps_out(
        "ccerror",
        &good,
        &["--cflags", "-O1 -include /nonexistent/x.h"],
        "the C compiler failed on model.c",
        &d,
    );
    // A symbolic dim that is not bound.
    let mut b = GraphBuilder::new("sym", 0);
    let x = b.input(
        "x",
        ValueType::new(DType::F32, vec![petasos_ir::Dim::sym("N"), 4usize.into()]),
    );
    let r = b.op("Relu", &[x], &[]).expect("relu");
    b.output(r, "y");
    let sym = d.0.join("sym.onnx");
    petasos_ir::onnx::save_model(&b.finish().expect("g"), &sym).expect("save");
    failing_compile_keeps_out("unbound", sym.to_str().unwrap(), &[], "--dim N=<value>", &d);
    let o = compile_cpu(
        sym.to_str().unwrap(),
        &d.0.join("s"),
        &["--dim", "N=3", "--cflags", "-O1"],
    );
    assert!(o.status.success(), "{}", text(&o));
    // A folder that is not an artifact is never replaced.
    let foreign = d.0.join("foreign");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("precious.txt"), "keep").unwrap();
    let o = compile_cpu(&good, &foreign, &[]);
    assert!(!o.status.success());
    assert!(foreign.join("precious.txt").is_file());
}

#[test]
fn wrong_inputs_are_refused() {
    let d = TempDir::new("inputs");
    let m = save(&chain(1, "x"), &d.0);
    let out = d.0.join("out");
    let o = compile_cpu(&m, &out, &["--cflags", "-O1"]);
    assert!(o.status.success(), "{}", text(&o));
    let bad_shape = input(&d.0, &[1, 64, 63]);
    let r = d.0.join("r");
    let o = run_cpu(&out, &bad_shape, &r);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("input 0 'x' must be float[1,64,64], got float[1,64,63]"),
        "{}",
        text(&o)
    );
    let p = d.0.join("xi.pb");
    write_tensor_file(
        &p,
        "x",
        &Tensor::from_i64(&[1, 64, 64], vec![1; 4096]).unwrap(),
    )
    .unwrap();
    let o = run_cpu(&out, p.to_str().unwrap(), &r);
    assert!(!o.status.success());
    assert!(text(&o).contains("got int64[1,64,64]"), "{}", text(&o));
    assert!(
        !r.join("output_0.pb").exists(),
        "no output may be written on a refused input"
    );
    let o = petasos(&["run", out.to_str().unwrap(), "-o", r.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(text(&o).contains("takes 1 inputs, 0 given"), "{}", text(&o));
}

#[test]
fn run_time_errors_of_kernels_fail_the_run() {
    // Gather with run-time indices: an index out of range is reported by the kernel
    // (pt_set_error) and must fail the run, with no output written.
    let d = TempDir::new("rterr");
    let mut b = GraphBuilder::new("gather", 13);
    let data = b.constant(
        "data",
        Tensor::from_f32(&[4, 2], (0..8).map(|i| i as f32).collect()).expect("data"),
    );
    let idx = b.input("idx", ValueType::known(DType::I64, &[3]));
    let y = b.op("Gather", &[data, idx], &[]).expect("gather");
    b.output(y, "y");
    let m = save(&b.finish().expect("graph"), &d.0);
    let out = d.0.join("out");
    let o = compile_cpu(&m, &out, &["--cflags", "-O1"]);
    assert!(o.status.success(), "{}", text(&o));
    let run = |vals: Vec<i64>, r: &Path| {
        let p = d.0.join("idx.pb");
        write_tensor_file(&p, "idx", &Tensor::from_i64(&[3], vals).unwrap()).unwrap();
        run_cpu(&out, p.to_str().unwrap(), r)
    };
    let good = d.0.join("good");
    let o = run(vec![3, 0, -1], &good);
    assert!(o.status.success(), "{}", text(&o));
    let got = read_tensor_file(&good.join("output_0.pb")).expect("output");
    assert_eq!(
        got.to_f64_vec().unwrap(),
        vec![6.0, 7.0, 0.0, 1.0, 6.0, 7.0]
    );
    let bad = d.0.join("bad");
    let o = run(vec![0, 9, 1], &bad);
    assert!(
        !o.status.success(),
        "an out-of-range index must fail the run"
    );
    assert!(text(&o).contains('9'), "{}", text(&o));
    assert!(!bad.join("output_0.pb").exists());
}
