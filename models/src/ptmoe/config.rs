//! The PT-MoE config: presets, validation and parameter arithmetic.

use crate::config::{ensure, ModelError};
use serde::{Deserialize, Serialize};

/// A parallel-track mixture-of-experts decoder (shared docs/architectures.md, "AFM server 2025").
///
/// `tracks` independent transformers of `layers` layers each run side by side; every
/// `block_depth` layers the tracks synchronise (the block input is replicated into every track,
/// the block output is the mean over tracks). Within a track, layer `i` (0-based) is a global
/// (NoPE, full causal) attention layer when `(i + 1) % global_every == 0` and a local one
/// (RoPE, sliding window) otherwise; its FFN is a mixture of experts when
/// `(i + 1) % moe_every == 0` and a dense SwiGLU otherwise.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Config {
    pub vocab_size: usize,
    pub d_model: usize,
    /// Parallel tracks.
    pub tracks: usize,
    /// Layers per track.
    pub layers: usize,
    /// Layers per track block (the tracks synchronise after each block).
    pub block_depth: usize,
    /// Query heads per track.
    pub heads: usize,
    /// Key/value heads per track (divides `heads`).
    pub kv_heads: usize,
    pub head_dim: usize,
    /// Every `global_every`-th layer is global (4: local, local, local, global).
    pub global_every: usize,
    /// Keys a local-attention query sees, itself included.
    pub sliding_window: usize,
    pub rope_theta: f64,
    /// Hidden size of the dense SwiGLU layers.
    pub dense_hidden: usize,
    /// Every `moe_every`-th layer is a mixture of experts (2: dense and MoE alternate).
    pub moe_every: usize,
    /// Experts per MoE layer (per track).
    pub experts: usize,
    pub top_k: usize,
    /// Hidden size of each expert's SwiGLU.
    pub expert_hidden: usize,
    /// Router logits become `cap * tanh(logits / cap)`; 0 disables the soft-cap.
    pub router_softcap: f32,
    pub rms_eps: f32,
    /// The output head reuses the input embedding.
    pub tie_embeddings: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config::afm_server_ptmoe()
    }
}

impl Config {
    /// The defaults of Apple's public PT-MoE config (~147.8B total, ~15.8B active).
    pub fn afm_server_ptmoe() -> Config {
        Config {
            vocab_size: 153_600,
            d_model: 2048,
            tracks: 8,
            layers: 48,
            block_depth: 4,
            heads: 4,
            kv_heads: 4,
            head_dim: 128,
            global_every: 4,
            sliding_window: 4096,
            rope_theta: 500_000.0,
            dense_hidden: 5888,
            moe_every: 2,
            experts: 40,
            top_k: 2,
            expert_hidden: 2944,
            router_softcap: 50.0,
            rms_eps: 1e-5,
            tie_embeddings: true,
        }
    }

    /// A tiny config with the same structure (2 tracks, 2 blocks of 2 layers, local and global
    /// attention, dense and MoE layers), small enough for the interpreter.
    pub fn tiny() -> Config {
        Config {
            vocab_size: 48,
            d_model: 16,
            tracks: 2,
            layers: 4,
            block_depth: 2,
            heads: 2,
            kv_heads: 2,
            head_dim: 8,
            global_every: 2,
            sliding_window: 2,
            rope_theta: 10_000.0,
            dense_hidden: 24,
            moe_every: 2,
            experts: 4,
            top_k: 2,
            expert_hidden: 12,
            router_softcap: 50.0,
            rms_eps: 1e-5,
            tie_embeddings: true,
        }
    }

    /// Whether layer `i` of a track uses global (NoPE) attention.
    pub fn is_global(&self, i: usize) -> bool {
        (i + 1).is_multiple_of(self.global_every)
    }

    /// Whether layer `i` of a track has a mixture-of-experts FFN.
    pub fn is_moe(&self, i: usize) -> bool {
        (i + 1).is_multiple_of(self.moe_every)
    }

    /// Rejects inconsistent configs, naming the field.
    pub fn validate(&self) -> Result<(), ModelError> {
        let pos = |v: usize, f: &str| ensure(v > 0, || format!("{f} must be positive, got 0"));
        pos(self.vocab_size, "vocab_size")?;
        pos(self.d_model, "d_model")?;
        pos(self.tracks, "tracks")?;
        pos(self.layers, "layers")?;
        pos(self.block_depth, "block_depth")?;
        pos(self.heads, "heads")?;
        pos(self.kv_heads, "kv_heads")?;
        pos(self.head_dim, "head_dim")?;
        pos(self.global_every, "global_every")?;
        pos(self.moe_every, "moe_every")?;
        ensure(self.layers.is_multiple_of(self.block_depth), || {
            format!(
                "layers ({}) must be divisible by block_depth ({})",
                self.layers, self.block_depth
            )
        })?;
        ensure(self.heads.is_multiple_of(self.kv_heads), || {
            format!(
                "heads ({}) must be divisible by kv_heads ({})",
                self.heads, self.kv_heads
            )
        })?;
        let any_local = (0..self.layers).any(|i| !self.is_global(i));
        let any_dense = (0..self.layers).any(|i| !self.is_moe(i));
        let any_moe = (0..self.layers).any(|i| self.is_moe(i));
        if any_local {
            ensure(self.head_dim.is_multiple_of(2), || {
                format!("head_dim ({}) must be even for RoPE", self.head_dim)
            })?;
            pos(self.sliding_window, "sliding_window")?;
            ensure(self.rope_theta.is_finite() && self.rope_theta > 0.0, || {
                format!("rope_theta must be positive, got {}", self.rope_theta)
            })?;
            ensure(self.sliding_window <= i64::MAX as usize, || {
                "sliding_window is too large".into()
            })?;
        }
        if any_dense {
            pos(self.dense_hidden, "dense_hidden")?;
        }
        if any_moe {
            pos(self.experts, "experts")?;
            pos(self.top_k, "top_k")?;
            pos(self.expert_hidden, "expert_hidden")?;
            ensure(self.top_k <= self.experts, || {
                format!(
                    "top_k ({}) must not exceed experts ({})",
                    self.top_k, self.experts
                )
            })?;
            ensure(
                self.router_softcap.is_finite() && self.router_softcap >= 0.0,
                || {
                    format!(
                        "router_softcap must be non-negative, got {}",
                        self.router_softcap
                    )
                },
            )?;
        }
        ensure(self.rms_eps.is_finite() && self.rms_eps > 0.0, || {
            format!("rms_eps must be positive, got {}", self.rms_eps)
        })?;
        Ok(())
    }

    fn attn_params(&self) -> u64 {
        let (d, h, kv, hd) = (
            self.d_model as u64,
            self.heads as u64,
            self.kv_heads as u64,
            self.head_dim as u64,
        );
        // q, k, v, o projections and the per-head q/k RMSNorm scales.
        d * h * hd + 2 * d * kv * hd + h * hd * d + 2 * hd
    }

    fn swiglu_params(&self, hidden: usize) -> u64 {
        3 * self.d_model as u64 * hidden as u64
    }

    /// Parameters of one track layer; with `active`, only the router and `top_k` experts count.
    fn layer_params(&self, i: usize, active: bool) -> u64 {
        let norms = 2 * self.d_model as u64;
        let ffn = if self.is_moe(i) {
            let used = if active { self.top_k } else { self.experts } as u64;
            self.d_model as u64 * self.experts as u64
                + used * self.swiglu_params(self.expert_hidden)
        } else {
            self.swiglu_params(self.dense_hidden)
        };
        norms + self.attn_params() + ffn
    }

    fn count(&self, active: bool) -> u64 {
        let (v, d) = (self.vocab_size as u64, self.d_model as u64);
        let embed = v * d * if self.tie_embeddings { 1 } else { 2 };
        let per_track: u64 = (0..self.layers).map(|i| self.layer_params(i, active)).sum();
        embed + d + self.tracks as u64 * per_track
    }

    /// Learned parameters of the model (embedding, every track's layers, final norm, head).
    /// The built graph has these plus a few small constants (shapes, axes, scalars).
    pub fn weight_parameters(&self) -> u64 {
        self.count(false)
    }
}

/// Parameters used for one token: everything except the experts a token is not routed to
/// (per MoE layer and track: the router and `top_k` of the `experts` experts). The embedding
/// table counts once (it is also the tied output head).
pub fn active_parameters_per_token(c: &Config) -> u64 {
    c.count(true)
}
