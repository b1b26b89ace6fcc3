//! Broadcasting binary lowerings (`Add` .. `Pow`, `Mod`, comparisons, logic, bit shifts and
//! bitwise ops, `PRelu`), the variadic `Sum`/`Mean`/`Max`/`Min`, `Where` and `Clip`.
//!
//! Integer semantics are the interpreter's: results wrap to the output width; division
//! truncates and `x / 0 = 0`, `x % 0 = 0`; `Mod` without `fmod` takes the divisor's sign;
//! shifts by a negative amount or by the width or more give 0 (-1 for a right shift of a
//! negative signed value); `Pow` with a negative exponent goes through doubles.

use super::elementwise::{
    attr_i, attr_s, f2i, float_type, lit, mfn, opt_attr_f, u64, unsupported_at, Access, Elem,
    NodeElem,
};
use super::{CTensor, LowerCx, LowerError};
use petasos_ir::graph::Node;
use petasos_ir::DType;

/// The op types of this file, as registered (public: `tests/cpu_elementwise.rs` iterates it to
/// check the lowerings against the interpreter).
pub const OPS: &[&str] = &[
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
    "Sum",
    "Mean",
    "Max",
    "Min",
    "Where",
    "Clip",
];

/// The element of node `k` (an op of [`OPS`]).
pub fn node_elem(cx: &LowerCx<'_>, k: usize) -> Result<NodeElem, LowerError> {
    let op = cx.node_at(k)?.op.op_type();
    match op {
        "Sum" | "Mean" | "Max" | "Min" => variadic_elem(cx, k),
        "Where" => where_elem(cx, k),
        "Clip" => clip_elem(cx, k),
        _ => binary_node_elem(cx, k),
    }
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

/// The element of broadcasting binary node `k`.
fn binary_node_elem(cx: &LowerCx<'_>, k: usize) -> Result<NodeElem, LowerError> {
    let node = cx.node_at(k)?;
    let op = node.op.op_type();
    let (a, mut b) = (cx.input_of(k, 0)?.clone(), cx.input_of(k, 1)?.clone());
    if let Some(axis) = attr_i(node, "axis") {
        b.shape = align_at(&b.shape, a.rank(), axis).ok_or_else(|| {
            cx.invalid(format!(
                "legacy broadcast axis {axis} does not fit B {:?} into A {:?}",
                b.shape, a.shape
            ))
        })?;
    }
    let elem = match square_exponent(op, &a, &b) {
        Some(e) => e,
        None => binary_elem(node, op, a.dtype, b.dtype)
            .ok_or_else(|| unsupported_at(cx, k, format!("{op} of {} and {}", a.dtype, b.dtype)))?,
    };
    Ok(NodeElem {
        ins: vec![a, b],
        slots: vec![0, 1],
        elem,
        access: Access::Compute,
    })
}

/// `Pow(x, 2)` of a float base by a constant exponent 2 (norm layers' variance) as `x * x`:
/// exact as `pow` is (the product of two floats is exact in double, then rounded once), and
/// free of the libm call that would stop vectorisation.
fn square_exponent(op: &str, a: &CTensor, b: &CTensor) -> Option<Elem> {
    if op != "Pow" || float_type(a.dtype)? != "float" || b.numel() != 1 {
        return None;
    }
    let v = b.constant.as_ref()?.to_f64_vec().ok()?;
    (v.first() == Some(&2.0)).then(|| Elem {
        pre: vec!["(void)x1; /* the constant exponent 2 */".into()],
        val: "x0 * x0".into(),
    })
}

/// The expression of binary `op` on `x0` (dtype `da`) and `x1` (dtype `db`).
fn binary_elem(node: &Node, op: &str, da: DType, db: DType) -> Option<Elem> {
    let e = |s: String| Some(Elem::expr(s));
    if let Some(c) = comparison(op) {
        return if da == db {
            e(format!("x0 {c} x1"))
        } else if da != DType::Bool && db != DType::Bool {
            // Mixed types compare as doubles, as the interpreter does.
            e(format!("(double)x0 {c} (double)x1"))
        } else {
            None
        };
    }
    if matches!(op, "And" | "Or" | "Xor") {
        if da != DType::Bool || db != DType::Bool {
            return None;
        }
        return e(match op {
            "And" => "x0 && x1".into(),
            "Or" => "x0 || x1".into(),
            _ => "x0 != x1".into(),
        });
    }
    if op == "Pow" {
        return pow_elem(da, db);
    }
    if da != db {
        return None;
    }
    if let Some(t) = float_type(da) {
        let zero = lit(t, 0.0);
        return match op {
            "Add" => e("x0 + x1".into()),
            "Sub" => e("x0 - x1".into()),
            "Mul" => e("x0 * x1".into()),
            "Div" => e("x0 / x1".into()),
            "Mod" if attr_i(node, "fmod") == Some(1) => e(format!("{}(x0, x1)", mfn(t, "fmod"))),
            "Mod" => Some(Elem {
                pre: vec![format!("const {t} r = {}(x0, x1);", mfn(t, "fmod"))],
                val: format!("(r != {zero} && ((r < {zero}) != (x1 < {zero}))) ? r + x1 : r"),
            }),
            "PRelu" => e(format!("x0 < {zero} ? x0 * x1 : x0")),
            _ => None,
        };
    }
    if !da.is_int() {
        return None;
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
            let val = if attr_i(node, "fmod") == Some(1) {
                "r".to_string()
            } else {
                pre.push(
                    "const int64_t m = (r != 0 && ((r < 0) != (x1 < 0))) ? r + x1 : r;".into(),
                );
                "m".to_string()
            };
            Some(Elem { pre, val })
        }
        "Mod" => e("x1 == 0 ? 0 : x0 % x1".into()),
        "BitShift" => {
            let left = attr_s(node, "direction").as_deref() == Some("LEFT");
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
        "PRelu" => e("((void)x1, x0)".into()),
        _ => None,
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

/// The element of variadic node `k` (`Sum`, `Mean`, `Max`, `Min`) over its present inputs
/// of one dtype: floats accumulated in double, as the interpreter does; `Max`/`Min`
/// propagate NaN.
fn variadic_elem(cx: &LowerCx<'_>, k: usize) -> Result<NodeElem, LowerError> {
    let op = cx.node_at(k)?.op.op_type();
    let n_in = cx.node_at(k)?.num_inputs;
    let (mut ins, mut slots) = (Vec::new(), Vec::new());
    for i in 0..n_in {
        if let Some(t) = cx.opt_input_of(k, i) {
            ins.push(t.clone());
            slots.push(i);
        }
    }
    let Some(first) = ins.first() else {
        return Err(cx.invalid(format!("{op} needs at least one input")));
    };
    let d = first.dtype;
    if ins.iter().any(|t| t.dtype != d) {
        return Err(unsupported_at(cx, k, format!("{op} of mixed dtypes")));
    }
    let n = ins.len();
    let mut pre = Vec::new();
    let val;
    if float_type(d).is_some() {
        pre.push("double acc = (double)x0;".to_string());
        for j in 1..n {
            pre.push(match op {
                "Sum" | "Mean" => format!("acc += (double)x{j};"),
                "Max" => format!("acc = (isnan(acc) || isnan(x{j})) ? NAN : ((double)x{j} > acc ? (double)x{j} : acc);"),
                _ => format!("acc = (isnan(acc) || isnan(x{j})) ? NAN : ((double)x{j} < acc ? (double)x{j} : acc);"),
            });
        }
        val = if op == "Mean" {
            format!("acc / {n}.0")
        } else {
            "acc".to_string()
        };
    } else if d.is_int() && op != "Mean" {
        let t = first.ctype();
        if op == "Sum" {
            pre.push("uint64_t acc = (uint64_t)x0;".into());
            for j in 1..n {
                pre.push(format!("acc += (uint64_t)x{j};"));
            }
        } else {
            let c = if op == "Max" { ">" } else { "<" };
            pre.push(format!("{t} acc = x0;"));
            for j in 1..n {
                pre.push(format!("acc = x{j} {c} acc ? x{j} : acc;"));
            }
        }
        val = "acc".to_string();
    } else {
        return Err(unsupported_at(cx, k, format!("{op} of {d}")));
    }
    Ok(NodeElem {
        ins,
        slots,
        elem: Elem { pre, val },
        access: Access::Compute,
    })
}

/// The element of `Where(cond, x, y)` node `k`: moves storage values (f16 bits are kept).
fn where_elem(cx: &LowerCx<'_>, k: usize) -> Result<NodeElem, LowerError> {
    let (c, x, z) = (
        cx.input_of(k, 0)?.clone(),
        cx.input_of(k, 1)?.clone(),
        cx.input_of(k, 2)?.clone(),
    );
    if c.dtype != DType::Bool {
        return Err(unsupported_at(
            cx,
            k,
            format!("Where with a {} condition", c.dtype),
        ));
    }
    if x.dtype != z.dtype {
        return Err(unsupported_at(
            cx,
            k,
            format!("Where of {} and {}", x.dtype, z.dtype),
        ));
    }
    Ok(NodeElem {
        ins: vec![c, x, z],
        slots: vec![0, 1, 2],
        elem: Elem::expr("x0 ? x1 : x2"),
        access: Access::Raw,
    })
}

/// The element of `Clip` node `k`: bounds from inputs 1 and 2 (single elements, read at run
/// time) or from the `min`/`max` attributes of opsets < 11. NaN passes through for floats.
fn clip_elem(cx: &LowerCx<'_>, k: usize) -> Result<NodeElem, LowerError> {
    let node = cx.node_at(k)?;
    let x = cx.input_of(k, 0)?.clone();
    let t = x.compute_type();
    let is_float = float_type(x.dtype).is_some();
    if !is_float && !x.dtype.is_int() {
        return Err(unsupported_at(cx, k, format!("Clip of {}", x.dtype)));
    }
    let mut ins = vec![x.clone()];
    let mut slots = vec![0];
    let mut pre = vec![format!("{t} v = x0;")];
    for (slot, attr, cmp) in [(1, "min", "<"), (2, "max", ">")] {
        let bound = if let Some(bt) = cx.opt_input_of(k, slot) {
            if bt.numel() != 1 {
                return Err(unsupported_at(
                    cx,
                    k,
                    format!(
                        "Clip bound input {slot} of shape {:?} (must hold one element)",
                        bt.shape
                    ),
                ));
            }
            if bt.dtype != x.dtype {
                return Err(unsupported_at(
                    cx,
                    k,
                    format!("Clip bound of {} for {}", bt.dtype, x.dtype),
                ));
            }
            let mut bt = bt.clone();
            bt.shape = Vec::new();
            ins.push(bt);
            slots.push(slot);
            format!("x{}", ins.len() - 1)
        } else if let Some(v) = opt_attr_f(node, attr) {
            if !is_float {
                return Err(unsupported_at(
                    cx,
                    k,
                    format!("Clip attribute bounds on {}", x.dtype),
                ));
            }
            lit(t, v as f64)
        } else {
            continue;
        };
        pre.push(format!("v = v {cmp} {bound} ? {bound} : v;"));
    }
    Ok(NodeElem {
        ins,
        slots,
        elem: Elem {
            pre,
            val: "v".into(),
        },
        access: Access::Compute,
    })
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
