//! The decoder config, its named presets, validation and closed-form figures.

use crate::config::ensure;
use crate::ModelError;
use serde::{Deserialize, Serialize};

/// Mixture-of-experts feed-forward (Mixtral style): a linear router picks `top_k` of `experts`
/// SwiGLU experts (each of hidden size `ffn_hidden`) per token; their outputs are summed,
/// weighted by the softmax of the chosen router logits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MoeConfig {
    pub experts: usize,
    pub top_k: usize,
}

/// A decoder-only transformer: token embedding, `layers` pre-norm blocks (RMSNorm, grouped-query
/// attention with RoPE, RMSNorm, SwiGLU or MoE FFN, residual adds), final RMSNorm and the LM head.
///
/// KV sharing (AFM on-device 2025): the last `block2_layers` layers form block 2. With
/// `kv_sharing` they have no K/V projections and attend over the K/V of the last block-1 layer
/// (writing no KV cache); without it they are ordinary layers, with identical layer paths
/// otherwise, so that a KV-sharing pass can turn one form into the other.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub layers: usize,
    pub d_model: usize,
    /// Query heads; the head dimension is `d_model / heads`.
    pub heads: usize,
    /// Key/value heads (grouped-query attention: `heads` must be a multiple).
    pub kv_heads: usize,
    /// SwiGLU hidden size (of each expert with `moe`).
    pub ffn_hidden: usize,
    pub vocab: usize,
    /// RMSNorm epsilon (pre-norms, final norm and q/k norms).
    pub norm_eps: f32,
    pub rope_theta: f32,
    /// Per-head RMSNorm on q and k, applied after RoPE (one scale of head_dim each).
    pub qk_norm: bool,
    /// Output head = transposed input embedding (one constant used twice).
    pub tie_embeddings: bool,
    /// Trailing layers forming block 2 (0: none).
    #[serde(default)]
    pub block2_layers: usize,
    /// Whether block-2 layers reuse the K/V of the last block-1 layer.
    #[serde(default = "yes")]
    pub kv_sharing: bool,
    /// Mixture-of-experts FFN in every layer instead of a dense SwiGLU.
    #[serde(default)]
    pub moe: Option<MoeConfig>,
}

fn yes() -> bool {
    true
}

impl Config {
    /// AFM on-device 2025 (~3.1B): 56 layers (35 + 21 KV-sharing), d 2048, 16/2 heads of 128,
    /// SwiGLU 6656, vocab 153,600, tied head, q/k RMSNorm, RoPE theta 500K.
    pub fn afm_ondevice_2025() -> Config {
        Config {
            layers: 56,
            d_model: 2048,
            heads: 16,
            kv_heads: 2,
            ffn_hidden: 6656,
            vocab: 153_600,
            norm_eps: 1e-5,
            rope_theta: 500_000.0,
            qk_norm: true,
            tie_embeddings: true,
            block2_layers: 21,
            kv_sharing: true,
            moe: None,
        }
    }

    /// AFM on-device 2024 (~2.7B): 26 layers, d 3072, 24/8 heads of 128, SwiGLU 8064,
    /// vocab 49,152, tied head, q/k RMSNorm, RoPE theta 500K.
    pub fn afm_ondevice_2024() -> Config {
        Config {
            layers: 26,
            d_model: 3072,
            heads: 24,
            kv_heads: 8,
            ffn_hidden: 8064,
            vocab: 49_152,
            norm_eps: 1e-5,
            rope_theta: 500_000.0,
            qk_norm: true,
            tie_embeddings: true,
            block2_layers: 0,
            kv_sharing: true,
            moe: None,
        }
    }

    /// Llama 2 7B: 32 layers, d 4096, 32 heads (MHA), SwiGLU 11008, vocab 32,000, untied head,
    /// RoPE theta 10K, RMSNorm eps 1e-5 (6,738,415,616 parameters).
    pub fn llama2_7b() -> Config {
        Config {
            layers: 32,
            d_model: 4096,
            heads: 32,
            kv_heads: 32,
            ffn_hidden: 11008,
            vocab: 32_000,
            norm_eps: 1e-5,
            rope_theta: 10_000.0,
            qk_norm: false,
            tie_embeddings: false,
            block2_layers: 0,
            kv_sharing: true,
            moe: None,
        }
    }

    /// Mixtral 8x7B: 32 layers, d 4096, 32/8 heads, 8 SwiGLU experts of 14336 with top-2
    /// routing, vocab 32,000, untied head, RoPE theta 1M (46,702,792,704 parameters).
    pub fn mixtral_8x7b() -> Config {
        Config {
            layers: 32,
            d_model: 4096,
            heads: 32,
            kv_heads: 8,
            ffn_hidden: 14336,
            vocab: 32_000,
            norm_eps: 1e-5,
            rope_theta: 1_000_000.0,
            qk_norm: false,
            tie_embeddings: false,
            block2_layers: 0,
            kv_sharing: true,
            moe: Some(MoeConfig {
                experts: 8,
                top_k: 2,
            }),
        }
    }

    /// A small Llama-style decoder that the interpreter runs quickly.
    pub fn llama_tiny() -> Config {
        Config {
            layers: 2,
            d_model: 64,
            heads: 4,
            kv_heads: 2,
            ffn_hidden: 160,
            vocab: 256,
            norm_eps: 1e-5,
            rope_theta: 10_000.0,
            qk_norm: false,
            tie_embeddings: false,
            block2_layers: 0,
            kv_sharing: true,
            moe: None,
        }
    }

    /// A small Mixtral-style decoder (top-2 of 4 experts) that the interpreter runs quickly.
    pub fn mixtral_tiny() -> Config {
        Config {
            moe: Some(MoeConfig {
                experts: 4,
                top_k: 2,
            }),
            ..Config::llama_tiny()
        }
    }

    /// Head dimension (`d_model / heads`).
    pub fn head_dim(&self) -> usize {
        self.d_model / self.heads.max(1)
    }

    /// Layers of block 1 (all layers when there is no block 2).
    pub fn block1_layers(&self) -> usize {
        self.layers - self.block2_layers.min(self.layers)
    }

    /// Whether layer `i` has its own K/V projections and cache.
    pub fn owns_kv(&self, i: usize) -> bool {
        !self.kv_sharing || i < self.block1_layers()
    }

    /// Indices of the layers that own K/V (and have past/present cache tensors).
    pub fn kv_layers(&self) -> Vec<usize> {
        (0..self.layers).filter(|&i| self.owns_kv(i)).collect()
    }

    /// The layer whose K/V layer `i` attends over.
    pub fn kv_source(&self, i: usize) -> usize {
        if self.owns_kv(i) {
            i
        } else {
            self.block1_layers() - 1
        }
    }

    /// Rejects inconsistent configs, naming the field.
    pub fn validate(&self) -> Result<(), ModelError> {
        let pos = |v: usize, f: &str| ensure(v > 0, || format!("{f} must be positive"));
        pos(self.layers, "layers")?;
        pos(self.d_model, "d_model")?;
        pos(self.heads, "heads")?;
        pos(self.kv_heads, "kv_heads")?;
        pos(self.ffn_hidden, "ffn_hidden")?;
        pos(self.vocab, "vocab")?;
        ensure(self.d_model.is_multiple_of(self.heads), || {
            format!(
                "d_model {} is not divisible by heads {}",
                self.d_model, self.heads
            )
        })?;
        ensure(self.heads.is_multiple_of(self.kv_heads), || {
            format!(
                "kv_heads {} does not divide heads {}",
                self.kv_heads, self.heads
            )
        })?;
        ensure(self.head_dim().is_multiple_of(2), || {
            format!(
                "head dim {} (d_model / heads) must be even for RoPE",
                self.head_dim()
            )
        })?;
        ensure(self.block2_layers < self.layers, || {
            format!(
                "block2_layers {} must leave at least one block-1 layer of {}",
                self.block2_layers, self.layers
            )
        })?;
        ensure(self.norm_eps > 0.0 && self.norm_eps.is_finite(), || {
            format!("norm_eps {} must be positive", self.norm_eps)
        })?;
        ensure(self.rope_theta > 1.0 && self.rope_theta.is_finite(), || {
            format!("rope_theta {} must be greater than 1", self.rope_theta)
        })?;
        if let Some(m) = &self.moe {
            pos(m.experts, "moe.experts")?;
            pos(m.top_k, "moe.top_k")?;
            ensure(m.top_k <= m.experts, || {
                format!("moe.top_k {} exceeds moe.experts {}", m.top_k, m.experts)
            })?;
        }
        Ok(())
    }

    /// Parameters of one layer (closed form; the graph's weights must agree).
    pub fn layer_parameters(&self, i: usize) -> u64 {
        let (d, hd) = (self.d_model as u64, self.head_dim() as u64);
        let q = d * self.heads as u64 * hd;
        let kv = if self.owns_kv(i) {
            2 * d * self.kv_heads as u64 * hd
        } else {
            0
        };
        let o = self.heads as u64 * hd * d;
        let qk_norm = match (self.qk_norm, self.owns_kv(i)) {
            (false, _) => 0,
            (true, true) => 2 * hd,
            (true, false) => hd,
        };
        let swiglu = 3 * d * self.ffn_hidden as u64;
        let ffn = match &self.moe {
            None => swiglu,
            Some(m) => m.experts as u64 * swiglu + d * m.experts as u64,
        };
        q + kv + o + qk_norm + ffn + 2 * d
    }

    /// Embedding parameters (the tied head adds none).
    pub fn embedding_parameters(&self) -> u64 {
        self.vocab as u64 * self.d_model as u64
    }

    /// All learned parameters (closed form).
    pub fn parameter_count(&self) -> u64 {
        let head = if self.tie_embeddings {
            0
        } else {
            self.embedding_parameters()
        };
        (0..self.layers)
            .map(|i| self.layer_parameters(i))
            .sum::<u64>()
            + self.embedding_parameters()
            + head
            + self.d_model as u64
    }
}

/// KV-cache values stored per token (K and V, every layer that writes a cache, all KV heads):
/// `2 x kv_layers x kv_heads x head_dim`. Multiply by context, batch and bytes per element.
pub fn kv_cache_values_per_token(cfg: &Config) -> u64 {
    2 * cfg.kv_layers().len() as u64 * cfg.kv_heads as u64 * cfg.head_dim() as u64
}
