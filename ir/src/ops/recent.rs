//! Recent fused ops (opsets 27-28): `CausalConvWithState`, `LinearAttention`, `SwiGLU`.

use super::Registry;
use crate::graph::Graph;
use crate::onnx::attrs::NodeCtx;
use crate::op::{opt, req, Attr, EvalCx, InferCx, Op};
use crate::shape::{Dim, ValueType};
use crate::tensor::Tensor;
use crate::{eval_err, Result};
use ndarray::{ArrayD, IxDyn};
use serde::{Deserialize, Serialize};
use std::any::Any;

/// Registers this family's builders.
pub fn register(r: &mut Registry) {
    r.add("CausalConvWithState", |cx| {
        let activation = cx.s("activation", "none")?;
        if !matches!(activation.as_str(), "none" | "silu" | "swish") {
            return Err(cx.invalid("activation", "must be none, silu or swish"));
        }
        Ok(Box::new(CausalConvWithState { activation }))
    });
    r.add("LinearAttention", build_linear_attention);
    r.add("SwiGLU", |cx| {
        Ok(Box::new(SwiGlu {
            alpha: cx.f("alpha", 1.0)?,
        }))
    });
    r.add_domain("ai.onnx.preview", "FlexAttention", |cx| {
        Ok(Box::new(FlexAttention {
            scale: cx.opt_f("scale")?,
            softmax_precision: cx.opt_i("softmax_precision")?,
            score_mod: cx.graph("score_mod")?,
            prob_mod: cx.graph("prob_mod")?,
        }))
    });
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Stateful causal depthwise 1-D convolution over `(batch, channels, length)`, with weights
/// `(channels, 1, k)`; the state carries the last `k - 1` input positions.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CausalConvWithState {
    pub activation: String,
}

#[typetag::serde]
impl Op for CausalConvWithState {
    fn op_type(&self) -> &str {
        "CausalConvWithState"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let x = cx.input(0)?;
        let k = cx.input(1)?.shape.as_ref().and_then(|s| s.get(2).cloned());
        let state = match (&x.shape, k) {
            (Some(s), Some(k)) if s.len() == 3 => ValueType::new(
                x.dtype,
                vec![s[0].clone(), s[1].clone(), k.sub(&Dim::Known(1))],
            ),
            _ => ValueType::unranked(x.dtype),
        };
        Ok(vec![x.clone(), state])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let w = req(inputs, 1)?;
        let (xs, ws) = (x.shape().to_vec(), w.shape().to_vec());
        if xs.len() != 3 || ws.len() != 3 || ws[0] != xs[1] || ws[1] != 1 || ws[2] == 0 {
            return Err(eval_err!("CausalConvWithState: input {xs:?} and weight {ws:?} must be (B, C, L) and (C, 1, k)"));
        }
        let (b, c, l, k) = (xs[0], xs[1], xs[2], ws[2]);
        let xa = x.as_f()?;
        let wa = w.as_f()?;
        let bias = opt(inputs, 2).map(|t| t.to_f64_vec()).transpose()?;
        if bias.as_ref().is_some_and(|v| v.len() != c) {
            return Err(eval_err!("CausalConvWithState: bias must have {c} values"));
        }
        let past = opt(inputs, 3);
        if let Some(p) = past {
            if p.shape() != [b, c, k - 1] {
                return Err(eval_err!(
                    "CausalConvWithState: past_state must be {:?}, got {:?}",
                    [b, c, k - 1],
                    p.shape()
                ));
            }
        }
        let pa = past.map(|p| p.to_f()).transpose()?;
        let padded = |bi: usize, ci: usize, t: usize| -> f64 {
            if t < k - 1 {
                pa.as_ref().map(|p| p[[bi, ci, t]]).unwrap_or(0.0)
            } else {
                xa[[bi, ci, t - (k - 1)]]
            }
        };
        let mut out = ArrayD::<f64>::zeros(IxDyn(&[b, c, l]));
        let mut state = ArrayD::<f64>::zeros(IxDyn(&[b, c, k - 1]));
        for bi in 0..b {
            for ci in 0..c {
                for t in 0..l {
                    let mut s = bias.as_ref().map(|v| v[ci]).unwrap_or(0.0);
                    for j in 0..k {
                        s += wa[[ci, 0, j]] * padded(bi, ci, t + j);
                    }
                    let s = x.dtype().round_f64(s);
                    out[[bi, ci, t]] = if self.activation == "none" {
                        s
                    } else {
                        s * sigmoid(s)
                    };
                }
                for j in 0..k - 1 {
                    state[[bi, ci, j]] = padded(bi, ci, l + j);
                }
            }
        }
        Ok(vec![
            Tensor::float(x.dtype(), out),
            Tensor::float(x.dtype(), state),
        ])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        vec![("activation", Attr::Str(self.activation.clone()))]
    }
    fn macs(&self, inputs: &[Option<&ValueType>], _outputs: &[ValueType]) -> u64 {
        let n = inputs
            .first()
            .copied()
            .flatten()
            .and_then(|t| t.numel())
            .unwrap_or(0);
        let k = inputs
            .get(1)
            .copied()
            .flatten()
            .and_then(|t| t.shape.as_ref()?.get(2)?.known())
            .unwrap_or(0);
        n * k
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Linear attention with a recurrent `(d_k, d_v)` state per KV head (`linear`, `gated`, `delta`,
/// `gated_delta` update rules), over packed `(B, T, H*D)` inputs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LinearAttention {
    pub q_num_heads: usize,
    pub kv_num_heads: usize,
    pub scale: f32,
    pub update_rule: String,
    pub chunk_size: i64,
}

fn build_linear_attention(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    let q = cx.i("q_num_heads", 0)?;
    let kv = cx.i("kv_num_heads", 0)?;
    if q <= 0 || kv <= 0 || q % kv != 0 {
        return Err(cx.invalid(
            "q_num_heads",
            "q_num_heads must be a positive multiple of kv_num_heads",
        ));
    }
    let update_rule = cx.s("update_rule", "gated_delta")?;
    if !matches!(
        update_rule.as_str(),
        "linear" | "gated" | "delta" | "gated_delta"
    ) {
        return Err(cx.invalid("update_rule", "must be linear, gated, delta or gated_delta"));
    }
    Ok(Box::new(LinearAttention {
        q_num_heads: q as usize,
        kv_num_heads: kv as usize,
        scale: cx.f("scale", 0.0)?,
        update_rule,
        chunk_size: cx.i("chunk_size", 64)?,
    }))
}

#[typetag::serde]
impl Op for LinearAttention {
    fn op_type(&self) -> &str {
        "LinearAttention"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let q = cx.input(0)?;
        let v = cx.input(2)?;
        let (out, state) = match (&q.shape, &v.shape) {
            (Some(qs), Some(vs)) if qs.len() == 3 && vs.len() == 3 => {
                let dv = vs[2].floor_div(&Dim::Known(self.kv_num_heads as u64));
                let dk = qs[2].floor_div(&Dim::Known(self.q_num_heads as u64));
                (
                    ValueType::new(
                        q.dtype,
                        vec![
                            qs[0].clone(),
                            qs[1].clone(),
                            dv.mul(&Dim::Known(self.q_num_heads as u64)),
                        ],
                    ),
                    ValueType::new(
                        cx.opt_input(3).map(|t| t.dtype).unwrap_or(q.dtype),
                        vec![qs[0].clone(), Dim::Known(self.kv_num_heads as u64), dk, dv],
                    ),
                )
            }
            _ => (ValueType::unranked(q.dtype), ValueType::unranked(q.dtype)),
        };
        Ok(vec![out, state])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let (q, k, v) = (req(inputs, 0)?, req(inputs, 1)?, req(inputs, 2)?);
        let (hq, hk) = (self.q_num_heads, self.kv_num_heads);
        let qs = q.shape();
        if qs.len() != 3
            || k.rank() != 3
            || v.rank() != 3
            || qs[2] % hq != 0
            || v.shape()[2] % hk != 0
        {
            return Err(eval_err!("LinearAttention: query/key/value must be (B, T, H*D) with dims divisible by the head counts"));
        }
        let (b, t) = (qs[0], qs[1]);
        let dk = qs[2] / hq;
        let dv = v.shape()[2] / hk;
        if k.shape() != [b, t, hk * dk] || v.shape()[..2] != [b, t] {
            return Err(eval_err!(
                "LinearAttention: key must be {:?}, got {:?}",
                [b, t, hk * dk],
                k.shape()
            ));
        }
        let gating = self.update_rule.contains("gated");
        let delta = self.update_rule.contains("delta");
        let decay = opt(inputs, 4);
        let beta = opt(inputs, 5);
        if gating != decay.is_some() || delta != beta.is_some() {
            return Err(eval_err!(
                "LinearAttention: update_rule '{}' does not match the decay/beta inputs given",
                self.update_rule
            ));
        }
        let (qa, ka, va) = (q.as_f()?, k.as_f()?, v.as_f()?);
        let da = decay.map(|d| d.to_f()).transpose()?;
        let ba = beta.map(|d| d.to_f()).transpose()?;
        let dlast = da
            .as_ref()
            .map(|d| d.shape().last().copied().unwrap_or(0))
            .unwrap_or(0);
        if da.is_some() && dlast != hk && dlast != hk * dk {
            return Err(eval_err!(
                "LinearAttention: decay's last dim must be {hk} or {}",
                hk * dk
            ));
        }
        let blast = ba
            .as_ref()
            .map(|d| d.shape().last().copied().unwrap_or(0))
            .unwrap_or(0);
        if ba.is_some() && blast != hk && blast != 1 {
            return Err(eval_err!(
                "LinearAttention: beta's last dim must be {hk} or 1"
            ));
        }
        let past = opt(inputs, 3);
        let state_dtype = past.map(|p| p.dtype()).unwrap_or(q.dtype());
        let mut s = match past {
            Some(p) if p.shape() == [b, hk, dk, dv] => p.to_f()?,
            Some(p) => {
                return Err(eval_err!(
                    "LinearAttention: past_state must be {:?}, got {:?}",
                    [b, hk, dk, dv],
                    p.shape()
                ))
            }
            None => ArrayD::zeros(IxDyn(&[b, hk, dk, dv])),
        };
        let scale = if self.scale == 0.0 {
            1.0 / (dk as f64).sqrt()
        } else {
            self.scale as f64
        };
        let group = hq / hk;
        let mut out = ArrayD::<f64>::zeros(IxDyn(&[b, t, hq * dv]));
        for bi in 0..b {
            for ti in 0..t {
                for h in 0..hk {
                    if let Some(d) = &da {
                        for i in 0..dk {
                            let g = if dlast == hk {
                                d[[bi, ti, h]]
                            } else {
                                d[[bi, ti, h * dk + i]]
                            };
                            let e = g.exp();
                            for m in 0..dv {
                                s[[bi, h, i, m]] *= e;
                            }
                        }
                    }
                    let mut vt: Vec<f64> = (0..dv).map(|m| va[[bi, ti, h * dv + m]]).collect();
                    if let Some(bt) = &ba {
                        let beta = if blast == 1 {
                            bt[[bi, ti, 0]]
                        } else {
                            bt[[bi, ti, h]]
                        };
                        for (m, vm) in vt.iter_mut().enumerate() {
                            let r: f64 = (0..dk)
                                .map(|i| s[[bi, h, i, m]] * ka[[bi, ti, h * dk + i]])
                                .sum();
                            *vm = beta * (*vm - r);
                        }
                    }
                    for i in 0..dk {
                        let kv = ka[[bi, ti, h * dk + i]];
                        for (m, vm) in vt.iter().enumerate() {
                            s[[bi, h, i, m]] += kv * vm;
                        }
                    }
                }
                for hqi in 0..hq {
                    let h = hqi / group;
                    for m in 0..dv {
                        let o: f64 = (0..dk)
                            .map(|i| qa[[bi, ti, hqi * dk + i]] * s[[bi, h, i, m]])
                            .sum();
                        out[[bi, ti, hqi * dv + m]] = scale * o;
                    }
                }
            }
        }
        Ok(vec![
            Tensor::float(q.dtype(), out),
            Tensor::float(state_dtype, s),
        ])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        vec![
            ("q_num_heads", Attr::Int(self.q_num_heads as i64)),
            ("kv_num_heads", Attr::Int(self.kv_num_heads as i64)),
            ("scale", Attr::Float(self.scale)),
            ("update_rule", Attr::Str(self.update_rule.clone())),
            ("chunk_size", Attr::Int(self.chunk_size)),
        ]
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// `Y = A * sigmoid(alpha * A) * B` (no broadcasting).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SwiGlu {
    pub alpha: f32,
}

#[typetag::serde]
impl Op for SwiGlu {
    fn op_type(&self) -> &str {
        "SwiGLU"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        Ok(vec![cx.input(0)?.clone()])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let (a, b) = (req(inputs, 0)?, req(inputs, 1)?);
        if a.shape() != b.shape() {
            return Err(eval_err!(
                "SwiGLU: A {:?} and B {:?} must have the same shape",
                a.shape(),
                b.shape()
            ));
        }
        let al = self.alpha as f64;
        let mut y = a.as_f()?.clone();
        ndarray::Zip::from(&mut y)
            .and(b.as_f()?)
            .for_each(|x, &bv| *x = *x * sigmoid(al * *x) * bv);
        Ok(vec![Tensor::float(a.dtype(), y)])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        vec![("alpha", Attr::Float(self.alpha))]
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Scaled dot-product attention over rank-4 inputs with optional `score_mod` / `prob_mod`
/// subgraphs (`ai.onnx.preview`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FlexAttention {
    pub scale: Option<f32>,
    pub softmax_precision: Option<i64>,
    pub score_mod: Option<Graph>,
    pub prob_mod: Option<Graph>,
}

impl FlexAttention {
    /// Whether Q `[B, Hq, Lq, D]`, K `[B, Hk, Lk, D]` and V `[B, Hk, Lk, Dv]` fit together
    /// (rank 4, `Hq` a multiple of `Hk > 0`).
    pub fn shapes_fit(qs: &[usize], ks: &[usize], vs: &[usize]) -> bool {
        qs.len() == 4
            && ks.len() == 4
            && vs.len() == 4
            && ks[1] != 0
            && qs[1].is_multiple_of(ks[1])
            && ks[3] == qs[3]
            && vs[2] == ks[2]
            && vs[1] == ks[1]
            && ks[0] == qs[0]
            && vs[0] == qs[0]
    }
}

#[typetag::serde]
impl Op for FlexAttention {
    fn op_type(&self) -> &str {
        "FlexAttention"
    }
    fn domain(&self) -> &str {
        "ai.onnx.preview"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let q = cx.input(0)?;
        let v = cx.input(2)?;
        Ok(vec![match (&q.shape, &v.shape) {
            (Some(qs), Some(vs)) if qs.len() == 4 && vs.len() == 4 => ValueType::new(
                q.dtype,
                vec![qs[0].clone(), qs[1].clone(), qs[2].clone(), vs[3].clone()],
            ),
            _ => ValueType::unranked(q.dtype),
        }])
    }
    fn eval(&self, cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let (q, k, v) = (req(inputs, 0)?, req(inputs, 1)?, req(inputs, 2)?);
        let (qs, ks, vs) = (q.shape().to_vec(), k.shape().to_vec(), v.shape().to_vec());
        if !FlexAttention::shapes_fit(&qs, &ks, &vs) {
            return Err(eval_err!(
                "FlexAttention: incompatible shapes Q {qs:?}, K {ks:?}, V {vs:?}"
            ));
        }
        let (b, hq, lq, d) = (qs[0], qs[1], qs[2], qs[3]);
        let (lk, dv) = (ks[2], vs[3]);
        let group = hq / ks[1];
        let scale = self
            .scale
            .map(|s| s as f64)
            .unwrap_or(1.0 / (d as f64).sqrt());
        let prec = match self.softmax_precision {
            Some(p) => crate::DType::from_onnx_code(p as i32)
                .ok_or_else(|| eval_err!("FlexAttention: bad softmax_precision {p}"))?,
            None if q.dtype() == crate::DType::F64 => crate::DType::F64,
            None => crate::DType::F32,
        };
        let (qa, ka, va) = (q.as_f()?, k.as_f()?, v.as_f()?);
        let mut scores = ArrayD::<f64>::zeros(IxDyn(&[b, hq, lq, lk]));
        for bi in 0..b {
            for h in 0..hq {
                let kh = h / group;
                for i in 0..lq {
                    for j in 0..lk {
                        let s: f64 = (0..d).map(|x| qa[[bi, h, i, x]] * ka[[bi, kh, j, x]]).sum();
                        scores[[bi, h, i, j]] = s * scale;
                    }
                }
            }
        }
        let mut st = Tensor::float(prec, scores);
        if let Some(g) = &self.score_mod {
            st = cx
                .runner
                .run(g, vec![st])?
                .into_iter()
                .next()
                .ok_or_else(|| eval_err!("score_mod returned nothing"))?;
        }
        let mut p = st.to_f()?;
        for mut row in p.lanes_mut(ndarray::Axis(3)) {
            let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = row
                .iter()
                .map(|&x| {
                    if m == f64::NEG_INFINITY {
                        0.0
                    } else {
                        (x - m).exp()
                    }
                })
                .collect();
            let sum: f64 = e.iter().sum();
            for (r, x) in row.iter_mut().zip(e) {
                *r = if sum > 0.0 { x / sum } else { f64::NAN };
            }
        }
        let mut pt = Tensor::float(prec, p);
        if let Some(g) = &self.prob_mod {
            pt = cx
                .runner
                .run(g, vec![pt])?
                .into_iter()
                .next()
                .ok_or_else(|| eval_err!("prob_mod returned nothing"))?;
        }
        let pa = pt.to_f()?;
        let mut y = ArrayD::<f64>::zeros(IxDyn(&[b, hq, lq, dv]));
        for bi in 0..b {
            for h in 0..hq {
                let kh = h / group;
                for i in 0..lq {
                    for m in 0..dv {
                        y[[bi, h, i, m]] = (0..lk)
                            .map(|j| pa[[bi, h, i, j]] * va[[bi, kh, j, m]])
                            .sum();
                    }
                }
            }
        }
        Ok(vec![Tensor::float(q.dtype(), y)])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        let mut v = Vec::new();
        if let Some(s) = self.scale {
            v.push(("scale", Attr::Float(s)));
        }
        if let Some(p) = self.softmax_precision {
            v.push(("softmax_precision", Attr::Int(p)));
        }
        if let Some(g) = &self.score_mod {
            v.push(("score_mod", Attr::Graph(Box::new(g.clone()))));
        }
        if let Some(g) = &self.prob_mod {
            v.push(("prob_mod", Attr::Graph(Box::new(g.clone()))));
        }
        v
    }
    fn subgraphs(&self) -> Vec<&Graph> {
        self.score_mod.iter().chain(self.prob_mod.iter()).collect()
    }
    fn macs(&self, inputs: &[Option<&ValueType>], outputs: &[ValueType]) -> u64 {
        let q = inputs
            .first()
            .copied()
            .flatten()
            .and_then(|t| t.numel())
            .unwrap_or(0);
        let lk = inputs
            .get(1)
            .copied()
            .flatten()
            .and_then(|t| t.shape.as_ref()?.get(2)?.known())
            .unwrap_or(0);
        let y = outputs.first().and_then(|t| t.numel()).unwrap_or(0);
        q * lk + y * lk
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}
