//! DenseNet (torchvision `densenet121`).
//!
//! `features`: `conv0` 7x7/2, `norm0`, `relu0`, `pool0` 3x3/2, then `denseblock1..` of
//! `denselayer1..` (concat of all earlier features, `norm1`, `relu1`, `conv1` 1x1 to
//! `bn_size * growth_rate`, `norm2`, `relu2`, `conv2` 3x3 to `growth_rate`), `transition1..`
//! between blocks (`norm`, `relu`, `conv` 1x1 halving the channels, `pool` 2x2/2 average), and
//! `norm5`; then ReLU, global average pool and `classifier`.

use super::common::{check_image, Net, R};
use crate::config::ensure;
use crate::BuildOptions;
use petasos_ir::op::Attr;
use petasos_ir::Graph;
use serde::{Deserialize, Serialize};

/// A DenseNet.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DenseNetConfig {
    pub growth_rate: usize,
    /// Dense layers per block.
    pub block_config: Vec<usize>,
    pub num_init_features: usize,
    /// Bottleneck width multiplier (channels of the 1x1 conv = `bn_size * growth_rate`).
    pub bn_size: usize,
    pub num_classes: usize,
    pub in_channels: usize,
    pub image_size: usize,
    pub bn_eps: f32,
}

impl DenseNetConfig {
    /// torchvision `densenet121` (7,978,856 parameters).
    pub fn densenet121() -> Self {
        DenseNetConfig {
            growth_rate: 32,
            block_config: vec![6, 12, 24, 16],
            num_init_features: 64,
            bn_size: 4,
            num_classes: 1000,
            in_channels: 3,
            image_size: 224,
            bn_eps: 1e-5,
        }
    }

    pub fn validate(&self) -> R<()> {
        check_image(self.image_size, self.in_channels, self.num_classes, 1)?;
        ensure(self.growth_rate > 0, || {
            "growth_rate must be positive".into()
        })?;
        ensure(self.bn_size > 0, || "bn_size must be positive".into())?;
        ensure(self.num_init_features > 0, || {
            "num_init_features must be positive".into()
        })?;
        ensure(!self.block_config.is_empty(), || {
            "block_config must name at least one block".into()
        })?;
        ensure(self.block_config.iter().all(|&n| n > 0), || {
            format!(
                "block_config: every block needs a layer (got {:?})",
                self.block_config
            )
        })?;
        ensure(self.bn_eps > 0.0, || "bn_eps must be positive".into())?;
        // Stem: 7x7/2 conv and 3x3/2 pool (padded); each transition halves with a 2x2 pool.
        let mut s = (self.image_size - 1) / 2 + 1;
        s = (s - 1) / 2 + 1;
        for _ in 1..self.block_config.len() {
            ensure(s >= 2, || {
                format!(
                    "image_size {} is too small for {} dense blocks",
                    self.image_size,
                    self.block_config.len()
                )
            })?;
            s /= 2;
        }
        Ok(())
    }
}

/// Builds the graph: input `image` `[batch, in_channels, S, S]`, output `logits`.
pub fn build(c: &DenseNetConfig, o: &BuildOptions) -> R<Graph> {
    c.validate()?;
    let mut n = Net::new("densenet", o.seed);
    let x = n.image(c.in_channels, c.image_size);
    let eps = c.bn_eps;
    let (x, feats) = n.scope("features", |n| {
        let f0 = c.num_init_features;
        let x = n.scope("conv0", |n| n.conv(x, c.in_channels, f0, 7, 2, 3, 1, false))?;
        let x = n.scope("norm0", |n| n.bn(x, f0, eps))?;
        let x = n.scope("relu0", |n| n.relu(x))?;
        let mut x = n.scope("pool0", |n| {
            n.op(
                "MaxPool",
                &[x],
                &[
                    ("kernel_shape", Attr::Ints(vec![3, 3])),
                    ("strides", Attr::Ints(vec![2, 2])),
                    ("pads", Attr::Ints(vec![1, 1, 1, 1])),
                ],
            )
        })?;
        let mut feats = f0;
        for (i, &layers) in c.block_config.iter().enumerate() {
            x = n.scope(&format!("denseblock{}", i + 1), |n| {
                let mut all = vec![x];
                for j in 0..layers {
                    let cin = feats + j * c.growth_rate;
                    let y = n.scope(&format!("denselayer{}", j + 1), |n| {
                        let inp = if all.len() == 1 {
                            all[0]
                        } else {
                            n.op("Concat", &all, &[("axis", Attr::Int(1))])?
                        };
                        let mid = c.bn_size * c.growth_rate;
                        let y = n.scope("norm1", |n| n.bn(inp, cin, eps))?;
                        let y = n.scope("relu1", |n| n.relu(y))?;
                        let y = n.scope("conv1", |n| n.conv(y, cin, mid, 1, 1, 0, 1, false))?;
                        let y = n.scope("norm2", |n| n.bn(y, mid, eps))?;
                        let y = n.scope("relu2", |n| n.relu(y))?;
                        n.scope("conv2", |n| {
                            n.conv(y, mid, c.growth_rate, 3, 1, 1, 1, false)
                        })
                    })?;
                    all.push(y);
                }
                n.op("Concat", &all, &[("axis", Attr::Int(1))])
            })?;
            feats += layers * c.growth_rate;
            if i + 1 < c.block_config.len() {
                let out = feats / 2;
                x = n.scope(&format!("transition{}", i + 1), |n| {
                    let y = n.scope("norm", |n| n.bn(x, feats, eps))?;
                    let y = n.scope("relu", |n| n.relu(y))?;
                    let y = n.scope("conv", |n| n.conv(y, feats, out, 1, 1, 0, 1, false))?;
                    n.scope("pool", |n| {
                        n.op(
                            "AveragePool",
                            &[y],
                            &[
                                ("kernel_shape", Attr::Ints(vec![2, 2])),
                                ("strides", Attr::Ints(vec![2, 2])),
                            ],
                        )
                    })
                })?;
                feats = out;
            }
        }
        let x = n.scope("norm5", |n| n.bn(x, feats, eps))?;
        Ok((x, feats))
    })?;
    let x = n.relu(x)?;
    let x = n.pool_flatten(x)?;
    let y = n.scope("classifier", |n| n.linear2d(x, feats, c.num_classes))?;
    n.finish(y, "logits", "cnn")
}
