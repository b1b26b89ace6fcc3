//! Variadic broadcasting ops: `Max`, `Min`, `Mean`, `Sum`.

use crate::op::{EvalCx, InferCx, Op};
use crate::ops::util::{infer_broadcast, zip_broadcast};
use crate::ops::Registry;
use crate::shape::ValueType;
use crate::tensor::{Data, Tensor};
use crate::{eval_err, Result};
use serde::{Deserialize, Serialize};
use std::any::Any;

/// Which reduction over its inputs a [`VariadicOp`] computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum VarFn {
    Max,
    Min,
    Mean,
    Sum,
}

/// Registers this file's builders.
pub fn register(r: &mut Registry) {
    r.add("Max", |_| Ok(Box::new(VariadicOp { f: VarFn::Max })));
    r.add("Min", |_| Ok(Box::new(VariadicOp { f: VarFn::Min })));
    r.add("Mean", |_| Ok(Box::new(VariadicOp { f: VarFn::Mean })));
    r.add("Sum", |_| Ok(Box::new(VariadicOp { f: VarFn::Sum })));
}

/// An elementwise op over any number of inputs broadcast together.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VariadicOp {
    pub f: VarFn,
}

impl VarFn {
    fn name(self) -> &'static str {
        match self {
            VarFn::Max => "Max",
            VarFn::Min => "Min",
            VarFn::Mean => "Mean",
            VarFn::Sum => "Sum",
        }
    }
    /// Combines two floats; `Max`/`Min` propagate NaN as numpy does.
    fn float(self, a: f64, b: f64) -> f64 {
        match self {
            VarFn::Max if a.is_nan() || b.is_nan() => f64::NAN,
            VarFn::Min if a.is_nan() || b.is_nan() => f64::NAN,
            VarFn::Max => a.max(b),
            VarFn::Min => a.min(b),
            VarFn::Mean | VarFn::Sum => a + b,
        }
    }
    fn int(self, a: i128, b: i128) -> i128 {
        match self {
            VarFn::Max => a.max(b),
            VarFn::Min => a.min(b),
            VarFn::Mean | VarFn::Sum => a.wrapping_add(b),
        }
    }
}

#[typetag::serde]
impl Op for VariadicOp {
    fn op_type(&self) -> &str {
        self.f.name()
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        Ok(vec![infer_broadcast(cx, None)?])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let op = self.f.name();
        let ts: Vec<&Tensor> = inputs.iter().flatten().copied().collect();
        let Some(first) = ts.first() else {
            return Err(eval_err!("{op}: needs at least one input"));
        };
        let dt = first.dtype();
        let out = match first.data() {
            Data::F(a0) => {
                let mut acc = a0.clone();
                for t in &ts[1..] {
                    let Data::F(b) = t.data() else {
                        return Err(eval_err!("{op}: inputs {dt} and {} differ", t.dtype()));
                    };
                    acc = zip_broadcast(&acc, b, |&p, &q| self.f.float(p, q))?;
                }
                if self.f == VarFn::Mean {
                    let n = ts.len() as f64;
                    acc.mapv_inplace(|v| v / n);
                }
                Tensor::float(dt, acc)
            }
            Data::I(a0) if self.f != VarFn::Mean => {
                let mut acc = a0.clone();
                for t in &ts[1..] {
                    let Data::I(b) = t.data() else {
                        return Err(eval_err!("{op}: inputs {dt} and {} differ", t.dtype()));
                    };
                    acc = zip_broadcast(&acc, b, |&p, &q| self.f.int(p, q))?;
                }
                Tensor::int(dt, acc)
            }
            _ => return Err(eval_err!("{op}: unsupported input type {dt}")),
        };
        Ok(vec![out])
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}
