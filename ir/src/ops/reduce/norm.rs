//! Statistic normalisations: `LayerNormalization`, `RMSNormalization`, `GroupNormalization`,
//! `InstanceNormalization` and `BatchNormalization`.

use super::common::{array, floats, groups, mean_var, one_axis, reduced_dims, reduced_shape};
use super::softmax::map_groups;
use crate::op::{opt, req, Attr, EvalCx, InferCx, Op};
use crate::ops::util::{broadcast_to, same_as_input, zip_broadcast};
use crate::ops::Registry;
use crate::shape::ValueType;
use crate::tensor::Tensor;
use crate::{eval_err, infer_err, DType, Result};
use ndarray::{ArrayD, IxDyn, Zip};
use serde::{Deserialize, Serialize};
use std::any::Any;

/// Registers this file's builders.
pub fn register(r: &mut Registry) {
    r.add("LayerNormalization", |cx| {
        Ok(Box::new(LayerNormalization {
            axis: cx.i("axis", -1)?,
            epsilon: cx.f("epsilon", 1e-5)?,
            stash_type: cx.i("stash_type", 1)?,
        }))
    });
    r.add("RMSNormalization", |cx| {
        Ok(Box::new(RmsNormalization {
            axis: cx.i("axis", -1)?,
            epsilon: cx.f("epsilon", 1e-5)?,
            stash_type: cx.i("stash_type", 1)?,
        }))
    });
    r.add("GroupNormalization", |cx| {
        let num_groups = cx
            .opt_i("num_groups")?
            .ok_or_else(|| cx.invalid("num_groups", "is required"))?;
        if num_groups <= 0 {
            return Err(cx.invalid("num_groups", "must be positive"));
        }
        Ok(Box::new(GroupNormalization {
            num_groups,
            epsilon: cx.f("epsilon", 1e-5)?,
            stash_type: cx.opt_i("stash_type")?,
        }))
    });
    r.add("InstanceNormalization", |cx| {
        Ok(Box::new(InstanceNormalization {
            epsilon: cx.f("epsilon", 1e-5)?,
        }))
    });
    r.add("BatchNormalization", |cx| {
        Ok(Box::new(BatchNormalization {
            epsilon: cx.f("epsilon", 1e-5)?,
            momentum: cx.f("momentum", 0.9)?,
            training_mode: cx.i("training_mode", 0)? != 0,
            spatial: cx.opt_i("spatial")?,
            is_test: cx.opt_i("is_test")?,
        }))
    });
}

/// Elements of input 0 when known (roughly the work of a normalisation), else 0.
fn input_numel(inputs: &[Option<&ValueType>]) -> u64 {
    inputs
        .first()
        .copied()
        .flatten()
        .and_then(|t| t.numel())
        .unwrap_or(0)
}

/// The dtype named by a `stash_type` attribute, or `fallback` if it names no float type.
fn stash_dtype(code: i64, fallback: DType) -> DType {
    DType::from_onnx_code(code as i32)
        .filter(|d| d.is_float())
        .unwrap_or(fallback)
}

/// `y * scale (+ bias)`, broadcasting the parameters to `y`'s shape (which must not grow).
fn affine(
    op: &str,
    y: ArrayD<f64>,
    scale: Option<&Tensor>,
    bias: Option<&Tensor>,
) -> Result<ArrayD<f64>> {
    let mut y = y;
    for (t, mul) in [(scale, true), (bias, false)] {
        if let Some(t) = t {
            let p = t.to_f()?;
            let z = zip_broadcast(&y, &p, |a, b| if mul { a * b } else { a + b })
                .map_err(|e| eval_err!("{op}: {e}"))?;
            if z.shape() != y.shape() {
                return Err(eval_err!(
                    "{op}: parameter of shape {:?} does not fit input {:?}",
                    p.shape(),
                    y.shape()
                ));
            }
            y = z;
        }
    }
    Ok(y)
}

/// Layer normalisation over the axes from `axis` on; also outputs the mean and the inverse
/// standard deviation (in `stash_type`, shaped like the input with the normalised axes as 1).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LayerNormalization {
    pub axis: i64,
    pub epsilon: f32,
    pub stash_type: i64,
}

#[typetag::serde]
impl Op for LayerNormalization {
    fn op_type(&self) -> &str {
        "LayerNormalization"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let x = cx.input(0)?;
        let sd = stash_dtype(self.stash_type, x.dtype);
        let stat = match &x.shape {
            Some(d) => {
                let a = one_axis("LayerNormalization", self.axis, d.len())
                    .map_err(|e| infer_err!("{e}"))?;
                let mask: Vec<bool> = (0..d.len()).map(|i| i >= a).collect();
                ValueType::new(sd, reduced_dims(d, &mask, true))
            }
            None => ValueType::unranked(sd),
        };
        Ok(vec![x.clone(), stat.clone(), stat])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        const OP: &str = "LayerNormalization";
        let x = req(inputs, 0)?;
        let xa = floats(OP, x)?;
        let a = one_axis(OP, self.axis, x.rank())?;
        let mask: Vec<bool> = (0..x.rank()).map(|i| i >= a).collect();
        let eps = self.epsilon as f64;
        let (mut means, mut invs) = (Vec::new(), Vec::new());
        for g in groups(xa, &mask)? {
            let (m, v) = mean_var(&g);
            means.push(m);
            invs.push(1.0 / (v + eps).sqrt());
        }
        let y = map_groups(xa, &mask, |g| {
            let (m, v) = mean_var(g);
            let inv = 1.0 / (v + eps).sqrt();
            g.iter().map(|x| (x - m) * inv).collect()
        })?;
        let y = affine(OP, y, Some(req(inputs, 1)?), opt(inputs, 2))?;
        let sshape = reduced_shape(x.shape(), &mask, true);
        let sd = stash_dtype(self.stash_type, x.dtype());
        Ok(vec![
            Tensor::float(x.dtype(), y),
            Tensor::float(sd, array(OP, &sshape, means)?),
            Tensor::float(sd, array(OP, &sshape, invs)?),
        ])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        vec![
            ("axis", Attr::Int(self.axis)),
            ("epsilon", Attr::Float(self.epsilon)),
            ("stash_type", Attr::Int(self.stash_type)),
        ]
    }
    fn macs(&self, inputs: &[Option<&ValueType>], _outputs: &[ValueType]) -> u64 {
        input_numel(inputs)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// RMS normalisation over the axes from `axis` on: `x / sqrt(mean(x^2) + epsilon) * scale`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RmsNormalization {
    pub axis: i64,
    pub epsilon: f32,
    pub stash_type: i64,
}

#[typetag::serde]
impl Op for RmsNormalization {
    fn op_type(&self) -> &str {
        "RMSNormalization"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        same_as_input(cx, 0, 1)
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        const OP: &str = "RMSNormalization";
        let x = req(inputs, 0)?;
        let xa = floats(OP, x)?;
        let a = one_axis(OP, self.axis, x.rank())?;
        let mask: Vec<bool> = (0..x.rank()).map(|i| i >= a).collect();
        let eps = self.epsilon as f64;
        let y = map_groups(xa, &mask, |g| {
            let ms = g.iter().map(|x| x * x).sum::<f64>() / g.len() as f64;
            let inv = 1.0 / (ms + eps).sqrt();
            g.iter().map(|x| x * inv).collect()
        })?;
        let y = affine(OP, y, Some(req(inputs, 1)?), None)?;
        Ok(vec![Tensor::float(x.dtype(), y)])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        vec![
            ("axis", Attr::Int(self.axis)),
            ("epsilon", Attr::Float(self.epsilon)),
            ("stash_type", Attr::Int(self.stash_type)),
        ]
    }
    fn macs(&self, inputs: &[Option<&ValueType>], _outputs: &[ValueType]) -> u64 {
        input_numel(inputs)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Normalises `x` of shape `(N, C, ...)` over each of `groups` channel groups (and all spatial
/// positions), then applies a per-channel (length C) or per-group (length `groups`, opset 18)
/// scale and bias.
fn group_norm(
    op: &str,
    x: &Tensor,
    groups_n: usize,
    scale: &Tensor,
    bias: &Tensor,
    eps: f64,
) -> Result<Tensor> {
    let xa = floats(op, x)?;
    let s = x.shape();
    if s.len() < 2 {
        return Err(eval_err!("{op}: input must be (N, C, ...), got {s:?}"));
    }
    let c = s[1];
    if groups_n == 0 || !c.is_multiple_of(groups_n) {
        return Err(eval_err!(
            "{op}: {c} channels do not split into {groups_n} groups"
        ));
    }
    let spatial: usize = s[2..].iter().product();
    let per = c / groups_n;
    let sv = scale.to_f64_vec()?;
    let bv = bias.to_f64_vec()?;
    let param = |v: &[f64], ch: usize, what: &str| -> Result<f64> {
        if v.len() == c {
            Ok(v[ch])
        } else if v.len() == groups_n {
            Ok(v[ch / per])
        } else {
            Err(eval_err!(
                "{op}: {what} has {} values, expected {c} (or {groups_n})",
                v.len()
            ))
        }
    };
    let flat: Vec<f64> = xa.iter().copied().collect();
    let chunk = per * spatial;
    let mut out = vec![0.0; flat.len()];
    if chunk > 0 {
        for (gi, (src, dst)) in flat.chunks(chunk).zip(out.chunks_mut(chunk)).enumerate() {
            let (m, v) = mean_var(src);
            let inv = 1.0 / (v + eps).sqrt();
            let g = gi % groups_n;
            for (p, (x, y)) in src.iter().zip(dst.iter_mut()).enumerate() {
                let ch = g * per + p / spatial;
                *y = (x - m) * inv * param(&sv, ch, "scale")? + param(&bv, ch, "bias")?;
            }
        }
    }
    Ok(Tensor::float(x.dtype(), array(op, s, out)?))
}

/// Group normalisation (`num_groups` groups of channels).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GroupNormalization {
    pub num_groups: i64,
    pub epsilon: f32,
    /// `stash_type` (opset 21), when the node has it.
    pub stash_type: Option<i64>,
}

#[typetag::serde]
impl Op for GroupNormalization {
    fn op_type(&self) -> &str {
        "GroupNormalization"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        same_as_input(cx, 0, 1)
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let y = group_norm(
            "GroupNormalization",
            req(inputs, 0)?,
            self.num_groups.max(0) as usize,
            req(inputs, 1)?,
            req(inputs, 2)?,
            self.epsilon as f64,
        )?;
        Ok(vec![y])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        let mut v = vec![
            ("num_groups", Attr::Int(self.num_groups)),
            ("epsilon", Attr::Float(self.epsilon)),
        ];
        if let Some(s) = self.stash_type {
            v.push(("stash_type", Attr::Int(s)));
        }
        v
    }
    fn macs(&self, inputs: &[Option<&ValueType>], _outputs: &[ValueType]) -> u64 {
        input_numel(inputs)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Instance normalisation: each `(n, c)` slice normalised over its spatial positions.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InstanceNormalization {
    pub epsilon: f32,
}

#[typetag::serde]
impl Op for InstanceNormalization {
    fn op_type(&self) -> &str {
        "InstanceNormalization"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        same_as_input(cx, 0, 1)
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let c = x.shape().get(1).copied().unwrap_or(0);
        let y = group_norm(
            "InstanceNormalization",
            x,
            c,
            req(inputs, 1)?,
            req(inputs, 2)?,
            self.epsilon as f64,
        )?;
        Ok(vec![y])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        vec![("epsilon", Attr::Float(self.epsilon))]
    }
    fn macs(&self, inputs: &[Option<&ValueType>], _outputs: &[ValueType]) -> u64 {
        input_numel(inputs)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Batch normalisation. Inference mode uses the given mean and variance; training mode
/// (`training_mode`, or extra outputs in older opsets) normalises with the batch statistics and
/// also outputs the updated running mean and variance (then, for older opsets, the batch mean
/// and variance).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BatchNormalization {
    pub epsilon: f32,
    pub momentum: f32,
    pub training_mode: bool,
    /// `spatial` (opsets before 9), when the node has it.
    pub spatial: Option<i64>,
    /// `is_test` (opsets before 7), when the node has it.
    pub is_test: Option<i64>,
}

/// A per-channel parameter broadcast to the full input shape: length `C`, or shaped like
/// `x.shape[1..]` (non-spatial mode).
fn channel_param(op: &str, t: &Tensor, xs: &[usize]) -> Result<ArrayD<f64>> {
    let p = t.to_f()?;
    let mut shape = vec![1usize; xs.len()];
    if p.len() == xs[1] {
        shape[1] = xs[1];
    } else if p.shape() == &xs[1..] {
        shape[1..].copy_from_slice(&xs[1..]);
    } else {
        return Err(eval_err!(
            "{op}: parameter of shape {:?} does not fit input {xs:?}",
            p.shape()
        ));
    }
    let p = array(op, &shape, p.iter().copied().collect())?;
    broadcast_to(&p, xs)
}

#[typetag::serde]
impl Op for BatchNormalization {
    fn op_type(&self) -> &str {
        "BatchNormalization"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let x = cx.input(0)?.clone();
        let m = cx.input(3)?.clone();
        let v = cx.input(4)?.clone();
        Ok(vec![x, m.clone(), v.clone(), m, v])
    }
    fn eval(&self, cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        const OP: &str = "BatchNormalization";
        let x = req(inputs, 0)?;
        let xa = floats(OP, x)?;
        let xs = x.shape().to_vec();
        if xs.len() < 2 {
            return Err(eval_err!("{OP}: input must be (N, C, ...), got {xs:?}"));
        }
        let (mean_t, var_t) = (req(inputs, 3)?, req(inputs, 4)?);
        let scale = channel_param(OP, req(inputs, 1)?, &xs)?;
        let bias = channel_param(OP, req(inputs, 2)?, &xs)?;
        let training = self.training_mode || (cx.num_outputs > 1 && self.is_test.unwrap_or(0) == 0);
        let eps = self.epsilon as f64;
        let norm = |mean: &ArrayD<f64>, var: &ArrayD<f64>| {
            let mut y = ArrayD::<f64>::zeros(IxDyn(&xs));
            Zip::from(&mut y)
                .and(xa)
                .and(&scale)
                .and(&bias)
                .and(mean)
                .and(var)
                .for_each(|y, &x, &s, &b, &m, &v| *y = s * (x - m) / (v + eps).sqrt() + b);
            y
        };
        if !training {
            let m = channel_param(OP, mean_t, &xs)?;
            let v = channel_param(OP, var_t, &xs)?;
            return Ok(vec![Tensor::float(x.dtype(), norm(&m, &v))]);
        }
        // Batch statistics per channel (over every axis but 1).
        let mask: Vec<bool> = (0..xs.len()).map(|i| i != 1).collect();
        let (bm, bv): (Vec<f64>, Vec<f64>) = groups(xa, &mask)?.iter().map(|g| mean_var(g)).unzip();
        let c = xs[1];
        let per_c = |v: &[f64]| -> Result<ArrayD<f64>> {
            let mut shape = vec![1usize; xs.len()];
            shape[1] = c;
            broadcast_to(&array(OP, &shape, v.to_vec())?, &xs)
        };
        let y = norm(&per_c(&bm)?, &per_c(&bv)?);
        let mom = self.momentum as f64;
        let (im, iv) = (mean_t.to_f64_vec()?, var_t.to_f64_vec()?);
        if im.len() != c || iv.len() != c {
            return Err(eval_err!("{OP}: mean and var must have {c} values"));
        }
        let run = |inp: &[f64], cur: &[f64]| -> Vec<f64> {
            inp.iter()
                .zip(cur)
                .map(|(i, c)| i * mom + c * (1.0 - mom))
                .collect()
        };
        let rm = run(&im, &bm);
        let rv = run(&iv, &bv);
        let vec1 = |dt: DType, v: Vec<f64>| -> Result<Tensor> {
            Ok(Tensor::from_f64_as(dt, array(OP, &[c], v)?))
        };
        Ok(vec![
            Tensor::float(x.dtype(), y),
            vec1(mean_t.dtype(), rm)?,
            vec1(var_t.dtype(), rv)?,
            vec1(mean_t.dtype(), bm)?,
            vec1(var_t.dtype(), bv)?,
        ])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        let mut v = vec![
            ("epsilon", Attr::Float(self.epsilon)),
            ("momentum", Attr::Float(self.momentum)),
        ];
        if self.training_mode {
            v.push(("training_mode", Attr::Int(1)));
        }
        if let Some(s) = self.spatial {
            v.push(("spatial", Attr::Int(s)));
        }
        if let Some(s) = self.is_test {
            v.push(("is_test", Attr::Int(s)));
        }
        v
    }
    fn macs(&self, inputs: &[Option<&ValueType>], _outputs: &[ValueType]) -> u64 {
        input_numel(inputs)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}
