//! `Attention` (opsets 23-25): scaled dot-product attention with masks, KV cache, GQA and softcap.

use crate::onnx::attrs::NodeCtx;
use crate::op::{opt, req, Attr, EvalCx, InferCx, Op};
use crate::shape::{Dim, ValueType};
use crate::tensor::Tensor;
use crate::{eval_err, DType, Result};
use ndarray::{ArrayD, Axis, IxDyn};
use serde::{Deserialize, Serialize};
use std::any::Any;

/// Scaled dot-product attention over `(B, H, S, D)` or packed `(B, S, H*D)` inputs.
///
/// Inputs: Q, K, V, attn_mask, past_key, past_value, nonpad_kv_seqlen. Outputs: Y, present_key,
/// present_value, qk_matmul_output (which intermediate is chosen by `qk_matmul_output_mode`:
/// 0 and 1 the (softcapped) scores, 2 the scores plus the mask bias, 3 the probabilities).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Attention {
    pub is_causal: bool,
    pub q_num_heads: Option<i64>,
    pub kv_num_heads: Option<i64>,
    pub scale: Option<f32>,
    /// 0 disables the softcap.
    pub softcap: f32,
    pub softmax_precision: Option<i64>,
    pub qk_matmul_output_mode: i64,
    /// -1 leaves that side of the sliding window unbounded (opset 25).
    pub left_window_size: i64,
    pub right_window_size: i64,
}

pub fn build(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    let mode = cx.i("qk_matmul_output_mode", 0)?;
    if !(0..=3).contains(&mode) {
        return Err(cx.invalid("qk_matmul_output_mode", "must be 0, 1, 2 or 3"));
    }
    let softmax_precision = cx.opt_i("softmax_precision")?;
    if let Some(p) = softmax_precision {
        if !i32::try_from(p)
            .ok()
            .and_then(DType::from_onnx_code)
            .is_some_and(|d| matches!(d, DType::F32 | DType::F16 | DType::BF16 | DType::F64))
        {
            return Err(cx.invalid("softmax_precision", "must be a float type code"));
        }
    }
    let heads = |name: &str| -> Result<Option<i64>> {
        match cx.opt_i(name)? {
            Some(h) if h <= 0 => Err(cx.invalid(name, "must be positive")),
            h => Ok(h),
        }
    };
    let window = |name: &str| -> Result<i64> {
        let w = cx.i(name, -1)?;
        if w < -1 {
            return Err(cx.invalid(name, "must be -1 or non-negative"));
        }
        Ok(w)
    };
    Ok(Box::new(Attention {
        is_causal: cx.i("is_causal", 0)? != 0,
        q_num_heads: heads("q_num_heads")?,
        kv_num_heads: heads("kv_num_heads")?,
        scale: cx.opt_f("scale")?,
        softcap: cx.f("softcap", 0.0)?,
        softmax_precision,
        qk_matmul_output_mode: mode,
        left_window_size: window("left_window_size")?,
        right_window_size: window("right_window_size")?,
    }))
}

/// Splits a packed `(B, S, H*D)` array into `(B, H, S, D)`; rank-4 arrays pass through.
fn to_heads(a: ArrayD<f64>, heads: Option<i64>, what: &str) -> Result<ArrayD<f64>> {
    let s = a.shape().to_vec();
    match s.len() {
        4 => Ok(a),
        3 => {
            let n = heads
                .ok_or_else(|| eval_err!("Attention: 3-D {what} needs the head-count attribute"))?
                as usize;
            if n == 0 || !s[2].is_multiple_of(n) {
                return Err(eval_err!(
                    "Attention: {what} hidden size {} is not divisible by {n} heads",
                    s[2]
                ));
            }
            let d = s[2] / n;
            Ok(ArrayD::from_shape_fn(IxDyn(&[s[0], n, s[1], d]), |ix| {
                a[[ix[0], ix[2], ix[1] * d + ix[3]]]
            }))
        }
        r => Err(eval_err!("Attention: {what} must be rank 3 or 4, got {r}")),
    }
}

/// Appends the new keys/values to the cache along the sequence axis.
fn with_past(cur: ArrayD<f64>, past: Option<&Tensor>, what: &str) -> Result<ArrayD<f64>> {
    let Some(p) = past else { return Ok(cur) };
    let pa = p.to_f()?;
    let (ps, cs) = (pa.shape(), cur.shape());
    if ps.len() != 4 || ps[0] != cs[0] || ps[1] != cs[1] || ps[3] != cs[3] {
        return Err(eval_err!(
            "Attention: past_{what} {ps:?} does not match the {what} heads {cs:?}"
        ));
    }
    ndarray::concatenate(Axis(2), &[pa.view(), cur.view()])
        .map_err(|e| eval_err!("Attention: concatenating past_{what}: {e}"))
}

/// A mask value at one position: boolean (attend or not) or additive.
#[derive(Clone, Copy)]
enum MaskVal {
    Bool(bool),
    Add(f64),
}

/// `attn_mask`, broadcast right-aligned against `(B, Hq, Sq, Skv)`; positions past its last
/// dim are masked out (the spec allows masks shorter than the total key length).
struct Mask {
    data: MaskData,
    /// Shape padded on the left with 1s to rank 4.
    shape: [usize; 4],
}

enum MaskData {
    B(ArrayD<bool>),
    F(ArrayD<f64>),
}

impl Mask {
    fn new(t: &Tensor, full: [usize; 4]) -> Result<Mask> {
        let s = t.shape();
        if s.is_empty() || s.len() > 4 {
            return Err(eval_err!(
                "Attention: attn_mask must have rank 1 to 4, got {s:?}"
            ));
        }
        let mut shape = [1; 4];
        shape[4 - s.len()..].copy_from_slice(s);
        for a in 0..3 {
            if shape[a] != 1 && shape[a] != full[a] {
                return Err(eval_err!(
                    "Attention: attn_mask {s:?} does not broadcast to {full:?}"
                ));
            }
        }
        if shape[3] > full[3] {
            return Err(eval_err!(
                "Attention: attn_mask {s:?} is longer than the {} keys",
                full[3]
            ));
        }
        let data = if t.dtype() == DType::Bool {
            MaskData::B(
                t.as_b()?
                    .clone()
                    .into_shape_with_order(IxDyn(&shape))
                    .map_err(|e| eval_err!("Attention: attn_mask: {e}"))?,
            )
        } else {
            MaskData::F(
                t.to_f()?
                    .into_shape_with_order(IxDyn(&shape))
                    .map_err(|e| eval_err!("Attention: attn_mask: {e}"))?,
            )
        };
        Ok(Mask { data, shape })
    }

    fn at(&self, b: usize, h: usize, i: usize, j: usize) -> MaskVal {
        let bad = match self.data {
            MaskData::B(_) => MaskVal::Bool(false),
            MaskData::F(_) => MaskVal::Add(f64::NEG_INFINITY),
        };
        if j >= self.shape[3] {
            return bad;
        }
        let ix = [
            if self.shape[0] == 1 { 0 } else { b },
            if self.shape[1] == 1 { 0 } else { h },
            if self.shape[2] == 1 { 0 } else { i },
            j,
        ];
        match &self.data {
            MaskData::B(a) => a.get(&ix[..]).map(|&v| MaskVal::Bool(v)).unwrap_or(bad),
            MaskData::F(a) => a.get(&ix[..]).map(|&v| MaskVal::Add(v)).unwrap_or(bad),
        }
    }
}

/// Max that propagates NaN, as numpy's `max` does.
fn nan_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

impl Attention {
    fn window(&self) -> bool {
        self.left_window_size >= 0 || self.right_window_size >= 0
    }
}

#[typetag::serde]
impl Op for Attention {
    fn op_type(&self) -> &str {
        "Attention"
    }

    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let (q, k, v) = (cx.input(0)?, cx.input(1)?, cx.input(2)?);
        let past = cx
            .opt_input(4)
            .and_then(|t| t.shape.as_ref())
            .and_then(|s| s.get(2).cloned())
            .unwrap_or(Dim::Known(0));
        let unk = || {
            vec![
                ValueType::unranked(q.dtype),
                ValueType::unranked(k.dtype),
                ValueType::unranked(v.dtype),
                ValueType::unranked(q.dtype),
            ]
        };
        let (Some(qs), Some(ks), Some(vs)) = (&q.shape, &k.shape, &v.shape) else {
            return Ok(unk());
        };
        if qs.len() != ks.len() || qs.len() != vs.len() {
            return Ok(unk());
        }
        let (b, hq, sq, hkv, skv, dk, dv, y) = match qs.len() {
            4 => (
                qs[0].clone(),
                qs[1].clone(),
                qs[2].clone(),
                ks[1].clone(),
                ks[2].clone(),
                ks[3].clone(),
                vs[3].clone(),
                vec![qs[0].clone(), qs[1].clone(), qs[2].clone(), vs[3].clone()],
            ),
            3 => {
                let (Some(nq), Some(nkv)) = (self.q_num_heads, self.kv_num_heads) else {
                    return Ok(unk());
                };
                let (nq, nkv) = (Dim::Known(nq as u64), Dim::Known(nkv as u64));
                let dv = vs[2].floor_div(&nkv);
                (
                    qs[0].clone(),
                    nq.clone(),
                    qs[1].clone(),
                    nkv.clone(),
                    ks[1].clone(),
                    ks[2].floor_div(&nkv),
                    dv.clone(),
                    vec![qs[0].clone(), qs[1].clone(), dv.mul(&nq)],
                )
            }
            _ => return Ok(unk()),
        };
        let total = past.add(&skv);
        Ok(vec![
            ValueType::new(q.dtype, y),
            ValueType::new(k.dtype, vec![b.clone(), hkv.clone(), total.clone(), dk]),
            ValueType::new(v.dtype, vec![b.clone(), hkv, total.clone(), dv]),
            ValueType::new(q.dtype, vec![b, hq, sq, total]),
        ])
    }

    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let (q, k, v) = (req(inputs, 0)?, req(inputs, 1)?, req(inputs, 2)?);
        let dt = q.dtype();
        if !dt.is_float() {
            return Err(eval_err!("Attention: Q must be a float tensor, got {dt}"));
        }
        let rank = q.rank();
        if k.rank() != rank || v.rank() != rank {
            return Err(eval_err!(
                "Attention: Q, K and V must have the same rank, got {:?}, {:?}, {:?}",
                q.shape(),
                k.shape(),
                v.shape()
            ));
        }
        let qa = to_heads(q.to_f()?, self.q_num_heads, "Q")?;
        let ka = to_heads(k.to_f()?, self.kv_num_heads, "K")?;
        let va = to_heads(v.to_f()?, self.kv_num_heads, "V")?;
        let (past_k, past_v) = (opt(inputs, 4), opt(inputs, 5));
        if past_k.is_some() != past_v.is_some() {
            return Err(eval_err!(
                "Attention: past_key and past_value must be given together"
            ));
        }
        let nonpad = opt(inputs, 6).map(|t| t.to_i64_vec()).transpose()?;
        if nonpad.is_some() && past_k.is_some() {
            return Err(eval_err!(
                "Attention: nonpad_kv_seqlen cannot be combined with past_key/past_value"
            ));
        }
        let past_len = past_k.map(|p| p.shape().get(2).copied().unwrap_or(0));
        let ka = with_past(ka, past_k, "key")?;
        let va = with_past(va, past_v, "value")?;
        let (qs, ks, vs) = (qa.shape(), ka.shape(), va.shape());
        let (b, hq, sq, d) = (qs[0], qs[1], qs[2], qs[3]);
        let (hkv, skv, dv) = (ks[1], ks[2], vs[3]);
        if ks[0] != b
            || vs[0] != b
            || ks[3] != d
            || vs[1] != hkv
            || vs[2] != skv
            || hkv == 0
            || !hq.is_multiple_of(hkv)
        {
            return Err(eval_err!(
                "Attention: incompatible head shapes Q {qs:?}, K {ks:?}, V {vs:?}"
            ));
        }
        if let Some(n) = &nonpad {
            if n.len() != b {
                return Err(eval_err!(
                    "Attention: nonpad_kv_seqlen must have {b} values, got {}",
                    n.len()
                ));
            }
        }
        let group = hq / hkv;
        let mask = opt(inputs, 3)
            .map(|m| Mask::new(m, [b, hq, sq, skv]))
            .transpose()?;
        let sp = match self.softmax_precision {
            Some(p) => DType::from_onnx_code(p as i32)
                .ok_or_else(|| eval_err!("Attention: bad softmax_precision {p}"))?,
            None => dt,
        };
        let r = |x: f64| dt.round_f64(x);
        let scale = self
            .scale
            .map(f64::from)
            .unwrap_or_else(|| 1.0 / (d as f64).sqrt());
        let sqrt_scale = r(scale.sqrt());
        let qsc = qa.mapv(|x| r(x * sqrt_scale));
        let ksc = ka.mapv(|x| r(x * sqrt_scale));
        let neg = f64::NEG_INFINITY;
        let offset = |bi: usize| -> i64 {
            match (&nonpad, past_len) {
                (Some(n), None) => n[bi] - sq as i64,
                (_, Some(p)) => p as i64,
                _ => 0,
            }
        };

        let mut qk_out = ArrayD::<f64>::zeros(IxDyn(&[b, hq, sq, skv]));
        let mut y = ArrayD::<f64>::zeros(IxDyn(&[b, hq, sq, dv]));
        let mut scores = vec![0.0; skv];
        let mut bias = vec![0.0; skv];
        for bi in 0..b {
            let off = offset(bi);
            for h in 0..hq {
                let kh = h / group;
                for i in 0..sq {
                    for j in 0..skv {
                        let mut s = r((0..d)
                            .map(|x| qsc[[bi, h, i, x]] * ksc[[bi, kh, j, x]])
                            .sum::<f64>());
                        if self.softcap > 0.0 {
                            let c = f64::from(self.softcap);
                            s = r(r(r(s / c).tanh()) * c);
                        }
                        // The additive bias, as the reference builds it.
                        let m = mask.as_ref().map(|m| m.at(bi, h, i, j));
                        let mut bv = if self.is_causal {
                            let base = match m {
                                None => 0.0,
                                Some(MaskVal::Bool(t)) => {
                                    if t {
                                        0.0
                                    } else {
                                        neg
                                    }
                                }
                                Some(MaskVal::Add(x)) => x,
                            };
                            let allowed = (j as i64) <= i as i64 + off;
                            base + if allowed { 0.0 } else { neg }
                        } else {
                            match m {
                                None => 0.0,
                                Some(MaskVal::Bool(t)) => {
                                    if t {
                                        0.0
                                    } else {
                                        neg
                                    }
                                }
                                Some(MaskVal::Add(x)) => x,
                            }
                        };
                        if self.window() {
                            let diff = i as i64 + off - j as i64;
                            let ok = (self.left_window_size < 0 || diff <= self.left_window_size)
                                && (self.right_window_size < 0 || -diff <= self.right_window_size);
                            if !ok {
                                bv += neg;
                            }
                        }
                        if let Some(n) = &nonpad {
                            if j as i64 >= n[bi] {
                                bv += neg;
                            }
                        }
                        bias[j] = r(bv);
                        scores[j] = s;
                        qk_out[[bi, h, i, j]] = s;
                    }
                    let all_masked = bias.iter().copied().fold(neg, nan_max) == neg;
                    let with_bias: Vec<f64> = scores
                        .iter()
                        .zip(&bias)
                        .map(|(&s, &bv)| r(s + bv))
                        .collect();
                    if self.qk_matmul_output_mode == 2 {
                        for (j, &x) in with_bias.iter().enumerate() {
                            qk_out[[bi, h, i, j]] = x;
                        }
                    }
                    let probs = softmax(&with_bias, sp, all_masked);
                    for (j, &p) in probs.iter().enumerate() {
                        if self.qk_matmul_output_mode == 3 {
                            qk_out[[bi, h, i, j]] = p;
                        }
                    }
                    for m in 0..dv {
                        let acc: f64 = (0..skv).map(|j| r(probs[j]) * va[[bi, kh, j, m]]).sum();
                        y[[bi, h, i, m]] = acc;
                    }
                }
            }
        }
        let y = if rank == 3 {
            ArrayD::from_shape_fn(IxDyn(&[b, sq, hq * dv]), |ix| {
                y[[ix[0], ix[2] / dv, ix[1], ix[2] % dv]]
            })
        } else {
            y
        };
        Ok(vec![
            Tensor::float(dt, y),
            Tensor::float(k.dtype(), ka),
            Tensor::float(v.dtype(), va),
            Tensor::float(dt, qk_out),
        ])
    }

    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        let mut a = Vec::new();
        if self.is_causal {
            a.push(("is_causal", Attr::Int(1)));
        }
        if let Some(h) = self.q_num_heads {
            a.push(("q_num_heads", Attr::Int(h)));
        }
        if let Some(h) = self.kv_num_heads {
            a.push(("kv_num_heads", Attr::Int(h)));
        }
        if let Some(s) = self.scale {
            a.push(("scale", Attr::Float(s)));
        }
        if self.softcap != 0.0 {
            a.push(("softcap", Attr::Float(self.softcap)));
        }
        if let Some(p) = self.softmax_precision {
            a.push(("softmax_precision", Attr::Int(p)));
        }
        if self.qk_matmul_output_mode != 0 {
            a.push((
                "qk_matmul_output_mode",
                Attr::Int(self.qk_matmul_output_mode),
            ));
        }
        if self.left_window_size != -1 {
            a.push(("left_window_size", Attr::Int(self.left_window_size)));
        }
        if self.right_window_size != -1 {
            a.push(("right_window_size", Attr::Int(self.right_window_size)));
        }
        a
    }

    /// `B*Hq*Sq*Skv*(Dk + Dv)`: the two matmuls (`2*B*H*Sq*Skv*D` when `Dk == Dv`).
    fn macs(&self, inputs: &[Option<&ValueType>], outputs: &[ValueType]) -> u64 {
        let get = |i: usize| inputs.get(i).copied().flatten();
        let q = get(0).and_then(|t| t.numel()).unwrap_or(0);
        let y = outputs.first().and_then(|t| t.numel()).unwrap_or(0);
        let seq = |t: Option<&ValueType>| -> Option<u64> {
            let s = t?.shape.as_ref()?;
            s.get(s.len().checked_sub(2)?)?.known()
        };
        let kseq = match get(1).and_then(|t| t.shape.as_ref()) {
            Some(s) if s.len() == 3 => s[1].known().unwrap_or(0),
            _ => seq(get(1)).unwrap_or(0),
        };
        let total = kseq + seq(get(4)).unwrap_or(0);
        (q + y).saturating_mul(total)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Softmax of one row computed in `sp` precision, as the reference does: a row whose max is
/// `-inf` yields zeros, and `all_masked` rows (every bias `-inf`) are zeroed.
fn softmax(row: &[f64], sp: DType, all_masked: bool) -> Vec<f64> {
    let r = |x: f64| sp.round_f64(x);
    if all_masked {
        return vec![0.0; row.len()];
    }
    let x: Vec<f64> = row.iter().map(|&v| r(v)).collect();
    let mx = x.iter().copied().fold(f64::NEG_INFINITY, nan_max);
    let safe = if mx == f64::NEG_INFINITY { 0.0 } else { mx };
    let e: Vec<f64> = x.iter().map(|&v| r(r(v - safe).exp())).collect();
    // numpy reduces bfloat16 (an ml_dtypes type) sequentially in bfloat16; native floats are
    // summed at higher precision.
    let mut s = if sp == DType::BF16 {
        e.iter().fold(0.0, |acc, &v| r(acc + v))
    } else {
        r(e.iter().sum::<f64>())
    };
    if s == 0.0 {
        s = 1.0;
    }
    e.iter().map(|&v| r(v / s)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_masked_rows_are_zero() {
        let n = f64::NEG_INFINITY;
        assert_eq!(softmax(&[n, n], DType::F32, false), vec![0.0, 0.0]);
        assert_eq!(softmax(&[1.0, 2.0], DType::F32, true), vec![0.0, 0.0]);
        let p = softmax(&[0.0, n], DType::F64, false);
        assert_eq!(p, vec![1.0, 0.0]);
    }

    #[test]
    fn short_mask_pads_with_masked() {
        let t = Tensor::bool(ArrayD::from_elem(IxDyn(&[2]), true));
        let m = Mask::new(&t, [1, 1, 1, 4]).unwrap();
        assert!(matches!(m.at(0, 0, 0, 1), MaskVal::Bool(true)));
        assert!(matches!(m.at(0, 0, 0, 3), MaskVal::Bool(false)));
        assert!(Mask::new(&t, [1, 1, 1, 1]).is_err());
    }
}
