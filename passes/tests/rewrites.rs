//! Worked examples of `bn_fold`, `bias_fusion` and `shape_simplify` on small builder graphs:
//! each checks the node count and that the interpreter gives the same outputs before and after
//! (within 1e-5 relative to max|out|), and that the rewritten graph verifies.

use petasos_ir::builder::GraphBuilder;
use petasos_ir::op::Attr;
use petasos_ir::verify::verify;
use petasos_ir::{interp, DType, Graph, Tensor, ValueRef, ValueType};
use petasos_passes::{bias_fusion, bn_fold, shape_simplify};

/// Deterministic pseudo-random values in [-1, 1].
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f64 / (1u64 << 24) as f64 * 2.0 - 1.0) as f32
        })
        .collect()
}

fn tensor(shape: &[usize], seed: u64) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_f32(shape, values(n, seed)).unwrap()
}

/// Inputs for every formal input of `g` (all dims known, f32).
fn inputs(g: &Graph) -> Vec<Tensor> {
    g.inputs
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let ty = &g.g[n].outputs[0].ty;
            let shape: Vec<usize> = ty
                .shape
                .as_ref()
                .unwrap()
                .iter()
                .map(|d| d.known().unwrap() as usize)
                .collect();
            tensor(&shape, 100 + i as u64)
        })
        .collect()
}

fn count(g: &Graph, op: &str) -> usize {
    g.g.node_weights().filter(|n| n.op.op_type() == op).count()
}

/// Runs `pass` on a copy of `g`; checks it verifies, returns the same outputs (within `rel` of
/// max|out|), keeps output names; returns the rewritten graph and the pass's count.
fn check(
    g: &Graph,
    pass: fn(&mut Graph, usize) -> Result<usize, petasos_passes::rewrite::RewriteError>,
    budget: usize,
) -> (Graph, usize) {
    let ins = inputs(g);
    let want = interp::run(g, ins.clone()).unwrap();
    let mut h = g.clone();
    let n = pass(&mut h, budget).unwrap();
    assert!(n <= budget);
    verify(&h).unwrap();
    let got = interp::run(&h, ins).unwrap();
    assert_eq!(got.len(), want.len());
    for (a, b) in got.iter().zip(&want) {
        assert_eq!(a.shape(), b.shape());
        let (a, b) = (a.to_f64_vec().unwrap(), b.to_f64_vec().unwrap());
        let scale = b.iter().fold(0f64, |m, v| m.max(v.abs()));
        for (x, y) in a.iter().zip(&b) {
            assert!(
                (x - y).abs() <= 1e-5 * scale + 1e-12,
                "{x} vs {y} (scale {scale})"
            );
        }
    }
    for (o1, o2) in g.outputs.iter().zip(&h.outputs) {
        assert_eq!(o1.name, o2.name);
    }
    (h, n)
}

fn f32s(b: &mut GraphBuilder, name: &str, shape: &[usize], v: Vec<f32>) -> ValueRef {
    b.constant(name, Tensor::from_f32(shape, v).unwrap())
}

/// Adds a batch norm over `c` channels with sane statistics (variance in [0.5, 1.5]).
fn bn(b: &mut GraphBuilder, x: ValueRef, c: usize, seed: u64) -> ValueRef {
    let gamma = f32s(b, "gamma", &[c], values(c, seed));
    let beta = f32s(b, "beta", &[c], values(c, seed + 1));
    let mean = f32s(b, "mean", &[c], values(c, seed + 2));
    let var: Vec<f32> = values(c, seed + 3).iter().map(|v| 1.0 + 0.5 * v).collect();
    let var = f32s(b, "var", &[c], var);
    b.op(
        "BatchNormalization",
        &[x, gamma, beta, mean, var],
        &[("epsilon", Attr::Float(1e-5))],
    )
    .unwrap()
}

fn conv(
    b: &mut GraphBuilder,
    x: ValueRef,
    w: ValueRef,
    bias: Option<ValueRef>,
    group: i64,
) -> ValueRef {
    let mut ins = vec![x, w];
    ins.extend(bias);
    b.op(
        "Conv",
        &ins,
        &[
            ("pads", Attr::Ints(vec![1, 1, 1, 1])),
            ("group", Attr::Int(group)),
        ],
    )
    .unwrap()
}

fn image(b: &mut GraphBuilder, shape: &[usize]) -> ValueRef {
    b.input("x", ValueType::known(DType::F32, shape))
}

// ---------------------------------------------------------------- bn_fold

/// The doc example: Conv (no bias) then BatchNormalization becomes one Conv with a bias.
#[test]
fn bn_fold_conv_without_bias() {
    let mut b = GraphBuilder::new("t", 1);
    let x = image(&mut b, &[1, 3, 6, 6]);
    let w = f32s(&mut b, "w", &[8, 3, 3, 3], values(216, 7));
    let y = conv(&mut b, x, w, None, 1);
    let y = bn(&mut b, y, 8, 10);
    b.output(y, "y");
    let g = b.finish().unwrap();
    assert_eq!(g.op_count(), 2);
    let (h, n) = check(&g, bn_fold::apply, usize::MAX);
    assert_eq!(n, 1);
    assert_eq!(h.op_count(), 1);
    assert_eq!(count(&h, "BatchNormalization"), 0);
    let conv =
        h.g.node_indices()
            .find(|&i| h.g[i].op.op_type() == "Conv")
            .unwrap();
    // The bias is new, the output keeps the batch norm's name, the BN constants are gone.
    assert!(h.node_inputs(conv)[2].is_some());
    assert_eq!(
        h.g[conv].outputs[0].name,
        g.value_name(g.outputs[0].value).unwrap()
    );
    assert_eq!(count(&h, "Constant"), 2);
}

/// Depthwise Conv (group = channels) with a bias.
#[test]
fn bn_fold_grouped_conv_with_bias() {
    let mut b = GraphBuilder::new("t", 1);
    let x = image(&mut b, &[1, 4, 5, 5]);
    let w = f32s(&mut b, "w", &[4, 1, 3, 3], values(36, 3));
    let bias = f32s(&mut b, "b", &[4], values(4, 4));
    let y = conv(&mut b, x, w, Some(bias), 4);
    let y = bn(&mut b, y, 4, 20);
    let y = b.op("Relu", &[y], &[]).unwrap();
    b.output(y, "y");
    let g = b.finish().unwrap();
    let (h, n) = check(&g, bn_fold::apply, usize::MAX);
    assert_eq!(n, 1);
    assert_eq!(h.op_count(), 2);
}

/// Gemm with transB, alpha and beta != 1 and a bias: beta is folded into the new bias.
#[test]
fn bn_fold_gemm_trans_b() {
    let mut b = GraphBuilder::new("t", 1);
    let x = b.input("x", ValueType::known(DType::F32, &[2, 5]));
    let w = f32s(&mut b, "w", &[6, 5], values(30, 5));
    let c = f32s(&mut b, "c", &[6], values(6, 6));
    let y = b
        .op(
            "Gemm",
            &[x, w, c],
            &[
                ("transB", Attr::Int(1)),
                ("alpha", Attr::Float(0.7)),
                ("beta", Attr::Float(0.5)),
            ],
        )
        .unwrap();
    let y = bn(&mut b, y, 6, 30);
    b.output(y, "y");
    let g = b.finish().unwrap();
    let (h, n) = check(&g, bn_fold::apply, usize::MAX);
    assert_eq!(n, 1);
    assert_eq!(h.op_count(), 1);
}

/// MatMul by a constant becomes a Gemm carrying the folded bias.
#[test]
fn bn_fold_matmul_becomes_gemm() {
    let mut b = GraphBuilder::new("t", 1);
    let x = b.input("x", ValueType::known(DType::F32, &[3, 4]));
    let w = f32s(&mut b, "w", &[4, 6], values(24, 8));
    let y = b.op("MatMul", &[x, w], &[]).unwrap();
    let y = bn(&mut b, y, 6, 40);
    b.output(y, "y");
    let g = b.finish().unwrap();
    let (h, n) = check(&g, bn_fold::apply, usize::MAX);
    assert_eq!(n, 1);
    assert_eq!(h.op_count(), 1);
    assert_eq!(count(&h, "Gemm"), 1);
}

/// A Conv output read by another node as well is not folded.
#[test]
fn bn_fold_skips_shared_conv_output() {
    let mut b = GraphBuilder::new("t", 1);
    let x = image(&mut b, &[1, 3, 4, 4]);
    let w = f32s(&mut b, "w", &[2, 3, 3, 3], values(54, 9));
    let y = conv(&mut b, x, w, None, 1);
    let z = bn(&mut b, y, 2, 50);
    let r = b.op("Relu", &[y], &[]).unwrap();
    let s = b.op("Add", &[z, r], &[]).unwrap();
    b.output(s, "y");
    let g = b.finish().unwrap();
    let (h, n) = check(&g, bn_fold::apply, usize::MAX);
    assert_eq!(n, 0);
    assert_eq!(h.op_count(), g.op_count());
}

/// The budget caps the rewrites; a weight shared by two convs is copied, not changed.
#[test]
fn bn_fold_budget_and_shared_weight() {
    let mut b = GraphBuilder::new("t", 1);
    let x = image(&mut b, &[1, 3, 4, 4]);
    let w = f32s(&mut b, "w", &[3, 3, 3, 3], values(81, 11));
    let y1 = conv(&mut b, x, w, None, 1);
    let y1 = bn(&mut b, y1, 3, 60);
    let y2 = conv(&mut b, y1, w, None, 1);
    let y2 = bn(&mut b, y2, 3, 70);
    b.output(y2, "y");
    let g = b.finish().unwrap();
    let (h, n) = check(&g, bn_fold::apply, 1);
    assert_eq!(n, 1);
    assert_eq!(count(&h, "BatchNormalization"), 1);
    let (h2, n2) = check(&h, bn_fold::apply, usize::MAX);
    assert_eq!(n2, 1);
    assert_eq!(count(&h2, "BatchNormalization"), 0);
    assert_eq!(h2.op_count(), 2);
    let (_, n0) = check(&h2, bn_fold::apply, 0);
    assert_eq!(n0, 0);
}

/// A training-mode batch norm (batch statistics) is left alone.
#[test]
fn bn_fold_skips_training_mode() {
    let mut b = GraphBuilder::new("t", 1);
    let x = image(&mut b, &[2, 3, 4, 4]);
    let w = f32s(&mut b, "w", &[2, 3, 3, 3], values(54, 12));
    let y = conv(&mut b, x, w, None, 1);
    let gamma = f32s(&mut b, "gamma", &[2], vec![1.0, 0.5]);
    let beta = f32s(&mut b, "beta", &[2], vec![0.0, 0.1]);
    let mean = f32s(&mut b, "mean", &[2], vec![0.0, 0.1]);
    let var = f32s(&mut b, "var", &[2], vec![1.0, 0.9]);
    let y = b
        .op(
            "BatchNormalization",
            &[y, gamma, beta, mean, var],
            &[("training_mode", Attr::Int(1))],
        )
        .unwrap();
    b.output(y, "y");
    let g = b.finish().unwrap();
    let (_, n) = check(&g, bn_fold::apply, usize::MAX);
    assert_eq!(n, 0);
}

// ---------------------------------------------------------------- bias_fusion

/// The doc example: Conv + Add of a `[C, 1, 1]` constant becomes one Conv.
#[test]
fn bias_fusion_conv_c11() {
    let mut b = GraphBuilder::new("t", 1);
    let x = image(&mut b, &[1, 3, 5, 5]);
    let w = f32s(&mut b, "w", &[8, 3, 3, 3], values(216, 13));
    let bias = f32s(&mut b, "b", &[8], values(8, 14));
    let y = conv(&mut b, x, w, Some(bias), 1);
    let c = f32s(&mut b, "c", &[8, 1, 1], values(8, 15));
    let y = b.op("Add", &[y, c], &[]).unwrap();
    b.output(y, "y");
    let g = b.finish().unwrap();
    let (h, n) = check(&g, bias_fusion::apply, usize::MAX);
    assert_eq!(n, 1);
    assert_eq!(h.op_count(), 1);
    assert_eq!(count(&h, "Add"), 0);
}

/// The constant on the left, shaped `[1, C, 1, 1]`, Conv without a bias.
#[test]
fn bias_fusion_conv_left_operand_no_bias() {
    let mut b = GraphBuilder::new("t", 1);
    let x = image(&mut b, &[1, 3, 5, 5]);
    let w = f32s(&mut b, "w", &[4, 3, 3, 3], values(108, 16));
    let y = conv(&mut b, x, w, None, 1);
    let c = f32s(&mut b, "c", &[1, 4, 1, 1], values(4, 17));
    let y = b.op("Add", &[c, y], &[]).unwrap();
    let y = b.op("Relu", &[y], &[]).unwrap();
    b.output(y, "y");
    let g = b.finish().unwrap();
    let (h, n) = check(&g, bias_fusion::apply, usize::MAX);
    assert_eq!(n, 1);
    assert_eq!(h.op_count(), 2);
}

/// Gemm with beta != 1 and a bias, then Add of `[N]`.
#[test]
fn bias_fusion_gemm() {
    let mut b = GraphBuilder::new("t", 1);
    let x = b.input("x", ValueType::known(DType::F32, &[2, 5]));
    let w = f32s(&mut b, "w", &[5, 6], values(30, 18));
    let c = f32s(&mut b, "c", &[6], values(6, 19));
    let y = b
        .op("Gemm", &[x, w, c], &[("beta", Attr::Float(0.25))])
        .unwrap();
    let d = f32s(&mut b, "d", &[6], values(6, 20));
    let y = b.op("Add", &[y, d], &[]).unwrap();
    b.output(y, "y");
    let g = b.finish().unwrap();
    let (h, n) = check(&g, bias_fusion::apply, usize::MAX);
    assert_eq!(n, 1);
    assert_eq!(h.op_count(), 1);
}

/// 2-D MatMul + Add becomes a Gemm; a 3-D MatMul + Add is left alone.
#[test]
fn bias_fusion_matmul() {
    let mut b = GraphBuilder::new("t", 1);
    let x = b.input("x", ValueType::known(DType::F32, &[3, 4]));
    let w = f32s(&mut b, "w", &[4, 6], values(24, 21));
    let y = b.op("MatMul", &[x, w], &[]).unwrap();
    let d = f32s(&mut b, "d", &[6], values(6, 22));
    let y = b.op("Add", &[y, d], &[]).unwrap();
    b.output(y, "y");
    let x3 = b.input("x3", ValueType::known(DType::F32, &[2, 3, 4]));
    let y3 = b.op("MatMul", &[x3, w], &[]).unwrap();
    let y3 = b.op("Add", &[y3, d], &[]).unwrap();
    b.output(y3, "y3");
    let g = b.finish().unwrap();
    assert_eq!(g.op_count(), 4);
    let (h, n) = check(&g, bias_fusion::apply, usize::MAX);
    assert_eq!(n, 1);
    assert_eq!(h.op_count(), 3);
    assert_eq!(count(&h, "Gemm"), 1);
}

/// An Add that broadcasts along the last axis (not per channel) is not fused.
#[test]
fn bias_fusion_skips_non_channel_broadcast() {
    let mut b = GraphBuilder::new("t", 1);
    let x = image(&mut b, &[1, 3, 4, 4]);
    let w = f32s(&mut b, "w", &[4, 3, 3, 3], values(108, 23));
    let y = conv(&mut b, x, w, None, 1);
    let c = f32s(&mut b, "c", &[4], values(4, 24));
    let y = b.op("Add", &[y, c], &[]).unwrap();
    b.output(y, "y");
    let g = b.finish().unwrap();
    let (_, n) = check(&g, bias_fusion::apply, usize::MAX);
    assert_eq!(n, 0);
}

// ---------------------------------------------------------------- shape_simplify

fn reshape(b: &mut GraphBuilder, x: ValueRef, s: &[i64]) -> ValueRef {
    let s = b.ints("shape", s).unwrap();
    b.op("Reshape", &[x, s], &[]).unwrap()
}

fn transpose(b: &mut GraphBuilder, x: ValueRef, p: &[i64]) -> ValueRef {
    b.op("Transpose", &[x], &[("perm", Attr::Ints(p.to_vec()))])
        .unwrap()
}

/// The doc example: two reshapes and two cancelling transposes become one reshape.
#[test]
fn shape_simplify_doc_example() {
    let mut b = GraphBuilder::new("t", 1);
    let x = b.input("x", ValueType::known(DType::F32, &[4, 6]));
    let y = reshape(&mut b, x, &[6, 4]);
    let y = reshape(&mut b, y, &[2, 3, 4]);
    let y = transpose(&mut b, y, &[0, 2, 1]);
    let y = transpose(&mut b, y, &[0, 2, 1]);
    b.output(y, "y");
    let g = b.finish().unwrap();
    assert_eq!(g.op_count(), 4);
    let (h, n) = check(&g, shape_simplify::apply, usize::MAX);
    assert_eq!(n, 2);
    assert_eq!(h.op_count(), 1);
    assert_eq!(count(&h, "Reshape"), 1);
}

/// Two transposes compose into one.
#[test]
fn shape_simplify_transposes_compose() {
    let mut b = GraphBuilder::new("t", 1);
    let x = b.input("x", ValueType::known(DType::F32, &[2, 3, 4]));
    let y = transpose(&mut b, x, &[1, 0, 2]);
    let y = transpose(&mut b, y, &[0, 2, 1]);
    let y = b.op("Relu", &[y], &[]).unwrap();
    b.output(y, "y");
    let g = b.finish().unwrap();
    let (h, n) = check(&g, shape_simplify::apply, usize::MAX);
    assert_eq!(n, 1);
    assert_eq!(h.op_count(), 2);
    assert_eq!(count(&h, "Transpose"), 1);
}

/// Squeeze then Unsqueeze of the same axis, and Unsqueeze then Squeeze (negative axis), vanish;
/// different axes stay.
#[test]
fn shape_simplify_squeeze_unsqueeze() {
    let mut b = GraphBuilder::new("t", 1);
    let x = b.input("x", ValueType::known(DType::F32, &[2, 1, 3]));
    let a1 = b.ints("axes", &[1]).unwrap();
    let y = b.op("Squeeze", &[x, a1], &[]).unwrap();
    let y = b.op("Unsqueeze", &[y, a1], &[]).unwrap();
    let y = b.op("Relu", &[y], &[]).unwrap();
    let a0 = b.ints("axes0", &[0]).unwrap();
    let am3 = b.ints("axes_m4", &[-4]).unwrap();
    let z = b.op("Unsqueeze", &[y, a0], &[]).unwrap();
    let z = b.op("Squeeze", &[z, am3], &[]).unwrap();
    let z = b.op("Neg", &[z], &[]).unwrap();
    // Different axes: [2, 1, 3] -> squeeze 1 -> [2, 3] -> unsqueeze 0 -> [1, 2, 3].
    let w = b.op("Squeeze", &[z, a1], &[]).unwrap();
    let w = b.op("Unsqueeze", &[w, a0], &[]).unwrap();
    b.output(w, "y");
    let g = b.finish().unwrap();
    assert_eq!(g.op_count(), 8);
    let (h, n) = check(&g, shape_simplify::apply, usize::MAX);
    assert_eq!(n, 2);
    assert_eq!(h.op_count(), 4);
}

/// Identity and a reshape to the same shape vanish; a reshape chain whose final shape copies a
/// dim (`0`) is kept.
#[test]
fn shape_simplify_identity_and_same_shape() {
    let mut b = GraphBuilder::new("t", 1);
    let x = b.input("x", ValueType::known(DType::F32, &[2, 3, 4]));
    let y = b.op("Identity", &[x], &[]).unwrap();
    let y = reshape(&mut b, y, &[2, 3, 4]);
    let y = b.op("Relu", &[y], &[]).unwrap();
    let z = reshape(&mut b, y, &[6, 4]);
    let z = reshape(&mut b, z, &[0, 2, 2]);
    b.output(z, "y");
    let o = b.op("Identity", &[y], &[]).unwrap();
    b.output(o, "relu_out");
    let g = b.finish().unwrap();
    assert_eq!(g.op_count(), 6);
    let (h, n) = check(&g, shape_simplify::apply, usize::MAX);
    assert_eq!(n, 3);
    assert_eq!(h.op_count(), 3);
    // Budget: one rewrite only.
    let (h1, n1) = check(&g, shape_simplify::apply, 1);
    assert_eq!(n1, 1);
    assert_eq!(h1.op_count(), 5);
}
