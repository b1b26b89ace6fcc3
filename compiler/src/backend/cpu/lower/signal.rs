//! Signal lowerings: `DFT` (forward, inverse, onesided, `dft_length`, any axis), `STFT`, and
//! the window generators (`HannWindow`, `HammingWindow`, `BlackmanWindow`).
//!
//! The transforms are direct O(n^2) sums in double with a twiddle table computed per run,
//! the angle reduced modulo n as the interpreter does (`ir/src/ops/signal/`). Lengths and
//! axes must be constants (the output shapes are static anyway).

use super::seq_common::{lit, need_float};
use super::{CTensor, LowerCx, LowerError, Registry};
use petasos_ir::ops::signal::{Dft, Stft, Window, WindowKind};

/// Registers this family's lowerings.
pub fn register(r: &mut Registry) {
    r.op("DFT", lower_dft);
    r.op("STFT", lower_stft);
    for w in ["HannWindow", "HammingWindow", "BlackmanWindow"] {
        r.op(w, lower_window);
    }
}

/// pi as a C literal (C11 does not define `M_PI`).
const PI: &str = "3.141592653589793";

/// The scalar integer value of constant input `i`, `None` when absent; an `unsupported`
/// error when it is given but not a compile-time constant.
fn const_int(cx: &LowerCx<'_>, i: usize, what: &str) -> Result<Option<i64>, LowerError> {
    let Some(t) = cx.opt_input(i) else {
        return Ok(None);
    };
    let c = t
        .constant
        .as_ref()
        .ok_or_else(|| cx.unsupported(format!("{what} that is not a constant")))?;
    let v = c
        .to_i64_vec()
        .ok()
        .and_then(|v| v.first().copied())
        .ok_or_else(|| cx.invalid(format!("{what} must be one integer")))?;
    Ok(Some(v))
}

/// Emits the twiddle table `twc/tws[m] = cos/sin(sign * 2 pi m / n)` into scratch.
fn emit_twiddles(cx: &mut LowerCx<'_>, n: usize, inverse: bool) {
    let tc = cx.scratch(8 * n as u64);
    let ts = cx.scratch(8 * n as u64);
    let sign = if inverse { "1.0" } else { "-1.0" };
    cx.line(format!("double *twc = (double *){tc};"));
    cx.line(format!("double *tws = (double *){ts};"));
    cx.line(format!("for (size_t m = 0; m < {n}; m++) {{"));
    cx.line(format!(
        "const double ang = {sign} * 2.0 * {PI} * (double)m / (double){n};"
    ));
    cx.line("twc[m] = cos(ang);");
    cx.line("tws[m] = sin(ang);");
    cx.line("}");
}

/// Emits the direct DFT of `xr/xi[0..m]` (length-`n` transform) into `yr/yi[0..out_len]`.
fn emit_dft_sum(cx: &mut LowerCx<'_>, m: usize, n: usize, out_len: usize) {
    cx.line(format!("for (size_t k = 0; k < {out_len}; k++) {{"));
    cx.line("double ar = 0, ai = 0;");
    cx.line(format!("for (size_t t = 0; t < {m}; t++) {{"));
    cx.line(format!("const size_t w = (k * t) % {n};"));
    cx.line("const double c = twc[w], s = tws[w];");
    cx.line("ar += xr[t] * c - xi[t] * s;");
    cx.line("ai += xr[t] * s + xi[t] * c;");
    cx.line("}");
    cx.line("yr[k] = ar;");
    cx.line("yi[k] = ai;");
    cx.line("}");
}

fn lower_dft(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let op = cx.op::<Dft>()?.clone();
    let (x, y) = (cx.input(0)?.clone(), cx.output(0)?.clone());
    need_float(cx, &x, "input")?;
    let s = x.shape.clone();
    let r = s.len();
    let last = s.last().copied().unwrap_or(0);
    if r < 2 || (last != 1 && last != 2) {
        return Err(cx.invalid(format!("input must end in 1 or 2, got {s:?}")));
    }
    let axis = match op.axis_attr {
        Some(a) => a,
        None => const_int(cx, 2, "axis")?.unwrap_or(-2),
    };
    let ri = i64::try_from(r).unwrap_or(i64::MAX);
    let ax = if axis < 0 { axis + ri } else { axis };
    let ax = usize::try_from(ax)
        .ok()
        .filter(|&a| a + 1 < r)
        .ok_or_else(|| cx.invalid(format!("axis {axis} out of range")))?;
    let dl = const_int(cx, 1, "dft_length")?;
    let l = s[ax];
    let inv_one = op.inverse && op.onesided;
    let n = match dl {
        Some(v) if v < 1 => return Err(cx.invalid(format!("dft_length {v}"))),
        Some(v) => usize::try_from(v).map_err(|_| cx.invalid("dft_length".into()))?,
        None if inv_one => 2 * l.saturating_sub(1),
        None => l,
    };
    let out_len = if op.onesided && !op.inverse {
        n / 2 + 1
    } else {
        n
    };
    let ol = if inv_one { 1 } else { 2 };
    let mut os = s.clone();
    os[ax] = out_len;
    os[r - 1] = ol;
    if y.shape != os {
        return Err(cx.invalid(format!("output {:?}, expected {os:?}", y.shape)));
    }
    if n == 0 || y.numel() == 0 {
        return Ok(());
    }
    let outer: usize = s[..ax].iter().product();
    let inner: usize = s[ax + 1..r - 1].iter().product();
    let xlen = if inv_one { n } else { l.max(1) };
    emit_twiddles(cx, n, op.inverse);
    for (nm, len) in [("xr", xlen), ("xi", xlen), ("yr", n), ("yi", n)] {
        let b = cx.scratch(8 * len as u64);
        cx.line(format!("double *{nm} = (double *){b};"));
    }
    cx.line(format!(
        "for (size_t o = 0; o < {outer}; o++) for (size_t in = 0; in < {inner}; in++) {{"
    ));
    let xi_re = |t: &str| x.load(&format!("((o * {l} + ({t})) * {inner} + in) * {last}"));
    let xi_im = |t: &str| x.load(&format!("((o * {l} + ({t})) * {inner} + in) * {last} + 1"));
    if inv_one {
        // Hermitian extension of the half spectrum.
        let half = n / 2 + 1;
        cx.line(format!("for (size_t k = 0; k < {n}; k++) {{"));
        cx.line(format!(
            "const size_t j = k < {half} ? k : {n} - k; const int conj = k >= {half};"
        ));
        cx.line(format!("if (j < {l}) {{"));
        cx.line(format!("xr[k] = (double){};", xi_re("j")));
        if last == 2 {
            cx.line(format!("xi[k] = (double){};", xi_im("j")));
            cx.line("if (conj) xi[k] = -xi[k];");
        } else {
            cx.line("xi[k] = conj ? -0.0 : 0.0;");
        }
        cx.line("} else { xr[k] = 0; xi[k] = 0; }");
        cx.line("}");
        emit_dft_sum(cx, n, n, n);
        cx.line(format!("for (size_t k = 0; k < {n}; k++) {{"));
        cx.line(y.store(
            &format!("(o * {out_len} + k) * {inner} + in"),
            &format!("yr[k] / (double){n}"),
        ));
        cx.line("}");
    } else {
        cx.line(format!("for (size_t t = 0; t < {l}; t++) {{"));
        cx.line(format!("xr[t] = (double){};", xi_re("t")));
        if last == 2 {
            cx.line(format!("xi[t] = (double){};", xi_im("t")));
        } else {
            cx.line("xi[t] = 0;");
        }
        cx.line("}");
        emit_dft_sum(cx, l.min(n), n, out_len);
        let scale = if op.inverse {
            lit(1.0 / n as f64)
        } else {
            "1.0".into()
        };
        cx.line(format!("for (size_t k = 0; k < {out_len}; k++) {{"));
        let base = format!("((o * {out_len} + k) * {inner} + in) * 2");
        cx.line(y.store(&base, &format!("yr[k] * {scale}")));
        cx.line(y.store(&format!("{base} + 1"), &format!("yi[k] * {scale}")));
        cx.line("}");
    }
    cx.line("}");
    Ok(())
}

fn lower_stft(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let onesided = cx.op::<Stft>()?.onesided;
    let (x, y) = (cx.input(0)?.clone(), cx.output(0)?.clone());
    need_float(cx, &x, "signal")?;
    let win: Option<CTensor> = cx.opt_input(2).cloned();
    let (nb, len, last) = match x.shape.as_slice() {
        &[b, l, c] if c == 1 || c == 2 => (b, l, c),
        _ => {
            return Err(cx.invalid(format!(
                "signal must be [batch, length, 1 or 2], got {:?}",
                x.shape
            )))
        }
    };
    let step = const_int(cx, 1, "frame_step")?.ok_or_else(|| cx.invalid("no frame_step".into()))?;
    let fl = match (const_int(cx, 3, "frame_length")?, &win) {
        (Some(v), _) => v,
        (None, Some(w)) => i64::try_from(w.numel()).unwrap_or(0),
        (None, None) => i64::try_from(len).unwrap_or(0),
    };
    let (step, fl) = match (usize::try_from(step), usize::try_from(fl)) {
        (Ok(s), Ok(f)) if s >= 1 && f >= 1 && f <= len => (s, f),
        _ => {
            return Err(cx.invalid(format!(
                "frame_step {step}, frame_length {fl}, signal length {len}"
            )))
        }
    };
    if let Some(w) = &win {
        need_float(cx, w, "window")?;
        if w.numel() != fl {
            return Err(cx.invalid(format!("window length must equal frame_length {fl}")));
        }
    }
    let frames = 1 + (len - fl) / step;
    let bins = if onesided { fl / 2 + 1 } else { fl };
    if y.shape != [nb, frames, bins, 2] {
        return Err(cx.invalid(format!(
            "output {:?}, expected {:?}",
            y.shape,
            [nb, frames, bins, 2]
        )));
    }
    emit_twiddles(cx, fl, false);
    for (nm, n) in [("xr", fl), ("xi", fl), ("yr", bins), ("yi", bins)] {
        let b = cx.scratch(8 * n as u64);
        cx.line(format!("double *{nm} = (double *){b};"));
    }
    cx.line(format!(
        "for (size_t b = 0; b < {nb}; b++) for (size_t f = 0; f < {frames}; f++) {{"
    ));
    cx.line(format!("for (size_t t = 0; t < {fl}; t++) {{"));
    let w = match &win {
        Some(w) => format!("(double){}", w.load("t")),
        None => "1.0".into(),
    };
    cx.line(format!("const double w = {w};"));
    let at = format!("(b * {len} + f * {step} + t) * {last}");
    cx.line(format!("xr[t] = (double){} * w;", x.load(&at)));
    if last == 2 {
        cx.line(format!(
            "xi[t] = (double){} * w;",
            x.load(&format!("{at} + 1"))
        ));
    } else {
        cx.line("xi[t] = 0.0 * w;");
    }
    cx.line("}");
    emit_dft_sum(cx, fl, fl, bins);
    cx.line(format!("for (size_t k = 0; k < {bins}; k++) {{"));
    let base = format!("((b * {frames} + f) * {bins} + k) * 2");
    cx.line(y.store(&base, "yr[k]"));
    cx.line(y.store(&format!("{base} + 1"), "yi[k]"));
    cx.close(2);
    Ok(())
}

/// The window generators: the output's static length is the size (the size input must hold
/// that value at run time).
fn lower_window(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let op = cx.op::<Window>()?.clone();
    let y = cx.output(0)?.clone();
    if !y.dtype.is_float() {
        return Err(cx.unsupported(format!("output_datatype {}", y.dtype)));
    }
    cx.ctype_of(&y)?;
    let size = y.numel();
    let big_n = if op.periodic {
        size
    } else {
        size.saturating_sub(1)
    };
    let (nexpr, bn) = if big_n == 0 {
        ("0.0".to_string(), "1.0".to_string())
    } else {
        ("(double)i".to_string(), format!("{big_n}.0"))
    };
    let v = match op.kind {
        WindowKind::Hann => format!("pow(sin({PI} * {nexpr} / {bn}), 2)"),
        WindowKind::Hamming => format!(
            "{a} - (1.0 - {a}) * cos(2.0 * {PI} * {nexpr} / {bn})",
            a = lit(25.0 / 46.0)
        ),
        WindowKind::Blackman => format!(
            "0.42 - 0.5 * cos(2.0 * {PI} * {nexpr} / {bn}) + 0.08 * cos(2.0 * (2.0 * {PI} * {nexpr} / {bn}))"
        ),
    };
    cx.line(format!("for (size_t i = 0; i < {size}; i++) {{"));
    cx.line(y.store("i", &v));
    cx.line("}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::seq_common::e2e::{check, values};
    use petasos_ir::builder::GraphBuilder;
    use petasos_ir::op::Attr;
    use petasos_ir::{DType, Tensor, ValueType};

    fn t(shape: &[usize], seed: u64) -> Tensor {
        let n = shape.iter().product();
        Tensor::from_f32(shape, values(n, seed)).expect("tensor")
    }

    /// DFT (opset 20 form: constant `dft_length` and `axis` inputs) forward with padding,
    /// inverse onesided (irfft) on another axis, and STFT with a window and a frame length.
    #[test]
    fn dft_and_stft_match_interpreter() {
        let mut b = GraphBuilder::new("sig", 1);
        let x = b.input("x", ValueType::known(DType::F32, &[2, 5, 3, 2]));
        let n = b.scalar("n", DType::I64, 7.0);
        let ax = b.scalar("ax", DType::I64, 1.0);
        let y = b
            .node("", "DFT", &[Some(x), Some(n), Some(ax)], &[], 1)
            .expect("dft")[0];
        b.output(y, "dft");
        let ax0 = b.scalar("ax0", DType::I64, -2.0);
        let attrs = [("inverse", Attr::Int(1)), ("onesided", Attr::Int(1))];
        let z = b
            .node("", "DFT", &[Some(x), None, Some(ax0)], &attrs, 1)
            .expect("irfft")[0];
        b.output(z, "irfft");
        let s = b.input("s", ValueType::known(DType::F32, &[2, 20, 1]));
        let w = b.input("w", ValueType::known(DType::F32, &[6]));
        let step = b.scalar("step", DType::I64, 3.0);
        let fl = b.scalar("fl", DType::I64, 6.0);
        let st = b
            .node(
                "",
                "STFT",
                &[Some(s), Some(step), Some(w), Some(fl)],
                &[],
                1,
            )
            .expect("stft")[0];
        b.output(st, "stft");
        let g = b.finish().expect("graph");
        check(
            "signal",
            &g,
            vec![t(&[2, 5, 3, 2], 1), t(&[2, 20, 1], 2), t(&[6], 3)],
        );
    }
}
