//! Presets of the `cnn` family: torchvision's ResNet, DenseNet, MobileNetV2 and EfficientNetV2
//! with torchvision's module names (weights `layer1.0.conv1.weight`, layer paths
//! `/layer1/0/conv1`).
//!
//! Batch norms stay `BatchNormalization` nodes (unfolded). Their running mean and variance are
//! buffers, not parameters, as in torchvision: the graph metadata entry `parameters` holds the
//! learned-parameter count (torchvision's figure), `buffers` the running-statistics elements.
//! `petasos_ir::stats` counts every constant, so its figure is the sum of the two plus small
//! auxiliary constants (the ReLU6 bounds).

pub mod common;
pub mod densenet;
pub mod efficientnet;
pub mod mobilenet;
pub mod resnet;

pub use common::parameter_count;
pub use densenet::DenseNetConfig;
pub use efficientnet::EfficientNetConfig;
pub use mobilenet::MobileNetV2Config;
pub use resnet::ResNetConfig;

use crate::config::apply_overrides;
use crate::Preset;

/// This family's presets.
pub fn presets() -> Vec<Preset> {
    vec![
        Preset {
            name: "resnet18",
            family: "cnn",
            summary: "ResNet-18 (torchvision), 11.7M parameters, 224x224",
            build: |o| {
                resnet::build(
                    &apply_overrides(&ResNetConfig::resnet18(), o.overrides.as_ref())?,
                    o,
                )
            },
        },
        Preset {
            name: "resnet50",
            family: "cnn",
            summary: "ResNet-50 v1.5 (torchvision), 25.6M parameters, 224x224",
            build: |o| {
                resnet::build(
                    &apply_overrides(&ResNetConfig::resnet50(), o.overrides.as_ref())?,
                    o,
                )
            },
        },
        Preset {
            name: "densenet121",
            family: "cnn",
            summary: "DenseNet-121 (torchvision), 8.0M parameters, 224x224",
            build: |o| {
                densenet::build(
                    &apply_overrides(&DenseNetConfig::densenet121(), o.overrides.as_ref())?,
                    o,
                )
            },
        },
        Preset {
            name: "mobilenet_v2",
            family: "cnn",
            summary: "MobileNetV2 (torchvision), 3.5M parameters, 224x224",
            build: |o| {
                mobilenet::build(
                    &apply_overrides(&MobileNetV2Config::mobilenet_v2(), o.overrides.as_ref())?,
                    o,
                )
            },
        },
        Preset {
            name: "efficientnet_v2_s",
            family: "cnn",
            summary: "EfficientNetV2-S (torchvision), 21.5M parameters, 384x384",
            build: |o| {
                efficientnet::build(
                    &apply_overrides(
                        &EfficientNetConfig::efficientnet_v2_s(),
                        o.overrides.as_ref(),
                    )?,
                    o,
                )
            },
        },
    ]
}
