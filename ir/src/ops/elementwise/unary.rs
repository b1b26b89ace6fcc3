//! Attribute-free unary ops: math (`Abs` .. `Tanh`), logic/bitwise `Not`s, `IsNaN`, `Relu` etc.

use super::math::{erf, sigmoid, softplus};
use crate::op::{req, EvalCx, InferCx, Op};
use crate::ops::Registry;
use crate::shape::ValueType;
use crate::tensor::{Data, Tensor};
use crate::{eval_err, DType, Result};
use serde::{Deserialize, Serialize};
use std::any::Any;

/// Which unary function a [`UnaryMath`] node computes; the variant name is the ONNX op type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum UnaryFn {
    Abs,
    Acos,
    Acosh,
    Asin,
    Asinh,
    Atan,
    Atanh,
    Ceil,
    Cos,
    Cosh,
    Erf,
    Exp,
    Floor,
    Log,
    Neg,
    Reciprocal,
    Round,
    Sign,
    Sin,
    Sinh,
    Sqrt,
    Tan,
    Tanh,
    IsNaN,
    Not,
    BitwiseNot,
    Relu,
    Sigmoid,
    Softsign,
    Mish,
    HardSwish,
    Softplus,
}

impl UnaryFn {
    const ALL: [UnaryFn; 32] = [
        UnaryFn::Abs,
        UnaryFn::Acos,
        UnaryFn::Acosh,
        UnaryFn::Asin,
        UnaryFn::Asinh,
        UnaryFn::Atan,
        UnaryFn::Atanh,
        UnaryFn::Ceil,
        UnaryFn::Cos,
        UnaryFn::Cosh,
        UnaryFn::Erf,
        UnaryFn::Exp,
        UnaryFn::Floor,
        UnaryFn::Log,
        UnaryFn::Neg,
        UnaryFn::Reciprocal,
        UnaryFn::Round,
        UnaryFn::Sign,
        UnaryFn::Sin,
        UnaryFn::Sinh,
        UnaryFn::Sqrt,
        UnaryFn::Tan,
        UnaryFn::Tanh,
        UnaryFn::IsNaN,
        UnaryFn::Not,
        UnaryFn::BitwiseNot,
        UnaryFn::Relu,
        UnaryFn::Sigmoid,
        UnaryFn::Softsign,
        UnaryFn::Mish,
        UnaryFn::HardSwish,
        UnaryFn::Softplus,
    ];

    fn name(self) -> &'static str {
        use UnaryFn::*;
        match self {
            Abs => "Abs",
            Acos => "Acos",
            Acosh => "Acosh",
            Asin => "Asin",
            Asinh => "Asinh",
            Atan => "Atan",
            Atanh => "Atanh",
            Ceil => "Ceil",
            Cos => "Cos",
            Cosh => "Cosh",
            Erf => "Erf",
            Exp => "Exp",
            Floor => "Floor",
            Log => "Log",
            Neg => "Neg",
            Reciprocal => "Reciprocal",
            Round => "Round",
            Sign => "Sign",
            Sin => "Sin",
            Sinh => "Sinh",
            Sqrt => "Sqrt",
            Tan => "Tan",
            Tanh => "Tanh",
            IsNaN => "IsNaN",
            Not => "Not",
            BitwiseNot => "BitwiseNot",
            Relu => "Relu",
            Sigmoid => "Sigmoid",
            Softsign => "Softsign",
            Mish => "Mish",
            HardSwish => "HardSwish",
            Softplus => "Softplus",
        }
    }

    /// The float function, for the ops defined on floats.
    fn float(self) -> Option<fn(f64) -> f64> {
        use UnaryFn::*;
        Some(match self {
            Abs => f64::abs,
            Acos => f64::acos,
            Acosh => f64::acosh,
            Asin => f64::asin,
            Asinh => f64::asinh,
            Atan => f64::atan,
            Atanh => f64::atanh,
            Ceil => f64::ceil,
            Cos => f64::cos,
            Cosh => f64::cosh,
            Erf => erf,
            Exp => f64::exp,
            Floor => f64::floor,
            Log => f64::ln,
            Neg => |x| -x,
            Reciprocal => |x| 1.0 / x,
            Round => f64::round_ties_even,
            Sign => |x| {
                if x > 0.0 {
                    1.0
                } else if x < 0.0 {
                    -1.0
                } else {
                    x
                }
            },
            Sin => f64::sin,
            Sinh => f64::sinh,
            Sqrt => f64::sqrt,
            Tan => f64::tan,
            Tanh => f64::tanh,
            Relu => |x| if x > 0.0 { x } else { 0.0 },
            Sigmoid => sigmoid,
            Softsign => |x| x / (1.0 + x.abs()),
            Mish => |x| x * softplus(x).tanh(),
            HardSwish => |x| x * (x / 6.0 + 0.5).clamp(0.0, 1.0),
            Softplus => softplus,
            IsNaN | Not | BitwiseNot => return None,
        })
    }

    /// The integer function, for the ops also defined on integers.
    fn int(self) -> Option<fn(i128) -> i128> {
        use UnaryFn::*;
        Some(match self {
            Abs => i128::abs,
            Neg => |x| -x,
            Sign => i128::signum,
            Relu => |x| x.max(0),
            BitwiseNot => |x| !x,
            _ => return None,
        })
    }
}

/// Registers this file's builders.
pub fn register(r: &mut Registry) {
    for f in UnaryFn::ALL {
        // Builders are plain fn pointers: one non-capturing closure per op, chosen by name.
        r.add(f.name(), builder(f));
    }
}

fn builder(f: UnaryFn) -> crate::ops::Builder {
    macro_rules! b {
        ($($v:ident),*) => {
            match f {
                $(UnaryFn::$v => |_| Ok(Box::new(UnaryMath { f: UnaryFn::$v })),)*
            }
        };
    }
    b!(
        Abs, Acos, Acosh, Asin, Asinh, Atan, Atanh, Ceil, Cos, Cosh, Erf, Exp, Floor, Log, Neg,
        Reciprocal, Round, Sign, Sin, Sinh, Sqrt, Tan, Tanh, IsNaN, Not, BitwiseNot, Relu, Sigmoid,
        Softsign, Mish, HardSwish, Softplus
    )
}

/// An attribute-free unary elementwise op.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UnaryMath {
    pub f: UnaryFn,
}

#[typetag::serde]
impl Op for UnaryMath {
    fn op_type(&self) -> &str {
        self.f.name()
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let x = cx.input(0)?;
        let mut t = x.clone();
        if matches!(self.f, UnaryFn::IsNaN) {
            t.dtype = DType::Bool;
        }
        Ok(vec![t])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let op = self.f.name();
        let out = match (self.f, x.data()) {
            (UnaryFn::IsNaN, Data::F(a)) => Tensor::bool(a.mapv(f64::is_nan)),
            (UnaryFn::IsNaN, Data::I(a)) => Tensor::bool(a.mapv(|_| false)),
            (UnaryFn::Not, Data::B(a)) => Tensor::bool(a.mapv(|v| !v)),
            (f, Data::F(a)) => match f.float() {
                Some(g) => Tensor::float(x.dtype(), a.mapv(g)),
                None => {
                    return Err(eval_err!(
                        "{op}: float input {} is not supported",
                        x.dtype()
                    ))
                }
            },
            (f, Data::I(a)) => match f.int() {
                Some(g) => Tensor::int(x.dtype(), a.mapv(g)),
                None => {
                    return Err(eval_err!(
                        "{op}: integer input {} is not supported",
                        x.dtype()
                    ))
                }
            },
            _ => return Err(eval_err!("{op}: unsupported input type {}", x.dtype())),
        };
        Ok(vec![out])
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{ArrayD, IxDyn};

    fn run(f: UnaryFn, t: &Tensor) -> Tensor {
        super::super::math::eval_op(&UnaryMath { f }, &[Some(t)], 1)
            .unwrap()
            .remove(0)
    }

    #[test]
    fn round_is_half_to_even() {
        let t = Tensor::from_f32(&[6], vec![0.5, 1.5, 2.5, -0.5, -1.5, 2.4]).unwrap();
        assert_eq!(
            run(UnaryFn::Round, &t).to_f64_vec().unwrap(),
            vec![0.0, 2.0, 2.0, -0.0, -2.0, 2.0]
        );
    }

    #[test]
    fn integer_ops_wrap() {
        let t = Tensor::int(
            DType::I8,
            ArrayD::from_shape_vec(IxDyn(&[3]), vec![-128, -3, 5]).unwrap(),
        );
        assert_eq!(
            run(UnaryFn::Abs, &t).to_i64_vec().unwrap(),
            vec![-128, 3, 5]
        );
        let u = Tensor::int(
            DType::U8,
            ArrayD::from_shape_vec(IxDyn(&[2]), vec![0, 5]).unwrap(),
        );
        assert_eq!(
            run(UnaryFn::BitwiseNot, &u).to_i64_vec().unwrap(),
            vec![255, 250]
        );
    }
}
