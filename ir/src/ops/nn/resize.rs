//! Resizing: `Resize` (all modes and coordinate transforms) and the older `Upsample`.

use crate::onnx::attrs::NodeCtx;
use crate::op::{opt, req, Attr, EvalCx, InferCx, Op};
use crate::shape::{Dim, ValueType};
use crate::tensor::Tensor;
use crate::{eval_err, DType, Result};
use ndarray::{ArrayD, IxDyn};
use serde::{Deserialize, Serialize};
use std::any::Any;

/// Interpolation settings shared by `Resize` and `Upsample`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Interp {
    pub mode: String,
    pub coord: String,
    pub nearest_mode: String,
    pub cubic_coeff_a: f32,
    pub exclude_outside: bool,
    pub extrapolation_value: f32,
    pub antialias: bool,
}

/// Source coordinate of output index `y` along one axis (the `coordinate_transformation_mode`
/// of `it`). Shared with the CPU backend, which computes taps at compile time.
pub fn source_coord(
    it: &Interp,
    y: usize,
    scale: f64,
    in_n: usize,
    out_n: usize,
    roi: (f64, f64),
) -> f64 {
    let y = y as f64;
    let inw = in_n as f64;
    let outw = scale * inw;
    match it.coord.as_str() {
        "align_corners" => {
            if outw == 1.0 {
                0.0
            } else {
                y * (inw - 1.0) / (outw - 1.0)
            }
        }
        "asymmetric" => y / scale,
        "tf_half_pixel_for_nn" => (y + 0.5) / scale,
        "tf_crop_and_resize" => {
            let x = if outw == 1.0 {
                (roi.1 - roi.0) * (inw - 1.0) / 2.0
            } else {
                y * (roi.1 - roi.0) * (inw - 1.0) / (outw - 1.0)
            };
            x + roi.0 * (inw - 1.0)
        }
        "pytorch_half_pixel" => {
            if outw == 1.0 {
                -0.5
            } else {
                (y + 0.5) / scale - 0.5
            }
        }
        "half_pixel_symmetric" => {
            let adj = out_n as f64 / outw;
            let offset = inw / 2.0 * (1.0 - adj);
            offset + (y + 0.5) / scale - 0.5
        }
        _ => (y + 0.5) / scale - 0.5,
    }
}

/// The cubic convolution kernel with coefficient `a`.
pub fn cubic(t: f64, a: f64) -> f64 {
    let t = t.abs();
    if t <= 1.0 {
        ((a + 2.0) * t - (a + 3.0)) * t * t + 1.0
    } else if t < 2.0 {
        ((a * t - 5.0 * a) * t + 8.0 * a) * t - 4.0 * a
    } else {
        0.0
    }
}

/// Taps of one output position: `None` for an extrapolated position, else `(index, weight)`s
/// with indices clamped into the input. The CPU backend lowers Resize with these same taps.
pub fn taps_1d(
    it: &Interp,
    y: usize,
    scale: f64,
    in_n: usize,
    out_n: usize,
    roi: (f64, f64),
) -> Option<Vec<(usize, f64)>> {
    let x = source_coord(it, y, scale, in_n, out_n, roi);
    if it.coord == "tf_crop_and_resize" && (x < 0.0 || x > in_n as f64 - 1.0) {
        return None;
    }
    let last = in_n.saturating_sub(1) as i64;
    let clamp = |i: i64| i.clamp(0, last) as usize;
    let fl = x.floor();
    let frac = x - fl;
    let fl = fl as i64;
    if it.mode == "nearest" {
        let up = frac != 0.0
            && match it.nearest_mode.as_str() {
                "round_prefer_ceil" => frac >= 0.5,
                "floor" => false,
                "ceil" => true,
                _ => frac > 0.5,
            };
        return Some(vec![(clamp(fl + up as i64), 1.0)]);
    }
    let (support, a) = if it.mode == "cubic" {
        (2.0, it.cubic_coeff_a as f64)
    } else {
        (1.0, 0.0)
    };
    let s = if it.antialias { scale.min(1.0) } else { 1.0 };
    let start = (-support / s).floor() as i64 + 1;
    let n = 2 - 2 * start;
    let first = if frac == 0.0 {
        fl + start - 1
    } else {
        fl + start
    };
    let mut w: Vec<(i64, f64)> = (0..n)
        .map(|j| {
            let i = first + j;
            let t = (i as f64 - x) * s;
            let k = if it.mode == "cubic" {
                cubic(t, a)
            } else {
                (1.0 - t.abs()).max(0.0)
            };
            (i, k)
        })
        .collect();
    if it.antialias {
        let sum: f64 = w.iter().map(|p| p.1).sum();
        if sum != 0.0 {
            w.iter_mut().for_each(|p| p.1 /= sum);
        }
    }
    if it.exclude_outside {
        for p in w.iter_mut() {
            if p.0 < 0 || p.0 > last {
                p.1 = 0.0;
            }
        }
        let sum: f64 = w.iter().map(|p| p.1).sum();
        if sum != 0.0 {
            w.iter_mut().for_each(|p| p.1 /= sum);
        }
    }
    Some(w.into_iter().map(|(i, k)| (clamp(i), k)).collect())
}

/// Resizes flat row-major data of `shape` along `axis` to `out_n`.
fn resize_axis(
    it: &Interp,
    data: &[f64],
    shape: &[usize],
    axis: usize,
    out_n: usize,
    scale: f64,
    roi: (f64, f64),
) -> Vec<f64> {
    let in_n = shape[axis];
    let outer: usize = shape[..axis].iter().product();
    let inner: usize = shape[axis + 1..].iter().product();
    let taps: Vec<Option<Vec<(usize, f64)>>> = (0..out_n)
        .map(|y| taps_1d(it, y, scale, in_n, out_n, roi))
        .collect();
    let ev = it.extrapolation_value as f64;
    let mut out = vec![0.0; outer * out_n * inner];
    for o in 0..outer {
        for (y, t) in taps.iter().enumerate() {
            let ob = (o * out_n + y) * inner;
            match t {
                None => out[ob..ob + inner].iter_mut().for_each(|v| *v = ev),
                Some(t) => {
                    for &(i, w) in t {
                        let ib = (o * in_n + i) * inner;
                        for k in 0..inner {
                            out[ob + k] += w * data[ib + k];
                        }
                    }
                }
            }
        }
    }
    out
}

/// Resizes `x` to `out` sizes with per-axis `scales` and (full-rank) `roi`.
fn resize_nd(
    it: &Interp,
    x: &Tensor,
    scales: &[f64],
    out: &[usize],
    roi: Option<&[f64]>,
) -> Result<Tensor> {
    let r = x.rank();
    let mut shape = x.shape().to_vec();
    if shape.contains(&0) && !out.contains(&0) {
        return Err(eval_err!(
            "Resize: cannot resize an empty tensor to {out:?}"
        ));
    }
    let mut data: Vec<f64> = x.to_f()?.iter().copied().collect();
    for ax in 0..r {
        let axroi = roi.map(|v| (v[ax], v[ax + r])).unwrap_or((0.0, 1.0));
        let ident = (scales[ax] - 1.0).abs() < 1e-9
            && out[ax] == shape[ax]
            && (axroi.0.abs() < 1e-9 && (axroi.1 - 1.0).abs() < 1e-9);
        if ident {
            continue;
        }
        data = resize_axis(it, &data, &shape, ax, out[ax], scales[ax], axroi);
        shape[ax] = out[ax];
    }
    let a = ArrayD::from_shape_vec(IxDyn(&shape), data).map_err(|e| eval_err!("{e}"))?;
    Ok(match x.dtype().int_range() {
        Some((lo, hi)) => Tensor::int(
            x.dtype(),
            a.mapv(|v| v.round_ties_even().clamp(lo as f64, hi as f64) as i128),
        ),
        None => Tensor::from_f64_as(x.dtype(), a),
    })
}

/// The scales and sizes inputs, where given.
type ScalesSizes = (Option<Vec<f64>>, Option<Vec<i64>>);

/// Image resize (opsets 10-19).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Resize {
    pub interp: Interp,
    pub axes: Option<Vec<i64>>,
    pub keep_aspect_ratio_policy: String,
    /// Opset 10 form: inputs `(X, scales)`.
    pub legacy: bool,
}

pub fn build_resize(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    let legacy = cx.opset < 11;
    let mode = cx.s("mode", "nearest")?;
    if !matches!(mode.as_str(), "nearest" | "linear" | "cubic") {
        return Err(cx.invalid("mode", "must be nearest, linear or cubic"));
    }
    let coord = cx.s(
        "coordinate_transformation_mode",
        if legacy { "asymmetric" } else { "half_pixel" },
    )?;
    if !matches!(
        coord.as_str(),
        "half_pixel"
            | "half_pixel_symmetric"
            | "pytorch_half_pixel"
            | "align_corners"
            | "asymmetric"
            | "tf_crop_and_resize"
            | "tf_half_pixel_for_nn"
    ) {
        return Err(cx.invalid("coordinate_transformation_mode", "unknown mode"));
    }
    let nearest_mode = cx.s(
        "nearest_mode",
        if legacy {
            "floor"
        } else {
            "round_prefer_floor"
        },
    )?;
    if !matches!(
        nearest_mode.as_str(),
        "round_prefer_floor" | "round_prefer_ceil" | "floor" | "ceil"
    ) {
        return Err(cx.invalid("nearest_mode", "unknown mode"));
    }
    let policy = cx.s("keep_aspect_ratio_policy", "stretch")?;
    if !matches!(policy.as_str(), "stretch" | "not_larger" | "not_smaller") {
        return Err(cx.invalid(
            "keep_aspect_ratio_policy",
            "must be stretch, not_larger or not_smaller",
        ));
    }
    Ok(Box::new(Resize {
        interp: Interp {
            mode,
            coord,
            nearest_mode,
            cubic_coeff_a: cx.f("cubic_coeff_a", -0.75)?,
            exclude_outside: cx.i("exclude_outside", 0)? != 0,
            extrapolation_value: cx.f("extrapolation_value", 0.0)?,
            antialias: cx.i("antialias", 0)? != 0,
        },
        axes: cx.ints("axes")?,
        keep_aspect_ratio_policy: policy,
        legacy,
    }))
}

impl Resize {
    fn axes(&self, r: usize) -> Result<Vec<usize>> {
        match &self.axes {
            None => Ok((0..r).collect()),
            Some(a) => {
                let v: Vec<usize> = a
                    .iter()
                    .map(|&x| crate::op::norm_axis(x, r))
                    .collect::<Result<_>>()?;
                let mut s = v.clone();
                s.sort();
                s.dedup();
                if s.len() != v.len() {
                    return Err(eval_err!("Resize: axes {a:?} repeat an axis"));
                }
                Ok(v)
            }
        }
    }

    /// Full-rank output sizes and scales from the scales or sizes input.
    fn plan(
        &self,
        in_shape: &[usize],
        scales: Option<&[f64]>,
        sizes: Option<&[i64]>,
    ) -> Result<(Vec<usize>, Vec<f64>)> {
        let r = in_shape.len();
        let axes = self.axes(r)?;
        let mut sc = vec![1.0; r];
        let mut out = in_shape.to_vec();
        if let Some(s) = scales.filter(|s| !s.is_empty()) {
            if s.len() != axes.len() {
                return Err(eval_err!(
                    "Resize: {} scales for {} axes",
                    s.len(),
                    axes.len()
                ));
            }
            for (&a, &v) in axes.iter().zip(s) {
                if v <= 0.0 || !v.is_finite() {
                    return Err(eval_err!("Resize: scale {v} must be positive"));
                }
                sc[a] = v;
                out[a] = (v * in_shape[a] as f64) as usize;
            }
            return Ok((out, sc));
        }
        let Some(sz) = sizes.filter(|s| !s.is_empty()) else {
            return Err(eval_err!("Resize: one of scales and sizes must be given"));
        };
        if sz.len() != axes.len() {
            return Err(eval_err!(
                "Resize: {} sizes for {} axes",
                sz.len(),
                axes.len()
            ));
        }
        for (&a, &v) in axes.iter().zip(sz) {
            if v < 0 {
                return Err(eval_err!("Resize: negative size {v}"));
            }
            out[a] = v as usize;
            sc[a] = v as f64 / in_shape[a] as f64;
        }
        if self.keep_aspect_ratio_policy != "stretch" {
            let it = axes.iter().map(|&a| sc[a]);
            let s = if self.keep_aspect_ratio_policy == "not_larger" {
                it.fold(f64::INFINITY, f64::min)
            } else {
                it.fold(f64::NEG_INFINITY, f64::max)
            };
            for &a in &axes {
                sc[a] = s;
                out[a] = (s * in_shape[a] as f64 + 0.5) as usize;
            }
        }
        Ok((out, sc))
    }

    fn scales_sizes<'t>(&self, get: impl Fn(usize) -> Option<&'t Tensor>) -> Result<ScalesSizes> {
        let (si, zi) = if self.legacy { (1, 99) } else { (2, 3) };
        let scales = get(si).map(|t| t.to_f64_vec()).transpose()?;
        let sizes = get(zi).map(|t| t.to_i64_vec()).transpose()?;
        Ok((scales, sizes))
    }
}

#[typetag::serde]
impl Op for Resize {
    fn op_type(&self) -> &str {
        "Resize"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let x = cx.input(0)?;
        let Some(xs) = &x.shape else {
            return Ok(vec![ValueType::unranked(x.dtype)]);
        };
        let (si, zi) = if self.legacy { (1, 99) } else { (2, 3) };
        let given = |i: usize| cx.opt_input(i).is_some();
        let known = |i: usize| !given(i) || cx.value(i).is_some();
        if known(si) && known(zi) {
            if let Ok((scales, sizes)) = self.scales_sizes(|i| cx.value(i)) {
                if let Some(ins) = crate::shape::shape_known(xs) {
                    if let Ok((out, _)) = self.plan(&ins, scales.as_deref(), sizes.as_deref()) {
                        return Ok(vec![ValueType::known(x.dtype, &out)]);
                    }
                }
                // Symbolic input: axes whose scale is 1 keep their size.
                if let (Some(s), None, Ok(axes)) = (&scales, &sizes, self.axes(xs.len())) {
                    if s.len() == axes.len() {
                        let mut out = xs.clone();
                        for (&a, &v) in axes.iter().zip(s) {
                            if v != 1.0 {
                                out[a] = match xs[a].known() {
                                    Some(d) => Dim::from((v * d as f64) as usize),
                                    None => cx.fresh_dim(),
                                };
                            }
                        }
                        return Ok(vec![ValueType::new(x.dtype, out)]);
                    }
                }
            }
        }
        Ok(vec![ValueType::new(x.dtype, cx.fresh_shape(xs.len()))])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        if x.dtype() == DType::Bool || x.dtype() == DType::String {
            return Err(eval_err!("Resize: unsupported input type {}", x.dtype()));
        }
        let (scales, sizes) = self.scales_sizes(|i| opt(inputs, i))?;
        let (out, sc) = self.plan(x.shape(), scales.as_deref(), sizes.as_deref())?;
        let r = x.rank();
        let roi = if !self.legacy && self.interp.coord == "tf_crop_and_resize" {
            let v = opt(inputs, 1)
                .map(|t| t.to_f64_vec())
                .transpose()?
                .unwrap_or_default();
            let axes = self.axes(r)?;
            if v.len() != 2 * axes.len() {
                return Err(eval_err!(
                    "Resize: roi has {} values, expected {}",
                    v.len(),
                    2 * axes.len()
                ));
            }
            let mut full = vec![0.0; r];
            full.extend(vec![1.0; r]);
            for (i, &a) in axes.iter().enumerate() {
                full[a] = v[i];
                full[a + r] = v[i + axes.len()];
            }
            Some(full)
        } else {
            None
        };
        Ok(vec![resize_nd(&self.interp, x, &sc, &out, roi.as_deref())?])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        let it = &self.interp;
        let mut v = vec![("mode", Attr::Str(it.mode.clone()))];
        if self.legacy {
            return v;
        }
        v.push((
            "coordinate_transformation_mode",
            Attr::Str(it.coord.clone()),
        ));
        v.push(("nearest_mode", Attr::Str(it.nearest_mode.clone())));
        v.push(("cubic_coeff_a", Attr::Float(it.cubic_coeff_a)));
        if it.exclude_outside {
            v.push(("exclude_outside", Attr::Int(1)));
        }
        if it.extrapolation_value != 0.0 {
            v.push(("extrapolation_value", Attr::Float(it.extrapolation_value)));
        }
        if it.antialias {
            v.push(("antialias", Attr::Int(1)));
        }
        if let Some(a) = &self.axes {
            v.push(("axes", Attr::Ints(a.clone())));
        }
        if self.keep_aspect_ratio_policy != "stretch" {
            v.push((
                "keep_aspect_ratio_policy",
                Attr::Str(self.keep_aspect_ratio_policy.clone()),
            ));
        }
        v
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Upsampling by per-axis scales (opsets 7-9; deprecated in favour of `Resize`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Upsample {
    pub mode: String,
    /// Opset 7 carries the scales as an attribute.
    pub scales: Option<Vec<f32>>,
}

pub fn build_upsample(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    let mode = cx.s("mode", "nearest")?;
    let mode = if mode == "bilinear" {
        "linear".to_string()
    } else {
        mode
    };
    if !matches!(mode.as_str(), "nearest" | "linear") {
        return Err(cx.invalid("mode", "must be nearest or linear"));
    }
    Ok(Box::new(Upsample {
        mode,
        scales: cx.floats("scales")?,
    }))
}

impl Upsample {
    fn scales(&self, t: Option<&Tensor>) -> Result<Vec<f64>> {
        match (&self.scales, t) {
            (_, Some(t)) => t.to_f64_vec(),
            (Some(s), None) => Ok(s.iter().map(|&v| v as f64).collect()),
            _ => Err(eval_err!("Upsample: scales are missing")),
        }
    }
}

#[typetag::serde]
impl Op for Upsample {
    fn op_type(&self) -> &str {
        "Upsample"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let x = cx.input(0)?;
        let Some(xs) = &x.shape else {
            return Ok(vec![ValueType::unranked(x.dtype)]);
        };
        let sc = if cx.opt_input(1).is_some() {
            cx.value(1).and_then(|t| t.to_f64_vec().ok())
        } else {
            self.scales(None).ok()
        };
        let out = match sc {
            Some(s) if s.len() == xs.len() => xs
                .iter()
                .zip(&s)
                .map(|(d, &v)| match d.known() {
                    Some(k) => Dim::from((v * k as f64) as usize),
                    None if v == 1.0 => d.clone(),
                    None => cx.fresh_dim(),
                })
                .collect(),
            _ => cx.fresh_shape(xs.len()),
        };
        Ok(vec![ValueType::new(x.dtype, out)])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let sc = self.scales(opt(inputs, 1))?;
        if sc.len() != x.rank() || sc.iter().any(|&v| v <= 0.0 || !v.is_finite()) {
            return Err(eval_err!(
                "Upsample: scales {sc:?} must be {} positive values",
                x.rank()
            ));
        }
        let out: Vec<usize> = x
            .shape()
            .iter()
            .zip(&sc)
            .map(|(&d, &s)| (d as f64 * s) as usize)
            .collect();
        let it = Interp {
            mode: self.mode.clone(),
            coord: "asymmetric".into(),
            nearest_mode: "floor".into(),
            cubic_coeff_a: -0.75,
            exclude_outside: false,
            extrapolation_value: 0.0,
            antialias: false,
        };
        Ok(vec![resize_nd(&it, x, &sc, &out, None)?])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        let mut v = vec![("mode", Attr::Str(self.mode.clone()))];
        if let Some(s) = &self.scales {
            v.push(("scales", Attr::Floats(s.clone())));
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

    fn interp(mode: &str, coord: &str) -> Interp {
        Interp {
            mode: mode.into(),
            coord: coord.into(),
            nearest_mode: "round_prefer_floor".into(),
            cubic_coeff_a: -0.75,
            exclude_outside: false,
            extrapolation_value: 0.0,
            antialias: false,
        }
    }

    #[test]
    fn linear_half_pixel_upsample() {
        let it = interp("linear", "half_pixel");
        // in [1, 2] -> 4 outputs: x_ori = -0.25, 0.25, 0.75, 1.25 (edge-clamped).
        let y = resize_axis(&it, &[1.0, 2.0], &[2], 0, 4, 2.0, (0.0, 1.0));
        assert_eq!(y, vec![1.0, 1.25, 1.75, 2.0]);
    }

    #[test]
    fn antialias_linear_downsample_averages() {
        let mut it = interp("linear", "half_pixel");
        it.antialias = true;
        // Scale 1/2: each output is a triangle filter of width 4 around x_ori = 0.5 and 2.5.
        let y = resize_axis(&it, &[0.0, 4.0, 8.0, 12.0], &[4], 0, 2, 0.5, (0.0, 1.0));
        assert!(
            (y[0] - 2.5).abs() < 1e-12 && (y[1] - 9.5).abs() < 1e-12,
            "{y:?}"
        );
    }
}
