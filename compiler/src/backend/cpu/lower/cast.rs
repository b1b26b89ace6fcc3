//! Type conversions: `Cast`, `CastLike` and `BitCast` between every numeric dtype the
//! interpreter has (float64/32/16, bfloat16, float8 e4m3fn/e4m3fnuz/e5m2/e5m2fnuz/e8m0,
//! float4 e2m1, 64..2-bit integers, bool), with the interpreter's rules; and the shared
//! element access helpers ([`load`], [`store`], [`Val`]) the quantisation family uses for
//! the minifloat and sub-byte dtypes (C side: `rt/pt_types.h`).
//!
//! Cast rules (ir `Tensor::cast_with`): a value goes through `f64`/`i128`; float -> int
//! truncates toward zero (NaN -> 0) and wraps to the width; int -> int wraps; anything ->
//! bool is `!= 0`; float8 targets round to nearest even, saturating when `saturate`; float4
//! always saturates and maps NaN to 0; float8e8m0 rounds the float32 exponent by
//! `round_mode`; f64 -> bf16 as the `half` crate does ([`pt_d2bf`]); strings are refused.

use super::{CTensor, LowerCx, LowerError, Registry};
use petasos_ir::op::Attr;
use petasos_ir::DType;

/// Registers this family's lowerings.
pub fn register(r: &mut Registry) {
    r.op("Cast", lower_cast);
    r.op("CastLike", lower_cast);
    r.op("BitCast", lower_bitcast);
    for op in ["Cast", "CastLike", "BitCast"] {
        r.exotic_dtypes(op);
    }
}

/// The C domain a loaded element is expressed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Val {
    /// `float` (f32, f16, bf16 and every minifloat: all exact in float).
    Float,
    /// `double` (f64).
    Double,
    /// `int64_t` (signed integers of any width, sign-extended).
    Signed,
    /// `uint64_t` (unsigned integers, bool as 0/1).
    Unsigned,
}

/// Whether `d` is a minifloat or sub-byte dtype (stored as `uint8_t` codes or packed bits).
pub fn is_exotic(d: DType) -> bool {
    matches!(
        d,
        DType::F8E4M3FN
            | DType::F8E4M3FNUZ
            | DType::F8E5M2
            | DType::F8E5M2FNUZ
            | DType::F8E8M0
            | DType::F4E2M1
            | DType::I4
            | DType::U4
            | DType::I2
            | DType::U2
    )
}

/// Whether `d` is packed several elements per byte.
pub fn is_packed(d: DType) -> bool {
    matches!(
        d,
        DType::F4E2M1 | DType::I4 | DType::U4 | DType::I2 | DType::U2
    )
}

/// The `pt_mf_fmt` constant of a float8/float4 dtype.
fn mf_fmt(d: DType) -> Option<&'static str> {
    Some(match d {
        DType::F8E4M3FN => "PT_E4M3FN",
        DType::F8E4M3FNUZ => "PT_E4M3FNUZ",
        DType::F8E5M2 => "PT_E5M2",
        DType::F8E5M2FNUZ => "PT_E5M2FNUZ",
        DType::F4E2M1 => "PT_E2M1",
        _ => return None,
    })
}

/// Element `idx` of `t` as a C expression in its [`Val`] domain (exact), or `None` for a
/// dtype with no C representation (strings, complex).
pub fn load(t: &CTensor, idx: &str) -> Option<(String, Val)> {
    let p = &t.expr;
    Some(match t.dtype {
        DType::F32 => (format!("{p}[{idx}]"), Val::Float),
        DType::F64 => (format!("{p}[{idx}]"), Val::Double),
        DType::F16 => (format!("pt_h2f({p}[{idx}])"), Val::Float),
        DType::BF16 => (format!("pt_bf2f({p}[{idx}])"), Val::Float),
        DType::F4E2M1 => (
            format!("pt_mf2f((uint8_t)pt_get4({p}, {idx}), PT_E2M1)"),
            Val::Float,
        ),
        DType::F8E8M0 => (format!("pt_e8m02f({p}[{idx}])"), Val::Float),
        d if mf_fmt(d).is_some() => (format!("pt_mf2f({p}[{idx}], {})", mf_fmt(d)?), Val::Float),
        DType::I64 | DType::I32 | DType::I16 | DType::I8 => {
            (format!("(int64_t){p}[{idx}]"), Val::Signed)
        }
        DType::I4 => (format!("(int64_t)pt_get_i4({p}, {idx})"), Val::Signed),
        DType::I2 => (format!("(int64_t)pt_get_i2({p}, {idx})"), Val::Signed),
        DType::U64 | DType::U32 | DType::U16 | DType::U8 | DType::Bool => {
            (format!("(uint64_t){p}[{idx}]"), Val::Unsigned)
        }
        DType::U4 => (format!("(uint64_t)pt_get4({p}, {idx})"), Val::Unsigned),
        DType::U2 => (format!("(uint64_t)pt_get2({p}, {idx})"), Val::Unsigned),
        _ => return None,
    })
}

/// How a float is converted to a float8/float4/e8m0 target.
#[derive(Clone, Copy, Debug)]
pub struct FloatRules<'a> {
    /// float8 saturation (float4 always saturates).
    pub saturate: bool,
    /// float8e8m0 rounding: `up`, `down` or `nearest`.
    pub round_mode: &'a str,
    /// float4 maps NaN to 0 (Cast) instead of its largest value (other ops).
    pub f4_nan_zero: bool,
}

/// Default conversion rules of ops other than Cast: saturating, e8m0 rounding up.
pub const DEFAULT_RULES: FloatRules<'static> = FloatRules {
    saturate: true,
    round_mode: "up",
    f4_nan_zero: false,
};

/// A `double` expression of `v` (in domain `k`), exactly as the interpreter widens it.
pub fn to_double(v: &str, k: Val) -> String {
    match k {
        Val::Double => format!("({v})"),
        _ => format!("((double)({v}))"),
    }
}

/// A C statement storing `v` (an expression in domain `k`) into element `idx` of `t` with
/// the interpreter's conversion rules (see the module doc). Packed targets are written with
/// read-modify-write: clear the tensor first ([`clear_packed`]).
pub fn store(t: &CTensor, idx: &str, v: &str, k: Val, r: FloatRules<'_>) -> Option<String> {
    let p = &t.expr;
    let d = to_double(v, k);
    let int_bits = || -> String {
        match k {
            Val::Float | Val::Double => format!("pt_d2wrap64({d})"),
            Val::Signed => format!("(uint64_t)({v})"),
            Val::Unsigned => format!("({v})"),
        }
    };
    Some(match t.dtype {
        DType::Bool => format!("{p}[{idx}] = (uint8_t)(({v}) != 0);"),
        DType::F64 => format!("{p}[{idx}] = {d};"),
        DType::F32 => format!("{p}[{idx}] = (float){d};"),
        DType::F16 => format!("{p}[{idx}] = pt_f2h((float){d});"),
        DType::BF16 => format!("{p}[{idx}] = pt_d2bf({d});"),
        DType::F8E8M0 => {
            let mode = match r.round_mode {
                "down" => 1,
                "nearest" => 2,
                _ => 0,
            };
            format!(
                "{p}[{idx}] = pt_f2e8m0((float){d}, {}, {mode});",
                r.saturate as u8
            )
        }
        DType::F4E2M1 if r.f4_nan_zero => format!("pt_set4({p}, {idx}, pt_d2e2m1_cast({d}));"),
        DType::F4E2M1 => format!("pt_set4({p}, {idx}, pt_d2mf({d}, PT_E2M1, 1));"),
        dt if mf_fmt(dt).is_some() => format!(
            "{p}[{idx}] = pt_d2mf({d}, {}, {});",
            mf_fmt(dt)?,
            r.saturate as u8
        ),
        DType::I4 | DType::U4 => format!("pt_set4({p}, {idx}, (unsigned)({}));", int_bits()),
        DType::I2 | DType::U2 => format!("pt_set2({p}, {idx}, (unsigned)({}));", int_bits()),
        dt if dt.is_int() => format!("{p}[{idx}] = ({})({});", t.ctype(), int_bits()),
        _ => return None,
    })
}

/// Emits a zeroing of a packed tensor (so padding bits are 0 and read-modify-write stores
/// start from a known state); nothing for other dtypes.
pub fn clear_packed(cx: &mut LowerCx<'_>, t: &CTensor) {
    if is_packed(t.dtype) && t.bytes() > 0 {
        cx.line(format!("memset({}, 0, {});", t.expr, t.bytes()));
    }
}

/// Emits `y[i] = convert(x[i])` for every element with the given rules.
fn emit_convert(
    cx: &mut LowerCx<'_>,
    x: &CTensor,
    y: &CTensor,
    r: FloatRules<'_>,
) -> Result<(), LowerError> {
    if x.numel() != y.numel() {
        return Err(cx.invalid(format!("{} elements in, {} out", x.numel(), y.numel())));
    }
    let (v, k) = load(x, "i").ok_or_else(|| cx.unsupported(format!("Cast from {}", x.dtype)))?;
    let st =
        store(y, "i", "v", k, r).ok_or_else(|| cx.unsupported(format!("Cast to {}", y.dtype)))?;
    cx.need_rt("pt_types.h");
    if x.dtype == y.dtype {
        if y.bytes() > 0 {
            cx.line(format!("memcpy({}, {}, {});", y.expr, x.expr, y.bytes()));
        }
        return Ok(());
    }
    clear_packed(cx, y);
    let ty = match k {
        Val::Float => "float",
        Val::Double => "double",
        Val::Signed => "int64_t",
        Val::Unsigned => "uint64_t",
    };
    cx.line(format!("for (size_t i = 0; i < {}; i++) {{", y.numel()));
    cx.line(format!("const {ty} v = {v};"));
    cx.line(st);
    cx.line("}");
    Ok(())
}

/// The `saturate` and `round_mode` attributes of a Cast/CastLike node (from its `attrs()`,
/// which list them only when they differ from the defaults 1 and `up`).
fn cast_rules(cx: &LowerCx<'_>) -> (bool, String) {
    let mut saturate = true;
    let mut mode = "up".to_string();
    for (k, v) in cx.node().op.attrs() {
        match (k, v) {
            ("saturate", Attr::Int(i)) => saturate = i != 0,
            ("round_mode", Attr::Str(m)) => mode = m,
            _ => {}
        }
    }
    (saturate, mode)
}

/// `Cast` and `CastLike` (a Cast to the dtype of input 1, whose values are not read):
/// the output's dtype is the target.
fn lower_cast(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let (saturate, round_mode) = cast_rules(cx);
    let (x, y) = (cx.input(0)?.clone(), cx.output(0)?.clone());
    let r = FloatRules {
        saturate,
        round_mode: &round_mode,
        f4_nan_zero: true,
    };
    emit_convert(cx, &x, &y, r)
}

/// The C expression of the NaN-canonical code of a float8 code `c` (the interpreter
/// reinterprets float8 bits through their value, so every NaN code becomes the canonical
/// one), or `None` for dtypes whose bits are copied.
fn canonical_code(d: DType, c: &str) -> Option<String> {
    let f = mf_fmt(d)?;
    if d == DType::F4E2M1 {
        return None; // float4 has no NaN
    }
    Some(format!(
        "(isnan(pt_mf2f({c}, {f})) ? pt_d2mf(NAN, {f}, 1) : {c})"
    ))
}

/// `BitCast`: the bits of each element reinterpreted (same width). Bytes are copied, except
/// that a bool target is `!= 0` and float8 NaN codes become the canonical NaN code (as the
/// interpreter, which goes through the values). f16/bf16/f32/f64 NaN payloads are copied
/// bit for bit.
fn lower_bitcast(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let (x, y) = (cx.input(0)?.clone(), cx.output(0)?.clone());
    if x.dtype.bits() != y.dtype.bits() || x.numel() != y.numel() {
        return Err(cx.invalid(format!("BitCast of {} to {}", x.dtype, y.dtype)));
    }
    if load(&x, "0").is_none() || load(&y, "0").is_none() {
        return Err(cx.unsupported(format!("BitCast from {} to {}", x.dtype, y.dtype)));
    }
    cx.need_rt("pt_types.h");
    let n = y.numel();
    if y.dtype == DType::Bool {
        cx.line(format!("for (size_t i = 0; i < {n}; i++) {{"));
        cx.line(format!(
            "{}[i] = (uint8_t)(((const uint8_t *){})[i] != 0);",
            y.expr, x.expr
        ));
        cx.line("}");
        return Ok(());
    }
    if let Some(e) = canonical_code(x.dtype, &format!("{}[i]", x.expr)) {
        cx.line(format!("for (size_t i = 0; i < {n}; i++) {{"));
        cx.line(format!("{}[i] = (uint8_t){e};", y.expr));
        cx.line("}");
        return Ok(());
    }
    if y.bytes() > 0 {
        cx.line(format!("memcpy({}, {}, {});", y.expr, x.expr, y.bytes()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(d: DType) -> CTensor {
        CTensor {
            expr: "p".into(),
            addr: "p".into(),
            dtype: d,
            shape: vec![3],
            constant: None,
            is_const: false,
            name: "t".into(),
        }
    }

    #[test]
    fn every_numeric_dtype_loads_and_stores() {
        for d in DType::ALL {
            let ok = !matches!(d, DType::String | DType::Complex64 | DType::Complex128);
            assert_eq!(load(&t(d), "i").is_some(), ok, "{d}");
            assert_eq!(
                store(&t(d), "i", "v", Val::Float, DEFAULT_RULES).is_some(),
                ok,
                "{d}"
            );
        }
        let (e, k) = load(&t(DType::I4), "i").unwrap();
        assert_eq!((e.as_str(), k), ("(int64_t)pt_get_i4(p, i)", Val::Signed));
        let s = store(&t(DType::U2), "i", "v", Val::Signed, DEFAULT_RULES).unwrap();
        assert_eq!(s, "pt_set2(p, i, (unsigned)((uint64_t)(v)));");
    }
}
