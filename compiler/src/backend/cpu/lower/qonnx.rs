//! QONNX lowerings: `Quant` (alias `IntQuant`), `BipolarQuant` and `Trunc` in each of the three
//! QONNX domains, with the interpreter's arithmetic (ir `ops::quant::qonnx`): every input
//! widened to `double` and broadcast to the output; `Quant` rounds `x / scale` and `+ zeropt`
//! to the input's float type as QONNX does, clips to the integer range (NaN passes through),
//! rounds with the node's mode and rescales; `Trunc` computes in `double` throughout.
//!
//! Integer ranges and rounding are folded to C literals / a fixed expression where `bitwidth`
//! is a one-element constant (the usual case), else computed per element with `pow`.

use super::broadcast::Bcast;
use super::cast::{load, to_double};
use super::quant::round_to;
use super::{CTensor, LowerCx, LowerError, Registry};
use petasos_ir::ops::quant::qonnx::{int_bounds, BipolarQuant, QonnxQuant, QonnxTrunc, Rounding};

/// Registry keys of the ops in every QONNX domain (ir `ops::QONNX_DOMAINS`).
const QUANT_KEYS: [&str; 6] = [
    "qonnx.custom_op.general.Quant",
    "qonnx.custom_op.general.IntQuant",
    "onnx.brevitas.Quant",
    "onnx.brevitas.IntQuant",
    "finn.custom_op.general.Quant",
    "finn.custom_op.general.IntQuant",
];
const BIPOLAR_KEYS: [&str; 3] = [
    "qonnx.custom_op.general.BipolarQuant",
    "onnx.brevitas.BipolarQuant",
    "finn.custom_op.general.BipolarQuant",
];
const TRUNC_KEYS: [&str; 3] = [
    "qonnx.custom_op.general.Trunc",
    "onnx.brevitas.Trunc",
    "finn.custom_op.general.Trunc",
];

/// Registers this family's lowerings.
pub fn register(r: &mut Registry) {
    for k in QUANT_KEYS {
        r.op(k, lower_quant);
    }
    for k in BIPOLAR_KEYS {
        r.op(k, lower_bipolar);
    }
    for k in TRUNC_KEYS {
        r.op(k, lower_trunc);
    }
}

/// A C `double` expression applying rounding mode `r` to the `double` variable `v` (the
/// interpreter's `Rounding::apply`, signed zeros included).
pub fn round_expr(r: Rounding, v: &str) -> String {
    let sign = format!("(signbit({v}) ? -1.0 : 1.0)");
    match r {
        Rounding::Round => format!("rint({v})"),
        Rounding::Ceil => format!("ceil({v})"),
        Rounding::Floor => format!("floor({v})"),
        Rounding::Up => format!("({sign} * ceil(fabs({v})))"),
        Rounding::Down => format!("trunc({v})"),
        Rounding::HalfUp => format!("({sign} * floor(fabs({v}) + 0.5))"),
        Rounding::HalfDown => format!("({sign} * ceil(fabs({v}) - 0.5))"),
    }
}

/// A C `double` literal (exact for every finite value, `HUGE_VAL` for infinities).
fn lit(x: f64) -> String {
    if x.is_infinite() {
        return if x > 0.0 { "HUGE_VAL" } else { "(-HUGE_VAL)" }.into();
    }
    if x.is_nan() {
        return "NAN".into();
    }
    format!("{x:e}")
}

/// The one value of a one-element constant, if `t` is one.
fn const_scalar(t: &CTensor) -> Option<f64> {
    let c = t.constant.as_ref()?;
    if c.len() != 1 {
        return None;
    }
    c.to_f64_vec().ok()?.first().copied()
}

/// C expressions `(lo, hi)` of the integer range for `bits` (a `double` C variable), folded to
/// literals when `bits_const` is known.
fn bounds_expr(
    signed: bool,
    narrow: bool,
    bits: &str,
    bits_const: Option<f64>,
) -> (String, String) {
    if let Some(b) = bits_const {
        let (lo, hi) = int_bounds(signed, narrow, b);
        return (lit(lo), lit(hi));
    }
    let n = if narrow { "1.0" } else { "0.0" };
    if signed {
        (
            format!("(-pow(2.0, {bits} - 1.0) + {n})"),
            format!("(pow(2.0, {bits} - 1.0) - 1.0)"),
        )
    } else {
        ("0.0".into(), format!("(pow(2.0, {bits}) - 1.0 - {n})"))
    }
}

/// The output, the inputs at `slots` (all required), and the broadcast nest over them; checks
/// that input 0 and the output are floats of one type.
fn operands(
    cx: &LowerCx<'_>,
    slots: &[usize],
) -> Result<(CTensor, Vec<CTensor>, Bcast), LowerError> {
    let y = cx.output(0)?.clone();
    let ins: Vec<CTensor> = slots
        .iter()
        .map(|&i| cx.input(i).cloned())
        .collect::<Result<_, _>>()?;
    let x = ins.first().ok_or_else(|| cx.invalid("no input".into()))?;
    if !x.dtype.is_float() || y.dtype != x.dtype || round_to(x.dtype, "0").is_none() {
        return Err(cx.unsupported(format!("input of {} (a float type is needed)", x.dtype)));
    }
    for t in &ins {
        if load(t, "0").is_none() {
            return Err(cx.unsupported(format!("parameter of {}", t.dtype)));
        }
    }
    let shapes: Vec<&[usize]> = ins.iter().map(|t| t.shape.as_slice()).collect();
    let b = Bcast::new(&y.shape, &shapes).map_err(|e| cx.invalid(e))?;
    Ok((y, ins, b))
}

/// Opens the loop nest and declares `double` locals `names[k]` holding input `k`'s element.
fn open_loads(
    cx: &mut LowerCx<'_>,
    b: &Bcast,
    ins: &[CTensor],
    names: &[&str],
) -> Result<String, LowerError> {
    let (oi, idx) = b.open(cx);
    for ((t, i), n) in ins.iter().zip(&idx).zip(names) {
        let (v, k) = load(t, i).ok_or_else(|| cx.unsupported(format!("dtype {}", t.dtype)))?;
        cx.line(format!("const double {n} = {};", to_double(&v, k)));
    }
    Ok(oi)
}

/// `Quant` / `IntQuant`: `y = (round(clip(R(R(x / s) + z))) - z) * s`, `R` rounding to the
/// input's type; a signed 1-bit quantizer gives the sign (+1 for `t >= 0`).
fn lower_quant(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let op = cx.op::<QonnxQuant>()?.clone();
    if cx.num_inputs() < 4 {
        return Err(cx.invalid("Quant needs x, scale, zeropt, bitwidth".into()));
    }
    let (y, ins, b) = operands(cx, &[0, 1, 2, 3])?;
    let dt = ins[0].dtype;
    let bits_const = const_scalar(&ins[3]);
    let div = round_to(dt, "x / s").ok_or_else(|| cx.unsupported(format!("dtype {dt}")))?;
    let add = round_to(dt, "t0 + z").ok_or_else(|| cx.unsupported(format!("dtype {dt}")))?;
    cx.line(format!(
        "/* QONNX Quant: signed={} narrow={} rounding={} */",
        op.signed as u8,
        op.narrow as u8,
        op.rounding.name()
    ));
    let oi = open_loads(cx, &b, &ins, &["x", "s", "z", "bits"])?;
    cx.line("(void)bits;");
    cx.line(format!("const double t0 = {div};"));
    cx.line(format!("const double t = {add};"));
    let (lo, hi) = bounds_expr(op.signed, op.narrow, "bits", bits_const);
    let general = format!(
        "{{ const double c = t < {lo} ? {lo} : (t > {hi} ? {hi} : t); q = {}; }}",
        round_expr(op.rounding, "c")
    );
    cx.line("double q;");
    match (op.signed, bits_const) {
        (true, Some(1.0)) => cx.line("q = t >= 0.0 ? 1.0 : -1.0;"),
        (true, None) => {
            cx.line(format!(
                "if (bits == 1.0) q = t >= 0.0 ? 1.0 : -1.0; else {general}"
            ));
        }
        _ => cx.line(general),
    }
    cx.line(y.store(&oi, "(q - z) * s"));
    b.close(cx);
    Ok(())
}

/// `BipolarQuant`: `y = x >= 0 ? s : -s`.
fn lower_bipolar(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    cx.op::<BipolarQuant>()?;
    let (y, ins, b) = operands(cx, &[0, 1])?;
    let oi = open_loads(cx, &b, &ins, &["x", "s"])?;
    cx.line(y.store(&oi, "x >= 0.0 ? s : -s"));
    b.close(cx);
    Ok(())
}

/// `Trunc`: version 1 `(X, scale, zeropt, in_bits, out_bits)` shifts right by `in_bits -
/// out_bits`; version 2 (`out_scale` before `out_bits`) also clamps to the output range.
fn lower_trunc(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let op = cx.op::<QonnxTrunc>()?.clone();
    let n = cx.num_inputs();
    if n < 5 {
        return Err(cx.invalid("Trunc needs at least 5 inputs".into()));
    }
    let r = op.rounding;
    if n <= 5 {
        let (y, ins, b) = operands(cx, &[0, 1, 2, 3, 4])?;
        let oi = open_loads(cx, &b, &ins, &["x", "s", "z", "ib", "ob"])?;
        cx.line("const double v = rint(x / s + z);");
        cx.line("const double w = v / pow(2.0, ib - ob);");
        cx.line(format!("const double q = {};", round_expr(r, "w")));
        cx.line(y.store(&oi, "(q - z) * s"));
        b.close(cx);
        return Ok(());
    }
    let out_bits_at = if n >= 7 { 6 } else { 5 };
    let (y, ins, b) = operands(cx, &[0, 1, 2, 4, out_bits_at])?;
    let bits_const = const_scalar(&ins[4]);
    let oi = open_loads(cx, &b, &ins, &["x", "s", "z", "os", "ob"])?;
    cx.line("(void)ob;");
    cx.line("const double v = rint(x / s + z);");
    cx.line("const double t = pow(2.0, rint(log2(os / s)));");
    let (lo, hi) = bounds_expr(op.signed, op.narrow, "ob", bits_const);
    cx.line("const double w = v / t;");
    cx.line(format!(
        "const double c = w < {lo} ? {lo} : (w > {hi} ? {hi} : w);"
    ));
    cx.line(format!("const double q = {};", round_expr(r, "c")));
    cx.line(y.store(&oi, "(q - z / t) * os"));
    b.close(cx);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The C rounding expressions name the functions whose semantics match `Rounding::apply`
    /// (the table itself is checked end to end by the model and unit tests of the backend).
    #[test]
    fn rounding_expressions() {
        assert_eq!(round_expr(Rounding::Round, "v"), "rint(v)");
        assert!(round_expr(Rounding::HalfDown, "v").contains("ceil(fabs(v) - 0.5)"));
        assert!(round_expr(Rounding::Up, "v").starts_with("((signbit(v)"));
        let (lo, hi) = bounds_expr(true, true, "b", Some(8.0));
        assert_eq!((lo.as_str(), hi.as_str()), ("-1.27e2", "1.27e2"));
        let (lo, hi) = bounds_expr(false, false, "b", None);
        assert_eq!(lo, "0.0");
        assert!(hi.contains("pow(2.0, b)"));
    }
}
