//! Optimizer ops of `ai.onnx.preview.training`: `Adagrad`, `Adam`, `Momentum` (with Nesterov).
//!
//! Inputs are `R` (learning rate), `T` (step count), then per optimised tensor group: all `X`s, all
//! `G`s, then each state's tensors; outputs are the new `X`s followed by the new states.

use super::Registry;
use crate::onnx::attrs::NodeCtx;
use crate::op::{req, Attr, EvalCx, InferCx, Op};
use crate::shape::ValueType;
use crate::tensor::Tensor;
use crate::{eval_err, Result};
use ndarray::ArrayD;
use serde::{Deserialize, Serialize};
use std::any::Any;

const DOMAIN: &str = "ai.onnx.preview.training";

/// Registers this family's builders.
pub fn register(r: &mut Registry) {
    r.add_domain(DOMAIN, "Adagrad", |cx| build(cx, Rule::Adagrad));
    r.add_domain(DOMAIN, "Adam", |cx| build(cx, Rule::Adam));
    r.add_domain(DOMAIN, "Momentum", |cx| build(cx, Rule::Momentum));
}

/// The update rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rule {
    Adagrad,
    Adam,
    Momentum,
}

/// One optimizer step.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Optimizer {
    pub rule: Rule,
    pub alpha: f32,
    pub beta: f32,
    pub epsilon: f32,
    pub decay_factor: f32,
    pub norm_coefficient: f32,
    pub norm_coefficient_post: f32,
    pub nesterov: bool,
}

fn build(cx: &NodeCtx<'_>, rule: Rule) -> Result<Box<dyn Op>> {
    let (da, db) = if rule == Rule::Adam {
        (0.9, 0.999)
    } else {
        (0.0, 0.0)
    };
    let mode = cx.s("mode", "standard")?;
    if rule == Rule::Momentum && mode != "standard" && mode != "nesterov" {
        return Err(cx.invalid("mode", "must be standard or nesterov"));
    }
    Ok(Box::new(Optimizer {
        rule,
        alpha: cx.f("alpha", da)?,
        beta: cx.f("beta", db)?,
        epsilon: cx.f("epsilon", 0.0)?,
        decay_factor: cx.f("decay_factor", 0.0)?,
        norm_coefficient: cx.f("norm_coefficient", 0.0)?,
        norm_coefficient_post: cx.f("norm_coefficient_post", 0.0)?,
        nesterov: mode == "nesterov",
    }))
}

impl Optimizer {
    fn group(&self) -> usize {
        if self.rule == Rule::Adam {
            4
        } else {
            3
        }
    }
}

#[typetag::serde]
impl Op for Optimizer {
    fn op_type(&self) -> &str {
        match self.rule {
            Rule::Adagrad => "Adagrad",
            Rule::Adam => "Adam",
            Rule::Momentum => "Momentum",
        }
    }
    fn domain(&self) -> &str {
        DOMAIN
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let n = cx.inputs.len().saturating_sub(2) / self.group();
        let mut out = Vec::new();
        for k in 0..self.group() - 1 {
            for i in 0..n {
                let src = if k == 0 { 2 + i } else { 2 + (k + 1) * n + i };
                out.push(cx.input(src)?.clone());
            }
        }
        Ok(out)
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let m = self.group();
        if inputs.len() < 2 + m || !(inputs.len() - 2).is_multiple_of(m) {
            return Err(eval_err!(
                "{}: expects R, T and groups of {m} tensors",
                self.op_type()
            ));
        }
        let n = (inputs.len() - 2) / m;
        let r = req(inputs, 0)?.scalar_f64()?;
        let t = req(inputs, 1)?.scalar_f64()?;
        let (a, b, eps, nc) = (
            self.alpha as f64,
            self.beta as f64,
            self.epsilon as f64,
            self.norm_coefficient as f64,
        );
        let mut outs: Vec<Vec<Tensor>> = vec![Vec::new(); m - 1];
        for i in 0..n {
            let x = req(inputs, 2 + i)?;
            let g = req(inputs, 2 + n + i)?.to_f()?;
            let s1 = req(inputs, 2 + 2 * n + i)?;
            let xa = x.as_f()?;
            if g.shape() != xa.shape() || s1.shape() != xa.shape() {
                return Err(eval_err!(
                    "{}: X, G and state shapes differ",
                    self.op_type()
                ));
            }
            let gr: ArrayD<f64> = xa.mapv(|v| nc * v) + &g;
            let s1a = s1.to_f()?;
            match self.rule {
                Rule::Adagrad => {
                    let rr = r / (1.0 + t * self.decay_factor as f64);
                    let h = &s1a + &gr.mapv(|v| v * v);
                    let xn = xa - &(gr.clone() * rr / h.mapv(|v| v.sqrt() + eps));
                    outs[0].push(Tensor::float(x.dtype(), xn));
                    outs[1].push(Tensor::float(s1.dtype(), h));
                }
                Rule::Momentum => {
                    let bb = if t > 0.0 { b } else { 1.0 };
                    let v = s1a.mapv(|x| a * x) + &gr.mapv(|x| bb * x);
                    let xn = if self.nesterov {
                        xa - &((&gr + &v.mapv(|x| a * x)) * r)
                    } else {
                        xa - &(v.clone() * r)
                    };
                    outs[0].push(Tensor::float(x.dtype(), xn));
                    outs[1].push(Tensor::float(s1.dtype(), v));
                }
                Rule::Adam => {
                    let h0 = req(inputs, 2 + 3 * n + i)?;
                    let v = s1a.mapv(|x| a * x) + &gr.mapv(|x| (1.0 - a) * x);
                    let h = h0.to_f()?.mapv(|x| b * x) + &gr.mapv(|x| (1.0 - b) * x * x);
                    let ra = if t > 0.0 {
                        r * (1.0 - b.powf(t)).sqrt() / (1.0 - a.powf(t))
                    } else {
                        r
                    };
                    let xn = (xa - &(&v / &h.mapv(|x| x.sqrt() + eps) * ra))
                        * (1.0 - self.norm_coefficient_post as f64);
                    outs[0].push(Tensor::float(x.dtype(), xn));
                    outs[1].push(Tensor::float(s1.dtype(), v));
                    outs[2].push(Tensor::float(h0.dtype(), h));
                }
            }
        }
        Ok(outs.into_iter().flatten().collect())
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        let mut v = vec![
            ("epsilon", Attr::Float(self.epsilon)),
            ("norm_coefficient", Attr::Float(self.norm_coefficient)),
        ];
        match self.rule {
            Rule::Adagrad => v.push(("decay_factor", Attr::Float(self.decay_factor))),
            Rule::Adam => {
                v.push(("alpha", Attr::Float(self.alpha)));
                v.push(("beta", Attr::Float(self.beta)));
                v.push((
                    "norm_coefficient_post",
                    Attr::Float(self.norm_coefficient_post),
                ));
            }
            Rule::Momentum => {
                v.retain(|(n, _)| *n != "epsilon");
                v.push(("alpha", Attr::Float(self.alpha)));
                v.push(("beta", Attr::Float(self.beta)));
                v.push((
                    "mode",
                    Attr::Str(
                        if self.nesterov {
                            "nesterov"
                        } else {
                            "standard"
                        }
                        .into(),
                    ),
                ));
            }
        }
        v
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}
