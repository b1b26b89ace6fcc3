//! Layers shared by the vision builders: a [`Net`] wraps the graph builder and keeps the
//! parameter tally the torchvision way (learned weights only; batch-norm running statistics are
//! buffers and shape constants are neither).
//!
//! Names follow PyTorch state dicts: inside scope `layer1/0/conv1` the weight is the constant
//! `layer1.0.conv1.weight` and the Conv node's layer path is `/layer1/0/conv1`.

use crate::ModelError;
use petasos_ir::builder::GraphBuilder;
use petasos_ir::op::Attr;
use petasos_ir::{DType, Dim, Graph, Tensor, ValueRef, ValueType};

/// Graph metadata key holding the learned-parameter count (torchvision's `parameters()` sum).
pub const META_PARAMETERS: &str = "learned_parameters";
/// Graph metadata key holding the buffer element count (batch-norm running mean and variance).
pub const META_BUFFERS: &str = "buffers";

/// A graph under construction with its parameter and buffer tallies.
pub(crate) struct Net {
    pub b: GraphBuilder,
    pub params: u64,
    pub buffers: u64,
    relu6: Option<(ValueRef, ValueRef)>,
}

pub(crate) type R<T> = Result<T, ModelError>;

impl Net {
    pub fn new(name: &str, seed: u64) -> Net {
        Net {
            b: GraphBuilder::new(name, seed),
            params: 0,
            buffers: 0,
            relu6: None,
        }
    }

    /// The image input `float[batch, channels, size, size]`.
    pub fn image(&mut self, channels: usize, size: usize) -> ValueRef {
        self.b.input(
            "image",
            ValueType::new(
                DType::F32,
                vec![
                    Dim::sym("batch"),
                    Dim::Known(channels as u64),
                    Dim::Known(size as u64),
                    Dim::Known(size as u64),
                ],
            ),
        )
    }

    /// Runs `f` inside the scope `name`.
    pub fn scope<T>(&mut self, name: &str, f: impl FnOnce(&mut Net) -> R<T>) -> R<T> {
        self.b.push(name);
        let r = f(self);
        self.b.pop();
        r
    }

    /// A learned weight (synthetic values uniform in `[-scale, scale]`), counted as a parameter.
    pub fn param(&mut self, name: &str, shape: &[usize], scale: f32) -> ValueRef {
        self.params += shape.iter().product::<usize>() as u64;
        self.b.weight(name, DType::F32, shape, scale)
    }

    /// A buffer with given values, counted as a buffer.
    fn buffer(&mut self, name: &str, shape: &[usize], v: Vec<f32>) -> R<ValueRef> {
        self.buffers += v.len() as u64;
        Ok(self.b.constant(name, Tensor::from_f32(shape, v)?))
    }

    pub fn op(&mut self, op: &str, ins: &[ValueRef], attrs: &[(&str, Attr)]) -> R<ValueRef> {
        Ok(self.b.op(op, ins, attrs)?)
    }

    /// `Conv` in the current scope with `weight` (and `bias`): square kernel `k`, padding `pad`.
    #[allow(clippy::too_many_arguments)]
    pub fn conv(
        &mut self,
        x: ValueRef,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        pad: usize,
        groups: usize,
        bias: bool,
    ) -> R<ValueRef> {
        let fan_in = (cin / groups) * k * k;
        let scale = (3.0 / fan_in as f32).sqrt();
        let w = self.param("weight", &[cout, cin / groups, k, k], scale);
        let mut ins = vec![x, w];
        if bias {
            ins.push(self.param("bias", &[cout], 0.1));
        }
        let (k, s, p) = (k as i64, stride as i64, pad as i64);
        self.op(
            "Conv",
            &ins,
            &[
                ("kernel_shape", Attr::Ints(vec![k, k])),
                ("strides", Attr::Ints(vec![s, s])),
                ("pads", Attr::Ints(vec![p, p, p, p])),
                ("group", Attr::Int(groups as i64)),
            ],
        )
    }

    /// `BatchNormalization` in the current scope (inference form): learned `weight` and `bias`,
    /// buffers `running_mean` and `running_var` (positive, deterministic values).
    pub fn bn(&mut self, x: ValueRef, c: usize, eps: f32) -> R<ValueRef> {
        let g = self.param("weight", &[c], 1.0);
        let b = self.param("bias", &[c], 0.1);
        let mean: Vec<f32> = (0..c)
            .map(|i| ((i * 37 % 17) as f32 - 8.0) * 0.01)
            .collect();
        let var: Vec<f32> = (0..c)
            .map(|i| 0.5 + (i * 7919 % 13) as f32 / 13.0)
            .collect();
        let m = self.buffer("running_mean", &[c], mean)?;
        let v = self.buffer("running_var", &[c], var)?;
        self.op(
            "BatchNormalization",
            &[x, g, b, m, v],
            &[("epsilon", Attr::Float(eps))],
        )
    }

    /// `Linear` on `[batch, in]`: `Gemm` with `weight` `[out, in]` (transposed) and `bias`.
    pub fn linear2d(&mut self, x: ValueRef, cin: usize, cout: usize) -> R<ValueRef> {
        let w = self.param("weight", &[cout, cin], (3.0 / cin as f32).sqrt());
        let b = self.param("bias", &[cout], 0.1);
        self.op("Gemm", &[x, w, b], &[("transB", Attr::Int(1))])
    }

    /// `Linear` on `[..., in]` of any rank: `MatMul` by the transposed `weight` `[out, in]`,
    /// then `Add` of `bias`.
    pub fn linear(&mut self, x: ValueRef, cin: usize, cout: usize) -> R<ValueRef> {
        let w = self.param("weight", &[cout, cin], (3.0 / cin as f32).sqrt());
        let b = self.param("bias", &[cout], 0.1);
        let wt = self.op("Transpose", &[w], &[("perm", Attr::Ints(vec![1, 0]))])?;
        let y = self.op("MatMul", &[x, wt], &[])?;
        self.op("Add", &[y, b], &[])
    }

    pub fn relu(&mut self, x: ValueRef) -> R<ValueRef> {
        self.op("Relu", &[x], &[])
    }

    /// `ReLU6` as `Clip(x, 0, 6)`; the two bounds are graph-wide constants made at first use.
    pub fn relu6(&mut self, x: ValueRef) -> R<ValueRef> {
        let (lo, hi) = match self.relu6 {
            Some(p) => p,
            None => {
                let p = (
                    self.b.scalar("relu6_min", DType::F32, 0.0),
                    self.b.scalar("relu6_max", DType::F32, 6.0),
                );
                self.relu6 = Some(p);
                p
            }
        };
        self.op("Clip", &[x, lo, hi], &[])
    }

    /// `SiLU` as `x * Sigmoid(x)` (opset 23 has no Swish).
    pub fn silu(&mut self, x: ValueRef) -> R<ValueRef> {
        let s = self.op("Sigmoid", &[x], &[])?;
        self.op("Mul", &[x, s], &[])
    }

    /// Global average pooling then flatten: `[batch, C, H, W]` to `[batch, C]`.
    pub fn pool_flatten(&mut self, x: ValueRef) -> R<ValueRef> {
        let p = self.op("GlobalAveragePool", &[x], &[])?;
        self.op("Flatten", &[p], &[("axis", Attr::Int(1))])
    }

    /// Marks the output, records metadata (family, parameter and buffer counts) and verifies.
    pub fn finish(mut self, out: ValueRef, out_name: &str, family: &str) -> R<Graph> {
        self.b.output(out, out_name);
        self.b.metadata("family", family);
        self.b.metadata(META_PARAMETERS, &self.params.to_string());
        self.b.metadata(META_BUFFERS, &self.buffers.to_string());
        Ok(self.b.finish()?)
    }
}

/// `Conv2dNormActivation` of torchvision: children `0` (conv, no bias), `1` (batch norm) and
/// the activation; padding `(k - 1) / 2`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Act {
    None,
    Relu6,
    Silu,
}

impl Act {
    pub fn apply(self, n: &mut Net, x: ValueRef) -> R<ValueRef> {
        match self {
            Act::None => Ok(x),
            Act::Relu6 => n.relu6(x),
            Act::Silu => n.silu(x),
        }
    }
}

/// Conv (scope `0`), BatchNorm (scope `1`), activation (scope `2`) in the current scope.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_norm_act(
    n: &mut Net,
    x: ValueRef,
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    groups: usize,
    eps: f32,
    act: Act,
) -> R<ValueRef> {
    let y = n.scope("0", |n| {
        n.conv(x, cin, cout, k, stride, (k - 1) / 2, groups, false)
    })?;
    let y = n.scope("1", |n| n.bn(y, cout, eps))?;
    n.scope("2", |n| act.apply(n, y))
}

/// torchvision's `_make_divisible`: `v` rounded to a multiple of `divisor`, at least `divisor`
/// and never below 90% of `v`.
pub(crate) fn make_divisible(v: f64, divisor: usize) -> usize {
    let d = divisor as f64;
    let mut nv = (((v + d / 2.0) as usize) / divisor * divisor).max(divisor);
    if (nv as f64) < 0.9 * v {
        nv += divisor;
    }
    nv
}

/// The learned-parameter count recorded in a graph built here (`None` for other graphs).
pub fn parameter_count(g: &Graph) -> Option<u64> {
    g.metadata.get(META_PARAMETERS)?.parse().ok()
}

/// Checks shared by the image models.
pub(crate) fn check_image(
    image_size: usize,
    in_channels: usize,
    num_classes: usize,
    min_size: usize,
) -> R<()> {
    crate::config::ensure(num_classes > 0, || "num_classes must be positive".into())?;
    crate::config::ensure(in_channels > 0, || "in_channels must be positive".into())?;
    crate::config::ensure(image_size >= min_size, || {
        format!("image_size must be at least {min_size} (got {image_size})")
    })
}
