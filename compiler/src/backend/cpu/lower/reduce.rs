//! Reduction lowerings: `Reduce*` (Sum, Mean, Max, Min, Prod, L1, L2, LogSum, LogSumExp,
//! SumSquare; axes as attribute or constant input, keepdims, noop_with_empty_axes),
//! `ArgMax`/`ArgMin` (select_last_index), `CumSum`/`CumProd` (exclusive, reverse, constant
//! axis) and `TopK` (constant k).
//!
//! Semantics follow the interpreter (`ir/src/ops/reduce/`): float reductions accumulate in
//! `double` and round once at the store; integer Sum/Prod/L1/SumSquare wrap (computed in
//! `uint64_t`), Max/Min are exact, and the other integer reductions go through `double` and
//! the float-to-int conversion (NaN -> 0, truncation, wrap). Max/Min propagate NaN.

use super::reduce_nest::{
    axes_mask, const_ints, contiguous, int_limits, is_float, is_int, known_ints, load_f64,
    norm_axis, reduced_strides, store_double_as_int, Nest, Part,
};
use super::{CTensor, LowerCx, LowerError, Registry};
use petasos_ir::ops::reduce::{ArgReduce, Cumulative, Reduce, ReduceKind, TopK};
use petasos_ir::DType;

/// Registers this file's lowerings.
pub fn register(r: &mut Registry) {
    for op in [
        "ReduceSum",
        "ReduceMean",
        "ReduceMax",
        "ReduceMin",
        "ReduceProd",
        "ReduceL1",
        "ReduceL2",
        "ReduceLogSum",
        "ReduceLogSumExp",
        "ReduceSumSquare",
    ] {
        r.op(op, lower_reduce);
    }
    r.op("ArgMax", lower_arg);
    r.op("ArgMin", lower_arg);
    r.op("CumSum", lower_cum);
    r.op("CumProd", lower_cum);
    r.op("TopK", lower_topk);
}

/// The reduced-axes mask of a `Reduce*` node (axes from the attribute or a constant input).
fn reduce_mask(cx: &LowerCx<'_>, op: &Reduce, rank: usize) -> Result<Vec<bool>, LowerError> {
    let raw = match (&op.axes, cx.opt_input(1)) {
        (Some(a), _) => a.clone(),
        (None, Some(t)) if t.numel() == 0 => Vec::new(),
        (None, Some(t)) => match known_ints(cx, 1) {
            Some(v) => v,
            None => const_ints(cx, t, "axes")?,
        },
        (None, None) => Vec::new(),
    };
    if raw.is_empty() {
        Ok(vec![!op.noop_with_empty_axes; rank])
    } else {
        axes_mask(cx, &raw, rank)
    }
}

/// The `double` update of accumulator `acc` with value `v` for a float reduction (the
/// LogSumExp max pass is separate).
fn float_update(k: ReduceKind, acc: &str, v: &str) -> String {
    match k {
        ReduceKind::Sum | ReduceKind::Mean | ReduceKind::LogSum => format!("{acc} += {v};"),
        ReduceKind::Prod => format!("{acc} *= {v};"),
        ReduceKind::L1 => format!("{acc} += fabs({v});"),
        ReduceKind::L2 | ReduceKind::SumSquare => format!("{acc} += {v} * {v};"),
        ReduceKind::Max => format!("if ({v} > {acc} || isnan({v})) {acc} = {v};"),
        ReduceKind::Min => format!("if ({v} < {acc} || isnan({v})) {acc} = {v};"),
        ReduceKind::LogSumExp => format!("{acc} += exp({v} - m);"),
    }
}

/// Lowers a `Reduce*` node.
fn lower_reduce(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let op = cx.op::<Reduce>()?.clone();
    let (x, y) = (cx.input(0)?.clone(), cx.output(0)?.clone());
    cx.ctype_of(&x)?;
    let mask = reduce_mask(cx, &op, x.rank())?;
    let k = op.kind;
    let ok = is_float(x.dtype)
        || is_int(x.dtype)
        || (x.dtype == DType::Bool && matches!(k, ReduceKind::Max | ReduceKind::Min));
    if !ok {
        return Err(cx.unsupported(format!("{} of {}", op_name(cx), x.dtype)));
    }
    if y.numel() == 0 {
        return Ok(());
    }
    let nest = Nest::new(
        &x.shape,
        &mask,
        &[contiguous(&x.shape), reduced_strides(&x.shape, &mask)],
    );
    let n = nest.len(Part::Inner);
    let xi = nest.off_all(0);
    let yi = nest.off(1, Part::Outer);
    let opened = nest.open(cx, Part::Outer);
    match x.dtype {
        d if is_float(d) => {
            emit_float_reduce(cx, &nest, k, &x, n, &xi);
            cx.line(y.store(&yi, "acc"));
        }
        DType::Bool if matches!(k, ReduceKind::Max | ReduceKind::Min) => {
            let (init, stop) = if k == ReduceKind::Max {
                ("0", "1")
            } else {
                ("1", "0")
            };
            cx.line(format!("uint8_t acc = {init};"));
            let c = nest.open(cx, Part::Inner);
            cx.line(format!(
                "if (({}[{xi}] != 0) == {stop}) acc = {stop};",
                x.expr
            ));
            cx.close(c);
            cx.line(format!("{}[{yi}] = acc;", y.expr));
        }
        d if is_int(d) => match k {
            ReduceKind::Sum | ReduceKind::Prod | ReduceKind::L1 | ReduceKind::SumSquare => {
                let init = if k == ReduceKind::Prod { "1" } else { "0" };
                cx.line(format!("uint64_t acc = {init};"));
                let c = nest.open(cx, Part::Inner);
                cx.line(format!("{} v = {}[{xi}];", x.ctype(), x.expr));
                cx.line(match k {
                    ReduceKind::Sum => "acc += (uint64_t)v;",
                    ReduceKind::Prod => "acc *= (uint64_t)v;",
                    ReduceKind::L1 => "acc += v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;",
                    _ => "acc += (uint64_t)v * (uint64_t)v;",
                });
                cx.close(c);
                cx.line(format!("{}[{yi}] = ({})acc;", y.expr, y.ctype()));
            }
            ReduceKind::Max | ReduceKind::Min => {
                let (lo, hi) = int_limits(d).ok_or_else(|| cx.unsupported(format!("{d}")))?;
                let max = k == ReduceKind::Max;
                cx.line(format!(
                    "{} acc = {};",
                    x.ctype(),
                    if max { lo } else { hi }
                ));
                let c = nest.open(cx, Part::Inner);
                cx.line(format!("{} v = {}[{xi}];", x.ctype(), x.expr));
                cx.line(format!(
                    "if (v {} acc) acc = v;",
                    if max { ">" } else { "<" }
                ));
                cx.close(c);
                cx.line(format!("{}[{yi}] = acc;", y.expr));
            }
            _ => {
                emit_float_reduce(cx, &nest, k, &x, n, &xi);
                cx.line(store_double_as_int(&y, &yi, "acc"));
            }
        },
        d => return Err(cx.unsupported(format!("{} of {d}", op_name(cx)))),
    }
    cx.close(opened);
    Ok(())
}

fn op_name(cx: &LowerCx<'_>) -> String {
    cx.node().op.op_type().to_string()
}

/// Emits (inside the outer loops) the `double acc` of a float-computed reduction of `x`.
fn emit_float_reduce(
    cx: &mut LowerCx<'_>,
    nest: &Nest,
    k: ReduceKind,
    x: &CTensor,
    n: usize,
    xi: &str,
) {
    let v = load_f64(x, xi);
    if k == ReduceKind::LogSumExp {
        cx.line("double m = -INFINITY;");
        let c = nest.open(cx, Part::Inner);
        cx.line(format!("double v = {v};"));
        cx.line(float_update(ReduceKind::Max, "m", "v"));
        cx.close(c);
    }
    let init = match k {
        ReduceKind::Prod => "1.0",
        ReduceKind::Max => "-INFINITY",
        ReduceKind::Min => "INFINITY",
        _ => "0.0",
    };
    cx.line(format!("double acc = {init};"));
    if k == ReduceKind::LogSumExp {
        cx.line("if (isfinite(m)) {");
    }
    let c = nest.open(cx, Part::Inner);
    cx.line(format!("double v = {v};"));
    cx.line(float_update(k, "acc", "v"));
    cx.close(c);
    match k {
        ReduceKind::Mean => cx.line(format!("acc = acc / (double){n};")),
        ReduceKind::L2 => cx.line("acc = sqrt(acc);"),
        ReduceKind::LogSum => cx.line("acc = log(acc);"),
        ReduceKind::LogSumExp => {
            cx.line("acc = m + log(acc);");
            cx.line("} else {");
            cx.line("acc = m;");
            cx.line("}");
        }
        _ => {}
    }
}

/// `ArgMax`/`ArgMin`: the first (or last, with select_last_index) index of the extreme value,
/// compared as the interpreter does (`>`/`<`, so NaN is never picked after the first
/// element).
fn lower_arg(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let op = cx.op::<ArgReduce>()?.clone();
    let (x, y) = (cx.input(0)?.clone(), cx.output(0)?.clone());
    cx.ctype_of(&x)?;
    if y.dtype != DType::I64 {
        return Err(cx.invalid(format!("output of dtype {}", y.dtype)));
    }
    let ax = norm_axis(cx, op.axis, x.rank())?;
    if x.shape[ax] == 0 {
        return Err(cx.unsupported("an empty reduced axis"));
    }
    if y.numel() == 0 {
        return Ok(());
    }
    let pre: usize = x.shape[..ax].iter().product();
    let n = x.shape[ax];
    let post: usize = x.shape[ax + 1..].iter().product();
    let t = x.compute_type();
    let cmp = if op.max { ">" } else { "<" };
    let tie = if op.select_last_index {
        " || v == best".to_string()
    } else {
        String::new()
    };
    cx.line(format!("for (size_t p = 0; p < {pre}; p++) {{"));
    cx.line(format!("for (size_t q = 0; q < {post}; q++) {{"));
    cx.line(format!("const size_t base = p * {} + q;", n * post));
    cx.line(format!("{t} best = {};", x.load("base")));
    cx.line("int64_t bi = 0;");
    cx.line(format!("for (size_t j = 1; j < {n}; j++) {{"));
    cx.line(format!(
        "{t} v = {};",
        x.load(&format!("base + j * {post}"))
    ));
    cx.line(format!(
        "if (v {cmp} best{tie}) {{ best = v; bi = (int64_t)j; }}"
    ));
    cx.line("}");
    cx.line(format!("{}[p * {post} + q] = bi;", y.expr));
    cx.close(2);
    Ok(())
}

/// `CumSum`/`CumProd`: floats accumulate in `double`, integers wrap. A constant axis gives
/// one loop nest; an axis given at run time selects among one nest per possible axis (an
/// out-of-range value zero-fills the output and records the error with `pt_set_error`).
fn lower_cum(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let op = cx.op::<Cumulative>()?.clone();
    let (x, y) = (cx.input(0)?.clone(), cx.output(0)?.clone());
    cx.ctype_of(&x)?;
    if !(is_float(x.dtype) || is_int(x.dtype)) {
        return Err(cx.unsupported(format!("{} of {}", op_name(cx), x.dtype)));
    }
    let axis_t = cx.input(1)?.clone();
    if axis_t.numel() != 1 || !is_int(axis_t.dtype) {
        return Err(cx.invalid(format!(
            "axis input of {} x{} (needs one integer)",
            axis_t.dtype,
            axis_t.numel()
        )));
    }
    if x.rank() == 0 {
        return Err(cx.invalid("CumSum/CumProd of a scalar".into()));
    }
    if axis_t.constant.is_some() {
        let axis = const_ints(cx, &axis_t, "axis")?
            .first()
            .copied()
            .unwrap_or(0);
        let ax = norm_axis(cx, axis, x.rank())?;
        if y.numel() > 0 {
            emit_cum(cx, &op, &x, &y, ax);
        }
        return Ok(());
    }
    if y.numel() == 0 {
        return Ok(());
    }
    let r = x.rank();
    cx.line(format!("int64_t a = (int64_t){}[0];", axis_t.expr));
    cx.line(format!("if (a < 0) a += {r};"));
    cx.line("switch (a) {");
    for ax in 0..r {
        cx.line(format!("case {ax}: {{"));
        emit_cum(cx, &op, &x, &y, ax);
        cx.line("break;");
        cx.line("}");
    }
    cx.line("default:");
    cx.line(format!(
        "pt_set_error(\"{}: axis %lld is out of range for rank {r}\", (long long){}[0]);",
        op_name(cx),
        axis_t.expr
    ));
    cx.line(format!("memset({}, 0, {});", y.expr, y.bytes()));
    cx.line("break;");
    cx.line("}");
    Ok(())
}

/// The loop nest of a running sum/product of `x` into `y` along axis `ax`.
fn emit_cum(cx: &mut LowerCx<'_>, op: &Cumulative, x: &CTensor, y: &CTensor, ax: usize) {
    let pre: usize = x.shape[..ax].iter().product();
    let n = x.shape[ax];
    let post: usize = x.shape[ax + 1..].iter().product();
    let (acc_t, id, upd) = if is_float(x.dtype) {
        (
            "double",
            if op.prod { "1.0" } else { "0.0" },
            if op.prod {
                "acc *= (double)v;"
            } else {
                "acc += (double)v;"
            },
        )
    } else {
        (
            "uint64_t",
            if op.prod { "1" } else { "0" },
            if op.prod {
                "acc *= (uint64_t)v;"
            } else {
                "acc += (uint64_t)v;"
            },
        )
    };
    let store = if is_float(y.dtype) {
        y.store("at", "acc")
    } else {
        format!("{}[at] = ({})acc;", y.expr, y.ctype())
    };
    let j = if op.reverse {
        format!("({} - k)", n.saturating_sub(1))
    } else {
        "k".into()
    };
    cx.line(format!("for (size_t p = 0; p < {pre}; p++) {{"));
    cx.line(format!("for (size_t q = 0; q < {post}; q++) {{"));
    cx.line(format!("{acc_t} acc = {id};"));
    cx.line(format!("for (size_t k = 0; k < {n}; k++) {{"));
    cx.line(format!(
        "const size_t at = p * {} + {j} * {post} + q;",
        n * post
    ));
    cx.line(format!("{} v = {};", x.compute_type(), x.load("at")));
    if op.exclusive {
        cx.line(&store);
        cx.line(upd);
    } else {
        cx.line(upd);
        cx.line(&store);
    }
    cx.close(3);
}

/// `TopK` with a constant `k`: per group a selection by (value, then lower index), so the
/// outputs are sorted best first with ties by lower index, as the interpreter's stable sort.
fn lower_topk(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let op = cx.op::<TopK>()?.clone();
    let x = cx.input(0)?.clone();
    let (vals, idx) = (cx.output(0)?.clone(), cx.output(1)?.clone());
    cx.ctype_of(&x)?;
    if !(is_float(x.dtype) || is_int(x.dtype)) {
        return Err(cx.unsupported(format!("TopK of {}", x.dtype)));
    }
    let k = match (op.k, cx.opt_input(1)) {
        (Some(k), _) => k,
        (None, Some(t)) => match const_ints(cx, t, "K")?.as_slice() {
            [k] => *k,
            v => return Err(cx.invalid(format!("K input with {} values", v.len()))),
        },
        (None, None) => return Err(cx.invalid("no k attribute or K input".into())),
    };
    let ax = norm_axis(cx, op.axis, x.rank())?;
    let n = x.shape[ax];
    if k < 0 || k as usize > n {
        return Err(cx.invalid(format!("k = {k} is out of range for axis size {n}")));
    }
    let k = k as usize;
    if k == 0 || vals.numel() == 0 {
        return Ok(());
    }
    let pre: usize = x.shape[..ax].iter().product();
    let post: usize = x.shape[ax + 1..].iter().product();
    let scratch = cx.scratch((n * 8) as u64);
    let t = x.compute_type();
    // a is better than b: larger (smaller) value, or equal and lower index.
    let better = if op.largest { ">" } else { "<" };
    cx.line(format!("int64_t *ix = (int64_t *){scratch};"));
    cx.line(format!("for (size_t p = 0; p < {pre}; p++) {{"));
    cx.line(format!("for (size_t q = 0; q < {post}; q++) {{"));
    cx.line(format!("const size_t base = p * {} + q;", n * post));
    cx.line(format!(
        "for (size_t j = 0; j < {n}; j++) ix[j] = (int64_t)j;"
    ));
    cx.line(format!("for (size_t s = 0; s < {k}; s++) {{"));
    cx.line("size_t b = s;");
    cx.line(format!(
        "{t} bv = {};",
        x.load(&format!("base + (size_t)ix[s] * {post}"))
    ));
    cx.line(format!("for (size_t j = s + 1; j < {n}; j++) {{"));
    cx.line(format!(
        "{t} v = {};",
        x.load(&format!("base + (size_t)ix[j] * {post}"))
    ));
    cx.line(format!(
        "if (v {better} bv || (v == bv && ix[j] < ix[b])) {{ b = j; bv = v; }}"
    ));
    cx.line("}");
    cx.line("int64_t tmp = ix[s]; ix[s] = ix[b]; ix[b] = tmp;");
    cx.line(format!(
        "const size_t at = p * {} + s * {post} + q;",
        k * post
    ));
    cx.line(format!(
        "{}[at] = {}[base + (size_t)ix[s] * {post}];",
        vals.expr, x.expr
    ));
    cx.line(format!("{}[at] = ix[s];", idx.expr));
    cx.close(3);
    Ok(())
}
