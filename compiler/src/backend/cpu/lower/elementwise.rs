//! The elementwise family: the shared map emitter (inputs broadcast to the output, one loop
//! nest, one store per element), C expression helpers per dtype, and the registration of
//! every elementwise lowering (unary math and activations in `elementwise_unary`, binary,
//! variadic, `Where` and `Clip` in `elementwise_binary`).
//!
//! Semantics follow the reference interpreter (`ir/src/ops/elementwise/`): floats are computed
//! in `float` (f32, f16, bf16) or `double` (f64) and rounded to the output type on store;
//! integer arithmetic wraps to the output width (computed in `uint64_t`, where wrap-around is
//! defined, and truncated on store); integer division and remainder by zero give 0.

use super::broadcast::Bcast;
use super::{elementwise_binary, elementwise_unary, CTensor, LowerCx, LowerError, Registry};
use petasos_ir::op::Attr;
use petasos_ir::DType;

/// Registers this family's lowerings.
pub fn register(r: &mut Registry) {
    elementwise_unary::register(r);
    elementwise_binary::register(r);
}

/// One element's computation: statements, then the value stored to the output (in the
/// output's compute type, or its storage type for a raw map).
#[derive(Clone, Debug, Default)]
pub struct Elem {
    pub pre: Vec<String>,
    pub val: String,
}

impl Elem {
    /// A bare expression.
    pub fn expr(val: impl Into<String>) -> Elem {
        Elem {
            pre: Vec::new(),
            val: val.into(),
        }
    }
}

/// How [`emit_map`] reads inputs and writes the output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Values in the compute type (f16/bf16 converted to and from `float`).
    Compute,
    /// Storage values as they are (selection ops that only move elements).
    Raw,
}

/// The local variable holding input `k`'s element inside an [`emit_map`] body.
pub fn var(k: usize) -> String {
    format!("x{k}")
}

/// Emits `out[o] = f(x0, x1, ...)` for every output element, each input broadcast to the
/// output's shape (numpy rules). `f` gets the variable names `x0`, `x1`, ... (declared
/// `const` in each input's compute type, see [`Access`]) and returns the statements and the
/// value. An empty output emits nothing.
pub fn emit_map(
    cx: &mut LowerCx<'_>,
    ins: &[&CTensor],
    out: &CTensor,
    access: Access,
    f: &dyn Fn(&[String]) -> Elem,
) -> Result<(), LowerError> {
    for t in ins.iter().copied().chain(std::iter::once(out)) {
        cx.ctype_of(t)?;
    }
    let shapes: Vec<&[usize]> = ins.iter().map(|t| t.shape.as_slice()).collect();
    let b = Bcast::new(&out.shape, &shapes).map_err(|e| cx.invalid(e))?;
    if b.numel == 0 {
        cx.line("/* empty output: nothing to compute */");
        return Ok(());
    }
    let vars: Vec<String> = (0..ins.len()).map(var).collect();
    let body = f(&vars);
    let (o, idx) = b.open(cx);
    for ((t, v), i) in ins.iter().zip(&vars).zip(&idx) {
        let (ty, load) = match access {
            Access::Compute => (t.compute_type(), t.load(i)),
            Access::Raw => (t.ctype(), format!("{}[{i}]", t.expr)),
        };
        cx.line(format!("const {ty} {v} = {load};"));
    }
    for p in &body.pre {
        cx.line(p);
    }
    match access {
        Access::Compute => cx.line(out.store(&o, &body.val)),
        Access::Raw => cx.line(format!("{}[{o}] = {};", out.expr, body.val)),
    }
    b.close(cx);
    Ok(())
}

/// The C type floats of `d` are computed in (`float` for f32/f16/bf16, `double` for f64).
pub fn float_type(d: DType) -> Option<&'static str> {
    match d {
        DType::F32 | DType::F16 | DType::BF16 => Some("float"),
        DType::F64 => Some("double"),
        _ => None,
    }
}

/// The libm function `name` for the compute type `t` (`expf` for float, `exp` for double).
pub fn mfn(t: &str, name: &str) -> String {
    if t == "float" {
        format!("{name}f")
    } else {
        name.to_string()
    }
}

/// A C literal of `v` converted to the compute type `t` (exact for f32 attribute values).
pub fn lit(t: &str, v: f64) -> String {
    let s = if v.is_nan() {
        "NAN".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "INFINITY" } else { "-INFINITY" }.to_string()
    } else {
        // `{:?}` is the shortest text that reads back as the same f64.
        let s = format!("{v:?}");
        if s.contains(['.', 'e', 'E']) {
            s
        } else {
            format!("{s}.0")
        }
    };
    format!("(({t}){s})")
}

/// Statements converting the double expression `v` to an integer as the interpreter does
/// (truncation toward zero, NaN to 0, saturated to 64 bits, then wrapped on store), leaving
/// the result in `uint64_t` variable `dst`.
pub fn f2i(v: &str, dst: &str) -> Vec<String> {
    vec![
        format!("double {dst}_d = (double)({v});"),
        format!("{dst}_d = isnan({dst}_d) ? 0.0 : trunc({dst}_d);"),
        format!(
            "const uint64_t {dst} = {dst}_d >= 9223372036854775808.0 ? ({dst}_d < 18446744073709551616.0 ? (uint64_t){dst}_d : UINT64_MAX) : ({dst}_d < -9223372036854775808.0 ? (uint64_t)INT64_MIN : (uint64_t)(int64_t){dst}_d);"
        ),
    ]
}

/// `(uint64_t)(x)`: integer arithmetic that wraps (the store truncates to the output width).
pub fn u64(x: &str) -> String {
    format!("(uint64_t){x}")
}

/// The anchor's float attribute `name`, `default` when absent.
pub fn attr_f(cx: &LowerCx<'_>, name: &str, default: f32) -> f32 {
    match find_attr(cx, name) {
        Some(Attr::Float(v)) => v,
        Some(Attr::Int(v)) => v as f32,
        _ => default,
    }
}

/// The anchor's optional float attribute `name`.
pub fn opt_attr_f(cx: &LowerCx<'_>, name: &str) -> Option<f32> {
    match find_attr(cx, name) {
        Some(Attr::Float(v)) => Some(v),
        Some(Attr::Int(v)) => Some(v as f32),
        _ => None,
    }
}

/// The anchor's int attribute `name`, if present.
pub fn attr_i(cx: &LowerCx<'_>, name: &str) -> Option<i64> {
    match find_attr(cx, name) {
        Some(Attr::Int(v)) => Some(v),
        _ => None,
    }
}

/// The anchor's string attribute `name`, if present.
pub fn attr_s(cx: &LowerCx<'_>, name: &str) -> Option<String> {
    match find_attr(cx, name) {
        Some(Attr::Str(v)) => Some(v),
        _ => None,
    }
}

fn find_attr(cx: &LowerCx<'_>, name: &str) -> Option<Attr> {
    cx.node()
        .op
        .attrs()
        .into_iter()
        .find(|(k, _)| *k == name)
        .map(|x| x.1)
}

/// The anchor's input `i` and output 0, cloned (so `cx` can be borrowed mutably after).
pub fn io1(cx: &LowerCx<'_>) -> Result<(CTensor, CTensor), LowerError> {
    Ok((cx.input(0)?.clone(), cx.output(0)?.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_exact_and_typed() {
        assert_eq!(lit("float", 0.5), "((float)0.5)");
        assert_eq!(lit("double", 2.0), "((double)2.0)");
        assert_eq!(lit("float", f64::NEG_INFINITY), "((float)-INFINITY)");
        let a = 0.2f32 as f64;
        let l = lit("float", a);
        let inner = l.trim_start_matches("((float)").trim_end_matches(')');
        assert_eq!(inner.parse::<f64>().unwrap() as f32, 0.2f32);
        assert_eq!(mfn("float", "exp"), "expf");
        assert_eq!(mfn("double", "exp"), "exp");
    }
}
