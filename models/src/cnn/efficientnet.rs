//! EfficientNetV2 (torchvision `efficientnet_v2_s`).
//!
//! `features.0`: 3x3/2 conv-BN-SiLU; `features.1..`: one entry per stage, blocks `0..` each with
//! a `block` of torchvision's children: FusedMBConv (`block.0` kxk conv-BN-SiLU expansion,
//! `block.1` 1x1 projection conv-BN; or one kxk conv-BN-SiLU when the ratio is 1) or MBConv
//! (`block.0` 1x1 expansion, `block.1` kxk depthwise, `block.2` squeeze-excitation `fc1`/`fc2`,
//! `block.3` 1x1 projection); residual add when stride 1 and channels match (stochastic depth is
//! the identity at inference). Then `features.N` 1x1 conv-BN-SiLU to `last_channel`, global
//! average pool and `classifier.1`. Batch norms use eps 1e-3.

use super::common::{check_image, conv_norm_act, make_divisible, Act, Net, R};
use crate::config::ensure;
use crate::BuildOptions;
use petasos_ir::{Graph, ValueRef};
use serde::{Deserialize, Serialize};

/// Block kind of a stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MbKind {
    /// Fused-MBConv: one full kxk conv does expansion and spatial mixing.
    Fused,
    /// MBConv: 1x1 expansion, kxk depthwise, squeeze-excitation, 1x1 projection.
    Mb,
}

/// One stage (torchvision's `MBConvConfig` / `FusedMBConvConfig`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Stage {
    pub kind: MbKind,
    pub expand_ratio: usize,
    pub kernel: usize,
    pub stride: usize,
    pub in_channels: usize,
    pub out_channels: usize,
    pub layers: usize,
}

/// An EfficientNet (V2 stage table).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EfficientNetConfig {
    pub stages: Vec<Stage>,
    /// Scales every stage's channels (rounded to multiples of 8).
    pub width_mult: f64,
    /// Scales every stage's block count (rounded up).
    pub depth_mult: f64,
    pub last_channel: usize,
    pub num_classes: usize,
    pub in_channels: usize,
    pub image_size: usize,
    pub bn_eps: f32,
}

fn stage(kind: MbKind, e: usize, k: usize, s: usize, i: usize, o: usize, n: usize) -> Stage {
    Stage {
        kind,
        expand_ratio: e,
        kernel: k,
        stride: s,
        in_channels: i,
        out_channels: o,
        layers: n,
    }
}

impl EfficientNetConfig {
    /// torchvision `efficientnet_v2_s` (21,458,488 parameters).
    pub fn efficientnet_v2_s() -> Self {
        use MbKind::*;
        EfficientNetConfig {
            stages: vec![
                stage(Fused, 1, 3, 1, 24, 24, 2),
                stage(Fused, 4, 3, 2, 24, 48, 4),
                stage(Fused, 4, 3, 2, 48, 64, 4),
                stage(Mb, 4, 3, 2, 64, 128, 6),
                stage(Mb, 6, 3, 1, 128, 160, 9),
                stage(Mb, 6, 3, 2, 160, 256, 15),
            ],
            width_mult: 1.0,
            depth_mult: 1.0,
            last_channel: 1280,
            num_classes: 1000,
            in_channels: 3,
            image_size: 384,
            bn_eps: 1e-3,
        }
    }

    pub fn validate(&self) -> R<()> {
        check_image(self.image_size, self.in_channels, self.num_classes, 1)?;
        ensure(!self.stages.is_empty(), || {
            "stages must name at least one stage".into()
        })?;
        for (i, s) in self.stages.iter().enumerate() {
            ensure(
                s.expand_ratio > 0
                    && s.kernel > 0
                    && s.stride > 0
                    && s.in_channels > 0
                    && s.out_channels > 0
                    && s.layers > 0,
                || format!("stages[{i}]: every field must be positive"),
            )?;
            ensure(s.kernel % 2 == 1, || {
                format!("stages[{i}].kernel must be odd (got {})", s.kernel)
            })?;
        }
        for w in self.stages.windows(2) {
            ensure(w[0].out_channels == w[1].in_channels, || {
                format!(
                    "stages: in_channels {} does not follow the previous out_channels {}",
                    w[1].in_channels, w[0].out_channels
                )
            })?;
        }
        ensure(self.width_mult > 0.0 && self.width_mult.is_finite(), || {
            "width_mult must be positive".into()
        })?;
        ensure(self.depth_mult > 0.0 && self.depth_mult.is_finite(), || {
            "depth_mult must be positive".into()
        })?;
        ensure(self.last_channel > 0, || {
            "last_channel must be positive".into()
        })?;
        ensure(self.bn_eps > 0.0, || "bn_eps must be positive".into())
    }
}

/// Builds the graph: input `image` `[batch, in_channels, S, S]`, output `logits`.
pub fn build(c: &EfficientNetConfig, o: &BuildOptions) -> R<Graph> {
    c.validate()?;
    let mut n = Net::new("efficientnet", o.seed);
    let x = n.image(c.in_channels, c.image_size);
    let eps = c.bn_eps;
    let ch = |v: usize| make_divisible(v as f64 * c.width_mult, 8);
    let first = ch(c.stages[0].in_channels);
    let mut cin = first;
    let x = n.scope("features", |n| {
        let mut x = n.scope("0", |n| {
            conv_norm_act(n, x, c.in_channels, first, 3, 2, 1, eps, Act::Silu)
        })?;
        for (si, s) in c.stages.iter().enumerate() {
            let cout = ch(s.out_channels);
            let reps = (s.layers as f64 * c.depth_mult).ceil() as usize;
            x = n.scope(&(si + 1).to_string(), |n| {
                let mut x = x;
                for j in 0..reps {
                    let stride = if j == 0 { s.stride } else { 1 };
                    x = n.scope(&j.to_string(), |n| {
                        mb_block(n, s, x, cin, cout, stride, eps)
                    })?;
                    cin = cout;
                }
                Ok(x)
            })?;
        }
        n.scope(&(c.stages.len() + 1).to_string(), |n| {
            conv_norm_act(n, x, cin, c.last_channel, 1, 1, 1, eps, Act::Silu)
        })
    })?;
    let x = n.pool_flatten(x)?;
    let y = n.scope("classifier", |n| {
        n.scope("1", |n| n.linear2d(x, c.last_channel, c.num_classes))
    })?;
    n.finish(y, "logits", "cnn")
}

fn mb_block(
    n: &mut Net,
    s: &Stage,
    x: ValueRef,
    cin: usize,
    cout: usize,
    stride: usize,
    eps: f32,
) -> R<ValueRef> {
    let k = s.kernel;
    let expanded = make_divisible((cin * s.expand_ratio) as f64, 8);
    let y = n.scope("block", |n| match s.kind {
        MbKind::Fused if expanded != cin => {
            let y = n.scope("0", |n| {
                conv_norm_act(n, x, cin, expanded, k, stride, 1, eps, Act::Silu)
            })?;
            n.scope("1", |n| {
                conv_norm_act(n, y, expanded, cout, 1, 1, 1, eps, Act::None)
            })
        }
        MbKind::Fused => n.scope("0", |n| {
            conv_norm_act(n, x, cin, cout, k, stride, 1, eps, Act::Silu)
        }),
        MbKind::Mb => {
            let mut i = 0;
            let mut y = x;
            if expanded != cin {
                y = n.scope("0", |n| {
                    conv_norm_act(n, y, cin, expanded, 1, 1, 1, eps, Act::Silu)
                })?;
                i = 1;
            }
            y = n.scope(&i.to_string(), |n| {
                conv_norm_act(
                    n,
                    y,
                    expanded,
                    expanded,
                    k,
                    stride,
                    expanded,
                    eps,
                    Act::Silu,
                )
            })?;
            let squeeze = (cin / 4).max(1);
            y = n.scope(&(i + 1).to_string(), |n| {
                let p = n.scope("avgpool", |n| n.op("GlobalAveragePool", &[y], &[]))?;
                let h = n.scope("fc1", |n| n.conv(p, expanded, squeeze, 1, 1, 0, 1, true))?;
                let h = n.scope("activation", |n| n.silu(h))?;
                let h = n.scope("fc2", |n| n.conv(h, squeeze, expanded, 1, 1, 0, 1, true))?;
                let h = n.scope("scale_activation", |n| n.op("Sigmoid", &[h], &[]))?;
                n.op("Mul", &[y, h], &[])
            })?;
            n.scope(&(i + 2).to_string(), |n| {
                conv_norm_act(n, y, expanded, cout, 1, 1, 1, eps, Act::None)
            })
        }
    })?;
    if stride == 1 && cin == cout {
        n.op("Add", &[y, x], &[])
    } else {
        Ok(y)
    }
}
