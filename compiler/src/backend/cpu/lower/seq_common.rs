//! Helpers shared by the attention, recurrent and signal lowerings: the C compute type of a
//! float dtype, the interpreter's per-op rounding as a C expression, C float literals and
//! row-major index expressions.

use super::{CTensor, LowerCx, LowerError};
use petasos_ir::DType;

/// The C type a float computation runs in: `double` when any of `dts` is f64, else `float`
/// (f16/bf16 are computed in float, as `CTensor::load` yields).
pub fn ftype(dts: &[DType]) -> &'static str {
    if dts.contains(&DType::F64) {
        "double"
    } else {
        "float"
    }
}

/// `x` (an expression in the compute type `t`) rounded to `dt` and back to `t`: the
/// interpreter computes in f64 and rounds to the op's dtype after every step; f32 and f64
/// computed in their own type need no rounding.
pub fn round(dt: DType, t: &str, x: &str) -> String {
    match dt {
        DType::F16 => format!("pt_h2f(pt_f2h((float)({x})))"),
        DType::BF16 => format!("pt_bf2f(pt_f2bf((float)({x})))"),
        DType::F32 if t == "double" => format!("(double)(float)({x})"),
        _ => format!("({x})"),
    }
}

/// A C literal of `v` (a `double` constant; exact round trip).
pub fn lit(v: f64) -> String {
    if v.is_nan() {
        "NAN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "INFINITY" } else { "(-INFINITY)" }.into()
    } else {
        format!("{v:?}")
    }
}

/// A row-major index expression `sum(idx[k] * stride[k])` over `dims` with the given index
/// variable names; dimensions of size 1 are dropped from the expression.
pub fn index(dims: &[usize], vars: &[&str]) -> String {
    let mut stride = 1usize;
    let mut terms = Vec::new();
    for (&d, v) in dims.iter().zip(vars).rev() {
        if d != 1 {
            terms.push(if stride == 1 {
                format!("({v})")
            } else {
                format!("({v}) * {stride}")
            });
        }
        stride *= d;
    }
    if terms.is_empty() {
        "0".into()
    } else {
        terms.reverse();
        terms.join(" + ")
    }
}

/// Checks that `t` is a float tensor the backend can represent; an `unsupported` error
/// naming `what` otherwise.
pub fn need_float(cx: &LowerCx<'_>, t: &CTensor, what: &str) -> Result<(), LowerError> {
    cx.ctype_of(t)?;
    if !matches!(t.dtype, DType::F16 | DType::BF16 | DType::F32 | DType::F64) {
        return Err(cx.unsupported(format!("{what} of dtype {}", t.dtype)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_drops_unit_dims_and_scales_strides() {
        assert_eq!(
            index(&[2, 3, 4], &["a", "b", "c"]),
            "(a) * 12 + (b) * 4 + (c)"
        );
        assert_eq!(index(&[1, 3, 1], &["a", "b", "c"]), "(b)");
        assert_eq!(index(&[1, 1], &["a", "b"]), "0");
    }

    #[test]
    fn literals_round_trip() {
        for v in [0.1, 1.0, -2.5e-7, 1e300, f64::MIN_POSITIVE] {
            assert_eq!(lit(v).parse::<f64>().ok(), Some(v));
        }
        assert_eq!(lit(f64::NEG_INFINITY), "(-INFINITY)");
        assert_eq!(round(DType::F32, "float", "x"), "(x)");
        assert!(round(DType::BF16, "float", "x").contains("pt_f2bf"));
    }
}
