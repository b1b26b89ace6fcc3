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
use petasos_ir::ops::nn::resize::{taps_1d, Interp, Resize, Upsample};
use petasos_ir::DType;

/// Registers this family's lowerings.
pub fn register(r: &mut Registry) {
    r.op("Resize", lower_resize);
    r.op("Upsample", lower_upsample);
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
    let crop = !op.legacy && op.interp.coord == "tf_crop_and_resize";
    if crop {
        if let Some(rt) = cx.opt_input(1).filter(|t| t.constant.is_none()).cloned() {
            if rt.numel() != 2 * axes.len() || !rt.dtype.is_float() {
                return Err(cx.invalid(format!("roi has {} values", rt.numel())));
            }
            let rt_roi = RuntimeRoi { roi: rt, axes };
            return emit_resize(cx, &x, &y, &op.interp, &out, &sc, None, Some(&rt_roi));
        }
    }
    let roi = if crop {
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
    emit_resize(cx, &x, &y, &op.interp, &out, &sc, roi.as_deref(), None)
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
    emit_resize(cx, &x, &y, &it, &out, &sc, None, None)
}

/// A `tf_crop_and_resize` roi read at run time: the roi input and the axes it covers.
struct RuntimeRoi {
    roi: CTensor,
    axes: Vec<usize>,
}

/// Emits the resize of `x` into `y` (see the module docs); with a run-time roi the taps of
/// its axes are computed at run time by `pt_rs_taps`.
#[allow(clippy::too_many_arguments)]
fn emit_resize(
    cx: &mut LowerCx<'_>,
    x: &CTensor,
    y: &CTensor,
    it: &Interp,
    out: &[usize],
    sc: &[f64],
    roi: Option<&[f64]>,
    rt_roi: Option<&RuntimeRoi>,
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
    let mut plans = axis_plans(&x.shape, out, sc, roi);
    if let Some(rr) = rt_roi {
        // Every roi axis is resized (its identity depends on run-time values).
        for &a in &rr.axes {
            if !plans.iter().any(|p| p.axis == a) {
                plans.push(AxisPlan {
                    axis: a,
                    out_n: out[a],
                    scale: sc[a],
                    roi: (0.0, 1.0),
                });
            }
        }
        plans.sort_by_key(|p| p.axis);
    }
    let taps: Vec<Vec<Taps>> = plans
        .iter()
        .map(|p| {
            (0..p.out_n)
                .map(|o| taps_1d(it, o, p.scale, x.shape[p.axis], p.out_n, p.roi))
                .collect()
        })
        .collect();
    let extrapolates = rt_roi.is_some() || taps.iter().flatten().any(|t| t.is_none());
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
        let rt_axis =
            rt_roi.and_then(|rr| rr.axes.iter().position(|&a| a == p.axis).map(|i| (rr, i)));
        if let Some((rr, i)) = rt_axis {
            let nt = runtime_taps(it, p.scale);
            emit_runtime_taps(cx, it, &rr.roi, rr.axes.len(), i, p, in_n, nt)?;
            emit_pass(
                cx, x, y, &src_buf, &dst_buf, outer, in_n, inner, p.out_n, nt, true, ev,
            )?;
            cx.line("}");
            src_buf = dst_buf;
            continue;
        }
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
        emit_pass(
            cx,
            x,
            y,
            &src_buf,
            &dst_buf,
            outer,
            in_n,
            inner,
            p.out_n,
            nt,
            extrapolates,
            ev,
        )?;
        cx.line("}");
        src_buf = dst_buf;
    }
    Ok(())
}

/// Emits one separable pass reading taps from `ti`/`tw` (and `tx` when `ext`): from `x` or
/// double buffer `src_buf`, into double buffer `dst_buf` or (last pass) `y`.
#[allow(clippy::too_many_arguments)]
fn emit_pass(
    cx: &mut LowerCx<'_>,
    x: &CTensor,
    y: &CTensor,
    src_buf: &Option<String>,
    dst_buf: &Option<String>,
    outer: usize,
    in_n: usize,
    inner: usize,
    out_n: usize,
    nt: usize,
    ext: bool,
    ev: f64,
) -> Result<(), LowerError> {
    cx.line(format!("for (size_t o = 0; o < {outer}; o++) {{"));
    cx.line(format!("for (size_t q = 0; q < {out_n}; q++) {{"));
    cx.line(format!("for (size_t e = 0; e < {inner}; e++) {{"));
    cx.line("double acc = 0.0;");
    if ext {
        cx.line(format!("if (tx[q]) acc = {ev:?}; else"));
    }
    cx.line(format!("for (size_t j = 0; j < {nt}; j++) {{"));
    let si = format!("(o * {in_n} + (size_t)ti[q * {nt} + j]) * {inner} + e");
    let sv = match src_buf {
        None => format!("(double){}", x.load(&si)),
        Some(b) => format!("{b}[{si}]"),
    };
    cx.line(format!("acc += tw[q * {nt} + j] * {sv};"));
    cx.line("}");
    let di = format!("(o * {out_n} + q) * {inner} + e");
    match dst_buf {
        Some(b) => cx.line(format!("{b}[{di}] = acc;")),
        None => cx.line(store_rounded(y, &di, "acc")?),
    }
    cx.close(3);
    Ok(())
}

/// Taps per output position for `it` at `scale` (what `taps_1d` produces).
fn runtime_taps(it: &Interp, scale: f64) -> usize {
    if it.mode == "nearest" {
        return 1;
    }
    let support = if it.mode == "cubic" { 2.0 } else { 1.0 };
    let s = if it.antialias { scale.min(1.0) } else { 1.0 };
    let start = (-support / s).floor() as i64 + 1;
    (2 - 2 * start).max(1) as usize
}

/// The C twin of [`taps_1d`] after the coordinate: fills `nt` taps for source coordinate
/// `x` (mode 0 nearest, 1 linear, 2 cubic; nearest mode 0 round_prefer_floor, 1
/// round_prefer_ceil, 2 floor, 3 ceil).
const RESIZE_HELPER: &str = r#"#ifndef PT_RESIZE_TAPS_HELPER
#define PT_RESIZE_TAPS_HELPER
static double pt_rs_cubic(double t, double a) {
  t = fabs(t);
  if (t <= 1.0) return ((a + 2.0) * t - (a + 3.0)) * t * t + 1.0;
  if (t < 2.0) return ((a * t - 5.0 * a) * t + 8.0 * a) * t - 4.0 * a;
  return 0.0;
}
static void pt_rs_taps(double x, int mode, int nmode, double a, int antialias, double s,
                       int excl, int64_t last, int nt, int32_t *ti, double *tw) {
  double flo = floor(x), frac = x - flo;
  int64_t fl = (int64_t)flo;
  if (mode == 0) {
    int up = frac != 0.0 && (nmode == 1 ? frac >= 0.5 : nmode == 2 ? 0 : nmode == 3 ? 1 : frac > 0.5);
    int64_t i = fl + up;
    ti[0] = (int32_t)(i < 0 ? 0 : (i > last ? last : i));
    tw[0] = 1.0;
    return;
  }
  double support = mode == 2 ? 2.0 : 1.0;
  int64_t start = (int64_t)floor(-support / s) + 1;
  int64_t first = frac == 0.0 ? fl + start - 1 : fl + start;
  double sum = 0.0;
  for (int j = 0; j < nt; j++) {
    int64_t i = first + j;
    double t = ((double)i - x) * s;
    double k = mode == 2 ? pt_rs_cubic(t, a) : (1.0 - fabs(t) > 0.0 ? 1.0 - fabs(t) : 0.0);
    ti[j] = (int32_t)i;
    tw[j] = k;
    sum += k;
  }
  if (antialias && sum != 0.0) for (int j = 0; j < nt; j++) tw[j] /= sum;
  if (excl) {
    sum = 0.0;
    for (int j = 0; j < nt; j++) {
      if (ti[j] < 0 || ti[j] > last) tw[j] = 0.0;
      sum += tw[j];
    }
    if (sum != 0.0) for (int j = 0; j < nt; j++) tw[j] /= sum;
  }
  for (int j = 0; j < nt; j++) ti[j] = (int32_t)(ti[j] < 0 ? 0 : (ti[j] > last ? last : ti[j]));
}
#endif
"#;

/// Emits run-time tap tables `ti`/`tw`/`tx` (in scratch) for roi axis number `i` of a
/// `tf_crop_and_resize` resize, reading the roi values at run time.
#[allow(clippy::too_many_arguments)]
fn emit_runtime_taps(
    cx: &mut LowerCx<'_>,
    it: &Interp,
    roi: &CTensor,
    nax: usize,
    i: usize,
    p: &AxisPlan,
    in_n: usize,
    nt: usize,
) -> Result<(), LowerError> {
    if in_n > i32::MAX as usize {
        return Err(cx.unsupported("an axis longer than 2^31"));
    }
    cx.global(RESIZE_HELPER);
    let n = p.out_n;
    let ti = cx.scratch((n * nt * 4) as u64);
    let tw = cx.scratch((n * nt * 8) as u64);
    let tx = cx.scratch(n as u64);
    cx.line(format!("int32_t *const ti = (int32_t *){ti};"));
    cx.line(format!("double *const tw = (double *){tw};"));
    cx.line(format!("uint8_t *const tx = (uint8_t *){tx};"));
    let mode = match it.mode.as_str() {
        "nearest" => 0,
        "linear" => 1,
        _ => 2,
    };
    let nmode = match it.nearest_mode.as_str() {
        "round_prefer_ceil" => 1,
        "floor" => 2,
        "ceil" => 3,
        _ => 0,
    };
    let inw = in_n as f64;
    let outw = p.scale * inw;
    let s = if it.antialias { p.scale.min(1.0) } else { 1.0 };
    cx.line(format!(
        "const double r0 = (double){}, r1 = (double){};",
        roi.load(&i.to_string()),
        roi.load(&(i + nax).to_string())
    ));
    cx.line(format!("for (size_t q = 0; q < {n}; q++) {{"));
    if outw == 1.0 {
        cx.line(format!("double xc = (r1 - r0) * ({inw:?} - 1.0) / 2.0;"));
    } else {
        cx.line(format!(
            "double xc = (double)q * (r1 - r0) * ({inw:?} - 1.0) / ({outw:?} - 1.0);"
        ));
    }
    cx.line(format!("xc = xc + r0 * ({inw:?} - 1.0);"));
    cx.line(format!(
        "tx[q] = (uint8_t)(xc < 0.0 || xc > {inw:?} - 1.0);"
    ));
    cx.line(format!(
        "for (int j = 0; j < {nt}; j++) {{ ti[q * {nt} + j] = 0; tw[q * {nt} + j] = 0.0; }}"
    ));
    cx.line(format!(
        "if (!tx[q]) pt_rs_taps(xc, {mode}, {nmode}, {:?}, {}, {s:?}, {}, {}, {nt}, ti + q * {nt}, tw + q * {nt});",
        it.cubic_coeff_a as f64,
        i32::from(it.antialias),
        i32::from(it.exclude_outside),
        in_n.saturating_sub(1)
    ));
    cx.line("}");
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
    fn runtime_tap_counts_match_the_compile_time_taps() {
        for (mode, aa, scale) in [
            ("nearest", false, 2.0),
            ("linear", false, 0.5),
            ("cubic", false, 3.0),
            ("linear", true, 0.25),
            ("cubic", true, 0.3),
        ] {
            let mut it = interp(mode, "half_pixel");
            it.antialias = aa;
            let out_n = (10.0 * scale) as usize;
            let t = taps_1d(&it, 1, scale, 10, out_n, (0.0, 1.0)).unwrap_or_default();
            assert_eq!(t.len(), runtime_taps(&it, scale), "{mode} {aa} {scale}");
        }
    }

    #[test]
    fn crop_and_resize_extrapolates_outside_the_roi() {
        let it = interp("linear", "tf_crop_and_resize");
        assert!(taps_1d(&it, 0, 2.0, 4, 8, (-0.5, 1.5)).is_none());
        assert!(taps_1d(&it, 4, 2.0, 4, 8, (-0.5, 1.5)).is_some());
    }
}
