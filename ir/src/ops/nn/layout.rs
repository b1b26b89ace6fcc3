//! Layout ops: `DepthToSpace`, `SpaceToDepth`, `CenterCropPad`, `Col2Im`.

use super::geom::{unflatten, WinAttrs};
use crate::onnx::attrs::NodeCtx;
use crate::op::{req, Attr, EvalCx, InferCx, Op};
use crate::shape::{Dim, ValueType};
use crate::tensor::{Data, Tensor};
use crate::{eval_err, infer_err, Result};
use ndarray::{ArrayD, IxDyn};
use serde::{Deserialize, Serialize};
use std::any::Any;

/// Builds a tensor of `shape` whose element `i` is `t`'s flat element `src[i]`, or zero/empty
/// where `src[i]` is `None`.
fn gather(t: &Tensor, shape: &[usize], src: &[Option<usize>]) -> Result<Tensor> {
    fn pick<T: Clone>(
        a: &ArrayD<T>,
        shape: &[usize],
        src: &[Option<usize>],
        zero: T,
    ) -> Result<ArrayD<T>> {
        let v: Vec<T> = a.iter().cloned().collect();
        let out: Vec<T> = src
            .iter()
            .map(|s| {
                s.and_then(|i| v.get(i).cloned())
                    .unwrap_or_else(|| zero.clone())
            })
            .collect();
        ArrayD::from_shape_vec(IxDyn(shape), out).map_err(|e| eval_err!("internal: {e}"))
    }
    let data = match t.data() {
        Data::F(a) => Data::F(pick(a, shape, src, 0.0)?),
        Data::I(a) => Data::I(pick(a, shape, src, 0)?),
        Data::B(a) => Data::B(pick(a, shape, src, false)?),
        Data::S(a) => Data::S(pick(a, shape, src, String::new())?),
    };
    Tensor::from_data(t.dtype(), data)
}

fn read_blocksize(cx: &NodeCtx<'_>) -> Result<usize> {
    let b = cx
        .opt_i("blocksize")?
        .ok_or_else(|| cx.invalid("blocksize", "is required"))?;
    if b <= 0 {
        return Err(cx.invalid("blocksize", "must be positive"));
    }
    Ok(b as usize)
}

fn read_mode(cx: &NodeCtx<'_>) -> Result<String> {
    let m = cx.s("mode", "DCR")?;
    if m != "DCR" && m != "CRD" {
        return Err(cx.invalid("mode", "must be DCR or CRD"));
    }
    Ok(m)
}

pub fn build_depth_to_space(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    Ok(Box::new(DepthToSpace {
        blocksize: read_blocksize(cx)?,
        mode: read_mode(cx)?,
    }))
}

pub fn build_space_to_depth(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    Ok(Box::new(SpaceToDepth {
        blocksize: read_blocksize(cx)?,
        mode: read_mode(cx)?,
    }))
}

fn rank4<'a>(cx: &'a InferCx<'_>, what: &str) -> Result<Option<&'a [Dim]>> {
    let x = cx.input(0)?;
    match &x.shape {
        Some(s) if s.len() == 4 => Ok(Some(s)),
        Some(s) => Err(infer_err!(
            "{what}: input must have rank 4, got {}",
            s.len()
        )),
        None => Ok(None),
    }
}

/// Moves channel blocks into spatial blocks: `(N, C, H, W)` to `(N, C/b², H*b, W*b)`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DepthToSpace {
    pub blocksize: usize,
    pub mode: String,
}

#[typetag::serde]
impl Op for DepthToSpace {
    fn op_type(&self) -> &str {
        "DepthToSpace"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let dt = cx.input(0)?.dtype;
        let b = Dim::from(self.blocksize);
        Ok(vec![match rank4(cx, "DepthToSpace")? {
            Some(s) => ValueType::new(
                dt,
                vec![
                    s[0].clone(),
                    s[1].floor_div(&b.mul(&b)),
                    s[2].mul(&b),
                    s[3].mul(&b),
                ],
            ),
            None => ValueType::unranked(dt),
        }])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let s = x.shape();
        let b = self.blocksize;
        if s.len() != 4 || s[1] % (b * b) != 0 {
            return Err(eval_err!(
                "DepthToSpace: input {s:?} must be rank 4 with channels divisible by {}",
                b * b
            ));
        }
        let (n, c, h, w) = (s[0], s[1], s[2], s[3]);
        let co = c / (b * b);
        let shape = [n, co, h * b, w * b];
        let mut src = Vec::with_capacity(n * c * h * w);
        let mut ix = [0; 4];
        for o in 0..n * c * h * w {
            unflatten(o, &shape, &mut ix);
            let [bn, ci, y, xx] = ix;
            let (i, j) = (y % b, xx % b);
            let cin = if self.mode == "DCR" {
                (i * b + j) * co + ci
            } else {
                ci * b * b + i * b + j
            };
            src.push(Some(((bn * c + cin) * h + y / b) * w + xx / b));
        }
        Ok(vec![gather(x, &shape, &src)?])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        vec![
            ("blocksize", Attr::Int(self.blocksize as i64)),
            ("mode", Attr::Str(self.mode.clone())),
        ]
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Moves spatial blocks into channels: `(N, C, H, W)` to `(N, C*b², H/b, W/b)`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SpaceToDepth {
    pub blocksize: usize,
    pub mode: String,
}

#[typetag::serde]
impl Op for SpaceToDepth {
    fn op_type(&self) -> &str {
        "SpaceToDepth"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let dt = cx.input(0)?.dtype;
        let b = Dim::from(self.blocksize);
        Ok(vec![match rank4(cx, "SpaceToDepth")? {
            Some(s) => ValueType::new(
                dt,
                vec![
                    s[0].clone(),
                    s[1].mul(&b.mul(&b)),
                    s[2].floor_div(&b),
                    s[3].floor_div(&b),
                ],
            ),
            None => ValueType::unranked(dt),
        }])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let s = x.shape();
        let b = self.blocksize;
        if s.len() != 4 || s[2] % b != 0 || s[3] % b != 0 {
            return Err(eval_err!(
                "SpaceToDepth: input {s:?} must be rank 4 with H and W divisible by {b}"
            ));
        }
        let (n, c, h, w) = (s[0], s[1], s[2], s[3]);
        let shape = [n, c * b * b, h / b, w / b];
        let mut src = Vec::with_capacity(n * c * h * w);
        let mut ix = [0; 4];
        for o in 0..n * c * h * w {
            unflatten(o, &shape, &mut ix);
            let [bn, co, y, xx] = ix;
            let (ci, i, j) = if self.mode == "DCR" {
                (co % c, co / c / b, (co / c) % b)
            } else {
                (co / (b * b), (co % (b * b)) / b, co % b)
            };
            src.push(Some(((bn * c + ci) * h + y * b + i) * w + xx * b + j));
        }
        Ok(vec![gather(x, &shape, &src)?])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        let mut v = vec![("blocksize", Attr::Int(self.blocksize as i64))];
        if self.mode != "DCR" {
            v.push(("mode", Attr::Str(self.mode.clone())));
        }
        v
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Center-crops or zero-pads chosen axes to the sizes of the `shape` input.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CenterCropPad {
    pub axes: Option<Vec<i64>>,
}

pub fn build_center_crop_pad(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    Ok(Box::new(CenterCropPad {
        axes: cx.ints("axes")?,
    }))
}

impl CenterCropPad {
    fn axes(&self, r: usize) -> Result<Vec<usize>> {
        match &self.axes {
            None => Ok((0..r).collect()),
            Some(a) => a.iter().map(|&x| crate::op::norm_axis(x, r)).collect(),
        }
    }
}

#[typetag::serde]
impl Op for CenterCropPad {
    fn op_type(&self) -> &str {
        "CenterCropPad"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let x = cx.input(0)?;
        let Some(xs) = &x.shape else {
            return Ok(vec![ValueType::unranked(x.dtype)]);
        };
        let axes = self.axes(xs.len()).map_err(|e| infer_err!("{e}"))?;
        let mut out = xs.clone();
        match cx.value(1).map(|t| t.to_i64_vec()).transpose()? {
            Some(sh) if sh.len() == axes.len() => {
                for (&a, &v) in axes.iter().zip(&sh) {
                    out[a] = Dim::from(v.max(0) as usize);
                }
            }
            _ => {
                for &a in &axes {
                    out[a] = cx.fresh_dim();
                }
            }
        }
        Ok(vec![ValueType::new(x.dtype, out)])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let sh = req(inputs, 1)?.to_i64_vec()?;
        let xs = x.shape();
        let axes = self.axes(xs.len())?;
        if sh.len() != axes.len() || sh.iter().any(|&v| v < 0) {
            return Err(eval_err!(
                "CenterCropPad: shape {sh:?} must hold one non-negative size per axis ({})",
                axes.len()
            ));
        }
        let mut out = xs.to_vec();
        // Source offset per axis: output index o reads input index o + shift.
        let mut shift = vec![0i64; xs.len()];
        for (&a, &v) in axes.iter().zip(&sh) {
            let (d, t) = (xs[a] as i64, v);
            out[a] = t as usize;
            shift[a] = if t < d { (d - t) / 2 } else { -((t - d) / 2) };
        }
        let total: usize = out.iter().product();
        let mut ix = vec![0; out.len()];
        let src: Vec<Option<usize>> = (0..total)
            .map(|o| {
                unflatten(o, &out, &mut ix);
                let mut off = 0usize;
                for j in 0..out.len() {
                    let p = ix[j] as i64 + shift[j];
                    if p < 0 || p >= xs[j] as i64 {
                        return None;
                    }
                    off = off * xs[j] + p as usize;
                }
                Some(off)
            })
            .collect();
        Ok(vec![gather(x, &out, &src)?])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        match &self.axes {
            Some(a) => vec![("axes", Attr::Ints(a.clone()))],
            None => Vec::new(),
        }
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Rearranges columns of sliding blocks `(N, C*prod(block), L)` into images `(N, C, image...)`,
/// summing overlaps.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Col2Im {
    pub win: WinAttrs,
}

pub fn build_col2im(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    Ok(Box::new(Col2Im {
        win: WinAttrs::read(cx)?,
    }))
}

#[typetag::serde]
impl Op for Col2Im {
    fn op_type(&self) -> &str {
        "Col2Im"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let x = cx.input(0)?;
        let img = cx.value(1).map(|t| t.to_i64_vec()).transpose()?;
        let blk = cx.value(2).map(|t| t.to_i64_vec()).transpose()?;
        let n_sp = img.as_ref().map(|v| v.len()).or_else(|| {
            cx.input(1)
                .ok()?
                .shape
                .as_ref()?
                .first()?
                .known()
                .map(|v| v as usize)
        });
        let Some(n_sp) = n_sp else {
            return Ok(vec![ValueType::unranked(x.dtype)]);
        };
        let (b, c) = match &x.shape {
            Some(s) if s.len() == 3 => {
                let c = match &blk {
                    Some(bv) => s[1].floor_div(&Dim::from(
                        bv.iter().map(|&v| v.max(1) as usize).product::<usize>(),
                    )),
                    None => cx.fresh_dim(),
                };
                (s[0].clone(), c)
            }
            _ => (cx.fresh_dim(), cx.fresh_dim()),
        };
        let mut out = vec![b, c];
        match img {
            Some(v) => out.extend(v.iter().map(|&d| Dim::from(d.max(0) as usize))),
            None => out.extend(cx.fresh_shape(n_sp)),
        }
        Ok(vec![ValueType::new(x.dtype, out)])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let img: Vec<usize> = req(inputs, 1)?
            .to_i64_vec()?
            .iter()
            .map(|&v| v.max(0) as usize)
            .collect();
        let blk: Vec<usize> = req(inputs, 2)?
            .to_i64_vec()?
            .iter()
            .map(|&v| v.max(0) as usize)
            .collect();
        let xs = x.shape();
        let kv: usize = blk.iter().product();
        if xs.len() != 3 || img.len() != blk.len() || kv == 0 || xs[1] % kv != 0 {
            return Err(eval_err!(
                "Col2Im: input {xs:?}, image_shape {img:?} and block_shape {blk:?} do not fit"
            ));
        }
        let g = self
            .win
            .geom(&img, blk, false)
            .map_err(|e| eval_err!("Col2Im: {e}"))?;
        let l = g.out_vol();
        if xs[2] != l {
            return Err(eval_err!(
                "Col2Im: input has {} blocks, the geometry gives {l}",
                xs[2]
            ));
        }
        let (n, c) = (xs[0], xs[1] / kv);
        let iv = g.in_vol();
        let xv: Vec<f64> = x.to_f()?.iter().copied().collect();
        let mut y = vec![0.0; n * c * iv];
        let mut taps = Vec::new();
        for p in 0..l {
            g.taps(p, &mut taps);
            for b in 0..n {
                for ci in 0..c {
                    for &(k, off) in &taps {
                        y[(b * c + ci) * iv + off] += xv[((b * c + ci) * kv + k) * l + p];
                    }
                }
            }
        }
        let mut shape = vec![n, c];
        shape.extend(&img);
        let a = ArrayD::from_shape_vec(IxDyn(&shape), y).map_err(|e| eval_err!("{e}"))?;
        Ok(vec![Tensor::from_f64_as(x.dtype(), a)])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        let mut v = Vec::new();
        self.win.push(&mut v);
        v
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_space_round_trip() {
        let x = Tensor::from_f32(&[1, 8, 1, 2], (0..16).map(|v| v as f32).collect()).unwrap();
        for mode in ["DCR", "CRD"] {
            let d2s = DepthToSpace {
                blocksize: 2,
                mode: mode.into(),
            };
            let s2d = SpaceToDepth {
                blocksize: 2,
                mode: mode.into(),
            };
            struct R;
            impl crate::op::SubgraphRunner for R {
                fn run(&mut self, _: &crate::Graph, _: Vec<Tensor>) -> Result<Vec<Tensor>> {
                    unreachable!()
                }
            }
            let mut r = R;
            let mut cx = EvalCx {
                num_outputs: 1,
                runner: &mut r,
            };
            let y = d2s.eval(&mut cx, &[Some(&x)]).unwrap();
            assert_eq!(y[0].shape(), &[1, 2, 2, 4]);
            let z = s2d.eval(&mut cx, &[Some(&y[0])]).unwrap();
            assert_eq!(z[0], x, "{mode}");
        }
    }
}
