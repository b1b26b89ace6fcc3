//! Pruning surgery (`prune::surgery`, `prune::masked`) on small GraphBuilder graphs: the pruned
//! graph verifies, computes what the masked graph computes (interpreter, 1e-5 of max|out|), and
//! has the expected numbers of `Slice` and `Gather` nodes; errors name what is wrong.

use petasos_ir::builder::GraphBuilder;
use petasos_ir::interp;
use petasos_ir::op::Attr;
use petasos_ir::verify::verify;
use petasos_ir::{DType, Graph, Tensor, ValueRef, ValueType};
use petasos_passes::prune::heuristic::{Criterion, Scope};
use petasos_passes::prune::pass::PruneConfig;
use petasos_passes::prune::{
    masked, prune, MaskSource, PruneError, PruneMode, PruneOptions, PruneReport,
};
use petasos_passes::{PassManager, PipelineConfig};
use std::collections::BTreeMap;

fn input(b: &mut GraphBuilder, c: usize) -> ValueRef {
    b.input("x", ValueType::known(DType::F32, &[1, c, 6, 6]))
}

fn conv(b: &mut GraphBuilder, x: ValueRef, cin: usize, cout: usize) -> ValueRef {
    let w = b.weight("w", DType::F32, &[cout, cin, 3, 3], 0.3);
    let bias = b.weight("b", DType::F32, &[cout], 0.3);
    b.op(
        "Conv",
        &[x, w, bias],
        &[("pads", Attr::Ints(vec![1, 1, 1, 1]))],
    )
    .unwrap()
}

fn relu(b: &mut GraphBuilder, x: ValueRef) -> ValueRef {
    b.op("Relu", &[x], &[]).unwrap()
}

fn count(g: &Graph, op: &str) -> usize {
    g.g.node_weights().filter(|n| n.op.op_type() == op).count()
}

fn name(g: &Graph, v: ValueRef) -> String {
    g.g[v.node].provenance.onnx_name.clone()
}

/// A seeded input for every graph input.
fn inputs(g: &Graph) -> Vec<Tensor> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    g.inputs
        .iter()
        .map(|&i| {
            let shape = g.g[i].outputs[0].ty.shape.clone().unwrap();
            let dims: Vec<usize> = shape
                .iter()
                .map(|d| d.known().unwrap_or(1) as usize)
                .collect();
            let n: usize = dims.iter().product();
            let v = (0..n)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
                })
                .collect();
            Tensor::from_f32(&dims, v).unwrap()
        })
        .collect()
}

fn max_rel_diff(a: &[Tensor], b: &[Tensor]) -> f64 {
    assert_eq!(a.len(), b.len());
    let mut worst = 0f64;
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.shape(), y.shape());
        let (x, y) = (x.to_f64_vec().unwrap(), y.to_f64_vec().unwrap());
        let scale = x.iter().fold(1e-30f64, |m, v| m.max(v.abs()));
        for (p, q) in x.iter().zip(&y) {
            worst = worst.max((p - q).abs() / scale);
        }
    }
    worst
}

/// Prunes and masks copies of `g` with `opts`; checks both verify, the masked model really
/// differs from the original when columns were zeroed, and pruned == masked. Returns the
/// pruned graph and the report.
fn check(g: &Graph, opts: &PruneOptions) -> (Graph, PruneReport) {
    let mut p = g.clone();
    let report = prune(&mut p, opts).unwrap();
    verify(&p).unwrap();
    let mut m = g.clone();
    let mr = masked(&mut m, opts).unwrap();
    verify(&m).unwrap();
    let x = inputs(g);
    let orig = interp::run(g, x.clone()).unwrap();
    let out_m = interp::run(&m, x.clone()).unwrap();
    let out_p = interp::run(&p, x).unwrap();
    let d = max_rel_diff(&out_m, &out_p);
    assert!(d <= 1e-5, "pruned vs masked: {d}\n{}", report.table());
    if mr.columns_zeroed > 0 {
        assert!(
            max_rel_diff(&orig, &out_m) > 1e-6,
            "masking changed nothing: the check would be vacuous"
        );
    }
    assert_eq!(count(&p, "Gather"), report.totals.gathers);
    assert_eq!(count(&p, "Slice"), report.totals.slices);
    (p, report)
}

fn explicit(masks: &[(&str, Vec<bool>)], mode: PruneMode) -> PruneOptions {
    let by: BTreeMap<String, Vec<bool>> = masks
        .iter()
        .map(|(n, m)| (n.to_string(), m.clone()))
        .collect();
    PruneOptions::with_masks(MaskSource::Explicit(by), mode)
}

fn l2(amount: f64, mode: PruneMode) -> PruneOptions {
    PruneOptions::heuristic(Criterion::L2, amount, Scope::Layer, mode)
}

fn keep_but(n: usize, drop: &[usize]) -> Vec<bool> {
    (0..n).map(|i| !drop.contains(&i)).collect()
}

/// Weight of a constant-weighted node's input `slot`.
fn weight_shape(g: &Graph, v: ValueRef, slot: usize) -> Vec<usize> {
    let w = g.node_inputs(v.node)[slot].unwrap();
    g.constant(w.node).unwrap().shape.clone()
}

#[test]
fn conv_chain_shrinks_both_layers() {
    let mut b = GraphBuilder::new("chain", 1);
    let x = input(&mut b, 3);
    let p = conv(&mut b, x, 3, 8);
    let r = relu(&mut b, p);
    let k = conv(&mut b, r, 8, 4);
    b.output(k, "y");
    let g = b.finish().unwrap();
    let (h, rep) = check(&g, &l2(0.5, PruneMode::Reorder));
    assert_eq!(weight_shape(&h, p, 1), vec![4, 3, 3, 3]);
    assert_eq!(weight_shape(&h, p, 2), vec![4]);
    assert_eq!(weight_shape(&h, k, 1), vec![4, 4, 3, 3]);
    assert_eq!(rep.totals.gathers, 0);
    assert_eq!(
        rep.totals.slices, 0,
        "the only consumer reads the whole tensor"
    );
    assert_eq!(rep.segments.len(), 1);
    assert_eq!((rep.segments[0].channels, rep.segments[0].kept), (8, 4));
    let removed = 4 * (3 * 9 + 1) + 4 * 4 * 9;
    assert_eq!(
        rep.totals.params_before - rep.totals.params_after,
        removed as u64
    );
    assert_eq!(rep.segments[0].params_removed, removed as u64);
    let macs = (removed - 4) as u64 * 36;
    assert_eq!(rep.totals.macs_before - rep.totals.macs_after, macs);
}

/// E1: P (4 ch) feeds K1 (drops 0) and K2 (drops 1).
fn fan_out() -> (Graph, ValueRef, ValueRef, ValueRef) {
    let mut b = GraphBuilder::new("fan", 2);
    let x = input(&mut b, 3);
    let p = conv(&mut b, x, 3, 4);
    let r = relu(&mut b, p);
    let k1 = conv(&mut b, r, 4, 2);
    let k2 = conv(&mut b, r, 4, 2);
    b.output(k1, "y1");
    b.output(k2, "y2");
    (b.finish().unwrap(), p, k1, k2)
}

#[test]
fn fan_out_reorder_slices_both_baseline_gathers_one() {
    let (g, p, k1, k2) = fan_out();
    let (n1, n2) = (name(&g, k1), name(&g, k2));
    let masks = [
        (n1.as_str(), keep_but(4, &[0])),
        (n2.as_str(), keep_but(4, &[1])),
    ];
    let (h, rep) = check(&g, &explicit(&masks, PruneMode::Reorder));
    assert_eq!((rep.totals.gathers, rep.totals.slices), (0, 2));
    assert_eq!(rep.totals.gathers_before, 1);
    assert_eq!(weight_shape(&h, p, 1)[0], 4, "nothing removed from P");
    assert_eq!(weight_shape(&h, k1, 1)[1], 3);
    assert_eq!(weight_shape(&h, k2, 1)[1], 3);

    let (_, base) = check(&g, &explicit(&masks, PruneMode::NoReorder));
    assert_eq!((base.totals.gathers, base.totals.slices), (1, 1));
    assert_eq!(base.segments[0].gather_reasons.len(), 1);
    assert!(
        base.segments[0].gather_reasons[0].contains(&name(&g, k2)),
        "{:?}",
        base.segments[0].gather_reasons
    );

    // Constrained: both keep the union, so nothing is copied or removed.
    let (_, c) = check(&g, &explicit(&masks, PruneMode::Constrained));
    assert_eq!((c.totals.gathers, c.totals.slices), (0, 0));
}

#[test]
fn residual_add_prunes_summed_producers_alike() {
    // E3 with a BN on one branch and a per-channel constant Add: S = P1 + BN(P2) + c;
    // K1 reads Relu(S), K2 reads P1. K1 drops 0; K2 drops 0 and 1: channel 0 goes.
    let mut b = GraphBuilder::new("residual", 3);
    let x = input(&mut b, 3);
    let p1 = conv(&mut b, x, 3, 4);
    let p2 = conv(&mut b, x, 3, 4);
    let scale = b.weight("scale", DType::F32, &[4], 1.0);
    let shift = b.weight("shift", DType::F32, &[4], 1.0);
    let mean = b.weight("mean", DType::F32, &[4], 0.5);
    let var = b.constant(
        "var",
        Tensor::from_f32(&[4], vec![0.5, 1.0, 1.5, 2.0]).unwrap(),
    );
    let bn = b
        .op("BatchNormalization", &[p2, scale, shift, mean, var], &[])
        .unwrap();
    let s = b.op("Add", &[p1, bn], &[]).unwrap();
    let c = b.weight("c", DType::F32, &[1, 4, 1, 1], 1.0);
    let s = b.op("Add", &[s, c], &[]).unwrap();
    let r = relu(&mut b, s);
    let k1 = conv(&mut b, r, 4, 2);
    let k2 = conv(&mut b, p1, 4, 2);
    b.output(k1, "y1");
    b.output(k2, "y2");
    let g = b.finish().unwrap();
    let (n1, n2) = (name(&g, k1), name(&g, k2));
    let masks = [
        (n1.as_str(), keep_but(4, &[0])),
        (n2.as_str(), keep_but(4, &[0, 1])),
    ];
    let (h, rep) = check(&g, &explicit(&masks, PruneMode::Reorder));
    assert_eq!(rep.totals.gathers, 0);
    assert_eq!(weight_shape(&h, p1, 1)[0], 3);
    assert_eq!(weight_shape(&h, p2, 1)[0], 3);
    assert_eq!(weight_shape(&h, bn, 1), vec![3]);
    assert_eq!(weight_shape(&h, bn, 4), vec![3]);
    assert_eq!(weight_shape(&h, s, 1), vec![1, 3, 1, 1]);
    // Variant: K2 keeps {0,2}, K1 keeps {1,3}: nothing removable, both slice once reordered.
    let masks = [
        (n1.as_str(), keep_but(4, &[0, 2])),
        (n2.as_str(), keep_but(4, &[1, 3])),
    ];
    let (_, rep) = check(&g, &explicit(&masks, PruneMode::Reorder));
    assert_eq!((rep.totals.gathers, rep.totals.slices), (0, 2));
    assert_eq!(rep.totals.gathers_before, 2);
}

#[test]
fn concat_consumers_slice_after_reordering() {
    // E4: K1 reads cat(P1, P2) (8 ch), K2 reads P1. K1 drops 0, 1; K2 drops 0, 2.
    let mut b = GraphBuilder::new("concat", 4);
    let x = input(&mut b, 3);
    let p1 = conv(&mut b, x, 3, 4);
    let p2 = conv(&mut b, x, 3, 4);
    let r1 = relu(&mut b, p1);
    let cat = b
        .op("Concat", &[r1, p2], &[("axis", Attr::Int(1))])
        .unwrap();
    let k1 = conv(&mut b, cat, 8, 2);
    let k2 = conv(&mut b, r1, 4, 2);
    b.output(k1, "y1");
    b.output(k2, "y2");
    let g = b.finish().unwrap();
    let (n1, n2) = (name(&g, k1), name(&g, k2));
    let masks = [
        (n1.as_str(), keep_but(8, &[0, 1])),
        (n2.as_str(), keep_but(4, &[0, 2])),
    ];
    let (h, rep) = check(&g, &explicit(&masks, PruneMode::Reorder));
    assert_eq!(rep.totals.gathers, 0, "{}", rep.table());
    assert_eq!(weight_shape(&h, p1, 1)[0], 3, "P1 channel 0 removed");
    assert_eq!(weight_shape(&h, p2, 1)[0], 4);
    assert_eq!(weight_shape(&h, k1, 1)[1], 6);
    let (_, base) = check(&g, &explicit(&masks, PruneMode::NoReorder));
    assert!(base.totals.gathers >= 1, "{}", base.table());
    // Heuristic masks on the same graph, every mode.
    for mode in [
        PruneMode::Reorder,
        PruneMode::NoReorder,
        PruneMode::Constrained,
    ] {
        check(&g, &l2(0.3, mode));
    }
}

#[test]
fn depthwise_bn_prelu_users_follow_the_producer() {
    let mut b = GraphBuilder::new("dw", 5);
    let x = input(&mut b, 3);
    let p = conv(&mut b, x, 3, 8);
    let scale = b.weight("scale", DType::F32, &[8], 1.0);
    let shift = b.weight("shift", DType::F32, &[8], 1.0);
    let mean = b.weight("mean", DType::F32, &[8], 0.5);
    let var = b.constant("var", Tensor::from_f32(&[8], vec![1.0; 8]).unwrap());
    let bn = b
        .op("BatchNormalization", &[p, scale, shift, mean, var], &[])
        .unwrap();
    let r = relu(&mut b, bn);
    let dw_w = b.weight("dw", DType::F32, &[8, 1, 3, 3], 0.5);
    let dw_b = b.weight("dwb", DType::F32, &[8], 0.5);
    let dw = b
        .op(
            "Conv",
            &[r, dw_w, dw_b],
            &[
                ("group", Attr::Int(8)),
                ("pads", Attr::Ints(vec![1, 1, 1, 1])),
            ],
        )
        .unwrap();
    let slope = b.weight("slope", DType::F32, &[8, 1, 1], 0.5);
    let pr = b.op("PRelu", &[dw, slope], &[]).unwrap();
    let m = b.weight("m", DType::F32, &[1, 8, 1, 1], 2.0);
    let mu = b.op("Mul", &[pr, m], &[]).unwrap();
    let pool = b
        .op(
            "MaxPool",
            &[mu],
            &[
                ("kernel_shape", Attr::Ints(vec![2, 2])),
                ("strides", Attr::Ints(vec![2, 2])),
            ],
        )
        .unwrap();
    let k = conv(&mut b, pool, 8, 4);
    b.output(k, "y");
    let g = b.finish().unwrap();
    for crit in [
        Criterion::L1,
        Criterion::L2,
        Criterion::Lamp,
        Criterion::Fpgm,
    ] {
        let opts = PruneOptions::heuristic(crit, 0.5, Scope::Layer, PruneMode::Reorder);
        let (h, rep) = check(&g, &opts);
        assert_eq!(rep.segments[0].kept, 4, "{crit:?}");
        assert_eq!(weight_shape(&h, dw, 1), vec![4, 1, 3, 3]);
        assert_eq!(weight_shape(&h, dw, 2), vec![4]);
        let group = h.g[dw.node]
            .op
            .as_any()
            .downcast_ref::<petasos_ir::ops::nn::conv::Conv>()
            .unwrap()
            .group;
        assert_eq!(group, 4);
        assert_eq!(weight_shape(&h, pr, 1), vec![4, 1, 1]);
        assert_eq!(weight_shape(&h, mu, 1), vec![1, 4, 1, 1]);
        assert_eq!(weight_shape(&h, bn, 3), vec![4]);
    }
}

#[test]
fn gemm_and_matmul_layers() {
    // MatMul [6,8] -> Relu -> Gemm transB [5,8] + bias -> Relu -> Gemm [5,3] + bias [1,3].
    let mut b = GraphBuilder::new("mlp", 6);
    let x = b.input("x", ValueType::known(DType::F32, &[2, 6]));
    let w1 = b.weight("w1", DType::F32, &[6, 8], 0.5);
    let h1 = b.op("MatMul", &[x, w1], &[]).unwrap();
    let h1r = relu(&mut b, h1);
    let w2 = b.weight("w2", DType::F32, &[5, 8], 0.5);
    let b2 = b.weight("b2", DType::F32, &[5], 0.5);
    let h2 = b
        .op("Gemm", &[h1r, w2, b2], &[("transB", Attr::Int(1))])
        .unwrap();
    let h2r = relu(&mut b, h2);
    let w3 = b.weight("w3", DType::F32, &[5, 3], 0.5);
    let b3 = b.weight("b3", DType::F32, &[1, 3], 0.5);
    let y = b.op("Gemm", &[h2r, w3, b3], &[]).unwrap();
    b.output(y, "y");
    let g = b.finish().unwrap();
    for scope in [Scope::Layer, Scope::Global] {
        let opts = PruneOptions::heuristic(Criterion::L2, 0.4, scope, PruneMode::Reorder);
        let (h, rep) = check(&g, &opts);
        assert_eq!(rep.segments.len(), 2, "{}", rep.table());
        let kept1 = weight_shape(&h, h2, 1)[1];
        assert_eq!(weight_shape(&h, h1, 1), vec![6, kept1]);
        let kept2 = weight_shape(&h, y, 1)[0];
        assert_eq!(weight_shape(&h, h2, 1)[0], kept2);
        assert_eq!(weight_shape(&h, h2, 2), vec![kept2]);
        assert_eq!(weight_shape(&h, y, 2), vec![1, 3], "output bias untouched");
        if scope == Scope::Layer {
            assert_eq!((kept1, kept2), (5, 3));
        }
    }
}

#[test]
fn conv_transpose_producer() {
    let mut b = GraphBuilder::new("deconv", 7);
    let x = input(&mut b, 3);
    let w = b.weight("w", DType::F32, &[3, 6, 2, 2], 0.5);
    let bias = b.weight("b", DType::F32, &[6], 0.5);
    let p = b
        .op(
            "ConvTranspose",
            &[x, w, bias],
            &[("strides", Attr::Ints(vec![2, 2]))],
        )
        .unwrap();
    let r = relu(&mut b, p);
    let k = conv(&mut b, r, 6, 2);
    b.output(k, "y");
    let g = b.finish().unwrap();
    let (h, _) = check(&g, &l2(0.5, PruneMode::Reorder));
    assert_eq!(weight_shape(&h, p, 1), vec![3, 3, 2, 2]);
    assert_eq!(weight_shape(&h, p, 2), vec![3]);
}

#[test]
fn pruned_graph_exports_gathers_and_slices_and_reimports() {
    let (g, _, k1, k2) = fan_out();
    let (n1, n2) = (name(&g, k1), name(&g, k2));
    let masks = [
        (n1.as_str(), keep_but(4, &[0])),
        (n2.as_str(), keep_but(4, &[1])),
    ];
    let (h, rep) = check(&g, &explicit(&masks, PruneMode::NoReorder));
    assert_eq!((rep.totals.gathers, rep.totals.slices), (1, 1));
    let dir = std::env::temp_dir().join(format!("petasos_prune_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("fan.onnx");
    petasos_ir::onnx::save_model(&h, &path).unwrap();
    let back = petasos_ir::onnx::import_file(&path).unwrap();
    assert_eq!(count(&back, "Gather"), 1);
    assert_eq!(count(&back, "Slice"), 1);
    let x = inputs(&g);
    let d = max_rel_diff(
        &interp::run(&h, x.clone()).unwrap(),
        &interp::run(&back, x).unwrap(),
    );
    assert!(d <= 1e-6, "{d}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_inputs_are_clear_errors() {
    let (g, _, k1, _) = fan_out();
    let n1 = name(&g, k1);
    let e = prune(&mut g.clone(), &l2(1.0, PruneMode::Reorder)).unwrap_err();
    assert!(matches!(e, PruneError::Amount(_)), "{e}");
    assert!(e.to_string().contains("[0, 1)"), "{e}");
    let e = prune(&mut g.clone(), &l2(-0.1, PruneMode::Reorder)).unwrap_err();
    assert!(matches!(e, PruneError::Amount(_)), "{e}");

    let e = prune(
        &mut g.clone(),
        &explicit(&[("nope", vec![true; 4])], PruneMode::Reorder),
    )
    .unwrap_err();
    assert!(e.to_string().contains("'nope'"), "{e}");
    assert!(e.to_string().contains(&n1), "lists the known layers: {e}");

    let e = prune(
        &mut g.clone(),
        &explicit(&[(n1.as_str(), vec![true; 3])], PruneMode::Reorder),
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            PruneError::MaskLength {
                expected: 4,
                got: 3,
                ..
            }
        ),
        "{e}"
    );
    let e = prune(
        &mut g.clone(),
        &explicit(&[(n1.as_str(), vec![false; 4])], PruneMode::Reorder),
    )
    .unwrap_err();
    assert!(matches!(e, PruneError::EmptyMask(_)), "{e}");

    let mut b = GraphBuilder::new("single", 1);
    let x = input(&mut b, 3);
    let y = conv(&mut b, x, 3, 4);
    b.output(y, "y");
    let mut single = b.finish().unwrap();
    let e = prune(&mut single, &l2(0.3, PruneMode::Reorder)).unwrap_err();
    assert!(matches!(e, PruneError::NoPrunableLayer(_)), "{e}");
    assert!(e.to_string().contains("graph output 'y'"), "{e}");
}

#[test]
fn prune_pass_from_a_pipeline_config() {
    let (g, _, _, _) = fan_out();
    let cfg: PipelineConfig = serde_json::from_str(
        r#"{"passes": ["prune", "dce"], "prune": {"amount": 0.5, "heuristic": "lamp", "mode": "no-reorder"}}"#,
    )
    .unwrap();
    assert_eq!(
        cfg.prune,
        Some(PruneConfig {
            amount: 0.5,
            heuristic: Criterion::Lamp,
            scope: Scope::Layer,
            mode: PruneMode::NoReorder,
            cover_gathers: false,
        })
    );
    let mut h = g.clone();
    let r = PassManager::from_config(&cfg).unwrap().run(&mut h).unwrap();
    assert_eq!(r.passes[0].pass, "prune");
    assert_eq!(r.passes[0].rewrites, 1, "{}", r.table());
    assert!(r.passes[0].params_after < r.passes[0].params_before);
    assert!(r.passes[0].summary.contains("gathers"), "{}", r.table());
    // The same as calling surgery directly.
    let mut direct = g.clone();
    prune(&mut direct, &cfg.prune.clone().unwrap().options()).unwrap();
    let x = inputs(&g);
    let d = max_rel_diff(
        &interp::run(&direct, x.clone()).unwrap(),
        &interp::run(&h, x).unwrap(),
    );
    assert!(d <= 1e-6);

    let bad: PipelineConfig =
        serde_json::from_str(r#"{"passes": ["prune"], "prune": {"amount": 1.5}}"#).unwrap();
    let e = PassManager::from_config(&bad).err().unwrap().to_string();
    assert!(e.contains("1.5") && e.contains("[0, 1)"), "{e}");
}

#[test]
fn cover_gathers_turns_gathers_into_padded_slices() {
    // E5: consumers keep {0,1}, {1,2}, {0,2,4} of a 5-channel P: one gather is unavoidable.
    let mut b = GraphBuilder::new("e5", 8);
    let x = input(&mut b, 3);
    let p = conv(&mut b, x, 3, 5);
    let r = relu(&mut b, p);
    let ks: Vec<ValueRef> = (0..3).map(|_| conv(&mut b, r, 5, 2)).collect();
    let y = b.op("Sum", &ks, &[]).unwrap();
    b.output(y, "y");
    let g = b.finish().unwrap();
    let names: Vec<String> = ks.iter().map(|&k| name(&g, k)).collect();
    let masks = [
        (names[0].as_str(), keep_but(5, &[2, 3, 4])),
        (names[1].as_str(), keep_but(5, &[0, 3, 4])),
        (names[2].as_str(), keep_but(5, &[1, 3])),
    ];
    let (_, plain) = check(&g, &explicit(&masks, PruneMode::Reorder));
    assert_eq!(plain.totals.gathers, 1);
    assert_eq!(plain.totals.covered, 0);
    let mut opts = explicit(&masks, PruneMode::Reorder);
    opts.cover_gathers = true;
    let (h, covered) = check(&g, &opts);
    assert_eq!((covered.totals.gathers, covered.totals.covered), (0, 1));
    assert_eq!(count(&h, "Gather"), 0);
    assert!(
        covered.totals.macs_after > plain.totals.macs_after,
        "padding costs MACs"
    );
    // The padded consumer reads one more column than it keeps; its extra column is zero.
    let widths: Vec<usize> = ks.iter().map(|&k| weight_shape(&h, k, 1)[1]).collect();
    assert_eq!(widths.iter().sum::<usize>(), 2 + 2 + 3 + 1, "{widths:?}");
}

#[test]
fn builtin_densenet121_pruned_equals_masked() {
    // BN users reading growing concatenations, transition pools, 4 dense blocks (32x32 input).
    let opts = petasos_models::BuildOptions {
        overrides: Some(serde_json::json!({ "image_size": 32 })),
        ..Default::default()
    };
    let g = petasos_models::build_with("densenet121", &opts).unwrap();
    let (_, rep) = check(&g, &l2(0.3, PruneMode::Reorder));
    assert!(rep.totals.gathers <= rep.totals.gathers_before);
    assert!(rep.segments.len() >= 60, "{}", rep.table());
    let mut cover = l2(0.3, PruneMode::Reorder);
    cover.cover_gathers = true;
    let (h, rep) = check(&g, &cover);
    assert_eq!(rep.totals.gathers, 0);
    assert_eq!(count(&h, "Gather"), 0);
}

#[test]
fn a_block_nobody_reads_keeps_one_channel() {
    // K reads cat(P1, P2) and drops every channel of P1: P1 keeps one row, K slices past it.
    let mut b = GraphBuilder::new("empty", 9);
    let x = input(&mut b, 3);
    let p1 = conv(&mut b, x, 3, 4);
    let p2 = conv(&mut b, x, 3, 4);
    let cat = b
        .op("Concat", &[p1, p2], &[("axis", Attr::Int(1))])
        .unwrap();
    let k = conv(&mut b, cat, 8, 2);
    b.output(k, "y");
    let g = b.finish().unwrap();
    let n = name(&g, k);
    let masks = [(n.as_str(), keep_but(8, &[0, 1, 2, 3, 5]))];
    let (h, rep) = check(&g, &explicit(&masks, PruneMode::Reorder));
    assert_eq!(weight_shape(&h, p1, 1)[0], 1);
    assert_eq!(weight_shape(&h, p2, 1)[0], 3);
    assert_eq!(weight_shape(&h, k, 1)[1], 3);
    assert_eq!((rep.totals.gathers, rep.totals.slices), (0, 1));
}
