//! Vectorisable float math for generated elementwise loops: `exp`, `tanh` and the sigmoid
//! without libm calls (a call stops gcc from vectorising the loop).
//!
//! The helpers are C `static inline` functions emitted once per `model.c` (an include guard
//! inside the file-scope text makes later copies no-ops). They are used for f32, f16 and bf16
//! (computed in float); f64 keeps libm. Accuracy: `pt_el_expf` is Cephes' range reduction
//! `x = n ln2 + r` with a degree-6 polynomial (relative error about 1e-7); `pt_el_tanhf` uses
//! `(1 - e^-2|x|) / (1 + e^-2|x|)` and an odd polynomial below |x| = 0.0625 where that form
//! cancels (absolute error below 1e-7 everywhere): far inside the suite's rtol 1e-3 / atol
//! 1e-5. Infinities, NaN, overflow to +inf and underflow to 0 behave as libm's.

/// Marker every helper's name starts with (a kernel whose C contains it needs [`HELPERS`]).
pub const PREFIX: &str = "pt_el_";

/// The C helpers (guarded: safe to emit once per kernel).
pub const HELPERS: &str = r#"#ifndef PT_EL_MATH
#define PT_EL_MATH
/* Vectorisable float math of the elementwise kernels (petasos lower/elementwise_math.rs). */
static inline float pt_el_bits2f(int32_t i) { float f; memcpy(&f, &i, 4); return f; }
static inline int32_t pt_el_f2bits(float f) { int32_t i; memcpy(&i, &f, 4); return i; }
/* e^x: x = n ln2 + r, |r| <= ln2/2, e^r by a degree-6 polynomial, 2^n through the exponent
   bits (x > 80 scaled by e^80 so every finite result stays representable). */
static inline float pt_el_expf(float x) {
  const float big = x > 80.0f ? 1.0f : 0.0f;
  float xc = x - big * 80.0f;
  xc = xc > -87.0f ? xc : -87.0f; /* NaN becomes -87 here: n stays finite */
  xc = xc < 88.0f ? xc : 88.0f;
  /* n = round(x / ln2) by the 1.5 * 2^23 trick: no float -> int conversion, which would
     stop the vectoriser after the clamps */
  const float t = xc * 1.44269504088896341f + 12582912.0f;
  const float n = t - 12582912.0f;
  const int32_t ni = pt_el_f2bits(t) - 0x4B400000;
  float r = xc - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = (p * r * r + r + 1.0f) * pt_el_bits2f((ni + 127) << 23);
  const float s = y * (big > 0.0f ? 5.54062238439350e34f : 1.0f);
  return x != x ? x : (x < -87.0f ? 0.0f : s);
}
/* tanh(x): odd, (1 - e^-2|x|) / (1 + e^-2|x|), a Taylor polynomial near 0. */
static inline float pt_el_tanhf(float x) {
  const float a = fabsf(x);
  const float e = pt_el_expf(-2.0f * a);
  const float t = (1.0f - e) / (1.0f + e);
  const float a2 = a * a;
  const float s = a * (1.0f + a2 * (-0.333333333f + a2 * (0.133333333f + a2 * -0.0539682540f)));
  const float m = a < 0.0625f ? s : t;
  return x != x ? x : copysignf(m, x);
}
/* The logistic function (e^-x overflows to inf for very negative x: the result is 0). */
static inline float pt_el_sigmoidf(float x) { return 1.0f / (1.0f + pt_el_expf(-x)); }
#endif
"#;

/// The exp of `v` in compute type `t`.
pub fn exp(t: &str, v: &str) -> String {
    if t == "float" {
        format!("pt_el_expf({v})")
    } else {
        format!("exp({v})")
    }
}

/// The tanh of `v` in compute type `t`.
pub fn tanh(t: &str, v: &str) -> String {
    if t == "float" {
        format!("pt_el_tanhf({v})")
    } else {
        format!("tanh({v})")
    }
}

/// The logistic function of `v` in compute type `t` (libm's double path is the stable
/// two-branch form).
pub fn sigmoid(t: &str, v: &str) -> String {
    if t == "float" {
        format!("pt_el_sigmoidf({v})")
    } else {
        format!("({v} >= 0.0 ? 1.0 / (1.0 + exp(-({v}))) : exp({v}) / (1.0 + exp({v})))")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers_are_guarded_and_named_with_the_prefix() {
        assert!(HELPERS.starts_with("#ifndef PT_EL_MATH"));
        assert!(HELPERS.trim_end().ends_with("#endif"));
        for f in [exp("float", "x"), tanh("float", "x"), sigmoid("float", "x")] {
            assert!(f.starts_with(PREFIX), "{f}");
            let name = f.split('(').next().unwrap_or_default();
            assert!(
                HELPERS.contains(&format!("float {name}(")),
                "{name} defined"
            );
        }
        assert_eq!(exp("double", "v"), "exp(v)");
    }
}
