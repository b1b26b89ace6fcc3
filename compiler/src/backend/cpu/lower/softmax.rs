//! `Softmax`, `LogSoftmax` and `Hardmax` lowerings: along one axis (opset >= 13) or over
//! the 2-D coercion at `axis` (older opsets: all axes from `axis` on), computed in `double`
//! as the interpreter does (max ignoring NaN as `f64::max`, then the exponentials).

use super::reduce_nest::{contiguous, is_float, load_f64, norm_axis, Nest, Part};
use super::{LowerCx, LowerError, Registry};
use petasos_ir::ops::reduce::{SoftKind, SoftmaxLike};
use petasos_ir::DType;

/// Registers this file's lowerings.
pub fn register(r: &mut Registry) {
    r.op("Softmax", lower_softmax);
    r.op("LogSoftmax", lower_softmax);
    r.op("Hardmax", lower_softmax);
}

/// Lowers the three ops: per group, a max pass, a sum-of-exponentials pass (not for
/// Hardmax), then the store pass.
fn lower_softmax(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let op = cx.op::<SoftmaxLike>()?.clone();
    let (x, y) = (cx.input(0)?.clone(), cx.output(0)?.clone());
    cx.ctype_of(&x)?;
    if !is_float(x.dtype) {
        return Err(cx.unsupported(format!("{} of {}", cx.node().op.op_type(), x.dtype)));
    }
    if y.numel() == 0 {
        return Ok(());
    }
    let rank = x.rank();
    let mask: Vec<bool> = if rank == 0 {
        Vec::new()
    } else {
        let ax = norm_axis(cx, op.axis, rank)?;
        (0..rank)
            .map(|i| if op.legacy { i >= ax } else { i == ax })
            .collect()
    };
    let nest = Nest::new(&x.shape, &mask, &[contiguous(&x.shape)]);
    let xi = nest.off_all(0);
    let v = load_f64(&x, &xi);
    let outer = nest.open(cx, Part::Outer);
    match op.kind {
        SoftKind::Hardmax => {
            // The first index of the largest value (`>`: NaN is only kept when first).
            cx.line("int first = 1;");
            cx.line("double best = 0.0;");
            cx.line("size_t bi = 0;");
            let c = nest.open(cx, Part::Inner);
            cx.line(format!("double v = {v};"));
            cx.line(format!(
                "if (first || v > best) {{ first = 0; best = v; bi = {xi}; }}"
            ));
            cx.close(c);
            let c = nest.open(cx, Part::Inner);
            cx.line(y.store(&xi, &format!("({xi}) == bi ? 1.0 : 0.0")));
            cx.close(c);
        }
        kind => {
            cx.line("double m = -INFINITY;");
            let c = nest.open(cx, Part::Inner);
            cx.line(format!("m = fmax(m, {v});"));
            cx.close(c);
            cx.line("double s = 0.0;");
            // Softmax into f32/f64: the exponentials are kept in the output and divided in
            // place (one exp per element; the f32 rounding is far below the tolerance).
            let stash = kind == SoftKind::Softmax && matches!(y.dtype, DType::F32 | DType::F64);
            let c = nest.open(cx, Part::Inner);
            if stash {
                cx.line(format!("const double e = exp({v} - m);"));
                cx.line("s += e;");
                cx.line(y.store(&xi, "e"));
            } else {
                cx.line(format!("s += exp({v} - m);"));
            }
            cx.close(c);
            if kind == SoftKind::LogSoftmax {
                cx.line("const double ls = log(s);");
            }
            let c = nest.open(cx, Part::Inner);
            let val = if kind == SoftKind::LogSoftmax {
                format!("{v} - m - ls")
            } else if stash {
                format!("(double){}[{xi}] / s", y.expr)
            } else {
                format!("exp({v} - m) / s")
            };
            cx.line(y.store(&xi, &val));
            cx.close(c);
        }
    }
    cx.close(outer);
    Ok(())
}
