//! `afm-server-ptmoe`: parameter counts, interpreter runs of a tiny config, bad configs.

use petasos_ir::{interp, Dim, Graph, Tensor};
use petasos_models::ptmoe::{self, active_parameters_per_token, Config};
use petasos_models::{BuildOptions, ModelError, Phase};
use serde_json::json;

fn opts(phase: Phase) -> BuildOptions {
    BuildOptions {
        phase,
        seed: 3,
        overrides: None,
    }
}

fn within(x: u64, target: f64, rel: f64) -> bool {
    ((x as f64) - target).abs() <= rel * target
}

#[test]
fn default_config_counts_match_the_doc() {
    let c = Config::afm_server_ptmoe();
    // Per track layer: norms 4,096 + attention 4,194,560; dense SwiGLU 36,175,872;
    // MoE router 81,920 + 40 x 18,087,936. Embedding 314,572,800 (tied) + final norm 2,048.
    assert_eq!(c.weight_parameters(), 147_803_703_296);
    assert_eq!(active_parameters_per_token(&c), 15_834_122_240);
    assert!(within(c.weight_parameters(), 147.8e9, 0.01));
    assert!(within(active_parameters_per_token(&c), 15.8e9, 0.01));
}

#[test]
fn default_graph_builds_with_counts_in_metadata() {
    let g = petasos_models::build("afm-server-ptmoe").unwrap();
    let c = Config::afm_server_ptmoe();
    let total = ptmoe::total_parameters(&g);
    assert!(within(total, 147.8e9, 0.01), "{total}");
    // Weights plus a handful of small shape/axis/scalar constants.
    assert!(total >= c.weight_parameters() && total - c.weight_parameters() < 1000);
    assert_eq!(g.metadata["total_parameters"], total.to_string());
    assert_eq!(
        g.metadata["active_parameters_per_token"],
        active_parameters_per_token(&c).to_string()
    );
    // logits + 8 tracks x 48 layers x (key, value).
    assert_eq!(g.outputs.len(), 1 + 2 * 8 * 48);
    assert_eq!(g.inputs.len(), 1);
    // Every track of a block mixes into the sync mean; 12 blocks -> 12 sync points.
    let sums =
        g.g.node_weights()
            .filter(|n| n.op.op_type() == "Sum")
            .count();
    assert_eq!(sums, 12);
    let attn =
        g.g.node_weights()
            .filter(|n| n.op.op_type() == "Attention")
            .count();
    assert_eq!(attn, 8 * 48);
    let rope =
        g.g.node_weights()
            .filter(|n| n.op.op_type() == "RotaryEmbedding")
            .count();
    assert_eq!(
        rope,
        2 * 8 * 36,
        "q and k in the 36 local layers of each track"
    );
    let topk =
        g.g.node_weights()
            .filter(|n| n.op.op_type() == "TopK")
            .count();
    assert_eq!(topk, 8 * 24);
    // Layer paths name the block, track and layer.
    let has = |path: &str, op: &str| {
        g.g.node_weights()
            .any(|n| n.provenance.layer_path == path && n.op.op_type() == op)
    };
    assert!(has("/blocks.11/tracks.7/layers.47/moe/router", "TopK"));
    assert!(has("/blocks.0/tracks.0/layers.0/mlp/down_proj", "MatMul"));
    assert!(has("/blocks.3/sync", "Sum"));
    assert!(!has(
        "/blocks.0/tracks.0/layers.3/attn/rope",
        "RotaryEmbedding"
    ));
    assert!(has(
        "/blocks.0/tracks.0/layers.2/attn/rope",
        "RotaryEmbedding"
    ));
}

#[test]
fn decode_graph_has_symbolic_cache_inputs() {
    let g = petasos_models::build_with("afm-server-ptmoe", &opts(Phase::Decode)).unwrap();
    assert_eq!(g.inputs.len(), 1 + 2 * 8 * 48);
    let ty = |i: usize| {
        g.value_type(petasos_ir::ValueRef {
            node: g.inputs[i],
            out: 0,
        })
        .unwrap()
    };
    let ids = ty(0).shape.clone().unwrap();
    assert_eq!(ids, vec![Dim::sym("batch"), Dim::Known(1)]);
    let pk = ty(1).shape.clone().unwrap();
    assert_eq!(
        pk,
        vec![
            Dim::sym("batch"),
            Dim::Known(4),
            Dim::sym("T"),
            Dim::Known(128)
        ]
    );
    let present = g.outputs[1].value;
    let ps = g.value_type(present).unwrap().shape.clone().unwrap();
    assert_eq!(ps[2], Dim::sym("T").add(&Dim::Known(1)));
}

fn tiny(phase: Phase, ov: serde_json::Value) -> (Config, Graph) {
    let c = petasos_models::config::apply_overrides(&Config::tiny(), Some(&ov)).unwrap();
    let g = ptmoe::build(&c, &opts(phase)).unwrap();
    (c, g)
}

fn ids(b: usize, v: &[i64]) -> Tensor {
    let s = v.len() / b;
    Tensor::from_i64(&[b, s], v.to_vec()).unwrap()
}

fn finite(t: &Tensor) -> bool {
    t.to_f64_vec().unwrap().iter().all(|x| x.is_finite())
}

#[test]
fn tiny_prefill_runs_in_the_interpreter() {
    let (c, g) = tiny(Phase::Prefill, json!({}));
    let out = interp::run(&g, vec![ids(2, &[1, 5, 9, 2, 7, 3, 4, 8, 0, 47])]).unwrap();
    assert_eq!(out.len(), 1 + 2 * c.tracks * c.layers);
    assert_eq!(out[0].shape(), &[2, 5, c.vocab_size]);
    assert!(finite(&out[0]));
    for p in &out[1..] {
        assert_eq!(p.shape(), &[2, c.kv_heads, 5, c.head_dim]);
        assert!(finite(p));
    }
}

/// Prefill of `n` tokens, then decode of one more, must equal prefill of `n + 1` tokens at the
/// last position: checks cache positions, RoPE offsets, the window mask and causality.
fn decode_matches_prefill(ov: serde_json::Value) {
    let toks = [3i64, 11, 40, 7, 19, 25];
    let (c, pre) = tiny(Phase::Prefill, ov.clone());
    let (_, dec) = tiny(Phase::Decode, ov);
    let n = toks.len() - 1;
    let full = interp::run(&pre, vec![ids(1, &toks)]).unwrap();
    let head = interp::run(&pre, vec![ids(1, &toks[..n])]).unwrap();
    let mut inputs = vec![ids(1, &toks[n..])];
    inputs.extend(head[1..].iter().cloned());
    let step = interp::run(&dec, inputs).unwrap();
    let v = c.vocab_size;
    assert_eq!(step[0].shape(), &[1, 1, v]);
    for p in &step[1..] {
        assert_eq!(p.shape(), &[1, c.kv_heads, n + 1, c.head_dim]);
    }
    let want = full[0].to_f64_vec().unwrap();
    let got = step[0].to_f64_vec().unwrap();
    for j in 0..v {
        let w = want[n * v + j];
        assert!(
            (w - got[j]).abs() < 1e-4 * (1.0 + w.abs()),
            "logit {j}: {w} vs {}",
            got[j]
        );
    }
    // The new cache equals the full prefill's.
    for (a, b) in full[1..].iter().zip(&step[1..]) {
        let (a, b) = (a.to_f64_vec().unwrap(), b.to_f64_vec().unwrap());
        assert!(a
            .iter()
            .zip(&b)
            .all(|(x, y)| (x - y).abs() < 1e-4 * (1.0 + x.abs())));
    }
}

#[test]
fn tiny_decode_matches_prefill_with_a_short_window() {
    decode_matches_prefill(json!({}));
}

#[test]
fn tiny_decode_matches_prefill_with_gqa_and_no_softcap() {
    decode_matches_prefill(json!({"heads": 4, "kv_heads": 2, "router_softcap": 0.0, "top_k": 1}));
}

#[test]
fn the_sliding_window_changes_local_attention() {
    let toks = ids(1, &[3, 11, 40, 7, 19, 25]);
    let (_, narrow) = tiny(Phase::Prefill, json!({"sliding_window": 2}));
    let (_, wide) = tiny(Phase::Prefill, json!({"sliding_window": 64}));
    let (_, wider) = tiny(Phase::Prefill, json!({"sliding_window": 128}));
    let a = interp::run(&narrow, vec![toks.clone()]).unwrap()[0]
        .to_f64_vec()
        .unwrap();
    let b = interp::run(&wide, vec![toks.clone()]).unwrap()[0]
        .to_f64_vec()
        .unwrap();
    let c = interp::run(&wider, vec![toks]).unwrap()[0]
        .to_f64_vec()
        .unwrap();
    let v = Config::tiny().vocab_size;
    // Positions 0 and 1 see at most 2 keys either way; later ones lose keys with window 2.
    assert!(a[..2 * v].iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-9));
    assert!(a[2 * v..]
        .iter()
        .zip(&b[2 * v..])
        .any(|(x, y)| (x - y).abs() > 1e-6));
    // Any window at least the sequence length is full causal attention.
    assert!(b.iter().zip(&c).all(|(x, y)| (x - y).abs() < 1e-9));
}

#[test]
fn bad_configs_are_config_errors() {
    let bad = [
        json!({"heads": 0}),
        json!({"kv_heads": 0}),
        json!({"heads": 3, "kv_heads": 2}),
        json!({"tracks": 0}),
        json!({"top_k": 41}),
        json!({"experts": 0}),
        json!({"layers": 5}),
        json!({"block_depth": 0}),
        json!({"head_dim": 7}),
        json!({"d_model": 0}),
        json!({"global_every": 0}),
        json!({"moe_every": 0}),
        json!({"sliding_window": 0}),
        json!({"router_softcap": -1.0}),
        json!({"no_such_field": 1}),
    ];
    for ov in bad {
        let o = BuildOptions {
            overrides: Some(ov.clone()),
            ..BuildOptions::default()
        };
        let Err(ModelError::Build { source, .. }) =
            petasos_models::build_with("afm-server-ptmoe", &o)
        else {
            panic!("{ov}: expected a build error naming the preset")
        };
        assert!(matches!(*source, ModelError::Config(_)), "{ov}: {source}");
    }
    let mut c = Config::tiny();
    c.top_k = 9;
    let e = ptmoe::build(&c, &BuildOptions::default()).unwrap_err();
    assert!(e.to_string().contains("top_k"), "{e}");
}

#[test]
fn overrides_reach_the_graph() {
    let o = BuildOptions {
        overrides: Some(json!({"tracks": 2, "layers": 8, "experts": 8, "vocab_size": 1000})),
        ..BuildOptions::default()
    };
    let g = petasos_models::build_with("afm-server-ptmoe", &o).unwrap();
    let mut c = Config::afm_server_ptmoe();
    c.tracks = 2;
    c.layers = 8;
    c.experts = 8;
    c.vocab_size = 1000;
    let total = ptmoe::total_parameters(&g);
    assert!(total >= c.weight_parameters() && total - c.weight_parameters() < 1000);
    assert_eq!(g.outputs.len(), 1 + 2 * 2 * 8);
}

#[test]
fn all_global_all_moe_and_untied_variants_run() {
    for ov in [
        json!({"global_every": 1, "moe_every": 1, "tie_embeddings": false}),
        json!({"global_every": 5, "moe_every": 5, "tracks": 1, "layers": 3, "block_depth": 3}),
    ] {
        let (c, g) = tiny(Phase::Prefill, ov.clone());
        let total = ptmoe::total_parameters(&g);
        assert!(
            total >= c.weight_parameters() && total - c.weight_parameters() < 100,
            "{ov}"
        );
        let out = interp::run(&g, vec![ids(1, &[4, 8, 15, 16])]).unwrap();
        assert_eq!(out[0].shape(), &[1, 4, c.vocab_size], "{ov}");
        assert!(finite(&out[0]), "{ov}");
    }
}
