//! Worked examples of each standard pass on small GraphBuilder graphs: the rewrite happens, the
//! graph verifies, and the interpreter gives the same outputs before and after.

use petasos_ir::builder::GraphBuilder;
use petasos_ir::interp;
use petasos_ir::op::Attr;
use petasos_ir::verify::verify;
use petasos_ir::{DType, Graph, Tensor, ValueType};
use petasos_passes::{by_name, PassContext};

fn ops(g: &Graph) -> Vec<String> {
    let mut v: Vec<String> =
        g.g.node_weights()
            .map(|n| n.op.op_type().to_string())
            .filter(|t| t != "Input")
            .collect();
    v.sort();
    v
}

fn count(g: &Graph, op: &str) -> usize {
    g.g.node_weights().filter(|n| n.op.op_type() == op).count()
}

fn x23() -> Tensor {
    Tensor::from_f32(&[2, 3], vec![0.5, -1.0, 2.0, -0.25, 3.0, -4.0]).unwrap()
}

/// Runs pass `name` with `budget` on a copy of `g`; checks it verifies and that outputs match
/// within 1e-5 relative to max|out|; returns the rewritten graph and the rewrite count.
fn run_checked(g: &Graph, name: &str, budget: usize, inputs: Vec<Tensor>) -> (Graph, usize) {
    let before = interp::run(g, inputs.clone()).unwrap();
    let mut h = g.clone();
    let r = by_name(name)
        .unwrap()
        .run(&mut h, &PassContext::with_budget(budget))
        .unwrap();
    assert!(r.rewrites <= budget);
    verify(&h).unwrap_or_else(|e| panic!("{name}: {e}"));
    let after = interp::run(&h, inputs).unwrap();
    assert_close(&before, &after);
    (h, r.rewrites)
}

fn assert_close(a: &[Tensor], b: &[Tensor]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.dtype(), y.dtype());
        assert_eq!(x.shape(), y.shape());
        let (x, y) = (x.to_f64_vec().unwrap(), y.to_f64_vec().unwrap());
        let scale = x.iter().fold(0f64, |m, v| m.max(v.abs()));
        for (p, q) in x.iter().zip(&y) {
            assert!((p - q).abs() <= 1e-5 * scale, "{p} vs {q}");
        }
    }
}

/// `y = MatMul(x, Transpose(w)) * (2 + 3)`: Transpose and the Add of two constants fold.
fn foldable() -> Graph {
    let mut b = GraphBuilder::new("fold", 1);
    let x = b.input("x", ValueType::known(DType::F32, &[2, 3]));
    let w = b.constant(
        "w",
        Tensor::from_f32(&[2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap(),
    );
    let wt = b
        .op("Transpose", &[w], &[("perm", Attr::Ints(vec![1, 0]))])
        .unwrap();
    let mm = b.op("MatMul", &[x, wt], &[]).unwrap();
    let two = b.scalar("two", DType::F32, 2.0);
    let three = b.scalar("three", DType::F32, 3.0);
    let five = b.op("Add", &[two, three], &[]).unwrap();
    let y = b.op("Mul", &[mm, five], &[]).unwrap();
    b.output(y, "y");
    b.finish().unwrap()
}

#[test]
fn const_fold_folds_a_transposed_weight_and_a_constant_add() {
    let g = foldable();
    let (h, n) = run_checked(&g, "const_fold", usize::MAX, vec![x23()]);
    assert_eq!(n, 2);
    assert_eq!(count(&h, "Transpose"), 0);
    assert_eq!(count(&h, "Add"), 0);
    assert_eq!(h.op_count(), 2, "{:?}", ops(&h));
    // The folded values keep their names.
    let names: Vec<&str> =
        h.g.node_weights()
            .flat_map(|n| n.outputs.iter().map(|v| v.name.as_str()))
            .collect();
    assert!(names.contains(&"transpose"), "{names:?}");
}

#[test]
fn const_fold_honours_its_budget() {
    let g = foldable();
    let (h, n) = run_checked(&g, "const_fold", 1, vec![x23()]);
    assert_eq!(n, 1);
    assert_eq!(h.op_count(), 3);
    let (_, n) = run_checked(&g, "const_fold", 0, vec![x23()]);
    assert_eq!(n, 0);
}

#[test]
fn const_fold_leaves_shapes_of_non_constants() {
    // Shape(x) of an input is known from types, but it is not a constant: that is
    // shape_simplify's rewrite, not constant folding's.
    let mut b = GraphBuilder::new("shape", 1);
    let x = b.input("x", ValueType::known(DType::F32, &[2, 3]));
    let s = b.op("Shape", &[x], &[]).unwrap();
    let s = b.op("Identity", &[s], &[]).unwrap();
    let y = b.op("Reshape", &[x, s], &[]).unwrap();
    b.output(y, "y");
    let g = b.finish().unwrap();
    // Shape reads the input: not foldable by this pass (its input is not a constant).
    let (_, n) = run_checked(&g, "const_fold", usize::MAX, vec![x23()]);
    assert_eq!(n, 0);
}

#[test]
fn const_fold_never_folds_random_ops() {
    let mut b = GraphBuilder::new("rand", 1);
    let c = b.constant("c", Tensor::from_f32(&[4], vec![0.0; 4]).unwrap());
    let r = b.op("RandomUniformLike", &[c], &[]).unwrap();
    let y = b.op("Relu", &[r], &[]).unwrap();
    b.output(y, "y");
    let mut g = b.finish().unwrap();
    let r = by_name("const_fold")
        .unwrap()
        .run(&mut g, &PassContext::default())
        .unwrap();
    assert_eq!(r.rewrites, 0);
    assert_eq!(count(&g, "RandomUniformLike"), 1);
    assert_eq!(count(&g, "Relu"), 1);
}

#[test]
fn const_fold_respects_the_size_limit() {
    let mut g = foldable();
    let cx = PassContext {
        budget: usize::MAX,
        fold_limit: 2,
    };
    let r = by_name("const_fold").unwrap().run(&mut g, &cx).unwrap();
    // The 2x3 Transpose is over the limit; the scalar Add is not.
    assert_eq!(r.rewrites, 1);
    assert_eq!(count(&g, "Transpose"), 1);
}

#[test]
fn dce_removes_unread_nodes_and_keeps_inputs() {
    let mut b = GraphBuilder::new("dead", 1);
    let x = b.input("x", ValueType::known(DType::F32, &[2, 3]));
    let _unused = b.input("unused", ValueType::known(DType::F32, &[1]));
    let y = b.op("Relu", &[x], &[]).unwrap();
    let n = b.op("Neg", &[x], &[]).unwrap();
    let w = b.constant("w", Tensor::from_f32(&[1], vec![2.0]).unwrap());
    let _e = b.op("Mul", &[n, w], &[]).unwrap();
    b.output(y, "y");
    let g = b.finish().unwrap();
    let one = Tensor::from_f32(&[1], vec![1.0]).unwrap();
    let (h, n) = run_checked(&g, "dce", usize::MAX, vec![x23(), one.clone()]);
    assert_eq!(n, 3, "Neg, Mul and the constant w");
    assert_eq!(ops(&h), vec!["Relu"]);
    assert_eq!(h.inputs.len(), 2);
    // Readers go first: with a budget of 1 only the Mul goes, and the graph stays valid.
    let (h, n) = run_checked(&g, "dce", 1, vec![x23(), one]);
    assert_eq!(n, 1);
    assert_eq!(count(&h, "Mul"), 0);
    assert_eq!(count(&h, "Neg"), 1);
}

#[test]
fn cse_merges_duplicate_relus() {
    let mut b = GraphBuilder::new("cse", 1);
    let x = b.input("x", ValueType::known(DType::F32, &[2, 3]));
    let a = b.op("Relu", &[x], &[]).unwrap();
    let c = b.op("Relu", &[x], &[]).unwrap();
    let y = b.op("Add", &[a, c], &[]).unwrap();
    // A second level: these become duplicates once the Relus merge.
    let p = b.op("Mul", &[a, x], &[]).unwrap();
    let q = b.op("Mul", &[c, x], &[]).unwrap();
    let z = b.op("Sub", &[p, q], &[]).unwrap();
    b.output(y, "y");
    b.output(z, "z");
    let g = b.finish().unwrap();
    let (h, n) = run_checked(&g, "cse", usize::MAX, vec![x23()]);
    assert_eq!(n, 2);
    assert_eq!(count(&h, "Relu"), 1);
    assert_eq!(count(&h, "Mul"), 1);
    // The Add now reads the kept Relu in both slots.
    let add =
        h.g.node_indices()
            .find(|&i| h.g[i].op.op_type() == "Add")
            .unwrap();
    let ins = h.node_inputs(add);
    assert_eq!(ins[0], ins[1]);
}

#[test]
fn cse_keeps_nodes_whose_attributes_differ() {
    let mut b = GraphBuilder::new("attrs", 1);
    let x = b.input("x", ValueType::known(DType::F32, &[2, 3]));
    let a = b
        .op("LeakyRelu", &[x], &[("alpha", Attr::Float(0.1))])
        .unwrap();
    let c = b
        .op("LeakyRelu", &[x], &[("alpha", Attr::Float(0.2))])
        .unwrap();
    let d = b
        .op("LeakyRelu", &[x], &[("alpha", Attr::Float(0.1))])
        .unwrap();
    let y = b.op("Sum", &[a, c, d], &[]).unwrap();
    b.output(y, "y");
    let g = b.finish().unwrap();
    let (h, n) = run_checked(&g, "cse", usize::MAX, vec![x23()]);
    assert_eq!(n, 1);
    assert_eq!(count(&h, "LeakyRelu"), 2);
}

#[test]
fn cse_merges_equal_constants_only() {
    let mut b = GraphBuilder::new("consts", 1);
    let x = b.input("x", ValueType::known(DType::F32, &[2, 3]));
    let c1 = b.constant("c1", Tensor::from_f32(&[3], vec![1.0, 2.0, 3.0]).unwrap());
    let c2 = b.constant("c2", Tensor::from_f32(&[3], vec![1.0, 2.0, 3.0]).unwrap());
    let c3 = b.constant("c3", Tensor::from_f32(&[3], vec![1.0, 2.0, 4.0]).unwrap());
    let w1 = b.weight("w1", DType::F32, &[3], 1.0);
    let w2 = b.weight("w2", DType::F32, &[3], 1.0);
    let mut v = x;
    for c in [c1, c2, c3, w1, w2] {
        v = b.op("Add", &[v, c], &[]).unwrap();
    }
    b.output(v, "y");
    let g = b.finish().unwrap();
    let (h, n) = run_checked(&g, "cse", usize::MAX, vec![x23()]);
    assert_eq!(
        n, 1,
        "only c1 and c2 are equal (w1, w2 have different seeds)"
    );
    assert_eq!(count(&h, "Constant"), 4);
}

#[test]
fn cse_keeps_graph_output_names() {
    let mut b = GraphBuilder::new("outs", 1);
    let x = b.input("x", ValueType::known(DType::F32, &[2, 3]));
    let a = b.op("Exp", &[x], &[]).unwrap();
    let c = b.op("Exp", &[x], &[]).unwrap();
    b.output(a, "first");
    b.output(c, "second");
    let g = b.finish().unwrap();
    let (h, n) = run_checked(&g, "cse", usize::MAX, vec![x23()]);
    assert_eq!(n, 1);
    let names: Vec<&str> = h.outputs.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["first", "second"]);
    assert_eq!(h.outputs[0].value, h.outputs[1].value);
}

#[test]
fn cse_never_merges_random_ops() {
    let mut b = GraphBuilder::new("rand", 1);
    let x = b.input("x", ValueType::known(DType::F32, &[2, 3]));
    let r1 = b.op("RandomUniformLike", &[x], &[]).unwrap();
    let r2 = b.op("RandomUniformLike", &[x], &[]).unwrap();
    let y = b.op("Add", &[r1, r2], &[]).unwrap();
    b.output(y, "y");
    let mut g = b.finish().unwrap();
    let r = by_name("cse")
        .unwrap()
        .run(&mut g, &PassContext::default())
        .unwrap();
    assert_eq!(r.rewrites, 0);
}

#[test]
fn const_fold_does_not_duplicate_a_shared_weight() {
    // w [64, 128] read by a Transpose and by a MatMul (tied weights): folding the Transpose
    // would store 8192 more elements, so it stays; read by the Transpose alone, it folds.
    for shared in [true, false] {
        let mut b = GraphBuilder::new("tied", 1);
        let x = b.input("x", ValueType::known(DType::F32, &[1, 64]));
        let w = b.weight("w", DType::F32, &[64, 128], 0.1);
        let wt = b
            .op("Transpose", &[w], &[("perm", Attr::Ints(vec![1, 0]))])
            .unwrap();
        let w2 = b.weight("w2", DType::F32, &[64, 128], 0.1);
        let h = b
            .op("MatMul", &[x, if shared { w } else { w2 }], &[])
            .unwrap();
        let h = b.op("MatMul", &[h, wt], &[]).unwrap();
        b.output(h, "y");
        let g = b.finish().unwrap();
        let x = Tensor::from_f32(&[1, 64], (0..64).map(|i| i as f32 / 64.0).collect()).unwrap();
        let (h, n) = run_checked(&g, "const_fold", usize::MAX, vec![x]);
        assert_eq!(n, usize::from(!shared), "shared = {shared}");
        assert_eq!(count(&h, "Transpose"), usize::from(shared));
    }
}
