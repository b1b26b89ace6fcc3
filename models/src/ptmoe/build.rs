//! The PT-MoE graph.
//!
//! Layout (shapes for one track; `B` batch, `S` new tokens, `T` cached positions):
//!
//! ```text
//! input_ids [B,S] -> Gather(embedding) -> h [B,S,d]
//! for each block:   x_t = h for every track t
//!                   x_t = layer(x_t) for the block's layers, in every track
//!                   h = Sum(x_0..x_n) * (1 / tracks)          (track sync: mean over tracks)
//! RMSNorm -> MatMul(embedding^T) -> logits [B,S,vocab]
//! layer:  x += o_proj(Attention(RoPE?(qnorm(q)), RoPE?(knorm(k)), v, mask?, past_k, past_v))
//!         x += FFN(RMSNorm(x))        (dense SwiGLU or mixture of experts)
//! ```
//!
//! Local layers rotate q and k (`RotaryEmbedding`, cos/sin computed in the graph from the
//! positions `T..T+S`, so no position-table constant) and pass a boolean `attn_mask`
//! `[S, T+S]` that is true where `query_pos - key_pos < sliding_window`; `is_causal` removes the
//! future. Global layers use `is_causal` alone and no positional encoding (NoPE). Every layer
//! keeps a full K/V cache (`present_*` = past plus the new positions); the window is enforced by
//! the mask, not by trimming the cache.

use super::config::{active_parameters_per_token, Config};
use crate::config::{BuildOptions, ModelError, Phase};
use petasos_ir::builder::GraphBuilder;
use petasos_ir::op::Attr;
use petasos_ir::{DType, Dim, Graph, Tensor, ValueRef, ValueType};

type R<T> = Result<T, ModelError>;

/// Constants and values every layer shares (built once, so the graph grows linearly).
struct Shared {
    /// `[0, 0, heads, head_dim]` and `[0, 0, kv_heads, head_dim]` for Reshape.
    q_split: ValueRef,
    kv_split: ValueRef,
    /// `[0, 0, heads * head_dim]`.
    merge: ValueRef,
    /// Sliding-window mask `[S, T+S]` (bool), when some layer is local.
    window_mask: Option<ValueRef>,
    /// RoPE caches `[B, S, head_dim/2]`, when some layer is local.
    cos: Option<ValueRef>,
    sin: Option<ValueRef>,
    /// Unsqueeze/ReduceSum axes.
    axis1: ValueRef,
    axis3: ValueRef,
    /// TopK's `K`.
    top_k: ValueRef,
    /// The router soft-cap (scalar), when enabled.
    cap: Option<ValueRef>,
}

/// Builds the graph of `c` for `opts.phase`.
pub fn build(c: &Config, opts: &BuildOptions) -> R<Graph> {
    c.validate()?;
    let mut b = GraphBuilder::new("afm-server-ptmoe", opts.seed);
    let batch = Dim::sym("batch");
    let (seq, past_len) = match opts.phase {
        Phase::Prefill => (Dim::sym("S"), None),
        Phase::Decode => (Dim::Known(1), Some(Dim::sym("T"))),
    };
    let ids = b.input(
        "input_ids",
        ValueType::new(DType::I64, vec![batch.clone(), seq]),
    );
    // past_key_values.{track}.{layer}.{key,value}: [B, kv_heads, T, head_dim].
    let mut past: Vec<(ValueRef, ValueRef)> = Vec::new();
    if let Some(t) = &past_len {
        let ty = ValueType::new(
            DType::F32,
            vec![
                batch.clone(),
                Dim::Known(c.kv_heads as u64),
                t.clone(),
                Dim::Known(c.head_dim as u64),
            ],
        );
        for tr in 0..c.tracks {
            for l in 0..c.layers {
                let k = b.input(&format!("past_key_values.{tr}.{l}.key"), ty.clone());
                let v = b.input(&format!("past_key_values.{tr}.{l}.value"), ty.clone());
                past.push((k, v));
            }
        }
    }
    let sh = shared(&mut b, c, ids, past.first().map(|p| p.0))?;

    let d = c.d_model;
    let embed = b.weight("embed_tokens.weight", DType::F32, &[c.vocab_size, d], 0.5);
    let mut h = b.op("Gather", &[embed, ids], &[("axis", Attr::Int(0))])?;

    let inv_tracks = b.scalar("inv_tracks", DType::F32, 1.0 / c.tracks as f64);
    let mut presents: Vec<Option<(ValueRef, ValueRef)>> = vec![None; c.tracks * c.layers];
    for blk in 0..c.layers / c.block_depth {
        b.push(&format!("blocks.{blk}"));
        let mut outs = Vec::with_capacity(c.tracks);
        for tr in 0..c.tracks {
            b.push(&format!("tracks.{tr}"));
            let mut x = h;
            for l in blk * c.block_depth..(blk + 1) * c.block_depth {
                b.push(&format!("layers.{l}"));
                let cache = past.get(tr * c.layers + l).copied();
                let (y, pk, pv) = layer(&mut b, c, &sh, x, l, cache)?;
                presents[tr * c.layers + l] = Some((pk, pv));
                x = y;
                b.pop();
            }
            outs.push(x);
            b.pop();
        }
        h = if c.tracks == 1 {
            outs[0]
        } else {
            b.push("sync");
            let s = b.op("Sum", &outs, &[])?;
            let m = b.op("Mul", &[s, inv_tracks], &[])?;
            b.pop();
            m
        };
        b.pop();
    }

    b.push("norm");
    let w = b.weight("weight", DType::F32, &[d], 1.0);
    let hn = rms(&mut b, c, h, w)?;
    b.pop();
    b.push("lm_head");
    let head = if c.tie_embeddings {
        b.op("Transpose", &[embed], &[("perm", Attr::Ints(vec![1, 0]))])?
    } else {
        let s = 1.0 / (d as f32).sqrt();
        b.weight("weight", DType::F32, &[d, c.vocab_size], s)
    };
    let logits = b.op("MatMul", &[hn, head], &[])?;
    b.pop();

    b.output(logits, "logits");
    for (i, p) in presents.into_iter().enumerate() {
        let (k, v) = p.expect("every track layer is built");
        let (tr, l) = (i / c.layers, i % c.layers);
        b.output(k, &format!("present.{tr}.{l}.key"));
        b.output(v, &format!("present.{tr}.{l}.value"));
    }
    b.metadata("family", "ptmoe");
    b.metadata(
        "phase",
        match opts.phase {
            Phase::Prefill => "prefill",
            Phase::Decode => "decode",
        },
    );
    b.metadata("learned_parameters", &c.weight_parameters().to_string());
    b.metadata(
        "active_parameters_per_token",
        &active_parameters_per_token(c).to_string(),
    );
    let mut g = b.finish()?;
    let total = super::total_parameters(&g);
    g.metadata
        .insert("total_parameters".into(), total.to_string());
    Ok(g)
}

/// Shared shape constants, the sliding-window mask and the RoPE caches.
fn shared(
    b: &mut GraphBuilder,
    c: &Config,
    ids: ValueRef,
    past_key: Option<ValueRef>,
) -> R<Shared> {
    let (h, kv, hd) = (c.heads as i64, c.kv_heads as i64, c.head_dim as i64);
    let q_split = b.ints("q_split_shape", &[0, 0, h, hd])?;
    let kv_split = if kv == h {
        q_split
    } else {
        b.ints("kv_split_shape", &[0, 0, kv, hd])?
    };
    let merge = b.ints("merge_shape", &[0, 0, h * hd])?;
    let axis1 = b.ints("axis1", &[1])?;
    let axis3 = b.ints("axis3", &[3])?;
    let top_k = b.ints("top_k", &[c.top_k as i64])?;
    let cap = (c.router_softcap > 0.0)
        .then(|| b.scalar("router_softcap", DType::F32, f64::from(c.router_softcap)));
    let mut s = Shared {
        q_split,
        kv_split,
        merge,
        window_mask: None,
        cos: None,
        sin: None,
        axis1,
        axis3,
        top_k,
        cap,
    };
    if (0..c.layers).all(|i| c.is_global(i)) {
        return Ok(s);
    }
    b.push("positions");
    // Scalars S (new tokens) and P (cached positions; 0 in prefill).
    let one_ix = b.scalar("one", DType::I64, 1.0);
    let zero = b.scalar("zero", DType::I64, 0.0);
    let ids_shape = b.op("Shape", &[ids], &[])?;
    let n_new = b.op("Gather", &[ids_shape, one_ix], &[("axis", Attr::Int(0))])?;
    let n_past = match past_key {
        Some(pk) => {
            let two = b.scalar("two", DType::I64, 2.0);
            let ps = b.op("Shape", &[pk], &[])?;
            b.op("Gather", &[ps, two], &[("axis", Attr::Int(0))])?
        }
        None => zero,
    };
    let total = b.op("Add", &[n_past, n_new], &[])?;
    // Query positions P..P+S and key positions 0..P+S.
    let q_pos = b.op("Range", &[n_past, total, one_ix], &[])?;
    let k_pos = b.op("Range", &[zero, total, one_ix], &[])?;
    let ax0 = b.ints("axis0", &[0])?;
    let qc = b.op("Unsqueeze", &[q_pos, axis1], &[])?;
    let kr = b.op("Unsqueeze", &[k_pos, ax0], &[])?;
    // Local attention sees keys with 0 <= q - k < window; is_causal enforces the lower bound.
    let dist = b.op("Sub", &[qc, kr], &[])?;
    let w = b.scalar("sliding_window", DType::I64, c.sliding_window as f64);
    s.window_mask = Some(b.op("Less", &[dist, w], &[])?);

    // cos/sin of pos * theta^(-2i/head_dim), broadcast to [B, S, head_dim/2].
    let half = c.head_dim / 2;
    let inv: Vec<f32> = (0..half)
        .map(|i| c.rope_theta.powf(-2.0 * i as f64 / c.head_dim as f64) as f32)
        .collect();
    let inv = b.constant("inv_freq", Tensor::from_f32(&[half], inv)?);
    let qf = b.op("Cast", &[qc], &[("to", Attr::Int(1))])?;
    let ang = b.op("Mul", &[qf, inv], &[])?;
    let half_c = b.ints("half", &[half as i64])?;
    let shape = b.op("Concat", &[ids_shape, half_c], &[("axis", Attr::Int(0))])?;
    let cos = b.op("Cos", &[ang], &[])?;
    let sin = b.op("Sin", &[ang], &[])?;
    s.cos = Some(b.op("Expand", &[cos, shape], &[])?);
    s.sin = Some(b.op("Expand", &[sin, shape], &[])?);
    b.pop();
    Ok(s)
}

fn rms(b: &mut GraphBuilder, c: &Config, x: ValueRef, w: ValueRef) -> R<ValueRef> {
    Ok(b.op(
        "RMSNormalization",
        &[x, w],
        &[("axis", Attr::Int(-1)), ("epsilon", Attr::Float(c.rms_eps))],
    )?)
}

fn linear(b: &mut GraphBuilder, name: &str, x: ValueRef, din: usize, dout: usize) -> R<ValueRef> {
    b.push(name);
    let w = b.weight(
        "weight",
        DType::F32,
        &[din, dout],
        1.0 / (din as f32).sqrt(),
    );
    let y = b.op("MatMul", &[x, w], &[])?;
    b.pop();
    Ok(y)
}

/// `[B,S,n*hd]` -> `[B,n,S,hd]`.
fn split_heads(b: &mut GraphBuilder, x: ValueRef, shape: ValueRef) -> R<ValueRef> {
    let r = b.op("Reshape", &[x, shape], &[])?;
    Ok(b.op("Transpose", &[r], &[("perm", Attr::Ints(vec![0, 2, 1, 3]))])?)
}

/// One track layer: returns the new hidden state and the layer's present key and value.
fn layer(
    b: &mut GraphBuilder,
    c: &Config,
    sh: &Shared,
    x: ValueRef,
    l: usize,
    cache: Option<(ValueRef, ValueRef)>,
) -> R<(ValueRef, ValueRef, ValueRef)> {
    let d = c.d_model;
    let global = c.is_global(l);
    b.push("attn");
    b.push("norm");
    let w = b.weight("weight", DType::F32, &[d], 1.0);
    let xn = rms(b, c, x, w)?;
    b.pop();
    let q = linear(b, "q_proj", xn, d, c.heads * c.head_dim)?;
    let k = linear(b, "k_proj", xn, d, c.kv_heads * c.head_dim)?;
    let v = linear(b, "v_proj", xn, d, c.kv_heads * c.head_dim)?;
    let q = split_heads(b, q, sh.q_split)?;
    let k = split_heads(b, k, sh.kv_split)?;
    let v = split_heads(b, v, sh.kv_split)?;
    b.push("q_norm");
    let w = b.weight("weight", DType::F32, &[c.head_dim], 1.0);
    let mut q = rms(b, c, q, w)?;
    b.pop();
    b.push("k_norm");
    let w = b.weight("weight", DType::F32, &[c.head_dim], 1.0);
    let mut k = rms(b, c, k, w)?;
    b.pop();
    let mut mask = None;
    if !global {
        let (cos, sin) = (sh.cos.expect("local rope"), sh.sin.expect("local rope"));
        b.push("rope");
        q = b.op("RotaryEmbedding", &[q, cos, sin], &[])?;
        k = b.op("RotaryEmbedding", &[k, cos, sin], &[])?;
        b.pop();
        mask = sh.window_mask;
    }
    let (pk, pv) = match cache {
        Some((pk, pv)) => (Some(pk), Some(pv)),
        None => (None, None),
    };
    let outs = b.node(
        "",
        "Attention",
        &[Some(q), Some(k), Some(v), mask, pk, pv],
        &[("is_causal", Attr::Int(1))],
        3,
    )?;
    let y = b.op(
        "Transpose",
        &[outs[0]],
        &[("perm", Attr::Ints(vec![0, 2, 1, 3]))],
    )?;
    let y = b.op("Reshape", &[y, sh.merge], &[])?;
    let y = linear(b, "o_proj", y, c.heads * c.head_dim, d)?;
    let x = b.op("Add", &[x, y], &[])?;
    b.pop();

    let ffn_name = if c.is_moe(l) { "moe" } else { "mlp" };
    b.push(ffn_name);
    b.push("norm");
    let w = b.weight("weight", DType::F32, &[d], 1.0);
    let xn = rms(b, c, x, w)?;
    b.pop();
    let y = if c.is_moe(l) {
        moe(b, c, sh, xn)?
    } else {
        swiglu_dense(b, c, xn)?
    };
    let x = b.op("Add", &[x, y], &[])?;
    b.pop();
    Ok((x, outs[1], outs[2]))
}

/// `down(silu(gate(x)) * up(x))` as MatMul + Sigmoid + Mul + Mul + MatMul.
fn swiglu_dense(b: &mut GraphBuilder, c: &Config, x: ValueRef) -> R<ValueRef> {
    let (d, hdn) = (c.d_model, c.dense_hidden);
    let g = linear(b, "gate_proj", x, d, hdn)?;
    let u = linear(b, "up_proj", x, d, hdn)?;
    let a = silu_mul(b, g, u)?;
    linear(b, "down_proj", a, hdn, d)
}

fn silu_mul(b: &mut GraphBuilder, g: ValueRef, u: ValueRef) -> R<ValueRef> {
    let s = b.op("Sigmoid", &[g], &[])?;
    let silu = b.op("Mul", &[g, s], &[])?;
    Ok(b.op("Mul", &[silu, u], &[])?)
}

/// Mixture of experts, **reference form**: the router picks `top_k` experts per token
/// (`MatMul` -> soft-cap `cap * tanh(logits / cap)` -> `TopK` -> `Softmax` over the top-k, which
/// equals a softmax over all experts renormalised over the chosen ones), the gate weights are
/// scattered (`ScatterElements`) into a dense `[B,S,experts]` tensor that is zero for unchosen
/// experts, and **every expert is computed densely** on every token (`[B,E,S,*]` batched
/// MatMuls with stacked expert weights `[E,in,out]`) and combined by that gate tensor
/// (`Mul` + `ReduceSum` over experts). This is exact in the interpreter but does `experts /
/// top_k` times the active work; a later MoE-fusion pass rewrites it into routed computation.
fn moe(b: &mut GraphBuilder, c: &Config, sh: &Shared, x: ValueRef) -> R<ValueRef> {
    let (d, e, hdn) = (c.d_model, c.experts, c.expert_hidden);
    b.push("router");
    let w = b.weight("weight", DType::F32, &[d, e], 1.0 / (d as f32).sqrt());
    let mut logits = b.op("MatMul", &[x, w], &[])?;
    if let Some(cap) = sh.cap {
        let z = b.op("Div", &[logits, cap], &[])?;
        let t = b.op("Tanh", &[z], &[])?;
        logits = b.op("Mul", &[t, cap], &[])?;
    }
    let tk = b.node(
        "",
        "TopK",
        &[Some(logits), Some(sh.top_k)],
        &[("axis", Attr::Int(-1))],
        2,
    )?;
    let weights = b.op("Softmax", &[tk[0]], &[("axis", Attr::Int(-1))])?;
    let shape = b.op("Shape", &[logits], &[])?;
    let zeros = b.op("ConstantOfShape", &[shape], &[])?;
    let gates = b.op(
        "ScatterElements",
        &[zeros, tk[1], weights],
        &[("axis", Attr::Int(-1))],
    )?;
    b.pop();
    b.push("experts");
    let scale = |n: usize| 1.0 / (n as f32).sqrt();
    let wg = b.weight("gate_proj.weight", DType::F32, &[e, d, hdn], scale(d));
    let wu = b.weight("up_proj.weight", DType::F32, &[e, d, hdn], scale(d));
    let wd = b.weight("down_proj.weight", DType::F32, &[e, hdn, d], scale(hdn));
    // [B,1,S,d] against [E,d,h] -> [B,E,S,h].
    let xe = b.op("Unsqueeze", &[x, sh.axis1], &[])?;
    let g = b.op("MatMul", &[xe, wg], &[])?;
    let u = b.op("MatMul", &[xe, wu], &[])?;
    let a = silu_mul(b, g, u)?;
    let y = b.op("MatMul", &[a, wd], &[])?;
    b.pop();
    b.push("combine");
    let gt = b.op(
        "Transpose",
        &[gates],
        &[("perm", Attr::Ints(vec![0, 2, 1]))],
    )?;
    let gt = b.op("Unsqueeze", &[gt, sh.axis3], &[])?;
    let wy = b.op("Mul", &[y, gt], &[])?;
    let out = b.op("ReduceSum", &[wy, sh.axis1], &[("keepdims", Attr::Int(0))])?;
    b.pop();
    Ok(out)
}
