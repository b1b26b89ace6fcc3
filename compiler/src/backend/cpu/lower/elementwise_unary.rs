//! Unary elementwise lowerings: math (`Abs` .. `Tanh`, `Erf`, `Sign`, `Round`), logic and
//! bitwise `Not`s, `IsNaN`/`IsInf`, and activations with and without attributes (`Relu`,
//! `Sigmoid`, `LeakyRelu`, `Elu`, `Selu`, `Celu`, `HardSigmoid`, `HardSwish`, `Softplus`,
//! `Softsign`, `Mish`, `Gelu`, `Swish`, `ThresholdedRelu`, `Shrink`).
//!
//! Each op is one expression of `x0` in the compute type, with the interpreter's NaN
//! behaviour (e.g. `Relu(NaN) = 0`, `Celu(NaN) = 0`, `HardSigmoid(NaN) = NaN`).

use super::elementwise::{
    attr_f, attr_i, attr_s, emit_map, f2i, float_type, io1, lit, mfn, u64, Access, Elem,
};
use super::{LowerCx, LowerError, Registry};
use petasos_ir::DType;

/// Unary ops computed by [`float_unary`] / [`int_unary`] without attributes.
const PLAIN: [&str; 31] = [
    "Abs",
    "Acos",
    "Acosh",
    "Asin",
    "Asinh",
    "Atan",
    "Atanh",
    "Ceil",
    "Cos",
    "Cosh",
    "Erf",
    "Exp",
    "Floor",
    "Log",
    "Neg",
    "Reciprocal",
    "Round",
    "Sign",
    "Sin",
    "Sinh",
    "Sqrt",
    "Tan",
    "Tanh",
    "IsNaN",
    "Not",
    "BitwiseNot",
    "Relu",
    "Sigmoid",
    "Softsign",
    "Mish",
    "HardSwish",
];

/// Activations with attributes.
const WITH_ATTRS: [&str; 10] = [
    "LeakyRelu",
    "Elu",
    "Selu",
    "Celu",
    "HardSigmoid",
    "ThresholdedRelu",
    "Shrink",
    "Gelu",
    "Swish",
    "IsInf",
];

/// Registers this file's lowerings.
pub fn register(r: &mut Registry) {
    for op in PLAIN.iter().chain(["Softplus"].iter()) {
        r.op(op, lower_unary);
    }
    for op in WITH_ATTRS {
        r.op(op, lower_unary);
    }
}

/// Lowers any op of this file: picks the expression by op type and input class.
fn lower_unary(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let (x, y) = io1(cx)?;
    let op = cx.node().op.op_type().to_string();
    let elem = if let Some(t) = float_type(x.dtype) {
        float_unary(cx, &op, t)
    } else if x.dtype.is_int() {
        int_unary(cx, &op, x.dtype)
    } else if x.dtype == DType::Bool && op == "Not" {
        Some(Elem::expr("!x0"))
    } else {
        None
    };
    let Some(elem) = elem else {
        return Err(cx.unsupported(format!("{op} of {}", x.dtype)));
    };
    emit_map(cx, &[&x], &y, Access::Compute, &|_| elem.clone())
}

/// `f(x0)` for a float input computed in `t`, `None` where the op is not defined on floats.
fn float_unary(cx: &LowerCx<'_>, op: &str, t: &str) -> Option<Elem> {
    let m = |n: &str| mfn(t, n);
    let one = lit(t, 1.0);
    let zero = lit(t, 0.0);
    // Numerically stable sigmoid of the variable `v` into `s`.
    let sigmoid = |v: &str, s: &str| {
        vec![
            format!("const {t} {s}_e = {}(-{}({v}));", m("exp"), m("fabs")),
            format!("const {t} {s} = {v} >= {zero} ? {one} / ({one} + {s}_e) : {s}_e / ({one} + {s}_e);"),
        ]
    };
    // ln(1 + e^v), stable for large |v|.
    let softplus = |v: &str| {
        format!(
            "({}({}(-{}({v}))) + ({v} > {zero} ? {v} : {zero}))",
            m("log1p"),
            m("exp"),
            m("fabs")
        )
    };
    let e = |s: String| Some(Elem::expr(s));
    match op {
        "Abs" => e(format!("{}(x0)", m("fabs"))),
        "Acos" | "Acosh" | "Asin" | "Asinh" | "Atan" | "Atanh" | "Ceil" | "Cos" | "Cosh"
        | "Erf" | "Exp" | "Floor" | "Log" | "Sin" | "Sinh" | "Sqrt" | "Tan" | "Tanh" => {
            e(format!("{}(x0)", m(&op.to_ascii_lowercase())))
        }
        "Neg" => e("-x0".into()),
        "Reciprocal" => e(format!("{one} / x0")),
        // Half to even (the default rounding mode).
        "Round" => e(format!("{}(x0)", m("nearbyint"))),
        "Sign" => e(format!("x0 > {zero} ? {one} : (x0 < {zero} ? -{one} : x0)")),
        "IsNaN" => e("isnan(x0)".into()),
        "Relu" => e(format!("x0 > {zero} ? x0 : {zero}")),
        "Sigmoid" => Some(Elem {
            pre: sigmoid("x0", "s"),
            val: "s".into(),
        }),
        "Softsign" => e(format!("x0 / ({one} + {}(x0))", m("fabs"))),
        "Softplus" => e(softplus("x0")),
        "Mish" => e(format!("x0 * {}({})", m("tanh"), softplus("x0"))),
        "HardSwish" => Some(Elem {
            pre: vec![
                format!("{t} h = x0 / {} + {};", lit(t, 6.0), lit(t, 0.5)),
                format!("h = h < {zero} ? {zero} : (h > {one} ? {one} : h);"),
            ],
            val: "x0 * h".into(),
        }),
        "LeakyRelu" => {
            let a = lit(t, attr_f(cx, "alpha", 0.01) as f64);
            e(format!("x0 < {zero} ? {a} * x0 : x0"))
        }
        "Elu" => {
            let a = lit(t, attr_f(cx, "alpha", 1.0) as f64);
            e(format!("x0 < {zero} ? {a} * {}(x0) : x0", m("expm1")))
        }
        "Selu" => {
            let a = attr_f(cx, "alpha", 1.673_263_2) as f64;
            let g = attr_f(cx, "gamma", 1.050_701) as f64;
            e(format!(
                "x0 > {zero} ? {} * x0 : {} * {}(x0)",
                lit(t, g),
                lit(t, g * a),
                m("expm1")
            ))
        }
        "Celu" => {
            // fmax/fmin drop a NaN operand, as f64::max/min do: Celu(NaN) = 0.
            let a = lit(t, attr_f(cx, "alpha", 1.0) as f64);
            e(format!(
                "{}(x0, {zero}) + {}({a} * {}(x0 / {a}), {zero})",
                m("fmax"),
                m("fmin"),
                m("expm1")
            ))
        }
        "HardSigmoid" => {
            let a = lit(t, attr_f(cx, "alpha", 0.2) as f64);
            let b = lit(t, attr_f(cx, "beta", 0.5) as f64);
            Some(Elem {
                pre: vec![
                    format!("{t} h = {a} * x0 + {b};"),
                    format!("h = h < {zero} ? {zero} : (h > {one} ? {one} : h);"),
                ],
                val: "h".into(),
            })
        }
        "ThresholdedRelu" => {
            let a = lit(t, attr_f(cx, "alpha", 1.0) as f64);
            e(format!("x0 > {a} ? x0 : {zero}"))
        }
        "Shrink" => {
            let b = lit(t, attr_f(cx, "bias", 0.0) as f64);
            let l = lit(t, attr_f(cx, "lambd", 0.5) as f64);
            e(format!(
                "x0 < -{l} ? x0 + {b} : (x0 > {l} ? x0 - {b} : {zero})"
            ))
        }
        "Gelu" => {
            let half = lit(t, 0.5);
            if attr_s(cx, "approximate").as_deref() == Some("tanh") {
                let k = lit(t, (2.0 / std::f64::consts::PI).sqrt());
                let c = lit(t, 0.044715);
                e(format!(
                    "{half} * x0 * ({one} + {}({k} * (x0 + {c} * x0 * x0 * x0)))",
                    m("tanh")
                ))
            } else {
                let r2 = lit(t, std::f64::consts::SQRT_2);
                e(format!("{half} * x0 * ({one} + {}(x0 / {r2}))", m("erf")))
            }
        }
        "Swish" => {
            let a = lit(t, attr_f(cx, "alpha", 1.0) as f64);
            let mut pre = vec![format!("const {t} ax = {a} * x0;")];
            pre.extend(sigmoid("ax", "s"));
            Some(Elem {
                pre,
                val: "x0 * s".into(),
            })
        }
        "IsInf" => {
            let neg = attr_i(cx, "detect_negative").unwrap_or(1) != 0;
            let pos = attr_i(cx, "detect_positive").unwrap_or(1) != 0;
            e(match (neg, pos) {
                (true, true) => "isinf(x0)".into(),
                (true, false) => "x0 == -INFINITY".into(),
                (false, true) => "x0 == INFINITY".into(),
                (false, false) => "0".into(),
            })
        }
        _ => None,
    }
}

/// `f(x0)` for an integer input of dtype `d`, wrapping to its width, `None` where the op is
/// not defined on integers.
fn int_unary(cx: &LowerCx<'_>, op: &str, d: DType) -> Option<Elem> {
    let signed = d.is_signed_int();
    let e = |s: String| Some(Elem::expr(s));
    match op {
        "Abs" if signed => e(format!(
            "x0 < 0 ? (uint64_t)0 - {} : {}",
            u64("x0"),
            u64("x0")
        )),
        "Abs" | "Relu" if !signed => e("x0".into()),
        "Neg" => e(format!("(uint64_t)0 - {}", u64("x0"))),
        "Sign" if signed => e("(x0 > 0) - (x0 < 0)".into()),
        "Sign" => e("x0 > 0".into()),
        "Relu" => e("x0 > 0 ? x0 : 0".into()),
        "BitwiseNot" => e("~x0".into()),
        "IsNaN" | "IsInf" => e("0".into()),
        // Computed in double and truncated back, as the interpreter does.
        "Shrink" => {
            let b = attr_f(cx, "bias", 0.0) as f64;
            let l = attr_f(cx, "lambd", 0.5) as f64;
            let (b, l) = (lit("double", b), lit("double", l));
            let mut pre = vec![
                "const double v = (double)x0;".to_string(),
                format!("const double r = v < -{l} ? v + {b} : (v > {l} ? v - {b} : 0.0);"),
            ];
            pre.extend(f2i("r", "u"));
            Some(Elem {
                pre,
                val: "u".into(),
            })
        }
        _ => None,
    }
}
