//! Unary activations with attributes (`LeakyRelu`, `Elu`, `Selu`, `Gelu`, `Swish`, ...) and `IsInf`.

use super::math::{erf, sigmoid};
use crate::onnx::attrs::NodeCtx;
use crate::op::{req, Attr, EvalCx, InferCx, Op};
use crate::ops::Registry;
use crate::shape::ValueType;
use crate::tensor::{Data, Tensor};
use crate::{eval_err, DType, Result};
use serde::{Deserialize, Serialize};
use std::any::Any;

/// Registers this file's builders.
pub fn register(r: &mut Registry) {
    r.add("LeakyRelu", |cx| {
        act(ActFn::LeakyRelu {
            alpha: cx.f("alpha", 0.01)?,
        })
    });
    r.add("Elu", |cx| {
        act(ActFn::Elu {
            alpha: cx.f("alpha", 1.0)?,
        })
    });
    r.add("Selu", |cx| {
        act(ActFn::Selu {
            alpha: cx.f("alpha", 1.673_263_2)?,
            gamma: cx.f("gamma", 1.050_701)?,
        })
    });
    r.add("Celu", |cx| {
        let alpha = cx.f("alpha", 1.0)?;
        if alpha == 0.0 {
            return Err(cx.invalid("alpha", "must not be 0"));
        }
        act(ActFn::Celu { alpha })
    });
    r.add("HardSigmoid", |cx| {
        act(ActFn::HardSigmoid {
            alpha: cx.f("alpha", 0.2)?,
            beta: cx.f("beta", 0.5)?,
        })
    });
    r.add("ThresholdedRelu", |cx| {
        act(ActFn::ThresholdedRelu {
            alpha: cx.f("alpha", 1.0)?,
        })
    });
    r.add("Shrink", |cx| {
        act(ActFn::Shrink {
            bias: cx.f("bias", 0.0)?,
            lambd: cx.f("lambd", 0.5)?,
        })
    });
    r.add("Gelu", build_gelu);
    r.add("Swish", |cx| {
        act(ActFn::Swish {
            alpha: cx.f("alpha", 1.0)?,
        })
    });
    r.add("IsInf", |cx| {
        act(ActFn::IsInf {
            detect_negative: cx.i("detect_negative", 1)? != 0,
            detect_positive: cx.i("detect_positive", 1)? != 0,
        })
    });
}

fn act(f: ActFn) -> Result<Box<dyn Op>> {
    Ok(Box::new(Activation { f }))
}

fn build_gelu(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    let a = cx.s("approximate", "none")?;
    let tanh = match a.as_str() {
        "none" => false,
        "tanh" => true,
        _ => return Err(cx.invalid("approximate", "must be 'none' or 'tanh'")),
    };
    act(ActFn::Gelu { tanh })
}

/// The function an [`Activation`] computes, with its attributes.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum ActFn {
    LeakyRelu {
        alpha: f32,
    },
    Elu {
        alpha: f32,
    },
    Selu {
        alpha: f32,
        gamma: f32,
    },
    Celu {
        alpha: f32,
    },
    HardSigmoid {
        alpha: f32,
        beta: f32,
    },
    ThresholdedRelu {
        alpha: f32,
    },
    Shrink {
        bias: f32,
        lambd: f32,
    },
    Gelu {
        tanh: bool,
    },
    Swish {
        alpha: f32,
    },
    IsInf {
        detect_negative: bool,
        detect_positive: bool,
    },
}

/// A unary activation with attributes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Activation {
    pub f: ActFn,
}

impl ActFn {
    fn name(&self) -> &'static str {
        match self {
            ActFn::LeakyRelu { .. } => "LeakyRelu",
            ActFn::Elu { .. } => "Elu",
            ActFn::Selu { .. } => "Selu",
            ActFn::Celu { .. } => "Celu",
            ActFn::HardSigmoid { .. } => "HardSigmoid",
            ActFn::ThresholdedRelu { .. } => "ThresholdedRelu",
            ActFn::Shrink { .. } => "Shrink",
            ActFn::Gelu { .. } => "Gelu",
            ActFn::Swish { .. } => "Swish",
            ActFn::IsInf { .. } => "IsInf",
        }
    }

    /// The value for one element (not used by `IsInf`).
    fn apply(&self, x: f64) -> f64 {
        match *self {
            ActFn::LeakyRelu { alpha } => {
                if x < 0.0 {
                    alpha as f64 * x
                } else {
                    x
                }
            }
            ActFn::Elu { alpha } => {
                if x < 0.0 {
                    alpha as f64 * x.exp_m1()
                } else {
                    x
                }
            }
            ActFn::Selu { alpha, gamma } => {
                let (a, g) = (alpha as f64, gamma as f64);
                if x > 0.0 {
                    g * x
                } else {
                    g * a * x.exp_m1()
                }
            }
            ActFn::Celu { alpha } => {
                let a = alpha as f64;
                x.max(0.0) + (a * (x / a).exp_m1()).min(0.0)
            }
            ActFn::HardSigmoid { alpha, beta } => (alpha as f64 * x + beta as f64).clamp(0.0, 1.0),
            ActFn::ThresholdedRelu { alpha } => {
                if x > alpha as f64 {
                    x
                } else {
                    0.0
                }
            }
            ActFn::Shrink { bias, lambd } => {
                let (b, l) = (bias as f64, lambd as f64);
                if x < -l {
                    x + b
                } else if x > l {
                    x - b
                } else {
                    0.0
                }
            }
            ActFn::Gelu { tanh: false } => 0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2)),
            ActFn::Gelu { tanh: true } => {
                let k = (2.0 / std::f64::consts::PI).sqrt();
                0.5 * x * (1.0 + (k * (x + 0.044715 * x * x * x)).tanh())
            }
            ActFn::Swish { alpha } => x * sigmoid(alpha as f64 * x),
            ActFn::IsInf { .. } => x,
        }
    }
}

#[typetag::serde]
impl Op for Activation {
    fn op_type(&self) -> &str {
        self.f.name()
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let mut t = cx.input(0)?.clone();
        if matches!(self.f, ActFn::IsInf { .. }) {
            t.dtype = DType::Bool;
        }
        Ok(vec![t])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let op = self.f.name();
        let out = match (self.f, x.data()) {
            (
                ActFn::IsInf {
                    detect_negative,
                    detect_positive,
                },
                Data::F(a),
            ) => Tensor::bool(a.mapv(|v| {
                (v == f64::INFINITY && detect_positive)
                    || (v == f64::NEG_INFINITY && detect_negative)
            })),
            (ActFn::IsInf { .. }, Data::I(a)) => Tensor::bool(a.mapv(|_| false)),
            (f, Data::F(a)) => Tensor::float(x.dtype(), a.mapv(|v| f.apply(v))),
            // Shrink is also defined on integers (computed in f64, truncated back).
            (f @ ActFn::Shrink { .. }, Data::I(a)) => {
                Tensor::from_f64_as(x.dtype(), a.mapv(|v| f.apply(v as f64)))
            }
            _ => return Err(eval_err!("{op}: unsupported input type {}", x.dtype())),
        };
        Ok(vec![out])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        match self.f {
            ActFn::LeakyRelu { alpha }
            | ActFn::Elu { alpha }
            | ActFn::Celu { alpha }
            | ActFn::ThresholdedRelu { alpha }
            | ActFn::Swish { alpha } => vec![("alpha", Attr::Float(alpha))],
            ActFn::Selu { alpha, gamma } => {
                vec![("alpha", Attr::Float(alpha)), ("gamma", Attr::Float(gamma))]
            }
            ActFn::HardSigmoid { alpha, beta } => {
                vec![("alpha", Attr::Float(alpha)), ("beta", Attr::Float(beta))]
            }
            ActFn::Shrink { bias, lambd } => {
                vec![("bias", Attr::Float(bias)), ("lambd", Attr::Float(lambd))]
            }
            ActFn::Gelu { tanh } => {
                if tanh {
                    vec![("approximate", Attr::Str("tanh".into()))]
                } else {
                    Vec::new()
                }
            }
            ActFn::IsInf {
                detect_negative,
                detect_positive,
            } => vec![
                ("detect_negative", Attr::Int(detect_negative as i64)),
                ("detect_positive", Attr::Int(detect_positive as i64)),
            ],
        }
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shrink_and_celu() {
        let s = ActFn::Shrink {
            bias: 1.5,
            lambd: 1.5,
        };
        assert_eq!(
            [-2.0, -1.0, 0.0, 1.0, 2.0].map(|x| s.apply(x)),
            [-0.5, 0.0, 0.0, 0.0, 0.5]
        );
        let c = ActFn::Celu { alpha: 2.0 };
        assert_eq!(c.apply(3.0), 3.0);
        assert!((c.apply(-2.0) - 2.0 * ((-1f64).exp() - 1.0)).abs() < 1e-15);
    }
}
