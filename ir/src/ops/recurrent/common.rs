//! What RNN, GRU and LSTM share: attributes, activation functions, input checks, the time loop.

use crate::onnx::attrs::NodeCtx;
use crate::op::{opt, req, Attr, InferCx};
use crate::shape::{Dim, ValueType};
use crate::tensor::Tensor;
use crate::{eval_err, DType, Result};
use ndarray::{ArrayD, IxDyn};
use serde::{Deserialize, Serialize};

/// Attributes common to the three recurrent ops, kept as written for export.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RnnAttrs {
    pub activations: Option<Vec<String>>,
    pub activation_alpha: Option<Vec<f32>>,
    pub activation_beta: Option<Vec<f32>>,
    pub clip: Option<f32>,
    /// `forward`, `reverse` or `bidirectional`.
    pub direction: String,
    pub hidden_size: Option<i64>,
    /// 0: `X` is `(seq, batch, input)`; 1: `(batch, seq, input)`.
    pub layout: i64,
}

/// The activation names RNN, GRU and LSTM accept (lower case).
pub const ACTIVATIONS: [&str; 11] = [
    "relu",
    "tanh",
    "sigmoid",
    "affine",
    "leakyrelu",
    "thresholdedrelu",
    "scaledtanh",
    "hardsigmoid",
    "elu",
    "softsign",
    "softplus",
];

impl RnnAttrs {
    /// Reads and checks the common attributes; `per_dir` is the number of activation functions
    /// one direction uses.
    pub fn read(cx: &NodeCtx<'_>, per_dir: usize) -> Result<RnnAttrs> {
        let direction = cx.s("direction", "forward")?;
        if !matches!(direction.as_str(), "forward" | "reverse" | "bidirectional") {
            return Err(cx.invalid("direction", "must be forward, reverse or bidirectional"));
        }
        let layout = cx.i("layout", 0)?;
        if layout != 0 && layout != 1 {
            return Err(cx.invalid("layout", "must be 0 or 1"));
        }
        let hidden_size = cx.opt_i("hidden_size")?;
        if hidden_size.is_some_and(|h| h <= 0) {
            return Err(cx.invalid("hidden_size", "must be positive"));
        }
        let clip = cx.opt_f("clip")?;
        if clip.is_some_and(|c| c.is_nan() || c < 0.0) {
            return Err(cx.invalid("clip", "must be non-negative"));
        }
        let activations = cx.strings("activations")?;
        if let Some(a) = &activations {
            if let Some(bad) = a
                .iter()
                .find(|s| !ACTIVATIONS.contains(&s.to_ascii_lowercase().as_str()))
            {
                return Err(cx.invalid("activations", &format!("unknown function '{bad}'")));
            }
            let dirs = if direction == "bidirectional" { 2 } else { 1 };
            if a.len() != per_dir && a.len() != per_dir * dirs {
                return Err(cx.invalid(
                    "activations",
                    &format!("expected {} functions, got {}", per_dir * dirs, a.len()),
                ));
            }
        }
        Ok(RnnAttrs {
            activations,
            activation_alpha: cx.floats("activation_alpha")?,
            activation_beta: cx.floats("activation_beta")?,
            clip,
            direction,
            hidden_size,
            layout,
        })
    }

    pub fn num_directions(&self) -> usize {
        if self.direction == "bidirectional" {
            2
        } else {
            1
        }
    }

    /// Attributes for export.
    pub fn attrs(&self) -> Vec<(&'static str, Attr)> {
        let mut a = Vec::new();
        if let Some(v) = &self.activations {
            a.push(("activations", Attr::Strs(v.clone())));
        }
        if let Some(v) = &self.activation_alpha {
            a.push(("activation_alpha", Attr::Floats(v.clone())));
        }
        if let Some(v) = &self.activation_beta {
            a.push(("activation_beta", Attr::Floats(v.clone())));
        }
        if let Some(c) = self.clip {
            a.push(("clip", Attr::Float(c)));
        }
        if self.direction != "forward" {
            a.push(("direction", Attr::Str(self.direction.clone())));
        }
        if let Some(h) = self.hidden_size {
            a.push(("hidden_size", Attr::Int(h)));
        }
        if self.layout != 0 {
            a.push(("layout", Attr::Int(self.layout)));
        }
        a
    }

    /// The activation functions of every direction, `per_dir` each, with their alpha/beta
    /// consumed in order by the functions that take them.
    pub fn resolve(&self, defaults: &[&str]) -> Result<Vec<Vec<Act>>> {
        let dirs = self.num_directions();
        let per_dir = defaults.len();
        let names: Vec<String> = match &self.activations {
            Some(v) if v.len() == per_dir * dirs => v.clone(),
            Some(v) if v.len() == per_dir => {
                v.iter().cycle().take(per_dir * dirs).cloned().collect()
            }
            Some(v) => {
                return Err(eval_err!(
                    "expected {} activation functions, got {}",
                    per_dir * dirs,
                    v.len()
                ))
            }
            None => defaults
                .iter()
                .cycle()
                .take(per_dir * dirs)
                .map(|s| s.to_string())
                .collect(),
        };
        let mut alphas = self.activation_alpha.iter().flatten();
        let mut betas = self.activation_beta.iter().flatten();
        let mut acts = Vec::new();
        for n in names {
            let n = n.to_ascii_lowercase();
            let (da, db, uses_a, uses_b) = match n.as_str() {
                "affine" => (1.0, 0.0, true, true),
                "leakyrelu" => (0.01, 0.0, true, false),
                "thresholdedrelu" => (1.0, 0.0, true, false),
                "scaledtanh" => (1.0, 1.0, true, true),
                "hardsigmoid" => (0.2, 0.5, true, true),
                "elu" => (1.0, 0.0, true, false),
                "relu" | "tanh" | "sigmoid" | "softsign" | "softplus" => (0.0, 0.0, false, false),
                other => return Err(eval_err!("unknown activation function '{other}'")),
            };
            let alpha = if uses_a {
                alphas.next().map(|&v| f64::from(v)).unwrap_or(da)
            } else {
                da
            };
            let beta = if uses_b {
                betas.next().map(|&v| f64::from(v)).unwrap_or(db)
            } else {
                db
            };
            acts.push(Act {
                name: n,
                alpha,
                beta,
            });
        }
        Ok(acts.chunks(per_dir).map(|c| c.to_vec()).collect())
    }

    /// Clips a gate pre-activation to `[-clip, clip]` when `clip` is set.
    pub fn clip(&self, x: f64) -> f64 {
        match self.clip {
            Some(c) => x.clamp(-f64::from(c), f64::from(c)),
            None => x,
        }
    }

    /// Output types: `Y` and then `states` copies of the `Y_h` type.
    pub fn infer(&self, cx: &InferCx<'_>, states: usize) -> Result<Vec<ValueType>> {
        let x = cx.input(0)?;
        let dt = x.dtype;
        let h = match self.hidden_size {
            Some(h) => Some(Dim::Known(h as u64)),
            None => cx
                .opt_input(2)
                .and_then(|r| r.shape.as_ref())
                .and_then(|s| s.get(2).cloned()),
        };
        let d = Dim::Known(self.num_directions() as u64);
        let (y, yh) = match (&x.shape, h) {
            (Some(s), Some(h)) if s.len() == 3 => {
                let (seq, batch) = if self.layout == 0 {
                    (s[0].clone(), s[1].clone())
                } else {
                    (s[1].clone(), s[0].clone())
                };
                if self.layout == 0 {
                    (
                        ValueType::new(dt, vec![seq, d.clone(), batch.clone(), h.clone()]),
                        ValueType::new(dt, vec![d, batch, h]),
                    )
                } else {
                    (
                        ValueType::new(dt, vec![batch.clone(), seq, d.clone(), h.clone()]),
                        ValueType::new(dt, vec![batch, d, h]),
                    )
                }
            }
            _ => (ValueType::unranked(dt), ValueType::unranked(dt)),
        };
        let mut v = vec![y];
        v.extend(std::iter::repeat_n(yh, states));
        Ok(v)
    }

    /// `D * S * B * G*H * (I + H)`: the input and recurrent matmuls of every step.
    pub fn macs(&self, inputs: &[Option<&ValueType>], gates: u64) -> u64 {
        let dims = |i: usize| -> Option<Vec<u64>> {
            let s = inputs.get(i).copied().flatten()?.shape.as_ref()?;
            s.iter().map(|d| d.known()).collect()
        };
        let (Some(x), Some(w), Some(r)) = (dims(0), dims(1), dims(2)) else {
            return 0;
        };
        if x.len() != 3 || w.len() != 3 || r.len() != 3 {
            return 0;
        }
        let (s, b) = (x[0], x[1]); // either layout: s*b is the same product
        let h = r[2];
        let i = w[2];
        w[0].saturating_mul(s)
            .saturating_mul(b)
            .saturating_mul(gates * h)
            .saturating_mul(i + h)
    }
}

/// One activation function with its parameters.
#[derive(Clone, Debug)]
pub struct Act {
    pub name: String,
    pub alpha: f64,
    pub beta: f64,
}

impl Act {
    pub fn apply(&self, x: f64) -> f64 {
        let (a, b) = (self.alpha, self.beta);
        match self.name.as_str() {
            "relu" => x.max(0.0),
            "tanh" => x.tanh(),
            "sigmoid" => 1.0 / (1.0 + (-x).exp()),
            "affine" => a * x + b,
            "leakyrelu" => {
                if x >= 0.0 {
                    x
                } else {
                    a * x
                }
            }
            "thresholdedrelu" => {
                if x > a {
                    x
                } else {
                    0.0
                }
            }
            "scaledtanh" => a * (b * x).tanh(),
            "hardsigmoid" => (a * x + b).clamp(0.0, 1.0),
            "elu" => {
                if x >= 0.0 {
                    x
                } else {
                    a * (x.exp() - 1.0)
                }
            }
            "softsign" => x / (1.0 + x.abs()),
            "softplus" => {
                if x > 30.0 {
                    x
                } else {
                    x.exp().ln_1p()
                }
            }
            _ => f64::NAN,
        }
    }
}

/// The checked inputs of a recurrent op, in the `(seq, batch, ...)` layout.
pub struct Seq {
    pub dtype: DType,
    /// `(S, B, I)`.
    pub x: ArrayD<f64>,
    /// `(D, G*H, I)`.
    pub w: ArrayD<f64>,
    /// `(D, G*H, H)`.
    pub r: ArrayD<f64>,
    /// `(D, 2*G*H)` (zeros when absent).
    pub b: ArrayD<f64>,
    /// Valid length of each batch entry.
    pub lens: Vec<usize>,
    /// `(D, B, H)` initial states (zeros when absent): `initial_h` and, for LSTM, `initial_c`.
    pub h0: ArrayD<f64>,
    pub c0: ArrayD<f64>,
    pub dirs: usize,
    pub seq: usize,
    pub batch: usize,
    pub input: usize,
    pub hidden: usize,
}

/// Swaps the first two axes of a rank-3 array.
fn swap01(a: ArrayD<f64>) -> ArrayD<f64> {
    let s = a.shape().to_vec();
    ArrayD::from_shape_fn(IxDyn(&[s[1], s[0], s[2]]), |i| a[[i[1], i[0], i[2]]])
}

impl Seq {
    /// Reads X, W, R, B, sequence_lens, initial_h and (at `c_slot`) initial_c.
    pub fn read(
        what: &str,
        at: &RnnAttrs,
        inputs: &[Option<&Tensor>],
        gates: usize,
        c_slot: Option<usize>,
    ) -> Result<Seq> {
        let xt = req(inputs, 0)?;
        let dtype = xt.dtype();
        if !dtype.is_float() {
            return Err(eval_err!("{what}: X must be a float tensor, got {dtype}"));
        }
        let mut x = xt.to_f()?;
        let w = req(inputs, 1)?.to_f()?;
        let r = req(inputs, 2)?.to_f()?;
        if x.ndim() != 3 || w.ndim() != 3 || r.ndim() != 3 {
            return Err(eval_err!("{what}: X, W and R must be rank 3"));
        }
        if at.layout == 1 {
            x = swap01(x);
        }
        let (seq, batch, input) = (x.shape()[0], x.shape()[1], x.shape()[2]);
        let dirs = at.num_directions();
        let hidden = r.shape()[2];
        if at.hidden_size.is_some_and(|h| h as usize != hidden) {
            return Err(eval_err!(
                "{what}: hidden_size {:?} does not match R {:?}",
                at.hidden_size,
                r.shape()
            ));
        }
        let gh = gates * hidden;
        if w.shape() != [dirs, gh, input] || r.shape() != [dirs, gh, hidden] {
            return Err(eval_err!(
                "{what}: W {:?} and R {:?} must be {:?} and {:?}",
                w.shape(),
                r.shape(),
                [dirs, gh, input],
                [dirs, gh, hidden]
            ));
        }
        let b = match opt(inputs, 3) {
            Some(t) if t.shape() == [dirs, 2 * gh] => t.to_f()?,
            Some(t) => {
                return Err(eval_err!(
                    "{what}: B must be {:?}, got {:?}",
                    [dirs, 2 * gh],
                    t.shape()
                ))
            }
            None => ArrayD::zeros(IxDyn(&[dirs, 2 * gh])),
        };
        let lens = match opt(inputs, 4) {
            Some(t) => {
                let v = t.to_i64_vec()?;
                if v.len() != batch || v.iter().any(|&l| l < 0 || l as usize > seq) {
                    return Err(eval_err!(
                        "{what}: sequence_lens {v:?} must hold {batch} lengths within 0..={seq}"
                    ));
                }
                v.into_iter().map(|l| l as usize).collect()
            }
            None => vec![seq; batch],
        };
        let state = |slot: Option<usize>, name: &str| -> Result<ArrayD<f64>> {
            match slot.and_then(|i| opt(inputs, i)) {
                Some(t) => {
                    let mut a = t.to_f()?;
                    if a.ndim() == 3 && at.layout == 1 {
                        a = swap01(a);
                    }
                    if a.shape() != [dirs, batch, hidden] {
                        return Err(eval_err!(
                            "{what}: {name} has shape {:?}, expected {:?} (layout {})",
                            t.shape(),
                            [dirs, batch, hidden],
                            at.layout
                        ));
                    }
                    Ok(a)
                }
                None => Ok(ArrayD::zeros(IxDyn(&[dirs, batch, hidden]))),
            }
        };
        Ok(Seq {
            dtype,
            h0: state(Some(5), "initial_h")?,
            c0: state(c_slot, "initial_c")?,
            x,
            w,
            r,
            b,
            lens,
            dirs,
            seq,
            batch,
            input,
            hidden,
        })
    }

    /// `W[d, row0..row0+n] . x + Wb[d, row0..]` for one gate block.
    pub fn wx(&self, d: usize, row0: usize, n: usize, x: &[f64]) -> Vec<f64> {
        (0..n)
            .map(|k| {
                (0..self.input)
                    .map(|i| self.w[[d, row0 + k, i]] * x[i])
                    .sum::<f64>()
                    + self.b[[d, row0 + k]]
            })
            .collect()
    }

    /// `R[d, row0..row0+n] . h + Rb[d, row0..]` for one gate block.
    pub fn rh(&self, d: usize, row0: usize, n: usize, h: &[f64]) -> Vec<f64> {
        let gh = self.b.shape()[1] / 2;
        (0..n)
            .map(|k| {
                (0..self.hidden)
                    .map(|i| self.r[[d, row0 + k, i]] * h[i])
                    .sum::<f64>()
                    + self.b[[d, gh + row0 + k]]
            })
            .collect()
    }

    /// Runs the time loop: `step(dir, x_t, h, c)` gives the new `(h, c)`. Returns `Y`, `Y_h`,
    /// `Y_c` in the op's layout, with `Y` zero past each batch entry's length.
    pub fn run(
        &self,
        layout: i64,
        reverse_only: bool,
        step: impl Fn(usize, &[f64], &[f64], &[f64]) -> (Vec<f64>, Vec<f64>),
    ) -> Vec<Tensor> {
        let (s, bn, h, nd) = (self.seq, self.batch, self.hidden, self.dirs);
        let mut y = ArrayD::<f64>::zeros(IxDyn(&[s, nd, bn, h]));
        let mut yh = ArrayD::<f64>::zeros(IxDyn(&[nd, bn, h]));
        let mut yc = ArrayD::<f64>::zeros(IxDyn(&[nd, bn, h]));
        let rnd =
            |v: Vec<f64>| -> Vec<f64> { v.into_iter().map(|x| self.dtype.round_f64(x)).collect() };
        for d in 0..nd {
            let reverse = reverse_only || d == 1;
            for bi in 0..bn {
                let mut hs: Vec<f64> = (0..h).map(|k| self.h0[[d, bi, k]]).collect();
                let mut cs: Vec<f64> = (0..h).map(|k| self.c0[[d, bi, k]]).collect();
                let len = self.lens[bi];
                for n in 0..len {
                    let t = if reverse { len - 1 - n } else { n };
                    let xt: Vec<f64> = (0..self.input).map(|i| self.x[[t, bi, i]]).collect();
                    let (nh, nc) = step(d, &xt, &hs, &cs);
                    hs = rnd(nh);
                    cs = rnd(nc);
                    for k in 0..h {
                        y[[t, d, bi, k]] = hs[k];
                    }
                }
                for k in 0..h {
                    yh[[d, bi, k]] = hs[k];
                    yc[[d, bi, k]] = cs[k];
                }
            }
        }
        if layout == 1 {
            y = ArrayD::from_shape_fn(IxDyn(&[bn, s, nd, h]), |i| y[[i[1], i[2], i[0], i[3]]]);
            yh = swap01(yh);
            yc = swap01(yc);
        }
        vec![
            Tensor::float(self.dtype, y),
            Tensor::float(self.dtype, yh),
            Tensor::float(self.dtype, yc),
        ]
    }
}
