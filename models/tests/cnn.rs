//! CNN family: exact torchvision parameter counts, small configs run in the interpreter, ONNX
//! export/re-import round trips bit for bit, bad configs are config errors.

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

/// Learned parameters by PyTorch state-dict naming: constants whose last name component is
/// `weight` or `bias` (running statistics and auxiliary constants are not).
fn named_params(g: &Graph) -> u64 {
    let mut n = 0;
    for i in g.g.node_indices() {
        if let Some(c) = g.constant(i) {
            let name = &g.g[i].outputs[0].name;
            let last = name.rsplit('.').next().unwrap();
            if last == "weight" || last == "bias" {
                n += c.numel() as u64;
            }
        }
    }
    n
}

fn named_buffers(g: &Graph) -> u64 {
    let mut n = 0;
    for i in g.g.node_indices() {
        if let Some(c) = g.constant(i) {
            let name = &g.g[i].outputs[0].name;
            if name.ends_with(".running_mean") || name.ends_with(".running_var") {
                n += c.numel() as u64;
            }
        }
    }
    n
}

fn check_count(name: &str, want: u64) {
    let g = petasos_models::build(name).unwrap();
    assert_eq!(
        parameter_count(&g),
        Some(want),
        "{name}: metadata parameters"
    );
    assert_eq!(named_params(&g), want, "{name}: weight/bias constants");
    let buffers: u64 = g.metadata["buffers"].parse().unwrap();
    assert_eq!(named_buffers(&g), buffers, "{name}: buffers");
    let s = graph_stats(&g);
    // Every constant is a parameter, a running statistic or one of the two ReLU6 bounds.
    let aux = if name == "mobilenet_v2" { 2 } else { 0 };
    assert_eq!(s.parameters, want + buffers + aux, "{name}: all constants");
    assert_eq!(g.metadata["family"], "cnn");
}

#[test]
fn cnn_resnet18_parameter_count() {
    check_count("resnet18", 11_689_512);
}

#[test]
fn cnn_resnet50_parameter_count() {
    check_count("resnet50", 25_557_032);
}

#[test]
fn cnn_densenet121_parameter_count() {
    check_count("densenet121", 7_978_856);
}

#[test]
fn cnn_mobilenet_v2_parameter_count() {
    check_count("mobilenet_v2", 3_504_872);
}

#[test]
fn cnn_efficientnet_v2_s_parameter_count() {
    check_count("efficientnet_v2_s", 21_458_488);
}

#[test]
fn cnn_torchvision_names_and_layer_paths() {
    let g = petasos_models::build("resnet18").unwrap();
    let names: Vec<String> =
        g.g.node_indices()
            .filter(|&i| g.constant(i).is_some())
            .map(|i| g.g[i].outputs[0].name.clone())
            .collect();
    for want in [
        "conv1.weight",
        "bn1.running_var",
        "layer1.0.conv1.weight",
        "layer2.0.downsample.0.weight",
        "layer2.0.downsample.1.bias",
        "layer4.1.bn2.weight",
        "fc.weight",
        "fc.bias",
    ] {
        assert!(names.iter().any(|n| n == want), "missing {want}");
    }
    let paths: Vec<&str> =
        g.g.node_weights()
            .map(|n| n.provenance.layer_path.as_str())
            .collect();
    assert!(paths.contains(&"/layer1/0/conv1"));
    assert!(paths.contains(&"/layer3/0/downsample/0"));
    let g = petasos_models::build("efficientnet_v2_s").unwrap();
    let has = |w: &str| {
        g.g.node_indices()
            .any(|i| g.constant(i).is_some() && g.g[i].outputs[0].name == w)
    };
    assert!(has("features.4.0.block.2.fc1.weight"));
    assert!(has("features.6.14.block.3.1.running_mean"));
    assert!(has("features.7.0.weight"));
    assert!(has("classifier.1.weight"));
    let g = petasos_models::build("densenet121").unwrap();
    let has = |w: &str| {
        g.g.node_indices()
            .any(|i| g.constant(i).is_some() && g.g[i].outputs[0].name == w)
    };
    assert!(has("features.denseblock4.denselayer16.conv2.weight"));
    assert!(has("features.transition3.conv.weight"));
    assert!(has("features.norm5.bias"));
    let g = petasos_models::build("mobilenet_v2").unwrap();
    let has = |w: &str| {
        g.g.node_indices()
            .any(|i| g.constant(i).is_some() && g.g[i].outputs[0].name == w)
    };
    assert!(has("features.1.conv.0.0.weight"));
    assert!(has("features.2.conv.3.running_var"));
    assert!(has("features.18.1.weight"));
}

/// Small configs of every CNN builder (32x32 input, narrow, shallow).
fn small() -> Vec<(&'static str, serde_json::Value)> {
    vec![
        (
            "resnet18",
            json!({"image_size": 32, "width": 8, "layers": [1, 1], "num_classes": 5}),
        ),
        (
            "resnet50",
            json!({"image_size": 32, "width": 4, "layers": [1, 2], "num_classes": 5}),
        ),
        (
            "densenet121",
            json!({"image_size": 32, "growth_rate": 4, "num_init_features": 8,
                   "block_config": [2, 3], "bn_size": 2, "num_classes": 5}),
        ),
        (
            "mobilenet_v2",
            json!({"image_size": 32, "width_mult": 0.25, "last_channel": 32, "num_classes": 5,
                   "inverted_residual_setting": [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 1, 2]]}),
        ),
        (
            "efficientnet_v2_s",
            json!({"image_size": 32, "last_channel": 32, "num_classes": 5, "stages": [
                {"kind": "fused", "expand_ratio": 1, "kernel": 3, "stride": 1,
                 "in_channels": 8, "out_channels": 8, "layers": 2},
                {"kind": "fused", "expand_ratio": 4, "kernel": 3, "stride": 2,
                 "in_channels": 8, "out_channels": 16, "layers": 1},
                {"kind": "mb", "expand_ratio": 4, "kernel": 3, "stride": 2,
                 "in_channels": 16, "out_channels": 16, "layers": 2}]}),
        ),
    ]
}

fn image(batch: usize) -> Tensor {
    let n = batch * 3 * 32 * 32;
    let v: Vec<f32> = (0..n)
        .map(|i| ((i * 31 % 97) as f32 / 97.0) - 0.5)
        .collect();
    Tensor::from_f32(&[batch, 3, 32, 32], v).unwrap()
}

#[test]
fn cnn_small_configs_run_and_round_trip_through_onnx() {
    for (name, ov) in small() {
        let g = build_with(name, &opts(ov)).unwrap();
        let out = interp::run(&g, vec![image(2)]).unwrap();
        assert_eq!(out.len(), 1, "{name}");
        assert_eq!(out[0].shape(), &[2, 5], "{name}");
        assert_eq!(out[0].dtype(), DType::F32, "{name}");
        let v = out[0].to_f64_vec().unwrap();
        assert!(v.iter().all(|x| x.is_finite()), "{name}: {v:?}");
        assert!(v.iter().any(|x| *x != 0.0), "{name}: all zero");
        // The two images differ, so their logits do.
        assert_ne!(v[..5], v[5..], "{name}");

        let bytes = petasos_ir::onnx::export_model(&g)
            .unwrap()
            .write_to_bytes()
            .unwrap();
        let g2 = petasos_ir::onnx::import_bytes(&bytes).unwrap();
        assert_eq!(graph_stats(&g2).parameters, graph_stats(&g).parameters);
        let out2 = interp::run(&g2, vec![image(2)]).unwrap();
        assert_eq!(out2[0].shape(), out[0].shape(), "{name}");
        assert_eq!(out2[0].dtype(), DType::F32, "{name}");
        // f32 to f64 is exact, so equal f64 bits are equal f32 bits.
        let bits = |t: &Tensor| {
            let v = t.to_f64_vec().unwrap();
            v.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        };
        assert_eq!(
            bits(&out[0]),
            bits(&out2[0]),
            "{name}: round trip not bitwise equal"
        );
    }
}

#[test]
fn cnn_seed_changes_weights_not_shapes() {
    let (name, ov) = small().remove(0);
    let a = build_with(name, &opts(ov.clone())).unwrap();
    let b = build_with(
        name,
        &BuildOptions {
            seed: 9,
            overrides: Some(ov),
            ..Default::default()
        },
    )
    .unwrap();
    let ya = interp::run(&a, vec![image(1)]).unwrap();
    let yb = interp::run(&b, vec![image(1)]).unwrap();
    assert_eq!(ya[0].shape(), yb[0].shape());
    assert_ne!(ya[0].to_f64_vec().unwrap(), yb[0].to_f64_vec().unwrap());
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
fn cnn_bad_configs_are_config_errors() {
    config_err("resnet18", json!({"num_classes": 0}), "num_classes");
    config_err("resnet18", json!({"layers": []}), "layers");
    config_err("resnet18", json!({"layers": [2, 0]}), "layers");
    config_err("resnet18", json!({"groups": 2}), "groups");
    config_err("resnet50", json!({"width": 0}), "width");
    config_err("resnet50", json!({"depth": 3}), "depth");
    config_err("densenet121", json!({"growth_rate": 0}), "growth_rate");
    config_err("densenet121", json!({"image_size": 16}), "image_size");
    config_err(
        "densenet121",
        json!({"block_config": [6, 0]}),
        "block_config",
    );
    config_err("mobilenet_v2", json!({"width_mult": 0.0}), "width_mult");
    config_err(
        "mobilenet_v2",
        json!({"inverted_residual_setting": [[6, 24, 0, 2]]}),
        "inverted_residual_setting",
    );
    config_err("efficientnet_v2_s", json!({"stages": []}), "stages");
    config_err(
        "efficientnet_v2_s",
        json!({"in_channels": 0}),
        "in_channels",
    );
    config_err(
        "efficientnet_v2_s",
        json!({"stages": [
            {"kind": "mb", "expand_ratio": 4, "kernel": 3, "stride": 2,
             "in_channels": 16, "out_channels": 16, "layers": 1},
            {"kind": "mb", "expand_ratio": 4, "kernel": 3, "stride": 2,
             "in_channels": 24, "out_channels": 16, "layers": 1}]}),
        "in_channels",
    );
    config_err(
        "efficientnet_v2_s",
        json!({"stages": [
            {"kind": "mb", "expand_ratio": 4, "kernel": 4, "stride": 2,
             "in_channels": 16, "out_channels": 16, "layers": 1}]}),
        "kernel",
    );
}
