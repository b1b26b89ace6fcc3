//! Vision Transformer with torchvision's names (`vit_b_16`), optionally with Mobile V-MoE
//! image-level routing (`mobile-vmoe`).
//!
//! `conv_proj` (patch embedding), `class_token`, `encoder.pos_embedding`,
//! `encoder.layers.encoder_layer_{i}` (`ln_1`, `self_attention` with `in_proj_weight`,
//! `in_proj_bias`, `out_proj`; `ln_2`, `mlp.0`, GELU, `mlp.3`), `encoder.ln`, the class token's
//! output into `heads.head`.
//!
//! With `moe_layers > 0` the last `moe_layers` blocks replace their MLP by `num_experts` expert
//! MLPs. One router per image, `encoder.router` (a linear layer over the class token as it
//! leaves the dense blocks, softmax over experts, top-`top_k`), picks the experts that every MoE
//! block then uses for all of that image's tokens; each MoE block's output is the gate-weighted
//! sum of the chosen experts (gates: the top-k softmax probabilities). Experts are stacked:
//! `moe.experts.fc1.weight` `[E, dim, mlp]`, `fc1.bias` `[E, 1, mlp]`, `fc2.weight`
//! `[E, mlp, dim]`, `fc2.bias` `[E, 1, dim]`; the chosen ones are gathered per image, so only
//! `top_k` experts are computed.

use crate::cnn::common::{check_image, Net, R};
use crate::config::ensure;
use crate::BuildOptions;
use petasos_ir::op::Attr;
use petasos_ir::{DType, Graph, ValueRef};
use serde::{Deserialize, Serialize};

/// A ViT, dense or with image-level-routed MoE blocks at the end.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ViTConfig {
    pub image_size: usize,
    pub patch_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub hidden_dim: usize,
    pub mlp_dim: usize,
    pub num_classes: usize,
    pub in_channels: usize,
    pub ln_eps: f32,
    /// How many of the last blocks are MoE blocks (0: dense ViT).
    pub moe_layers: usize,
    /// Experts per MoE block (E).
    pub num_experts: usize,
    /// Experts chosen per image (k).
    pub top_k: usize,
}

impl ViTConfig {
    /// torchvision `vit_b_16` (86,567,656 parameters).
    pub fn vit_b_16() -> Self {
        ViTConfig {
            image_size: 224,
            patch_size: 16,
            num_layers: 12,
            num_heads: 12,
            hidden_dim: 768,
            mlp_dim: 3072,
            num_classes: 1000,
            in_channels: 3,
            ln_eps: 1e-6,
            moe_layers: 0,
            num_experts: 1,
            top_k: 1,
        }
    }

    /// Mobile V-MoE: ViT-Tiny (12 layers, dim 192, 3 heads, MLP 768, patch 16, 224x224) with
    /// E = 10 experts, k = 1, MoE in the last 2 blocks.
    pub fn mobile_vmoe() -> Self {
        ViTConfig {
            num_heads: 3,
            hidden_dim: 192,
            mlp_dim: 768,
            moe_layers: 2,
            num_experts: 10,
            top_k: 1,
            ..Self::vit_b_16()
        }
    }

    pub fn validate(&self) -> R<()> {
        check_image(self.image_size, self.in_channels, self.num_classes, 1)?;
        ensure(self.patch_size > 0, || "patch_size must be positive".into())?;
        ensure(self.image_size.is_multiple_of(self.patch_size), || {
            format!(
                "image_size {} is not divisible by patch_size {}",
                self.image_size, self.patch_size
            )
        })?;
        ensure(self.num_layers > 0, || "num_layers must be positive".into())?;
        ensure(self.num_heads > 0, || "num_heads must be positive".into())?;
        ensure(self.hidden_dim > 0, || "hidden_dim must be positive".into())?;
        ensure(self.hidden_dim.is_multiple_of(self.num_heads), || {
            format!(
                "hidden_dim {} is not divisible by num_heads {}",
                self.hidden_dim, self.num_heads
            )
        })?;
        ensure(self.mlp_dim > 0, || "mlp_dim must be positive".into())?;
        ensure(self.ln_eps > 0.0, || "ln_eps must be positive".into())?;
        ensure(self.moe_layers <= self.num_layers, || {
            format!(
                "moe_layers {} exceeds num_layers {}",
                self.moe_layers, self.num_layers
            )
        })?;
        if self.moe_layers > 0 {
            ensure(self.num_experts > 0, || {
                "num_experts must be positive".into()
            })?;
            ensure(self.top_k > 0, || "top_k must be positive".into())?;
            ensure(self.top_k <= self.num_experts, || {
                format!(
                    "top_k {} exceeds num_experts {}",
                    self.top_k, self.num_experts
                )
            })?;
        }
        Ok(())
    }
}

/// The chosen experts of each image: indices `[batch, k]` and gates `[batch, k, 1, 1]`.
struct Route {
    idx: ValueRef,
    gates: ValueRef,
}

/// Builds the graph: input `image` `[batch, in_channels, S, S]`, output `logits`.
pub fn build(c: &ViTConfig, o: &BuildOptions) -> R<Graph> {
    c.validate()?;
    let name = if c.moe_layers > 0 { "vmoe" } else { "vit" };
    let mut n = Net::new(name, o.seed);
    let d = c.hidden_dim;
    let p = c.patch_size;
    let seq = (c.image_size / p) * (c.image_size / p) + 1;
    let x = n.image(c.in_channels, c.image_size);
    // Patches: [B, D, h, w] -> [B, D, h*w] -> [B, h*w, D].
    let x = n.scope("conv_proj", |n| {
        n.conv(x, c.in_channels, d, p, p, 0, 1, true)
    })?;
    let shape = n.b.ints("patch_shape", &[0, d as i64, -1])?;
    let x = n.op("Reshape", &[x, shape], &[])?;
    let x = n.op("Transpose", &[x], &[("perm", Attr::Ints(vec![0, 2, 1]))])?;
    // Class token, broadcast over the batch, in front of the patches.
    let cls = n.param("class_token", &[1, 1, d], 0.1);
    let batch = n.op(
        "Shape",
        &[x],
        &[("start", Attr::Int(0)), ("end", Attr::Int(1))],
    )?;
    let rest = n.b.ints("class_token_shape", &[1, d as i64])?;
    let cshape = n.op("Concat", &[batch, rest], &[("axis", Attr::Int(0))])?;
    let cls = n.op("Expand", &[cls, cshape], &[])?;
    let x = n.op("Concat", &[cls, x], &[("axis", Attr::Int(1))])?;
    let zero =
        n.b.constant("token_index", petasos_ir::Tensor::scalar(DType::I64, 0.0));
    let x = n.scope("encoder", |n| {
        let pos = n.param("pos_embedding", &[1, seq, d], 0.1);
        let mut x = n.op("Add", &[x, pos], &[])?;
        let first_moe = c.num_layers - c.moe_layers;
        let mut route = None;
        for i in 0..c.num_layers {
            if i == first_moe {
                route = Some(n.scope("router", |n| router(n, c, x, zero))?);
            }
            x = n.scope("layers", |n| {
                n.scope(&format!("encoder_layer_{i}"), |n| {
                    encoder_block(n, c, x, route.as_ref())
                })
            })?;
        }
        n.scope("ln", |n| layer_norm(n, x, d, c.ln_eps))
    })?;
    let x = n.op("Gather", &[x, zero], &[("axis", Attr::Int(1))])?;
    let y = n.scope("heads", |n| {
        n.scope("head", |n| n.linear2d(x, d, c.num_classes))
    })?;
    n.finish(y, "logits", "vit")
}

fn layer_norm(n: &mut Net, x: ValueRef, d: usize, eps: f32) -> R<ValueRef> {
    let g = n.param("weight", &[d], 1.0);
    let b = n.param("bias", &[d], 0.1);
    n.op(
        "LayerNormalization",
        &[x, g, b],
        &[("axis", Attr::Int(-1)), ("epsilon", Attr::Float(eps))],
    )
}

/// The per-image router (scope `encoder.router`, made where the MoE blocks start): a linear
/// layer over the class token, softmax, top-k.
fn router(n: &mut Net, c: &ViTConfig, x: ValueRef, zero: ValueRef) -> R<Route> {
    let t = n.op("Gather", &[x, zero], &[("axis", Attr::Int(1))])?;
    let logits = n.linear2d(t, c.hidden_dim, c.num_experts)?;
    let probs = n.op("Softmax", &[logits], &[("axis", Attr::Int(-1))])?;
    let k = n.b.ints("k", &[c.top_k as i64])?;
    let tk = n.b.node(
        "",
        "TopK",
        &[Some(probs), Some(k)],
        &[("axis", Attr::Int(-1))],
        2,
    )?;
    let axes = n.b.ints("gate_axes", &[2, 3])?;
    let gates = n.op("Unsqueeze", &[tk[0], axes], &[])?;
    Ok(Route { idx: tk[1], gates })
}

fn encoder_block(n: &mut Net, c: &ViTConfig, x: ValueRef, route: Option<&Route>) -> R<ValueRef> {
    let d = c.hidden_dim;
    let h = n.scope("ln_1", |n| layer_norm(n, x, d, c.ln_eps))?;
    let a = n.scope("self_attention", |n| {
        let s = (3.0 / d as f32).sqrt();
        let w = n.param("in_proj_weight", &[3 * d, d], s);
        let b = n.param("in_proj_bias", &[3 * d], 0.1);
        let wt = n.op("Transpose", &[w], &[("perm", Attr::Ints(vec![1, 0]))])?;
        let qkv = n.op("MatMul", &[h, wt], &[])?;
        let qkv = n.op("Add", &[qkv, b], &[])?;
        let qkv = n.b.node(
            "",
            "Split",
            &[Some(qkv)],
            &[("axis", Attr::Int(-1)), ("num_outputs", Attr::Int(3))],
            3,
        )?;
        let heads = Attr::Int(c.num_heads as i64);
        let y = n.op(
            "Attention",
            &qkv,
            &[("q_num_heads", heads.clone()), ("kv_num_heads", heads)],
        )?;
        n.scope("out_proj", |n| n.linear(y, d, d))
    })?;
    let x = n.op("Add", &[x, a], &[])?;
    let y = n.scope("ln_2", |n| layer_norm(n, x, d, c.ln_eps))?;
    let y = match route {
        None => n.scope("mlp", |n| {
            let y = n.scope("0", |n| n.linear(y, d, c.mlp_dim))?;
            let y = n.scope("1", |n| n.op("Gelu", &[y], &[]))?;
            n.scope("3", |n| n.linear(y, c.mlp_dim, d))
        })?,
        Some(r) => n.scope("moe", |n| moe_mlp(n, c, y, r))?,
    };
    n.op("Add", &[x, y], &[])
}

/// The chosen experts' MLPs on `y` `[B, S, D]`, weighted by their gates and summed.
fn moe_mlp(n: &mut Net, c: &ViTConfig, y: ValueRef, r: &Route) -> R<ValueRef> {
    let (e, d, m) = (c.num_experts, c.hidden_dim, c.mlp_dim);
    let ax1 = n.b.ints("token_axes", &[1])?;
    let y4 = n.op("Unsqueeze", &[y, ax1], &[])?; // [B, 1, S, D]
    let gather = |n: &mut Net, w: ValueRef| {
        n.op("Gather", &[w, r.idx], &[("axis", Attr::Int(0))]) // [B, k, ...]
    };
    let h = n.scope("experts", |n| {
        let h = n.scope("fc1", |n| {
            let w = n.param("weight", &[e, d, m], (3.0 / d as f32).sqrt());
            let b = n.param("bias", &[e, 1, m], 0.1);
            let (w, b) = (gather(n, w)?, gather(n, b)?);
            let h = n.op("MatMul", &[y4, w], &[])?; // [B, k, S, M]
            n.op("Add", &[h, b], &[])
        })?;
        let h = n.op("Gelu", &[h], &[])?;
        n.scope("fc2", |n| {
            let w = n.param("weight", &[e, m, d], (3.0 / m as f32).sqrt());
            let b = n.param("bias", &[e, 1, d], 0.1);
            let (w, b) = (gather(n, w)?, gather(n, b)?);
            let h = n.op("MatMul", &[h, w], &[])?; // [B, k, S, D]
            n.op("Add", &[h, b], &[])
        })
    })?;
    let h = n.op("Mul", &[h, r.gates], &[])?;
    n.op("ReduceSum", &[h, ax1], &[("keepdims", Attr::Int(0))])
}
