//! Normalisation lowerings: `LayerNormalization` (with its mean / inverse-std outputs),
//! `RMSNormalization`, `GroupNormalization`, `InstanceNormalization`, `LpNormalization`,
//! `MeanVarianceNormalization` and `LRN`.
//!
//! Statistics are computed in `double` exactly as the interpreter does (two-pass mean and
//! population variance), and scale / bias parameters broadcast numpy-style to the input.

use super::reduce_nest::{
    axes_mask, broadcast_strides, c_double, contiguous, is_float, load_f64, norm_axis,
    reduced_strides, Nest, Part,
};
use super::{CTensor, LowerCx, LowerError, Registry};
use petasos_ir::ops::reduce::{
    GroupNormalization, InstanceNormalization, LayerNormalization, LpNormalization, Lrn,
    MeanVarianceNormalization, RmsNormalization,
};

/// Registers this file's lowerings.
pub fn register(r: &mut Registry) {
    r.op("LayerNormalization", lower_layer_norm);
    r.op("RMSNormalization", lower_rms_norm);
    r.op("GroupNormalization", lower_group_norm);
    r.op("InstanceNormalization", lower_group_norm);
    r.op("LpNormalization", lower_lp_norm);
    r.op("MeanVarianceNormalization", lower_mvn);
    r.op("LRN", lower_lrn);
}

/// Checks that the input and output are floats of the same shape.
fn float_io(cx: &LowerCx<'_>) -> Result<(CTensor, CTensor), LowerError> {
    let (x, y) = (cx.input(0)?.clone(), cx.output(0)?.clone());
    cx.ctype_of(&x)?;
    if !is_float(x.dtype) || !is_float(y.dtype) {
        return Err(cx.unsupported(format!("input of {}", x.dtype)));
    }
    if x.shape != y.shape {
        return Err(cx.invalid(format!(
            "output shape {:?} differs from input {:?}",
            y.shape, x.shape
        )));
    }
    Ok((x, y))
}

/// The strides of parameter `p` broadcast to `x`, or an error naming it.
fn param_strides(
    cx: &LowerCx<'_>,
    p: &CTensor,
    x: &CTensor,
    what: &str,
) -> Result<Vec<usize>, LowerError> {
    cx.ctype_of(p)?;
    if !is_float(p.dtype) {
        return Err(cx.unsupported(format!("{what} of {}", p.dtype)));
    }
    broadcast_strides(&p.shape, &x.shape).ok_or_else(|| {
        cx.invalid(format!(
            "{what} of shape {:?} does not fit input {:?}",
            p.shape, x.shape
        ))
    })
}

/// `LayerNormalization` over the axes from `axis` on; optional mean and inverse-std outputs.
fn lower_layer_norm(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let op = cx.op::<LayerNormalization>()?.clone();
    let (x, y) = float_io(cx)?;
    let scale = cx.input(1)?.clone();
    let bias = cx.opt_input(2).cloned();
    let a = norm_axis(cx, op.axis, x.rank())?;
    let mask: Vec<bool> = (0..x.rank()).map(|i| i >= a).collect();
    let stats: Vec<CTensor> = (1..cx.num_outputs().min(3))
        .map(|i| cx.output(i).cloned())
        .collect::<Result<_, _>>()?;
    for s in &stats {
        cx.ctype_of(s)?;
        if !is_float(s.dtype) {
            return Err(cx.unsupported(format!("stash type {}", s.dtype)));
        }
    }
    let mut strides = vec![
        contiguous(&x.shape),
        reduced_strides(&x.shape, &mask),
        param_strides(cx, &scale, &x, "scale")?,
    ];
    if let Some(b) = &bias {
        strides.push(param_strides(cx, b, &x, "bias")?);
    }
    if x.numel() == 0 {
        return Ok(());
    }
    let nest = Nest::new(&x.shape, &mask, &strides);
    let n = nest.len(Part::Inner);
    let xi = nest.off_all(0);
    let v = load_f64(&x, &xi);
    let outer = nest.open(cx, Part::Outer);
    emit_mean_var(cx, &nest, &v, n);
    cx.line(format!(
        "const double inv = 1.0 / sqrt(var + {});",
        c_double(op.epsilon as f64)
    ));
    let c = nest.open(cx, Part::Inner);
    let mut val = format!("({v} - m) * inv * {}", load_f64(&scale, &nest.off_all(2)));
    if let Some(b) = &bias {
        val = format!("{val} + {}", load_f64(b, &nest.off_all(3)));
    }
    cx.line(y.store(&xi, &val));
    cx.close(c);
    let so = nest.off(1, Part::Outer);
    for (s, val) in stats.iter().zip(["m", "inv"]) {
        cx.line(s.store(&so, val));
    }
    cx.close(outer);
    Ok(())
}

/// Emits `double m` (mean) and `double var` (population variance, two-pass) of the inner
/// loops' values `v` (`n` of them).
fn emit_mean_var(cx: &mut LowerCx<'_>, nest: &Nest, v: &str, n: usize) {
    cx.line("double s = 0.0;");
    let c = nest.open(cx, Part::Inner);
    cx.line(format!("s += {v};"));
    cx.close(c);
    cx.line(format!("const double m = s / (double){n};"));
    cx.line("double q = 0.0;");
    let c = nest.open(cx, Part::Inner);
    cx.line(format!("const double d = {v} - m;"));
    cx.line("q += d * d;");
    cx.close(c);
    cx.line(format!("const double var = q / (double){n};"));
}

/// `RMSNormalization`: `x / sqrt(mean(x^2) + epsilon) * scale` over the axes from `axis` on.
fn lower_rms_norm(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let op = cx.op::<RmsNormalization>()?.clone();
    let (x, y) = float_io(cx)?;
    let scale = cx.input(1)?.clone();
    let a = norm_axis(cx, op.axis, x.rank())?;
    let mask: Vec<bool> = (0..x.rank()).map(|i| i >= a).collect();
    let strides = vec![
        contiguous(&x.shape),
        param_strides(cx, &scale, &x, "scale")?,
    ];
    if x.numel() == 0 {
        return Ok(());
    }
    let nest = Nest::new(&x.shape, &mask, &strides);
    let eps = c_double(op.epsilon as f64);
    let mid = |n| {
        vec![format!(
            "const double inv = 1.0 / sqrt(q / (double){n} + {eps});"
        )]
    };
    let sc = load_f64(&scale, &nest.off_all(1));
    emit_two_pass(
        cx,
        &(x, y),
        &nest,
        "double q = 0.0;",
        &["q += v * v;"],
        mid,
        |v| format!("{v} * inv * {sc}"),
    );
    Ok(())
}

/// `GroupNormalization` (per-channel or per-group scale and bias) and
/// `InstanceNormalization` (one group per channel).
fn lower_group_norm(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let (x, y) = float_io(cx)?;
    if x.rank() < 2 {
        return Err(cx.invalid(format!("input must be (N, C, ...), got {:?}", x.shape)));
    }
    let c = x.shape[1];
    let (groups, eps) = if let Ok(g) = cx.op::<GroupNormalization>() {
        (g.num_groups.max(0) as usize, g.epsilon)
    } else {
        (c, cx.op::<InstanceNormalization>()?.epsilon)
    };
    if groups == 0 || !c.is_multiple_of(groups) {
        return Err(cx.invalid(format!("{c} channels do not split into {groups} groups")));
    }
    let (scale, bias) = (cx.input(1)?.clone(), cx.input(2)?.clone());
    let per = c / groups;
    let mut idx = Vec::new();
    for (p, what) in [(&scale, "scale"), (&bias, "bias")] {
        cx.ctype_of(p)?;
        if !is_float(p.dtype) {
            return Err(cx.unsupported(format!("{what} of {}", p.dtype)));
        }
        idx.push(if p.numel() == c {
            "ch".to_string()
        } else if p.numel() == groups {
            "g".to_string()
        } else {
            return Err(cx.invalid(format!(
                "{what} has {} values, expected {c} (or {groups})",
                p.numel()
            )));
        });
    }
    let spatial: usize = x.shape[2..].iter().product();
    let chunk = per * spatial;
    if x.numel() == 0 || chunk == 0 {
        return Ok(());
    }
    let ng = x.numel() / chunk;
    cx.line(format!("for (size_t gi = 0; gi < {ng}; gi++) {{"));
    cx.line(format!("const size_t base = gi * {chunk};"));
    cx.line(format!("const size_t g = gi % {groups};"));
    let v = load_f64(&x, "base + k");
    cx.line("double s = 0.0;");
    cx.line(format!("for (size_t k = 0; k < {chunk}; k++) s += {v};"));
    cx.line(format!("const double m = s / (double){chunk};"));
    cx.line("double q = 0.0;");
    cx.line(format!(
        "for (size_t k = 0; k < {chunk}; k++) {{ const double d = {v} - m; q += d * d; }}"
    ));
    cx.line(format!(
        "const double inv = 1.0 / sqrt(q / (double){chunk} + {});",
        c_double(eps as f64)
    ));
    cx.line(format!("for (size_t cc = 0; cc < {per}; cc++) {{"));
    cx.line(format!("const size_t ch = g * {per} + cc;"));
    cx.line("(void)ch;");
    cx.line(format!("const double sc = {};", load_f64(&scale, &idx[0])));
    cx.line(format!("const double bi = {};", load_f64(&bias, &idx[1])));
    cx.line(format!("for (size_t p = 0; p < {spatial}; p++) {{"));
    cx.line(format!("const size_t k = cc * {spatial} + p;"));
    cx.line(y.store("base + k", &format!("({v} - m) * inv * sc + bi")));
    cx.close(3);
    Ok(())
}

/// `LpNormalization`: `x / ||x||_p` along `axis` (p = 1 or 2), 0 where the norm is 0.
fn lower_lp_norm(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let op = cx.op::<LpNormalization>()?.clone();
    let (x, y) = float_io(cx)?;
    if op.p != 1 && op.p != 2 {
        return Err(cx.unsupported(format!("p = {}", op.p)));
    }
    let a = norm_axis(cx, op.axis, x.rank())?;
    let mask: Vec<bool> = (0..x.rank()).map(|i| i == a).collect();
    let acc = if op.p == 1 {
        "nrm += fabs(v);"
    } else {
        "nrm += v * v;"
    };
    let mid = |_| {
        if op.p == 2 {
            vec!["nrm = sqrt(nrm);".to_string()]
        } else {
            Vec::new()
        }
    };
    if x.numel() == 0 {
        return Ok(());
    }
    let nest = Nest::new(&x.shape, &mask, &[contiguous(&x.shape)]);
    emit_two_pass(cx, &(x, y), &nest, "double nrm = 0.0;", &[acc], mid, |v| {
        format!("nrm == 0.0 ? 0.0 : {v} / nrm")
    });
    Ok(())
}

/// `MeanVarianceNormalization`: `(x - E[x]) / (sqrt(E[x^2] - E[x]^2) + 1e-9)` over `axes`.
fn lower_mvn(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let op = cx.op::<MeanVarianceNormalization>()?.clone();
    let (x, y) = float_io(cx)?;
    let mask = axes_mask(cx, &op.axes, x.rank())?;
    let mid = |n| {
        vec![
            format!("const double m = s / (double){n};"),
            format!("const double m2 = s2 / (double){n};"),
            "const double sd = sqrt(fmax(m2 - m * m, 0.0));".to_string(),
        ]
    };
    if x.numel() == 0 {
        return Ok(());
    }
    let nest = Nest::new(&x.shape, &mask, &[contiguous(&x.shape)]);
    emit_two_pass(
        cx,
        &(x, y),
        &nest,
        "double s = 0.0, s2 = 0.0;",
        &["s += v;", "s2 += v * v;"],
        mid,
        |v| format!("({v} - m) / (sd + 1e-9)"),
    );
    Ok(())
}

/// Emits a two-pass normalisation of `x` into `y` (`io`) over `nest` (tensor 0: `x`,
/// contiguous), per position of its outer loops: `init`; then, for every element of the
/// inner loops, `const double v = X;` and the `acc` statements; then `mid(n)` (n: the inner
/// elements per position); then, for every inner element again, `y = out(X)`.
fn emit_two_pass(
    cx: &mut LowerCx<'_>,
    io: &(CTensor, CTensor),
    nest: &Nest,
    init: &str,
    acc: &[&str],
    mid: impl FnOnce(usize) -> Vec<String>,
    out: impl FnOnce(&str) -> String,
) {
    let (x, y) = io;
    let xi = nest.off_all(0);
    let v = load_f64(x, &xi);
    let outer = nest.open(cx, Part::Outer);
    cx.line(init);
    let c = nest.open(cx, Part::Inner);
    cx.line(format!("const double v = {v};"));
    for l in acc {
        cx.line(l);
    }
    cx.close(c);
    for l in mid(nest.len(Part::Inner)) {
        cx.line(l);
    }
    let c = nest.open(cx, Part::Inner);
    cx.line(y.store(&xi, &out(&v)));
    cx.close(c);
    cx.close(outer);
}

/// `LRN` across the channels of `(N, C, ...)`.
fn lower_lrn(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let op = cx.op::<Lrn>()?.clone();
    let (x, y) = float_io(cx)?;
    if x.rank() < 2 {
        return Err(cx.invalid(format!("input must be (N, C, ...), got {:?}", x.shape)));
    }
    if x.numel() == 0 {
        return Ok(());
    }
    let (n, c) = (x.shape[0], x.shape[1]);
    let inner: usize = x.shape[2..].iter().product();
    let size = op.size.max(1) as usize;
    let (before, after) = ((size - 1) / 2, (size - 1).div_ceil(2));
    let scale = c_double(op.alpha as f64 / size as f64);
    cx.line(format!("for (size_t b = 0; b < {n}; b++) {{"));
    cx.line(format!("for (size_t ch = 0; ch < {c}; ch++) {{"));
    cx.line(format!(
        "const size_t lo = ch < {before} ? 0 : ch - {before};"
    ));
    cx.line(format!(
        "const size_t hi = ch + {after} < {} ? ch + {after} : {};",
        c - 1,
        c - 1
    ));
    cx.line(format!("for (size_t p = 0; p < {inner}; p++) {{"));
    cx.line(format!("const size_t base = b * {} + p;", c * inner));
    cx.line("double sq = 0.0;");
    cx.line("for (size_t k = lo; k <= hi; k++) {");
    cx.line(format!(
        "const double v = {};",
        load_f64(&x, &format!("base + k * {inner}"))
    ));
    cx.line("sq += v * v;");
    cx.line("}");
    cx.line(format!("const size_t at = base + ch * {inner};"));
    cx.line(y.store(
        "at",
        &format!(
            "{} / pow({} + {scale} * sq, {})",
            load_f64(&x, "at"),
            c_double(op.bias as f64),
            c_double(op.beta as f64)
        ),
    ));
    cx.close(3);
    Ok(())
}
