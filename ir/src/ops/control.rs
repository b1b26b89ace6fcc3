//! Control flow: `If`, `Loop` and `Scan`, whose bodies are subgraphs.
//!
//! Bodies capture outer values explicitly (see [`crate::graph::Node::captures`]); evaluation runs
//! them through the interpreter via [`crate::op::SubgraphRunner`].

use super::Registry;
use crate::graph::Graph;
use crate::onnx::attrs::NodeCtx;
use crate::op::{opt, req, Attr, EvalCx, InferCx, Op};
use crate::shape::{Dim, ValueType};
use crate::tensor::Tensor;
use crate::{eval_err, map_data, Result};
use ndarray::{Axis, IxDyn};
use serde::{Deserialize, Serialize};
use std::any::Any;

/// Registers this family's builders.
pub fn register(r: &mut Registry) {
    r.add("If", build_if);
    r.add("Loop", build_loop);
    r.add("Scan", build_scan);
}

fn output_types(g: &Graph) -> Vec<ValueType> {
    g.outputs
        .iter()
        .map(|o| {
            g.value_type(o.value)
                .cloned()
                .unwrap_or_else(|| ValueType::unranked(crate::DType::F32))
        })
        .collect()
}

/// The join of two types: equal dims kept, differing dims made fresh, differing ranks unranked.
fn join(a: &ValueType, b: &ValueType, cx: &InferCx<'_>) -> ValueType {
    match (&a.shape, &b.shape) {
        (Some(x), Some(y)) if x.len() == y.len() => ValueType::new(
            a.dtype,
            x.iter()
                .zip(y)
                .map(|(p, q)| if p == q { p.clone() } else { cx.fresh_dim() })
                .collect(),
        ),
        _ => ValueType::unranked(a.dtype),
    }
}

/// `If`: runs `then_branch` or `else_branch` on a boolean condition.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct If {
    pub then_branch: Graph,
    pub else_branch: Graph,
}

fn build_if(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    Ok(Box::new(If {
        then_branch: cx.req_graph("then_branch")?,
        else_branch: cx.req_graph("else_branch")?,
    }))
}

#[typetag::serde]
impl Op for If {
    fn op_type(&self) -> &str {
        "If"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        if let Some(c) = cx.value(0) {
            let b = c.scalar_f64()? != 0.0;
            return Ok(output_types(if b {
                &self.then_branch
            } else {
                &self.else_branch
            }));
        }
        let t = output_types(&self.then_branch);
        let e = output_types(&self.else_branch);
        Ok(t.iter().zip(&e).map(|(a, b)| join(a, b, cx)).collect())
    }
    fn eval(&self, cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let c = req(inputs, 0)?.scalar_f64()? != 0.0;
        cx.runner.run(
            if c {
                &self.then_branch
            } else {
                &self.else_branch
            },
            Vec::new(),
        )
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        vec![
            (
                "then_branch",
                Attr::Graph(Box::new(self.then_branch.clone())),
            ),
            (
                "else_branch",
                Attr::Graph(Box::new(self.else_branch.clone())),
            ),
        ]
    }
    fn subgraphs(&self) -> Vec<&Graph> {
        vec![&self.then_branch, &self.else_branch]
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Stacks equally shaped tensors along a new axis `axis`.
fn stack(ts: &[Tensor], axis: usize) -> Result<Tensor> {
    let first = ts.first().ok_or_else(|| eval_err!("nothing to stack"))?;
    let expanded: Vec<Tensor> = ts
        .iter()
        .map(|t| {
            let mut s = t.shape().to_vec();
            s.insert(axis.min(s.len()), 1);
            t.reshape(&s)
        })
        .collect::<Result<_>>()?;
    concat(&expanded, axis, first.dtype())
}

fn concat(ts: &[Tensor], axis: usize, dtype: crate::DType) -> Result<Tensor> {
    let mut acc = ts
        .first()
        .ok_or_else(|| eval_err!("nothing to concatenate"))?
        .clone();
    for t in &ts[1..] {
        if t.dtype() != dtype {
            return Err(eval_err!("scan outputs change dtype between iterations"));
        }
        let d = crate::zip_data!(acc.data(), t.data(), a, b => ndarray::concatenate(Axis(axis), &[a.view(), b.view()]).map_err(|e| eval_err!("scan outputs change shape between iterations: {e}"))?)
            .ok_or_else(|| eval_err!("scan outputs change dtype between iterations"))?;
        acc = Tensor::from_data(dtype, d)?;
    }
    Ok(acc)
}

/// `Loop`: runs `body` while the condition holds and the trip count allows.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Loop {
    pub body: Graph,
}

fn build_loop(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    Ok(Box::new(Loop {
        body: cx.req_graph("body")?,
    }))
}

/// Upper bound on loop iterations, so a hostile model cannot hang the interpreter.
const MAX_TRIPS: i64 = 10_000_000;

#[typetag::serde]
impl Op for Loop {
    fn op_type(&self) -> &str {
        "Loop"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let n_carried = cx.inputs.len().saturating_sub(2);
        let body_out = output_types(&self.body);
        let mut out = Vec::new();
        for i in 0..n_carried {
            let t = cx
                .opt_input(2 + i)
                .cloned()
                .or_else(|| body_out.get(1 + i).cloned());
            let bt = body_out.get(1 + i);
            out.push(match (t, bt) {
                (Some(a), Some(b)) => join(&a, b, cx),
                (Some(a), None) => a,
                _ => ValueType::unranked(crate::DType::F32),
            });
        }
        for t in body_out.iter().skip(1 + n_carried) {
            out.push(match &t.shape {
                Some(s) => {
                    let mut s = s.clone();
                    s.insert(0, cx.fresh_dim());
                    ValueType::new(t.dtype, s)
                }
                None => ValueType::unranked(t.dtype),
            });
        }
        Ok(out)
    }
    fn eval(&self, cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let max = match opt(inputs, 0) {
            Some(t) => t.scalar_i64()?,
            None => i64::MAX,
        };
        let mut cond = match opt(inputs, 1) {
            Some(t) => t.scalar_f64()? != 0.0,
            None => true,
        };
        let mut carried: Vec<Tensor> = inputs
            .iter()
            .skip(2)
            .map(|t| {
                t.cloned()
                    .ok_or_else(|| eval_err!("Loop: an omitted loop-carried input"))
            })
            .collect::<Result<_>>()?;
        let n_carried = carried.len();
        let mut scans: Vec<Vec<Tensor>> = Vec::new();
        let mut i: i64 = 0;
        while i < max && cond {
            if i >= MAX_TRIPS {
                return Err(eval_err!(
                    "Loop ran {MAX_TRIPS} iterations without ending; refusing to go on"
                ));
            }
            let mut args = vec![
                Tensor::from_i64(&[], vec![i])?,
                Tensor::bool(ndarray::ArrayD::from_elem(IxDyn(&[]), cond)),
            ];
            args.extend(carried.iter().cloned());
            let outs = cx.runner.run(&self.body, args)?;
            if outs.len() < 1 + n_carried {
                return Err(eval_err!(
                    "Loop body returned {} values, needs at least {}",
                    outs.len(),
                    1 + n_carried
                ));
            }
            cond = outs[0].scalar_f64()? != 0.0;
            let mut it = outs.into_iter().skip(1);
            carried = (&mut it).take(n_carried).collect();
            let rest: Vec<Tensor> = it.collect();
            if scans.is_empty() {
                scans = vec![Vec::new(); rest.len()];
            }
            for (s, t) in scans.iter_mut().zip(rest) {
                s.push(t);
            }
            i += 1;
        }
        let mut out = carried;
        let n_scan = self.body.outputs.len().saturating_sub(1 + n_carried);
        for k in 0..n_scan {
            match scans.get(k) {
                Some(s) if !s.is_empty() => out.push(stack(s, 0)?),
                _ => {
                    let ty = self
                        .body
                        .value_type(self.body.outputs[1 + n_carried + k].value)
                        .cloned();
                    let dt = ty.as_ref().map(|t| t.dtype).unwrap_or(crate::DType::F32);
                    let mut shape = vec![0usize];
                    if let Some(s) = ty.and_then(|t| t.shape) {
                        shape.extend(s.iter().map(|d| d.known().unwrap_or(0) as usize));
                    }
                    out.push(Tensor::zeros(dt, &shape));
                }
            }
        }
        Ok(out)
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        vec![("body", Attr::Graph(Box::new(self.body.clone())))]
    }
    fn subgraphs(&self) -> Vec<&Graph> {
        vec![&self.body]
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// `Scan` (opset 9+): iterates `body` over slices of the scan inputs, threading state.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Scan {
    pub body: Graph,
    pub num_scan_inputs: usize,
    pub scan_input_axes: Vec<i64>,
    pub scan_input_directions: Vec<i64>,
    pub scan_output_axes: Vec<i64>,
    pub scan_output_directions: Vec<i64>,
}

fn build_scan(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    if cx.opset < 9 {
        return Err(cx.invalid(
            "body",
            "Scan before opset 9 (with sequence_lens) is not supported",
        ));
    }
    let n = cx.i("num_scan_inputs", 0)?;
    if n <= 0 {
        return Err(cx.invalid("num_scan_inputs", "must be positive"));
    }
    Ok(Box::new(Scan {
        body: cx.req_graph("body")?,
        num_scan_inputs: n as usize,
        scan_input_axes: cx.ints("scan_input_axes")?.unwrap_or_default(),
        scan_input_directions: cx.ints("scan_input_directions")?.unwrap_or_default(),
        scan_output_axes: cx.ints("scan_output_axes")?.unwrap_or_default(),
        scan_output_directions: cx.ints("scan_output_directions")?.unwrap_or_default(),
    }))
}

#[typetag::serde]
impl Op for Scan {
    fn op_type(&self) -> &str {
        "Scan"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let n_state = cx.inputs.len().saturating_sub(self.num_scan_inputs);
        let body_out = output_types(&self.body);
        let mut out: Vec<ValueType> = (0..n_state)
            .map(|i| {
                cx.opt_input(i)
                    .cloned()
                    .unwrap_or_else(|| ValueType::unranked(crate::DType::F32))
            })
            .collect();
        for (k, t) in body_out.iter().enumerate().skip(n_state) {
            out.push(match &t.shape {
                Some(s) => {
                    let mut s: Vec<Dim> = s.clone();
                    let ax = self.scan_output_axes.get(k - n_state).copied().unwrap_or(0);
                    let r = s.len() as i64 + 1;
                    let ax = if ax < 0 { ax + r } else { ax }.clamp(0, r - 1) as usize;
                    s.insert(ax, cx.fresh_dim());
                    ValueType::new(t.dtype, s)
                }
                None => ValueType::unranked(t.dtype),
            });
        }
        Ok(out)
    }
    fn eval(&self, cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let all: Vec<Tensor> = inputs
            .iter()
            .map(|t| {
                t.cloned()
                    .ok_or_else(|| eval_err!("Scan: an omitted input"))
            })
            .collect::<Result<_>>()?;
        if all.len() < self.num_scan_inputs {
            return Err(eval_err!("Scan needs {} scan inputs", self.num_scan_inputs));
        }
        let n_state = all.len() - self.num_scan_inputs;
        let mut state: Vec<Tensor> = all[..n_state].to_vec();
        let scan_in = &all[n_state..];
        let mut axes = Vec::new();
        let mut len = None;
        for (k, t) in scan_in.iter().enumerate() {
            let ax =
                crate::op::norm_axis(self.scan_input_axes.get(k).copied().unwrap_or(0), t.rank())?;
            let l = t.shape().get(ax).copied().unwrap_or(0);
            if len.is_some_and(|x| x != l) {
                return Err(eval_err!("Scan inputs disagree on the sequence length"));
            }
            len = Some(l);
            axes.push(ax);
        }
        let len = len.unwrap_or(0);
        let mut outs: Vec<Vec<Tensor>> = Vec::new();
        for step in 0..len {
            let mut args = state.clone();
            for (k, t) in scan_in.iter().enumerate() {
                let rev = self.scan_input_directions.get(k).copied().unwrap_or(0) == 1;
                let idx = if rev { len - 1 - step } else { step };
                let d = map_data!(t.data(), a => a.index_axis(Axis(axes[k]), idx).to_owned());
                args.push(Tensor::from_data(t.dtype(), d)?);
            }
            let res = cx.runner.run(&self.body, args)?;
            if res.len() < n_state {
                return Err(eval_err!("Scan body returned too few values"));
            }
            let mut it = res.into_iter();
            state = (&mut it).take(n_state).collect();
            let rest: Vec<Tensor> = it.collect();
            if outs.is_empty() {
                outs = vec![Vec::new(); rest.len()];
            }
            for (o, t) in outs.iter_mut().zip(rest) {
                o.push(t);
            }
        }
        let mut result = state;
        for (k, mut o) in outs.into_iter().enumerate() {
            if self.scan_output_directions.get(k).copied().unwrap_or(0) == 1 {
                o.reverse();
            }
            let r = o.first().map(|t| t.rank()).unwrap_or(0) + 1;
            let ax = crate::op::norm_axis(self.scan_output_axes.get(k).copied().unwrap_or(0), r)?;
            result.push(stack(&o, ax)?);
        }
        Ok(result)
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        let mut v = vec![
            ("body", Attr::Graph(Box::new(self.body.clone()))),
            ("num_scan_inputs", Attr::Int(self.num_scan_inputs as i64)),
        ];
        if !self.scan_input_axes.is_empty() {
            v.push(("scan_input_axes", Attr::Ints(self.scan_input_axes.clone())));
        }
        if !self.scan_input_directions.is_empty() {
            v.push((
                "scan_input_directions",
                Attr::Ints(self.scan_input_directions.clone()),
            ));
        }
        if !self.scan_output_axes.is_empty() {
            v.push((
                "scan_output_axes",
                Attr::Ints(self.scan_output_axes.clone()),
            ));
        }
        if !self.scan_output_directions.is_empty() {
            v.push((
                "scan_output_directions",
                Attr::Ints(self.scan_output_directions.clone()),
            ));
        }
        v
    }
    fn subgraphs(&self) -> Vec<&Graph> {
        vec![&self.body]
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}
