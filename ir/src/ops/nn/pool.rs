//! Pooling: `MaxPool`, `AveragePool`, `LpPool`, the global pools and `MaxUnpool`.

use super::geom::{unflatten, Geom, WinAttrs};
use crate::onnx::attrs::NodeCtx;
use crate::op::{opt, req, Attr, EvalCx, InferCx, Op};
use crate::shape::{shape_known, Dim, ValueType};
use crate::tensor::Tensor;
use crate::{eval_err, infer_err, DType, Result};
use ndarray::{ArrayD, IxDyn};
use serde::{Deserialize, Serialize};
use std::any::Any;

/// The kind of reduction a windowed pool performs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PoolKind {
    Max,
    Avg,
    Lp,
}

fn read_kernel(cx: &NodeCtx<'_>, win: &WinAttrs) -> Result<()> {
    if win.kernel_shape.is_none() {
        return Err(cx.invalid("kernel_shape", "is required"));
    }
    Ok(())
}

pub fn build_max_pool(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    let win = WinAttrs::read(cx)?;
    read_kernel(cx, &win)?;
    let storage_order = cx.i("storage_order", 0)?;
    if !(0..=1).contains(&storage_order) {
        return Err(cx.invalid("storage_order", "must be 0 or 1"));
    }
    Ok(Box::new(MaxPool {
        win,
        ceil_mode: cx.i("ceil_mode", 0)? != 0,
        storage_order,
    }))
}

pub fn build_average_pool(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    let win = WinAttrs::read(cx)?;
    read_kernel(cx, &win)?;
    Ok(Box::new(AveragePool {
        win,
        ceil_mode: cx.i("ceil_mode", 0)? != 0,
        count_include_pad: cx.i("count_include_pad", 0)? != 0,
    }))
}

pub fn build_lp_pool(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    let win = WinAttrs::read(cx)?;
    read_kernel(cx, &win)?;
    Ok(Box::new(LpPool {
        win,
        ceil_mode: cx.i("ceil_mode", 0)? != 0,
        p: cx.opt_f("p")?.unwrap_or(2.0),
    }))
}

/// Output type of a windowed pool.
fn pool_infer(
    cx: &InferCx<'_>,
    win: &WinAttrs,
    ceil_mode: bool,
    dtype: DType,
) -> Result<ValueType> {
    let x = cx.input(0)?;
    let Some(xs) = &x.shape else {
        return Ok(ValueType::unranked(dtype));
    };
    if xs.len() < 3 {
        return Err(infer_err!(
            "pool input must have rank >= 3, got {}",
            xs.len()
        ));
    }
    let k: Option<Vec<usize>> = win
        .kernel_shape
        .as_ref()
        .map(|k| k.iter().map(|&v| v.max(0) as usize).collect());
    let mut out = vec![xs[0].clone(), xs[1].clone()];
    out.extend(win.infer_out(cx, &xs[2..], k.as_deref(), ceil_mode));
    Ok(ValueType::new(dtype, out))
}

/// Resolves a pool's geometry for input shape `xs`.
fn pool_geom(win: &WinAttrs, xs: &[usize], ceil_mode: bool, what: &str) -> Result<Geom> {
    if xs.len() < 3 {
        return Err(eval_err!("{what}: input must have rank >= 3, got {xs:?}"));
    }
    let k = win.kernel(xs.len() - 2, None)?;
    win.geom(&xs[2..], k, ceil_mode)
        .map_err(|e| eval_err!("{what}: {e}"))
}

/// Windowed pooling over flat data; returns values and (for max) input flat indices.
fn pool_core(
    x: &[f64],
    xs: &[usize],
    g: &Geom,
    kind: PoolKind,
    include_pad: bool,
    p: f64,
) -> (Vec<f64>, Vec<usize>) {
    let nc = xs[0] * xs[1];
    let (iv, ov) = (g.in_vol(), g.out_vol());
    let kv = g.kvol();
    let mut y = vec![0.0; nc * ov];
    let mut idx = vec![0usize; if kind == PoolKind::Max { nc * ov } else { 0 }];
    let mut taps = Vec::new();
    for o in 0..ov {
        let padded = g.taps(o, &mut taps);
        for b in 0..nc {
            let xb = b * iv;
            let v = match kind {
                PoolKind::Max => {
                    let mut best = f64::NEG_INFINITY;
                    let mut bi = None;
                    for &(_, off) in &taps {
                        let v = x[xb + off];
                        if bi.is_none() || v > best {
                            best = v;
                            bi = Some(off);
                        }
                    }
                    idx[b * ov + o] = xb + bi.unwrap_or(0);
                    best
                }
                PoolKind::Avg => {
                    let s: f64 = taps.iter().map(|&(_, off)| x[xb + off]).sum();
                    let cnt = if include_pad { padded } else { taps.len() };
                    s / cnt as f64
                }
                PoolKind::Lp => {
                    let s: f64 = taps.iter().map(|&(_, off)| x[xb + off].abs().powf(p)).sum();
                    // Positions cut off by ceil mode are averaged out, as the reference does.
                    let s = if padded > 0 {
                        s * kv as f64 / padded as f64
                    } else {
                        s
                    };
                    s.powf(1.0 / p)
                }
            };
            y[b * ov + o] = v;
        }
    }
    (y, idx)
}

fn pool_shape(xs: &[usize], g: &Geom) -> Vec<usize> {
    let mut s = vec![xs[0], xs[1]];
    s.extend(&g.out);
    s
}

fn flat(t: &Tensor) -> Result<Vec<f64>> {
    Ok(t.to_f()?.iter().copied().collect())
}

fn arr<T>(shape: &[usize], v: Vec<T>) -> Result<ArrayD<T>> {
    ArrayD::from_shape_vec(IxDyn(shape), v).map_err(|e| eval_err!("internal: {e}"))
}

/// Max pooling, with an optional `Indices` output (flat indices into the input).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MaxPool {
    pub win: WinAttrs,
    pub ceil_mode: bool,
    pub storage_order: i64,
}

#[typetag::serde]
impl Op for MaxPool {
    fn op_type(&self) -> &str {
        "MaxPool"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let t = pool_infer(cx, &self.win, self.ceil_mode, cx.input(0)?.dtype)?;
        let i = ValueType {
            dtype: DType::I64,
            shape: t.shape.clone(),
        };
        Ok(vec![t, i])
    }
    fn eval(&self, cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let xs = x.shape();
        let g = pool_geom(&self.win, xs, self.ceil_mode, "MaxPool")?;
        let (y, idx) = pool_core(&flat(x)?, xs, &g, PoolKind::Max, false, 1.0);
        let shape = pool_shape(xs, &g);
        let yt = Tensor::from_f64_as(x.dtype(), arr(&shape, y)?);
        if cx.num_outputs < 2 {
            return Ok(vec![yt]);
        }
        let iv = g.in_vol();
        let nd = g.inp.len();
        let mut c = vec![0; nd];
        let idx: Vec<i128> = idx
            .into_iter()
            .map(|i| {
                if self.storage_order == 0 {
                    return i as i128;
                }
                // Column-major over the spatial axes.
                let (base, sp) = (i - i % iv.max(1), i % iv.max(1));
                unflatten(sp, &g.inp, &mut c);
                let mut off = 0;
                for j in (0..nd).rev() {
                    off = off * g.inp[j] + c[j];
                }
                (base + off) as i128
            })
            .collect();
        Ok(vec![yt, Tensor::int(DType::I64, arr(&shape, idx)?)])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        let mut v = Vec::new();
        self.win.push(&mut v);
        if self.ceil_mode {
            v.push(("ceil_mode", Attr::Int(1)));
        }
        if self.storage_order != 0 {
            v.push(("storage_order", Attr::Int(self.storage_order)));
        }
        v
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Average pooling.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AveragePool {
    pub win: WinAttrs,
    pub ceil_mode: bool,
    pub count_include_pad: bool,
}

#[typetag::serde]
impl Op for AveragePool {
    fn op_type(&self) -> &str {
        "AveragePool"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        Ok(vec![pool_infer(
            cx,
            &self.win,
            self.ceil_mode,
            cx.input(0)?.dtype,
        )?])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        if !x.dtype().is_float() {
            return Err(eval_err!(
                "AveragePool: input must be float, got {}",
                x.dtype()
            ));
        }
        let xs = x.shape();
        let g = pool_geom(&self.win, xs, self.ceil_mode, "AveragePool")?;
        let (y, _) = pool_core(
            &flat(x)?,
            xs,
            &g,
            PoolKind::Avg,
            self.count_include_pad,
            1.0,
        );
        Ok(vec![Tensor::float(x.dtype(), arr(&pool_shape(xs, &g), y)?)])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        let mut v = Vec::new();
        self.win.push(&mut v);
        if self.ceil_mode {
            v.push(("ceil_mode", Attr::Int(1)));
        }
        if self.count_include_pad {
            v.push(("count_include_pad", Attr::Int(1)));
        }
        v
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Lp pooling: `(sum |x|^p)^(1/p)` over each window.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LpPool {
    pub win: WinAttrs,
    pub ceil_mode: bool,
    pub p: f32,
}

#[typetag::serde]
impl Op for LpPool {
    fn op_type(&self) -> &str {
        "LpPool"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        Ok(vec![pool_infer(
            cx,
            &self.win,
            self.ceil_mode,
            cx.input(0)?.dtype,
        )?])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        if !x.dtype().is_float() {
            return Err(eval_err!("LpPool: input must be float, got {}", x.dtype()));
        }
        let xs = x.shape();
        let g = pool_geom(&self.win, xs, self.ceil_mode, "LpPool")?;
        let (y, _) = pool_core(&flat(x)?, xs, &g, PoolKind::Lp, false, self.p as f64);
        Ok(vec![Tensor::float(x.dtype(), arr(&pool_shape(xs, &g), y)?)])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        let mut v = Vec::new();
        self.win.push(&mut v);
        if self.ceil_mode {
            v.push(("ceil_mode", Attr::Int(1)));
        }
        v.push(("p", Attr::Int(self.p as i64)));
        v
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Global pooling over all spatial axes (`GlobalAveragePool`, `GlobalMaxPool`, `GlobalLpPool`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GlobalPool {
    pub kind: PoolKind,
    pub p: f32,
}

#[typetag::serde]
impl Op for GlobalPool {
    fn op_type(&self) -> &str {
        match self.kind {
            PoolKind::Max => "GlobalMaxPool",
            PoolKind::Avg => "GlobalAveragePool",
            PoolKind::Lp => "GlobalLpPool",
        }
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let x = cx.input(0)?;
        Ok(vec![match &x.shape {
            Some(s) if s.len() >= 2 => {
                let mut o = s[..2].to_vec();
                o.extend(std::iter::repeat_n(Dim::Known(1), s.len() - 2));
                ValueType::new(x.dtype, o)
            }
            Some(s) => {
                return Err(infer_err!(
                    "global pool input must have rank >= 2, got {}",
                    s.len()
                ))
            }
            None => ValueType::unranked(x.dtype),
        }])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let xs = x.shape();
        if xs.len() < 2 {
            return Err(eval_err!("{}: input must have rank >= 2", self.op_type()));
        }
        let v = flat(x)?;
        let nc = xs[0] * xs[1];
        let sp: usize = xs[2..].iter().product();
        let mut y = Vec::with_capacity(nc);
        for b in 0..nc {
            let s = &v[b * sp..(b + 1) * sp];
            y.push(match self.kind {
                PoolKind::Max => s.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                PoolKind::Avg => s.iter().sum::<f64>() / sp as f64,
                PoolKind::Lp => {
                    let p = self.p as f64;
                    s.iter().map(|v| v.abs().powf(p)).sum::<f64>().powf(1.0 / p)
                }
            });
        }
        let mut shape = xs[..2].to_vec();
        shape.extend(std::iter::repeat_n(1, xs.len() - 2));
        Ok(vec![Tensor::from_f64_as(x.dtype(), arr(&shape, y)?)])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        if self.kind == PoolKind::Lp {
            vec![("p", Attr::Int(self.p as i64))]
        } else {
            Vec::new()
        }
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

pub fn build_max_unpool(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    let win = WinAttrs::read(cx)?;
    read_kernel(cx, &win)?;
    Ok(Box::new(MaxUnpool { win }))
}

/// Scatters pooled values back to the positions their indices name; the rest are zero.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MaxUnpool {
    pub win: WinAttrs,
}

impl MaxUnpool {
    /// Default output spatial sizes: `(in - 1) * stride - pads + kernel`.
    fn default_out(&self, inp: &[usize]) -> Result<Vec<usize>> {
        let n = inp.len();
        let k = self.win.kernel(n, None)?;
        let s = self.win.strides.clone().unwrap_or_else(|| vec![1; n]);
        let p = self.win.pads.clone().unwrap_or_else(|| vec![0; 2 * n]);
        if s.len() != n || p.len() != 2 * n {
            return Err(eval_err!(
                "MaxUnpool: strides/pads do not match {n} spatial axes"
            ));
        }
        (0..n)
            .map(|i| {
                let o = (inp[i] as i64 - 1) * s[i] - p[i] - p[i + n] + k[i] as i64;
                if o < 0 {
                    Err(eval_err!("MaxUnpool: negative output size"))
                } else {
                    Ok(o as usize)
                }
            })
            .collect()
    }
}

#[typetag::serde]
impl Op for MaxUnpool {
    fn op_type(&self) -> &str {
        "MaxUnpool"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let x = cx.input(0)?;
        if let Some(v) = cx.value(2) {
            let s = v.to_i64_vec()?;
            return Ok(vec![ValueType::known(
                x.dtype,
                &s.iter().map(|&d| d.max(0) as usize).collect::<Vec<_>>(),
            )]);
        }
        if cx.opt_input(2).is_some() {
            let r = x.rank();
            return Ok(vec![match r {
                Some(r) => ValueType::new(x.dtype, cx.fresh_shape(r)),
                None => ValueType::unranked(x.dtype),
            }]);
        }
        Ok(vec![match &x.shape {
            Some(s) if s.len() >= 3 => {
                let mut o = s[..2].to_vec();
                match shape_known(&s[2..]).map(|i| self.default_out(&i)) {
                    Some(Ok(sp)) => o.extend(sp.into_iter().map(Dim::from)),
                    _ => o.extend(cx.fresh_shape(s.len() - 2)),
                }
                ValueType::new(x.dtype, o)
            }
            _ => ValueType::unranked(x.dtype),
        }])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let ind = req(inputs, 1)?;
        let xs = x.shape();
        if xs.len() < 3 || ind.shape() != xs {
            return Err(eval_err!(
                "MaxUnpool: X {xs:?} and I {:?} must have the same shape of rank >= 3",
                ind.shape()
            ));
        }
        let mut inferred = xs[..2].to_vec();
        inferred.extend(self.default_out(&xs[2..])?);
        let total: usize = inferred.iter().product();
        let mut y = vec![0.0; total];
        let xv = flat(x)?;
        for (v, &i) in xv.iter().zip(ind.to_i64_vec()?.iter()) {
            if i < 0 || i as usize >= total {
                return Err(eval_err!(
                    "MaxUnpool: index {i} out of range for output {inferred:?}"
                ));
            }
            y[i as usize] = *v;
        }
        let y = arr(&inferred, y)?;
        let Some(s) = opt(inputs, 2) else {
            return Ok(vec![Tensor::from_f64_as(x.dtype(), y)]);
        };
        // An explicit output shape: the inferred result goes to its leading corner.
        let shape: Vec<usize> = s.to_i64_vec()?.iter().map(|&d| d.max(0) as usize).collect();
        if shape.len() != xs.len() {
            return Err(eval_err!(
                "MaxUnpool: output_shape {shape:?} has the wrong rank"
            ));
        }
        let mut out = ArrayD::<f64>::zeros(IxDyn(&shape));
        for (ix, v) in y.indexed_iter() {
            if let Some(o) = out.get_mut(ix) {
                *o = *v;
            }
        }
        Ok(vec![Tensor::from_f64_as(x.dtype(), out)])
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
    fn avg_pool_count_include_pad() {
        let win = WinAttrs {
            auto_pad: "NOTSET".into(),
            kernel_shape: Some(vec![2]),
            pads: Some(vec![1, 0]),
            ..Default::default()
        };
        let g = pool_geom(&win, &[1, 1, 2], false, "t").unwrap();
        let x = [2.0, 4.0];
        let (y, _) = pool_core(&x, &[1, 1, 2], &g, PoolKind::Avg, false, 1.0);
        assert_eq!(y, vec![2.0, 3.0]);
        let (y, _) = pool_core(&x, &[1, 1, 2], &g, PoolKind::Avg, true, 1.0);
        assert_eq!(y, vec![1.0, 3.0]);
        let (y, i) = pool_core(&x, &[1, 1, 2], &g, PoolKind::Max, false, 1.0);
        assert_eq!((y, i), (vec![2.0, 4.0], vec![0, 1]));
    }
}
