//! Basic lowerings, and the worked example of the interface: layout no-ops as copies
//! (Identity, Reshape, Flatten, Squeeze, Unsqueeze). Relu and Add live in the elementwise
//! family (`lower/elementwise*.rs`), Cast and CastLike in `lower/cast.rs`.

use super::{CTensor, LowerCx, LowerError, Registry};

/// Registers this family's lowerings.
pub fn register(r: &mut Registry) {
    for op in ["Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze"] {
        r.op(op, lower_copy);
    }
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
