//! `ArgMax` and `ArgMin`: the index of the extreme value along one axis.

use super::common::{array, groups, one_axis, reduced_dims, reduced_shape};
use crate::op::{req, Attr, EvalCx, InferCx, Op};
use crate::ops::Registry;
use crate::shape::ValueType;
use crate::tensor::{Data, Tensor};
use crate::{eval_err, infer_err, DType, Result};
use serde::{Deserialize, Serialize};
use std::any::Any;

/// `ArgMax` (`max`) or `ArgMin`: int64 indices along `axis`; ties pick the first index, or the
/// last with `select_last_index`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ArgReduce {
    pub max: bool,
    pub axis: i64,
    pub keepdims: bool,
    pub select_last_index: bool,
}

/// Registers `ArgMax` and `ArgMin`.
pub fn register(r: &mut Registry) {
    fn build(cx: &crate::onnx::attrs::NodeCtx<'_>, max: bool) -> Result<Box<dyn Op>> {
        Ok(Box::new(ArgReduce {
            max,
            axis: cx.i("axis", 0)?,
            keepdims: cx.i("keepdims", 1)? != 0,
            select_last_index: cx.i("select_last_index", 0)? != 0,
        }))
    }
    r.add("ArgMax", |cx| build(cx, true));
    r.add("ArgMin", |cx| build(cx, false));
}

/// The index of the extreme value of `v` (first or last among ties).
pub fn pick<T: PartialOrd>(v: &[T], max: bool, last: bool) -> usize {
    let mut best = 0;
    for i in 1..v.len() {
        let better = if max { v[i] > v[best] } else { v[i] < v[best] };
        if better || (last && v[i] == v[best]) {
            best = i;
        }
    }
    best
}

impl ArgReduce {
    fn name(&self) -> &'static str {
        if self.max {
            "ArgMax"
        } else {
            "ArgMin"
        }
    }
    fn mask(&self, rank: usize) -> Result<Vec<bool>> {
        let a = one_axis(self.name(), self.axis, rank)?;
        Ok((0..rank).map(|i| i == a).collect())
    }
}

#[typetag::serde]
impl Op for ArgReduce {
    fn op_type(&self) -> &str {
        self.name()
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let x = cx.input(0)?;
        Ok(vec![match &x.shape {
            Some(d) => {
                let mask = self.mask(d.len()).map_err(|e| infer_err!("{e}"))?;
                ValueType::new(DType::I64, reduced_dims(d, &mask, self.keepdims))
            }
            None => ValueType::unranked(DType::I64),
        }])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let mask = self.mask(x.rank())?;
        if x.shape().iter().zip(&mask).any(|(&d, &m)| m && d == 0) {
            return Err(eval_err!("{}: the reduced axis is empty", self.name()));
        }
        let (mx, last) = (self.max, self.select_last_index);
        let idx: Vec<i128> = match x.data() {
            Data::F(a) => groups(a, &mask)?
                .iter()
                .map(|g| pick(g, mx, last) as i128)
                .collect(),
            Data::I(a) => groups(a, &mask)?
                .iter()
                .map(|g| pick(g, mx, last) as i128)
                .collect(),
            Data::B(a) => groups(a, &mask)?
                .iter()
                .map(|g| pick(g, mx, last) as i128)
                .collect(),
            Data::S(_) => return Err(eval_err!("{}: string input", self.name())),
        };
        let shape = reduced_shape(x.shape(), &mask, self.keepdims);
        Ok(vec![Tensor::int(
            DType::I64,
            array(self.name(), &shape, idx)?,
        )])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        let mut v = vec![
            ("axis", Attr::Int(self.axis)),
            ("keepdims", Attr::Int(self.keepdims as i64)),
        ];
        if self.select_last_index {
            v.push(("select_last_index", Attr::Int(1)));
        }
        v
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::pick;

    #[test]
    fn ties_pick_first_or_last() {
        let v = [1.0, 3.0, 3.0, 0.0];
        assert_eq!(pick(&v, true, false), 1);
        assert_eq!(pick(&v, true, true), 2);
        assert_eq!(pick(&v, false, false), 3);
        assert_eq!(pick(&[2, 2], false, true), 1);
    }
}
