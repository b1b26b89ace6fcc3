//! The `RNN`, `GRU` and `LSTM` ops: their cell equations over the shared time loop.

use super::common::{RnnAttrs, Seq};
use crate::onnx::attrs::NodeCtx;
use crate::op::{opt, Attr, EvalCx, InferCx, Op};
use crate::shape::ValueType;
use crate::tensor::Tensor;
use crate::{eval_err, Result};
use serde::{Deserialize, Serialize};
use std::any::Any;

/// Elman RNN: `H = f(W x + R H + Wb + Rb)`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Rnn {
    pub common: RnnAttrs,
}

pub fn build_rnn(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    Ok(Box::new(Rnn {
        common: RnnAttrs::read(cx, 1)?,
    }))
}

#[typetag::serde]
impl Op for Rnn {
    fn op_type(&self) -> &str {
        "RNN"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        self.common.infer(cx, 1)
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let at = &self.common;
        let s = Seq::read("RNN", at, inputs, 1, None)?;
        let acts = at.resolve(&["Tanh"])?;
        let h = s.hidden;
        let mut out = s.run(at.layout, at.direction == "reverse", |d, x, hs, cs| {
            let (a, b) = (s.wx(d, 0, h, x), s.rh(d, 0, h, hs));
            let nh = a
                .iter()
                .zip(&b)
                .map(|(p, q)| acts[d][0].apply(at.clip(p + q)))
                .collect();
            (nh, cs.to_vec())
        });
        out.truncate(2);
        Ok(out)
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        self.common.attrs()
    }
    fn macs(&self, inputs: &[Option<&ValueType>], _outputs: &[ValueType]) -> u64 {
        self.common.macs(inputs, 1)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// GRU with update (z), reset (r) and hidden (h) gates, in that weight order.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Gru {
    pub common: RnnAttrs,
    pub linear_before_reset: bool,
}

pub fn build_gru(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    Ok(Box::new(Gru {
        common: RnnAttrs::read(cx, 2)?,
        linear_before_reset: cx.i("linear_before_reset", 0)? != 0,
    }))
}

#[typetag::serde]
impl Op for Gru {
    fn op_type(&self) -> &str {
        "GRU"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        self.common.infer(cx, 1)
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let at = &self.common;
        let s = Seq::read("GRU", at, inputs, 3, None)?;
        let acts = at.resolve(&["Sigmoid", "Tanh"])?;
        let h = s.hidden;
        let lbr = self.linear_before_reset;
        let mut out = s.run(at.layout, at.direction == "reverse", |d, x, hs, cs| {
            let (f, g) = (&acts[d][0], &acts[d][1]);
            let wx = s.wx(d, 0, 3 * h, x);
            let rzr = s.rh(d, 0, 2 * h, hs);
            let z: Vec<f64> = (0..h).map(|k| f.apply(at.clip(wx[k] + rzr[k]))).collect();
            let r: Vec<f64> = (0..h)
                .map(|k| f.apply(at.clip(wx[h + k] + rzr[h + k])))
                .collect();
            let hh: Vec<f64> = if lbr {
                let rh = s.rh(d, 2 * h, h, hs);
                (0..h)
                    .map(|k| g.apply(at.clip(wx[2 * h + k] + r[k] * rh[k])))
                    .collect()
            } else {
                let gated: Vec<f64> = (0..h).map(|k| r[k] * hs[k]).collect();
                let rh = s.rh(d, 2 * h, h, &gated);
                (0..h)
                    .map(|k| g.apply(at.clip(wx[2 * h + k] + rh[k])))
                    .collect()
            };
            let nh = (0..h)
                .map(|k| (1.0 - z[k]) * hh[k] + z[k] * hs[k])
                .collect();
            (nh, cs.to_vec())
        });
        out.truncate(2);
        Ok(out)
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        let mut a = self.common.attrs();
        if self.linear_before_reset {
            a.push(("linear_before_reset", Attr::Int(1)));
        }
        a
    }
    fn macs(&self, inputs: &[Option<&ValueType>], _outputs: &[ValueType]) -> u64 {
        self.common.macs(inputs, 3)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// LSTM with input (i), output (o), forget (f) and cell (c) gates, in that weight order, and
/// optional peepholes `P = [Pi, Po, Pf]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Lstm {
    pub common: RnnAttrs,
    pub input_forget: bool,
}

pub fn build_lstm(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    Ok(Box::new(Lstm {
        common: RnnAttrs::read(cx, 3)?,
        input_forget: cx.i("input_forget", 0)? != 0,
    }))
}

#[typetag::serde]
impl Op for Lstm {
    fn op_type(&self) -> &str {
        "LSTM"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        self.common.infer(cx, 2)
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let at = &self.common;
        let s = Seq::read("LSTM", at, inputs, 4, Some(6))?;
        let acts = at.resolve(&["Sigmoid", "Tanh", "Tanh"])?;
        let h = s.hidden;
        let p = match opt(inputs, 7) {
            Some(t) if t.shape() == [s.dirs, 3 * h] => Some(t.to_f()?),
            Some(t) => {
                return Err(eval_err!(
                    "LSTM: P must be {:?}, got {:?}",
                    [s.dirs, 3 * h],
                    t.shape()
                ))
            }
            None => None,
        };
        let peep = |d: usize, gate: usize, k: usize| -> f64 {
            p.as_ref().map(|p| p[[d, gate * h + k]]).unwrap_or(0.0)
        };
        let coupled = self.input_forget;
        Ok(s.run(at.layout, at.direction == "reverse", |d, x, hs, cs| {
            let (f, g, hf) = (&acts[d][0], &acts[d][1], &acts[d][2]);
            let wx = s.wx(d, 0, 4 * h, x);
            let rh = s.rh(d, 0, 4 * h, hs);
            let pre = |gate: usize, k: usize| wx[gate * h + k] + rh[gate * h + k];
            let mut nc = vec![0.0; h];
            let mut nh = vec![0.0; h];
            for k in 0..h {
                let i = f.apply(at.clip(pre(0, k) + peep(d, 0, k) * cs[k]));
                let fg = if coupled {
                    1.0 - i
                } else {
                    f.apply(at.clip(pre(2, k) + peep(d, 2, k) * cs[k]))
                };
                let c = g.apply(at.clip(pre(3, k)));
                nc[k] = fg * cs[k] + i * c;
                let o = f.apply(at.clip(pre(1, k) + peep(d, 1, k) * nc[k]));
                nh[k] = o * hf.apply(nc[k]);
            }
            (nh, nc)
        }))
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        let mut a = self.common.attrs();
        if self.input_forget {
            a.push(("input_forget", Attr::Int(1)));
        }
        a
    }
    fn macs(&self, inputs: &[Option<&ValueType>], _outputs: &[ValueType]) -> u64 {
        self.common.macs(inputs, 4)
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

    fn identity_rnn(direction: &str) -> Rnn {
        Rnn {
            common: RnnAttrs {
                activations: Some(vec!["Affine".into()]),
                activation_alpha: Some(vec![2.0]),
                activation_beta: Some(vec![0.5]),
                clip: None,
                direction: direction.into(),
                hidden_size: Some(1),
                layout: 0,
            },
        }
    }

    /// With W = 1, R = 0 and f(x) = 2x + 0.5, `Y[t] = 2 x[t] + 0.5` within each entry's length.
    #[test]
    fn sequence_lens_zero_the_tail_and_pick_the_last_state() {
        let x = Tensor::from_f32(&[3, 2, 1], vec![1.0, 10.0, 2.0, 20.0, 3.0, 30.0]).unwrap();
        let w = Tensor::from_f32(&[1, 1, 1], vec![1.0]).unwrap();
        let r = Tensor::from_f32(&[1, 1, 1], vec![0.0]).unwrap();
        let lens = Tensor::from_i64(&[2], vec![3, 1]).unwrap();
        let ins = [Some(&x), Some(&w), Some(&r), None, Some(&lens)];
        let mut nr = NoRun;
        let mut cx = EvalCx {
            num_outputs: 2,
            runner: &mut nr,
        };
        let out = identity_rnn("forward").eval(&mut cx, &ins).unwrap();
        assert_eq!(
            out[0].to_f64_vec().unwrap(),
            vec![2.5, 20.5, 4.5, 0.0, 6.5, 0.0]
        );
        assert_eq!(out[1].to_f64_vec().unwrap(), vec![6.5, 20.5]);
        let out = identity_rnn("reverse").eval(&mut cx, &ins).unwrap();
        assert_eq!(out[1].to_f64_vec().unwrap(), vec![2.5, 20.5]);
    }
}
