//! Data-dependent selections: `Compress`, `NonZero`, `Unique`, `ReverseSequence`.

use super::common::{eval_axis, infer_axis, ravel, strides, take, unravel};
use crate::op::{req, Attr, EvalCx, InferCx, Op};
use crate::shape::{Dim, ValueType};
use crate::tensor::{Data, Tensor};
use crate::{eval_err, infer_err, DType, Result};
use serde::{Deserialize, Serialize};
use std::any::Any;
use std::cmp::Ordering;

// ---------------------------------------------------------------------------------------------
// Compress

/// Keeps the slices along `axis` (or the elements of the flattened input) where `condition` is
/// true; `condition` may be shorter than the axis.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Compress {
    pub axis: Option<i64>,
}

#[typetag::serde]
impl Op for Compress {
    fn op_type(&self) -> &str {
        "Compress"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let x = cx.input(0)?;
        let kept = cx
            .value(1)
            .and_then(|t| t.to_i().ok())
            .map(|c| Dim::Known(c.iter().filter(|&&v| v != 0).count() as u64));
        let shape = match (self.axis, &x.shape) {
            (None, _) => Some(vec![kept.unwrap_or_else(|| cx.fresh_dim())]),
            (Some(a), Some(s)) => {
                let a = infer_axis("Compress", a, s.len())?;
                let mut out = s.clone();
                out[a] = kept.unwrap_or_else(|| cx.fresh_dim());
                Some(out)
            }
            (Some(_), None) => None,
        };
        Ok(vec![ValueType {
            dtype: x.dtype,
            shape,
        }])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let c: Vec<bool> = req(inputs, 1)?.to_i()?.iter().map(|&v| v != 0).collect();
        let (outer, d, inner, shape) = match self.axis {
            None => (1, x.len(), 1, vec![x.len()]),
            Some(a) => {
                let s = x.shape();
                let a = eval_axis("Compress", a, s.len())?;
                (
                    s[..a].iter().product(),
                    s[a],
                    s[a + 1..].iter().product(),
                    s.to_vec(),
                )
            }
        };
        if let Some(p) = c.iter().skip(d).position(|&v| v) {
            return Err(eval_err!(
                "Compress: condition is true at {} beyond the axis length {d}",
                p + d
            ));
        }
        let keep: Vec<usize> = (0..d.min(c.len())).filter(|&i| c[i]).collect();
        let mut idx = Vec::with_capacity(outer * keep.len() * inner);
        for o in 0..outer {
            for &k in &keep {
                let base = (o * d + k) * inner;
                idx.extend(base..base + inner);
            }
        }
        let mut out = shape;
        match self.axis {
            None => out[0] = keep.len(),
            Some(a) => {
                let a = eval_axis("Compress", a, out.len())?;
                out[a] = keep.len();
            }
        }
        Ok(vec![take("Compress", x, &out, &idx)?])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        match self.axis {
            Some(a) => vec![("axis", Attr::Int(a))],
            None => Vec::new(),
        }
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

// ---------------------------------------------------------------------------------------------
// NonZero

/// Indices of the non-zero elements, as an int64 `(rank, count)` tensor.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NonZero;

fn nonzero_flags(x: &Tensor) -> Result<Vec<bool>> {
    Ok(match x.data() {
        Data::F(a) => a.iter().map(|&v| v != 0.0).collect(),
        Data::I(a) => a.iter().map(|&v| v != 0).collect(),
        Data::B(a) => a.iter().copied().collect(),
        Data::S(a) => a.iter().map(|v| !v.is_empty()).collect(),
    })
}

#[typetag::serde]
impl Op for NonZero {
    fn op_type(&self) -> &str {
        "NonZero"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let r = match cx.rank(0) {
            Some(r) => Dim::Known(r as u64),
            None => cx.fresh_dim(),
        };
        Ok(vec![ValueType::new(DType::I64, vec![r, cx.fresh_dim()])])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let s = x.shape();
        let r = s.len();
        let hits: Vec<usize> = nonzero_flags(x)?
            .iter()
            .enumerate()
            .filter(|(_, &b)| b)
            .map(|(i, _)| i)
            .collect();
        let n = hits.len();
        let mut v = vec![0i64; r * n];
        let mut m = vec![0usize; r];
        for (j, &f) in hits.iter().enumerate() {
            unravel(f, s, &mut m);
            for i in 0..r {
                v[i * n + j] = m[i] as i64;
            }
        }
        Ok(vec![Tensor::from_i64(&[r, n], v)?])
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

// ---------------------------------------------------------------------------------------------
// Unique

/// Unique elements (or slices along `axis`), sorted or in order of first occurrence, with
/// first-occurrence indices, inverse indices and counts.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Unique {
    pub sorted: bool,
    pub axis: Option<i64>,
}

/// A comparable element.
#[derive(Clone, Debug, PartialEq, PartialOrd)]
enum Key {
    F(f64),
    I(i128),
    B(bool),
    S(String),
}

fn keys(x: &Tensor) -> Vec<Key> {
    match x.data() {
        Data::F(a) => a.iter().map(|&v| Key::F(v)).collect(),
        Data::I(a) => a.iter().map(|&v| Key::I(v)).collect(),
        Data::B(a) => a.iter().map(|&v| Key::B(v)).collect(),
        Data::S(a) => a.iter().map(|v| Key::S(v.clone())).collect(),
    }
}

fn cmp_slices(a: &[Key], b: &[Key]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        let o = match (x, y) {
            (Key::F(p), Key::F(q)) => p.total_cmp(q),
            _ => x.partial_cmp(y).unwrap_or(Ordering::Equal),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    a.len().cmp(&b.len())
}

/// Groups of equal slices: for each unique slice (in output order) its member slice indices
/// (ascending); `slices[i]` is the key list of slice `i`.
fn unique_groups(slices: &[Vec<Key>], sorted: bool) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..slices.len()).collect();
    order.sort_by(|&a, &b| cmp_slices(&slices[a], &slices[b]));
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for i in order {
        match groups.last_mut() {
            Some(g) if cmp_slices(&slices[g[0]], &slices[i]) == Ordering::Equal => g.push(i),
            _ => groups.push(vec![i]),
        }
    }
    for g in &mut groups {
        g.sort_unstable();
    }
    if !sorted {
        groups.sort_by_key(|g| g[0]);
    }
    groups
}

#[typetag::serde]
impl Op for Unique {
    fn op_type(&self) -> &str {
        "Unique"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let x = cx.input(0)?;
        let u = cx.fresh_dim();
        let (y, n) = match (self.axis, &x.shape) {
            (None, s) => (
                Some(vec![u.clone()]),
                s.as_ref()
                    .map(|s| super::common::dim_product(&s[..]))
                    .unwrap_or_else(|| cx.fresh_dim()),
            ),
            (Some(a), Some(s)) => {
                let a = infer_axis("Unique", a, s.len())?;
                let mut y = s.clone();
                let n = y[a].clone();
                y[a] = u.clone();
                (Some(y), n)
            }
            (Some(_), None) => (None, cx.fresh_dim()),
        };
        Ok(vec![
            ValueType {
                dtype: x.dtype,
                shape: y,
            },
            ValueType::new(DType::I64, vec![u.clone()]),
            ValueType::new(DType::I64, vec![n]),
            ValueType::new(DType::I64, vec![u]),
        ])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let s = x.shape().to_vec();
        let all = keys(x);
        let (outer, d, inner, a) = match self.axis {
            None => (1, x.len(), 1, None),
            Some(a) => {
                let a = eval_axis("Unique", a, s.len())?;
                (
                    s[..a].iter().product::<usize>(),
                    s[a],
                    s[a + 1..].iter().product::<usize>(),
                    Some(a),
                )
            }
        };
        // Flat positions of slice i's elements, in row-major order.
        let members = |i: usize| -> Vec<usize> {
            let mut v = Vec::with_capacity(outer * inner);
            for o in 0..outer {
                let base = (o * d + i) * inner;
                v.extend(base..base + inner);
            }
            v
        };
        let slices: Vec<Vec<Key>> = (0..d)
            .map(|i| members(i).into_iter().map(|f| all[f].clone()).collect())
            .collect();
        let groups = unique_groups(&slices, self.sorted);
        let u = groups.len();
        let mut inverse = vec![0i64; d];
        for (gi, g) in groups.iter().enumerate() {
            for &i in g {
                inverse[i] = gi as i64;
            }
        }
        let firsts: Vec<usize> = groups.iter().map(|g| g[0]).collect();
        let y = match a {
            None => take("Unique", x, &[u], &firsts)?,
            Some(a) => {
                let mut ys = s.clone();
                ys[a] = u;
                let mut idx = Vec::with_capacity(outer * u * inner);
                for o in 0..outer {
                    for &f in &firsts {
                        let base = (o * d + f) * inner;
                        idx.extend(base..base + inner);
                    }
                }
                take("Unique", x, &ys, &idx)?
            }
        };
        Ok(vec![
            y,
            Tensor::from_i64(&[u], firsts.iter().map(|&f| f as i64).collect())?,
            Tensor::from_i64(&[d], inverse)?,
            Tensor::from_i64(&[u], groups.iter().map(|g| g.len() as i64).collect())?,
        ])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        let mut v = vec![("sorted", Attr::Int(i64::from(self.sorted)))];
        if let Some(a) = self.axis {
            v.push(("axis", Attr::Int(a)));
        }
        v
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

// ---------------------------------------------------------------------------------------------
// ReverseSequence

/// Reverses the first `sequence_lens[b]` entries along `time_axis` for each batch `b`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReverseSequence {
    pub batch_axis: i64,
    pub time_axis: i64,
}

#[typetag::serde]
impl Op for ReverseSequence {
    fn op_type(&self) -> &str {
        "ReverseSequence"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let x = cx.input(0)?;
        if x.rank().is_some_and(|r| r < 2) {
            return Err(infer_err!(
                "ReverseSequence: input must have rank at least 2"
            ));
        }
        Ok(vec![x.clone()])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let lens = req(inputs, 1)?.to_i64_vec()?;
        let s = x.shape();
        let r = s.len();
        let b = eval_axis("ReverseSequence", self.batch_axis, r)?;
        let t = eval_axis("ReverseSequence", self.time_axis, r)?;
        if r < 2 || b == t {
            return Err(eval_err!(
                "ReverseSequence: batch and time axes must be distinct axes of a rank >= 2 input"
            ));
        }
        if lens.len() != s[b] {
            return Err(eval_err!(
                "ReverseSequence: {} sequence lengths for batch {}",
                lens.len(),
                s[b]
            ));
        }
        if let Some(l) = lens.iter().find(|&&l| l < 0 || l as usize > s[t]) {
            return Err(eval_err!(
                "ReverseSequence: sequence length {l} is outside 0..={}",
                s[t]
            ));
        }
        let st = strides(s);
        let mut m = vec![0usize; r];
        let idx: Vec<usize> = (0..x.len())
            .map(|f| {
                unravel(f, s, &mut m);
                let l = lens[m[b]] as usize;
                if m[t] < l {
                    m[t] = l - 1 - m[t];
                }
                ravel(&m, &st)
            })
            .collect();
        Ok(vec![take("ReverseSequence", x, s, &idx)?])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        vec![
            ("batch_axis", Attr::Int(self.batch_axis)),
            ("time_axis", Attr::Int(self.time_axis)),
        ]
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_first_occurrence_order() {
        let x = Tensor::from_i64(&[6], vec![2, 1, 1, 3, 4, 3]).unwrap();
        let u = Unique {
            sorted: false,
            axis: None,
        };
        let mut runner = NoRun;
        let mut cx = EvalCx {
            num_outputs: 4,
            runner: &mut runner,
        };
        let out = u.eval(&mut cx, &[Some(&x)]).unwrap();
        assert_eq!(out[0].to_i64_vec().unwrap(), vec![2, 1, 3, 4]);
        assert_eq!(out[1].to_i64_vec().unwrap(), vec![0, 1, 3, 4]);
        assert_eq!(out[2].to_i64_vec().unwrap(), vec![0, 1, 1, 2, 3, 2]);
        assert_eq!(out[3].to_i64_vec().unwrap(), vec![1, 2, 2, 1]);
    }

    struct NoRun;
    impl crate::op::SubgraphRunner for NoRun {
        fn run(&mut self, _g: &crate::Graph, _i: Vec<Tensor>) -> Result<Vec<Tensor>> {
            Err(eval_err!("no subgraphs"))
        }
    }
}
