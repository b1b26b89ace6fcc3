//! Helpers shared by the attention, recurrent and signal lowerings: the C compute type of a
//! float dtype, the interpreter's per-op rounding as a C expression, C float literals and
//! row-major index expressions.

use super::{CTensor, LowerCx, LowerError};
use petasos_ir::DType;

/// C text built line by line with the same brace-following indentation as
/// [`LowerCx::line`], for code that goes to file scope (e.g. a task function).
#[derive(Default)]
pub struct CBuf {
    pub text: String,
    depth: usize,
}

impl CBuf {
    /// An empty buffer whose lines start at indentation `depth`.
    pub fn new(depth: usize) -> CBuf {
        CBuf {
            text: String::new(),
            depth,
        }
    }

    /// Appends one line (or several, split on `\n`).
    pub fn line(&mut self, s: impl AsRef<str>) {
        for l in s.as_ref().lines() {
            let l = l.trim();
            if l.starts_with('}') {
                self.depth = self.depth.saturating_sub(1);
            }
            if !l.is_empty() {
                self.text.push_str(&"  ".repeat(self.depth));
                self.text.push_str(l);
            }
            self.text.push('\n');
            if l.ends_with('{') {
                self.depth += 1;
            }
        }
    }
}

/// The C type a float computation runs in: `double` when any of `dts` is f64, else `float`
/// (f16/bf16 are computed in float, as `CTensor::load` yields).
pub fn ftype(dts: &[DType]) -> &'static str {
    if dts.contains(&DType::F64) {
        "double"
    } else {
        "float"
    }
}

/// The C math function `name` (`exp`, `tanh`) for compute type `t` when its result is
/// rounded to `dt`: the float variant (`expf`) only where the result stays f32; f16/bf16
/// results use the double function so that their rounding matches the interpreter's.
pub fn math(name: &str, t: &str, dt: DType) -> String {
    if t == "float" && dt == DType::F32 {
        format!("{name}f")
    } else {
        name.to_string()
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

/// End-to-end checks for this family's tests: compile a graph with the CPU backend, run its
/// `main` and compare every output with the reference interpreter.
#[cfg(test)]
pub mod e2e {
    use crate::backend::cpu::{self, CpuOptions};
    use petasos_ir::onnx::tensor_file::{read_tensor_file, write_tensor_file};
    use petasos_ir::{Graph, Tensor};
    use std::process::Command;

    /// Deterministic values in [-2, 2).
    pub fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 33) as f32 / (1u64 << 31) as f32) * 4.0 - 2.0
            })
            .collect()
    }

    /// Compiles `g` (warnings are errors), runs it on `inputs` and compares with the
    /// interpreter at the node-suite tolerances.
    pub fn check(name: &str, g: &Graph, inputs: Vec<Tensor>) {
        let dir =
            std::env::temp_dir().join(format!("petasos-f-attn-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let want = petasos_ir::interp::run(g, inputs.clone()).expect("interpret");
        let mut opts = CpuOptions::default();
        opts.cc.cflags = ["-O1", "-Wall", "-Wextra", "-Werror"]
            .map(String::from)
            .to_vec();
        let out = dir.join("out");
        let mut gc = g.clone();
        cpu::compile(&mut gc, &opts, &out).expect("compile");
        let mut cmd = Command::new(out.join("main"));
        for (i, t) in inputs.iter().enumerate() {
            let p = dir.join(format!("input_{i}.pb"));
            write_tensor_file(&p, &format!("in{i}"), t).expect("write input");
            cmd.arg("-i").arg(&p);
        }
        let res = dir.join("res");
        std::fs::create_dir_all(&res).expect("res dir");
        let o = cmd.arg("-o").arg(&res).output().expect("run main");
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        for (i, w) in want.iter().enumerate() {
            let got = read_tensor_file(&res.join(format!("output_{i}.pb"))).expect("output");
            assert_eq!(got.dtype(), w.dtype(), "{name} output {i}");
            assert_eq!(got.shape(), w.shape(), "{name} output {i}");
            let (a, b) = (got.to_f64_vec().expect("a"), w.to_f64_vec().expect("b"));
            for (k, (p, q)) in a.iter().zip(&b).enumerate() {
                let ok =
                    (p.is_nan() && q.is_nan()) || p == q || (p - q).abs() <= 1e-5 + 1e-3 * q.abs();
                assert!(ok, "{name} output {i} element {k}: got {p}, want {q}");
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
