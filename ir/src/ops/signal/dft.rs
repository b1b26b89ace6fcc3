//! `DFT` (opsets 17-20) and `STFT` (opset 17), over real `[..., 1]` or complex `[..., 2]` signals.

use crate::onnx::attrs::NodeCtx;
use crate::op::{opt, req, Attr, EvalCx, InferCx, Op};
use crate::shape::{Dim, ValueType};
use crate::tensor::Tensor;
use crate::{eval_err, Result};
use ndarray::{ArrayD, Dimension, IxDyn};
use serde::{Deserialize, Serialize};
use std::any::Any;
use std::f64::consts::PI;

/// A complex number as `(re, im)`.
type C = (f64, f64);

/// `sum_t x[t] * exp(sign * 2 pi i k t / n)` for `k` in `0..out_len`, with `x` zero-padded or
/// truncated to `n` samples.
pub fn dft(x: &[C], n: usize, out_len: usize, inverse: bool) -> Vec<C> {
    let sign = if inverse { 1.0 } else { -1.0 };
    let m = x.len().min(n);
    (0..out_len)
        .map(|k| {
            let mut acc = (0.0, 0.0);
            for (t, &(re, im)) in x.iter().enumerate().take(m) {
                // Reduce k*t modulo n first so large lengths keep the angle exact.
                let ang = sign * 2.0 * PI * ((k * t) % n.max(1)) as f64 / n.max(1) as f64;
                let (s, c) = ang.sin_cos();
                acc.0 += re * c - im * s;
                acc.1 += re * s + im * c;
            }
            acc
        })
        .collect()
}

/// Reads the complex samples of a signal whose last dim is 1 (real) or 2 (complex).
fn sample(a: &ArrayD<f64>, idx: &mut [usize], last: usize) -> C {
    let n = idx.len();
    idx[n - 1] = 0;
    let re = a[&*idx];
    let im = if last == 2 {
        idx[n - 1] = 1;
        a[&*idx]
    } else {
        0.0
    };
    (re, im)
}

/// Discrete Fourier transform along one axis.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Dft {
    pub inverse: bool,
    pub onesided: bool,
    /// The `axis` attribute of opsets before 20 (default 1); `None` from opset 20, where the
    /// axis is input 2 (default -2).
    pub axis_attr: Option<i64>,
}

pub fn build_dft(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    let axis_attr = if cx.opset < 20 {
        Some(cx.i("axis", 1)?)
    } else {
        None
    };
    Ok(Box::new(Dft {
        inverse: cx.i("inverse", 0)? != 0,
        onesided: cx.i("onesided", 0)? != 0,
        axis_attr,
    }))
}

impl Dft {
    fn out_last(&self) -> usize {
        if self.inverse && self.onesided {
            1
        } else {
            2
        }
    }
    /// The transform length given the input's axis size and the `dft_length` value.
    fn length(&self, in_len: usize, dft_length: Option<i64>) -> Result<usize> {
        match dft_length {
            Some(n) if n < 1 => Err(eval_err!("DFT: dft_length must be positive, got {n}")),
            Some(n) => Ok(n as usize),
            None if self.inverse && self.onesided => Ok(2 * in_len.saturating_sub(1)),
            None => Ok(in_len),
        }
    }
    fn out_len(&self, n: usize) -> usize {
        if self.onesided && !self.inverse {
            n / 2 + 1
        } else {
            n
        }
    }
}

#[typetag::serde]
impl Op for Dft {
    fn op_type(&self) -> &str {
        "DFT"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let x = cx.input(0)?;
        let Some(s) = &x.shape else {
            return Ok(vec![ValueType::unranked(x.dtype)]);
        };
        let r = s.len();
        if r < 2 {
            return Ok(vec![ValueType::unranked(x.dtype)]);
        }
        let axis = match self.axis_attr {
            Some(a) => Some(a),
            None if cx.opt_input(2).is_none() => Some(-2),
            None => cx.value(2).and_then(|v| v.scalar_i64().ok()),
        };
        let axis = axis
            .and_then(|a| crate::op::norm_axis(a, r).ok())
            .filter(|&a| a + 1 < r);
        let len = match cx.opt_input(1) {
            None => Some(None),
            Some(_) => cx.value(1).and_then(|v| v.scalar_i64().ok()).map(Some),
        };
        let mut out = s.clone();
        out[r - 1] = Dim::Known(self.out_last() as u64);
        match axis {
            Some(a) => {
                out[a] = match (s[a].known(), len) {
                    (Some(k), Some(l)) => match self.length(k as usize, l) {
                        Ok(n) => Dim::Known(self.out_len(n) as u64),
                        Err(_) => cx.fresh_dim(),
                    },
                    (None, Some(None)) if !self.onesided => s[a].clone(),
                    _ => cx.fresh_dim(),
                }
            }
            None => {
                for d in out.iter_mut().take(r - 1) {
                    *d = cx.fresh_dim();
                }
            }
        }
        Ok(vec![ValueType::new(x.dtype, out)])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let a = x.to_f()?;
        let s = a.shape().to_vec();
        let r = s.len();
        let last = s.last().copied().unwrap_or(0);
        if r < 2 || (last != 1 && last != 2) {
            return Err(eval_err!(
                "DFT: input must end in a dim of 1 (real) or 2 (complex), got {s:?}"
            ));
        }
        let axis = match self.axis_attr {
            Some(ax) => ax,
            None => opt(inputs, 2)
                .map(|t| t.scalar_i64())
                .transpose()?
                .unwrap_or(-2),
        };
        let ax = crate::op::norm_axis(axis, r)?;
        if ax + 1 == r {
            return Err(eval_err!("DFT: axis {axis} is the complex dim"));
        }
        let dl = opt(inputs, 1).map(|t| t.scalar_i64()).transpose()?;
        let n = self.length(s[ax], dl)?;
        let out_len = self.out_len(n);
        let ol = self.out_last();
        let mut os = s.clone();
        os[ax] = out_len;
        os[r - 1] = ol;
        let mut out = ArrayD::<f64>::zeros(IxDyn(&os));
        // Iterate over every lane along `ax` (all other non-complex indices).
        let mut lane_shape = s.clone();
        lane_shape[ax] = 1;
        lane_shape[r - 1] = 1;
        for base in ndarray::indices(IxDyn(&lane_shape)) {
            let mut idx: Vec<usize> = base.slice().to_vec();
            let xs: Vec<C> = (0..s[ax])
                .map(|t| {
                    idx[ax] = t;
                    sample(&a, &mut idx, last)
                })
                .collect();
            let ys: Vec<f64> = if self.inverse && self.onesided {
                // Hermitian extension of the half spectrum, then the real part of the inverse.
                let half = n / 2 + 1;
                let full: Vec<C> = (0..n)
                    .map(|k| {
                        let (j, conj) = if k < half { (k, false) } else { (n - k, true) };
                        let (re, im) = xs.get(j).copied().unwrap_or((0.0, 0.0));
                        if conj {
                            (re, -im)
                        } else {
                            (re, im)
                        }
                    })
                    .collect();
                dft(&full, n, n, true)
                    .into_iter()
                    .map(|(re, _)| re / n as f64)
                    .collect()
            } else {
                let scale = if self.inverse { 1.0 / n as f64 } else { 1.0 };
                dft(&xs, n, out_len, self.inverse)
                    .into_iter()
                    .flat_map(|(re, im)| [re * scale, im * scale])
                    .collect()
            };
            for k in 0..out_len {
                idx[ax] = k;
                for c in 0..ol {
                    idx[r - 1] = c;
                    out[&*idx] = ys[k * ol + c];
                }
            }
        }
        Ok(vec![Tensor::float(x.dtype(), out)])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        let mut v = Vec::new();
        if self.inverse {
            v.push(("inverse", Attr::Int(1)));
        }
        if self.onesided {
            v.push(("onesided", Attr::Int(1)));
        }
        if let Some(a) = self.axis_attr {
            v.push(("axis", Attr::Int(a)));
        }
        v
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Short-time Fourier transform of `[batch, length, 1 or 2]` signals into
/// `[batch, frames, bins, 2]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Stft {
    pub onesided: bool,
}

pub fn build_stft(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    Ok(Box::new(Stft {
        onesided: cx.i("onesided", 1)? != 0,
    }))
}

#[typetag::serde]
impl Op for Stft {
    fn op_type(&self) -> &str {
        "STFT"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let x = cx.input(0)?;
        let step = cx.value(1).and_then(|v| v.scalar_i64().ok());
        let fl = match cx.opt_input(3) {
            Some(_) => cx.value(3).and_then(|v| v.scalar_i64().ok()),
            None => cx
                .opt_input(2)
                .and_then(|w| w.shape.as_ref())
                .and_then(|s| s.first())
                .and_then(|d| d.known())
                .map(|v| v as i64),
        };
        let (batch, len) = match &x.shape {
            Some(s) if s.len() == 3 => (s[0].clone(), s[1].known()),
            _ => (cx.fresh_dim(), None),
        };
        let (frames, bins) = match (step, fl, len) {
            (Some(st), Some(f), Some(l)) if st > 0 && f > 0 && l as i64 >= f => (
                Dim::Known((1 + (l as i64 - f) / st) as u64),
                Dim::Known(if self.onesided { f / 2 + 1 } else { f } as u64),
            ),
            _ => (cx.fresh_dim(), cx.fresh_dim()),
        };
        Ok(vec![ValueType::new(
            x.dtype,
            vec![batch, frames, bins, Dim::Known(2)],
        )])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let a = x.to_f()?;
        let s = a.shape().to_vec();
        if s.len() != 3 || (s[2] != 1 && s[2] != 2) {
            return Err(eval_err!(
                "STFT: signal must be [batch, length, 1 or 2], got {s:?}"
            ));
        }
        let step = req(inputs, 1)?.scalar_i64()?;
        let window = opt(inputs, 2).map(|t| t.to_f64_vec()).transpose()?;
        let fl = match (opt(inputs, 3), &window) {
            (Some(t), _) => t.scalar_i64()?,
            (None, Some(w)) => w.len() as i64,
            (None, None) => s[1] as i64,
        };
        if step < 1 || fl < 1 || fl as usize > s[1] {
            return Err(eval_err!(
                "STFT: frame_step {step} and frame_length {fl} must be positive, the frame no longer than the signal ({})",
                s[1]
            ));
        }
        let fl = fl as usize;
        let step = step as usize;
        if window.as_ref().is_some_and(|w| w.len() != fl) {
            return Err(eval_err!(
                "STFT: window length must equal frame_length {fl}"
            ));
        }
        let frames = 1 + (s[1] - fl) / step;
        let bins = if self.onesided { fl / 2 + 1 } else { fl };
        let mut out = ArrayD::<f64>::zeros(IxDyn(&[s[0], frames, bins, 2]));
        for b in 0..s[0] {
            for f in 0..frames {
                let xs: Vec<C> = (0..fl)
                    .map(|t| {
                        let w = window.as_ref().map(|w| w[t]).unwrap_or(1.0);
                        let mut idx = [b, f * step + t, 0];
                        let (re, im) = sample(&a, &mut idx, s[2]);
                        (re * w, im * w)
                    })
                    .collect();
                for (k, (re, im)) in dft(&xs, fl, bins, false).into_iter().enumerate() {
                    out[[b, f, k, 0]] = re;
                    out[[b, f, k, 1]] = im;
                }
            }
        }
        Ok(vec![Tensor::float(x.dtype(), out)])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        vec![("onesided", Attr::Int(i64::from(self.onesided)))]
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dft_of_impulse_is_flat_and_inverse_round_trips() {
        let x = vec![(1.0, 0.0), (0.0, 0.0), (0.0, 0.0), (0.0, 0.0)];
        let y = dft(&x, 4, 4, false);
        assert!(y
            .iter()
            .all(|&(re, im)| (re - 1.0).abs() < 1e-12 && im.abs() < 1e-12));
        let z = dft(&[(1.0, 2.0), (3.0, -1.0), (0.5, 0.0)], 3, 3, false);
        let back = dft(&z, 3, 3, true);
        assert!((back[1].0 / 3.0 - 3.0).abs() < 1e-12 && (back[1].1 / 3.0 + 1.0).abs() < 1e-12);
    }
}
