//! MobileNetV2 (torchvision `mobilenet_v2`).
//!
//! `features.0`: 3x3/2 conv-BN-ReLU6; `features.1..`: inverted residual blocks (`conv.0` 1x1
//! expansion where the ratio is not 1, then the 3x3 depthwise conv-BN-ReLU6, a 1x1 linear
//! projection conv and its BN; skip when stride 1 and channels match); the last `features.N`:
//! 1x1 conv-BN-ReLU6 to `last_channel`; global average pool; `classifier.1` (the dropout,
//! `classifier.0`, is the identity at inference).

use super::common::{check_image, conv_norm_act, make_divisible, Act, Net, R};
use crate::config::ensure;
use crate::BuildOptions;
use petasos_ir::{Graph, ValueRef};
use serde::{Deserialize, Serialize};

/// A MobileNetV2.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MobileNetV2Config {
    pub width_mult: f64,
    pub round_nearest: usize,
    /// Stages as `[t, c, n, s]`: expansion ratio, output channels, blocks, first stride.
    pub inverted_residual_setting: Vec<[usize; 4]>,
    /// Stem output channels before the width multiplier (32).
    pub input_channel: usize,
    /// Channels of the last conv before the multiplier (1280; never scaled below it).
    pub last_channel: usize,
    pub num_classes: usize,
    pub in_channels: usize,
    pub image_size: usize,
    pub bn_eps: f32,
}

impl MobileNetV2Config {
    /// torchvision `mobilenet_v2` (3,504,872 parameters).
    pub fn mobilenet_v2() -> Self {
        MobileNetV2Config {
            width_mult: 1.0,
            round_nearest: 8,
            inverted_residual_setting: vec![
                [1, 16, 1, 1],
                [6, 24, 2, 2],
                [6, 32, 3, 2],
                [6, 64, 4, 2],
                [6, 96, 3, 1],
                [6, 160, 3, 2],
                [6, 320, 1, 1],
            ],
            input_channel: 32,
            last_channel: 1280,
            num_classes: 1000,
            in_channels: 3,
            image_size: 224,
            bn_eps: 1e-5,
        }
    }

    pub fn validate(&self) -> R<()> {
        check_image(self.image_size, self.in_channels, self.num_classes, 1)?;
        ensure(self.width_mult > 0.0 && self.width_mult.is_finite(), || {
            format!("width_mult must be positive (got {})", self.width_mult)
        })?;
        ensure(self.round_nearest > 0, || {
            "round_nearest must be positive".into()
        })?;
        ensure(!self.inverted_residual_setting.is_empty(), || {
            "inverted_residual_setting must name at least one stage".into()
        })?;
        for (i, &[t, c, n, s]) in self.inverted_residual_setting.iter().enumerate() {
            ensure(t > 0 && c > 0 && n > 0 && s > 0, || {
                format!("inverted_residual_setting[{i}]: t, c, n and s must be positive")
            })?;
        }
        ensure(self.input_channel > 0 && self.last_channel > 0, || {
            "input_channel and last_channel must be positive".into()
        })?;
        ensure(self.bn_eps > 0.0, || "bn_eps must be positive".into())
    }
}

/// Builds the graph: input `image` `[batch, in_channels, S, S]`, output `logits`.
pub fn build(c: &MobileNetV2Config, o: &BuildOptions) -> R<Graph> {
    c.validate()?;
    let mut n = Net::new("mobilenet_v2", o.seed);
    let x = n.image(c.in_channels, c.image_size);
    let eps = c.bn_eps;
    let rn = c.round_nearest;
    let mut cin = make_divisible(c.input_channel as f64 * c.width_mult, rn);
    let last = make_divisible(c.last_channel as f64 * c.width_mult.max(1.0), rn);
    let x = n.scope("features", |n| {
        let mut x = n.scope("0", |n| {
            conv_norm_act(n, x, c.in_channels, cin, 3, 2, 1, eps, Act::Relu6)
        })?;
        let mut idx = 1;
        for &[t, ch, reps, s] in &c.inverted_residual_setting {
            let cout = make_divisible(ch as f64 * c.width_mult, rn);
            for i in 0..reps {
                let stride = if i == 0 { s } else { 1 };
                x = n.scope(&idx.to_string(), |n| {
                    inverted_residual(n, x, cin, cout, stride, t, eps)
                })?;
                cin = cout;
                idx += 1;
            }
        }
        n.scope(&idx.to_string(), |n| {
            conv_norm_act(n, x, cin, last, 1, 1, 1, eps, Act::Relu6)
        })
    })?;
    let x = n.pool_flatten(x)?;
    let y = n.scope("classifier", |n| {
        n.scope("1", |n| n.linear2d(x, last, c.num_classes))
    })?;
    n.finish(y, "logits", "cnn")
}

fn inverted_residual(
    n: &mut Net,
    x: ValueRef,
    inp: usize,
    oup: usize,
    stride: usize,
    t: usize,
    eps: f32,
) -> R<ValueRef> {
    let hidden = inp * t;
    let y = n.scope("conv", |n| {
        let mut k = 0;
        let mut y = x;
        if t != 1 {
            y = n.scope("0", |n| {
                conv_norm_act(n, y, inp, hidden, 1, 1, 1, eps, Act::Relu6)
            })?;
            k = 1;
        }
        y = n.scope(&k.to_string(), |n| {
            conv_norm_act(n, y, hidden, hidden, 3, stride, hidden, eps, Act::Relu6)
        })?;
        let y = n.scope(&(k + 1).to_string(), |n| {
            n.conv(y, hidden, oup, 1, 1, 0, 1, false)
        })?;
        n.scope(&(k + 2).to_string(), |n| n.bn(y, oup, eps))
    })?;
    if stride == 1 && inp == oup {
        n.op("Add", &[x, y], &[])
    } else {
        Ok(y)
    }
}
