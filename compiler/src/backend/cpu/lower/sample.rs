//! Spatial sampling lowerings: GridSample (2-D/3-D; nearest, linear, cubic; zeros, border,
//! reflection padding), AffineGrid and RoiAlign — computed in double at run time with the
//! interpreter's formulas. GridSample's tap computation is one shared C helper (emitted once
//! per model behind an include guard); its taps serve every channel of a location.

use super::gather::open_loops;
use super::operand::{ctype, literal};
use super::{LowerCx, LowerError, Registry};
use petasos_ir::ops::nn::sample::{AffineGrid, GridSample, RoiAlign};

/// Registers this family's lowerings.
pub fn register(r: &mut Registry) {
    r.op("GridSample", lower_grid_sample);
    r.op("AffineGrid", lower_affine_grid);
    r.op("RoiAlign", lower_roi_align);
}

/// The GridSample tap helper: for sampling coordinates `c` (per spatial axis, in pixels),
/// writes up to 64 `(offset in the plane, weight)` pairs (offset -1: a zero pixel) and
/// returns their count.
const GRID_HELPER: &str = r#"#ifndef PT_GRID_SAMPLE_HELPER
#define PT_GRID_SAMPLE_HELPER
static double pt_gs_reflect(double x, double lo, double hi) {
  double rng = hi - lo;
  if (rng <= 0.0) return lo;
  if (x < lo) {
    double dx = lo - x, n = trunc(dx / rng), r = dx - n * rng;
    return ((int64_t)n % 2 == 0) ? lo + r : hi - r;
  }
  if (x > hi) {
    double dx = x - hi, n = trunc(dx / rng), r = dx - n * rng;
    return ((int64_t)n % 2 == 0) ? hi - r : lo + r;
  }
  return x;
}
static int64_t pt_gs_i64(double v) {
  if (v != v) return 0;
  if (v > 9.0e18) return INT64_MAX;
  if (v < -9.0e18) return INT64_MIN;
  return (int64_t)v;
}
static double pt_gs_cubic(double x) {
  const double a = -0.75;
  x = fabs(x);
  if (x <= 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a;
  return 0.0;
}
/* mode: 0 nearest, 1 linear, 2 cubic; pad: 0 zeros, 1 border, 2 reflection. */
static int64_t pt_gs_offset(int pad, int nd, const int64_t *dims, const int64_t *idx,
                            const double *lo, const double *hi) {
  int64_t off = 0;
  for (int j = 0; j < nd; j++) {
    int64_t i = idx[j], d = dims[j];
    if (pad == 0) {
      if (i < 0 || i >= d) return -1;
    } else if (pad == 1) {
      i = i < 0 ? 0 : (i > d - 1 ? d - 1 : i);
    } else {
      i = pt_gs_i64(pt_gs_reflect((double)i, lo[j], hi[j]));
      i = i < 0 ? 0 : (i > d - 1 ? d - 1 : i);
    }
    off = off * d + i;
  }
  return off;
}
static int pt_gs_taps(int mode, int pad, int align, int nd, const int64_t *dims,
                      const double *c, int64_t *offs, double *wts) {
  double x[3], lo[3], hi[3], w[3][4];
  int64_t base[3], idx[3];
  for (int j = 0; j < nd; j++) {
    lo[j] = align ? 0.0 : -0.5;
    hi[j] = align ? (double)dims[j] - 1.0 : (double)dims[j] - 0.5;
    x[j] = mode == 0 ? nearbyint(c[j]) : c[j];
    if (x[j] < lo[j] || x[j] > hi[j]) {
      if (pad == 1) {
        double m = (double)dims[j] - 1.0;
        x[j] = x[j] < 0.0 ? 0.0 : (x[j] > m ? m : x[j]);
      } else if (pad == 2) {
        x[j] = pt_gs_reflect(x[j], lo[j], hi[j]);
      }
    }
  }
  if (mode == 0) {
    for (int j = 0; j < nd; j++) idx[j] = pt_gs_i64(trunc(x[j]));
    offs[0] = pt_gs_offset(pad, nd, dims, idx, lo, hi);
    wts[0] = 1.0;
    return 1;
  }
  int n = mode == 2 ? 4 : 2;
  for (int j = 0; j < nd; j++) {
    double f = floor(x[j]), t = x[j] - f;
    if (n == 4) {
      base[j] = pt_gs_i64(f) - 1;
      w[j][0] = pt_gs_cubic(t + 1.0); w[j][1] = pt_gs_cubic(t);
      w[j][2] = pt_gs_cubic(1.0 - t); w[j][3] = pt_gs_cubic(2.0 - t);
    } else {
      base[j] = pt_gs_i64(f);
      w[j][0] = 1.0 - t; w[j][1] = t; w[j][2] = 0.0; w[j][3] = 0.0;
    }
  }
  int corners = 1, cnt = 0;
  for (int j = 0; j < nd; j++) corners *= n;
  for (int k = 0; k < corners; k++) {
    int rem = k, cc[3];
    double wt = 1.0;
    for (int j = nd - 1; j >= 0; j--) {
      cc[j] = rem % n;
      rem /= n;
    }
    for (int j = 0; j < nd; j++) {
      idx[j] = base[j] + cc[j];
      wt *= w[j][cc[j]];
    }
    if (wt != 0.0) {
      offs[cnt] = pt_gs_offset(pad, nd, dims, idx, lo, hi);
      wts[cnt] = wt;
      cnt++;
    }
  }
  return cnt;
}
#endif
"#;

fn lower_grid_sample(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let (x, g, y) = (
        cx.input(0)?.clone(),
        cx.input(1)?.clone(),
        cx.output(0)?.clone(),
    );
    ctype(cx, &x)?;
    ctype(cx, &g)?;
    let op = cx.op::<GridSample>()?.clone();
    if !x.dtype.is_float() || !g.dtype.is_float() {
        return Err(cx.unsupported(format!("GridSample of {} with a {} grid", x.dtype, g.dtype)));
    }
    let (xs, gs) = (&x.shape, &g.shape);
    let nd = xs.len().saturating_sub(2);
    if !(1..=3).contains(&nd) || gs.len() != xs.len() || gs[0] != xs[0] || gs[gs.len() - 1] != nd {
        return Err(cx.invalid(format!("input {xs:?} and grid {gs:?} do not fit")));
    }
    if xs[2..].contains(&0) {
        return Err(cx.invalid("input has an empty spatial axis".into()));
    }
    let (n, c) = (xs[0], xs[1]);
    let dims = &xs[2..];
    let iv: usize = dims.iter().product();
    let ov: usize = gs[1..gs.len() - 1].iter().product();
    if y.numel() == 0 {
        return Ok(());
    }
    let mode = match op.mode.as_str() {
        "nearest" => 0,
        "linear" => 1,
        _ => 2,
    };
    let pad = match op.padding_mode.as_str() {
        "zeros" => 0,
        "border" => 1,
        _ => 2,
    };
    cx.global(GRID_HELPER);
    let dl: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    cx.line(format!(
        "static const int64_t dims[{nd}] = {{{}}};",
        dl.join(", ")
    ));
    cx.line("int64_t offs[64];");
    cx.line("double wts[64], co[3];");
    cx.line(format!("for (size_t b = 0; b < {n}; b++) {{"));
    cx.line(format!("for (size_t o = 0; o < {ov}; o++) {{"));
    cx.line(format!("const size_t gp = (b * {ov} + o) * {nd};"));
    for (j, &dj) in dims.iter().enumerate() {
        let v = g.load(&format!("gp + {}", nd - 1 - j));
        let d = dj as f64;
        let e = if op.align_corners {
            format!("(v + 1.0) / 2.0 * ({d:?} - 1.0)")
        } else {
            format!("((v + 1.0) * {d:?} - 1.0) / 2.0")
        };
        cx.line(format!(
            "{{ const double v = (double){v}; co[{j}] = {e}; }}"
        ));
    }
    cx.line(format!(
        "const int cnt = pt_gs_taps({mode}, {pad}, {}, {nd}, dims, co, offs, wts);",
        i32::from(op.align_corners)
    ));
    cx.line(format!("for (size_t ci = 0; ci < {c}; ci++) {{"));
    cx.line(format!("const size_t plane = (b * {c} + ci) * {iv};"));
    cx.line("double acc = 0.0;");
    cx.line("for (int k = 0; k < cnt; k++) {");
    cx.line(format!(
        "if (offs[k] >= 0) acc += wts[k] * (double){};",
        x.load("plane + (size_t)offs[k]")
    ));
    cx.line("}");
    let t = y.compute_type();
    cx.line(y.store(&format!("(b * {c} + ci) * {ov} + o"), &format!("({t})acc")));
    cx.close(3);
    Ok(())
}

fn lower_affine_grid(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let (th, y) = (cx.input(0)?.clone(), cx.output(0)?.clone());
    ctype(cx, &th)?;
    if !th.dtype.is_float() || y.dtype != th.dtype {
        return Err(cx.unsupported(format!("AffineGrid of {}", th.dtype)));
    }
    let align = cx.op::<AffineGrid>()?.align_corners;
    let r = y.rank();
    if r < 4 {
        return Err(cx.invalid(format!("output {:?} must be (N, spatial..., nd)", y.shape)));
    }
    let nd = y.shape[r - 1];
    let n = y.shape[0];
    let sp = y.shape[1..r - 1].to_vec();
    if nd != sp.len() || !(nd == 2 || nd == 3) || th.shape != [n, nd, nd + 1] {
        return Err(cx.invalid(format!(
            "theta {:?} does not fit output {:?}",
            th.shape, y.shape
        )));
    }
    if y.numel() == 0 {
        return Ok(());
    }
    // Normalised base coordinates of every spatial axis.
    for (j, &d) in sp.iter().enumerate() {
        let vals: Vec<String> = (0..d)
            .map(|i| {
                let v = if align {
                    if d <= 1 {
                        -1.0
                    } else {
                        -1.0 + 2.0 * i as f64 / (d - 1) as f64
                    }
                } else {
                    -1.0 + (2 * i + 1) as f64 / d as f64
                };
                format!("{v:?}")
            })
            .collect();
        cx.line(format!(
            "static const double base{j}[{d}] = {{{}}};",
            vals.join(", ")
        ));
    }
    let k = nd * (nd + 1);
    cx.line("size_t f = 0;");
    cx.line(format!("for (size_t b = 0; b < {n}; b++) {{"));
    let loops = open_loops(cx, &sp);
    // Homogeneous point: p[j] follows spatial axis nd-1-j.
    let p: Vec<String> = (0..nd)
        .map(|j| {
            let a = nd - 1 - j;
            format!("base{a}[i{a}]")
        })
        .chain(std::iter::once("1.0".to_string()))
        .collect();
    for row in 0..nd {
        let terms: Vec<String> = p
            .iter()
            .enumerate()
            .map(|(kk, pv)| {
                format!(
                    "(double){} * {pv}",
                    th.load(&format!("b * {k} + {}", row * (nd + 1) + kk))
                )
            })
            .collect();
        let t = y.compute_type();
        cx.line(y.store(
            &format!("f + {row}"),
            &format!("({t})(0.0 + {})", terms.join(" + ")),
        ));
    }
    cx.line(format!("f += {nd};"));
    cx.close(loops);
    cx.line("}");
    Ok(())
}

fn lower_roi_align(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let (x, rois, bi, y) = (
        cx.input(0)?.clone(),
        cx.input(1)?.clone(),
        cx.input(2)?.clone(),
        cx.output(0)?.clone(),
    );
    ctype(cx, &x)?;
    let op = cx.op::<RoiAlign>()?.clone();
    let &[n, c, h, w] = x.shape.as_slice() else {
        return Err(cx.invalid(format!("X must be (N, C, H, W), got {:?}", x.shape)));
    };
    let nr = rois.shape.first().copied().unwrap_or(0);
    if rois.shape != [nr, 4] || bi.numel() != nr || !bi.dtype.is_int() || !x.dtype.is_float() {
        return Err(cx.invalid("rois must be (R, 4) with R integer batch indices".into()));
    }
    let (oh, ow) = (op.output_height, op.output_width);
    if y.shape != [nr, c, oh, ow] {
        return Err(cx.invalid(format!("output {:?} does not fit", y.shape)));
    }
    if y.numel() == 0 {
        return Ok(());
    }
    let avg = op.mode == "avg";
    let off = if op.half_pixel { "0.5" } else { "0.0" };
    let scale = literal(petasos_ir::DType::F64, op.spatial_scale as f64);
    let f = cx.fn_name.clone();
    let sr = op.sampling_ratio;
    cx.line(format!("for (size_t r = 0; r < {nr}; r++) {{"));
    cx.line(format!("const int64_t b = (int64_t){};", bi.load("r")));
    cx.line(format!("if (b < 0 || b >= {n}) {{"));
    cx.line(format!(
        "pt_set_error(\"{f}: batch index %lld out of range\", (long long)b);"
    ));
    cx.line("return;");
    cx.line("}");
    let rv = |i: usize| format!("(double){}", rois.load(&format!("r * 4 + {i}")));
    cx.line(format!("const double sw = {} * {scale} - {off};", rv(0)));
    cx.line(format!("const double sh = {} * {scale} - {off};", rv(1)));
    cx.line(format!("double rw = {} * {scale} - {off} - sw;", rv(2)));
    cx.line(format!("double rh = {} * {scale} - {off} - sh;", rv(3)));
    if !op.half_pixel {
        cx.line("rw = rw > 1.0 ? rw : 1.0;");
        cx.line("rh = rh > 1.0 ? rh : 1.0;");
    }
    cx.line(format!("const double bh = rh / {oh}.0, bw = rw / {ow}.0;"));
    if sr > 0 {
        cx.line(format!("const size_t gh = {sr}, gw = {sr};"));
    } else {
        cx.line(format!(
            "const double ghd = ceil(rh / {oh}.0), gwd = ceil(rw / {ow}.0);"
        ));
        cx.line("const size_t gh = ghd > 0.0 ? (size_t)ghd : 0, gw = gwd > 0.0 ? (size_t)gwd : 0;");
    }
    cx.line("const double count = (gh * gw) > 0 ? (double)(gh * gw) : 1.0;");
    cx.line(format!("for (size_t ph = 0; ph < {oh}; ph++) {{"));
    cx.line(format!("for (size_t pw = 0; pw < {ow}; pw++) {{"));
    cx.line(format!("for (size_t ci = 0; ci < {c}; ci++) {{"));
    cx.line(format!(
        "const size_t plane = ((size_t)b * {c} + ci) * {};",
        h * w
    ));
    cx.line(if avg {
        "double acc = 0.0;"
    } else {
        "double acc = -INFINITY;"
    });
    cx.line("for (size_t iy = 0; iy < gh; iy++) {");
    cx.line("const double yy = sh + (double)ph * bh + ((double)iy + 0.5) * bh / (double)gh;");
    cx.line("for (size_t ix = 0; ix < gw; ix++) {");
    cx.line("const double xx = sw + (double)pw * bw + ((double)ix + 0.5) * bw / (double)gw;");
    cx.line("size_t p0 = 0, p1 = 0, p2 = 0, p3 = 0;");
    cx.line("double w0 = 0.0, w1 = 0.0, w2 = 0.0, w3 = 0.0;");
    cx.line(format!(
        "if (!(yy < -1.0 || yy > {h}.0 || xx < -1.0 || xx > {w}.0)) {{"
    ));
    cx.line("double yv = yy > 0.0 ? yy : 0.0, xv = xx > 0.0 ? xx : 0.0;");
    cx.line("size_t yl = (size_t)yv, xl = (size_t)xv, yh, xh;");
    cx.line(format!(
        "if (yl >= {}) {{ yl = {}; yh = {}; yv = (double)yl; }} else yh = yl + 1;",
        h - 1,
        h - 1,
        h - 1
    ));
    cx.line(format!(
        "if (xl >= {}) {{ xl = {}; xh = {}; xv = (double)xl; }} else xh = xl + 1;",
        w - 1,
        w - 1,
        w - 1
    ));
    cx.line("const double ly = yv - (double)yl, lx = xv - (double)xl;");
    cx.line("const double hy = 1.0 - ly, hx = 1.0 - lx;");
    cx.line(format!(
        "p0 = yl * {w} + xl; p1 = yl * {w} + xh; p2 = yh * {w} + xl; p3 = yh * {w} + xh;"
    ));
    cx.line("w0 = hy * hx; w1 = hy * lx; w2 = ly * hx; w3 = ly * lx;");
    cx.line("}");
    let px = |p: &str| format!("(double){}", x.load(&format!("plane + {p}")));
    let terms = [
        format!("w0 * {}", px("p0")),
        format!("w1 * {}", px("p1")),
        format!("w2 * {}", px("p2")),
        format!("w3 * {}", px("p3")),
    ];
    if avg {
        cx.line(format!(
            "acc += 0.0 + {} + {} + {} + {};",
            terms[0], terms[1], terms[2], terms[3]
        ));
    } else {
        cx.line(format!(
            "acc = fmax(acc, fmax(fmax({}, {}), fmax({}, {})));",
            terms[0], terms[1], terms[2], terms[3]
        ));
    }
    cx.close(2);
    if avg {
        cx.line("acc /= count;");
    } else {
        cx.line("if (!isfinite(acc)) acc = 0.0;");
    }
    let t = y.compute_type();
    cx.line(y.store(
        &format!("((r * {c} + ci) * {oh} + ph) * {ow} + pw"),
        &format!("({t})acc"),
    ));
    cx.close(4);
    Ok(())
}
