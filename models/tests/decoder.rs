//! Decoder family: parameter counts against shared docs/architectures.md, KV-cache figures,
//! graph structure (KV sharing, phases), interpreter runs of small configs, bad configs.

use petasos_ir::interp;
use petasos_ir::stats::graph_stats;
use petasos_ir::weights::Storage;
use petasos_ir::{DType, Dim, Graph, Tensor};
use petasos_models::decoder::{self, kv_cache_values_per_token, Config, MoeConfig};
use petasos_models::{build_with, BuildOptions, ModelError, Phase};
use std::collections::BTreeMap;

fn opts(phase: Phase) -> BuildOptions {
    BuildOptions {
        phase,
        seed: 7,
        overrides: None,
    }
}

/// Learned weights (synthetic constants) by the top-level layer path of the nodes using them:
/// `layers.N` for a layer, otherwise the path (`embed`, `norm`, ...), `embed+lm_head` for the
/// tied embedding. Also returns the elements of the other (non-weight) constants.
fn weights_by_path(g: &Graph) -> (BTreeMap<String, u64>, u64) {
    weights_by_path_where(g, |_| true)
}

/// [`weights_by_path`] over the weights whose shape passes `keep`.
fn weights_by_path_where(
    g: &Graph,
    keep: impl Fn(&[usize]) -> bool,
) -> (BTreeMap<String, u64>, u64) {
    let mut by = BTreeMap::new();
    let mut aux = 0;
    for n in g.g.node_indices() {
        let Some(c) = g.constant(n) else { continue };
        if !matches!(c.storage, Storage::Synthetic { .. }) {
            aux += c.numel() as u64;
            continue;
        }
        if !keep(&c.shape) {
            continue;
        }
        let mut tops: Vec<String> = g
            .users(petasos_ir::ValueRef { node: n, out: 0 })
            .iter()
            .map(|(u, _)| {
                let p = &g.g[*u].provenance.layer_path;
                p.trim_start_matches('/')
                    .split('/')
                    .next()
                    .unwrap_or("")
                    .to_string()
            })
            .collect();
        tops.sort();
        tops.dedup();
        *by.entry(tops.join("+")).or_insert(0) += c.numel() as u64;
    }
    (by, aux)
}

fn layer_sum(by: &BTreeMap<String, u64>, range: std::ops::Range<usize>) -> u64 {
    range.map(|l| by[&format!("layers.{l}")]).sum()
}

fn near(x: u64, doc_millions: f64, tol_millions: f64) -> bool {
    (x as f64 / 1e6 - doc_millions).abs() <= tol_millions
}

#[test]
fn afm_2025_parameter_counts_match_the_doc() {
    let g = decoder::build(&Config::afm_ondevice_2025(), &opts(Phase::Prefill)).unwrap();
    let (by, aux) = weights_by_path(&g);
    let total: u64 = by.values().sum();
    assert_eq!(total, 3_111_368_064);
    assert_eq!(total, Config::afm_ondevice_2025().parameter_count());
    let emb = by["embed+lm_head"];
    let b1 = layer_sum(&by, 0..35);
    let b2 = layer_sum(&by, 35..56);
    assert_eq!(emb, 314_572_800);
    assert!(near(emb, 314.6, 0.1), "embedding {emb}");
    // Block totals with their norms: block 1 = 35 x 50,336,000, block 2 = 21 x 49,287,296.
    assert_eq!(b1, 1_761_760_000);
    assert_eq!(b2, 1_035_033_216);
    // The doc's per-block rows count the projection matrices only: the norm weights (243,072 in
    // all, final norm included) are the difference between its rows and its exact total.
    let (mats, _) = weights_by_path_where(&g, |s| s.len() >= 2);
    let (m1, m2) = (layer_sum(&mats, 0..35), layer_sum(&mats, 35..56));
    assert!(near(m1, 1761.6, 0.1), "block 1 matrices {m1}");
    assert!(near(m2, 1034.9, 0.1), "block 2 matrices {m2}");
    assert_eq!(total - m1 - m2 - emb, 243_072);
    assert_eq!(by["norm"], 2048);
    // Everything else is shape vectors, scalars and the RoPE inverse frequencies.
    assert!(aux < 200, "non-weight constants {aux}");
    assert_eq!(graph_stats(&g).parameters, total + aux);
    assert_eq!(g.metadata["learned_parameters"], "3111368064");
}

#[test]
fn afm_2025_without_sharing_has_kv_in_every_layer_and_the_same_paths() {
    let shared = Config::afm_ondevice_2025();
    let unshared = Config {
        kv_sharing: false,
        ..shared.clone()
    };
    let gs = decoder::build(&shared, &opts(Phase::Prefill)).unwrap();
    let gu = decoder::build(&unshared, &opts(Phase::Prefill)).unwrap();
    let paths = |g: &Graph| -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for n in g.g.node_indices() {
            let p = &g.g[n].provenance.layer_path;
            if !p.is_empty() {
                *m.entry(format!("{p}:{}", g.g[n].op.op_type())).or_insert(0) += 1;
            }
        }
        m
    };
    let (ps, pu) = (paths(&gs), paths(&gu));
    for l in 0..56 {
        for proj in ["k_proj", "v_proj"] {
            let key = format!("/layers.{l}/attn/{proj}:MatMul");
            assert!(pu.contains_key(&key), "{key}");
            assert_eq!(ps.contains_key(&key), l < 35, "{key}");
        }
    }
    // Every path of the shared graph is in the unshared one with the same ops.
    for (k, c) in &ps {
        assert_eq!(pu.get(k), Some(c), "{k}");
    }
    let extra: Vec<&String> = pu.keys().filter(|k| !ps.contains_key(*k)).collect();
    assert!(
        extra.iter().all(|k| {
            let l: usize = k["/layers.".len()..]
                .split('/')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            l >= 35 && (k.contains("/attn/k_") || k.contains("/attn/v_"))
        }),
        "{extra:?}"
    );
    let (by, _) = weights_by_path(&gu);
    let total: u64 = by.values().sum();
    assert_eq!(total, 3_111_368_064 + 21 * (2 * 2048 * 256 + 128));
    assert_eq!(total, unshared.parameter_count());
    assert_eq!(gs.outputs.len(), 1 + 2 * 35);
    assert_eq!(gu.outputs.len(), 1 + 2 * 56);
}

#[test]
fn kv_cache_per_token_with_and_without_sharing() {
    let s = Config::afm_ondevice_2025();
    let u = Config {
        kv_sharing: false,
        ..s.clone()
    };
    assert_eq!(kv_cache_values_per_token(&s), 17_920);
    assert_eq!(kv_cache_values_per_token(&u), 28_672);
    // -37.5%
    assert_eq!(
        (28_672 - 17_920) * 1000 / 28_672,
        375,
        "reduction in per mille"
    );
    assert_eq!(
        kv_cache_values_per_token(&Config::afm_ondevice_2024()),
        2 * 26 * 8 * 128
    );
}

/// The decode graph's past inputs: `[batch, kv_heads, T, head_dim]` each, summing (per token)
/// to the metadata figure and to `kv_cache_values_per_token`.
fn check_past_inputs(cfg: &Config) {
    let g = decoder::build(cfg, &opts(Phase::Decode)).unwrap();
    let want = kv_cache_values_per_token(cfg);
    assert_eq!(g.metadata["kv_cache_values_per_token"], want.to_string());
    let mut per_token = 0;
    let mut names = Vec::new();
    for &n in &g.inputs {
        let v = &g.g[n].outputs[0];
        if v.name == "input_ids" {
            let s = v.ty.shape.as_ref().unwrap();
            assert_eq!(s, &vec![Dim::sym("batch"), Dim::Known(1)]);
            continue;
        }
        assert!(v.name.starts_with("past_key.") || v.name.starts_with("past_value."));
        names.push(v.name.clone());
        let s = v.ty.shape.as_ref().unwrap();
        assert_eq!(s.len(), 4);
        assert_eq!(s[0], Dim::sym("batch"));
        assert_eq!(s[2], Dim::sym("T"));
        let (Dim::Known(h), Dim::Known(d)) = (&s[1], &s[3]) else {
            panic!("{}: {s:?}", v.name)
        };
        per_token += h * d;
    }
    assert_eq!(per_token, want);
    assert_eq!(names.len(), 2 * cfg.kv_layers().len());
    // Presents: one more position than the cache.
    for o in &g.outputs {
        if o.name.starts_with("present_") {
            let s = g.value_type(o.value).unwrap().shape.clone().unwrap();
            assert_eq!(s[2], Dim::sym("T").add(&Dim::Known(1)), "{}", o.name);
        }
    }
}

#[test]
fn afm_2025_decode_past_inputs_agree_with_the_kv_figure() {
    let s = Config::afm_ondevice_2025();
    check_past_inputs(&s);
    check_past_inputs(&Config {
        kv_sharing: false,
        ..s
    });
}

#[test]
fn afm_2024_parameters_match_the_doc() {
    let g = decoder::build(&Config::afm_ondevice_2024(), &opts(Phase::Prefill)).unwrap();
    let (by, _) = weights_by_path(&g);
    let emb = by["embed+lm_head"];
    let non_emb: u64 = by.values().sum::<u64>() - emb;
    // Doc: 2.58B non-embedding + 0.15B embedding.
    assert_eq!(emb, 49_152 * 3072);
    assert!((non_emb as f64 / 1e9 - 2.58).abs() < 0.01, "{non_emb}");
    assert!((emb as f64 / 1e9 - 0.15).abs() < 0.005, "{emb}");
    assert_eq!(non_emb + emb, Config::afm_ondevice_2024().parameter_count());
    check_past_inputs(&Config::afm_ondevice_2024());
}

#[test]
fn llama_and_mixtral_published_counts() {
    for (name, cfg, want) in [
        ("llama2-7b", Config::llama2_7b(), 6_738_415_616u64),
        ("mixtral-8x7b", Config::mixtral_8x7b(), 46_702_792_704),
    ] {
        let g = build_with(name, &opts(Phase::Prefill)).unwrap();
        let (by, _) = weights_by_path(&g);
        assert_eq!(by.values().sum::<u64>(), want, "{name}");
        assert_eq!(cfg.parameter_count(), want, "{name}");
        check_past_inputs(&cfg);
    }
}

#[test]
fn graph_uses_the_expected_ops() {
    let g = decoder::build(&Config::mixtral_tiny(), &opts(Phase::Prefill)).unwrap();
    let ops = graph_stats(&g).ops;
    for op in [
        "Gather",
        "MatMul",
        "RMSNormalization",
        "RotaryEmbedding",
        "Attention",
        "Sigmoid",
        "Mul",
        "TopK",
        "Softmax",
        "Sum",
    ] {
        assert!(ops.contains_key(op), "{op} missing: {:?}", ops.keys());
    }
    assert_eq!(ops["Attention"].count, 2);
    // 2 layers x 4 experts x SwiGLU (3 MatMuls) + router + q, k, v, o per layer + head.
    assert_eq!(ops["MatMul"].count, 2 * (4 * 3 + 1 + 4) + 1);
    assert_eq!(g.opsets[""], 23);
}

fn ids(batch: usize, toks: &[i64]) -> Tensor {
    let v: Vec<i64> = (0..batch).flat_map(|_| toks.iter().copied()).collect();
    Tensor::from_i64(&[batch, toks.len()], v).unwrap()
}

fn finite(t: &Tensor) -> bool {
    t.to_f64_vec().unwrap().iter().all(|v| v.is_finite())
}

/// Runs prefill on `toks`, then prefill on all but the last token followed by one decode
/// step with its cache, and checks shapes, finiteness and that both give the same last logits.
fn prefill_then_decode_agree(cfg: &Config) {
    let batch = 2;
    let toks = [3i64, 17, 42, 5, 99];
    let n = toks.len();
    let pre = decoder::build(cfg, &opts(Phase::Prefill)).unwrap();
    let dec = decoder::build(cfg, &opts(Phase::Decode)).unwrap();
    let kvl = cfg.kv_layers();
    let (nkv, hd, v) = (cfg.kv_heads, cfg.head_dim(), cfg.vocab);

    let full = interp::run(&pre, vec![ids(batch, &toks)]).unwrap();
    assert_eq!(full.len(), 1 + 2 * kvl.len());
    assert_eq!(full[0].shape(), &[batch, n, v]);
    assert!(full.iter().all(finite));
    for t in &full[1..] {
        assert_eq!(t.shape(), &[batch, nkv, n, hd]);
    }

    let head = interp::run(&pre, vec![ids(batch, &toks[..n - 1])]).unwrap();
    let mut ins = vec![ids(batch, &toks[n - 1..])];
    ins.extend(head[1..].iter().cloned());
    let step = interp::run(&dec, ins).unwrap();
    assert_eq!(step[0].shape(), &[batch, 1, v]);
    assert!(step.iter().all(finite));
    for t in &step[1..] {
        assert_eq!(t.shape(), &[batch, nkv, n, hd]);
    }
    let a = full[0].to_f64_vec().unwrap();
    let b = step[0].to_f64_vec().unwrap();
    for bi in 0..batch {
        for j in 0..v {
            let x = a[(bi * n + n - 1) * v + j];
            let y = b[bi * v + j];
            assert!(
                (x - y).abs() <= 1e-3 * (1.0 + x.abs()),
                "logit {j}: {x} vs {y}"
            );
        }
    }
    // The decode step's caches equal the full prefill's.
    for (x, y) in full[1..].iter().zip(&step[1..]) {
        let (x, y) = (x.to_f64_vec().unwrap(), y.to_f64_vec().unwrap());
        assert!(x
            .iter()
            .zip(&y)
            .all(|(p, q)| (p - q).abs() <= 1e-3 * (1.0 + p.abs())));
    }
}

fn tiny_afm() -> Config {
    Config {
        layers: 5,
        d_model: 64,
        heads: 4,
        kv_heads: 2,
        ffn_hidden: 96,
        vocab: 128,
        block2_layers: 2,
        ..Config::afm_ondevice_2025()
    }
}

#[test]
fn tiny_afm_with_kv_sharing_runs_both_phases_consistently() {
    let cfg = tiny_afm();
    assert_eq!(cfg.kv_layers(), vec![0, 1, 2]);
    prefill_then_decode_agree(&cfg);
}

#[test]
fn tiny_afm_without_kv_sharing_runs_both_phases_consistently() {
    prefill_then_decode_agree(&Config {
        kv_sharing: false,
        ..tiny_afm()
    });
}

#[test]
fn tiny_llama_and_mixtral_run_both_phases_consistently() {
    prefill_then_decode_agree(&Config::llama_tiny());
    prefill_then_decode_agree(&Config::mixtral_tiny());
}

#[test]
fn tiny_presets_build_through_the_registry_with_overrides() {
    let o = BuildOptions {
        phase: Phase::Decode,
        seed: 1,
        overrides: Some(serde_json::json!({"layers": 3, "moe": {"experts": 3, "top_k": 1}})),
    };
    let g = build_with("mixtral-tiny", &o).unwrap();
    let c: Config = serde_json::from_str(&g.metadata["config"]).unwrap();
    assert_eq!(c.layers, 3);
    assert_eq!(
        c.moe,
        Some(MoeConfig {
            experts: 3,
            top_k: 1
        })
    );
    // Shared layers need an owning layer before them; KV sharing default is on.
    let c: Config = serde_json::from_value(serde_json::json!({
        "layers": 2, "d_model": 32, "heads": 2, "kv_heads": 1, "ffn_hidden": 64, "vocab": 50,
        "norm_eps": 1e-5, "rope_theta": 10000.0, "qk_norm": true, "tie_embeddings": true,
        "block2_layers": 1
    }))
    .unwrap();
    assert!(c.kv_sharing);
    assert_eq!(kv_cache_values_per_token(&c), 2 * 16);
}

fn bad(cfg: Config, field: &str) {
    match decoder::build(&cfg, &opts(Phase::Prefill)) {
        Err(ModelError::Config(m)) => assert!(m.contains(field), "{m} should name {field}"),
        Err(e) => panic!("expected a config error naming {field}, got {e}"),
        Ok(_) => panic!("expected a config error naming {field}"),
    }
}

#[test]
fn bad_configs_are_config_errors() {
    let t = Config::llama_tiny();
    bad(
        Config {
            heads: 0,
            ..t.clone()
        },
        "heads",
    );
    bad(
        Config {
            kv_heads: 0,
            ..t.clone()
        },
        "kv_heads",
    );
    bad(
        Config {
            heads: 6,
            kv_heads: 3,
            ..t.clone()
        },
        "d_model",
    );
    bad(
        Config {
            heads: 4,
            kv_heads: 3,
            ..t.clone()
        },
        "kv_heads",
    );
    bad(
        Config {
            layers: 0,
            ..t.clone()
        },
        "layers",
    );
    bad(
        Config {
            vocab: 0,
            ..t.clone()
        },
        "vocab",
    );
    bad(
        Config {
            block2_layers: 2,
            ..t.clone()
        },
        "block2_layers",
    );
    bad(
        Config {
            moe: Some(MoeConfig {
                experts: 2,
                top_k: 3,
            }),
            ..t.clone()
        },
        "top_k",
    );
    bad(
        Config {
            moe: Some(MoeConfig {
                experts: 0,
                top_k: 0,
            }),
            ..t.clone()
        },
        "experts",
    );
    // Through the registry: the error is wrapped with the preset name.
    let o = BuildOptions {
        overrides: Some(serde_json::json!({"heads": 0})),
        ..BuildOptions::default()
    };
    let e = build_with("afm-ondevice-2025", &o).unwrap_err();
    match e {
        ModelError::Build { source, .. } => assert!(matches!(*source, ModelError::Config(_))),
        e => panic!("{e}"),
    }
}

#[test]
fn input_and_output_types() {
    let g = decoder::build(&tiny_afm(), &opts(Phase::Prefill)).unwrap();
    assert_eq!(g.inputs.len(), 1);
    let inp = &g.g[g.inputs[0]].outputs[0];
    assert_eq!(inp.ty.dtype, DType::I64);
    assert_eq!(
        inp.ty.shape.as_ref().unwrap(),
        &vec![Dim::sym("batch"), Dim::sym("S")]
    );
    let lt = g.value_type(g.outputs[0].value).unwrap();
    assert_eq!(g.outputs[0].name, "logits");
    assert_eq!(
        lt.shape.as_ref().unwrap(),
        &vec![Dim::sym("batch"), Dim::sym("S"), Dim::Known(128)]
    );
}

#[test]
fn node_names_are_unique() {
    let mut cfgs = vec![
        Config::afm_ondevice_2025(),
        Config::mixtral_tiny(),
        Config::llama_tiny(),
    ];
    cfgs.push(Config {
        kv_sharing: false,
        ..tiny_afm()
    });
    for cfg in &cfgs {
        for phase in [Phase::Prefill, Phase::Decode] {
            let g = decoder::build(cfg, &opts(phase)).unwrap();
            let mut seen = std::collections::HashSet::new();
            for n in g.g.node_indices() {
                let name = &g.g[n].provenance.onnx_name;
                if !name.is_empty() {
                    assert!(seen.insert(name.clone()), "duplicate node name {name}");
                }
            }
        }
    }
}
