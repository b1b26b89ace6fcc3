//! Slice and Pad whose parameters (starts/ends/steps, pads) are computed at run time while
//! the output shape is static (e.g. a mask padded by an amount derived from other inputs).
//! The parameters are read, normalised and checked against the static output shape at run
//! time (a disagreement sets the model error and stops the kernel); the copy then walks
//! run-time strides (Slice) or per-axis source tables built in scratch (Pad, every mode).

use super::movement::strides;
use super::operand::{const_ints, ctype, norm_axis};
use super::{CTensor, LowerCx, LowerError};
use petasos_ir::ops::shape_ops::slice::{Pad, PadMode};

/// Whether optional input `slot` is present, non-empty and not a constant.
pub fn is_runtime(cx: &LowerCx<'_>, slot: usize) -> bool {
    cx.opt_input(slot)
        .is_some_and(|t| t.constant.is_none() && t.numel() > 0)
}

/// Emits the error-and-return of a parameter that does not give the static output shape.
fn fail(cx: &mut LowerCx<'_>, cond: &str, what: &str) {
    let f = cx.fn_name.clone();
    cx.line(format!("if ({cond}) {{"));
    cx.line(format!(
        "pt_set_error(\"{f}: run-time {what} do not give the compiled output shape\");"
    ));
    cx.line("return;");
    cx.line("}");
}

/// Slice with run-time starts/ends/steps (axes constant or absent).
pub fn lower_slice_rt(cx: &mut LowerCx<'_>, x: &CTensor, y: &CTensor) -> Result<(), LowerError> {
    let t = ctype(cx, x)?;
    let r = x.rank();
    let starts = cx.input(1)?.clone();
    let ends = cx.input(2)?.clone();
    let steps = cx.opt_input(4).filter(|s| s.numel() > 0).cloned();
    let n = starts.numel();
    if ends.numel() != n || steps.as_ref().is_some_and(|s| s.numel() != n) || y.rank() != r {
        return Err(cx.invalid("starts, ends and steps differ in length".into()));
    }
    let axes: Vec<usize> = match const_ints(cx, 3, "axes")? {
        Some(a) if a.len() == n => a
            .iter()
            .map(|&v| norm_axis(cx, v, r))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(cx.invalid("axes differ in length from starts".into())),
        None => (0..n).collect(),
    };
    let xs = strides(&x.shape);
    if y.numel() == 0 {
        return Ok(());
    }
    cx.line(format!("int64_t st[{r}] = {{0}}, sp[{r}];"));
    cx.line(format!("for (int k = 0; k < {r}; k++) sp[k] = 1;"));
    for (j, &a) in axes.iter().enumerate() {
        let d = x.shape[a] as i64;
        cx.line("{");
        cx.line(format!(
            "int64_t s = (int64_t){};",
            starts.load(&j.to_string())
        ));
        cx.line(format!(
            "int64_t e = (int64_t){};",
            ends.load(&j.to_string())
        ));
        match &steps {
            Some(p) => cx.line(format!(
                "const int64_t p = (int64_t){};",
                p.load(&j.to_string())
            )),
            None => cx.line("const int64_t p = 1;"),
        }
        cx.line(format!("if (s < 0) s += {d};"));
        cx.line(format!("if (e < 0) e += {d};"));
        cx.line("int64_t cnt = 0;");
        cx.line("if (p > 0) {");
        cx.line(format!("s = s < 0 ? 0 : (s > {d} ? {d} : s);"));
        cx.line(format!("e = e < 0 ? 0 : (e > {d} ? {d} : e);"));
        cx.line("cnt = e > s ? (e - s + p - 1) / p : 0;");
        cx.line("} else if (p < 0) {");
        let hi = (d - 1).max(0);
        cx.line(format!("s = s < 0 ? 0 : (s > {hi} ? {hi} : s);"));
        cx.line(format!(
            "e = e < -1 ? -1 : (e > {} ? {} : e);",
            d - 1,
            d - 1
        ));
        cx.line("cnt = s > e ? (s - e - p - 1) / (-p) : 0;");
        cx.line("}");
        if d == 0 {
            cx.line("cnt = 0;");
        }
        fail(
            cx,
            &format!("p == 0 || cnt != {}", y.shape[a]),
            "slice parameters",
        );
        cx.line(format!("st[{a}] = s; sp[{a}] = p;"));
        cx.line("}");
    }
    let off: Vec<String> = (0..r).map(|a| format!("st[{a}] * {}", xs[a])).collect();
    cx.line(format!("const int64_t off = {};", off.join(" + ")));
    for (a, xa) in xs.iter().enumerate() {
        cx.line(format!("const int64_t ss{a} = sp[{a}] * {xa};"));
    }
    // The innermost axis is contiguous when it is not sliced (step 1 known).
    let inner_run = !axes.contains(&(r - 1));
    let loops = if inner_run { r - 1 } else { r };
    cx.line("size_t f = 0;");
    for a in 0..loops {
        cx.line(format!(
            "for (int64_t i{a} = 0; i{a} < {}; i{a}++) {{",
            y.shape[a]
        ));
    }
    let terms: Vec<String> = (0..loops).map(|a| format!("i{a} * ss{a}")).collect();
    let src = if terms.is_empty() {
        "off".to_string()
    } else {
        format!("off + {}", terms.join(" + "))
    };
    if inner_run {
        let w = y.shape[r - 1];
        cx.line(format!(
            "memcpy({} + f, {} + ({src}), {w} * sizeof({t}));",
            y.expr, x.expr
        ));
        cx.line(format!("f += {w};"));
    } else {
        cx.line(format!("{}[f++] = {}[{src}];", y.expr, x.expr));
    }
    cx.close(loops);
    Ok(())
}

/// Pad with run-time pads (axes constant or absent), every mode.
pub fn lower_pad_rt(
    cx: &mut LowerCx<'_>,
    x: &CTensor,
    y: &CTensor,
    fill: &str,
) -> Result<(), LowerError> {
    ctype(cx, x)?;
    let mode = cx.op::<Pad>()?.mode;
    let r = x.rank();
    let pads = cx.input(1)?.clone();
    let axes: Vec<usize> = match const_ints(cx, 3, "axes")? {
        Some(a) => a
            .iter()
            .map(|&v| norm_axis(cx, v, r))
            .collect::<Result<_, _>>()?,
        None => (0..r).collect(),
    };
    let n = axes.len();
    if pads.numel() != 2 * n || y.rank() != r {
        return Err(cx.invalid(format!("{} pads for {n} axes", pads.numel())));
    }
    if y.numel() == 0 {
        return Ok(());
    }
    let xs = strides(&x.shape);
    let total: usize = y.shape.iter().sum();
    let tabs = cx.scratch((total * 8) as u64);
    cx.line(format!("int64_t *const tabs = (int64_t *){tabs};"));
    let mut base = 0usize;
    for (a, &xa) in xs.iter().enumerate() {
        let d = x.shape[a] as i64;
        let o = y.shape[a];
        if mode != PadMode::Constant && d == 0 && o > 0 {
            return Err(cx.invalid(format!(
                "cannot pad the empty axis {a} in a non-constant mode"
            )));
        }
        cx.line("{");
        match axes.iter().position(|&v| v == a) {
            Some(j) => {
                cx.line(format!(
                    "const int64_t b = (int64_t){};",
                    pads.load(&j.to_string())
                ));
                cx.line(format!(
                    "const int64_t e = (int64_t){};",
                    pads.load(&(j + n).to_string())
                ));
                fail(cx, &format!("{d} + b + e != {o}"), "pads");
            }
            None => cx.line("const int64_t b = 0;"),
        }
        cx.line(format!("int64_t *const tab = tabs + {base};"));
        cx.line(format!("for (int64_t q = 0; q < {o}; q++) {{"));
        cx.line("int64_t v = q - b;");
        cx.line(format!("if (v < 0 || v >= {d}) {{"));
        match mode {
            PadMode::Constant => cx.line("v = -1;"),
            _ if d == 0 => cx.line("v = -1;"),
            PadMode::Edge => cx.line(format!("v = v < 0 ? 0 : {};", d - 1)),
            PadMode::Wrap => cx.line(format!("v %= {d}; if (v < 0) v += {d};")),
            PadMode::Reflect => {
                if d == 1 {
                    cx.line("v = 0;");
                } else {
                    let p = 2 * (d - 1);
                    cx.line(format!("v %= {p}; if (v < 0) v += {p};"));
                    cx.line(format!("if (v >= {d}) v = {p} - v;"));
                }
            }
        }
        cx.line("}");
        cx.line(format!("tab[q] = v < 0 ? -1 : v * {xa};"));
        cx.close(2);
        base += o;
    }
    cx.line(format!("const {} fv = {fill};", y.compute_type()));
    cx.line("size_t f = 0;");
    let mut base = 0usize;
    let mut conds = Vec::new();
    let mut sum = Vec::new();
    for a in 0..r {
        cx.line(format!(
            "for (size_t i{a} = 0; i{a} < {}; i{a}++) {{",
            y.shape[a]
        ));
        cx.line(format!("const int64_t t{a} = tabs[{base} + i{a}];"));
        conds.push(format!("t{a} < 0"));
        sum.push(format!("t{a}"));
        base += y.shape[a];
    }
    cx.line(format!("if ({}) {{", conds.join(" || ")));
    cx.line(y.store("f", "fv"));
    cx.line("} else {");
    cx.line(format!("{}[f] = {}[{}];", y.expr, x.expr, sum.join(" + ")));
    cx.line("}");
    cx.line("f++;");
    cx.close(r);
    Ok(())
}
