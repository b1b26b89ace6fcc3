//! CPU backend end to end: graphs built with `GraphBuilder` are compiled to C, built with the
//! system compiler, run through the generated `main`, and compared with the interpreter.

#[allow(dead_code)]
mod support;

use petasos_compiler::backend::cpu;
use petasos_ir::builder::GraphBuilder;
use petasos_ir::op::Attr;
use petasos_ir::{DType, Graph, Tensor, ValueType};
use std::path::Path;
use support::{check, quick, values};

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
    let src = cpu::generate(&mut g, &quick()).expect("generate");
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
