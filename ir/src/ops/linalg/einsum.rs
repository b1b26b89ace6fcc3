//! `Einsum`: general equations with ellipsis, implicit outputs and repeated indices (diagonals).

use crate::onnx::attrs::NodeCtx;
use crate::op::{Attr, EvalCx, InferCx, Op};
use crate::shape::{Dim, ValueType};
use crate::tensor::{Data, Tensor};
use crate::{eval_err, infer_err, Error, Result};
use ndarray::{ArrayD, IxDyn};
use serde::{Deserialize, Serialize};
use std::any::Any;

/// One term of a parsed equation: letters in order, with the ellipsis position if any.
#[derive(Clone, Debug, PartialEq)]
struct Term {
    before: Vec<char>,
    /// `Some(after)` when the term has an ellipsis, followed by these letters.
    after: Option<Vec<char>>,
}

impl Term {
    fn parse(s: &str) -> std::result::Result<Term, String> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        let letters = |p: &str| -> std::result::Result<Vec<char>, String> {
            p.chars()
                .map(|c| {
                    if c.is_ascii_alphabetic() {
                        Ok(c)
                    } else {
                        Err(format!("invalid character '{c}' in einsum term '{s}'"))
                    }
                })
                .collect()
        };
        match s.find("...") {
            Some(i) => {
                let rest = &s[i + 3..];
                if rest.contains('.') {
                    return Err(format!("more than one ellipsis in einsum term '{s}'"));
                }
                Ok(Term {
                    before: letters(&s[..i])?,
                    after: Some(letters(rest)?),
                })
            }
            None => Ok(Term {
                before: letters(&s)?,
                after: None,
            }),
        }
    }
    fn n_letters(&self) -> usize {
        self.before.len() + self.after.as_ref().map_or(0, |a| a.len())
    }
    /// Labels of each axis for an operand of `rank`; ellipsis dims are `Ell(j)` counted from the
    /// right of a common ellipsis of `ell_rank` dims.
    fn labels(&self, rank: usize, ell_rank: usize) -> std::result::Result<Vec<Label>, String> {
        let nl = self.n_letters();
        let mut v: Vec<Label> = self.before.iter().map(|&c| Label::L(c)).collect();
        match &self.after {
            None => {
                if rank != nl {
                    return Err(format!(
                        "einsum term has {nl} indices but the operand has rank {rank}"
                    ));
                }
            }
            Some(after) => {
                if rank < nl {
                    return Err(format!(
                        "einsum term has {nl} indices but the operand has rank {rank}"
                    ));
                }
                let e = rank - nl;
                for j in 0..e {
                    v.push(Label::E(ell_rank - e + j));
                }
                v.extend(after.iter().map(|&c| Label::L(c)));
            }
        }
        Ok(v)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Label {
    /// Ellipsis dim `j` of the broadcast ellipsis (sorted before letters).
    E(usize),
    L(char),
}

/// A parsed equation.
#[derive(Clone, Debug)]
struct Equation {
    inputs: Vec<Term>,
    /// Explicit output, or `None` for the implicit form.
    output: Option<Term>,
}

impl Equation {
    fn parse(eq: &str) -> std::result::Result<Equation, String> {
        let (lhs, rhs) = match eq.split_once("->") {
            Some((l, r)) => (l, Some(r)),
            None => (eq, None),
        };
        let inputs = lhs
            .split(',')
            .map(Term::parse)
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let output = rhs.map(Term::parse).transpose()?;
        if let Some(o) = &output {
            let mut seen = std::collections::HashSet::new();
            for c in o.before.iter().chain(o.after.iter().flatten()) {
                if !seen.insert(*c) {
                    return Err(format!("index '{c}' repeated in the einsum output"));
                }
                if !inputs
                    .iter()
                    .any(|t| t.before.contains(c) || t.after.iter().flatten().any(|x| x == c))
                {
                    return Err(format!("output index '{c}' is not in any input"));
                }
            }
        }
        Ok(Equation { inputs, output })
    }

    /// Axis labels of every input and of the output, for operands of the given ranks.
    fn resolve(
        &self,
        ranks: &[usize],
    ) -> std::result::Result<(Vec<Vec<Label>>, Vec<Label>), String> {
        if ranks.len() != self.inputs.len() {
            return Err(format!(
                "einsum equation has {} inputs but the node has {}",
                self.inputs.len(),
                ranks.len()
            ));
        }
        let ell_rank = self
            .inputs
            .iter()
            .zip(ranks)
            .filter(|(t, _)| t.after.is_some())
            .map(|(t, &r)| r.saturating_sub(t.n_letters()))
            .max()
            .unwrap_or(0);
        let ins = self
            .inputs
            .iter()
            .zip(ranks)
            .map(|(t, &r)| t.labels(r, ell_rank))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let out = match &self.output {
            Some(o) => {
                let has_ell = self.inputs.iter().any(|t| t.after.is_some());
                if o.after.is_some() && !has_ell {
                    return Err("einsum output has an ellipsis but no input does".into());
                }
                if o.after.is_none() && has_ell && ell_rank > 0 {
                    return Err("einsum output must keep the ellipsis dims".into());
                }
                o.labels(
                    o.n_letters() + if o.after.is_some() { ell_rank } else { 0 },
                    ell_rank,
                )?
            }
            None => {
                // Implicit: ellipsis dims, then letters appearing exactly once, alphabetically.
                let mut v: Vec<Label> = (0..ell_rank).map(Label::E).collect();
                let mut counts: std::collections::BTreeMap<char, usize> = Default::default();
                for t in &self.inputs {
                    for c in t.before.iter().chain(t.after.iter().flatten()) {
                        *counts.entry(*c).or_default() += 1;
                    }
                }
                v.extend(
                    counts
                        .into_iter()
                        .filter(|(_, n)| *n == 1)
                        .map(|(c, _)| Label::L(c)),
                );
                v
            }
        };
        Ok((ins, out))
    }
}

/// Einstein summation over its inputs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Einsum {
    pub equation: String,
}

/// Builds an `Einsum`, checking the equation parses.
pub fn build_einsum(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    let equation = cx.s("equation", "")?;
    Equation::parse(&equation).map_err(|e| cx.invalid("equation", &e))?;
    Ok(Box::new(Einsum { equation }))
}

/// The summation plan: label sizes, output labels, each operand's label positions.
/// Shared with the CPU backend, which lowers Einsum as one loop nest over the labels.
pub struct Plan {
    /// Sizes of all labels: output ones first, then summed ones.
    pub sizes: Vec<usize>,
    /// How many of `sizes` are output labels.
    pub n_out: usize,
    /// For each operand, for each axis, its label's index in `sizes`.
    pub axes: Vec<Vec<usize>>,
}

/// Resolves `equation` for operands of the given shapes (explicit or implicit output,
/// ellipsis broadcast, repeated indices); the error says what is wrong with the equation.
pub fn plan_equation(equation: &str, shapes: &[&[usize]]) -> std::result::Result<Plan, String> {
    plan(&Equation::parse(equation)?, shapes)
}

fn plan(eq: &Equation, shapes: &[&[usize]]) -> std::result::Result<Plan, String> {
    let ranks: Vec<usize> = shapes.iter().map(|s| s.len()).collect();
    let (ins, out) = eq.resolve(&ranks)?;
    let mut all: Vec<Label> = out.clone();
    for l in ins.iter().flatten() {
        if !all.contains(l) {
            all.push(*l);
        }
    }
    let mut sizes = vec![1usize; all.len()];
    let mut fixed = vec![false; all.len()];
    let mut axes = Vec::new();
    for (labels, shape) in ins.iter().zip(shapes) {
        let mut ax = Vec::new();
        for (l, &d) in labels.iter().zip(shape.iter()) {
            let i = all.iter().position(|x| x == l).unwrap_or(0);
            if d != 1 {
                if fixed[i] && sizes[i] != d {
                    return Err(format!(
                        "einsum index {l:?} has inconsistent sizes {} and {d}",
                        sizes[i]
                    ));
                }
                sizes[i] = d;
                fixed[i] = true;
            }
            ax.push(i);
        }
        axes.push(ax);
    }
    Ok(Plan {
        sizes,
        n_out: out.len(),
        axes,
    })
}

/// Runs the summation over `ops` (flat values with their shapes).
fn contract<T: Copy + std::ops::Mul<Output = T> + std::ops::AddAssign>(
    p: &Plan,
    ops: &[(&[usize], Vec<T>)],
    zero: T,
    one: T,
) -> Vec<T> {
    let out_len: usize = p.sizes[..p.n_out].iter().product();
    let mut out = vec![zero; out_len];
    if p.sizes.contains(&0) {
        return out;
    }
    // Per operand, the stride each label contributes (summed over repeated axes = diagonal),
    // 0 where the operand's dim is 1 (broadcast).
    let strides: Vec<Vec<usize>> = ops
        .iter()
        .zip(&p.axes)
        .map(|((shape, _), ax)| {
            let mut s = vec![0usize; p.sizes.len()];
            let mut st = 1usize;
            for (k, &li) in ax.iter().enumerate().rev() {
                if shape[k] != 1 {
                    s[li] += st;
                }
                st *= shape[k];
            }
            s
        })
        .collect();
    let n = p.sizes.len();
    let mut idx = vec![0usize; n];
    let total: usize = p.sizes.iter().product();
    let sum_len: usize = p.sizes[p.n_out..].iter().product();
    for flat in 0..total {
        let mut prod = one;
        for (o, st) in ops.iter().zip(&strides) {
            let off: usize = idx.iter().zip(st).map(|(i, s)| i * s).sum();
            prod = prod * o.1[off];
        }
        out[flat / sum_len.max(1)] += prod;
        // Odometer increment.
        for d in (0..n).rev() {
            idx[d] += 1;
            if idx[d] < p.sizes[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    out
}

#[typetag::serde]
impl Op for Einsum {
    fn op_type(&self) -> &str {
        "Einsum"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let eq = Equation::parse(&self.equation).map_err(|e| infer_err!("Einsum: {e}"))?;
        let first = cx.input(0)?;
        let dt = first.dtype;
        let mut shapes = Vec::new();
        for i in 0..cx.inputs.len() {
            match &cx.input(i)?.shape {
                Some(s) => shapes.push(s.clone()),
                None => return Ok(vec![ValueType::unranked(dt)]),
            }
        }
        let ranks: Vec<usize> = shapes.iter().map(|s| s.len()).collect();
        let (ins, out) = eq.resolve(&ranks).map_err(|e| infer_err!("Einsum: {e}"))?;
        let mut dims = Vec::new();
        for l in &out {
            // Prefer a dim that is not a known 1 (broadcast), else any.
            let mut found: Option<Dim> = None;
            for (labels, s) in ins.iter().zip(&shapes) {
                for (x, d) in labels.iter().zip(s) {
                    if x == l && (found.is_none() || found == Some(Dim::Known(1))) {
                        found = Some(d.clone());
                    }
                }
            }
            dims.push(found.unwrap_or(Dim::Known(1)));
        }
        Ok(vec![ValueType::new(dt, dims)])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let eq = Equation::parse(&self.equation).map_err(|e| eval_err!("Einsum: {e}"))?;
        let ts: Vec<&Tensor> = inputs
            .iter()
            .map(|t| t.ok_or_else(|| eval_err!("Einsum: missing input")))
            .collect::<Result<_>>()?;
        let first = ts
            .first()
            .ok_or_else(|| eval_err!("Einsum: needs at least one input"))?;
        let dt = first.dtype();
        let shapes: Vec<&[usize]> = ts.iter().map(|t| t.shape()).collect();
        let p = plan(&eq, &shapes).map_err(|e| eval_err!("Einsum: {e}"))?;
        let out_shape: Vec<usize> = p.sizes[..p.n_out].to_vec();
        let wrap = |e: ndarray::ShapeError| Error::Eval(format!("Einsum: {e}"));
        if dt.is_int() {
            let ops = ts
                .iter()
                .map(|t| Ok((t.shape(), t.to_i()?.iter().copied().collect())))
                .collect::<Result<Vec<(&[usize], Vec<i128>)>>>()?;
            let v = contract(&p, &ops, 0i128, 1i128);
            let a = ArrayD::from_shape_vec(IxDyn(&out_shape), v).map_err(wrap)?;
            return Ok(vec![Tensor::int(dt, a)]);
        }
        if !matches!(first.data(), Data::F(_)) {
            return Err(eval_err!("Einsum: unsupported input type {dt}"));
        }
        let ops = ts
            .iter()
            .map(|t| Ok((t.shape(), t.to_f()?.iter().copied().collect())))
            .collect::<Result<Vec<(&[usize], Vec<f64>)>>>()?;
        let v = contract(&p, &ops, 0.0f64, 1.0f64);
        let a = ArrayD::from_shape_vec(IxDyn(&out_shape), v).map_err(wrap)?;
        Ok(vec![Tensor::float(dt, a)])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        vec![("equation", Attr::Str(self.equation.clone()))]
    }
    fn macs(&self, inputs: &[Option<&ValueType>], _outputs: &[ValueType]) -> u64 {
        let Ok(eq) = Equation::parse(&self.equation) else {
            return 0;
        };
        let mut shapes = Vec::new();
        for t in inputs {
            match t
                .and_then(|t| t.shape.as_ref())
                .and_then(|s| crate::shape::shape_known(s))
            {
                Some(s) => shapes.push(s),
                None => return 0,
            }
        }
        let refs: Vec<&[usize]> = shapes.iter().map(|s| s.as_slice()).collect();
        match plan(&eq, &refs) {
            Ok(p) if inputs.len() > 1 => p.sizes.iter().map(|&s| s as u64).product(),
            _ => 0,
        }
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(eq: &str, ins: &[(&[usize], Vec<f64>)]) -> (Vec<usize>, Vec<f64>) {
        let e = Equation::parse(eq).unwrap();
        let shapes: Vec<&[usize]> = ins.iter().map(|x| x.0).collect();
        let p = plan(&e, &shapes).unwrap();
        let ops: Vec<(&[usize], Vec<f64>)> = ins.iter().map(|(s, v)| (*s, v.clone())).collect();
        (p.sizes[..p.n_out].to_vec(), contract(&p, &ops, 0.0, 1.0))
    }

    #[test]
    fn einsum_semantics() {
        let m: Vec<f64> = (0..6).map(f64::from).collect();
        // transpose
        assert_eq!(
            run("ij->ji", &[(&[2, 3], m.clone())]),
            (vec![3, 2], vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0])
        );
        // implicit output is alphabetical: "ji" on a (2,3) operand gives its transpose (i, j)
        assert_eq!(run("ji", &[(&[2, 3], m.clone())]).0, vec![3, 2]);
        // diagonal with ellipsis
        let d: Vec<f64> = (0..8).map(f64::from).collect();
        assert_eq!(
            run("...ii->...i", &[(&[2, 2, 2], d)]),
            (vec![2, 2], vec![0.0, 3.0, 4.0, 7.0])
        );
        // trace
        assert_eq!(
            run("ii", &[(&[2, 2], vec![1.0, 2.0, 3.0, 4.0])]),
            (vec![], vec![5.0])
        );
        // matmul with broadcast ellipsis
        let (s, v) = run(
            "...ij,...jk->...ik",
            &[
                (&[1, 2, 3], m.clone()),
                (&[2, 3, 1], vec![1.0, 1.0, 1.0, 2.0, 0.0, 0.0]),
            ],
        );
        assert_eq!(s, vec![2, 2, 1]);
        assert_eq!(v, vec![3.0, 12.0, 0.0, 6.0]);
        assert!(Equation::parse("ij->ii").is_err());
        assert!(Equation::parse("ij->k").is_err());
    }
}
