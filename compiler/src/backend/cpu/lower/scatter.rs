//! Indexed-write lowerings: ScatterElements (and the legacy Scatter), ScatterND (reductions
//! none/add/mul/max/min with the interpreter's semantics: integers wrap, float max/min skip
//! NaN like `f64::max`, bools or/and), TensorScatter (linear and circular KV-cache writes).
//! The output starts as a copy of the data; updates are applied in index order.

use super::gather::{emit_index, offset_expr, open_loops};
use super::movement::strides;
use super::operand::{ctype, norm_axis};
use super::{CTensor, LowerCx, LowerError, Registry};
use petasos_ir::ops::shape_ops::scatter::{Reduction, ScatterElements, ScatterND, TensorScatter};
use petasos_ir::DType;

/// Registers this family's lowerings.
pub fn register(r: &mut Registry) {
    r.op("ScatterElements", lower_scatter_elements);
    r.op("Scatter", lower_scatter_elements);
    r.op("ScatterND", lower_scatter_nd);
    r.op("TensorScatter", lower_tensor_scatter);
}

/// Emits `y[yi] = reduce(y[yi], u[ui])`.
fn emit_reduce(
    cx: &mut LowerCx<'_>,
    y: &CTensor,
    yi: &str,
    u: &CTensor,
    ui: &str,
    red: Reduction,
) -> Result<(), LowerError> {
    if red == Reduction::None {
        cx.line(format!("{}[{yi}] = {}[{ui}];", y.expr, u.expr));
        return Ok(());
    }
    let (a, b) = (y.load(yi), u.load(ui));
    let v = match y.dtype {
        DType::Bool => match red {
            Reduction::Add | Reduction::Max => format!("{a} | {b}"),
            _ => format!("{a} & {b}"),
        },
        d if d.is_float() => {
            let t = if d == DType::F64 { "" } else { "f" };
            match red {
                Reduction::Add => format!("{a} + {b}"),
                Reduction::Mul => format!("{a} * {b}"),
                Reduction::Max => format!("fmax{t}({a}, {b})"),
                _ => format!("fmin{t}({a}, {b})"),
            }
        }
        d if d.is_int() => {
            let ut = match d.bytes_for(1) {
                1 => "uint8_t",
                2 => "uint16_t",
                4 => "uint32_t",
                _ => "uint64_t",
            };
            match red {
                Reduction::Add => format!("({ut})(({ut}){a} + ({ut}){b})"),
                Reduction::Mul => format!("({ut})((uint64_t)({ut}){a} * (uint64_t)({ut}){b})"),
                Reduction::Max => format!("({a} > {b} ? {a} : {b})"),
                _ => format!("({a} < {b} ? {a} : {b})"),
            }
        }
        d => return Err(cx.unsupported(format!("reduction on {d}"))),
    };
    cx.line(y.store(yi, &v));
    Ok(())
}

/// Copies `x` into `y` (the starting point of every scatter).
fn copy_data(cx: &mut LowerCx<'_>, x: &CTensor, y: &CTensor) -> Result<(), LowerError> {
    if x.dtype != y.dtype || x.shape != y.shape {
        return Err(cx.invalid("output differs from the data in dtype or shape".into()));
    }
    if y.numel() > 0 {
        cx.line(format!("memcpy({}, {}, {});", y.expr, x.expr, y.bytes()));
    }
    Ok(())
}

/// The data, indices and updates (inputs 0 to 2) and the output of a scatter; checks the
/// data has a C type.
fn scatter_io(cx: &LowerCx<'_>) -> Result<(CTensor, CTensor, CTensor, CTensor), LowerError> {
    let io = (
        cx.input(0)?.clone(),
        cx.input(1)?.clone(),
        cx.input(2)?.clone(),
        cx.output(0)?.clone(),
    );
    ctype(cx, &io.0)?;
    Ok(io)
}

fn lower_scatter_elements(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let (x, ind, u, y) = scatter_io(cx)?;
    let op = cx.op::<ScatterElements>()?;
    let red = op.reduction;
    let r = x.rank();
    let a = norm_axis(cx, op.axis, r)?;
    if ind.shape != u.shape
        || ind.rank() != r
        || u.dtype != x.dtype
        || (0..r).any(|i| i != a && ind.shape[i] > x.shape[i])
    {
        return Err(cx.invalid(format!(
            "indices {:?} / updates {:?} do not fit data {:?}",
            ind.shape, u.shape, x.shape
        )));
    }
    copy_data(cx, &x, &y)?;
    if u.numel() == 0 {
        return Ok(());
    }
    let xs = strides(&x.shape);
    cx.line("size_t f = 0;");
    let n = open_loops(cx, &ind.shape);
    emit_index(cx, "k", &ind, "f", x.shape[a], "ScatterElements")?;
    let off = format!("{} + (size_t)k * {}", offset_expr(&xs, Some(a)), xs[a]);
    emit_reduce(cx, &y, &off, &u, "f", red)?;
    cx.line("f++;");
    cx.close(n);
    Ok(())
}

fn lower_scatter_nd(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let (x, ind, u, y) = scatter_io(cx)?;
    let red = cx.op::<ScatterND>()?.reduction;
    let q = ind.rank();
    if q == 0 || u.dtype != x.dtype {
        return Err(cx.invalid("scalar indices or updates of another dtype".into()));
    }
    let k = ind.shape[q - 1];
    if k > x.rank() {
        return Err(cx.invalid("index tuples longer than the data rank".into()));
    }
    let mut want = ind.shape[..q - 1].to_vec();
    want.extend_from_slice(&x.shape[k..]);
    if u.shape != want {
        return Err(cx.invalid(format!("updates {:?} should be {want:?}", u.shape)));
    }
    copy_data(cx, &x, &y)?;
    let xs = strides(&x.shape);
    let slice: usize = x.shape[k..].iter().product();
    let tuples: usize = ind.shape[..q - 1].iter().product();
    if tuples * slice == 0 {
        return Ok(());
    }
    cx.line(format!("for (size_t tu = 0; tu < {tuples}; tu++) {{"));
    cx.line("size_t off = 0;");
    for (j, (&d, st)) in x.shape.iter().zip(&xs).enumerate().take(k) {
        emit_index(
            cx,
            &format!("k{j}"),
            &ind,
            &format!("tu * {k} + {j}"),
            d,
            "ScatterND",
        )?;
        cx.line(format!("off += (size_t)k{j} * {st};"));
    }
    cx.line(format!("for (size_t e = 0; e < {slice}; e++) {{"));
    emit_reduce(cx, &y, "off + e", &u, &format!("tu * {slice} + e"), red)?;
    cx.close(2);
    Ok(())
}

fn lower_tensor_scatter(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let (x, u, y) = (
        cx.input(0)?.clone(),
        cx.input(1)?.clone(),
        cx.output(0)?.clone(),
    );
    let t = ctype(cx, &x)?;
    let op = cx.op::<TensorScatter>()?;
    let circular = op.circular;
    let r = x.rank();
    let a = norm_axis(cx, op.axis, r)?;
    let (s, us) = (&x.shape, &u.shape);
    if a == 0
        || us.len() != r
        || u.dtype != x.dtype
        || (0..r).any(|i| if i == a { us[i] > s[i] } else { us[i] != s[i] })
    {
        return Err(cx.invalid(format!("update {us:?} does not fit cache {s:?}")));
    }
    copy_data(cx, &x, &y)?;
    if u.numel() == 0 {
        return Ok(());
    }
    let p: usize = s[1..a].iter().product();
    let q: usize = s[a + 1..].iter().product();
    let (sa, ua) = (s[a], us[a]);
    let wi = cx.opt_input(2).cloned();
    if let Some(w) = &wi {
        if w.numel() != s[0] || !w.dtype.is_int() {
            return Err(cx.invalid("write_indices must hold one integer per batch".into()));
        }
    }
    let f = cx.fn_name.clone();
    cx.line(format!("for (size_t b = 0; b < {}; b++) {{", s[0]));
    match &wi {
        Some(w) => cx.line(format!("const int64_t start = (int64_t){};", w.load("b"))),
        None => cx.line("const int64_t start = 0;"),
    }
    cx.line(format!("for (size_t p = 0; p < {p}; p++) {{"));
    cx.line(format!("for (int64_t tt = 0; tt < {ua}; tt++) {{"));
    cx.line("int64_t pos = start + tt;");
    if circular {
        cx.line(format!("pos %= {sa}; if (pos < 0) pos += {sa};"));
    }
    cx.line(format!("if (pos < 0 || pos >= {sa}) {{"));
    cx.line(format!(
        "pt_set_error(\"{f}: write position %lld is outside the cache length {sa}\", (long long)pos);"
    ));
    cx.line("return;");
    cx.line("}");
    cx.line(format!(
        "memcpy({} + ((b * {p} + p) * {sa} + (size_t)pos) * {q}, {} + ((b * {p} + p) * {ua} + (size_t)tt) * {q}, {q} * sizeof({t}));",
        y.expr, u.expr
    ));
    cx.close(3);
    Ok(())
}
