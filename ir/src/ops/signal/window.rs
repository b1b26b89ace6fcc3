//! Window generators (`HannWindow`, `HammingWindow`, `BlackmanWindow`) and `MelWeightMatrix`.

use crate::onnx::attrs::NodeCtx;
use crate::op::{req, Attr, EvalCx, InferCx, Op};
use crate::shape::{Dim, ValueType};
use crate::tensor::Tensor;
use crate::{eval_err, DType, Result};
use ndarray::{ArrayD, IxDyn};
use serde::{Deserialize, Serialize};
use std::any::Any;
use std::f64::consts::PI;

/// Reads `output_datatype` (default float) and checks it names a numeric type.
fn out_dtype(cx: &NodeCtx<'_>) -> Result<DType> {
    let code = cx.i("output_datatype", 1)?;
    i32::try_from(code)
        .ok()
        .and_then(DType::from_onnx_code)
        .filter(|d| d.is_float() || d.is_int())
        .ok_or_else(|| cx.invalid("output_datatype", "must be a numeric type code"))
}

/// The three cosine-sum windows.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub enum WindowKind {
    Hann,
    Hamming,
    Blackman,
}

impl WindowKind {
    /// Window value at `n` with denominator `big_n` (the size when periodic, size - 1 if not).
    pub fn value(self, n: f64, big_n: f64) -> f64 {
        let x = 2.0 * PI * n / big_n;
        match self {
            WindowKind::Hann => (PI * n / big_n).sin().powi(2),
            WindowKind::Hamming => {
                let alpha = 25.0 / 46.0;
                alpha - (1.0 - alpha) * x.cos()
            }
            WindowKind::Blackman => 0.42 - 0.5 * x.cos() + 0.08 * (2.0 * x).cos(),
        }
    }
}

/// A window of `size` samples (input 0, a scalar).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Window {
    pub kind: WindowKind,
    pub periodic: bool,
    pub output_datatype: DType,
}

fn build_window(cx: &NodeCtx<'_>, kind: WindowKind) -> Result<Box<dyn Op>> {
    Ok(Box::new(Window {
        kind,
        periodic: cx.i("periodic", 1)? != 0,
        output_datatype: out_dtype(cx)?,
    }))
}

pub fn build_hann(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    build_window(cx, WindowKind::Hann)
}
pub fn build_hamming(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    build_window(cx, WindowKind::Hamming)
}
pub fn build_blackman(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    build_window(cx, WindowKind::Blackman)
}

#[typetag::serde]
impl Op for Window {
    fn op_type(&self) -> &str {
        match self.kind {
            WindowKind::Hann => "HannWindow",
            WindowKind::Hamming => "HammingWindow",
            WindowKind::Blackman => "BlackmanWindow",
        }
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let d = match cx.value(0).and_then(|v| v.scalar_i64().ok()) {
            Some(n) if n >= 0 => Dim::Known(n as u64),
            _ => cx.fresh_dim(),
        };
        Ok(vec![ValueType::new(self.output_datatype, vec![d])])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let size = req(inputs, 0)?.scalar_i64()?;
        if size < 0 {
            return Err(eval_err!(
                "{}: size must be non-negative, got {size}",
                self.op_type()
            ));
        }
        let size = size as usize;
        let big_n = if self.periodic {
            size
        } else {
            size.saturating_sub(1)
        } as f64;
        let a = ArrayD::from_shape_fn(IxDyn(&[size]), |i| {
            if big_n == 0.0 {
                // A one-sample symmetric window: the formulas' limit at n = 0.
                self.kind.value(0.0, 1.0)
            } else {
                self.kind.value(i[0] as f64, big_n)
            }
        });
        Ok(vec![Tensor::from_f64_as(self.output_datatype, a)])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        vec![
            ("periodic", Attr::Int(i64::from(self.periodic))),
            (
                "output_datatype",
                Attr::Int(i64::from(self.output_datatype.onnx_code())),
            ),
        ]
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Triangular mel filter bank `[dft_length/2 + 1, num_mel_bins]` from inputs num_mel_bins,
/// dft_length, sample_rate, lower_edge_hertz, upper_edge_hertz.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MelWeightMatrix {
    pub output_datatype: DType,
}

pub fn build_mel(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    Ok(Box::new(MelWeightMatrix {
        output_datatype: out_dtype(cx)?,
    }))
}

/// The filter bank as the ONNX reference computes it: `num_mel_bins + 2` points evenly spaced
/// on the mel scale (step = range / (bins + 2)), mapped to FFT bins with `floor((n+1) f / sr)`.
pub fn mel_matrix(bins: usize, dft_len: usize, sr: f64, lo: f64, hi: f64) -> Result<ArrayD<f64>> {
    let spec = dft_len / 2 + 1;
    let to_mel = |hz: f64| 2595.0 * (hz / 700.0).ln_1p() / 10f64.ln();
    let (lm, hm) = (to_mel(lo), to_mel(hi));
    let step = (hm - lm) / (bins + 2) as f64;
    let points: Vec<i64> = (0..bins + 2)
        .map(|i| {
            let mel = i as f64 * step + lm;
            let hz = 700.0 * (mel / 2595.0 * 10f64.ln()).exp_m1();
            (((dft_len + 1) as f64 * hz) / sr).floor() as i64
        })
        .collect();
    let mut out = ArrayD::<f64>::zeros(IxDyn(&[spec, bins]));
    let mut set = |j: i64, i: usize, v: f64| -> Result<()> {
        let cell = usize::try_from(j)
            .ok()
            .and_then(|j| out.get_mut([j, i].as_slice()))
            .ok_or_else(|| {
                eval_err!("MelWeightMatrix: frequency bin {j} is outside 0..{spec}; check the edge frequencies against the sample rate")
            })?;
        *cell = v;
        Ok(())
    };
    for i in 0..bins {
        let (l, c, h) = (points[i], points[i + 1], points[i + 2]);
        if c == l {
            set(c, i, 1.0)?;
        } else {
            for j in l..=c {
                set(j, i, (j - l) as f64 / (c - l) as f64)?;
            }
        }
        if h > c {
            for j in c..h {
                set(j, i, (h - j) as f64 / (h - c) as f64)?;
            }
        }
    }
    Ok(out)
}

#[typetag::serde]
impl Op for MelWeightMatrix {
    fn op_type(&self) -> &str {
        "MelWeightMatrix"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let val = |i: usize| {
            cx.value(i)
                .and_then(|v| v.scalar_i64().ok())
                .filter(|&v| v >= 0)
        };
        let spec = val(1)
            .map(|n| Dim::Known(n as u64 / 2 + 1))
            .unwrap_or_else(|| cx.fresh_dim());
        let bins = val(0)
            .map(|n| Dim::Known(n as u64))
            .unwrap_or_else(|| cx.fresh_dim());
        Ok(vec![ValueType::new(self.output_datatype, vec![spec, bins])])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let bins = req(inputs, 0)?.scalar_i64()?;
        let dl = req(inputs, 1)?.scalar_i64()?;
        let sr = req(inputs, 2)?.scalar_i64()?;
        let lo = req(inputs, 3)?.scalar_f64()?;
        let hi = req(inputs, 4)?.scalar_f64()?;
        if bins < 0 || dl < 1 || sr < 1 || !(lo >= 0.0 && hi >= lo) {
            return Err(eval_err!(
                "MelWeightMatrix: bad arguments num_mel_bins {bins}, dft_length {dl}, sample_rate {sr}, edges {lo}..{hi}"
            ));
        }
        let m = mel_matrix(bins as usize, dl as usize, sr as f64, lo, hi)?;
        Ok(vec![Tensor::from_f64_as(self.output_datatype, m)])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        vec![(
            "output_datatype",
            Attr::Int(i64::from(self.output_datatype.onnx_code())),
        )]
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_hann_ends_at_zero_periodic_does_not() {
        assert!(WindowKind::Hann.value(9.0, 9.0).abs() < 1e-12);
        assert!(WindowKind::Hann.value(9.0, 10.0) > 0.0);
        assert!((WindowKind::Hamming.value(0.0, 10.0) - (25.0 / 46.0 - 21.0 / 46.0)).abs() < 1e-12);
    }

    #[test]
    fn mel_rejects_edges_above_nyquist_bins() {
        assert!(mel_matrix(4, 16, 100.0, 0.0, 1000.0).is_err());
        let m = mel_matrix(8, 16, 8192.0, 0.0, 4096.0).unwrap();
        assert_eq!(m.shape(), &[9, 8]);
    }
}
