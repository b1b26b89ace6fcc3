/* pt_types.h: C representations of the minifloat and sub-byte element types, with the
 * reference interpreter's conversion rules (petasos_ir::minifloat, petasos_ir::tensor).
 *
 * Storage: float8 (e4m3fn, e4m3fnuz, e5m2, e5m2fnuz, e8m0) is one uint8_t code per element;
 * float4 e2m1, int4 and uint4 are packed two per byte, int2 and uint2 four per byte, element
 * i in bits starting at (i % per_byte) * width of byte i / per_byte (low bits first), as ONNX
 * packs them in TensorProto raw data.
 *
 * Decoding is exact (every minifloat value is a float). Encoding rounds a double to the
 * nearest representable value, ties to even; out-of-range values saturate to the largest
 * finite value when `sat`, else become infinity (e5m2) or NaN (the others); float4 always
 * saturates. Header-only (static inline), C11, libm. */
#ifndef PT_TYPES_H
#define PT_TYPES_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "pt_rt.h"

/* Minifloat formats: exponent bits, mantissa bits, bias, kind, largest finite code. */
enum { PT_MF_FN = 0, PT_MF_FNUZ = 1, PT_MF_IEEE = 2, PT_MF_F4 = 3 };
typedef struct { int eb, mb, bias, kind; uint8_t maxc; } pt_mf_fmt;
#define PT_E4M3FN ((pt_mf_fmt){4, 3, 7, PT_MF_FN, 0x7E})
#define PT_E4M3FNUZ ((pt_mf_fmt){4, 3, 8, PT_MF_FNUZ, 0x7F})
#define PT_E5M2 ((pt_mf_fmt){5, 2, 15, PT_MF_IEEE, 0x7B})
#define PT_E5M2FNUZ ((pt_mf_fmt){5, 2, 16, PT_MF_FNUZ, 0x7F})
#define PT_E2M1 ((pt_mf_fmt){2, 1, 1, PT_MF_F4, 0x7})

/* The value of code `c` (the low 1+eb+mb bits). */
static inline float pt_mf2f(uint8_t c, pt_mf_fmt f) {
  int total = 1 + f.eb + f.mb;
  unsigned code = (unsigned)c & ((1u << total) - 1u), sb = 1u << (total - 1);
  if (f.kind == PT_MF_FNUZ && code == sb) return NAN;
  int neg = (code & sb) != 0;
  unsigned e = (code >> f.mb) & ((1u << f.eb) - 1u), m = code & ((1u << f.mb) - 1u);
  unsigned emax = (1u << f.eb) - 1u;
  float mag;
  if (f.kind == PT_MF_IEEE && e == emax) mag = m == 0 ? INFINITY : NAN;
  else if (f.kind == PT_MF_FN && e == emax && m == (1u << f.mb) - 1u) mag = NAN;
  else if (e == 0) mag = ldexpf((float)m, 1 - f.bias - f.mb);
  else mag = ldexpf((float)((1u << f.mb) + m), (int)e - f.bias - f.mb);
  return neg ? -mag : mag;
}

/* The code of `v` rounded to nearest, ties to even (see the file comment for overflow). */
static inline uint8_t pt_d2mf(double v, pt_mf_fmt f, int sat) {
  int total = 1 + f.eb + f.mb;
  uint8_t sb = (uint8_t)(1u << (total - 1));
  uint8_t nan = f.kind == PT_MF_FNUZ ? 0x80 : f.kind == PT_MF_F4 ? 0x7 : 0x7F;
  if (isnan(v)) return nan;
  int uz = f.kind == PT_MF_FNUZ;
  uint8_t sign = (signbit(v) && !(uz && v == 0.0)) ? sb : 0;
  double a = fabs(v), maxv = fabs((double)pt_mf2f(f.maxc, f));
  uint8_t over;
  if (sat || f.kind == PT_MF_F4) over = (uint8_t)(sign | f.maxc);
  else if (f.kind == PT_MF_IEEE) over = (uint8_t)(sign | (((1u << f.eb) - 1u) << f.mb));
  else over = nan;
  if (isinf(a)) return over;
  if (a == 0.0) return sign;
  int emin = 1 - f.bias, e;
  frexp(a, &e);
  e -= 1; /* a in [2^e, 2^(e+1)) */
  if (e < emin) e = emin;
  double q = ldexp(1.0, e - f.mb); /* spacing of representable values around a */
  double r = rint(a / q) * q;      /* exact scaling by a power of two; rint ties to even */
  if (r > maxv) return over;
  uint8_t code;
  if (r == 0.0) {
    code = 0;
  } else {
    int re;
    frexp(r, &re);
    re -= 1;
    if (re < emin) code = (uint8_t)ldexp(r, f.bias - 1 + f.mb); /* subnormal */
    else
      code = (uint8_t)(((unsigned)(re + f.bias) << f.mb) |
                       ((unsigned)ldexp(r, f.mb - re) - (1u << f.mb)));
  }
  if (uz && code == 0) return 0;
  return (uint8_t)(sign | code);
}

/* Cast to float4 e2m1: NaN becomes 0 (the interpreter's Cast rule), otherwise saturating. */
static inline uint8_t pt_d2e2m1_cast(double v) {
  return isnan(v) ? 0 : pt_d2mf(v, PT_E2M1, 1);
}

/* float8 e8m0: 2^(c-127), 0xFF is NaN. */
static inline float pt_e8m02f(uint8_t c) { return c == 0xFF ? NAN : ldexpf(1.0f, (int)c - 127); }

/* Cast to float8 e8m0 from the float32 value `v` (sign ignored): its exponent, rounded by
   `mode` (0 up, 1 down, 2 nearest) from the mantissa; NaN/infinity give 0xFF; with `sat`,
   rounding never carries past 0xFE. */
static inline uint8_t pt_f2e8m0(float v, int sat, int mode) {
  uint32_t bits = pt_f2bits(v);
  uint32_t e = (bits >> 23) & 0xFFu;
  if (e == 0xFFu) return 0xFF;
  int up;
  if (mode == 1) up = 0;
  else if (mode == 2) {
    int guard = (bits & 0x400000u) != 0, round = (bits & 0x200000u) != 0;
    int sticky = (bits & 0x1FFFFFu) != 0;
    up = guard && (round || sticky || e > 0);
  } else up = (bits & 0x7FFFFFu) != 0;
  if (up && !(sat && e == 0xFEu)) return (uint8_t)(e + 1u);
  return (uint8_t)e;
}

/* double -> bfloat16 exactly as the interpreter (the `half` crate) does: the low 32 bits of
   the double are dropped, then round to nearest with ties to even on what remains. */
static inline uint16_t pt_d2bf(double v) {
  uint64_t val;
  memcpy(&val, &v, 8);
  uint32_t x = (uint32_t)(val >> 32);
  uint32_t sign = x & 0x80000000u, exp = x & 0x7FF00000u, man = x & 0x000FFFFFu;
  if (exp == 0x7FF00000u) {
    uint32_t nan_bit = (man == 0 && (uint32_t)val == 0) ? 0 : 0x40u;
    return (uint16_t)((sign >> 16) | 0x7F80u | nan_bit | (man >> 13));
  }
  uint32_t hs = sign >> 16;
  int64_t he = (int64_t)(exp >> 20) - 1023 + 127;
  if (he >= 0xFF) return (uint16_t)(hs | 0x7F80u);
  if (he <= 0) {
    if (7 - he > 21) return (uint16_t)hs;
    uint32_t m = man | 0x00100000u;
    uint32_t hm = m >> (14 - he);
    uint32_t rb = 1u << (13 - he);
    if ((m & rb) != 0 && (m & (3u * rb - 1u)) != 0) hm += 1;
    return (uint16_t)(hs | hm);
  }
  uint32_t r = hs | ((uint32_t)he << 7) | (man >> 13);
  if ((man & 0x1000u) != 0 && (man & (3u * 0x1000u - 1u)) != 0) r += 1;
  return (uint16_t)r;
}

/* double -> integer as the interpreter: truncate toward zero (NaN -> 0) to a 128-bit integer
   (saturating at its bounds), then keep the low 64 bits (narrower types keep fewer). */
static inline uint64_t pt_d2wrap64(double v) {
  if (isnan(v)) return 0;
  double t = trunc(v);
  if (t >= 170141183460469231731687303715884105728.0) return UINT64_MAX; /* 2^127 */
  if (t < -170141183460469231731687303715884105728.0) return 0;
  double m = fmod(t, 18446744073709551616.0); /* exact; sign of t, |m| < 2^64 */
  return m >= 0 ? (uint64_t)m : (uint64_t)0 - (uint64_t)(-m);
}

/* ---- packed sub-byte elements ---- */
static inline unsigned pt_get4(const uint8_t *p, size_t i) { return (p[i >> 1] >> ((i & 1) * 4)) & 0xFu; }
static inline unsigned pt_get2(const uint8_t *p, size_t i) { return (p[i >> 2] >> ((i & 3) * 2)) & 0x3u; }
static inline int pt_get_i4(const uint8_t *p, size_t i) { int v = (int)pt_get4(p, i); return v >= 8 ? v - 16 : v; }
static inline int pt_get_i2(const uint8_t *p, size_t i) { int v = (int)pt_get2(p, i); return v >= 2 ? v - 4 : v; }
static inline void pt_set4(uint8_t *p, size_t i, unsigned v) {
  unsigned s = (unsigned)(i & 1) * 4;
  p[i >> 1] = (uint8_t)((p[i >> 1] & ~(0xFu << s)) | ((v & 0xFu) << s));
}
static inline void pt_set2(uint8_t *p, size_t i, unsigned v) {
  unsigned s = (unsigned)(i & 3) * 2;
  p[i >> 2] = (uint8_t)((p[i >> 2] & ~(0x3u << s)) | ((v & 0x3u) << s));
}

#endif
