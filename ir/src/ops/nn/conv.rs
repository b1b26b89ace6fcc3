//! Convolutions: `Conv`, `ConvInteger`, `QLinearConv`, `ConvTranspose`, `DeformConv`.

use super::geom::{unflatten, Geom, WinAttrs};
use crate::onnx::attrs::NodeCtx;
use crate::op::{opt, req, Attr, EvalCx, InferCx, Op};
use crate::shape::{shape_known, Dim, ValueType};
use crate::tensor::Tensor;
use crate::{eval_err, DType, Result};
use ndarray::{ArrayD, IxDyn};
use serde::{Deserialize, Serialize};
use std::any::Any;

/// Reads `group` (positive).
fn read_group(cx: &NodeCtx<'_>) -> Result<usize> {
    let g = cx.i("group", 1)?;
    if g <= 0 {
        return Err(cx.invalid("group", "must be positive"));
    }
    Ok(g as usize)
}

pub fn build_conv(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    Ok(Box::new(Conv {
        win: WinAttrs::read(cx)?,
        group: read_group(cx)?,
    }))
}

pub fn build_conv_integer(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    Ok(Box::new(ConvInteger {
        win: WinAttrs::read(cx)?,
        group: read_group(cx)?,
    }))
}

pub fn build_qlinear_conv(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    Ok(Box::new(QLinearConv {
        win: WinAttrs::read(cx)?,
        group: read_group(cx)?,
    }))
}

pub fn build_conv_transpose(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    let output_padding = cx.ints("output_padding")?;
    if output_padding
        .as_ref()
        .is_some_and(|v| v.iter().any(|&x| x < 0))
    {
        return Err(cx.invalid("output_padding", "values must be non-negative"));
    }
    let output_shape = cx.ints("output_shape")?;
    if output_shape
        .as_ref()
        .is_some_and(|v| v.iter().any(|&x| x < 0))
    {
        return Err(cx.invalid("output_shape", "values must be non-negative"));
    }
    Ok(Box::new(ConvTranspose {
        win: WinAttrs::read(cx)?,
        group: read_group(cx)?,
        output_padding,
        output_shape,
    }))
}

pub fn build_deform_conv(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    let og = cx.i("offset_group", 1)?;
    if og <= 0 {
        return Err(cx.invalid("offset_group", "must be positive"));
    }
    Ok(Box::new(DeformConv {
        win: WinAttrs::read(cx)?,
        group: read_group(cx)?,
        offset_group: og as usize,
    }))
}

/// Output type of a convolution of input `xi` by weight `wi` (`(M, C/group, k...)`).
fn conv_infer(
    cx: &InferCx<'_>,
    win: &WinAttrs,
    xi: usize,
    wi: usize,
    dtype: DType,
) -> Result<ValueType> {
    let x = cx.input(xi)?;
    let w = cx.input(wi)?;
    let Some(xs) = &x.shape else {
        return Ok(ValueType::unranked(dtype));
    };
    if xs.len() < 3 {
        return Err(crate::infer_err!(
            "convolution input must have rank >= 3, got {}",
            xs.len()
        ));
    }
    let m = w
        .shape
        .as_ref()
        .and_then(|s| s.first().cloned())
        .unwrap_or_else(|| cx.fresh_dim());
    let k: Option<Vec<usize>> = match &win.kernel_shape {
        Some(k) => Some(k.iter().map(|&v| v.max(0) as usize).collect()),
        None => w
            .shape
            .as_ref()
            .and_then(|s| shape_known(s.get(2..).unwrap_or(&[]))),
    };
    let mut out = vec![xs[0].clone(), m];
    out.extend(win.infer_out(cx, &xs[2..], k.as_deref(), false));
    Ok(ValueType::new(dtype, out))
}

/// MACs of a convolution: output elements * prod(weight dims 1..) (= Cin/group * kernel volume).
fn conv_macs(inputs: &[Option<&ValueType>], outputs: &[ValueType], wi: usize) -> u64 {
    let out = outputs.first().and_then(|t| t.numel()).unwrap_or(0);
    let per = inputs
        .get(wi)
        .copied()
        .flatten()
        .and_then(|t| t.shape.as_ref())
        .and_then(|s| {
            s.iter()
                .skip(1)
                .try_fold(1u64, |a, d| a.checked_mul(d.known()?))
        })
        .unwrap_or(0);
    out.saturating_mul(per)
}

/// Checks shapes and resolves the geometry of a forward convolution.
fn conv_geom(win: &WinAttrs, group: usize, xs: &[usize], ws: &[usize], what: &str) -> Result<Geom> {
    if xs.len() < 3 || ws.len() != xs.len() {
        return Err(eval_err!(
            "{what}: input {xs:?} and weight {ws:?} must be (N, C, spatial...) and (M, C/group, kernel...)"
        ));
    }
    if ws[1] * group != xs[1] || !ws[0].is_multiple_of(group) {
        return Err(eval_err!(
            "{what}: input channels {} and weight {ws:?} do not match group {group}",
            xs[1]
        ));
    }
    let k = win.kernel(xs.len() - 2, Some(&ws[2..]))?;
    if k != ws[2..] {
        return Err(eval_err!(
            "{what}: kernel_shape {k:?} does not match the weight's {:?}",
            &ws[2..]
        ));
    }
    win.geom(&xs[2..], k, false)
        .map_err(|e| eval_err!("{what}: {e}"))
}

/// Direct convolution over flat row-major data: `x` is `(N, C, in...)`, `w` `(M, C/group,
/// k...)`; returns `(N, M, out...)` values (bias added).
fn conv_core(
    x: &[f64],
    xs: &[usize],
    w: &[f64],
    ws: &[usize],
    group: usize,
    g: &Geom,
    bias: Option<&[f64]>,
) -> Vec<f64> {
    let (n, c, m, cg) = (xs[0], xs[1], ws[0], ws[1]);
    let mg = m / group;
    let (iv, ov, kv) = (g.in_vol(), g.out_vol(), g.kvol());
    let mut y = vec![0.0; n * m * ov];
    let mut taps = Vec::new();
    for o in 0..ov {
        g.taps(o, &mut taps);
        for b in 0..n {
            for gi in 0..group {
                for mi in 0..mg {
                    let mo = gi * mg + mi;
                    let mut acc = bias.map(|b| b[mo]).unwrap_or(0.0);
                    for ci in 0..cg {
                        let xb = (b * c + gi * cg + ci) * iv;
                        let wb = (mo * cg + ci) * kv;
                        for &(k, off) in &taps {
                            acc += w[wb + k] * x[xb + off];
                        }
                    }
                    y[(b * m + mo) * ov + o] = acc;
                }
            }
        }
    }
    y
}

fn out_shape(xs: &[usize], m: usize, g: &Geom) -> Vec<usize> {
    let mut s = vec![xs[0], m];
    s.extend(&g.out);
    s
}

fn to_array(shape: &[usize], v: Vec<f64>) -> Result<ArrayD<f64>> {
    ArrayD::from_shape_vec(IxDyn(shape), v).map_err(|e| eval_err!("internal: {e}"))
}

fn flat(t: &Tensor) -> Result<Vec<f64>> {
    Ok(t.to_f()?.iter().copied().collect())
}

/// Optional bias input as `m` values.
fn bias_vec(t: Option<&Tensor>, m: usize, what: &str) -> Result<Option<Vec<f64>>> {
    match t {
        None => Ok(None),
        Some(b) => {
            let v = flat(b)?;
            if v.len() != m {
                return Err(eval_err!(
                    "{what}: bias has {} values, expected {m}",
                    v.len()
                ));
            }
            Ok(Some(v))
        }
    }
}

/// N-d convolution with groups, strides, dilations, padding and optional bias.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Conv {
    pub win: WinAttrs,
    pub group: usize,
}

#[typetag::serde]
impl Op for Conv {
    fn op_type(&self) -> &str {
        "Conv"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let dt = cx.input(0)?.dtype;
        Ok(vec![conv_infer(cx, &self.win, 0, 1, dt)?])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let w = req(inputs, 1)?;
        if !x.dtype().is_float() {
            return Err(eval_err!(
                "Conv: input must be a float tensor, got {}",
                x.dtype()
            ));
        }
        let g = conv_geom(&self.win, self.group, x.shape(), w.shape(), "Conv")?;
        let bias = bias_vec(opt(inputs, 2), w.shape()[0], "Conv")?;
        let y = conv_core(
            &flat(x)?,
            x.shape(),
            &flat(w)?,
            w.shape(),
            self.group,
            &g,
            bias.as_deref(),
        );
        let shape = out_shape(x.shape(), w.shape()[0], &g);
        Ok(vec![Tensor::float(x.dtype(), to_array(&shape, y)?)])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        let mut v = Vec::new();
        self.win.push(&mut v);
        v.push(("group", Attr::Int(self.group as i64)));
        v
    }
    fn macs(&self, inputs: &[Option<&ValueType>], outputs: &[ValueType]) -> u64 {
        conv_macs(inputs, outputs, 1)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Integer convolution with zero points, accumulating into int32.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConvInteger {
    pub win: WinAttrs,
    pub group: usize,
}

/// `w` minus its zero point (a scalar or one value per output channel).
fn sub_w_zero(w: &mut [f64], ws: &[usize], zp: Option<&Tensor>, what: &str) -> Result<()> {
    let Some(zp) = zp else { return Ok(()) };
    let z = flat(zp)?;
    let m = ws[0];
    let per = w.len().checked_div(m).unwrap_or(0);
    match z.len() {
        1 => w.iter_mut().for_each(|v| *v -= z[0]),
        l if l == m => {
            for (i, v) in w.iter_mut().enumerate() {
                *v -= z[i / per.max(1)];
            }
        }
        l => {
            return Err(eval_err!(
                "{what}: weight zero point has {l} values, expected 1 or {m}"
            ))
        }
    }
    Ok(())
}

/// `x` minus its (scalar) zero point.
fn sub_x_zero(x: &mut [f64], zp: Option<&Tensor>, what: &str) -> Result<()> {
    let Some(zp) = zp else { return Ok(()) };
    let z = flat(zp)?;
    if z.len() != 1 {
        return Err(eval_err!(
            "{what}: input zero point must be a scalar, got {} values",
            z.len()
        ));
    }
    x.iter_mut().for_each(|v| *v -= z[0]);
    Ok(())
}

#[typetag::serde]
impl Op for ConvInteger {
    fn op_type(&self) -> &str {
        "ConvInteger"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        Ok(vec![conv_infer(cx, &self.win, 0, 1, DType::I32)?])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let w = req(inputs, 1)?;
        if !x.dtype().is_int() || !w.dtype().is_int() {
            return Err(eval_err!("ConvInteger: inputs must be integer tensors"));
        }
        let g = conv_geom(&self.win, self.group, x.shape(), w.shape(), "ConvInteger")?;
        let mut xv = flat(x)?;
        let mut wv = flat(w)?;
        sub_x_zero(&mut xv, opt(inputs, 2), "ConvInteger")?;
        sub_w_zero(&mut wv, w.shape(), opt(inputs, 3), "ConvInteger")?;
        let y = conv_core(&xv, x.shape(), &wv, w.shape(), self.group, &g, None);
        let shape = out_shape(x.shape(), w.shape()[0], &g);
        Ok(vec![Tensor::int(
            DType::I32,
            to_array(&shape, y)?.mapv(|v| v.round() as i128),
        )])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        let mut v = Vec::new();
        self.win.push(&mut v);
        v.push(("group", Attr::Int(self.group as i64)));
        v
    }
    fn macs(&self, inputs: &[Option<&ValueType>], outputs: &[ValueType]) -> u64 {
        conv_macs(inputs, outputs, 1)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Quantized convolution: integer accumulation, then requantization to `y_scale`/`y_zero_point`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QLinearConv {
    pub win: WinAttrs,
    pub group: usize,
}

#[typetag::serde]
impl Op for QLinearConv {
    fn op_type(&self) -> &str {
        "QLinearConv"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let dt = cx
            .opt_input(7)
            .map(|t| t.dtype)
            .unwrap_or(cx.input(0)?.dtype);
        Ok(vec![conv_infer(cx, &self.win, 0, 3, dt)?])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let what = "QLinearConv";
        let x = req(inputs, 0)?;
        let w = req(inputs, 3)?;
        if !x.dtype().is_int() || !w.dtype().is_int() {
            return Err(eval_err!("{what}: x and w must be integer tensors"));
        }
        let g = conv_geom(&self.win, self.group, x.shape(), w.shape(), what)?;
        let m = w.shape()[0];
        let mut xv = flat(x)?;
        let mut wv = flat(w)?;
        sub_x_zero(&mut xv, opt(inputs, 2), what)?;
        sub_w_zero(&mut wv, w.shape(), opt(inputs, 5), what)?;
        let bias = bias_vec(opt(inputs, 8), m, what)?;
        let acc = conv_core(
            &xv,
            x.shape(),
            &wv,
            w.shape(),
            self.group,
            &g,
            bias.as_deref(),
        );
        let x_scale = req(inputs, 1)?.scalar_f64()? as f32;
        let w_scale = flat(req(inputs, 4)?)?;
        if w_scale.len() != 1 && w_scale.len() != m {
            return Err(eval_err!(
                "{what}: w_scale has {} values, expected 1 or {m}",
                w_scale.len()
            ));
        }
        let y_scale = req(inputs, 6)?.scalar_f64()? as f32;
        let yzp_t = opt(inputs, 7);
        let out_dt = yzp_t.map(|t| t.dtype()).unwrap_or(x.dtype());
        let yzp = yzp_t.map(|t| t.scalar_f64()).transpose()?.unwrap_or(0.0);
        let (lo, hi) = out_dt
            .int_range()
            .ok_or_else(|| eval_err!("{what}: output type {out_dt} is not an integer type"))?;
        let ov = g.out_vol();
        let y: Vec<i128> = acc
            .iter()
            .enumerate()
            .map(|(i, &a)| {
                let mo = i.checked_div(ov).unwrap_or(0) % m.max(1);
                let ws = if w_scale.len() == 1 {
                    w_scale[0]
                } else {
                    w_scale[mo]
                } as f32;
                let scale = (x_scale * ws) / y_scale;
                let r = (a * scale as f64 + yzp).clamp(lo as f64, hi as f64);
                r.round_ties_even() as i128
            })
            .collect();
        let shape = out_shape(x.shape(), m, &g);
        let arr = ArrayD::from_shape_vec(IxDyn(&shape), y).map_err(|e| eval_err!("{e}"))?;
        Ok(vec![Tensor::int(out_dt, arr)])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        let mut v = Vec::new();
        self.win.push(&mut v);
        v.push(("group", Attr::Int(self.group as i64)));
        v
    }
    fn macs(&self, inputs: &[Option<&ValueType>], outputs: &[ValueType]) -> u64 {
        conv_macs(inputs, outputs, 3)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Transposed convolution (`W` is `(C, M/group, k...)`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConvTranspose {
    pub win: WinAttrs,
    pub group: usize,
    pub output_padding: Option<Vec<i64>>,
    pub output_shape: Option<Vec<i64>>,
}

/// Resolved transposed-convolution geometry: output sizes and begin pads.
struct TGeom {
    k: Vec<usize>,
    s: Vec<usize>,
    d: Vec<usize>,
    pb: Vec<i64>,
    out: Vec<usize>,
}

impl ConvTranspose {
    fn tgeom(&self, inp: &[usize], wk: &[usize]) -> Result<TGeom> {
        let n = inp.len();
        let k = self.win.kernel(n, Some(wk))?;
        let list = |v: &Option<Vec<i64>>, def: i64, what: &str| -> Result<Vec<i64>> {
            match v {
                None => Ok(vec![def; n]),
                Some(v) if v.len() >= n => Ok(v[v.len() - n..].to_vec()),
                Some(v) => Err(eval_err!(
                    "ConvTranspose: {what} has {} values for {n} spatial axes",
                    v.len()
                )),
            }
        };
        let s = list(&self.win.strides, 1, "strides")?;
        let d = list(&self.win.dilations, 1, "dilations")?;
        let op = match &self.output_padding {
            Some(v) if v.len() >= n => v[..n].to_vec(),
            _ => list(&self.output_padding, 0, "output_padding")?,
        };
        let pads: Option<Vec<i64>> = match &self.win.pads {
            Some(p) if p.len() == 2 * n => Some(p.clone()),
            Some(p) => {
                return Err(eval_err!(
                    "ConvTranspose: pads has {} values for {n} spatial axes",
                    p.len()
                ))
            }
            None => None,
        };
        let same = matches!(self.win.auto_pad.as_str(), "SAME_UPPER" | "SAME_LOWER");
        let oshape = match &self.output_shape {
            Some(v) => Some(list(&Some(v.clone()), 0, "output_shape")?),
            None => None,
        };
        let mut pb = vec![0i64; n];
        let mut out = vec![0usize; n];
        for i in 0..n {
            let ke = (k[i] as i64 - 1) * d[i] + 1;
            let full = s[i] * (inp[i] as i64 - 1) + op[i] + ke;
            let target = match &oshape {
                Some(o) => Some(o[i]),
                None if same && pads.is_none() => Some(inp[i] as i64 * s[i]),
                None => None,
            };
            match (target, &pads) {
                (Some(t), None) => {
                    let total = full - t;
                    pb[i] = if self.win.auto_pad == "SAME_UPPER" {
                        total.div_euclid(2)
                    } else {
                        total - total.div_euclid(2)
                    };
                    out[i] = t.max(0) as usize;
                }
                (Some(t), Some(p)) => {
                    pb[i] = p[i];
                    out[i] = t.max(0) as usize;
                }
                (None, p) => {
                    let (a, b) = p.as_ref().map(|p| (p[i], p[i + n])).unwrap_or((0, 0));
                    pb[i] = a;
                    let o = full - a - b;
                    if o < 0 {
                        return Err(eval_err!("ConvTranspose: negative output size {o}"));
                    }
                    out[i] = o as usize;
                }
            }
        }
        Ok(TGeom {
            k,
            s: s.iter().map(|&v| v.max(1) as usize).collect(),
            d: d.iter().map(|&v| v.max(1) as usize).collect(),
            pb,
            out,
        })
    }
}

#[typetag::serde]
impl Op for ConvTranspose {
    fn op_type(&self) -> &str {
        "ConvTranspose"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let x = cx.input(0)?;
        let w = cx.input(1)?;
        let (Some(xs), Some(ws)) = (&x.shape, &w.shape) else {
            return Ok(vec![ValueType::unranked(x.dtype)]);
        };
        if xs.len() < 3 || ws.len() != xs.len() {
            return Err(crate::infer_err!(
                "ConvTranspose: input and weight ranks {} and {} do not match",
                xs.len(),
                ws.len()
            ));
        }
        let m = ws[1].mul(&Dim::from(self.group));
        let sp = match (shape_known(&xs[2..]), shape_known(&ws[2..])) {
            (Some(i), Some(k)) => match self.tgeom(&i, &k) {
                Ok(g) => g.out.iter().map(|&o| Dim::from(o)).collect(),
                Err(_) => cx.fresh_shape(xs.len() - 2),
            },
            _ => cx.fresh_shape(xs.len() - 2),
        };
        let mut out = vec![xs[0].clone(), m];
        out.extend(sp);
        Ok(vec![ValueType::new(x.dtype, out)])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let w = req(inputs, 1)?;
        let (xs, ws) = (x.shape(), w.shape());
        let group = self.group;
        if !x.dtype().is_float() || xs.len() < 3 || ws.len() != xs.len() || ws[0] != xs[1] {
            return Err(eval_err!(
                "ConvTranspose: input {xs:?} and weight {ws:?} must be float (N, C, ...) and (C, M/group, k...)"
            ));
        }
        if xs[1] % group != 0 {
            return Err(eval_err!(
                "ConvTranspose: {} channels are not divisible by group {group}",
                xs[1]
            ));
        }
        let g = self.tgeom(&xs[2..], &ws[2..])?;
        if g.k != ws[2..] {
            return Err(eval_err!(
                "ConvTranspose: kernel_shape does not match the weight"
            ));
        }
        let (n, c, mg) = (xs[0], xs[1], ws[1]);
        let m = mg * group;
        let cg = c / group;
        let bias = bias_vec(opt(inputs, 2), m, "ConvTranspose")?;
        let xv = flat(x)?;
        let wv = flat(w)?;
        let nd = xs.len() - 2;
        let iv: usize = xs[2..].iter().product();
        let ov: usize = g.out.iter().product();
        let kv: usize = g.k.iter().product();
        let mut y = vec![0.0; n * m * ov];
        let (mut ic, mut kc) = (vec![0; nd], vec![0; nd]);
        let mut taps: Vec<(usize, usize)> = Vec::new();
        for ii in 0..iv {
            unflatten(ii, &xs[2..], &mut ic);
            taps.clear();
            for ki in 0..kv {
                unflatten(ki, &g.k, &mut kc);
                let mut off = 0usize;
                let mut ok = true;
                for j in 0..nd {
                    let p = (ic[j] * g.s[j] + kc[j] * g.d[j]) as i64 - g.pb[j];
                    if p < 0 || p as usize >= g.out[j] {
                        ok = false;
                        break;
                    }
                    off = off * g.out[j] + p as usize;
                }
                if ok {
                    taps.push((ki, off));
                }
            }
            for b in 0..n {
                for gi in 0..group {
                    for ci in 0..cg {
                        let xval = xv[(b * c + gi * cg + ci) * iv + ii];
                        for mi in 0..mg {
                            let mo = gi * mg + mi;
                            let wb = ((gi * cg + ci) * mg + mi) * kv;
                            let yb = (b * m + mo) * ov;
                            for &(k, off) in &taps {
                                y[yb + off] += xval * wv[wb + k];
                            }
                        }
                    }
                }
            }
        }
        if let Some(bv) = &bias {
            for (i, v) in y.iter_mut().enumerate() {
                *v += bv[(i / ov.max(1)) % m];
            }
        }
        let mut shape = vec![n, m];
        shape.extend(&g.out);
        Ok(vec![Tensor::float(x.dtype(), to_array(&shape, y)?)])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        let mut v = Vec::new();
        self.win.push(&mut v);
        v.push(("group", Attr::Int(self.group as i64)));
        if let Some(p) = &self.output_padding {
            v.push(("output_padding", Attr::Ints(p.clone())));
        }
        if let Some(p) = &self.output_shape {
            v.push(("output_shape", Attr::Ints(p.clone())));
        }
        v
    }
    fn macs(&self, inputs: &[Option<&ValueType>], _outputs: &[ValueType]) -> u64 {
        let x = inputs
            .first()
            .copied()
            .flatten()
            .and_then(|t| t.numel())
            .unwrap_or(0);
        let per = inputs
            .get(1)
            .copied()
            .flatten()
            .and_then(|t| t.shape.as_ref())
            .and_then(|s| {
                s.iter()
                    .skip(1)
                    .try_fold(1u64, |a, d| a.checked_mul(d.known()?))
            })
            .unwrap_or(0);
        x.saturating_mul(per)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Deformable 2-D convolution: kernel taps are displaced by learned offsets and sampled
/// bilinearly, optionally modulated by a mask.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeformConv {
    pub win: WinAttrs,
    pub group: usize,
    pub offset_group: usize,
}

/// Bilinear sample of a `h x w` plane at `(y, x)`, zero outside.
fn bilinear_zero(p: &[f64], h: usize, w: usize, y: f64, x: f64) -> f64 {
    if y <= -1.0 || y >= h as f64 || x <= -1.0 || x >= w as f64 {
        return 0.0;
    }
    let (y0, x0) = (y.floor(), x.floor());
    let (ly, lx) = (y - y0, x - x0);
    let at = |yy: f64, xx: f64| -> f64 {
        if yy < 0.0 || xx < 0.0 || yy >= h as f64 || xx >= w as f64 {
            0.0
        } else {
            p[yy as usize * w + xx as usize]
        }
    };
    (1.0 - ly) * (1.0 - lx) * at(y0, x0)
        + (1.0 - ly) * lx * at(y0, x0 + 1.0)
        + ly * (1.0 - lx) * at(y0 + 1.0, x0)
        + ly * lx * at(y0 + 1.0, x0 + 1.0)
}

#[typetag::serde]
impl Op for DeformConv {
    fn op_type(&self) -> &str {
        "DeformConv"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let dt = cx.input(0)?.dtype;
        Ok(vec![conv_infer(cx, &self.win, 0, 1, dt)?])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let what = "DeformConv";
        let x = req(inputs, 0)?;
        let w = req(inputs, 1)?;
        let off = req(inputs, 2)?;
        let (xs, ws) = (x.shape(), w.shape());
        if xs.len() != 4 {
            return Err(eval_err!(
                "{what}: only 2-D inputs (N, C, H, W) are supported"
            ));
        }
        let g = conv_geom(&self.win, self.group, xs, ws, what)?;
        let (n, c, h, wd) = (xs[0], xs[1], xs[2], xs[3]);
        let (m, cg) = (ws[0], ws[1]);
        let mg = m / self.group;
        let (kh, kw) = (g.k[0], g.k[1]);
        let (oh, ow) = (g.out[0], g.out[1]);
        let kv = kh * kw;
        let og = self.offset_group;
        if c % og != 0 {
            return Err(eval_err!(
                "{what}: {c} channels not divisible by offset_group {og}"
            ));
        }
        if off.shape() != [n, og * 2 * kv, oh, ow] {
            return Err(eval_err!(
                "{what}: offset must be {:?}, got {:?}",
                [n, og * 2 * kv, oh, ow],
                off.shape()
            ));
        }
        let mask = opt(inputs, 4);
        if let Some(mk) = mask {
            if mk.shape() != [n, og * kv, oh, ow] {
                return Err(eval_err!(
                    "{what}: mask must be {:?}, got {:?}",
                    [n, og * kv, oh, ow],
                    mk.shape()
                ));
            }
        }
        let bias = bias_vec(opt(inputs, 3), m, what)?;
        let xv = flat(x)?;
        let wv = flat(w)?;
        let ov = flat(off)?;
        let mv = mask.map(flat).transpose()?;
        let cpo = c / og;
        // Sampled columns: (n, c, kv, oh*ow).
        let plane = oh * ow;
        let mut cols = vec![0.0; n * c * kv * plane];
        for b in 0..n {
            for ci in 0..c {
                let gi = ci / cpo;
                let p = &xv[(b * c + ci) * h * wd..(b * c + ci + 1) * h * wd];
                for i in 0..kh {
                    for j in 0..kw {
                        let kk = i * kw + j;
                        for y in 0..oh {
                            for xo in 0..ow {
                                let pos = y * ow + xo;
                                let oy =
                                    ov[((b * og * 2 * kv) + gi * 2 * kv + 2 * kk) * plane + pos];
                                let ox = ov
                                    [((b * og * 2 * kv) + gi * 2 * kv + 2 * kk + 1) * plane + pos];
                                let sy = (y * g.s[0] + i * g.d[0]) as f64 - g.pb[0] as f64 + oy;
                                let sx = (xo * g.s[1] + j * g.d[1]) as f64 - g.pb[1] as f64 + ox;
                                let mut v = bilinear_zero(p, h, wd, sy, sx);
                                if let Some(mv) = &mv {
                                    v *= mv[((b * og * kv) + gi * kv + kk) * plane + pos];
                                }
                                cols[((b * c + ci) * kv + kk) * plane + pos] = v;
                            }
                        }
                    }
                }
            }
        }
        let mut yv = vec![0.0; n * m * plane];
        for b in 0..n {
            for mo in 0..m {
                let gi = mo / mg.max(1);
                let base = bias.as_ref().map(|bv| bv[mo]).unwrap_or(0.0);
                for pos in 0..plane {
                    let mut acc = base;
                    for cj in 0..cg {
                        let ci = gi * cg + cj;
                        for kk in 0..kv {
                            acc += wv[(mo * cg + cj) * kv + kk]
                                * cols[((b * c + ci) * kv + kk) * plane + pos];
                        }
                    }
                    yv[(b * m + mo) * plane + pos] = acc;
                }
            }
        }
        Ok(vec![Tensor::float(
            x.dtype(),
            to_array(&[n, m, oh, ow], yv)?,
        )])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        let mut v = Vec::new();
        self.win.push(&mut v);
        v.push(("group", Attr::Int(self.group as i64)));
        v.push(("offset_group", Attr::Int(self.offset_group as i64)));
        v
    }
    fn macs(&self, inputs: &[Option<&ValueType>], outputs: &[ValueType]) -> u64 {
        conv_macs(inputs, outputs, 1)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouped_conv_with_padding() {
        // Two groups of one channel; 3x3 ones kernel with pad 1 sums each 3x3 neighbourhood.
        let win = WinAttrs {
            auto_pad: "NOTSET".into(),
            pads: Some(vec![1, 1, 1, 1]),
            ..Default::default()
        };
        let xs = [1, 2, 2, 2];
        let ws = [2, 1, 3, 3];
        let g = conv_geom(&win, 2, &xs, &ws, "t").unwrap();
        assert_eq!(g.out, vec![2, 2]);
        let x = vec![1.0, 2.0, 3.0, 4.0, 10.0, 20.0, 30.0, 40.0];
        let mut w = vec![1.0; 9];
        w.extend(vec![2.0; 9]);
        let y = conv_core(&x, &xs, &w, &ws, 2, &g, Some(&[0.5, 0.0]));
        assert_eq!(
            y,
            vec![10.5; 4]
                .into_iter()
                .chain(vec![200.0; 4])
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn deform_bilinear_zero_outside() {
        let p = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(bilinear_zero(&p, 2, 2, 0.5, 0.5), 2.5);
        assert_eq!(bilinear_zero(&p, 2, 2, -1.0, 0.0), 0.0);
        assert_eq!(bilinear_zero(&p, 2, 2, -0.5, 0.0), 0.5);
    }
}
