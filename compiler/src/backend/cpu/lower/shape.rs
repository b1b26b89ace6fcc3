//! Generator lowerings: Shape and Size (compile-time constants of the static shapes),
//! ConstantOfShape, Range, EyeLike, Trilu and OneHot.

use super::operand::{ctype, fill, int_literal, literal, norm_axis};
use super::{CTensor, LowerCx, LowerError, Registry};
use petasos_ir::ops::shape_ops::generate::{ConstantOfShape, EyeLike, OneHot, Trilu};
use petasos_ir::ops::shape_ops::reshape::Shape;
use petasos_ir::DType;

/// Registers this family's lowerings.
pub fn register(r: &mut Registry) {
    r.op("Shape", lower_shape);
    r.op("Size", lower_size);
    r.op("ConstantOfShape", lower_constant_of_shape);
    r.op("Range", lower_range);
    r.op("EyeLike", lower_eye_like);
    r.op("Trilu", lower_trilu);
    r.op("OneHot", lower_one_hot);
}

/// Writes the integer values `vals` into `y` (int64 output of Shape/Size).
fn store_ints(cx: &mut LowerCx<'_>, y: &CTensor, vals: &[i64]) -> Result<(), LowerError> {
    ctype(cx, y)?;
    if vals.len() != y.numel() {
        return Err(cx.invalid(format!(
            "{} values for an output of {} elements",
            vals.len(),
            y.numel()
        )));
    }
    for (i, v) in vals.iter().enumerate() {
        let lit = int_literal(y.dtype, *v as i128);
        cx.line(format!("{}[{i}] = ({}){lit};", y.expr, y.ctype()));
    }
    Ok(())
}

fn lower_shape(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let (x, y) = (cx.input(0)?.clone(), cx.output(0)?.clone());
    let (s, e) = cx.op::<Shape>()?.range(x.rank());
    let vals: Vec<i64> = x.shape[s..e].iter().map(|&d| d as i64).collect();
    store_ints(cx, &y, &vals)
}

fn lower_size(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let (x, y) = (cx.input(0)?.clone(), cx.output(0)?.clone());
    store_ints(cx, &y, &[x.numel() as i64])
}

fn lower_constant_of_shape(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let y = cx.output(0)?.clone();
    ctype(cx, &y)?;
    let v = match &cx.op::<ConstantOfShape>()?.value {
        None => literal(y.dtype, 0.0),
        Some(c) => {
            let t = c
                .to_tensor()
                .map_err(|e| cx.invalid(format!("value: {e}")))?;
            if y.dtype.is_float() {
                let f = t.to_f64_vec().map_err(|e| cx.invalid(e.to_string()))?;
                literal(y.dtype, f.first().copied().unwrap_or(0.0))
            } else if y.dtype == DType::Bool || y.dtype.is_int() {
                let i = t.to_i().map_err(|e| cx.invalid(e.to_string()))?;
                let v = i.iter().next().copied().unwrap_or(0);
                if y.dtype == DType::Bool {
                    (if v != 0 { "1" } else { "0" }).into()
                } else {
                    int_literal(y.dtype, v)
                }
            } else {
                return Err(cx.unsupported(format!("value of dtype {}", y.dtype)));
            }
        }
    };
    fill(cx, &y, &v);
    Ok(())
}

/// Range: the length is static (the output shape); start and delta are read at run time.
/// Integers step in wrapping 64-bit arithmetic; floats as `start + i * delta` in double,
/// rounded to the output type (as the interpreter does).
fn lower_range(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let (s, d, y) = (
        cx.input(0)?.clone(),
        cx.input(2)?.clone(),
        cx.output(0)?.clone(),
    );
    ctype(cx, &y)?;
    let n = y.numel();
    if n == 0 {
        return Ok(());
    }
    if y.dtype.is_int() {
        cx.line(format!(
            "const uint64_t a = (uint64_t)(int64_t){};",
            s.load("0")
        ));
        cx.line(format!(
            "const uint64_t c = (uint64_t)(int64_t){};",
            d.load("0")
        ));
        cx.line(format!("for (size_t i = 0; i < {n}; i++) {{"));
        cx.line(format!(
            "{}[i] = ({})(a + (uint64_t)i * c);",
            y.expr,
            y.ctype()
        ));
        cx.line("}");
    } else if y.dtype.is_float() {
        cx.line(format!("const double a = (double){};", s.load("0")));
        cx.line(format!("const double c = (double){};", d.load("0")));
        cx.line(format!("for (size_t i = 0; i < {n}; i++) {{"));
        let t = y.compute_type();
        cx.line(y.store("i", &format!("({t})(a + (double)i * c)")));
        cx.line("}");
    } else {
        return Err(cx.unsupported(format!("Range of {}", y.dtype)));
    }
    Ok(())
}

fn lower_eye_like(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let y = cx.output(0)?.clone();
    ctype(cx, &y)?;
    let k = cx.op::<EyeLike>()?.k;
    let &[r, c] = y.shape.as_slice() else {
        return Err(cx.invalid(format!("output must be 2-D, got {:?}", y.shape)));
    };
    if r * c == 0 {
        return Ok(());
    }
    let (one, zero) = (literal(y.dtype, 1.0), literal(y.dtype, 0.0));
    cx.line(format!("for (ptrdiff_t i = 0; i < {r}; i++) {{"));
    cx.line(format!("for (ptrdiff_t j = 0; j < {c}; j++) {{"));
    cx.line(y.store(
        &format!("i * {c} + j"),
        &format!("(j - i == {k}) ? {one} : {zero}"),
    ));
    cx.close(2);
    Ok(())
}

/// Trilu: keeps `j - i >= k` (upper) or `j - i <= k` (lower) of the last two axes, zero
/// elsewhere; `k` is read at run time. Works on raw storage (zero bits are zero for every
/// dtype).
fn lower_trilu(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let (x, y) = (cx.input(0)?.clone(), cx.output(0)?.clone());
    ctype(cx, &x)?;
    let upper = cx.op::<Trilu>()?.upper;
    let r = x.rank();
    if r < 2 || x.shape != y.shape {
        return Err(cx.invalid(format!("input {:?} must have rank >= 2", x.shape)));
    }
    let (rows, cols) = (x.shape[r - 2], x.shape[r - 1]);
    let batch: usize = x.shape[..r - 2].iter().product();
    if x.numel() == 0 {
        return Ok(());
    }
    match cx.opt_input(1) {
        Some(k) if k.numel() > 0 => {
            let kl = k.load("0");
            cx.line(format!("const int64_t k = (int64_t){kl};"));
        }
        _ => cx.line("const int64_t k = 0;"),
    }
    let cmp = if upper { ">=" } else { "<=" };
    cx.line(format!("for (size_t b = 0; b < {batch}; b++) {{"));
    cx.line(format!("for (int64_t i = 0; i < {rows}; i++) {{"));
    cx.line(format!("for (int64_t j = 0; j < {cols}; j++) {{"));
    cx.line(format!(
        "const size_t f = (b * {rows} + (size_t)i) * {cols} + (size_t)j;"
    ));
    cx.line(format!(
        "{}[f] = (j - i {cmp} k) ? {}[f] : 0;",
        y.expr, x.expr
    ));
    cx.close(3);
    Ok(())
}

/// OneHot: the depth is the output's static size on `axis`; `values` = [off, on] are read at
/// run time; an index (negative ones wrapped once) that misses every position gives `off`.
fn lower_one_hot(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let (ind, vals, y) = (
        cx.input(0)?.clone(),
        cx.input(2)?.clone(),
        cx.output(0)?.clone(),
    );
    ctype(cx, &y)?;
    ctype(cx, &ind)?;
    if vals.numel() != 2 || vals.dtype != y.dtype {
        return Err(cx.invalid("values must hold [off, on] of the output dtype".into()));
    }
    let a = norm_axis(cx, cx.op::<OneHot>()?.axis, y.rank())?;
    let depth = y.shape[a];
    let outer: usize = y.shape[..a].iter().product();
    let inner: usize = y.shape[a + 1..].iter().product();
    if outer * inner != ind.numel() {
        return Err(cx.invalid("output shape does not fit the indices".into()));
    }
    if y.numel() == 0 {
        return Ok(());
    }
    cx.line(format!("for (size_t o = 0; o < {outer}; o++) {{"));
    cx.line(format!("for (size_t p = 0; p < {inner}; p++) {{"));
    let iv = ind.load(&format!("o * {inner} + p"));
    if ind.dtype.is_float() {
        cx.line(format!("const double dv = (double){iv};"));
        cx.line(
            "int64_t v = (isnan(dv) || dv >= 9.2e18 || dv <= -9.2e18) ? INT64_MIN : (int64_t)dv;",
        );
    } else {
        cx.line(format!("int64_t v = (int64_t){iv};"));
    }
    cx.line(format!("if (v < 0 && v != INT64_MIN) v += {depth};"));
    cx.line(format!("for (int64_t d = 0; d < {depth}; d++) {{"));
    cx.line(format!(
        "{}[(o * {depth} + (size_t)d) * {inner} + p] = (v == d) ? {}[1] : {}[0];",
        y.expr, vals.expr, vals.expr
    ));
    cx.close(3);
    Ok(())
}
