//! Resize and Upsample lowerings. Scales/sizes (and the roi of `tf_crop_and_resize`) must be
//! constants; the taps of every output position are then computed here, at compile time,
//! with the interpreter's formulas (coordinate transforms, nearest rounding modes, linear,
//! cubic with `cubic_coeff_a`, antialias, exclude_outside, extrapolation).
//!
//! Nearest without extrapolation is a pure copy: one [`CopyPlan`] with an offset table per
//! resized axis (memcpy of contiguous runs). Otherwise the resize is separable, one pass per
//! resized axis in axis order as the interpreter does, each output the tap-ordered sum
//! `0 + w0*x0 + w1*x1 + ...` in double (intermediates in double scratch), rounded to the
//! output type at the end (integers: ties to even, clamped to the type's range).

use super::movement::{emit_copy_plan, strides, CopyPlan, Src};
use super::operand::{const_floats, const_ints, ctype, norm_axis};
use super::{CTensor, LowerCx, LowerError, Registry};
use petasos_ir::ops::nn::resize::{Interp, Resize, Upsample};
use petasos_ir::DType;

/// Registers this family's lowerings.
pub fn register(r: &mut Registry) {
    r.op("Resize", lower_resize);
    r.op("Upsample", lower_upsample);
}

/// Source coordinate of output index `y` along one axis (the interpreter's transforms).
fn source_coord(
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
fn cubic(t: f64, a: f64) -> f64 {
    let t = t.abs();
    if t <= 1.0 {
        ((a + 2.0) * t - (a + 3.0)) * t * t + 1.0
    } else if t < 2.0 {
        ((a * t - 5.0 * a) * t + 8.0 * a) * t - 4.0 * a
    } else {
        0.0
    }
}

/// Taps of output position `y`: `None` when extrapolated, else `(input index, weight)`s with
/// indices clamped into the input.
fn taps_1d(it: &Interp, y: usize, scale: f64, in_n: usize, out_n: usize, roi: (f64, f64)) -> Taps {
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
        return Some(vec![(clamp(fl + i64::from(up)), 1.0)]);
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
    let normalise = |w: &mut Vec<(i64, f64)>| {
        let sum: f64 = w.iter().map(|p| p.1).sum();
        if sum != 0.0 {
            w.iter_mut().for_each(|p| p.1 /= sum);
        }
    };
    if it.antialias {
        normalise(&mut w);
    }
    if it.exclude_outside {
        for p in w.iter_mut() {
            if p.0 < 0 || p.0 > last {
                p.1 = 0.0;
            }
        }
        normalise(&mut w);
    }
    Some(w.into_iter().map(|(i, k)| (clamp(i), k)).collect())
}

/// The taps of one output position (`None`: extrapolated).
type Taps = Option<Vec<(usize, f64)>>;

/// One resized axis: its index, new size, scale and roi.
struct AxisPlan {
    axis: usize,
    out_n: usize,
    scale: f64,
    roi: (f64, f64),
}

/// Which axes change, given full-rank output sizes, scales and optional full roi (the
/// interpreter skips an axis whose scale is 1, size unchanged and roi the identity).
fn axis_plans(inp: &[usize], out: &[usize], sc: &[f64], roi: Option<&[f64]>) -> Vec<AxisPlan> {
    let r = inp.len();
    (0..r)
        .filter_map(|ax| {
            let axroi = roi.map(|v| (v[ax], v[ax + r])).unwrap_or((0.0, 1.0));
            let ident = (sc[ax] - 1.0).abs() < 1e-9
                && out[ax] == inp[ax]
                && axroi.0.abs() < 1e-9
                && (axroi.1 - 1.0).abs() < 1e-9;
            (!ident).then_some(AxisPlan {
                axis: ax,
                out_n: out[ax],
                scale: sc[ax],
                roi: axroi,
            })
        })
        .collect()
}

fn lower_resize(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let (x, y) = (cx.input(0)?.clone(), cx.output(0)?.clone());
    let op = cx.op::<Resize>()?.clone();
    let r = x.rank();
    let axes: Vec<usize> = match &op.axes {
        None => (0..r).collect(),
        Some(a) => a
            .iter()
            .map(|&v| norm_axis(cx, v, r))
            .collect::<Result<_, _>>()?,
    };
    let (si, zi) = if op.legacy { (1, 99) } else { (2, 3) };
    let scales = const_floats(cx, si, "scales")?.filter(|s| !s.is_empty());
    let sizes = if op.legacy {
        None
    } else {
        const_ints(cx, zi, "sizes")?.filter(|s| !s.is_empty())
    };
    let mut sc = vec![1.0; r];
    let mut out = x.shape.clone();
    if let Some(s) = scales {
        if s.len() != axes.len() || s.iter().any(|v| *v <= 0.0 || !v.is_finite()) {
            return Err(cx.invalid(format!("scales {s:?} do not fit axes {axes:?}")));
        }
        for (&a, &v) in axes.iter().zip(&s) {
            sc[a] = v;
            out[a] = (v * x.shape[a] as f64) as usize;
        }
    } else if let Some(sz) = sizes {
        if sz.len() != axes.len() || sz.iter().any(|v| *v < 0) {
            return Err(cx.invalid(format!("sizes {sz:?} do not fit axes {axes:?}")));
        }
        for (&a, &v) in axes.iter().zip(&sz) {
            out[a] = v as usize;
            sc[a] = v as f64 / x.shape[a] as f64;
        }
        if op.keep_aspect_ratio_policy != "stretch" {
            let it = axes.iter().map(|&a| sc[a]);
            let s = if op.keep_aspect_ratio_policy == "not_larger" {
                it.fold(f64::INFINITY, f64::min)
            } else {
                it.fold(f64::NEG_INFINITY, f64::max)
            };
            for &a in &axes {
                sc[a] = s;
                out[a] = (s * x.shape[a] as f64 + 0.5) as usize;
            }
        }
    } else {
        return Err(cx.invalid("one of scales and sizes must be given".into()));
    }
    let roi = if !op.legacy && op.interp.coord == "tf_crop_and_resize" {
        let v = const_floats(cx, 1, "roi")?.unwrap_or_default();
        if v.len() != 2 * axes.len() {
            return Err(cx.invalid(format!("roi has {} values", v.len())));
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
    emit_resize(cx, &x, &y, &op.interp, &out, &sc, roi.as_deref())
}

fn lower_upsample(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let (x, y) = (cx.input(0)?.clone(), cx.output(0)?.clone());
    let op = cx.op::<Upsample>()?.clone();
    let sc = match const_floats(cx, 1, "scales")? {
        Some(s) => s,
        None => op
            .scales
            .as_ref()
            .map(|s| s.iter().map(|&v| v as f64).collect())
            .ok_or_else(|| cx.invalid("scales are missing".into()))?,
    };
    if sc.len() != x.rank() || sc.iter().any(|&v| v <= 0.0 || !v.is_finite()) {
        return Err(cx.invalid(format!("scales {sc:?} do not fit rank {}", x.rank())));
    }
    let out: Vec<usize> = x
        .shape
        .iter()
        .zip(&sc)
        .map(|(&d, &s)| (d as f64 * s) as usize)
        .collect();
    let it = Interp {
        mode: op.mode.clone(),
        coord: "asymmetric".into(),
        nearest_mode: "floor".into(),
        cubic_coeff_a: -0.75,
        exclude_outside: false,
        extrapolation_value: 0.0,
        antialias: false,
    };
    emit_resize(cx, &x, &y, &it, &out, &sc, None)
}

/// Emits the resize of `x` into `y` (see the module docs).
fn emit_resize(
    cx: &mut LowerCx<'_>,
    x: &CTensor,
    y: &CTensor,
    it: &Interp,
    out: &[usize],
    sc: &[f64],
    roi: Option<&[f64]>,
) -> Result<(), LowerError> {
    let t = ctype(cx, x)?;
    if x.dtype == DType::Bool || x.dtype != y.dtype {
        return Err(cx.unsupported(format!("Resize of {} to {}", x.dtype, y.dtype)));
    }
    if y.shape != out {
        return Err(cx.invalid(format!(
            "output shape {:?} differs from the computed {out:?}",
            y.shape
        )));
    }
    if y.numel() == 0 {
        return Ok(());
    }
    if x.numel() == 0 {
        return Err(cx.invalid("cannot resize an empty tensor".into()));
    }
    let plans = axis_plans(&x.shape, out, sc, roi);
    let taps: Vec<Vec<Taps>> = plans
        .iter()
        .map(|p| {
            (0..p.out_n)
                .map(|o| taps_1d(it, o, p.scale, x.shape[p.axis], p.out_n, p.roi))
                .collect()
        })
        .collect();
    let extrapolates = taps.iter().flatten().any(|t| t.is_none());
    if it.mode == "nearest" && !extrapolates {
        // A pure copy: each resized axis reads through an offset table.
        let xs = strides(&x.shape);
        let mut plan = CopyPlan::gather(out, 0, &xs);
        for (p, tp) in plans.iter().zip(&taps) {
            let tab: Vec<i64> = tp
                .iter()
                .map(|t| {
                    t.as_ref()
                        .and_then(|v| v.first())
                        .map_or(0, |&(i, _)| i as i64 * xs[p.axis])
                })
                .collect();
            plan.axes[p.axis].src = Src::Table(tab);
        }
        return emit_copy_plan(cx, &y.expr, &x.expr, t, &plan);
    }
    if plans.is_empty() {
        cx.line(format!("memcpy({}, {}, {});", y.expr, x.expr, y.bytes()));
        return Ok(());
    }
    // Separable passes in axis order: x -> [double scratch]* -> y.
    let mut shape = x.shape.clone();
    let mut src_buf: Option<String> = None;
    let ev = it.extrapolation_value as f64;
    for (k, (p, tp)) in plans.iter().zip(&taps).enumerate() {
        let in_n = shape[p.axis];
        let outer: usize = shape[..p.axis].iter().product();
        let inner: usize = shape[p.axis + 1..].iter().product();
        shape[p.axis] = p.out_n;
        let last = k + 1 == plans.len();
        let dst_buf = if last {
            None
        } else {
            let n: usize = shape.iter().product();
            let s = cx.scratch((n * 8) as u64);
            let v = format!("rbuf{k}");
            cx.line(format!("double *const {v} = (double *){s};"));
            Some(v)
        };
        let nt = tp
            .iter()
            .flatten()
            .map(|v| v.len())
            .max()
            .unwrap_or(1)
            .max(1);
        let mut idx = Vec::with_capacity(p.out_n * nt);
        let mut wts = Vec::with_capacity(p.out_n * nt);
        let mut ext = Vec::with_capacity(p.out_n);
        for t in tp {
            match t {
                None => {
                    ext.push("1".to_string());
                    idx.extend(std::iter::repeat_n("0".to_string(), nt));
                    wts.extend(std::iter::repeat_n("0.0".to_string(), nt));
                }
                Some(v) => {
                    ext.push("0".to_string());
                    for j in 0..nt {
                        let (i, w) = v.get(j).copied().unwrap_or((0, 0.0));
                        idx.push(i.to_string());
                        wts.push(format!("{w:?}"));
                    }
                }
            }
        }
        cx.line("{");
        cx.line(format!(
            "static const int32_t ti[{}] = {{{}}};",
            idx.len(),
            idx.join(", ")
        ));
        cx.line(format!(
            "static const double tw[{}] = {{{}}};",
            wts.len(),
            wts.join(", ")
        ));
        if extrapolates {
            cx.line(format!(
                "static const uint8_t tx[{}] = {{{}}};",
                ext.len(),
                ext.join(", ")
            ));
        }
        cx.line(format!("for (size_t o = 0; o < {outer}; o++) {{"));
        cx.line(format!("for (size_t q = 0; q < {}; q++) {{", p.out_n));
        cx.line(format!("for (size_t e = 0; e < {inner}; e++) {{"));
        cx.line("double acc = 0.0;");
        if extrapolates {
            cx.line(format!("if (tx[q]) acc = {ev:?}; else"));
        }
        cx.line(format!("for (size_t j = 0; j < {nt}; j++) {{"));
        let si = format!("(o * {in_n} + (size_t)ti[q * {nt} + j]) * {inner} + e");
        let sv = match &src_buf {
            None => format!("(double){}", x.load(&si)),
            Some(b) => format!("{b}[{si}]"),
        };
        cx.line(format!("acc += tw[q * {nt} + j] * {sv};"));
        cx.line("}");
        let di = format!("(o * {} + q) * {inner} + e", p.out_n);
        match &dst_buf {
            Some(b) => cx.line(format!("{b}[{di}] = acc;")),
            None => cx.line(store_rounded(y, &di, "acc")?),
        }
        cx.line("}");
        cx.line("}");
        cx.line("}");
        cx.line("}");
        src_buf = dst_buf;
    }
    Ok(())
}

/// Stores double `v` into `y[i]`: floats rounded by the cast, integers rounded half to even
/// and clamped to the type's range (as the interpreter does).
fn store_rounded(y: &CTensor, i: &str, v: &str) -> Result<String, LowerError> {
    let range = match y.dtype {
        DType::I8 => Some(("-128.0", "127.0")),
        DType::U8 => Some(("0.0", "255.0")),
        DType::I16 => Some(("-32768.0", "32767.0")),
        DType::U16 => Some(("0.0", "65535.0")),
        DType::I32 => Some(("-2147483648.0", "2147483647.0")),
        DType::U32 => Some(("0.0", "4294967295.0")),
        DType::I64 => Some(("-9223372036854775808.0", "9223372036854774784.0")),
        DType::U64 => Some(("0.0", "18446744073709549568.0")),
        _ => None,
    };
    Ok(match range {
        Some((lo, hi)) => format!(
            "{{ double r = nearbyint({v}); r = r < {lo} ? {lo} : (r > {hi} ? {hi} : r); {}[{i}] = ({})r; }}",
            y.expr,
            y.ctype()
        ),
        None => {
            let t = y.compute_type();
            y.store(i, &format!("({t}){v}"))
        }
    })
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
    fn linear_half_pixel_taps_clamp_at_the_edges() {
        let it = interp("linear", "half_pixel");
        // 2 -> 4: x = -0.25 (clamped to 0), 0.25, 0.75, 1.25.
        let t0 = taps_1d(&it, 0, 2.0, 2, 4, (0.0, 1.0)).unwrap_or_default();
        let v0: f64 = t0.iter().map(|&(i, w)| w * [1.0, 2.0][i]).sum();
        assert_eq!(v0, 1.0);
        let t1 = taps_1d(&it, 1, 2.0, 2, 4, (0.0, 1.0)).unwrap_or_default();
        let v1: f64 = t1.iter().map(|&(i, w)| w * [1.0, 2.0][i]).sum();
        assert_eq!(v1, 1.25);
    }

    #[test]
    fn crop_and_resize_extrapolates_outside_the_roi() {
        let it = interp("linear", "tf_crop_and_resize");
        assert!(taps_1d(&it, 0, 2.0, 4, 8, (-0.5, 1.5)).is_none());
        assert!(taps_1d(&it, 4, 2.0, 4, 8, (-0.5, 1.5)).is_some());
    }
}
