//! CPU backend, reduce/norm family: small graphs exercising the tricky lowerings (middle-axis
//! integer reductions that wrap, NaN propagation, a run-time CumSum axis, TopK ties, Einsum
//! diagonals with broadcast ellipsis, LayerNormalization with a broadcast scale and its
//! statistics outputs, losses with ignore_index) are compiled with `-Werror`, run through
//! the generated `main`, and compared with the interpreter (ints and NaN positions exactly).

#[allow(dead_code)]
mod support;

use petasos_ir::builder::GraphBuilder;
use petasos_ir::op::Attr;
use petasos_ir::{DType, Tensor, ValueType};
use support::{check, values};

#[test]
fn integer_reductions_wrap_and_float_ones_propagate_nan() {
    let mut b = GraphBuilder::new("red", 1);
    let xi = b.input("xi", ValueType::known(DType::I32, &[2, 3, 4]));
    let xf = b.input("xf", ValueType::known(DType::F32, &[2, 3, 4]));
    let mid = b.ints("mid", &[1]).expect("ints");
    let outer = b.ints("outer", &[0, -1]).expect("ints");
    let keep0 = [("keepdims", Attr::Int(0))];
    let s = b.op("ReduceSum", &[xi, mid], &keep0).expect("sum");
    let p = b.op("ReduceProd", &[xi, outer], &[]).expect("prod");
    let mx = b.op("ReduceMax", &[xf, mid], &keep0).expect("max");
    let lse = b.op("ReduceLogSumExp", &[xf, outer], &[]).expect("lse");
    let mean = b.op("ReduceMean", &[xi, mid], &[]).expect("mean");
    let am = b
        .op(
            "ArgMin",
            &[xf],
            &[("axis", Attr::Int(1)), ("select_last_index", Attr::Int(1))],
        )
        .expect("argmin");
    for (v, n) in [
        (s, "s"),
        (p, "p"),
        (mx, "mx"),
        (lse, "lse"),
        (mean, "mean"),
        (am, "am"),
    ] {
        b.output(v, n);
    }
    let g = b.finish().expect("graph");
    // Large ints so sums and products overflow int32 (the interpreter wraps).
    let iv: Vec<i64> = (0..24).map(|k| 2_000_000_000 - 170_000_000 * k).collect();
    let xi = Tensor::from_i64(&[2, 3, 4], iv)
        .and_then(|t| t.cast(DType::I32, false))
        .expect("xi");
    let mut fv = values(24, 3);
    fv[5] = f32::NAN; // group (0, :, 1) of the max has a NaN
                      // A tie at the minimum of ArgMin's group (0, :, 2): select_last_index picks index 2.
    fv[2] = -5.0;
    fv[10] = -5.0;
    let xf = Tensor::from_f32(&[2, 3, 4], fv).expect("xf");
    check("reduce", &g, vec![xi, xf]);
}

#[test]
fn cumsum_with_a_run_time_axis_and_topk_ties() {
    let mut b = GraphBuilder::new("cum", 1);
    let x = b.input("x", ValueType::known(DType::F32, &[3, 5]));
    let axis = b.input("axis", ValueType::known(DType::I64, &[]));
    let cs = b
        .op(
            "CumSum",
            &[x, axis],
            &[("exclusive", Attr::Int(1)), ("reverse", Attr::Int(1))],
        )
        .expect("cumsum");
    let k = b.ints("k", &[3]).expect("k");
    let tk = b
        .node(
            "",
            "TopK",
            &[Some(x), Some(k)],
            &[("axis", Attr::Int(1)), ("largest", Attr::Int(0))],
            2,
        )
        .expect("topk");
    b.output(cs, "cs");
    b.output(tk[0], "vals");
    b.output(tk[1], "idx");
    let g = b.finish().expect("graph");
    let xv = vec![
        1.0, 2.0, 1.0, 0.5, 2.0, //
        3.0, 3.0, 3.0, 3.0, 3.0, //
        -1.0, 4.0, -1.0, 0.0, -1.0,
    ];
    for a in [0i64, 1, -1, -2] {
        let x = Tensor::from_f32(&[3, 5], xv.clone()).expect("x");
        let axis = Tensor::from_i64(&[], vec![a]).expect("axis");
        check(&format!("cum{a}"), &g, vec![x, axis]);
    }
}

#[test]
fn einsum_diagonal_with_broadcast_and_batched_contraction() {
    let mut b = GraphBuilder::new("ein", 1);
    let d = b.input("d", ValueType::known(DType::F32, &[2, 3, 3]));
    let a = b.input("a", ValueType::known(DType::F32, &[1, 2, 3]));
    let c = b.input("c", ValueType::known(DType::F32, &[4, 3, 2]));
    let diag = b
        .op(
            "Einsum",
            &[d],
            &[("equation", Attr::Str("...ii->...i".into()))],
        )
        .expect("diag");
    let mm = b
        .op(
            "Einsum",
            &[a, c],
            &[("equation", Attr::Str("bij,bjk->bik".into()))],
        )
        .expect("mm");
    let tr = b
        .op("Einsum", &[d], &[("equation", Attr::Str("kii".into()))])
        .expect("trace");
    b.output(diag, "diag");
    b.output(mm, "mm");
    b.output(tr, "tr");
    let g = b.finish().expect("graph");
    let ins = vec![
        Tensor::from_f32(&[2, 3, 3], values(18, 1)).expect("d"),
        Tensor::from_f32(&[1, 2, 3], values(6, 2)).expect("a"),
        Tensor::from_f32(&[4, 3, 2], values(24, 3)).expect("c"),
    ];
    check("einsum", &g, ins);
}

#[test]
fn layer_norm_with_broadcast_scale_and_statistics() {
    let mut b = GraphBuilder::new("ln", 1);
    let x = b.input("x", ValueType::known(DType::F32, &[2, 3, 4]));
    let sc = b.input("sc", ValueType::known(DType::F32, &[3, 1]));
    let bi = b.input("bi", ValueType::known(DType::F32, &[4]));
    let ln = b
        .node(
            "",
            "LayerNormalization",
            &[Some(x), Some(sc), Some(bi)],
            &[("axis", Attr::Int(1)), ("epsilon", Attr::Float(1e-3))],
            3,
        )
        .expect("ln");
    let sm = b
        .op("LogSoftmax", &[x], &[("axis", Attr::Int(1))])
        .expect("logsoftmax");
    b.output(ln[0], "y");
    b.output(ln[1], "mean");
    b.output(ln[2], "inv");
    b.output(sm, "ls");
    let g = b.finish().expect("graph");
    let ins = vec![
        Tensor::from_f32(&[2, 3, 4], values(24, 5)).expect("x"),
        Tensor::from_f32(&[3, 1], values(3, 6)).expect("sc"),
        Tensor::from_f32(&[4], values(4, 7)).expect("bi"),
    ];
    check("layernorm", &g, ins);
}

#[test]
fn softmax_cross_entropy_ignores_targets() {
    let mut b = GraphBuilder::new("sce", 1);
    let x = b.input("x", ValueType::known(DType::F32, &[3, 4, 2]));
    let t = b.input("t", ValueType::known(DType::I64, &[3, 2]));
    let w = b.input("w", ValueType::known(DType::F32, &[4]));
    let l = b
        .node(
            "",
            "SoftmaxCrossEntropyLoss",
            &[Some(x), Some(t), Some(w)],
            &[
                ("reduction", Attr::Str("mean".into())),
                ("ignore_index", Attr::Int(2)),
            ],
            2,
        )
        .expect("sce");
    b.output(l[0], "loss");
    b.output(l[1], "logp");
    let g = b.finish().expect("graph");
    let ins = vec![
        Tensor::from_f32(&[3, 4, 2], values(24, 9)).expect("x"),
        Tensor::from_i64(&[3, 2], vec![0, 2, 3, 1, 2, 0]).expect("t"),
        Tensor::from_f32(&[4], vec![0.5, 1.0, 2.0, 1.5]).expect("w"),
    ];
    check("sce", &g, ins);
}

#[test]
fn reductions_over_an_empty_axis_give_identities() {
    let mut b = GraphBuilder::new("empty", 1);
    let x = b.input("x", ValueType::known(DType::F32, &[2, 0, 3]));
    let ax = b.ints("ax", &[1]).expect("ints");
    let mn = b.op("ReduceMin", &[x, ax], &[]).expect("min");
    let lse = b.op("ReduceLogSumExp", &[x, ax], &[]).expect("lse");
    let pr = b.op("ReduceProd", &[x, ax], &[]).expect("prod");
    b.output(mn, "mn");
    b.output(lse, "lse");
    b.output(pr, "pr");
    let g = b.finish().expect("graph");
    let x = Tensor::from_f32(&[2, 0, 3], Vec::new()).expect("x");
    check("empty", &g, vec![x]);
}
