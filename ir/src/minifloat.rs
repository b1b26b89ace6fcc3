//! Minifloat codecs: float8 (e4m3fn, e4m3fnuz, e5m2, e5m2fnuz), float4 e2m1 and float8 e8m0.
//!
//! Decoding follows the bit layouts of the ONNX spec. Encoding rounds to nearest, ties to even,
//! by searching the sorted table of finite values of the format — slow but obviously correct.
//! Out-of-range values saturate to the largest finite value when `saturate` is set; otherwise
//! they become infinity where the format has one, else NaN.

use crate::dtype::DType;
use std::sync::OnceLock;

struct Layout {
    exp_bits: u32,
    man_bits: u32,
    bias: i32,
    /// NaN is the single code 0x80 and there is no negative zero.
    uz: bool,
    /// The all-ones exponent encodes infinities and NaNs (IEEE-like).
    ieee: bool,
}

fn layout(d: DType) -> Layout {
    match d {
        DType::F8E4M3FN => Layout {
            exp_bits: 4,
            man_bits: 3,
            bias: 7,
            uz: false,
            ieee: false,
        },
        DType::F8E4M3FNUZ => Layout {
            exp_bits: 4,
            man_bits: 3,
            bias: 8,
            uz: true,
            ieee: false,
        },
        DType::F8E5M2 => Layout {
            exp_bits: 5,
            man_bits: 2,
            bias: 15,
            uz: false,
            ieee: true,
        },
        DType::F8E5M2FNUZ => Layout {
            exp_bits: 5,
            man_bits: 2,
            bias: 16,
            uz: true,
            ieee: false,
        },
        DType::F4E2M1 => Layout {
            exp_bits: 2,
            man_bits: 1,
            bias: 1,
            uz: false,
            ieee: false,
        },
        _ => Layout {
            exp_bits: 8,
            man_bits: 0,
            bias: 127,
            uz: false,
            ieee: false,
        },
    }
}

/// Decodes one code of a minifloat type to `f64`.
pub fn decode(d: DType, code: u8) -> f64 {
    if d == DType::F8E8M0 {
        return if code == 0xFF {
            f64::NAN
        } else {
            2f64.powi(code as i32 - 127)
        };
    }
    let l = layout(d);
    let total = 1 + l.exp_bits + l.man_bits;
    let code = code as u32 & ((1 << total) - 1);
    let sign_bit = 1 << (total - 1);
    if l.uz && code == sign_bit {
        return f64::NAN;
    }
    let neg = code & sign_bit != 0;
    let e = (code >> l.man_bits) & ((1 << l.exp_bits) - 1);
    let m = code & ((1 << l.man_bits) - 1);
    let emax = (1 << l.exp_bits) - 1;
    let mag = if l.ieee && e == emax {
        if m == 0 {
            f64::INFINITY
        } else {
            f64::NAN
        }
    } else if d == DType::F8E4M3FN && e == emax && m == (1 << l.man_bits) - 1 {
        f64::NAN
    } else if e == 0 {
        m as f64 * 2f64.powi(1 - l.bias - l.man_bits as i32)
    } else {
        (1.0 + m as f64 / (1 << l.man_bits) as f64) * 2f64.powi(e as i32 - l.bias)
    };
    if neg {
        -mag
    } else {
        mag
    }
}

/// Sorted `(value, code)` of the non-negative finite values of a type.
fn table(d: DType) -> &'static [(f64, u8)] {
    static TABLES: OnceLock<Vec<Vec<(f64, u8)>>> = OnceLock::new();
    let all = TABLES.get_or_init(|| {
        [
            DType::F8E4M3FN,
            DType::F8E4M3FNUZ,
            DType::F8E5M2,
            DType::F8E5M2FNUZ,
            DType::F4E2M1,
        ]
        .iter()
        .map(|&t| {
            let bits = t.bits() as u32;
            let mut v: Vec<(f64, u8)> = (0..(1u32 << (bits - 1)))
                .map(|c| (decode(t, c as u8), c as u8))
                .filter(|(x, _)| x.is_finite())
                .collect();
            v.sort_by(|a, b| a.0.total_cmp(&b.0));
            v
        })
        .collect()
    });
    let i = match d {
        DType::F8E4M3FN => 0,
        DType::F8E4M3FNUZ => 1,
        DType::F8E5M2 => 2,
        DType::F8E5M2FNUZ => 3,
        _ => 4,
    };
    &all[i]
}

fn nan_code(d: DType) -> u8 {
    match d {
        DType::F8E4M3FN => 0x7F,
        DType::F8E5M2 => 0x7F,
        DType::F8E4M3FNUZ | DType::F8E5M2FNUZ => 0x80,
        DType::F8E8M0 => 0xFF,
        // float4 has no NaN: the spec maps NaN to the largest magnitude.
        _ => 0x7,
    }
}

/// Encodes `v` to the nearest code (ties to even).
pub fn encode(d: DType, v: f64, saturate: bool) -> u8 {
    if d == DType::F8E8M0 {
        if v.is_nan() || v < 0.0 {
            return 0xFF;
        }
        if v == 0.0 || v.is_infinite() {
            return if saturate {
                if v == 0.0 {
                    0
                } else {
                    0xFE
                }
            } else {
                0xFF
            };
        }
        let e = v.log2().round() as i32 + 127;
        return e.clamp(0, 254) as u8;
    }
    if v.is_nan() {
        return nan_code(d);
    }
    let l = layout(d);
    let total = 1 + l.exp_bits + l.man_bits;
    let sign = if v.is_sign_negative() && !(l.uz && v == 0.0) {
        1u8 << (total - 1)
    } else {
        0
    };
    let a = v.abs();
    let t = table(d);
    let (max, max_code) = t[t.len() - 1];
    let overflow = |sign: u8| -> u8 {
        if saturate || d == DType::F4E2M1 {
            sign | max_code
        } else if l.ieee {
            sign | (((1u8 << l.exp_bits) - 1) << l.man_bits)
        } else {
            nan_code(d)
        }
    };
    if a.is_infinite() {
        return overflow(sign);
    }
    // The virtual next value above max decides whether rounding overflows.
    let prev = t[t.len() - 2].0;
    let beyond = max + (max - prev);
    if a >= beyond
        || (a > max && a - max > beyond - a)
        || (a > max && a - max == beyond - a && max_code & 1 == 1)
    {
        return overflow(sign);
    }
    if a >= max {
        return sign | max_code;
    }
    let i = t.partition_point(|(x, _)| *x <= a);
    // t[i-1].0 <= a < t[i].0
    let (lo, lo_c) = t[i - 1];
    let (hi, hi_c) = t[i];
    let code = if a - lo < hi - a {
        lo_c
    } else if a - lo > hi - a {
        hi_c
    } else if lo_c & 1 == 0 {
        lo_c
    } else {
        hi_c
    };
    let s = if l.uz && code == 0 { 0 } else { sign };
    s | code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        assert_eq!(decode(DType::F8E4M3FN, 0x7E), 448.0);
        assert!(decode(DType::F8E4M3FN, 0x7F).is_nan());
        assert_eq!(decode(DType::F8E5M2, 0x7B), 57344.0);
        assert_eq!(decode(DType::F8E5M2, 0x7C), f64::INFINITY);
        assert_eq!(decode(DType::F8E4M3FNUZ, 0x7F), 240.0);
        assert!(decode(DType::F8E4M3FNUZ, 0x80).is_nan());
        assert_eq!(decode(DType::F4E2M1, 0x7), 6.0);
        assert_eq!(decode(DType::F4E2M1, 0xF), -6.0);
        assert_eq!(encode(DType::F8E4M3FN, 1000.0, true), 0x7E);
        assert_eq!(encode(DType::F8E4M3FN, 1000.0, false), 0x7F);
        assert_eq!(encode(DType::F8E5M2, 1e6, false), 0x7C);
        assert_eq!(encode(DType::F4E2M1, 2.5, true), 0x4); // tie 2 vs 3 -> even (2)
        assert_eq!(encode(DType::F8E4M3FN, -0.0, true), 0x80);
        assert_eq!(encode(DType::F8E4M3FNUZ, -0.0, true), 0x00);
        for c in 0..=255u8 {
            let v = decode(DType::F8E4M3FN, c);
            if v.is_finite() {
                assert_eq!(encode(DType::F8E4M3FN, v, false), c);
            }
        }
    }
}
