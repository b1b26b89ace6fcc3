//! Window and border ops: `Slice` (steps, clamping, negative steps), `Pad` (constant, reflect,
//! edge, wrap; pads may be negative), `Tile`.

use super::common::{
    assemble, const_ints, fill_value, norm_axes, numel, ravel, strides, take, unravel, vec_len,
};
use crate::onnx::attrs::NodeCtx;
use crate::op::{opt, req, Attr, EvalCx, InferCx, Op};
use crate::shape::{Dim, ValueType};
use crate::tensor::Tensor;
use crate::{eval_err, infer_err, Result};
use serde::{Deserialize, Serialize};
use std::any::Any;

/// Values large enough to mean "to the end" of a symbolic dim.
const HUGE: i64 = 1 << 31;

// ---------------------------------------------------------------------------------------------
// Slice

/// Takes `starts..ends` by `steps` along `axes` (inputs from opset 10, attributes before).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Slice {
    /// The opset-1 attributes `(starts, ends, axes)`.
    pub attr_form: Option<SliceAttrs>,
}

pub fn build_slice(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    let attr_form = if cx.opset < 10 {
        let starts = cx
            .ints("starts")?
            .ok_or_else(|| cx.invalid("starts", "is required before opset 10"))?;
        let ends = cx
            .ints("ends")?
            .ok_or_else(|| cx.invalid("ends", "is required before opset 10"))?;
        Some((starts, ends, cx.ints("axes")?))
    } else {
        None
    };
    Ok(Box::new(Slice { attr_form }))
}

/// One axis of a slice: first index, step, and number of elements taken.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SliceAxis {
    pub start: usize,
    pub step: i64,
    pub count: usize,
}

/// Resolves (clamps) `start..end` by `step` over a dim of size `d`.
pub fn slice_axis(start: i64, end: i64, step: i64, d: usize) -> Result<SliceAxis> {
    if step == 0 {
        return Err(eval_err!("Slice: step must not be 0"));
    }
    let d = d as i128;
    let (mut s, mut e) = (start as i128, end as i128);
    if s < 0 {
        s += d;
    }
    if e < 0 {
        e += d;
    }
    let st = step as i128;
    let (s, count) = if st > 0 {
        s = s.clamp(0, d);
        e = e.clamp(0, d);
        (s, if e > s { (e - s + st - 1) / st } else { 0 })
    } else {
        s = s.clamp(0, (d - 1).max(0));
        e = e.clamp(-1, d - 1);
        (
            s,
            if s > e {
                (s - e + (-st) - 1) / (-st)
            } else {
                0
            },
        )
    };
    let count = if d == 0 { 0 } else { count };
    Ok(SliceAxis {
        start: s as usize,
        step,
        count: count as usize,
    })
}

/// The opset-1 attributes `(starts, ends, axes)`.
pub type SliceAttrs = (Vec<i64>, Vec<i64>, Option<Vec<i64>>);

/// `(starts, ends, axes, steps)`.
type SliceParams = (Vec<i64>, Vec<i64>, Option<Vec<i64>>, Option<Vec<i64>>);

impl Slice {
    /// `(starts, ends, axes, steps)` from attributes or inputs; `None` parts unknown.
    fn params_eval(&self, inputs: &[Option<&Tensor>]) -> Result<SliceParams> {
        if let Some((s, e, a)) = &self.attr_form {
            return Ok((s.clone(), e.clone(), a.clone(), None));
        }
        let v = |i: usize| opt(inputs, i).map(|t| t.to_i64_vec()).transpose();
        Ok((
            req(inputs, 1)?.to_i64_vec()?,
            req(inputs, 2)?.to_i64_vec()?,
            v(3)?,
            v(4)?,
        ))
    }
}

/// Checks and normalises slice parameters against `rank`: per axis `(axis, start, end, step)`.
fn slice_plan(
    starts: &[i64],
    ends: &[i64],
    axes: Option<&[i64]>,
    steps: Option<&[i64]>,
    rank: usize,
) -> Result<Vec<(usize, i64, i64, i64)>> {
    let n = starts.len();
    if ends.len() != n || axes.is_some_and(|a| a.len() != n) || steps.is_some_and(|s| s.len() != n)
    {
        return Err(eval_err!(
            "Slice: starts, ends, axes and steps must have equal lengths"
        ));
    }
    let default_axes: Vec<i64> = (0..n as i64).collect();
    let axes = norm_axes("Slice", axes.unwrap_or(&default_axes), rank)?;
    Ok((0..n)
        .map(|i| {
            (
                axes[i],
                starts[i],
                ends[i],
                steps.map(|s| s[i]).unwrap_or(1),
            )
        })
        .collect())
}

#[typetag::serde]
impl Op for Slice {
    fn op_type(&self) -> &str {
        "Slice"
    }
    fn infer_dims(&self, cx: &InferCx<'_>) -> Vec<Option<Vec<Dim>>> {
        if cx.rank(0) != Some(1) {
            return vec![None];
        }
        let Some(d) = cx.dims_value(0) else {
            return vec![None];
        };
        let params = match &self.attr_form {
            Some((a, b, c)) => Some((a.clone(), b.clone(), c.clone(), None)),
            None => {
                let o = |i: usize| {
                    if cx.opt_input(i).is_none() {
                        Some(None)
                    } else {
                        const_ints(cx, i).map(Some)
                    }
                };
                match (const_ints(cx, 1), const_ints(cx, 2), o(3), o(4)) {
                    (Some(a), Some(b), Some(c), Some(e)) => Some((a, b, c, e)),
                    _ => None,
                }
            }
        };
        let Some((st, en, ax, sp)) = params else {
            return vec![None];
        };
        let Ok(plan) = slice_plan(&st, &en, ax.as_deref(), sp.as_deref(), 1) else {
            return vec![None];
        };
        let mut sa = SliceAxis {
            start: 0,
            step: 1,
            count: d.len(),
        };
        for (_, b, e, p) in plan {
            match slice_axis(b, e, p, d.len()) {
                Ok(x) => sa = x,
                Err(_) => return vec![None],
            }
        }
        let out: Vec<Dim> = (0..sa.count)
            .map(|k| d[(sa.start as i64 + k as i64 * sa.step) as usize].clone())
            .collect();
        vec![Some(out)]
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let x = cx.input(0)?;
        let Some(s) = &x.shape else {
            return Ok(vec![ValueType::unranked(x.dtype)]);
        };
        type Known = Option<Option<Vec<i64>>>;
        let (starts, ends, axes, steps): (Option<Vec<i64>>, Option<Vec<i64>>, Known, Known) =
            match &self.attr_form {
                Some((a, b, c)) => (
                    Some(a.clone()),
                    Some(b.clone()),
                    Some(c.clone()),
                    Some(None),
                ),
                None => {
                    let o = |i: usize| {
                        if cx.opt_input(i).is_none() {
                            Some(None)
                        } else {
                            const_ints(cx, i).map(Some)
                        }
                    };
                    (const_ints(cx, 1), const_ints(cx, 2), o(3), o(4))
                }
            };
        let mut out = s.clone();
        match (starts, ends, axes, steps) {
            (Some(st), Some(en), Some(ax), Some(sp)) => {
                let plan = slice_plan(&st, &en, ax.as_deref(), sp.as_deref(), s.len())
                    .map_err(|e| infer_err!("{e}"))?;
                for (a, b, e, p) in plan {
                    out[a] = match s[a].known() {
                        Some(d) => Dim::Known(
                            slice_axis(b, e, p, d as usize)
                                .map_err(|e| infer_err!("{e}"))?
                                .count as u64,
                        ),
                        None if p == 1 && b >= 0 && e >= HUGE => s[a].sub(&Dim::Known(b as u64)),
                        None => cx.fresh_dim(),
                    };
                }
            }
            (_, _, Some(Some(ax)), _) => {
                let axes = norm_axes("Slice", &ax, s.len()).map_err(|e| infer_err!("{e}"))?;
                for a in axes {
                    out[a] = cx.fresh_dim();
                }
            }
            (_, _, Some(None), _) if vec_len(cx, 1).is_some_and(|n| n <= s.len()) => {
                let n = vec_len(cx, 1).unwrap_or(0);
                for d in out.iter_mut().take(n) {
                    *d = cx.fresh_dim();
                }
            }
            _ => out = cx.fresh_shape(s.len()),
        }
        Ok(vec![ValueType::new(x.dtype, out)])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let (st, en, ax, sp) = self.params_eval(inputs)?;
        let shape = x.shape();
        let r = shape.len();
        let mut axes: Vec<SliceAxis> = shape
            .iter()
            .map(|&d| SliceAxis {
                start: 0,
                step: 1,
                count: d,
            })
            .collect();
        for (a, b, e, p) in slice_plan(&st, &en, ax.as_deref(), sp.as_deref(), r)? {
            axes[a] = slice_axis(b, e, p, shape[a])?;
        }
        let out: Vec<usize> = axes.iter().map(|s| s.count).collect();
        let n = numel("Slice", &out)?;
        let stv = strides(shape);
        let mut m = vec![0usize; r];
        let mut src = vec![0usize; r];
        let mut idx = Vec::with_capacity(n);
        for k in 0..n {
            unravel(k, &out, &mut m);
            for i in 0..r {
                src[i] = (axes[i].start as i128 + m[i] as i128 * axes[i].step as i128) as usize;
            }
            idx.push(ravel(&src, &stv));
        }
        Ok(vec![take("Slice", x, &out, &idx)?])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        match &self.attr_form {
            Some((s, e, a)) => {
                let mut v = vec![
                    ("starts", Attr::Ints(s.clone())),
                    ("ends", Attr::Ints(e.clone())),
                ];
                if let Some(a) = a {
                    v.push(("axes", Attr::Ints(a.clone())));
                }
                v
            }
            None => Vec::new(),
        }
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

// ---------------------------------------------------------------------------------------------
// Pad

/// Border mode of `Pad`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PadMode {
    Constant,
    Reflect,
    Edge,
    Wrap,
}

/// Pads (or crops, with negative pads) each axis; `pads`/`value` are attributes before opset 11.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Pad {
    pub mode: PadMode,
    pub pads_attr: Option<Vec<i64>>,
    pub value_attr: Option<f32>,
}

pub fn build_pad(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    let mode = match cx.s("mode", "constant")?.as_str() {
        "constant" => PadMode::Constant,
        "reflect" => PadMode::Reflect,
        "edge" => PadMode::Edge,
        "wrap" => PadMode::Wrap,
        _ => return Err(cx.invalid("mode", "must be constant, reflect, edge or wrap")),
    };
    let (pads_attr, value_attr) = if cx.opset < 11 {
        (
            Some(
                cx.ints("pads")?
                    .or(cx.ints("paddings")?)
                    .unwrap_or_default(),
            ),
            Some(cx.f("value", 0.0)?),
        )
    } else {
        (None, None)
    };
    Ok(Box::new(Pad {
        mode,
        pads_attr,
        value_attr,
    }))
}

impl Pad {
    /// Per-axis `(before, after)` pads for a tensor of `rank`.
    fn per_axis(pads: &[i64], axes: Option<&[i64]>, rank: usize) -> Result<Vec<(i64, i64)>> {
        let default_axes: Vec<i64> = (0..rank as i64).collect();
        let axes = norm_axes("Pad", axes.unwrap_or(&default_axes), rank)?;
        let n = axes.len();
        if pads.len() != 2 * n {
            return Err(eval_err!(
                "Pad: {} pads given for {n} axes (need {})",
                pads.len(),
                2 * n
            ));
        }
        let mut out = vec![(0, 0); rank];
        for (i, &a) in axes.iter().enumerate() {
            out[a] = (pads[i], pads[n + i]);
        }
        Ok(out)
    }
}

/// Maps an output coordinate `o` of a padded axis to the source coordinate (`None`: fill).
fn pad_source(mode: PadMode, o: i64, before: i64, d: i64) -> Option<usize> {
    let x = o - before;
    if (0..d).contains(&x) {
        return Some(x as usize);
    }
    if d == 0 {
        return None;
    }
    Some(match mode {
        PadMode::Constant => return None,
        PadMode::Edge => x.clamp(0, d - 1) as usize,
        PadMode::Wrap => x.rem_euclid(d) as usize,
        PadMode::Reflect => {
            if d == 1 {
                0
            } else {
                let p = 2 * (d - 1);
                let y = x.rem_euclid(p);
                (if y >= d { p - y } else { y }) as usize
            }
        }
    })
}

#[typetag::serde]
impl Op for Pad {
    fn op_type(&self) -> &str {
        "Pad"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let x = cx.input(0)?;
        let Some(s) = &x.shape else {
            return Ok(vec![ValueType::unranked(x.dtype)]);
        };
        let pads = match &self.pads_attr {
            Some(p) => Some(p.clone()),
            None => const_ints(cx, 1),
        };
        let axes = if cx.opt_input(3).is_some() {
            const_ints(cx, 3).map(Some)
        } else {
            Some(None)
        };
        let out = match (pads, axes) {
            (Some(p), Some(a)) => {
                let pa = Pad::per_axis(&p, a.as_deref(), s.len()).map_err(|e| infer_err!("{e}"))?;
                s.iter()
                    .zip(pa)
                    .map(|(d, (b, e))| {
                        let t = b + e;
                        if let Some(v) = d.known() {
                            let n = v as i64 + t;
                            if n < 0 {
                                return Err(infer_err!("Pad: pads {p:?} crop below zero"));
                            }
                            Ok(Dim::Known(n as u64))
                        } else if t >= 0 {
                            Ok(d.add(&Dim::Known(t as u64)))
                        } else {
                            Ok(d.sub(&Dim::Known((-t) as u64)))
                        }
                    })
                    .collect::<Result<Vec<Dim>>>()?
            }
            _ => cx.fresh_shape(s.len()),
        };
        Ok(vec![ValueType::new(x.dtype, out)])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let shape = x.shape();
        let r = shape.len();
        let pads = match &self.pads_attr {
            Some(p) => p.clone(),
            None => req(inputs, 1)?.to_i64_vec()?,
        };
        let axes = opt(inputs, 3).map(|t| t.to_i64_vec()).transpose()?;
        let pa = Pad::per_axis(&pads, axes.as_deref(), r)?;
        let mut out = Vec::with_capacity(r);
        for (i, &(b, e)) in pa.iter().enumerate() {
            let n = shape[i] as i64 + b + e;
            if n < 0 {
                return Err(eval_err!("Pad: pads {pads:?} crop axis {i} below zero"));
            }
            if self.mode != PadMode::Constant && shape[i] == 0 && n > 0 {
                return Err(eval_err!(
                    "Pad: cannot pad an empty axis {i} in a non-constant mode"
                ));
            }
            out.push(n as usize);
        }
        let fill = match &self.value_attr {
            Some(v) => fill_value("Pad", x.dtype(), Some(&Tensor::from_f32(&[1], vec![*v])?))?,
            None => fill_value("Pad", x.dtype(), opt(inputs, 2))?,
        };
        let n = numel("Pad", &out)?;
        let st = strides(shape);
        let mut m = vec![0usize; r];
        let mut picks = Vec::with_capacity(n);
        for k in 0..n {
            unravel(k, &out, &mut m);
            let mut flat = Some(0usize);
            for i in 0..r {
                flat = match (
                    flat,
                    pad_source(self.mode, m[i] as i64, pa[i].0, shape[i] as i64),
                ) {
                    (Some(f), Some(j)) => Some(f + j * st[i]),
                    _ => None,
                };
            }
            picks.push(match flat {
                Some(f) => (0, f),
                None => (1, 0),
            });
        }
        Ok(vec![assemble("Pad", x.dtype(), &[x, &fill], &out, &picks)?])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        let mut v = Vec::new();
        let mode = match self.mode {
            PadMode::Constant => "constant",
            PadMode::Reflect => "reflect",
            PadMode::Edge => "edge",
            PadMode::Wrap => "wrap",
        };
        v.push(("mode", Attr::Str(mode.into())));
        if let Some(p) = &self.pads_attr {
            v.push(("pads", Attr::Ints(p.clone())));
        }
        if let Some(f) = self.value_attr {
            v.push(("value", Attr::Float(f)));
        }
        v
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

// ---------------------------------------------------------------------------------------------
// Tile

/// Repeats the input `repeats[i]` times along each axis.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Tile;

#[typetag::serde]
impl Op for Tile {
    fn op_type(&self) -> &str {
        "Tile"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let x = cx.input(0)?;
        let Some(s) = &x.shape else {
            return Ok(vec![ValueType::unranked(x.dtype)]);
        };
        let out = match const_ints(cx, 1) {
            Some(r) => {
                if r.len() != s.len() || r.iter().any(|&v| v < 0) {
                    return Err(infer_err!(
                        "Tile: repeats {r:?} must be {} non-negative counts",
                        s.len()
                    ));
                }
                s.iter()
                    .zip(&r)
                    .map(|(d, &k)| d.mul(&Dim::Known(k as u64)))
                    .collect()
            }
            None => cx.fresh_shape(s.len()),
        };
        Ok(vec![ValueType::new(x.dtype, out)])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let reps = super::common::to_sizes("Tile", &req(inputs, 1)?.to_i64_vec()?)?;
        let s = x.shape();
        if reps.len() != s.len() {
            return Err(eval_err!(
                "Tile: {} repeats for rank {}",
                reps.len(),
                s.len()
            ));
        }
        let out: Vec<usize> = s
            .iter()
            .zip(&reps)
            .map(|(&d, &k)| d.saturating_mul(k))
            .collect();
        let n = numel("Tile", &out)?;
        let st = strides(s);
        let mut m = vec![0usize; s.len()];
        let mut idx = Vec::with_capacity(n);
        for k in 0..n {
            unravel(k, &out, &mut m);
            for (i, v) in m.iter_mut().enumerate() {
                *v %= s[i].max(1);
            }
            idx.push(ravel(&m, &st));
        }
        Ok(vec![take("Tile", x, &out, &idx)?])
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_clamps_and_negative_steps() {
        let a = slice_axis(0, i64::MAX, 1, 5).unwrap();
        assert_eq!((a.start, a.count), (0, 5));
        let a = slice_axis(-1, i64::MIN, -1, 5).unwrap();
        assert_eq!((a.start, a.count), (4, 5));
        let a = slice_axis(20, 1000, 1, 5).unwrap();
        assert_eq!(a.count, 0);
        let a = slice_axis(4, 0, -2, 5).unwrap();
        assert_eq!((a.start, a.count), (4, 2));
        assert!(slice_axis(0, 1, 0, 5).is_err());
    }

    #[test]
    fn pad_modes() {
        // d = 3: [a b c]; reflect of -2..5 → c b | a b c | b a
        let r: Vec<_> = (0..7)
            .map(|o| pad_source(PadMode::Reflect, o, 2, 3).unwrap())
            .collect();
        assert_eq!(r, vec![2, 1, 0, 1, 2, 1, 0]);
        let w: Vec<_> = (0..7)
            .map(|o| pad_source(PadMode::Wrap, o, 2, 3).unwrap())
            .collect();
        assert_eq!(w, vec![1, 2, 0, 1, 2, 0, 1]);
        assert_eq!(pad_source(PadMode::Constant, 0, 1, 3), None);
    }
}
