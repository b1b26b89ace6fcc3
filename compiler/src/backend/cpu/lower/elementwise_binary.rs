//! Broadcasting binary lowerings (`Add` .. `Pow`, `Mod`, comparisons, logic, bit shifts and
//! bitwise ops, `PRelu`), the variadic `Sum`/`Mean`/`Max`/`Min`, `Where` and `Clip`.
//!
//! Integer semantics are the interpreter's: results wrap to the output width; division
//! truncates and `x / 0 = 0`, `x % 0 = 0`; `Mod` without `fmod` takes the divisor's sign;
//! shifts by a negative amount or by the width or more give 0 (-1 for a right shift of a
//! negative signed value); `Pow` with a negative exponent goes through doubles.

use super::elementwise::{
    attr_i, attr_s, emit_map, f2i, float_type, lit, mfn, opt_attr_f, u64, Access, Elem,
};
use super::{CTensor, LowerCx, LowerError, Registry};
use petasos_ir::DType;

/// Registers this file's lowerings.
pub fn register(r: &mut Registry) {
    for op in [
        "Add",
        "Sub",
        "Mul",
        "Div",
        "Pow",
        "Mod",
        "Equal",
        "Greater",
        "GreaterOrEqual",
        "Less",
        "LessOrEqual",
        "And",
        "Or",
        "Xor",
        "BitShift",
        "BitwiseAnd",
        "BitwiseOr",
        "BitwiseXor",
        "PRelu",
    ] {
        r.op(op, lower_binary);
    }
    for op in ["Sum", "Mean", "Max", "Min"] {
        r.op(op, lower_variadic);
    }
    r.op("Where", lower_where);
    r.op("Clip", lower_clip);
}

/// The C operator of a comparison op.
fn comparison(op: &str) -> Option<&'static str> {
    Some(match op {
        "Equal" => "==",
        "Greater" => ">",
        "GreaterOrEqual" => ">=",
        "Less" => "<",
        "LessOrEqual" => "<=",
        _ => return None,
    })
}

/// B's shape aligned at the legacy (opset < 7) `axis` of a rank-`rank_a` A.
fn align_at(b: &[usize], rank_a: usize, axis: i64) -> Option<Vec<usize>> {
    let ax = if axis < 0 { axis + rank_a as i64 } else { axis };
    if ax < 0 || ax as usize + b.len() > rank_a {
        return None;
    }
    let mut v = vec![1; ax as usize];
    v.extend_from_slice(b);
    v.resize(rank_a, 1);
    Some(v)
}

/// Lowers a broadcasting binary op.
fn lower_binary(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let op = cx.node().op.op_type().to_string();
    let (a, mut b, y) = (
        cx.input(0)?.clone(),
        cx.input(1)?.clone(),
        cx.output(0)?.clone(),
    );
    if let Some(axis) = attr_i(cx, "axis") {
        b.shape = align_at(&b.shape, a.rank(), axis).ok_or_else(|| {
            cx.invalid(format!(
                "legacy broadcast axis {axis} does not fit B {:?} into A {:?}",
                b.shape, a.shape
            ))
        })?;
    }
    let elem = binary_elem(cx, &op, a.dtype, b.dtype)?;
    emit_map(cx, &[&a, &b], &y, Access::Compute, &|_| elem.clone())
}

/// The expression of binary `op` on `x0` (dtype `da`) and `x1` (dtype `db`).
fn binary_elem(cx: &LowerCx<'_>, op: &str, da: DType, db: DType) -> Result<Elem, LowerError> {
    let unsup = || cx.unsupported(format!("{op} of {da} and {db}"));
    let e = |s: String| Ok(Elem::expr(s));
    if let Some(c) = comparison(op) {
        return if da == db {
            e(format!("x0 {c} x1"))
        } else if da != DType::Bool && db != DType::Bool {
            // Mixed types compare as doubles, as the interpreter does.
            e(format!("(double)x0 {c} (double)x1"))
        } else {
            Err(unsup())
        };
    }
    if matches!(op, "And" | "Or" | "Xor") {
        if da != DType::Bool || db != DType::Bool {
            return Err(unsup());
        }
        return e(match op {
            "And" => "x0 && x1".into(),
            "Or" => "x0 || x1".into(),
            _ => "x0 != x1".into(),
        });
    }
    if op == "Pow" {
        return pow_elem(da, db).ok_or_else(unsup);
    }
    if da != db {
        return Err(unsup());
    }
    if let Some(t) = float_type(da) {
        let zero = lit(t, 0.0);
        return match op {
            "Add" => e("x0 + x1".into()),
            "Sub" => e("x0 - x1".into()),
            "Mul" => e("x0 * x1".into()),
            "Div" => e("x0 / x1".into()),
            "Mod" if attr_i(cx, "fmod") == Some(1) => e(format!("{}(x0, x1)", mfn(t, "fmod"))),
            "Mod" => Ok(Elem {
                pre: vec![format!("const {t} r = {}(x0, x1);", mfn(t, "fmod"))],
                val: format!("(r != {zero} && ((r < {zero}) != (x1 < {zero}))) ? r + x1 : r"),
            }),
            "PRelu" => e(format!("x0 < {zero} ? x0 * x1 : x0")),
            _ => Err(unsup()),
        };
    }
    if !da.is_int() {
        return Err(unsup());
    }
    let signed = da.is_signed_int();
    let bits = da.bits();
    match op {
        "Add" => e(format!("{} + {}", u64("x0"), u64("x1"))),
        "Sub" => e(format!("{} - {}", u64("x0"), u64("x1"))),
        "Mul" => e(format!("{} * {}", u64("x0"), u64("x1"))),
        // x / -1 negates in uint64_t: no overflow trap on INT_MIN / -1.
        "Div" if signed => e(format!(
            "x1 == 0 ? (uint64_t)0 : (x1 == -1 ? (uint64_t)0 - {} : (uint64_t)(x0 / x1))",
            u64("x0")
        )),
        "Div" => e("x1 == 0 ? 0 : x0 / x1".into()),
        "Mod" if signed => {
            let mut pre = vec![
                "const int64_t r = (x1 == 0 || x1 == -1) ? 0 : (int64_t)x0 % (int64_t)x1;"
                    .to_string(),
            ];
            let val = if attr_i(cx, "fmod") == Some(1) {
                "r".to_string()
            } else {
                pre.push(
                    "const int64_t m = (r != 0 && ((r < 0) != (x1 < 0))) ? r + x1 : r;".into(),
                );
                "m".to_string()
            };
            Ok(Elem { pre, val })
        }
        "Mod" => e("x1 == 0 ? 0 : x0 % x1".into()),
        "BitShift" => {
            let left = attr_s(cx, "direction").as_deref() == Some("LEFT");
            let out_of_range = if db.is_signed_int() {
                format!("x1 < 0 || x1 >= {bits}")
            } else {
                format!("x1 >= {bits}")
            };
            let edge = if !left && signed {
                "(x0 < 0 ? -1 : 0)"
            } else {
                "0"
            };
            let shifted = if left {
                format!("{} << x1", u64("x0"))
            } else {
                "x0 >> x1".to_string()
            };
            e(format!("({out_of_range}) ? {edge} : {shifted}"))
        }
        "BitwiseAnd" => e("x0 & x1".into()),
        "BitwiseOr" => e("x0 | x1".into()),
        "BitwiseXor" => e("x0 ^ x1".into()),
        "PRelu" if signed => e(format!(
            "x0 < 0 ? {} * {} : {}",
            u64("x0"),
            u64("x1"),
            u64("x0")
        )),
        "PRelu" => e("x0".into()),
        _ => Err(unsup()),
    }
}

/// `Pow` of a base of dtype `da` and an exponent of dtype `db` (the output has the base's).
fn pow_elem(da: DType, db: DType) -> Option<Elem> {
    match (float_type(da), float_type(db)) {
        (Some(t), Some(u)) if t == u && da == db => {
            Some(Elem::expr(format!("{}(x0, x1)", mfn(t, "pow"))))
        }
        // Mixed float types or an integer exponent: in double, as the interpreter does.
        (Some(_), _) if db.is_int() || db.is_float() => {
            Some(Elem::expr("pow((double)x0, (double)x1)"))
        }
        (None, Some(_)) if da.is_int() => {
            let mut pre = Vec::new();
            pre.extend(f2i("pow((double)x0, (double)x1)", "u"));
            Some(Elem {
                pre,
                val: "u".into(),
            })
        }
        (None, None) if da.is_int() && db.is_int() => {
            let mut pre = vec![
                "uint64_t acc = 1;".to_string(),
                format!("uint64_t base = {};", u64("x0")),
            ];
            let mut squaring = vec![
                "uint64_t e = (uint64_t)x1;".to_string(),
                "while (e) {".into(),
                "if (e & 1u) acc *= base;".into(),
                "base *= base;".into(),
                "e >>= 1;".into(),
                "}".into(),
            ];
            if db.is_signed_int() {
                // A negative exponent: through doubles, truncated (0 for |x0| > 1).
                pre.push("if (x1 < 0) {".into());
                pre.extend(f2i("pow((double)x0, (double)x1)", "u"));
                pre.push("acc = u;".into());
                pre.push("} else {".into());
                pre.append(&mut squaring);
                pre.push("}".into());
            } else {
                pre.append(&mut squaring);
            }
            Some(Elem {
                pre,
                val: "acc".into(),
            })
        }
        _ => None,
    }
}

/// The anchor's present inputs, cloned.
fn present_inputs(cx: &LowerCx<'_>) -> Vec<CTensor> {
    (0..cx.num_inputs())
        .filter_map(|i| cx.opt_input(i).cloned())
        .collect()
}

/// Lowers `Sum`, `Mean`, `Max`, `Min` over any number of inputs of one dtype (floats
/// accumulated in double, as the interpreter does; `Max`/`Min` propagate NaN).
fn lower_variadic(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let op = cx.node().op.op_type().to_string();
    let ins = present_inputs(cx);
    let y = cx.output(0)?.clone();
    let Some(first) = ins.first() else {
        return Err(cx.invalid("needs at least one input".into()));
    };
    let d = first.dtype;
    if ins.iter().any(|t| t.dtype != d) {
        return Err(cx.unsupported(format!("{op} of mixed dtypes")));
    }
    let n = ins.len();
    let mut pre = Vec::new();
    let val;
    if float_type(d).is_some() {
        pre.push("double acc = (double)x0;".to_string());
        for k in 1..n {
            pre.push(match op.as_str() {
                "Sum" | "Mean" => format!("acc += (double)x{k};"),
                "Max" => format!("acc = (isnan(acc) || isnan(x{k})) ? NAN : ((double)x{k} > acc ? (double)x{k} : acc);"),
                _ => format!("acc = (isnan(acc) || isnan(x{k})) ? NAN : ((double)x{k} < acc ? (double)x{k} : acc);"),
            });
        }
        val = if op == "Mean" {
            format!("acc / {n}.0")
        } else {
            "acc".to_string()
        };
    } else if d.is_int() && op != "Mean" {
        let t = first.ctype();
        match op.as_str() {
            "Sum" => {
                pre.push("uint64_t acc = (uint64_t)x0;".into());
                for k in 1..n {
                    pre.push(format!("acc += (uint64_t)x{k};"));
                }
            }
            _ => {
                let c = if op == "Max" { ">" } else { "<" };
                pre.push(format!("{t} acc = x0;"));
                for k in 1..n {
                    pre.push(format!("acc = x{k} {c} acc ? x{k} : acc;"));
                }
            }
        }
        val = "acc".to_string();
    } else {
        return Err(cx.unsupported(format!("{op} of {d}")));
    }
    let elem = Elem { pre, val };
    let refs: Vec<&CTensor> = ins.iter().collect();
    emit_map(cx, &refs, &y, Access::Compute, &|_| elem.clone())
}

/// Lowers `Where(cond, x, y)`: moves storage values (f16 bits are kept as they are).
fn lower_where(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let (c, x, z, y) = (
        cx.input(0)?.clone(),
        cx.input(1)?.clone(),
        cx.input(2)?.clone(),
        cx.output(0)?.clone(),
    );
    if c.dtype != DType::Bool {
        return Err(cx.unsupported(format!("Where with a {} condition", c.dtype)));
    }
    if x.dtype != z.dtype || x.dtype != y.dtype {
        return Err(cx.unsupported(format!("Where of {} and {}", x.dtype, z.dtype)));
    }
    emit_map(cx, &[&c, &x, &z], &y, Access::Raw, &|_| {
        Elem::expr("x0 ? x1 : x2")
    })
}

/// Lowers `Clip`: bounds from inputs 1 and 2 (single-element tensors, read at run time) or
/// from the `min`/`max` attributes of opsets < 11. NaN passes through for floats.
fn lower_clip(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let (x, y) = (cx.input(0)?.clone(), cx.output(0)?.clone());
    let t = x.compute_type();
    let is_float = float_type(x.dtype).is_some();
    if !is_float && !x.dtype.is_int() {
        return Err(cx.unsupported(format!("Clip of {}", x.dtype)));
    }
    let mut bounds = Vec::new();
    for (slot, name, attr) in [(1, "lo", "min"), (2, "hi", "max")] {
        if let Some(bt) = cx.opt_input(slot).cloned() {
            if bt.numel() != 1 {
                return Err(cx.unsupported(format!(
                    "Clip bound input {slot} of shape {:?} (must hold one element)",
                    bt.shape
                )));
            }
            if bt.dtype != x.dtype {
                return Err(cx.unsupported(format!("Clip bound of {} for {}", bt.dtype, x.dtype)));
            }
            cx.line(format!("const {t} {name} = {};", bt.load("0")));
            bounds.push(name);
        } else if let Some(v) = opt_attr_f(cx, attr) {
            if !is_float {
                return Err(cx.unsupported(format!("Clip attribute bounds on {}", x.dtype)));
            }
            cx.line(format!("const {t} {name} = {};", lit(t, v as f64)));
            bounds.push(name);
        }
    }
    let mut pre = vec![format!("{t} v = x0;")];
    if bounds.contains(&"lo") {
        pre.push("v = v < lo ? lo : v;".into());
    }
    if bounds.contains(&"hi") {
        pre.push("v = v > hi ? hi : v;".into());
    }
    let elem = Elem {
        pre,
        val: "v".into(),
    };
    emit_map(cx, &[&x], &y, Access::Compute, &|_| elem.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_axis() {
        assert_eq!(align_at(&[3], 4, 1), Some(vec![1, 3, 1, 1]));
        assert_eq!(align_at(&[3, 4], 4, -2), Some(vec![1, 1, 3, 4]));
        assert_eq!(align_at(&[3, 4], 4, 3), None);
    }

    #[test]
    fn pow_types() {
        assert_eq!(
            pow_elem(DType::F32, DType::F32).map(|e| e.val),
            Some("powf(x0, x1)".into())
        );
        assert_eq!(
            pow_elem(DType::F32, DType::I64).map(|e| e.val),
            Some("pow((double)x0, (double)x1)".into())
        );
        let ii = pow_elem(DType::I32, DType::I32).unwrap();
        assert!(ii.pre.iter().any(|l| l.contains("x1 < 0")));
        let iu = pow_elem(DType::I32, DType::U32).unwrap();
        assert!(!iu.pre.iter().any(|l| l.contains("x1 < 0")));
        assert!(pow_elem(DType::Bool, DType::F32).is_none());
    }
}
