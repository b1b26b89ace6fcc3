//! Losses: `NegativeLogLikelihoodLoss` and `SoftmaxCrossEntropyLoss`.

use super::common::{array, floats};
use super::softmax::{log_softmax, map_groups};
use crate::onnx::attrs::NodeCtx;
use crate::op::{opt, req, Attr, EvalCx, InferCx, Op};
use crate::ops::Registry;
use crate::shape::ValueType;
use crate::tensor::Tensor;
use crate::{eval_err, Result};
use ndarray::ArrayD;
use serde::{Deserialize, Serialize};
use std::any::Any;

/// Registers both losses.
pub fn register(r: &mut Registry) {
    r.add("NegativeLogLikelihoodLoss", |cx| {
        let (reduction, ignore_index) = loss_attrs(cx)?;
        Ok(Box::new(NegativeLogLikelihoodLoss {
            reduction,
            ignore_index,
        }))
    });
    r.add("SoftmaxCrossEntropyLoss", |cx| {
        let (reduction, ignore_index) = loss_attrs(cx)?;
        Ok(Box::new(SoftmaxCrossEntropyLoss {
            reduction,
            ignore_index,
        }))
    });
}

fn loss_attrs(cx: &NodeCtx<'_>) -> Result<(String, Option<i64>)> {
    let reduction = cx.s("reduction", "mean")?;
    if !matches!(reduction.as_str(), "none" | "sum" | "mean") {
        return Err(cx.invalid("reduction", "must be none, sum or mean"));
    }
    Ok((reduction, cx.opt_i("ignore_index")?))
}

fn loss_attr_list(reduction: &str, ignore: Option<i64>) -> Vec<(&'static str, Attr)> {
    let mut v = vec![("reduction", Attr::Str(reduction.to_string()))];
    if let Some(i) = ignore {
        v.push(("ignore_index", Attr::Int(i)));
    }
    v
}

/// The loss type: the target's shape for `none`, else a scalar.
fn loss_type(cx: &InferCx<'_>, reduction: &str) -> Result<ValueType> {
    let x = cx.input(0)?;
    Ok(if reduction == "none" {
        match &cx.input(1)?.shape {
            Some(s) => ValueType::new(x.dtype, s.clone()),
            None => ValueType::unranked(x.dtype),
        }
    } else {
        ValueType::new(x.dtype, Vec::new())
    })
}

/// The negative log-likelihood of `logp` `(N, C, d...)` at `target` `(N, d...)`, weighted by
/// `weight[target]`; ignored targets contribute nothing (to the loss nor the mean's weights).
fn nll(
    op: &str,
    logp: &ArrayD<f64>,
    target: &Tensor,
    weight: Option<&Tensor>,
    reduction: &str,
    ignore: Option<i64>,
) -> Result<ArrayD<f64>> {
    let s = logp.shape();
    if s.len() < 2 {
        return Err(eval_err!("{op}: input must be (N, C, ...), got {s:?}"));
    }
    let (n, c) = (s[0], s[1]);
    let d: usize = s[2..].iter().product();
    let mut tshape = vec![n];
    tshape.extend_from_slice(&s[2..]);
    if target.shape() != tshape.as_slice() {
        return Err(eval_err!(
            "{op}: target shape {:?} does not match input {s:?}",
            target.shape()
        ));
    }
    let t = target.to_i64_vec()?;
    let w = weight.map(|w| w.to_f64_vec()).transpose()?;
    if w.as_ref().is_some_and(|w| w.len() != c) {
        return Err(eval_err!("{op}: weight must have {c} values"));
    }
    let flat: Vec<f64> = logp.iter().copied().collect();
    let mut loss = vec![0.0; n * d];
    let mut wsum = 0.0;
    for ni in 0..n {
        for di in 0..d {
            let tv = t[ni * d + di];
            if Some(tv) == ignore {
                continue;
            }
            if tv < 0 || tv as usize >= c {
                return Err(eval_err!(
                    "{op}: target {tv} is out of range for {c} classes"
                ));
            }
            let cls = tv as usize;
            let wt = w.as_ref().map(|w| w[cls]).unwrap_or(1.0);
            loss[ni * d + di] = -flat[(ni * c + cls) * d + di] * wt;
            wsum += wt;
        }
    }
    Ok(match reduction {
        "none" => array(op, &tshape, loss)?,
        "sum" => ArrayD::from_elem(ndarray::IxDyn(&[]), loss.iter().sum()),
        _ => ArrayD::from_elem(ndarray::IxDyn(&[]), loss.iter().sum::<f64>() / wsum),
    })
}

/// `NegativeLogLikelihoodLoss` over log-probabilities `(N, C, d...)`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NegativeLogLikelihoodLoss {
    pub reduction: String,
    pub ignore_index: Option<i64>,
}

#[typetag::serde]
impl Op for NegativeLogLikelihoodLoss {
    fn op_type(&self) -> &str {
        "NegativeLogLikelihoodLoss"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        Ok(vec![loss_type(cx, &self.reduction)?])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        const OP: &str = "NegativeLogLikelihoodLoss";
        let x = req(inputs, 0)?;
        let l = nll(
            OP,
            floats(OP, x)?,
            req(inputs, 1)?,
            opt(inputs, 2),
            &self.reduction,
            self.ignore_index,
        )?;
        Ok(vec![Tensor::float(x.dtype(), l)])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        loss_attr_list(&self.reduction, self.ignore_index)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// `SoftmaxCrossEntropyLoss`: NLL of the log-softmax over axis 1; the optional second output
/// is that log-softmax.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SoftmaxCrossEntropyLoss {
    pub reduction: String,
    pub ignore_index: Option<i64>,
}

#[typetag::serde]
impl Op for SoftmaxCrossEntropyLoss {
    fn op_type(&self) -> &str {
        "SoftmaxCrossEntropyLoss"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        Ok(vec![loss_type(cx, &self.reduction)?, cx.input(0)?.clone()])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        const OP: &str = "SoftmaxCrossEntropyLoss";
        let x = req(inputs, 0)?;
        let xa = floats(OP, x)?;
        if x.rank() < 2 {
            return Err(eval_err!(
                "{OP}: scores must be (N, C, ...), got {:?}",
                x.shape()
            ));
        }
        let mask: Vec<bool> = (0..x.rank()).map(|i| i == 1).collect();
        let lp = map_groups(xa, &mask, log_softmax)?;
        let l = nll(
            OP,
            &lp,
            req(inputs, 1)?,
            opt(inputs, 2),
            &self.reduction,
            self.ignore_index,
        )?;
        Ok(vec![
            Tensor::float(x.dtype(), l),
            Tensor::float(x.dtype(), lp),
        ])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        loss_attr_list(&self.reduction, self.ignore_index)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::IxDyn;

    #[test]
    fn ignored_targets_leave_the_mean() {
        // logp (N=2, C=2): loss terms 1 and (ignored) 3.
        let lp = ArrayD::from_shape_vec(IxDyn(&[2, 2]), vec![-1.0, -2.0, -3.0, -4.0]).unwrap();
        let t = Tensor::from_i64(&[2], vec![0, 1]).unwrap();
        let m = nll("L", &lp, &t, None, "mean", Some(1)).unwrap();
        assert_eq!(m.iter().copied().collect::<Vec<_>>(), vec![1.0]);
        let none = nll("L", &lp, &t, None, "none", None).unwrap();
        assert_eq!(none.iter().copied().collect::<Vec<_>>(), vec![1.0, 4.0]);
        let bad = Tensor::from_i64(&[2], vec![0, 2]).unwrap();
        assert!(nll("L", &lp, &bad, None, "sum", None).is_err());
    }
}
