//! CPU backend end to end: graphs built with `GraphBuilder` are compiled to C, built with the
//! system compiler, run through the generated `main`, and compared with the interpreter.

use petasos_compiler::backend::cpu::{self, CpuOptions};
use petasos_ir::builder::GraphBuilder;
use petasos_ir::onnx::tensor_file::{read_tensor_file, write_tensor_file};
use petasos_ir::op::Attr;
use petasos_ir::{DType, Graph, Tensor, ValueType};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A fresh, empty folder for one test, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("petasos-cpu-{}-{name}", std::process::id()));
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

/// Fast compile options for tests (warnings are errors: generated C must be clean).
fn opts() -> CpuOptions {
    let mut o = CpuOptions::default();
    o.cc.cflags = vec![
        "-O1".into(),
        "-Wall".into(),
        "-Wextra".into(),
        "-Werror".into(),
    ];
    o
}

/// Deterministic test values.
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) as f32 / (1u64 << 31) as f32) * 4.0 - 2.0
        })
        .collect()
}

/// Runs `main` of `out` on `inputs`; returns its outputs.
fn run_main(out: &Path, inputs: &[Tensor], work: &Path) -> Vec<Tensor> {
    let mut cmd = Command::new(out.join("main"));
    for (i, t) in inputs.iter().enumerate() {
        let p = work.join(format!("input_{i}.pb"));
        write_tensor_file(&p, &format!("in{i}"), t).expect("write input");
        cmd.arg("-i").arg(&p);
    }
    let res = work.join("res");
    std::fs::create_dir_all(&res).expect("res dir");
    let o = cmd.arg("-o").arg(&res).output().expect("run main");
    assert!(
        o.status.success(),
        "main failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mut outs = Vec::new();
    for i in 0.. {
        let p = res.join(format!("output_{i}.pb"));
        if !p.is_file() {
            break;
        }
        outs.push(read_tensor_file(&p).expect("read output"));
    }
    outs
}

/// Compiles `g`, runs it on `inputs` and checks every output against the interpreter.
fn check(name: &str, g: &Graph, inputs: Vec<Tensor>) {
    let dir = TempDir::new(name);
    let want = petasos_ir::interp::run(g, inputs.clone()).expect("interpret");
    let mut gc = g.clone();
    cpu::compile(&mut gc, &opts(), &dir.0.join("out")).expect("compile");
    let got = run_main(&dir.0.join("out"), &inputs, &dir.0);
    assert_eq!(got.len(), want.len(), "{name}: number of outputs");
    for (i, (a, b)) in got.iter().zip(&want).enumerate() {
        assert_eq!(a.dtype(), b.dtype(), "{name} output {i}");
        assert_eq!(a.shape(), b.shape(), "{name} output {i}");
        let (x, y) = (a.to_f64_vec().expect("f"), b.to_f64_vec().expect("f"));
        for (k, (p, q)) in x.iter().zip(&y).enumerate() {
            assert!(
                (p - q).abs() <= 1e-5 + 1e-3 * q.abs(),
                "{name} output {i} element {k}: got {p}, want {q}"
            );
        }
    }
}

/// x[2,3,4] + w -> Relu -> Reshape [6,4] -> Flatten -> Unsqueeze/Squeeze -> Identity.
fn tiny_graph() -> Graph {
    let mut b = GraphBuilder::new("tiny", 1);
    let x = b.input("x", ValueType::known(DType::F32, &[2, 3, 4]));
    let w = b.weight("w", DType::F32, &[2, 3, 4], 1.0);
    let s = b.op("Add", &[x, w], &[]).expect("add");
    let r = b.op("Relu", &[s], &[]).expect("relu");
    let shape = b.ints("shape", &[6, 4]).expect("ints");
    let rs = b.op("Reshape", &[r, shape], &[]).expect("reshape");
    let fl = b
        .op("Flatten", &[rs], &[("axis", Attr::Int(0))])
        .expect("flatten");
    let ax = b.ints("axes", &[0]).expect("ints");
    let un = b.op("Unsqueeze", &[fl, ax], &[]).expect("unsqueeze");
    let sq = b.op("Squeeze", &[un, ax], &[]).expect("squeeze");
    let id = b.op("Identity", &[sq], &[]).expect("identity");
    b.output(id, "y");
    b.output(s, "sum");
    b.finish().expect("graph")
}

#[test]
fn tiny_graph_matches_interpreter() {
    let x = Tensor::from_f32(&[2, 3, 4], values(24, 7)).expect("x");
    check("tiny", &tiny_graph(), vec![x]);
}

/// The generated `model.c` of `g` against `tests/golden/NAME.c` (`PETASOS_UPDATE_GOLDEN=1`
/// rewrites the expected file).
fn golden(name: &str, g: &Graph) {
    let mut g = g.clone();
    let src = cpu::generate(&mut g, &opts()).expect("generate");
    let c = src
        .files
        .iter()
        .find(|(n, _)| n == "model.c")
        .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
        .expect("model.c");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/golden/{name}.c"));
    if std::env::var_os("PETASOS_UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().expect("dir")).expect("golden dir");
        std::fs::write(&path, &c).expect("write golden");
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "{} missing; run with PETASOS_UPDATE_GOLDEN=1",
            path.display()
        )
    });
    assert!(
        c == want,
        "{name}: generated C differs from {} (review, then PETASOS_UPDATE_GOLDEN=1)",
        path.display()
    );
}

#[test]
fn golden_tiny() {
    golden("tiny", &tiny_graph());
}

#[test]
fn golden_int_add_and_passthrough_outputs() {
    // Integer Add (wrapping), a graph input and a constant passed straight to outputs.
    let mut b = GraphBuilder::new("int_add", 0);
    let x = b.input("x", ValueType::known(DType::I32, &[5]));
    let y = b.input("y", ValueType::known(DType::I32, &[5]));
    let c = b.constant("c", Tensor::from_i64(&[2], vec![7, -7]).expect("c"));
    let s = b.op("Add", &[x, y], &[]).expect("add");
    b.output(s, "sum");
    b.output(x, "x_again");
    b.output(c, "const_out");
    b.output(s, "sum_again");
    let g = b.finish().expect("g");
    golden("int_add", &g);
    let i32s = |v: Vec<i64>| {
        Tensor::from_i64(&[5], v)
            .and_then(|t| t.cast(DType::I32, false))
            .expect("i32")
    };
    let xs = i32s(vec![i32::MAX as i64, -1, 0, 5, -9]);
    let ys = i32s(vec![1, -1, 0, 5, 3]);
    check("int_add", &g, vec![xs, ys]);
}
