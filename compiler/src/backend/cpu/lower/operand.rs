//! Operand helpers shared by the shape/data-movement lowerings: compile-time values of
//! constant operands (axes, pads, starts...), axis normalisation, C literals per dtype and
//! filling a tensor with one value.

use super::{CTensor, LowerCx, LowerError};
use petasos_ir::{DType, Tensor};

/// The integer values of optional input `slot` when it is present: `Ok(None)` when the input
/// is omitted; an `unsupported` error naming `what` when it is present but not a constant
/// (the CPU backend bakes such operands into the C code).
pub fn const_ints(
    cx: &LowerCx<'_>,
    slot: usize,
    what: &str,
) -> Result<Option<Vec<i64>>, LowerError> {
    const_values(cx, slot, what, Tensor::to_i64_vec)
}

/// The float values of optional input `slot` when present (see [`const_ints`]).
pub fn const_floats(
    cx: &LowerCx<'_>,
    slot: usize,
    what: &str,
) -> Result<Option<Vec<f64>>, LowerError> {
    const_values(cx, slot, what, Tensor::to_f64_vec)
}

/// [`const_ints`] / [`const_floats`] with the conversion `values` of the constant.
fn const_values<T>(
    cx: &LowerCx<'_>,
    slot: usize,
    what: &str,
    values: impl Fn(&Tensor) -> petasos_ir::Result<Vec<T>>,
) -> Result<Option<Vec<T>>, LowerError> {
    let Some(t) = cx.opt_input(slot) else {
        return Ok(None);
    };
    if t.numel() == 0 {
        return Ok(Some(Vec::new()));
    }
    let Some(c) = &t.constant else {
        return Err(cx.unsupported(format!("a non-constant {what} input")));
    };
    values(c)
        .map(Some)
        .map_err(|e| cx.invalid(format!("{what}: {e}")))
}

/// Emits `for i in 0..numel(y): y[i] = v` (in a block of its own) with `v` a C expression in
/// `y`'s compute type; nothing for an empty `y`.
pub fn fill(cx: &mut LowerCx<'_>, y: &CTensor, v: &str) {
    if y.numel() == 0 {
        return;
    }
    cx.line("{");
    cx.line(format!("const {} fv = {v};", y.compute_type()));
    cx.line(format!("for (size_t i = 0; i < {}; i++) {{", y.numel()));
    cx.line(y.store("i", "fv"));
    cx.close(2);
}

/// Normalises `axis` (negative counts from the end) against `rank`.
pub fn norm_axis(cx: &LowerCx<'_>, axis: i64, rank: usize) -> Result<usize, LowerError> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r.max(1) {
        return Err(cx.invalid(format!("axis {axis} is out of range for rank {rank}")));
    }
    Ok(a as usize)
}

/// Checks that the tensor's dtype has a C type and returns it.
pub fn ctype(cx: &LowerCx<'_>, t: &CTensor) -> Result<&'static str, LowerError> {
    if t.dtype == DType::String {
        return Err(cx.unsupported("string tensors"));
    }
    cx.ctype_of(t)
}

/// A C literal of `v` in the compute type of `d` (`float` for f16/bf16, which callers
/// convert with `CTensor::store`).
pub fn literal(d: DType, v: f64) -> String {
    if d.is_float() {
        if v.is_nan() {
            return "NAN".into();
        }
        if v.is_infinite() {
            return if v > 0.0 {
                "INFINITY".into()
            } else {
                "-INFINITY".into()
            };
        }
        let s = format!("{v:?}");
        if d == DType::F64 {
            s
        } else {
            format!("{s}f")
        }
    } else if d == DType::Bool {
        if v != 0.0 { "1" } else { "0" }.into()
    } else {
        int_literal(d, v as i128)
    }
}

/// A C literal of integer `v` for dtype `d` (wrapped to the width by the cast).
pub fn int_literal(d: DType, v: i128) -> String {
    match d {
        DType::I64 if v == i64::MIN as i128 => "INT64_MIN".into(),
        DType::U64 | DType::U32 => format!("({})UINT64_C({})", "uint64_t", v as u64),
        _ => format!("(int64_t)INT64_C({})", v as i64),
    }
}
