//! Other normalisations: `LpNormalization`, `MeanVarianceNormalization` and `LRN`.

use super::common::{array, axes_mask, floats, one_axis};
use super::softmax::map_groups;
use crate::op::{req, Attr, EvalCx, InferCx, Op};
use crate::ops::util::same_as_input;
use crate::ops::Registry;
use crate::shape::ValueType;
use crate::tensor::Tensor;
use crate::{eval_err, Result};
use serde::{Deserialize, Serialize};
use std::any::Any;

/// Registers this file's builders.
pub fn register(r: &mut Registry) {
    r.add("LpNormalization", |cx| {
        let p = cx.i("p", 2)?;
        if p != 1 && p != 2 {
            return Err(cx.invalid("p", "must be 1 or 2"));
        }
        Ok(Box::new(LpNormalization {
            axis: cx.i("axis", -1)?,
            p,
        }))
    });
    r.add("MeanVarianceNormalization", |cx| {
        Ok(Box::new(MeanVarianceNormalization {
            axes: cx.ints("axes")?.unwrap_or_else(|| vec![0, 2, 3]),
        }))
    });
    r.add("LRN", |cx| {
        let size = cx
            .opt_i("size")?
            .ok_or_else(|| cx.invalid("size", "is required"))?;
        if size <= 0 {
            return Err(cx.invalid("size", "must be positive"));
        }
        Ok(Box::new(Lrn {
            size,
            alpha: cx.f("alpha", 1e-4)?,
            beta: cx.f("beta", 0.75)?,
            bias: cx.f("bias", 1.0)?,
        }))
    });
}

/// `x / ||x||_p` along `axis` (p = 1 or 2); a zero norm gives 0.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LpNormalization {
    pub axis: i64,
    pub p: i64,
}

#[typetag::serde]
impl Op for LpNormalization {
    fn op_type(&self) -> &str {
        "LpNormalization"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        same_as_input(cx, 0, 1)
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        const OP: &str = "LpNormalization";
        let x = req(inputs, 0)?;
        let a = one_axis(OP, self.axis, x.rank())?;
        let mask: Vec<bool> = (0..x.rank()).map(|i| i == a).collect();
        let l1 = self.p == 1;
        let y = map_groups(floats(OP, x)?, &mask, |g| {
            let n = if l1 {
                g.iter().map(|v| v.abs()).sum::<f64>()
            } else {
                g.iter().map(|v| v * v).sum::<f64>().sqrt()
            };
            g.iter()
                .map(|v| if n == 0.0 { 0.0 } else { v / n })
                .collect()
        })?;
        Ok(vec![Tensor::float(x.dtype(), y)])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        vec![("axis", Attr::Int(self.axis)), ("p", Attr::Int(self.p))]
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// `(x - E[x]) / (sqrt(E[x^2] - E[x]^2) + 1e-9)` over `axes`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MeanVarianceNormalization {
    pub axes: Vec<i64>,
}

#[typetag::serde]
impl Op for MeanVarianceNormalization {
    fn op_type(&self) -> &str {
        "MeanVarianceNormalization"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        same_as_input(cx, 0, 1)
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        const OP: &str = "MeanVarianceNormalization";
        let x = req(inputs, 0)?;
        let mask = axes_mask(OP, &self.axes, x.rank())?;
        let y = map_groups(floats(OP, x)?, &mask, |g| {
            let n = g.len() as f64;
            let m = g.iter().sum::<f64>() / n;
            let m2 = g.iter().map(|v| v * v).sum::<f64>() / n;
            let sd = (m2 - m * m).max(0.0).sqrt();
            g.iter().map(|v| (v - m) / (sd + 1e-9)).collect()
        })?;
        Ok(vec![Tensor::float(x.dtype(), y)])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        vec![("axes", Attr::Ints(self.axes.clone()))]
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Local response normalisation across channels of `(N, C, ...)`:
/// `x / (bias + alpha / size * sum(x^2 over the window))^beta`, the window spanning
/// `floor((size-1)/2)` channels before and `ceil((size-1)/2)` after.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Lrn {
    pub size: i64,
    pub alpha: f32,
    pub beta: f32,
    pub bias: f32,
}

#[typetag::serde]
impl Op for Lrn {
    fn op_type(&self) -> &str {
        "LRN"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        same_as_input(cx, 0, 1)
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        const OP: &str = "LRN";
        let x = req(inputs, 0)?;
        let xa = floats(OP, x)?;
        let s = x.shape();
        if s.len() < 2 {
            return Err(eval_err!("{OP}: input must be (N, C, ...), got {s:?}"));
        }
        let c = s[1];
        let inner: usize = s[2..].iter().product();
        let flat: Vec<f64> = xa.iter().copied().collect();
        let size = self.size.max(1) as usize;
        let (before, after) = ((size - 1) / 2, (size - 1).div_ceil(2));
        let (alpha, beta, bias) = (self.alpha as f64, self.beta as f64, self.bias as f64);
        let mut out = vec![0.0; flat.len()];
        for (i, o) in out.iter_mut().enumerate() {
            let ch = (i / inner.max(1)) % c.max(1);
            let base = i - ch * inner;
            let lo = ch.saturating_sub(before);
            let hi = (ch + after).min(c.saturating_sub(1));
            let sq: f64 = (lo..=hi).map(|k| flat[base + k * inner].powi(2)).sum();
            *o = flat[i] / (bias + alpha / size as f64 * sq).powf(beta);
        }
        Ok(vec![Tensor::float(x.dtype(), array(OP, s, out)?)])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        vec![
            ("size", Attr::Int(self.size)),
            ("alpha", Attr::Float(self.alpha)),
            ("beta", Attr::Float(self.beta)),
            ("bias", Attr::Float(self.bias)),
        ]
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}
