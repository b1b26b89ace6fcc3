//! ViT family: exact parameter counts, small configs (dense and MoE) run in the interpreter,
//! image-level routing picks experts per image, bad configs are config errors.

use petasos_ir::interp;
use petasos_ir::stats::graph_stats;
use petasos_ir::{DType, Graph, Tensor};
use petasos_models::cnn::parameter_count;
use petasos_models::{build_with, BuildOptions, ModelError};
use protobuf::Message;
use serde_json::json;

fn opts(ov: serde_json::Value) -> BuildOptions {
    BuildOptions {
        overrides: Some(ov),
        ..Default::default()
    }
}

/// Learned parameters by PyTorch state-dict naming (shape and index constants are not).
fn named_params(g: &Graph) -> u64 {
    let learned = [
        "weight",
        "bias",
        "class_token",
        "pos_embedding",
        "in_proj_weight",
        "in_proj_bias",
    ];
    g.g.node_indices()
        .filter_map(|i| {
            let c = g.constant(i)?;
            let name = &g.g[i].outputs[0].name;
            learned
                .contains(&name.rsplit('.').next().unwrap())
                .then_some(c.numel() as u64)
        })
        .sum()
}

#[test]
fn cnn_vit_b_16_parameter_count() {
    let g = petasos_models::build("vit_b_16").unwrap();
    assert_eq!(parameter_count(&g), Some(86_567_656));
    assert_eq!(named_params(&g), 86_567_656);
    // Auxiliary constants: patch shape (3), class-token shape (2), token index (1).
    assert_eq!(graph_stats(&g).parameters, 86_567_656 + 6);
    assert_eq!(g.metadata["family"], "vit");
    for w in [
        "conv_proj.weight",
        "class_token",
        "encoder.pos_embedding",
        "encoder.layers.encoder_layer_0.self_attention.in_proj_weight",
        "encoder.layers.encoder_layer_11.self_attention.out_proj.bias",
        "encoder.layers.encoder_layer_11.mlp.3.weight",
        "encoder.ln.weight",
        "heads.head.weight",
    ] {
        assert!(
            g.g.node_indices()
                .any(|i| g.constant(i).is_some() && g.g[i].outputs[0].name == w),
            "missing {w}"
        );
    }
}

#[test]
fn cnn_mobile_vmoe_parameter_count() {
    let g = petasos_models::build("mobile-vmoe").unwrap();
    // Dense ViT-Tiny: 5,717,416. Each of the 2 MoE blocks has 10 expert MLPs instead of one
    // (+9 x 295,872 each), plus the router 192 x 10 + 10.
    let dense = 5_717_416u64;
    let want = dense + 2 * 9 * (192 * 768 + 768 + 768 * 192 + 192) + 192 * 10 + 10;
    assert_eq!(want, 11_045_042);
    assert_eq!(parameter_count(&g), Some(want));
    assert_eq!(named_params(&g), want);
    let dense_g = build_with("mobile-vmoe", &opts(json!({"moe_layers": 0}))).unwrap();
    assert_eq!(parameter_count(&dense_g), Some(dense));
    assert!(g.g.node_indices().any(|i| g.constant(i).is_some()
        && g.g[i].outputs[0].name == "encoder.layers.encoder_layer_10.moe.experts.fc1.weight"));
    assert!(g
        .g
        .node_indices()
        .any(|i| g.constant(i).is_some() && g.g[i].outputs[0].name == "encoder.router.weight"));
    let s = graph_stats(&g);
    assert_eq!(s.ops["TopK"].count, 1, "one router per image");
}

fn image(batch: usize, size: usize) -> Tensor {
    let n = batch * 3 * size * size;
    let v: Vec<f32> = (0..n)
        .map(|i| ((i * 31 % 97) as f32 / 97.0) - 0.5)
        .collect();
    Tensor::from_f32(&[batch, 3, size, size], v).unwrap()
}

fn run_small(name: &str, ov: serde_json::Value) -> Vec<f64> {
    let g = build_with(name, &opts(ov)).unwrap();
    let out = interp::run(&g, vec![image(3, 32)]).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].shape(), &[3, 7], "{name}");
    assert_eq!(out[0].dtype(), DType::F32);
    let v = out[0].to_f64_vec().unwrap();
    assert!(v.iter().all(|x| x.is_finite()), "{name}: {v:?}");
    assert_ne!(v[..7], v[7..14], "{name}");
    // Export and re-import reproduce the outputs bit for bit.
    let bytes = petasos_ir::onnx::export_model(&g)
        .unwrap()
        .write_to_bytes()
        .unwrap();
    let g2 = petasos_ir::onnx::import_bytes(&bytes).unwrap();
    let v2 = interp::run(&g2, vec![image(3, 32)]).unwrap()[0]
        .to_f64_vec()
        .unwrap();
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&v), bits(&v2), "{name}: round trip");
    v
}

#[test]
fn cnn_vit_small_configs_run() {
    run_small(
        "vit_b_16",
        json!({"image_size": 32, "patch_size": 8, "num_layers": 2, "num_heads": 2,
               "hidden_dim": 16, "mlp_dim": 32, "num_classes": 7}),
    );
    for (moe_layers, e, k) in [(1, 4, 1), (2, 3, 2), (3, 4, 4)] {
        run_small(
            "mobile-vmoe",
            json!({"image_size": 32, "patch_size": 8, "num_layers": 3, "num_heads": 2,
                   "hidden_dim": 16, "mlp_dim": 32, "num_classes": 7,
                   "moe_layers": moe_layers, "num_experts": e, "top_k": k}),
        );
    }
}

#[test]
fn cnn_vmoe_routes_each_image_on_its_own() {
    // Routing is per image: a batch gives each image the logits it gets alone.
    let g = build_with(
        "mobile-vmoe",
        &opts(
            json!({"image_size": 32, "patch_size": 8, "num_layers": 3, "num_heads": 2,
                     "hidden_dim": 16, "mlp_dim": 32, "num_classes": 7,
                     "moe_layers": 2, "num_experts": 5, "top_k": 2}),
        ),
    )
    .unwrap();
    let all = image(3, 32);
    let batch = interp::run(&g, vec![all.clone()]).unwrap()[0]
        .to_f64_vec()
        .unwrap();
    let px = all.to_f64_vec().unwrap();
    let per = 3 * 32 * 32;
    for i in 0..3 {
        let one: Vec<f32> = px[i * per..(i + 1) * per]
            .iter()
            .map(|&v| v as f32)
            .collect();
        let t = Tensor::from_f32(&[1, 3, 32, 32], one).unwrap();
        let y = interp::run(&g, vec![t]).unwrap()[0].to_f64_vec().unwrap();
        for (a, b) in y.iter().zip(&batch[i * 7..(i + 1) * 7]) {
            assert!(
                (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                "image {i}: {a} vs {b}"
            );
        }
    }
}

fn config_err(name: &str, ov: serde_json::Value, field: &str) {
    let e = build_with(name, &opts(ov.clone())).unwrap_err();
    let ModelError::Build { source, .. } = &e else {
        panic!("{name} {ov}: {e}");
    };
    assert!(
        matches!(**source, ModelError::Config(_)),
        "{name} {ov}: not a config error: {e}"
    );
    assert!(
        source.to_string().contains(field),
        "{name} {ov}: '{source}' does not name {field}"
    );
}

#[test]
fn cnn_vit_bad_configs_are_config_errors() {
    config_err("vit_b_16", json!({"num_heads": 0}), "num_heads");
    config_err("vit_b_16", json!({"num_heads": 7}), "num_heads");
    config_err("vit_b_16", json!({"patch_size": 15}), "patch_size");
    config_err("vit_b_16", json!({"num_layers": 0}), "num_layers");
    config_err("mobile-vmoe", json!({"top_k": 11}), "top_k");
    config_err("mobile-vmoe", json!({"top_k": 0}), "top_k");
    config_err("mobile-vmoe", json!({"num_experts": 0}), "num_experts");
    config_err("mobile-vmoe", json!({"moe_layers": 13}), "moe_layers");
    config_err("mobile-vmoe", json!({"experts": 4}), "experts");
}
