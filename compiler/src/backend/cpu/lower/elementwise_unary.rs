//! Unary elementwise lowerings: math (`Abs` .. `Tanh`, `Erf`, `Sign`, `Round`), logic and
//! bitwise `Not`s, `IsNaN`/`IsInf`, and activations with and without attributes (`Relu`,
//! `Sigmoid`, `LeakyRelu`, `Elu`, `Selu`, `Celu`, `HardSigmoid`, `HardSwish`, `Softplus`,
//! `Softsign`, `Mish`, `Gelu`, `Swish`, `ThresholdedRelu`, `Shrink`).
//!
//! Each op is one expression of `x0` in the compute type, with the interpreter's NaN
//! behaviour (e.g. `Relu(NaN) = 0`, `Celu(NaN) = 0`, `HardSigmoid(NaN) = NaN`).

use super::elementwise::{
    attr_f, attr_i, attr_s, f2i, float_type, lit, mfn, u64, unsupported_at, Access, Elem, NodeElem,
};
use super::elementwise_math as fm;
use super::{LowerCx, LowerError};
use petasos_ir::graph::Node;
use petasos_ir::DType;

/// The op types of this file, as registered (public: `tests/cpu_elementwise.rs` iterates it to
/// check the lowerings against the interpreter).
pub const OPS: &[&str] = &[
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
    "Softplus",
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

/// The element of unary node `k`: picks the expression by op type and input class.
pub fn node_elem(cx: &LowerCx<'_>, k: usize) -> Result<NodeElem, LowerError> {
    let x = cx.input_of(k, 0)?.clone();
    let node = cx.node_at(k)?;
    let op = node.op.op_type();
    let elem = if let Some(t) = float_type(x.dtype) {
        float_unary(node, op, t)
    } else if x.dtype.is_int() {
        int_unary(node, op, x.dtype)
    } else if x.dtype == DType::Bool && op == "Not" {
        Some(Elem::expr("!x0"))
    } else {
        None
    };
    let Some(elem) = elem else {
        return Err(unsupported_at(cx, k, format!("{op} of {}", x.dtype)));
    };
    Ok(NodeElem {
        ins: vec![x],
        slots: vec![0],
        elem,
        access: Access::Compute,
    })
}

/// `f(x0)` for a float input computed in `t`, `None` where the op is not defined on floats.
fn float_unary(node: &Node, op: &str, t: &str) -> Option<Elem> {
    let m = |n: &str| mfn(t, n);
    let one = lit(t, 1.0);
    let zero = lit(t, 0.0);
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
    // `h = clamp(lin, 0, 1)` (a NaN stays NaN), then the value `val`.
    let hard = |lin: String, val: &str| {
        Some(Elem {
            pre: vec![
                format!("{t} h = {lin};"),
                format!("h = h < {zero} ? {zero} : (h > {one} ? {one} : h);"),
            ],
            val: val.into(),
        })
    };
    match op {
        "Abs" => e(format!("{}(x0)", m("fabs"))),
        "Exp" => e(fm::exp(t, "x0")),
        "Tanh" => e(fm::tanh(t, "x0")),
        "Acos" | "Acosh" | "Asin" | "Asinh" | "Atan" | "Atanh" | "Ceil" | "Cos" | "Cosh"
        | "Erf" | "Floor" | "Log" | "Sin" | "Sinh" | "Sqrt" | "Tan" => {
            e(format!("{}(x0)", m(&op.to_ascii_lowercase())))
        }
        "Neg" => e("-x0".into()),
        "Reciprocal" => e(format!("{one} / x0")),
        // Half to even (the default rounding mode).
        "Round" => e(format!("{}(x0)", m("nearbyint"))),
        "Sign" => e(format!("x0 > {zero} ? {one} : (x0 < {zero} ? -{one} : x0)")),
        "IsNaN" => e("isnan(x0)".into()),
        "Relu" => e(format!("x0 > {zero} ? x0 : {zero}")),
        "Sigmoid" => e(fm::sigmoid(t, "x0")),
        "Softsign" => e(format!("x0 / ({one} + {}(x0))", m("fabs"))),
        "Softplus" => e(softplus("x0")),
        "Mish" => e(format!("x0 * {}", fm::tanh(t, &softplus("x0")))),
        "HardSwish" => hard(format!("x0 / {} + {}", lit(t, 6.0), lit(t, 0.5)), "x0 * h"),
        "LeakyRelu" => {
            let a = lit(t, attr_f(node, "alpha", 0.01) as f64);
            e(format!("x0 < {zero} ? {a} * x0 : x0"))
        }
        "Elu" => {
            let a = lit(t, attr_f(node, "alpha", 1.0) as f64);
            e(format!("x0 < {zero} ? {a} * {}(x0) : x0", m("expm1")))
        }
        "Selu" => {
            let a = attr_f(node, "alpha", 1.673_263_2) as f64;
            let g = attr_f(node, "gamma", 1.050_701) as f64;
            e(format!(
                "x0 > {zero} ? {} * x0 : {} * {}(x0)",
                lit(t, g),
                lit(t, g * a),
                m("expm1")
            ))
        }
        "Celu" => {
            // fmax/fmin drop a NaN operand, as f64::max/min do: Celu(NaN) = 0.
            let a = lit(t, attr_f(node, "alpha", 1.0) as f64);
            e(format!(
                "{}(x0, {zero}) + {}({a} * {}(x0 / {a}), {zero})",
                m("fmax"),
                m("fmin"),
                m("expm1")
            ))
        }
        "HardSigmoid" => {
            let a = lit(t, attr_f(node, "alpha", 0.2) as f64);
            let b = lit(t, attr_f(node, "beta", 0.5) as f64);
            hard(format!("{a} * x0 + {b}"), "h")
        }
        "ThresholdedRelu" => {
            let a = lit(t, attr_f(node, "alpha", 1.0) as f64);
            e(format!("x0 > {a} ? x0 : {zero}"))
        }
        "Shrink" => {
            let b = lit(t, attr_f(node, "bias", 0.0) as f64);
            let l = lit(t, attr_f(node, "lambd", 0.5) as f64);
            e(format!(
                "x0 < -{l} ? x0 + {b} : (x0 > {l} ? x0 - {b} : {zero})"
            ))
        }
        "Gelu" => {
            let half = lit(t, 0.5);
            if attr_s(node, "approximate").as_deref() == Some("tanh") {
                let k = lit(t, (2.0 / std::f64::consts::PI).sqrt());
                let c = lit(t, 0.044715);
                let inner = format!("{k} * (x0 + {c} * x0 * x0 * x0)");
                e(format!("{half} * x0 * ({one} + {})", fm::tanh(t, &inner)))
            } else {
                let r2 = lit(t, std::f64::consts::SQRT_2);
                e(format!("{half} * x0 * ({one} + {}(x0 / {r2}))", m("erf")))
            }
        }
        "Swish" => {
            let a = lit(t, attr_f(node, "alpha", 1.0) as f64);
            e(format!("x0 * {}", fm::sigmoid(t, &format!("{a} * x0"))))
        }
        "IsInf" => {
            let neg = attr_i(node, "detect_negative").unwrap_or(1) != 0;
            let pos = attr_i(node, "detect_positive").unwrap_or(1) != 0;
            e(match (neg, pos) {
                (true, true) => "isinf(x0)".into(),
                (true, false) => "x0 == -INFINITY".into(),
                (false, true) => "x0 == INFINITY".into(),
                (false, false) => "((void)x0, 0)".into(),
            })
        }
        _ => None,
    }
}

/// `f(x0)` for an integer input of dtype `d`, wrapping to its width, `None` where the op is
/// not defined on integers.
fn int_unary(node: &Node, op: &str, d: DType) -> Option<Elem> {
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
        "IsNaN" | "IsInf" => e("((void)x0, 0)".into()),
        // Computed in double and truncated back, as the interpreter does.
        "Shrink" => {
            let b = attr_f(node, "bias", 0.0) as f64;
            let l = attr_f(node, "lambd", 0.5) as f64;
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
