//! Basic lowerings, and the worked example of the interface: layout no-ops as copies
//! (Identity, Reshape, Flatten, Squeeze, Unsqueeze) and Cast between the numeric types.
//! (Relu and Add live in the elementwise family, `lower/elementwise*.rs`.)

use super::{CTensor, LowerCx, LowerError, Registry};
use petasos_ir::DType;

/// Registers this family's lowerings.
pub fn register(r: &mut Registry) {
    for op in ["Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze"] {
        r.op(op, lower_copy);
    }
    r.op("Cast", lower_cast);
    r.op("CastLike", lower_cast);
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

/// Cast between numeric types with the interpreter's rules: float -> int truncates toward
/// zero (NaN -> 0) and wraps to the width; int -> int wraps; anything -> bool is `!= 0`
/// (NaN -> true); bool -> anything is 0/1. float8/float4/string targets are not lowered.
fn lower_cast(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let (x, y) = (cx.input(0)?.clone(), cx.output(0)?.clone());
    cx.ctype_of(&x)?;
    cx.ctype_of(&y)?;
    if x.dtype == y.dtype {
        return emit_copy(cx, &x, &y);
    }
    cx.line(format!("for (size_t i = 0; i < {}; i++) {{", y.numel()));
    let v = x.load("i");
    if y.dtype == DType::Bool {
        cx.line(format!("{}[i] = (uint8_t)(({v}) != 0);", y.expr));
    } else if x.dtype.is_float() && y.dtype.is_int() {
        cx.line(format!("double v = (double)({v});"));
        cx.line("v = isnan(v) ? 0.0 : trunc(v);");
        cx.line("uint64_t u = v >= 9223372036854775808.0 ? (v < 18446744073709551616.0 ? (uint64_t)v : UINT64_MAX) : (v < -9223372036854775808.0 ? (uint64_t)INT64_MIN : (uint64_t)(int64_t)v);");
        cx.line(format!("{}[i] = ({})u;", y.expr, y.ctype()));
    } else if y.dtype.is_float() {
        let t = if y.dtype == DType::F64 || x.dtype == DType::F64 {
            "double"
        } else {
            "float"
        };
        let conv = format!("({t})({v})");
        cx.line(y.store("i", &conv));
    } else {
        cx.line(format!("{}[i] = ({})({v});", y.expr, y.ctype()));
    }
    cx.line("}");
    Ok(())
}
