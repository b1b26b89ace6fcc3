//! `RotaryEmbedding` (opset 23): rotary position embedding over `(B, H, S, D)` or `(B, S, H*D)`.

use crate::onnx::attrs::NodeCtx;
use crate::op::{opt, req, Attr, EvalCx, InferCx, Op};
use crate::shape::ValueType;
use crate::tensor::Tensor;
use crate::{eval_err, Result};
use ndarray::{ArrayD, IxDyn};
use serde::{Deserialize, Serialize};
use std::any::Any;

/// Rotates the first `rotary_embedding_dim` features of each head by position-dependent angles
/// given as cos/sin caches (`(max_pos, rd/2)` indexed by `position_ids`, or `(B, S, rd/2)`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RotaryEmbedding {
    pub interleaved: bool,
    /// 0 means the whole head.
    pub rotary_embedding_dim: i64,
    /// Needed for 3-D input; 0 when absent.
    pub num_heads: i64,
}

pub fn build(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    let rd = cx.i("rotary_embedding_dim", 0)?;
    if rd < 0 || rd % 2 != 0 {
        return Err(cx.invalid("rotary_embedding_dim", "must be a non-negative even number"));
    }
    let nh = cx.i("num_heads", 0)?;
    if nh < 0 {
        return Err(cx.invalid("num_heads", "must be non-negative"));
    }
    Ok(Box::new(RotaryEmbedding {
        interleaved: cx.i("interleaved", 0)? != 0,
        rotary_embedding_dim: rd,
        num_heads: nh,
    }))
}

#[typetag::serde]
impl Op for RotaryEmbedding {
    fn op_type(&self) -> &str {
        "RotaryEmbedding"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        Ok(vec![cx.input(0)?.clone()])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let xa = x.as_f()?;
        let cos = req(inputs, 1)?.to_f()?;
        let sin = req(inputs, 2)?.to_f()?;
        let pos = opt(inputs, 3).map(|t| t.to_i()).transpose()?;
        let s = x.shape().to_vec();
        // (batch, seq, heads, head_size) and a function from those indices to the input's.
        let (b, sq, h, d, four) = match s.len() {
            4 => (s[0], s[2], s[1], s[3], true),
            3 => {
                let n = self.num_heads as usize;
                if n == 0 || !s[2].is_multiple_of(n) {
                    return Err(eval_err!(
                        "RotaryEmbedding: 3-D input {s:?} needs num_heads dividing its last dim"
                    ));
                }
                (s[0], s[1], n, s[2] / n, false)
            }
            r => {
                return Err(eval_err!(
                    "RotaryEmbedding: input must be rank 3 or 4, got {r}"
                ))
            }
        };
        let ix = |bi: usize, si: usize, hi: usize, k: usize| -> [usize; 4] {
            if four {
                [bi, hi, si, k]
            } else {
                [bi, si, hi * d + k, 0]
            }
        };
        let rd = if self.rotary_embedding_dim == 0 {
            d
        } else {
            self.rotary_embedding_dim as usize
        };
        if rd > d || !rd.is_multiple_of(2) {
            return Err(eval_err!(
                "RotaryEmbedding: rotary_embedding_dim {rd} does not fit head size {d}"
            ));
        }
        let half = rd / 2;
        if cos.shape() != sin.shape() || cos.shape().last() != Some(&half) {
            return Err(eval_err!(
                "RotaryEmbedding: cos/sin caches {:?}/{:?} must end in rotary_dim/2 = {half}",
                cos.shape(),
                sin.shape()
            ));
        }
        // The cache row for (batch, position-in-sequence).
        let row = |bi: usize, si: usize| -> Result<[usize; 2]> {
            match &pos {
                Some(p) => {
                    if cos.ndim() != 2 || p.shape() != [b, sq] {
                        return Err(eval_err!(
                            "RotaryEmbedding: position_ids must be {:?} and caches 2-D",
                            [b, sq]
                        ));
                    }
                    let v = p[[bi, si]];
                    if v < 0 || v as usize >= cos.shape()[0] {
                        return Err(eval_err!(
                            "RotaryEmbedding: position id {v} is outside the cache"
                        ));
                    }
                    Ok([v as usize, 0])
                }
                None => {
                    if cos.shape() != [b, sq, half] {
                        return Err(eval_err!(
                            "RotaryEmbedding: without position_ids the caches must be {:?}",
                            [b, sq, half]
                        ));
                    }
                    Ok([bi, si])
                }
            }
        };
        let get_c = |c: &ArrayD<f64>, r: [usize; 2], k: usize| -> f64 {
            if pos.is_some() {
                c[[r[0], k]]
            } else {
                c[[r[0], r[1], k]]
            }
        };
        let at = |i: [usize; 4]| -> f64 {
            if four {
                xa[[i[0], i[1], i[2], i[3]]]
            } else {
                xa[[i[0], i[1], i[2]]]
            }
        };
        let mut out = xa.clone();
        let dt = x.dtype();
        let rnd = |v: f64| dt.round_f64(v);
        for bi in 0..b {
            for si in 0..sq {
                let r = row(bi, si)?;
                for hi in 0..h {
                    for k in 0..half {
                        let (i1, i2) = if self.interleaved {
                            (2 * k, 2 * k + 1)
                        } else {
                            (k, k + half)
                        };
                        let (a1, a2) = (ix(bi, si, hi, i1), ix(bi, si, hi, i2));
                        let (x1, x2) = (at(a1), at(a2));
                        let (c, sn) = (get_c(&cos, r, k), get_c(&sin, r, k));
                        let re = rnd(rnd(c * x1) - rnd(sn * x2));
                        let im = rnd(rnd(sn * x1) + rnd(c * x2));
                        let slot = |a: [usize; 4]| -> IxDyn {
                            if four {
                                IxDyn(&a)
                            } else {
                                IxDyn(&a[..3])
                            }
                        };
                        out[slot(a1)] = re;
                        out[slot(a2)] = im;
                    }
                }
            }
        }
        Ok(vec![Tensor::float(dt, out)])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        let mut a = Vec::new();
        if self.interleaved {
            a.push(("interleaved", Attr::Int(1)));
        }
        if self.rotary_embedding_dim != 0 {
            a.push(("rotary_embedding_dim", Attr::Int(self.rotary_embedding_dim)));
        }
        if self.num_heads != 0 {
            a.push(("num_heads", Attr::Int(self.num_heads)));
        }
        a
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::SubgraphRunner;

    struct NoRun;
    impl SubgraphRunner for NoRun {
        fn run(&mut self, _: &crate::Graph, _: Vec<Tensor>) -> Result<Vec<Tensor>> {
            Err(eval_err!("none"))
        }
    }

    #[test]
    fn quarter_turn_rotates_pairs() {
        // One head of size 4, rotate by 90 degrees: (x1, x2) -> (-x2, x1) per pair.
        let op = RotaryEmbedding {
            interleaved: true,
            rotary_embedding_dim: 0,
            num_heads: 1,
        };
        let x = Tensor::from_f32(&[1, 1, 4], vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        let c = Tensor::from_f32(&[1, 1, 2], vec![0.0, 0.0]).unwrap();
        let s = Tensor::from_f32(&[1, 1, 2], vec![1.0, 1.0]).unwrap();
        let mut r = NoRun;
        let mut cx = EvalCx {
            num_outputs: 1,
            runner: &mut r,
        };
        let y = op.eval(&mut cx, &[Some(&x), Some(&c), Some(&s)]).unwrap();
        assert_eq!(y[0].to_f64_vec().unwrap(), vec![-2.0, 1.0, -4.0, 3.0]);
    }
}
