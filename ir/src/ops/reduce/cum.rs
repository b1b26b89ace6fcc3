//! `CumSum` and `CumProd`: running sums and products along an axis given as an input.

use super::common::{groups, one_axis, ungroup};
use crate::op::{req, Attr, EvalCx, InferCx, Op};
use crate::ops::util::same_as_input;
use crate::ops::Registry;
use crate::shape::ValueType;
use crate::tensor::{Data, Tensor};
use crate::{eval_err, Result};
use serde::{Deserialize, Serialize};
use std::any::Any;

/// `CumSum` or `CumProd` (`prod`), optionally `exclusive` (each output leaves out its own
/// element) and `reverse` (running from the end).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Cumulative {
    pub prod: bool,
    pub exclusive: bool,
    pub reverse: bool,
}

/// Registers `CumSum` and `CumProd`.
pub fn register(r: &mut Registry) {
    fn build(cx: &crate::onnx::attrs::NodeCtx<'_>, prod: bool) -> Result<Box<dyn Op>> {
        Ok(Box::new(Cumulative {
            prod,
            exclusive: cx.i("exclusive", 0)? != 0,
            reverse: cx.i("reverse", 0)? != 0,
        }))
    }
    r.add("CumSum", |cx| build(cx, false));
    r.add("CumProd", |cx| build(cx, true));
}

/// The running combination of `v` starting from `id`.
pub fn scan<T: Copy>(
    v: &[T],
    id: T,
    f: impl Fn(T, T) -> T,
    exclusive: bool,
    reverse: bool,
) -> Vec<T> {
    let n = v.len();
    let mut out = vec![id; n];
    let mut acc = id;
    for k in 0..n {
        let i = if reverse { n - 1 - k } else { k };
        if exclusive {
            out[i] = acc;
            acc = f(acc, v[i]);
        } else {
            acc = f(acc, v[i]);
            out[i] = acc;
        }
    }
    out
}

impl Cumulative {
    fn name(&self) -> &'static str {
        if self.prod {
            "CumProd"
        } else {
            "CumSum"
        }
    }
}

#[typetag::serde]
impl Op for Cumulative {
    fn op_type(&self) -> &str {
        self.name()
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        same_as_input(cx, 0, 1)
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let axis = req(inputs, 1)?
            .scalar_i64()
            .map_err(|e| eval_err!("{}: axis input: {e}", self.name()))?;
        let rank = x.rank();
        let ax = one_axis(self.name(), axis, rank)?;
        let mask: Vec<bool> = (0..rank).map(|i| i == ax).collect();
        let red = [x.shape()[ax]];
        let (ex, rev) = (self.exclusive, self.reverse);
        Ok(vec![match x.data() {
            Data::F(a) => {
                let g: Vec<Vec<f64>> = groups(a, &mask)?
                    .iter()
                    .map(|g| {
                        if self.prod {
                            scan(g, 1.0, |p, q| p * q, ex, rev)
                        } else {
                            scan(g, 0.0, |p, q| p + q, ex, rev)
                        }
                    })
                    .collect();
                Tensor::float(x.dtype(), ungroup(x.shape(), &mask, &red, g)?)
            }
            Data::I(a) => {
                let g: Vec<Vec<i128>> = groups(a, &mask)?
                    .iter()
                    .map(|g| {
                        if self.prod {
                            scan(g, 1, i128::wrapping_mul, ex, rev)
                        } else {
                            scan(g, 0, i128::wrapping_add, ex, rev)
                        }
                    })
                    .collect();
                Tensor::int(x.dtype(), ungroup(x.shape(), &mask, &red, g)?)
            }
            _ => {
                return Err(eval_err!(
                    "{}: unsupported input type {}",
                    self.name(),
                    x.dtype()
                ))
            }
        }])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        vec![
            ("exclusive", Attr::Int(self.exclusive as i64)),
            ("reverse", Attr::Int(self.reverse as i64)),
        ]
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::scan;

    #[test]
    fn exclusive_reverse_scan() {
        let v = [1, 2, 3];
        assert_eq!(scan(&v, 0, |a, b| a + b, false, false), vec![1, 3, 6]);
        assert_eq!(scan(&v, 0, |a, b| a + b, true, false), vec![0, 1, 3]);
        assert_eq!(scan(&v, 0, |a, b| a + b, true, true), vec![5, 3, 0]);
        assert_eq!(scan(&v, 1, |a, b| a * b, false, true), vec![6, 6, 3]);
    }
}
