//! Quantisation lowerings: QuantizeLinear, DequantizeLinear (per tensor, per axis, blocked;
//! integer, float8 and float4 types), DynamicQuantizeLinear, MatMulInteger, QLinearMatMul,
//! ConvInteger and QLinearConv (2-D), with the interpreter's arithmetic (ir `ops::quant`,
//! `ops::nn::conv`): quotients rounded to the computation type, ties to even, saturation to
//! the output range, NaN to 0.

use super::cast::{load, store, to_double, FloatRules, Val, DEFAULT_RULES};
use super::{CTensor, LowerCx, LowerError, Registry};
use petasos_ir::op::norm_axis;
use petasos_ir::ops::nn::conv::{ConvInteger, QLinearConv};
use petasos_ir::ops::nn::geom::WinAttrs;
use petasos_ir::ops::quant::linear::{promote_float, DequantizeLinear, QuantizeLinear};
use petasos_ir::DType;

/// Registers this family's lowerings.
pub fn register(r: &mut Registry) {
    r.op("QuantizeLinear", lower_quantize);
    r.op("DequantizeLinear", lower_dequantize);
    r.op("DynamicQuantizeLinear", lower_dynamic_quantize);
    r.op("MatMulInteger", lower_matmul_integer);
    r.op("QLinearMatMul", lower_qlinear_matmul);
    r.op("ConvInteger", lower_conv_integer);
    r.op("QLinearConv", lower_qlinear_conv);
    for op in ["QuantizeLinear", "DequantizeLinear"] {
        r.exotic_dtypes(op);
    }
}

/// A C `double` expression of `v` rounded to float type `d` as the interpreter's
/// `DType::round_f64` does (f16 through float32, as the `half` crate on x86), or `None`.
pub fn round_to(d: DType, v: &str) -> Option<String> {
    Some(match d {
        DType::F64 => format!("({v})"),
        DType::F32 => format!("((double)(float)({v}))"),
        DType::F16 => format!("((double)pt_h2f(pt_f2h((float)({v}))))"),
        DType::BF16 => format!("((double)pt_bf2f(pt_d2bf({v})))"),
        _ => return None,
    })
}

/// Element `idx` of `t` as a `double` expression, or an unsupported-dtype error.
fn load_d(cx: &LowerCx<'_>, t: &CTensor, idx: &str) -> Result<String, LowerError> {
    let (v, k) = load(t, idx).ok_or_else(|| cx.unsupported(format!("dtype {}", t.dtype)))?;
    Ok(to_double(&v, k))
}

/// A C expression of the parameter index of element `i` of a tensor of shape `xs` for a
/// scale / zero point of shape `ps` (one value, one per `axis` index, or one per `block` of
/// the axis), as ir `param_index`; checks the shapes.
fn param_index(
    cx: &LowerCx<'_>,
    xs: &[usize],
    ps: &[usize],
    axis: i64,
    block: usize,
) -> Result<String, LowerError> {
    let pn: usize = ps.iter().product();
    if pn == 1 {
        return Ok("0".into());
    }
    let ax = norm_axis(axis, xs.len()).map_err(|e| cx.invalid(e.to_string()))?;
    let inner: usize = xs[ax + 1..].iter().product();
    let dim = xs[ax];
    if block == 0 {
        if ps != [dim] {
            return Err(cx.invalid(format!(
                "per-axis parameter shape {ps:?} does not fit {xs:?} on axis {ax}"
            )));
        }
        return Ok(format!("((i / {inner}) % {dim})"));
    }
    let nb = dim.div_ceil(block);
    let fits = ps.len() == xs.len()
        && ps
            .iter()
            .zip(xs)
            .enumerate()
            .all(|(j, (&p, &x))| if j == ax { p == nb } else { p == x });
    if !fits {
        return Err(cx.invalid(format!(
            "blocked parameter shape {ps:?} does not fit {xs:?} with block {block} on axis {ax}"
        )));
    }
    Ok(format!(
        "(((i / {}) * {nb} + ((i / {inner}) % {dim}) / {block}) * {inner} + i % {inner})",
        dim * inner
    ))
}

/// The per-element operands of QuantizeLinear / DequantizeLinear over elements `i`: C
/// expressions of the parameter index `p` of `i` ([`param_index`]), of `x[i]`, `scale[p]`
/// and `zero_point[p]` (`0.0` when absent), all `double`.
struct QParams {
    p: String,
    xd: String,
    sd: String,
    zd: String,
}

/// Checks that a zero point, when given, has the scale's element count.
fn check_zp(cx: &LowerCx<'_>, s: &CTensor, z: Option<&CTensor>) -> Result<(), LowerError> {
    match z {
        Some(z) if z.numel() != s.numel() => Err(cx.invalid(format!(
            "zero point shape {:?} differs from scale shape {:?}",
            z.shape, s.shape
        ))),
        _ => Ok(()),
    }
}

/// The [`QParams`] of `x` with scale `s` and the op's optional zero point (input 2) on
/// `axis` / `block`.
fn qparams(
    cx: &LowerCx<'_>,
    x: &CTensor,
    s: &CTensor,
    axis: i64,
    block: usize,
) -> Result<QParams, LowerError> {
    Ok(QParams {
        p: param_index(cx, &x.shape, &s.shape, axis, block)?,
        xd: load_d(cx, x, "i")?,
        sd: load_d(cx, s, "p")?,
        zd: match cx.opt_input(2) {
            Some(z) => load_d(cx, z, "p")?,
            None => "0.0".into(),
        },
    })
}

/// Emits `for (i < n) { const size_t p = P; BODY }`: one element `i` per iteration with its
/// parameter index `p`.
fn emit_param_loop(cx: &mut LowerCx<'_>, n: usize, p: &str, body: &[String]) {
    cx.line(format!("for (size_t i = 0; i < {n}; i++) {{"));
    cx.line(format!("const size_t p = {p};"));
    cx.line("(void)p;");
    for l in body {
        cx.line(l);
    }
    cx.line("}");
}

/// `QuantizeLinear`: `q = round_c(round_c(x) / round_c(scale))` in the computation type
/// (`precision`, else the promoted type of x and scale); integer outputs
/// `clamp(rint(q) + zp)`, float8/float4 outputs `cast(q + zp)` (saturating as asked).
fn lower_quantize(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let op = cx.op::<QuantizeLinear>()?.clone();
    let (x, s, y) = (
        cx.input(0)?.clone(),
        cx.input(1)?.clone(),
        cx.output(0)?.clone(),
    );
    check_zp(cx, &s, cx.opt_input(2))?;
    if !x.dtype.is_float() || !s.dtype.is_float() {
        return Err(cx.unsupported(format!("QuantizeLinear of {} by {}", x.dtype, s.dtype)));
    }
    let cdt = op
        .precision
        .unwrap_or_else(|| promote_float(x.dtype, s.dtype));
    let QParams { p, xd, sd, zd } = qparams(cx, &x, &s, op.axis, op.block_size)?;
    let rc = |v: &str| round_to(cdt, v).ok_or_else(|| cx.unsupported(format!("precision {cdt}")));
    let q = rc(&format!("{} / {}", rc(&xd)?, rc(&sd)?))?;
    let rules = FloatRules {
        saturate: op.saturate,
        round_mode: "up",
        f4_nan_zero: true,
    };
    let mut body = vec![format!("const double q = {q};")];
    if let Some((lo, hi)) = y.dtype.int_range() {
        let st = store(&y, "i", "v", Val::Signed, rules)
            .ok_or_else(|| cx.unsupported(format!("output {}", y.dtype)))?;
        body.extend([
            format!("double r = rint(q) + {zd};"),
            format!("r = r < {lo}.0 ? {lo}.0 : (r > {hi}.0 ? {hi}.0 : r);"),
            "const int64_t v = isnan(r) ? 0 : (int64_t)r;".into(),
            st,
        ]);
    } else {
        let st = store(&y, "i", "v", Val::Double, rules)
            .filter(|_| y.dtype.is_float())
            .ok_or_else(|| cx.unsupported(format!("output {}", y.dtype)))?;
        body.extend([format!("const double v = q + {zd};"), st]);
    }
    cx.need_rt("pt_types.h");
    super::cast::clear_packed(cx, &y);
    emit_param_loop(cx, y.numel(), &p, &body);
    Ok(())
}

/// `DequantizeLinear`: `y = round_f32(x - zp) * scale`, rounded to the output type.
fn lower_dequantize(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let op = cx.op::<DequantizeLinear>()?.clone();
    let (x, s, y) = (
        cx.input(0)?.clone(),
        cx.input(1)?.clone(),
        cx.output(0)?.clone(),
    );
    check_zp(cx, &s, cx.opt_input(2))?;
    if !s.dtype.is_float() || round_to(y.dtype, "0").is_none() {
        return Err(cx.unsupported(format!(
            "DequantizeLinear with scale {} to {}",
            s.dtype, y.dtype
        )));
    }
    let QParams { p, xd, sd, zd } = qparams(cx, &x, &s, op.axis, op.block_size)?;
    let st = store(&y, "i", "v", Val::Double, DEFAULT_RULES)
        .ok_or_else(|| cx.unsupported(format!("output {}", y.dtype)))?;
    cx.need_rt("pt_types.h");
    let body = [
        format!("const double v = (double)(float)({xd} - {zd}) * {sd};"),
        st,
    ];
    emit_param_loop(cx, y.numel(), &p, &body);
    Ok(())
}

/// `DynamicQuantizeLinear` in float32 arithmetic: range including 0, scale = range / 255,
/// zero point = rint(clamp(-min / scale)), y = clamp(rint(x / scale) + zp) as uint8.
fn lower_dynamic_quantize(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let x = cx.input(0)?.clone();
    let (y, ys, yz) = (
        cx.output(0)?.clone(),
        cx.output(1)?.clone(),
        cx.output(2)?.clone(),
    );
    if !matches!(x.dtype, DType::F32 | DType::F16 | DType::BF16) || y.dtype != DType::U8 {
        return Err(cx.unsupported(format!("DynamicQuantizeLinear of {}", x.dtype)));
    }
    let (xv, _) = load(&x, "i").ok_or_else(|| cx.unsupported("input dtype"))?;
    let n = x.numel();
    cx.line("float maxx = 0.0f, minx = 0.0f;");
    cx.line(format!("for (size_t i = 0; i < {n}; i++) {{"));
    cx.line(format!("const float v = {xv};"));
    cx.line("if (v > maxx) maxx = v;");
    cx.line("if (v < minx) minx = v;");
    cx.line("}");
    cx.line("const float scale = (maxx == minx ? 1.0f : maxx - minx) / 255.0f;");
    cx.line("float zf = 0.0f - minx / scale;");
    cx.line("zf = rintf(zf < 0.0f ? 0.0f : (zf > 255.0f ? 255.0f : zf));");
    cx.line("const uint8_t zp = isnan(zf) ? 0 : (uint8_t)zf;");
    cx.line(format!("for (size_t i = 0; i < {n}; i++) {{"));
    cx.line(format!("float r = rintf({xv} / scale) + zf;"));
    cx.line("r = r < 0.0f ? 0.0f : (r > 255.0f ? 255.0f : r);");
    cx.line(format!("{}[i] = isnan(r) ? 0 : (uint8_t)r;", y.expr));
    cx.line("}");
    let st = store(&ys, "0", "scale", Val::Float, DEFAULT_RULES)
        .ok_or_else(|| cx.unsupported(format!("scale output {}", ys.dtype)))?;
    cx.line(st);
    cx.line(format!("{}[0] = zp;", yz.expr));
    Ok(())
}

/// The geometry of a batched matrix product `a @ b` (numpy rules, 1-D operands promoted):
/// `(M, K, N, per-batch offsets of a, of b)` in elements.
type MatGeom = (usize, usize, usize, Vec<usize>, Vec<usize>);

fn matmul_geom(cx: &LowerCx<'_>, a: &[usize], b: &[usize]) -> Result<MatGeom, LowerError> {
    let bad = || cx.invalid(format!("matmul of {a:?} and {b:?}"));
    let a2: Vec<usize> = if a.len() == 1 {
        vec![1, a[0]]
    } else {
        a.to_vec()
    };
    let b2: Vec<usize> = if b.len() == 1 {
        vec![b[0], 1]
    } else {
        b.to_vec()
    };
    if a2.len() < 2 || b2.len() < 2 {
        return Err(bad());
    }
    let (m, k) = (a2[a2.len() - 2], a2[a2.len() - 1]);
    let (k2, n) = (b2[b2.len() - 2], b2[b2.len() - 1]);
    if k != k2 {
        return Err(bad());
    }
    let (ab, bb) = (&a2[..a2.len() - 2], &b2[..b2.len() - 2]);
    let r = ab.len().max(bb.len());
    let dim = |s: &[usize], i: usize| -> usize {
        (i + s.len())
            .checked_sub(r)
            .and_then(|j| s.get(j))
            .copied()
            .unwrap_or(1)
    };
    let mut out = Vec::with_capacity(r);
    for i in 0..r {
        let (x, y) = (dim(ab, i), dim(bb, i));
        if x != y && x != 1 && y != 1 {
            return Err(bad());
        }
        out.push(x.max(y));
    }
    let nb: usize = out.iter().product();
    let (mut ao, mut bo) = (Vec::with_capacity(nb), Vec::with_capacity(nb));
    for t in 0..nb {
        let (mut rem, mut oa, mut ob) = (t, 0usize, 0usize);
        let (mut sa, mut sb) = (m * k, k * n);
        for i in (0..r).rev() {
            let c = rem % out[i];
            rem /= out[i];
            let (x, y) = (dim(ab, i), dim(bb, i));
            if x > 1 {
                oa += c * sa;
            }
            if y > 1 {
                ob += c * sb;
            }
            sa *= x;
            sb *= y;
        }
        ao.push(oa);
        bo.push(ob);
    }
    Ok((m, k, n, ao, bo))
}

/// A C expression of an optional zero point / scale `t`: `zero` when absent, its value when
/// it has one, its element `idx` when `fits(t)` (one value per row, column or channel), else
/// the error `bad(t)`.
fn param_expr(
    cx: &LowerCx<'_>,
    t: Option<&CTensor>,
    zero: &str,
    idx: &str,
    fits: impl Fn(&CTensor) -> bool,
    bad: impl Fn(&CTensor) -> LowerError,
) -> Result<String, LowerError> {
    match t {
        None => Ok(zero.into()),
        Some(t) if t.numel() == 1 => load_d(cx, t, "0"),
        Some(t) if fits(t) => load_d(cx, t, idx),
        Some(t) => Err(bad(t)),
    }
}

/// A zero point / scale of operand A: one value, or one per row `mi` (1-D of length M).
fn row_param(
    cx: &LowerCx<'_>,
    t: Option<&CTensor>,
    m: usize,
    zero: &str,
) -> Result<String, LowerError> {
    let bad = |t: &CTensor| cx.unsupported(format!("A parameter of shape {:?}", t.shape));
    param_expr(cx, t, zero, "mi", |t| t.shape == [m], bad)
}

/// Same for operand B / the output: one value, or one per column `ni` (1-D of length N).
fn col_param(
    cx: &LowerCx<'_>,
    t: Option<&CTensor>,
    n: usize,
    zero: &str,
) -> Result<String, LowerError> {
    let bad = |t: &CTensor| cx.unsupported(format!("B/output parameter of shape {:?}", t.shape));
    param_expr(cx, t, zero, "ni", |t| t.shape == [n], bad)
}

/// Emits the batched integer product loops; the body gets `acc` (int64_t, exact) and
/// stores through `finish` (a statement using `acc`, `mi`, `ni` and the output index `o`).
#[allow(clippy::too_many_arguments)]
fn emit_int_matmul(
    cx: &mut LowerCx<'_>,
    a: &CTensor,
    b: &CTensor,
    azp: &str,
    bzp: &str,
    g: &MatGeom,
    finish: &[String],
) -> Result<(), LowerError> {
    let (m, k, n, ao, bo) = g;
    let (av, _) = load(a, "ao + mi * K + ki").ok_or_else(|| cx.unsupported("A dtype"))?;
    let (bv, _) = load(b, "bo + ki * N + ni").ok_or_else(|| cx.unsupported("B dtype"))?;
    if !a.dtype.is_int() || !b.dtype.is_int() || a.dtype.bits() > 32 || b.dtype.bits() > 32 {
        return Err(cx.unsupported(format!("integer product of {} and {}", a.dtype, b.dtype)));
    }
    let offs = |v: &[usize]| {
        v.iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let nb = ao.len();
    cx.line(format!(
        "static const size_t aoff[{nb}] = {{{}}};",
        offs(ao)
    ));
    cx.line(format!(
        "static const size_t boff[{nb}] = {{{}}};",
        offs(bo)
    ));
    cx.line(format!("enum {{ M = {m}, K = {k}, N = {n} }};\n(void)M;"));
    cx.line(format!("for (size_t t = 0; t < {nb}; t++) {{"));
    cx.line("const size_t ao = aoff[t], bo = boff[t];");
    cx.line("for (size_t mi = 0; mi < M; mi++) {");
    cx.line(format!("const int64_t za = (int64_t)({azp});"));
    cx.line("for (size_t ni = 0; ni < N; ni++) {");
    cx.line(format!("const int64_t zb = (int64_t)({bzp});"));
    cx.line("int64_t acc = 0;");
    cx.line("for (size_t ki = 0; ki < K; ki++) {");
    cx.line(format!(
        "acc += ((int64_t)({av}) - za) * ((int64_t)({bv}) - zb);"
    ));
    cx.line("}");
    cx.line("const size_t o = (t * M + mi) * N + ni;");
    for l in finish {
        cx.line(l);
    }
    cx.close(3);
    Ok(())
}

/// The epilogue statements of QLinearMatMul / QLinearConv: `rounded(lo, hi)` computes the
/// `double r`, rounded and saturated to the output range `[lo, hi]`; then `v = r` (NaN to 0)
/// is stored to `y[o]`. Declares the runtime types and clears a packed output.
fn saturated_store<L: IntoIterator<Item = String>>(
    cx: &mut LowerCx<'_>,
    y: &CTensor,
    rounded: impl FnOnce(i128, i128) -> L,
) -> Result<Vec<String>, LowerError> {
    let (lo, hi) = y
        .dtype
        .int_range()
        .ok_or_else(|| cx.unsupported(format!("output {}", y.dtype)))?;
    let st = store(y, "o", "v", Val::Signed, DEFAULT_RULES)
        .ok_or_else(|| cx.unsupported(format!("output {}", y.dtype)))?;
    cx.need_rt("pt_types.h");
    super::cast::clear_packed(cx, y);
    let mut lines: Vec<String> = rounded(lo, hi).into_iter().collect();
    lines.push("const int64_t v = isnan(r) ? 0 : (int64_t)r;".into());
    lines.push(st);
    Ok(lines)
}

/// `MatMulInteger`: `int32((A - a_zp) @ (B - b_zp))` (wrapping), zero points per tensor,
/// per row of A, per column of B.
fn lower_matmul_integer(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let (a, b, y) = (
        cx.input(0)?.clone(),
        cx.input(1)?.clone(),
        cx.output(0)?.clone(),
    );
    let g = matmul_geom(cx, &a.shape, &b.shape)?;
    let azp = row_param(cx, cx.opt_input(2), g.0, "0")?;
    let bzp = col_param(cx, cx.opt_input(3), g.2, "0")?;
    if y.dtype != DType::I32 {
        return Err(cx.invalid(format!("output is {}", y.dtype)));
    }
    cx.need_rt("pt_types.h");
    let fin = vec![format!("{}[o] = (int32_t)(uint32_t)(uint64_t)acc;", y.expr)];
    emit_int_matmul(cx, &a, &b, &azp, &bzp, &g, &fin)
}

/// `QLinearMatMul`: the integer product times `round_s(round_s(a_s * b_s) / y_s)` (the
/// scales' type), plus `y_zp`, rounded to even and saturated to the output type.
fn lower_qlinear_matmul(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let (a, a_s, b, b_s, y_s, y) = (
        cx.input(0)?.clone(),
        cx.input(1)?.clone(),
        cx.input(3)?.clone(),
        cx.input(4)?.clone(),
        cx.input(6)?.clone(),
        cx.output(0)?.clone(),
    );
    let g = matmul_geom(cx, &a.shape, &b.shape)?;
    let (m, n) = (g.0, g.2);
    let azp = row_param(cx, cx.opt_input(2), m, "0")?;
    let bzp = col_param(cx, cx.opt_input(5), n, "0")?;
    let asd = row_param(cx, Some(&a_s), m, "1")?;
    let bsd = col_param(cx, Some(&b_s), n, "1")?;
    let ysd = col_param(cx, Some(&y_s), n, "1")?;
    let yzd = col_param(cx, cx.opt_input(7), n, "0")?;
    let sdt = a_s.dtype;
    let rs = |v: &str| round_to(sdt, v).ok_or_else(|| cx.unsupported(format!("scales of {sdt}")));
    let mult = rs(&format!("{} / {ysd}", rs(&format!("{asd} * {bsd}"))?))?;
    let fin = saturated_store(cx, &y, |lo, hi| {
        [
            format!("double r = rint((double)acc * {mult} + {yzd});"),
            format!("r = r < {lo}.0 ? {lo}.0 : (r > {hi}.0 ? {hi}.0 : r);"),
        ]
    })?;
    emit_int_matmul(cx, &a, &b, &azp, &bzp, &g, &fin)
}

/// The resolved 2-D geometry of an integer convolution: (N, C, H, W, M, CG, KH, KW, OH, OW,
/// SH, SW, DH, DW, PT, PL).
struct Conv2d {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    m: usize,
    cg: usize,
    k: [usize; 2],
    o: [usize; 2],
    s: [usize; 2],
    d: [usize; 2],
    p: [usize; 2],
}

fn conv2d_geom(
    cx: &LowerCx<'_>,
    win: &WinAttrs,
    group: usize,
    x: &CTensor,
    w: &CTensor,
) -> Result<Conv2d, LowerError> {
    let (xs, ws) = (&x.shape, &w.shape);
    if xs.len() != 4 || ws.len() != 4 {
        return Err(cx.unsupported(format!("integer convolution of rank {}", xs.len())));
    }
    if group == 0 || ws[1] * group != xs[1] || ws[0] % group != 0 {
        return Err(cx.invalid(format!("channels {xs:?} / {ws:?} with group {group}")));
    }
    let k = win
        .kernel(2, Some(&ws[2..]))
        .map_err(|e| cx.invalid(e.to_string()))?;
    if k != ws[2..] {
        return Err(cx.invalid(format!("kernel_shape {k:?} differs from {ws:?}")));
    }
    let g = win
        .geom(&xs[2..], k, false)
        .map_err(|e| cx.invalid(e.to_string()))?;
    Ok(Conv2d {
        n: xs[0],
        c: xs[1],
        h: xs[2],
        w: xs[3],
        m: ws[0],
        cg: ws[1],
        k: [g.k[0], g.k[1]],
        o: [g.out[0], g.out[1]],
        s: [g.s[0], g.s[1]],
        d: [g.d[0], g.d[1]],
        p: [g.pb[0], g.pb[1]],
    })
}

/// Emits the integer convolution loops (padding taps skipped, i.e. padded with the input
/// zero point); `finish` stores `acc` for output channel `mo` at index `o`.
#[allow(clippy::too_many_arguments)]
fn emit_int_conv(
    cx: &mut LowerCx<'_>,
    x: &CTensor,
    w: &CTensor,
    g: &Conv2d,
    xzp: &str,
    wzp: &str,
    bias: Option<&str>,
    finish: &[String],
) -> Result<(), LowerError> {
    if !x.dtype.is_int() || !w.dtype.is_int() || x.dtype.bits() > 32 || w.dtype.bits() > 32 {
        return Err(cx.unsupported(format!("convolution of {} by {}", x.dtype, w.dtype)));
    }
    let (xv, _) = load(x, "((b * C + gi * CG + ci) * H + ih) * W + iw")
        .ok_or_else(|| cx.unsupported("x dtype"))?;
    let (wv, _) =
        load(w, "((mo * CG + ci) * KH + kh) * KW + kw").ok_or_else(|| cx.unsupported("w dtype"))?;
    cx.line(format!(
        "enum {{ NB = {}, C = {}, H = {}, W = {}, M = {}, CG = {}, MG = {}, KH = {}, KW = {}, OH = {}, OW = {} }};",
        g.n, g.c, g.h, g.w, g.m, g.cg, g.m / (g.c / g.cg).max(1), g.k[0], g.k[1], g.o[0], g.o[1]
    ));
    cx.line(format!("const int64_t zx = (int64_t)({xzp});"));
    cx.line("for (size_t b = 0; b < NB; b++) {");
    cx.line("for (size_t mo = 0; mo < M; mo++) {");
    cx.line("const size_t gi = mo / MG;");
    cx.line(format!("const int64_t zw = (int64_t)({wzp});"));
    cx.line("for (size_t oh = 0; oh < OH; oh++) {");
    cx.line("for (size_t ow = 0; ow < OW; ow++) {");
    cx.line(format!("int64_t acc = {};", bias.unwrap_or("0")));
    cx.line("for (size_t ci = 0; ci < CG; ci++) {");
    cx.line("for (size_t kh = 0; kh < KH; kh++) {");
    cx.line(format!(
        "const long ih = (long)(oh * {}) - {} + (long)(kh * {});",
        g.s[0], g.p[0], g.d[0]
    ));
    cx.line("if (ih < 0 || ih >= H) continue;");
    cx.line("for (size_t kw = 0; kw < KW; kw++) {");
    cx.line(format!(
        "const long iw = (long)(ow * {}) - {} + (long)(kw * {});",
        g.s[1], g.p[1], g.d[1]
    ));
    cx.line("if (iw < 0 || iw >= W) continue;");
    cx.line(format!(
        "acc += ((int64_t)({xv}) - zx) * ((int64_t)({wv}) - zw);"
    ));
    cx.close(3);
    cx.line("const size_t o = ((b * M + mo) * OH + oh) * OW + ow;");
    for l in finish {
        cx.line(l);
    }
    cx.close(4);
    Ok(())
}

/// A zero point / scale of the convolution weight: one value or one per output channel.
fn per_channel(
    cx: &LowerCx<'_>,
    t: Option<&CTensor>,
    m: usize,
    zero: &str,
) -> Result<String, LowerError> {
    let bad = |t: &CTensor| cx.invalid(format!("weight parameter has {} values", t.numel()));
    param_expr(cx, t, zero, "mo", |t| t.numel() == m, bad)
}

/// A scalar parameter (input zero point, scales of x and y).
fn scalar(cx: &LowerCx<'_>, t: Option<&CTensor>, zero: &str) -> Result<String, LowerError> {
    let bad = |t: &CTensor| cx.invalid(format!("parameter must be a scalar, has {:?}", t.shape));
    param_expr(cx, t, zero, "0", |_| false, bad)
}

/// `ConvInteger` (2-D): int32 accumulation of `(x - x_zp) * (w - w_zp)`.
fn lower_conv_integer(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let op = cx.op::<ConvInteger>()?.clone();
    let (x, w, y) = (
        cx.input(0)?.clone(),
        cx.input(1)?.clone(),
        cx.output(0)?.clone(),
    );
    let g = conv2d_geom(cx, &op.win, op.group, &x, &w)?;
    let xzp = scalar(cx, cx.opt_input(2), "0")?;
    let wzp = per_channel(cx, cx.opt_input(3), g.m, "0")?;
    cx.need_rt("pt_types.h");
    let fin = vec![format!("{}[o] = (int32_t)(uint32_t)(uint64_t)acc;", y.expr)];
    emit_int_conv(cx, &x, &w, &g, &xzp, &wzp, None, &fin)
}

/// `QLinearConv` (2-D): the integer accumulation plus bias, times the float32 multiplier
/// `(x_scale * w_scale) / y_scale`, plus `y_zp`, saturated and rounded to even.
fn lower_qlinear_conv(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let op = cx.op::<QLinearConv>()?.clone();
    let (x, w, y) = (
        cx.input(0)?.clone(),
        cx.input(3)?.clone(),
        cx.output(0)?.clone(),
    );
    let g = conv2d_geom(cx, &op.win, op.group, &x, &w)?;
    let xs = scalar(cx, cx.opt_input(1), "1")?;
    let xzp = scalar(cx, cx.opt_input(2), "0")?;
    let ws = per_channel(cx, cx.opt_input(4), g.m, "1")?;
    let wzp = per_channel(cx, cx.opt_input(5), g.m, "0")?;
    let ys = scalar(cx, cx.opt_input(6), "1")?;
    let yzp = scalar(cx, cx.opt_input(7), "0")?;
    let bias = match cx.opt_input(8) {
        None => None,
        Some(b) if b.numel() == g.m && b.dtype.is_int() => Some(format!(
            "(int64_t){}",
            load(b, "mo").ok_or_else(|| cx.unsupported("bias dtype"))?.0
        )),
        Some(b) => return Err(cx.invalid(format!("bias {} {:?}", b.dtype, b.shape))),
    };
    let fin = saturated_store(cx, &y, |lo, hi| {
        [
            format!("const float sc = ((float)({xs}) * (float)({ws})) / (float)({ys});"),
            format!("double r = (double)acc * (double)sc + {yzp};"),
            format!("r = rint(r < {lo}.0 ? {lo}.0 : (r > {hi}.0 ? {hi}.0 : r));"),
        ]
    })?;
    emit_int_conv(cx, &x, &w, &g, &xzp, &wzp, bias.as_deref(), &fin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_expressions() {
        assert_eq!(round_to(DType::F64, "x").unwrap(), "(x)");
        assert!(round_to(DType::F16, "x")
            .unwrap()
            .contains("pt_f2h((float)(x))"));
        assert!(round_to(DType::I8, "x").is_none());
    }
}
