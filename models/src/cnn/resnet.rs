//! ResNet (torchvision `resnet18`, `resnet50`; v1.5: the stride sits on the 3x3 conv).
//!
//! Stem `conv1` 7x7/2, `bn1`, `relu`, `maxpool` 3x3/2; stages `layer1..` of basic or bottleneck
//! blocks (`conv1`, `bn1`, `conv2`, `bn2`[, `conv3`, `bn3`], `downsample.0/1` where the shape
//! changes); global average pool; `fc`.

use super::common::{check_image, Net, R};
use crate::config::ensure;
use crate::BuildOptions;
use petasos_ir::{Graph, ValueRef};
use serde::{Deserialize, Serialize};

/// The residual block kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Block {
    /// Two 3x3 convs (expansion 1).
    Basic,
    /// 1x1, 3x3, 1x1 (expansion 4).
    Bottleneck,
}

impl Block {
    fn expansion(self) -> usize {
        match self {
            Block::Basic => 1,
            Block::Bottleneck => 4,
        }
    }
}

/// A ResNet.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ResNetConfig {
    pub block: Block,
    /// Blocks per stage; stage `i` has `width * 2^i` planes and stride 2 from the second on.
    pub layers: Vec<usize>,
    /// Stem channels and planes of the first stage (64).
    pub width: usize,
    /// Grouped 3x3 convs (ResNeXt); 1 for ResNet.
    pub groups: usize,
    /// Bottleneck width per group (64 for ResNet).
    pub width_per_group: usize,
    pub num_classes: usize,
    pub in_channels: usize,
    pub image_size: usize,
    pub bn_eps: f32,
}

impl ResNetConfig {
    fn base(block: Block, layers: Vec<usize>) -> Self {
        ResNetConfig {
            block,
            layers,
            width: 64,
            groups: 1,
            width_per_group: 64,
            num_classes: 1000,
            in_channels: 3,
            image_size: 224,
            bn_eps: 1e-5,
        }
    }

    /// torchvision `resnet18` (11,689,512 parameters).
    pub fn resnet18() -> Self {
        Self::base(Block::Basic, vec![2, 2, 2, 2])
    }

    /// torchvision `resnet50` (25,557,032 parameters).
    pub fn resnet50() -> Self {
        Self::base(Block::Bottleneck, vec![3, 4, 6, 3])
    }

    pub fn validate(&self) -> R<()> {
        check_image(self.image_size, self.in_channels, self.num_classes, 1)?;
        ensure(!self.layers.is_empty(), || {
            "layers must name at least one stage".into()
        })?;
        ensure(self.layers.iter().all(|&n| n > 0), || {
            format!(
                "layers: every stage needs at least one block (got {:?})",
                self.layers
            )
        })?;
        ensure(self.width > 0, || "width must be positive".into())?;
        ensure(self.groups > 0, || "groups must be positive".into())?;
        ensure(self.width_per_group > 0, || {
            "width_per_group must be positive".into()
        })?;
        ensure(
            self.block == Block::Bottleneck || (self.groups == 1 && self.width_per_group == 64),
            || "groups and width_per_group other than 1 and 64 need the bottleneck block".into(),
        )?;
        ensure(self.bn_eps > 0.0, || "bn_eps must be positive".into())
    }
}

/// Builds the graph: input `image` `[batch, in_channels, S, S]`, output `logits`.
pub fn build(c: &ResNetConfig, o: &BuildOptions) -> R<Graph> {
    c.validate()?;
    let mut n = Net::new("resnet", o.seed);
    let x = n.image(c.in_channels, c.image_size);
    let eps = c.bn_eps;
    let x = n.scope("conv1", |n| {
        n.conv(x, c.in_channels, c.width, 7, 2, 3, 1, false)
    })?;
    let x = n.scope("bn1", |n| n.bn(x, c.width, eps))?;
    let x = n.scope("relu", |n| n.relu(x))?;
    let mut x = n.scope("maxpool", |n| {
        n.op(
            "MaxPool",
            &[x],
            &[
                ("kernel_shape", ints(&[3, 3])),
                ("strides", ints(&[2, 2])),
                ("pads", ints(&[1, 1, 1, 1])),
            ],
        )
    })?;
    let mut inplanes = c.width;
    for (i, &blocks) in c.layers.iter().enumerate() {
        let planes = c.width << i;
        x = n.scope(&format!("layer{}", i + 1), |n| {
            let mut x = x;
            for j in 0..blocks {
                let stride = if i > 0 && j == 0 { 2 } else { 1 };
                x = n.scope(&j.to_string(), |n| block(n, c, x, inplanes, planes, stride))?;
                inplanes = planes * c.block.expansion();
            }
            Ok(x)
        })?;
    }
    let x = n.scope("avgpool", |n| n.pool_flatten(x))?;
    let y = n.scope("fc", |n| n.linear2d(x, inplanes, c.num_classes))?;
    n.finish(y, "logits", "cnn")
}

fn ints(v: &[i64]) -> petasos_ir::op::Attr {
    petasos_ir::op::Attr::Ints(v.to_vec())
}

fn block(
    n: &mut Net,
    c: &ResNetConfig,
    x: ValueRef,
    inplanes: usize,
    planes: usize,
    stride: usize,
) -> R<ValueRef> {
    let eps = c.bn_eps;
    let out = planes * c.block.expansion();
    let y = match c.block {
        Block::Basic => {
            let y = n.scope("conv1", |n| {
                n.conv(x, inplanes, planes, 3, stride, 1, 1, false)
            })?;
            let y = n.scope("bn1", |n| n.bn(y, planes, eps))?;
            let y = n.scope("relu", |n| n.relu(y))?;
            let y = n.scope("conv2", |n| n.conv(y, planes, planes, 3, 1, 1, 1, false))?;
            n.scope("bn2", |n| n.bn(y, planes, eps))?
        }
        Block::Bottleneck => {
            let w = planes * c.width_per_group / 64 * c.groups;
            let g = c.groups;
            let y = n.scope("conv1", |n| n.conv(x, inplanes, w, 1, 1, 0, 1, false))?;
            let y = n.scope("bn1", |n| n.bn(y, w, eps))?;
            let y = n.scope("relu", |n| n.relu(y))?;
            let y = n.scope("conv2", |n| n.conv(y, w, w, 3, stride, 1, g, false))?;
            let y = n.scope("bn2", |n| n.bn(y, w, eps))?;
            let y = n.scope("relu_1", |n| n.relu(y))?;
            let y = n.scope("conv3", |n| n.conv(y, w, out, 1, 1, 0, 1, false))?;
            n.scope("bn3", |n| n.bn(y, out, eps))?
        }
    };
    let skip = if stride != 1 || inplanes != out {
        n.scope("downsample", |n| {
            let s = n.scope("0", |n| n.conv(x, inplanes, out, 1, stride, 0, 1, false))?;
            n.scope("1", |n| n.bn(s, out, eps))
        })?
    } else {
        x
    };
    let y = n.op("Add", &[y, skip], &[])?;
    // torchvision reuses one `relu` module; its later uses are `relu_1`, `relu_2` as in
    // torch.onnx exports.
    let last = match c.block {
        Block::Basic => "relu_1",
        Block::Bottleneck => "relu_2",
    };
    n.scope(last, |n| n.relu(y))
}
