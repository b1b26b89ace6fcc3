//! The passes on whole models: the `resnet18` and `mobilenet_v2` built-ins at 1x3x32x32 (every
//! batch norm folded, parameters down by the batch-norm constants, outputs equal within 1e-4
//! of max|out|), and — when `PETASOS_SHARED` is set — the shared ONNX models (equivalence on
//! their recorded inputs).

use petasos_ir::onnx::import_file;
use petasos_ir::stats::graph_stats;
use petasos_ir::verify::verify;
use petasos_ir::{interp, Graph, Tensor};
use petasos_models::{build_with, BuildOptions};
use petasos_passes::rewrite::RewriteError;
use petasos_passes::{bias_fusion, bn_fold, shape_simplify};
use petasos_tests::conformance::read_set;
use petasos_tests::{shared_dir, skipped_loudly};

type Pass = fn(&mut Graph, usize) -> Result<usize, RewriteError>;

const PASSES: [(&str, Pass); 3] = [
    ("bn_fold", bn_fold::apply),
    ("bias_fusion", bias_fusion::apply),
    ("shape_simplify", shape_simplify::apply),
];

fn count(g: &Graph, op: &str) -> usize {
    g.g.node_weights().filter(|n| n.op.op_type() == op).count()
}

/// Checks `got` against `want` within `rel` of max|want| per output.
fn close(got: &[Tensor], want: &[Tensor], rel: f64) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!("{} outputs, expected {}", got.len(), want.len()));
    }
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        if a.shape() != b.shape() || a.dtype() != b.dtype() {
            return Err(format!("output {i}: type or shape changed"));
        }
        let (Ok(a), Ok(b)) = (a.to_f64_vec(), b.to_f64_vec()) else {
            if a != b {
                return Err(format!("output {i}: values differ"));
            }
            continue;
        };
        let scale = b
            .iter()
            .filter(|v| v.is_finite())
            .fold(0f64, |m, v| m.max(v.abs()));
        let worst = a
            .iter()
            .zip(&b)
            .map(|(x, y)| if x == y { 0.0 } else { (x - y).abs() })
            .fold(0f64, f64::max);
        if worst.is_nan() || worst > rel * scale + 1e-12 {
            return Err(format!(
                "output {i}: max |diff| {worst:e} > {rel:e} * max|out| {scale:e}"
            ));
        }
    }
    Ok(())
}

/// Deterministic pseudo-random input values in [-1, 1].
fn image(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    let v = (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f64 / (1u64 << 24) as f64 * 2.0 - 1.0) as f32
        })
        .collect();
    Tensor::from_f32(shape, v).unwrap()
}

/// Elements of the batch norms' constants less the biases bn_fold must create (producers
/// without one): the expected drop in `parameters`.
fn expected_param_drop(g: &Graph) -> u64 {
    let mut drop = 0u64;
    for n in g.g.node_indices() {
        if g.g[n].op.op_type() != "BatchNormalization" {
            continue;
        }
        let ins = g.node_inputs(n);
        let c = g.constant(ins[1].unwrap().node).unwrap().numel() as u64;
        drop += 4 * c;
        let prod = ins[0].unwrap().node;
        if g.node_inputs(prod).get(2).copied().flatten().is_none() {
            drop -= c;
        }
    }
    drop
}

fn builtin(name: &str) {
    let opts = BuildOptions {
        overrides: Some(serde_json::json!({ "image_size": 32 })),
        ..Default::default()
    };
    let g = build_with(name, &opts).unwrap();
    let bns = count(&g, "BatchNormalization");
    assert!(bns > 0, "{name} has no batch norms");
    let x = image(&[1, 3, 32, 32]);
    let want = interp::run(&g, vec![x.clone()]).unwrap();
    let before = graph_stats(&g);
    let drop = expected_param_drop(&g);

    let mut h = g.clone();
    let folded = bn_fold::apply(&mut h, usize::MAX).unwrap();
    verify(&h).unwrap();
    assert_eq!(folded, bns);
    assert_eq!(count(&h, "BatchNormalization"), 0);
    let after = graph_stats(&h);
    assert_eq!(after.parameters, before.parameters - drop);
    assert_eq!(after.nodes, before.nodes - bns);
    let got = interp::run(&h, vec![x.clone()]).unwrap();
    close(&got, &want, 1e-4).unwrap_or_else(|e| panic!("{name} after bn_fold: {e}"));

    let fused = bias_fusion::apply(&mut h, usize::MAX).unwrap();
    let simplified = shape_simplify::apply(&mut h, usize::MAX).unwrap();
    verify(&h).unwrap();
    let got = interp::run(&h, vec![x]).unwrap();
    close(&got, &want, 1e-4).unwrap_or_else(|e| panic!("{name} after all passes: {e}"));
    let last = graph_stats(&h);
    println!(
        "{name}: nodes {} -> {} ; parameters {} -> {} ; bn_fold {folded}, bias_fusion {fused}, \
         shape_simplify {simplified}",
        before.nodes, last.nodes, before.parameters, last.parameters
    );
}

#[test]
fn resnet18_builtin() {
    builtin("resnet18");
}

#[test]
fn mobilenet_v2_builtin() {
    builtin("mobilenet_v2");
}

/// The shared models that run in reasonable time in the reference interpreter.
const SHARED: [&str; 12] = [
    "resnet18",
    "mobilenet_v2",
    "densenet121",
    "espcn_subpixel_quant",
    "tiny_mixtral",
    "ch_ppocr_mobile_v2.0_cls_infer",
    "ch_PP-OCRv4_det_infer",
    "ch_PP-OCRv4_rec_infer",
    "espcn_subpixel_float",
    "silero_vad",
    "tiny_gpt2",
    "tiny_llama",
];

fn shared_model(name: &str) -> Result<String, String> {
    let dir = shared_dir().ok_or("no shared dir")?.join("models");
    let g = import_file(&dir.join(format!("{name}.onnx"))).map_err(|e| format!("import: {e}"))?;
    let inputs = read_set(&dir.join(name), "input")?;
    let want = interp::run(&g, inputs.clone()).map_err(|e| format!("run: {e}"))?;
    let before = graph_stats(&g);
    let mut h = g.clone();
    let mut counts = Vec::new();
    for (pass, f) in PASSES {
        let n = f(&mut h, usize::MAX).map_err(|e| e.to_string())?;
        verify(&h).map_err(|e| format!("verify after {pass}: {e}"))?;
        counts.push(format!("{pass} {n}"));
    }
    let got = interp::run(&h, inputs).map_err(|e| format!("run after passes: {e}"))?;
    close(&got, &want, 1e-4)?;
    let after = graph_stats(&h);
    // What the batch norms left in place follow (why they were not folded).
    let mut left: Vec<String> =
        h.g.node_indices()
            .filter(|&n| h.g[n].op.op_type() == "BatchNormalization")
            .filter_map(|n| h.node_inputs(n)[0])
            .map(|x| {
                let users = h.users(x).len();
                format!("{}/{users} users", h.g[x.node].op.op_type())
            })
            .collect();
    left.sort();
    left.dedup();
    Ok(format!(
        "{name}: nodes {} -> {}, parameters {} -> {} ({}); batch norms left {} after {:?}",
        before.nodes,
        after.nodes,
        before.parameters,
        after.parameters,
        counts.join(", "),
        count(&h, "BatchNormalization"),
        left
    ))
}

#[test]
fn shared_models_equivalent() {
    if shared_dir().is_none() {
        skipped_loudly("passes shared_models_equivalent");
        return;
    }
    let only = std::env::var("PETASOS_PASSES_MODELS").ok();
    let mut failures = Vec::new();
    for name in SHARED {
        if only
            .as_deref()
            .is_some_and(|o| !o.split(',').any(|m| m == name))
        {
            continue;
        }
        match shared_model(name) {
            Ok(line) => println!("{line}"),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
