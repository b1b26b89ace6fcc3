//! Basic lowerings, and the worked example of the interface: layout no-ops as copies
//! (Identity, Reshape, Flatten, Squeeze, Unsqueeze), Relu and Add of equal shapes. (Cast
//! and CastLike live in `lower/cast.rs`.)

use super::{CTensor, LowerCx, LowerError, Registry};
use petasos_ir::DType;

/// Registers this family's lowerings.
pub fn register(r: &mut Registry) {
    for op in ["Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze"] {
        r.op(op, lower_copy);
    }
    r.op("Relu", lower_relu);
    r.op("Add", lower_add);
}

/// Emits `memcpy(dst, src)` of `dst`'s bytes (sizes must agree).
pub fn emit_copy(cx: &mut LowerCx<'_>, src: &CTensor, dst: &CTensor) -> Result<(), LowerError> {
    if src.dtype != dst.dtype || src.numel() != dst.numel() {
        return Err(cx.invalid(format!(
            "copy of {} x{} into {} x{}",
            src.dtype,
            src.numel(),
            dst.dtype,
            dst.numel()
        )));
    }
    cx.ctype_of(dst)?;
    if dst.numel() > 0 {
        cx.line(format!(
            "memcpy({}, {}, {});",
            dst.expr,
            src.expr,
            dst.bytes()
        ));
    }
    Ok(())
}

/// Ops that only reinterpret the shape: the output is a copy of input 0.
fn lower_copy(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let (x, y) = (cx.input(0)?.clone(), cx.output(0)?.clone());
    emit_copy(cx, &x, &y)
}

/// Relu on float types: `y = x > 0 ? x : 0` (NaN stays NaN, as `max(x, 0)` in the
/// interpreter gives NaN for NaN).
fn lower_relu(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let (x, y) = (cx.input(0)?.clone(), cx.output(0)?.clone());
    if !x.dtype.is_float() {
        return Err(cx.unsupported(format!("Relu of {}", x.dtype)));
    }
    cx.ctype_of(&x)?;
    let t = x.compute_type();
    cx.line(format!("for (size_t i = 0; i < {}; i++) {{", x.numel()));
    cx.line(format!("{t} v = {};", x.load("i")));
    cx.line(y.store("i", &format!("v < ({t})0 ? ({t})0 : v")));
    cx.line("}");
    Ok(())
}

/// Add of two inputs of the same shape and dtype (broadcasting belongs to the elementwise
/// family). Integers wrap (computed in the unsigned type of the same width).
fn lower_add(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let (a, b, y) = (
        cx.input(0)?.clone(),
        cx.input(1)?.clone(),
        cx.output(0)?.clone(),
    );
    if a.shape != b.shape || a.shape != y.shape || a.dtype != b.dtype {
        return Err(cx.unsupported("Add with broadcasting"));
    }
    cx.ctype_of(&a)?;
    let expr = match a.dtype {
        d if d.is_float() => format!("{} + {}", a.load("i"), b.load("i")),
        DType::I8 | DType::I16 | DType::I32 | DType::I64 => {
            let u = a.ctype().replace("int", "uint");
            format!("({u}){} + ({u}){}", a.load("i"), b.load("i"))
        }
        d if d.is_int() => format!("{} + {}", a.load("i"), b.load("i")),
        d => return Err(cx.unsupported(format!("Add of {d}"))),
    };
    cx.line(format!("for (size_t i = 0; i < {}; i++) {{", y.numel()));
    cx.line(y.store("i", &expr));
    cx.line("}");
    Ok(())
}
