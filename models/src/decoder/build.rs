//! Graph construction for [`Config`]: one builder for every decoder preset and both phases.
//!
//! Layout: `input_ids` -> Gather (`/embed`) -> layers (`/layers.N/...`) -> RMSNorm (`/norm`) ->
//! MatMul (`/lm_head`, with the transposed embedding when tied) -> `logits`. Per layer:
//! `attn_norm`, `attn/{q,k,v}_proj` (MatMul), `attn/{q,k,v}_heads` (Reshape + Transpose to
//! `(B, H, S, D)`, RotaryEmbedding for q and k), `attn/{q,k}_norm`, Attention (opset 23, GQA),
//! `attn/merge_heads` (Transpose + Reshape), `attn/o_proj`, residual Add; `ffn_norm`, `ffn/{gate,up,down}_proj` with SiLU as
//! Sigmoid + Mul (or `ffn/router` + `ffn/experts.E/...` with MoE), residual Add.
//!
//! RoPE tables are computed in the graph (`/rope`) from the absolute positions
//! `past_len .. past_len + S`, so the only constants besides the weights are a few shape
//! vectors, scalars and the `head_dim / 2` inverse frequencies.

use super::config::{kv_cache_values_per_token, Config};
use crate::{BuildOptions, ModelError, Phase};
use petasos_ir::builder::GraphBuilder;
use petasos_ir::op::Attr;
use petasos_ir::{DType, Dim, Graph, Tensor, ValueRef, ValueType};

type R<T> = Result<T, ModelError>;

/// Builds the decoder graph for `opts.phase` (validating `cfg` first).
///
/// Prefill: `input_ids` int64 `[batch, S]`; outputs `logits` `[batch, S, vocab]` and, per
/// K/V-owning layer N, `present_key.N` / `present_value.N` `[batch, kv_heads, S, head_dim]`.
/// Decode: `input_ids` `[batch, 1]` plus `past_key.N` / `past_value.N`
/// `[batch, kv_heads, T, head_dim]`; presents have `T + 1` positions.
pub fn build(cfg: &Config, opts: &BuildOptions) -> R<Graph> {
    cfg.validate()?;
    let mut d = Dec::new(cfg, opts);
    d.graph()?;
    Ok(d.b.finish()?)
}

/// Constants shared by all layers.
struct Shared {
    cos: ValueRef,
    sin: ValueRef,
    pos_ids: ValueRef,
    q_heads_shape: ValueRef,
    kv_heads_shape: ValueRef,
    merge_shape: ValueRef,
    neg_inf: Option<ValueRef>,
    top_k: Option<ValueRef>,
    last_axis: Option<ValueRef>,
}

struct Dec<'a> {
    cfg: &'a Config,
    phase: Phase,
    b: GraphBuilder,
}

fn i(v: i64) -> Attr {
    Attr::Int(v)
}

impl<'a> Dec<'a> {
    fn new(cfg: &'a Config, opts: &BuildOptions) -> Dec<'a> {
        Dec {
            cfg,
            phase: opts.phase,
            b: GraphBuilder::new("decoder", opts.seed),
        }
    }

    fn op(&mut self, op: &str, ins: &[ValueRef], attrs: &[(&str, Attr)]) -> R<ValueRef> {
        Ok(self.b.op(op, ins, attrs)?)
    }

    /// A MatMul projection `x @ W` with `W: [inp, out]` under scope `name`.
    fn linear(&mut self, name: &str, x: ValueRef, inp: usize, out: usize) -> R<ValueRef> {
        self.b.push(name);
        let scale = 1.0 / (inp as f32).sqrt();
        let w = self.b.weight("weight", DType::F32, &[inp, out], scale);
        let y = self.op("MatMul", &[x, w], &[]);
        self.b.pop();
        y
    }

    /// RMSNormalization over the last axis with a learned scale of `n` under scope `name`.
    fn rms_norm(&mut self, name: &str, x: ValueRef, n: usize) -> R<ValueRef> {
        self.b.push(name);
        let w = self.b.weight("weight", DType::F32, &[n], 1.0);
        let eps = Attr::Float(self.cfg.norm_eps);
        let y = self.op(
            "RMSNormalization",
            &[x, w],
            &[("axis", i(-1)), ("epsilon", eps)],
        );
        self.b.pop();
        y
    }

    fn graph(&mut self) -> R<()> {
        let cfg = self.cfg;
        let (hd, nkv) = (cfg.head_dim(), cfg.kv_heads);
        let batch = Dim::sym("batch");
        let s = match self.phase {
            Phase::Prefill => Dim::sym("S"),
            Phase::Decode => Dim::Known(1),
        };
        let ids = self.b.input(
            "input_ids",
            ValueType::new(DType::I64, vec![batch.clone(), s]),
        );
        let mut past = Vec::new();
        if self.phase == Phase::Decode {
            for l in cfg.kv_layers() {
                let ty = ValueType::new(
                    DType::F32,
                    vec![
                        batch.clone(),
                        Dim::Known(nkv as u64),
                        Dim::sym("T"),
                        Dim::Known(hd as u64),
                    ],
                );
                let k = self.b.input(&format!("past_key.{l}"), ty.clone());
                let v = self.b.input(&format!("past_value.{l}"), ty);
                past.push((l, k, v));
            }
        }

        self.b.push("embed");
        let emb = self
            .b
            .weight("weight", DType::F32, &[cfg.vocab, cfg.d_model], 1.0);
        let mut x = self.op("Gather", &[emb, ids], &[("axis", i(0))])?;
        self.b.pop();

        let sh = self.shared(ids, past.first().map(|p| p.1))?;

        // (K, V) of every layer that owns them: what shared layers attend over.
        let mut kv: Vec<Option<(ValueRef, ValueRef)>> = vec![None; cfg.layers];
        let mut presents = Vec::new();
        for l in 0..cfg.layers {
            self.b.push(&format!("layers.{l}"));
            let p = past.iter().find(|p| p.0 == l).map(|p| (p.1, p.2));
            let (y, pres) = self.layer(l, x, &sh, p, &kv)?;
            if let Some(pk) = pres {
                kv[l] = Some(pk);
                presents.push((l, pk));
            }
            x = y;
            self.b.pop();
        }

        let h = self.rms_norm("norm", x, cfg.d_model)?;
        self.b.push("lm_head");
        let logits = if cfg.tie_embeddings {
            let wt = self.op("Transpose", &[emb], &[("perm", Attr::Ints(vec![1, 0]))])?;
            self.op("MatMul", &[h, wt], &[])?
        } else {
            let w = self.b.weight(
                "weight",
                DType::F32,
                &[cfg.d_model, cfg.vocab],
                1.0 / (cfg.d_model as f32).sqrt(),
            );
            self.op("MatMul", &[h, w], &[])?
        };
        self.b.pop();
        self.b.output(logits, "logits");
        for (l, (k, v)) in presents {
            self.b.output(k, &format!("present_key.{l}"));
            self.b.output(v, &format!("present_value.{l}"));
        }

        let meta = [
            ("family", "decoder".to_string()),
            (
                "phase",
                match self.phase {
                    Phase::Prefill => "prefill",
                    Phase::Decode => "decode",
                }
                .to_string(),
            ),
            (
                "kv_cache_values_per_token",
                kv_cache_values_per_token(cfg).to_string(),
            ),
            ("learned_parameters", cfg.parameter_count().to_string()),
            ("block1_layers", cfg.block1_layers().to_string()),
            ("block2_layers", cfg.block2_layers.to_string()),
            ("kv_sharing", cfg.kv_sharing.to_string()),
            ("kv_source_layer", (cfg.block1_layers() - 1).to_string()),
            (
                "config",
                serde_json::to_string(cfg).map_err(|e| ModelError::Config(e.to_string()))?,
            ),
        ];
        for (k, v) in meta {
            self.b.metadata(k, &v);
        }
        Ok(())
    }

    /// RoPE tables and position ids (`/rope`), reshape targets and MoE constants.
    fn shared(&mut self, ids: ValueRef, past_key: Option<ValueRef>) -> R<Shared> {
        let cfg = self.cfg;
        let (hd, half) = (cfg.head_dim(), cfg.head_dim() / 2);
        self.b.push("rope");
        let zero = self.b.scalar("zero", DType::I64, 0.0);
        let one = self.b.scalar("one", DType::I64, 1.0);
        // past_len: 0 in prefill, T (from the first cache input) in decode.
        let start = match past_key {
            Some(pk) => {
                self.b.push("past_len");
                let t = self.op("Shape", &[pk], &[("start", i(2)), ("end", i(3))])?;
                let t = self.op("Squeeze", &[t], &[])?;
                self.b.pop();
                t
            }
            None => zero,
        };
        self.b.push("seq_len");
        let sl = self.op("Shape", &[ids], &[("start", i(1)), ("end", i(2))])?;
        let sl = self.op("Squeeze", &[sl], &[])?;
        self.b.pop();
        // Absolute positions of the new tokens, [batch, S].
        self.b.push("positions");
        let end = self.op("Add", &[start, sl], &[])?;
        let new_pos = self.op("Range", &[start, end, one], &[])?;
        let ids_shape = self.op("Shape", &[ids], &[])?;
        let pos_ids = self.op("Expand", &[new_pos, ids_shape], &[])?;
        self.b.pop();
        // Tables over positions 0 .. past_len + S: angle[p, j] = p * theta^(-2j / head_dim).
        self.b.push("table");
        let all = self.op("Range", &[zero, end, one], &[])?;
        let all = self.op("Cast", &[all], &[("to", i(1))])?;
        let axis1 = self.b.ints("axis1", &[1])?;
        let all = self.op("Unsqueeze", &[all, axis1], &[])?;
        let inv: Vec<f32> = (0..half)
            .map(|j| (f64::from(cfg.rope_theta).powf(-2.0 * j as f64 / hd as f64)) as f32)
            .collect();
        let inv = self.b.constant("inv_freq", Tensor::from_f32(&[half], inv)?);
        let ang = self.op("Mul", &[all, inv], &[])?;
        let cos = self.op("Cos", &[ang], &[])?;
        let sin = self.op("Sin", &[ang], &[])?;
        self.b.pop();
        self.b.pop();

        let q_heads_shape = self
            .b
            .ints("q_heads_shape", &[0, 0, cfg.heads as i64, hd as i64])?;
        let kv_heads_shape = self
            .b
            .ints("kv_heads_shape", &[0, 0, cfg.kv_heads as i64, hd as i64])?;
        let merge_shape = self.b.ints("merge_shape", &[0, 0, -1])?;
        let (mut neg_inf, mut top_k, mut last_axis) = (None, None, None);
        if let Some(m) = &cfg.moe {
            neg_inf = Some(self.b.scalar("neg_inf", DType::F32, f64::NEG_INFINITY));
            top_k = Some(self.b.ints("top_k", &[m.top_k as i64])?);
            last_axis = Some(self.b.ints("last_axis", &[-1])?);
        }
        Ok(Shared {
            cos,
            sin,
            pos_ids,
            q_heads_shape,
            kv_heads_shape,
            merge_shape,
            neg_inf,
            top_k,
            last_axis,
        })
    }

    /// `[B, S, H*D]` -> `[B, H, S, D]` under scope `name`, with RoPE when `rope`.
    fn split_heads(
        &mut self,
        name: &str,
        x: ValueRef,
        shape: ValueRef,
        rope: Option<&Shared>,
    ) -> R<ValueRef> {
        self.b.push(name);
        let x = self.op("Reshape", &[x, shape], &[])?;
        let mut x = self.op("Transpose", &[x], &[("perm", Attr::Ints(vec![0, 2, 1, 3]))])?;
        if let Some(sh) = rope {
            x = self.op("RotaryEmbedding", &[x, sh.cos, sh.sin, sh.pos_ids], &[])?;
        }
        self.b.pop();
        Ok(x)
    }

    /// The per-head RMSNorm `name` (after RoPE), when the config has q/k norms.
    fn qk_norm(&mut self, x: ValueRef, name: &str) -> R<ValueRef> {
        if self.cfg.qk_norm {
            self.rms_norm(name, x, self.cfg.head_dim())
        } else {
            Ok(x)
        }
    }

    /// One layer under the current `/layers.N` scope: the output and, for a K/V-owning layer,
    /// its present (K, V).
    #[allow(clippy::type_complexity)]
    fn layer(
        &mut self,
        l: usize,
        x: ValueRef,
        sh: &Shared,
        past: Option<(ValueRef, ValueRef)>,
        kv: &[Option<(ValueRef, ValueRef)>],
    ) -> R<(ValueRef, Option<(ValueRef, ValueRef)>)> {
        let cfg = self.cfg;
        let (d, hd) = (cfg.d_model, cfg.head_dim());
        let h = self.rms_norm("attn_norm", x, d)?;
        self.b.push("attn");
        let q = self.linear("q_proj", h, d, cfg.heads * hd)?;
        let q = self.split_heads("q_heads", q, sh.q_heads_shape, Some(sh))?;
        let q = self.qk_norm(q, "q_norm")?;
        let own = cfg.owns_kv(l);
        let (k, v) = if own {
            let k = self.linear("k_proj", h, d, cfg.kv_heads * hd)?;
            let v = self.linear("v_proj", h, d, cfg.kv_heads * hd)?;
            let k = self.split_heads("k_heads", k, sh.kv_heads_shape, Some(sh))?;
            let k = self.qk_norm(k, "k_norm")?;
            let v = self.split_heads("v_heads", v, sh.kv_heads_shape, None)?;
            (k, v)
        } else {
            kv[cfg.kv_source(l)].ok_or_else(|| {
                ModelError::Config(format!("layer {l}: its K/V source layer has no K/V"))
            })?
        };
        let causal = i64::from(self.phase == Phase::Prefill);
        let attrs = [
            ("is_causal", i(causal)),
            ("q_num_heads", i(cfg.heads as i64)),
            ("kv_num_heads", i(cfg.kv_heads as i64)),
        ];
        let (pk, pv) = match past {
            Some((a, b)) => (Some(a), Some(b)),
            None => (None, None),
        };
        let outs = self.b.node(
            "",
            "Attention",
            &[Some(q), Some(k), Some(v), None, pk, pv],
            &attrs,
            3,
        )?;
        self.b.push("merge_heads");
        let y = self.op(
            "Transpose",
            &[outs[0]],
            &[("perm", Attr::Ints(vec![0, 2, 1, 3]))],
        )?;
        let y = self.op("Reshape", &[y, sh.merge_shape], &[])?;
        self.b.pop();
        let y = self.linear("o_proj", y, cfg.heads * hd, d)?;
        self.b.pop();
        let x = self.residual("attn_residual", x, y)?;

        let h = self.rms_norm("ffn_norm", x, d)?;
        self.b.push("ffn");
        let y = match &cfg.moe {
            None => self.swiglu(h)?,
            Some(m) => self.moe(h, m.experts, sh)?,
        };
        self.b.pop();
        let x = self.residual("ffn_residual", x, y)?;
        Ok((x, own.then_some((outs[1], outs[2]))))
    }

    /// `x + y` under scope `name`.
    fn residual(&mut self, name: &str, x: ValueRef, y: ValueRef) -> R<ValueRef> {
        self.b.push(name);
        let r = self.op("Add", &[x, y], &[]);
        self.b.pop();
        r
    }

    /// SwiGLU under the current scope: `down(silu(gate(x)) * up(x))`, SiLU as Sigmoid + Mul.
    fn swiglu(&mut self, x: ValueRef) -> R<ValueRef> {
        let (d, f) = (self.cfg.d_model, self.cfg.ffn_hidden);
        let g = self.linear("gate_proj", x, d, f)?;
        self.b.push("act");
        let sg = self.op("Sigmoid", &[g], &[])?;
        let g = self.op("Mul", &[g, sg], &[])?;
        self.b.pop();
        let u = self.linear("up_proj", x, d, f)?;
        let h = self.op("Mul", &[g, u], &[])?;
        self.linear("down_proj", h, f, d)
    }

    /// Mixture of experts: router logits -> TopK -> softmax over the chosen logits (others
    /// masked to -inf) -> one gate per expert (Split) -> sum of gated expert SwiGLUs.
    fn moe(&mut self, x: ValueRef, experts: usize, sh: &Shared) -> R<ValueRef> {
        let (Some(neg_inf), Some(top_k), Some(last_axis)) = (sh.neg_inf, sh.top_k, sh.last_axis)
        else {
            return Err(ModelError::Config("moe constants missing".into()));
        };
        let logits = self.linear("router", x, self.cfg.d_model, experts)?;
        self.b.push("router");
        let tk = self.b.node(
            "",
            "TopK",
            &[Some(logits), Some(top_k)],
            &[("axis", i(-1))],
            2,
        )?;
        let kth = self.op("ReduceMin", &[tk[0], last_axis], &[("keepdims", i(1))])?;
        let keep = self.op("GreaterOrEqual", &[logits, kth], &[])?;
        let masked = self.op("Where", &[keep, logits, neg_inf], &[])?;
        let gates = self.op("Softmax", &[masked], &[("axis", i(-1))])?;
        let gates = if experts == 1 {
            vec![gates]
        } else {
            self.b.node(
                "",
                "Split",
                &[Some(gates)],
                &[("axis", i(-1)), ("num_outputs", i(experts as i64))],
                experts,
            )?
        };
        self.b.pop();
        let mut parts = Vec::with_capacity(experts);
        for (e, g) in gates.into_iter().enumerate() {
            self.b.push(&format!("experts.{e}"));
            let y = self.swiglu(x)?;
            self.b.push("gate");
            parts.push(self.op("Mul", &[y, g], &[])?);
            self.b.pop();
            self.b.pop();
        }
        if parts.len() == 1 {
            Ok(parts[0])
        } else {
            self.op("Sum", &parts, &[])
        }
    }
}
