//! Spatial sampling: `GridSample`, `AffineGrid`, `RoiAlign`.

use super::geom::unflatten;
use crate::onnx::attrs::NodeCtx;
use crate::op::{req, Attr, EvalCx, InferCx, Op};
use crate::shape::{Dim, ValueType};
use crate::tensor::Tensor;
use crate::{eval_err, DType, Result};
use ndarray::{ArrayD, IxDyn};
use serde::{Deserialize, Serialize};
use std::any::Any;

fn flat(t: &Tensor) -> Result<Vec<f64>> {
    Ok(t.to_f()?.iter().copied().collect())
}

fn arr(shape: &[usize], v: Vec<f64>) -> Result<ArrayD<f64>> {
    ArrayD::from_shape_vec(IxDyn(shape), v).map_err(|e| eval_err!("internal: {e}"))
}

/// Samples an input at grid locations (normalized to [-1, 1]) with nearest, linear or cubic
/// interpolation; 2-D and 3-D.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GridSample {
    /// `nearest`, `linear` or `cubic` (older spellings `bilinear`/`bicubic` are normalised).
    pub mode: String,
    pub padding_mode: String,
    pub align_corners: bool,
    /// The spelling the model used, for export.
    pub mode_attr: String,
}

pub fn build_grid_sample(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    let def = if cx.opset < 20 { "bilinear" } else { "linear" };
    let mode_attr = cx.s("mode", def)?;
    let mode = match mode_attr.as_str() {
        "bilinear" | "linear" => "linear",
        "bicubic" | "cubic" => "cubic",
        "nearest" => "nearest",
        _ => return Err(cx.invalid("mode", "must be linear, nearest or cubic")),
    }
    .to_string();
    let padding_mode = cx.s("padding_mode", "zeros")?;
    if !matches!(padding_mode.as_str(), "zeros" | "border" | "reflection") {
        return Err(cx.invalid("padding_mode", "must be zeros, border or reflection"));
    }
    Ok(Box::new(GridSample {
        mode,
        padding_mode,
        align_corners: cx.i("align_corners", 0)? != 0,
        mode_attr,
    }))
}

/// Reflects `x` into `[lo, hi]`.
fn reflect(x: f64, lo: f64, hi: f64) -> f64 {
    let rng = hi - lo;
    if rng <= 0.0 {
        return lo;
    }
    if x < lo {
        let dx = lo - x;
        let n = (dx / rng).trunc();
        let r = dx - n * rng;
        if n as i64 % 2 == 0 {
            lo + r
        } else {
            hi - r
        }
    } else if x > hi {
        let dx = x - hi;
        let n = (dx / rng).trunc();
        let r = dx - n * rng;
        if n as i64 % 2 == 0 {
            hi - r
        } else {
            lo + r
        }
    } else {
        x
    }
}

fn cubic_coeffs(t: f64) -> [f64; 4] {
    let a = -0.75;
    let k = |x: f64| -> f64 {
        let x = x.abs();
        if x <= 1.0 {
            ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
        } else if x < 2.0 {
            ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a
        } else {
            0.0
        }
    };
    [k(t + 1.0), k(t), k(1.0 - t), k(2.0 - t)]
}

impl GridSample {
    /// The pixel at integer index `idx` with the padding rule (`None`: zero).
    fn pixel(&self, plane: &[f64], dims: &[usize], idx: &[i64], border: &[(f64, f64)]) -> f64 {
        let mut off = 0usize;
        for (j, (&i, &d)) in idx.iter().zip(dims).enumerate() {
            let i = match self.padding_mode.as_str() {
                "zeros" => {
                    if i < 0 || i >= d as i64 {
                        return 0.0;
                    }
                    i
                }
                "border" => i.clamp(0, d as i64 - 1),
                _ => (reflect(i as f64, border[j].0, border[j].1) as i64).clamp(0, d as i64 - 1),
            };
            off = off * d + i as usize;
        }
        plane[off]
    }

    fn sample(&self, plane: &[f64], dims: &[usize], coords: &[f64]) -> f64 {
        let nd = dims.len();
        let border: Vec<(f64, f64)> = dims
            .iter()
            .map(|&d| {
                if self.align_corners {
                    (0.0, d as f64 - 1.0)
                } else {
                    (-0.5, d as f64 - 0.5)
                }
            })
            .collect();
        let mut x: Vec<f64> = coords.to_vec();
        if self.mode == "nearest" {
            x.iter_mut().for_each(|v| *v = v.round_ties_even());
        }
        for (j, v) in x.iter_mut().enumerate() {
            let (lo, hi) = border[j];
            if *v < lo || *v > hi {
                match self.padding_mode.as_str() {
                    "border" => *v = v.clamp(0.0, dims[j] as f64 - 1.0),
                    "reflection" => *v = reflect(*v, lo, hi),
                    _ => {}
                }
            }
        }
        if self.mode == "nearest" {
            let idx: Vec<i64> = x.iter().map(|v| v.trunc() as i64).collect();
            return self.pixel(plane, dims, &idx, &border);
        }
        let n: usize = if self.mode == "cubic" { 4 } else { 2 };
        let mut base = vec![0i64; nd];
        let mut w = vec![[0.0; 4]; nd];
        for j in 0..nd {
            let f = x[j].floor();
            let t = x[j] - f;
            if n == 4 {
                base[j] = f as i64 - 1;
                w[j] = cubic_coeffs(t);
            } else {
                base[j] = f as i64;
                w[j] = [1.0 - t, t, 0.0, 0.0];
            }
        }
        let mut acc = 0.0;
        let mut c = vec![0usize; nd];
        let mut idx = vec![0i64; nd];
        for corner in 0..n.pow(nd as u32) {
            unflatten(corner, &vec![n; nd], &mut c);
            let mut wt = 1.0;
            for j in 0..nd {
                wt *= w[j][c[j]];
                idx[j] = base[j] + c[j] as i64;
            }
            if wt != 0.0 {
                acc += wt * self.pixel(plane, dims, &idx, &border);
            }
        }
        acc
    }
}

#[typetag::serde]
impl Op for GridSample {
    fn op_type(&self) -> &str {
        "GridSample"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let x = cx.input(0)?;
        let g = cx.input(1)?;
        Ok(vec![match (&x.shape, &g.shape) {
            (Some(xs), Some(gs)) if xs.len() >= 3 && gs.len() == xs.len() => {
                let mut o = vec![xs[0].clone(), xs[1].clone()];
                o.extend(gs[1..gs.len() - 1].iter().cloned());
                ValueType::new(x.dtype, o)
            }
            (Some(xs), _) => ValueType::new(x.dtype, cx.fresh_shape(xs.len())),
            _ => ValueType::unranked(x.dtype),
        }])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let g = req(inputs, 1)?;
        let (xs, gs) = (x.shape(), g.shape());
        let nd = xs.len().saturating_sub(2);
        if nd == 0 || gs.len() != xs.len() || gs[0] != xs[0] || gs[gs.len() - 1] != nd {
            return Err(eval_err!(
                "GridSample: input {xs:?} and grid {gs:?} must be (N, C, D...) and (N, D_out..., {nd})"
            ));
        }
        if xs[2..].contains(&0) {
            return Err(eval_err!("GridSample: input has an empty spatial axis"));
        }
        let (n, c) = (xs[0], xs[1]);
        let dims = &xs[2..];
        let iv: usize = dims.iter().product();
        let osp = &gs[1..gs.len() - 1];
        let ov: usize = osp.iter().product();
        let xv = flat(x)?;
        let gv = flat(g)?;
        let mut y = vec![0.0; n * c * ov];
        let mut coords = vec![0.0; nd];
        for b in 0..n {
            for o in 0..ov {
                let gp = &gv[(b * ov + o) * nd..(b * ov + o + 1) * nd];
                // The grid lists (x, y[, z]): the last component indexes the first spatial axis.
                for j in 0..nd {
                    let v = gp[nd - 1 - j];
                    let d = dims[j] as f64;
                    coords[j] = if self.align_corners {
                        (v + 1.0) / 2.0 * (d - 1.0)
                    } else {
                        ((v + 1.0) * d - 1.0) / 2.0
                    };
                }
                for ci in 0..c {
                    let plane = &xv[(b * c + ci) * iv..(b * c + ci + 1) * iv];
                    y[(b * c + ci) * ov + o] = self.sample(plane, dims, &coords);
                }
            }
        }
        let mut shape = vec![n, c];
        shape.extend(osp);
        Ok(vec![Tensor::from_f64_as(x.dtype(), arr(&shape, y)?)])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        vec![
            ("mode", Attr::Str(self.mode_attr.clone())),
            ("padding_mode", Attr::Str(self.padding_mode.clone())),
            ("align_corners", Attr::Int(self.align_corners as i64)),
        ]
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Sampling grids `(N, H, W, 2)` / `(N, D, H, W, 3)` from affine matrices `theta`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AffineGrid {
    pub align_corners: bool,
}

pub fn build_affine_grid(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    Ok(Box::new(AffineGrid {
        align_corners: cx.i("align_corners", 0)? != 0,
    }))
}

#[typetag::serde]
impl Op for AffineGrid {
    fn op_type(&self) -> &str {
        "AffineGrid"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let t = cx.input(0)?;
        if let Some(size) = cx.value(1) {
            let s = size.to_i64_vec()?;
            if s.len() == 4 || s.len() == 5 {
                let mut o: Vec<Dim> = vec![Dim::from(s[0].max(0) as usize)];
                o.extend(s[2..].iter().map(|&d| Dim::from(d.max(0) as usize)));
                o.push(Dim::from(s.len() - 2));
                return Ok(vec![ValueType::new(t.dtype, o)]);
            }
        }
        let r = cx.input(1)?.shape.as_ref().and_then(|s| s.first()?.known());
        Ok(vec![match r {
            Some(r) if r >= 3 => {
                let mut o = cx.fresh_shape(r as usize - 1);
                o.push(Dim::from(r as usize - 2));
                ValueType::new(t.dtype, o)
            }
            _ => ValueType::unranked(t.dtype),
        }])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let theta = req(inputs, 0)?;
        let size = req(inputs, 1)?.to_i64_vec()?;
        let nd = size.len().saturating_sub(2);
        if !(nd == 2 || nd == 3) || size.iter().any(|&v| v < 0) {
            return Err(eval_err!(
                "AffineGrid: size {size:?} must be (N, C, H, W) or (N, C, D, H, W)"
            ));
        }
        let n = size[0] as usize;
        let sp: Vec<usize> = size[2..].iter().map(|&v| v as usize).collect();
        if theta.shape() != [n, nd, nd + 1] {
            return Err(eval_err!(
                "AffineGrid: theta must be {:?}, got {:?}",
                [n, nd, nd + 1],
                theta.shape()
            ));
        }
        let tv = flat(theta)?;
        let base = |i: usize, d: usize| -> f64 {
            if self.align_corners {
                if d <= 1 {
                    -1.0
                } else {
                    -1.0 + 2.0 * i as f64 / (d - 1) as f64
                }
            } else {
                -1.0 + (2 * i + 1) as f64 / d as f64
            }
        };
        let ov: usize = sp.iter().product();
        let mut y = Vec::with_capacity(n * ov * nd);
        let mut ix = vec![0; nd];
        for b in 0..n {
            let th = &tv[b * nd * (nd + 1)..(b + 1) * nd * (nd + 1)];
            for o in 0..ov {
                unflatten(o, &sp, &mut ix);
                // Homogeneous point (x, y[, z], 1): x follows the last spatial axis.
                let mut p: Vec<f64> = (0..nd)
                    .map(|j| base(ix[nd - 1 - j], sp[nd - 1 - j]))
                    .collect();
                p.push(1.0);
                for r in 0..nd {
                    y.push((0..=nd).map(|k| th[r * (nd + 1) + k] * p[k]).sum());
                }
            }
        }
        let mut shape = vec![n];
        shape.extend(&sp);
        shape.push(nd);
        Ok(vec![Tensor::from_f64_as(theta.dtype(), arr(&shape, y)?)])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        vec![("align_corners", Attr::Int(self.align_corners as i64))]
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Region-of-interest align: bilinear-sampled average or max pooling of each ROI into
/// `(output_height, output_width)` bins.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RoiAlign {
    pub half_pixel: bool,
    pub mode: String,
    pub output_height: usize,
    pub output_width: usize,
    pub sampling_ratio: i64,
    pub spatial_scale: f32,
    /// Opset 10 has no `coordinate_transformation_mode` attribute.
    pub legacy: bool,
}

pub fn build_roi_align(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    let legacy = cx.opset < 16;
    let ctm = cx.s(
        "coordinate_transformation_mode",
        if legacy {
            "output_half_pixel"
        } else {
            "half_pixel"
        },
    )?;
    if ctm != "half_pixel" && ctm != "output_half_pixel" {
        return Err(cx.invalid(
            "coordinate_transformation_mode",
            "must be half_pixel or output_half_pixel",
        ));
    }
    let mode = cx.s("mode", "avg")?;
    if mode != "avg" && mode != "max" {
        return Err(cx.invalid("mode", "must be avg or max"));
    }
    let oh = cx.i("output_height", 1)?;
    let ow = cx.i("output_width", 1)?;
    if oh <= 0 || ow <= 0 {
        return Err(cx.invalid("output_height", "output sizes must be positive"));
    }
    Ok(Box::new(RoiAlign {
        half_pixel: ctm == "half_pixel",
        mode,
        output_height: oh as usize,
        output_width: ow as usize,
        sampling_ratio: cx.i("sampling_ratio", 0)?,
        spatial_scale: cx.f("spatial_scale", 1.0)?,
        legacy: legacy && !cx.has("coordinate_transformation_mode"),
    }))
}

#[typetag::serde]
impl Op for RoiAlign {
    fn op_type(&self) -> &str {
        "RoiAlign"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let x = cx.input(0)?;
        let r = cx
            .input(1)?
            .shape
            .as_ref()
            .and_then(|s| s.first().cloned())
            .unwrap_or_else(|| cx.fresh_dim());
        let c = x
            .shape
            .as_ref()
            .and_then(|s| s.get(1).cloned())
            .unwrap_or_else(|| cx.fresh_dim());
        Ok(vec![ValueType::new(
            x.dtype,
            vec![
                r,
                c,
                Dim::from(self.output_height),
                Dim::from(self.output_width),
            ],
        )])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let rois = req(inputs, 1)?;
        let bi = req(inputs, 2)?.to_i64_vec()?;
        let xs = x.shape();
        if xs.len() != 4 || rois.rank() != 2 || rois.shape()[1] != 4 || bi.len() != rois.shape()[0]
        {
            return Err(eval_err!(
                "RoiAlign: X {xs:?}, rois {:?} and batch_indices ({}) must be (N, C, H, W), (R, 4), (R)",
                rois.shape(),
                bi.len()
            ));
        }
        let (n, c, h, w) = (xs[0], xs[1], xs[2], xs[3]);
        let (oh, ow) = (self.output_height, self.output_width);
        let rv = flat(rois)?;
        let xv = flat(x)?;
        let nr = bi.len();
        let scale = self.spatial_scale as f64;
        let mut y = vec![0.0; nr * c * oh * ow];
        let (hf, wf) = (h as f64, w as f64);
        for r in 0..nr {
            let b = bi[r];
            if b < 0 || b as usize >= n {
                return Err(eval_err!("RoiAlign: batch index {b} out of range"));
            }
            let b = b as usize;
            let off = if self.half_pixel { 0.5 } else { 0.0 };
            let sw = rv[r * 4] * scale - off;
            let sh = rv[r * 4 + 1] * scale - off;
            let mut rw = rv[r * 4 + 2] * scale - off - sw;
            let mut rh = rv[r * 4 + 3] * scale - off - sh;
            if !self.half_pixel {
                rw = rw.max(1.0);
                rh = rh.max(1.0);
            }
            let (bh, bw) = (rh / oh as f64, rw / ow as f64);
            let gh = if self.sampling_ratio > 0 {
                self.sampling_ratio as usize
            } else {
                (rh / oh as f64).ceil().max(0.0) as usize
            };
            let gw = if self.sampling_ratio > 0 {
                self.sampling_ratio as usize
            } else {
                (rw / ow as f64).ceil().max(0.0) as usize
            };
            let count = (gh * gw).max(1) as f64;
            for ph in 0..oh {
                for pw in 0..ow {
                    // Sample points: (positions, weights) of the 4 neighbours each.
                    let mut samples: Vec<[(usize, f64); 4]> = Vec::with_capacity(gh * gw);
                    for iy in 0..gh {
                        let yy = sh + ph as f64 * bh + (iy as f64 + 0.5) * bh / gh as f64;
                        for ix in 0..gw {
                            let xx = sw + pw as f64 * bw + (ix as f64 + 0.5) * bw / gw as f64;
                            if yy < -1.0 || yy > hf || xx < -1.0 || xx > wf || h == 0 || w == 0 {
                                samples.push([(0, 0.0); 4]);
                                continue;
                            }
                            let (mut yv, mut xv2) = (yy.max(0.0), xx.max(0.0));
                            let (mut yl, mut xl) = (yv as usize, xv2 as usize);
                            let (yh, xh);
                            if yl >= h - 1 {
                                yl = h - 1;
                                yh = h - 1;
                                yv = yl as f64;
                            } else {
                                yh = yl + 1;
                            }
                            if xl >= w - 1 {
                                xl = w - 1;
                                xh = w - 1;
                                xv2 = xl as f64;
                            } else {
                                xh = xl + 1;
                            }
                            let (ly, lx) = (yv - yl as f64, xv2 - xl as f64);
                            let (hy, hx) = (1.0 - ly, 1.0 - lx);
                            samples.push([
                                (yl * w + xl, hy * hx),
                                (yl * w + xh, hy * lx),
                                (yh * w + xl, ly * hx),
                                (yh * w + xh, ly * lx),
                            ]);
                        }
                    }
                    for ci in 0..c {
                        let plane = &xv[(b * c + ci) * h * w..(b * c + ci + 1) * h * w];
                        let v = if self.mode == "avg" {
                            samples
                                .iter()
                                .map(|s| s.iter().map(|&(p, wt)| wt * plane[p]).sum::<f64>())
                                .sum::<f64>()
                                / count
                        } else {
                            samples
                                .iter()
                                .map(|s| {
                                    s.iter()
                                        .map(|&(p, wt)| wt * plane[p])
                                        .fold(f64::NEG_INFINITY, f64::max)
                                })
                                .fold(f64::NEG_INFINITY, f64::max)
                        };
                        let v = if v.is_finite() || self.mode == "avg" {
                            v
                        } else {
                            0.0
                        };
                        y[((r * c + ci) * oh + ph) * ow + pw] = v;
                    }
                }
            }
        }
        let dt = if x.dtype().is_float() {
            x.dtype()
        } else {
            DType::F32
        };
        Ok(vec![Tensor::float(dt, arr(&[nr, c, oh, ow], y)?)])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        let mut v = vec![
            ("mode", Attr::Str(self.mode.clone())),
            ("output_height", Attr::Int(self.output_height as i64)),
            ("output_width", Attr::Int(self.output_width as i64)),
            ("sampling_ratio", Attr::Int(self.sampling_ratio)),
            ("spatial_scale", Attr::Float(self.spatial_scale)),
        ];
        if !self.legacy {
            let m = if self.half_pixel {
                "half_pixel"
            } else {
                "output_half_pixel"
            };
            v.push(("coordinate_transformation_mode", Attr::Str(m.into())));
        }
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
    fn reflect_folds_back() {
        assert_eq!(reflect(-1.0, 0.0, 3.0), 1.0);
        assert_eq!(reflect(4.0, 0.0, 3.0), 2.0);
        assert_eq!(reflect(7.0, 0.0, 3.0), 1.0);
    }

    #[test]
    fn grid_sample_linear_center() {
        let gs = GridSample {
            mode: "linear".into(),
            padding_mode: "zeros".into(),
            align_corners: true,
            mode_attr: "linear".into(),
        };
        // 2x2 plane, the centre averages all four pixels.
        assert_eq!(gs.sample(&[1.0, 2.0, 3.0, 4.0], &[2, 2], &[0.5, 0.5]), 2.5);
    }
}
