//! `LpPool` lowering: the window geometry (pads, auto_pad, strides, dilations, ceil mode, any
//! spatial rank) is resolved at compile time with the interpreter's own geometry
//! (`petasos_ir::ops::nn::geom`) into static tables of input offsets per output position;
//! the kernel computes `(sum |x|^p)^(1/p)` per window in `double`, scaling windows cut off
//! by ceil mode by `kernel volume / positions inside the padded input` as the interpreter.

use super::reduce_nest::{c_double, is_float, load_f64};
use super::{LowerCx, LowerError, Registry};
use petasos_ir::ops::nn::pool::LpPool;
use std::fmt::Write as _;

/// Registers this file's lowering.
pub fn register(r: &mut Registry) {
    r.op("LpPool", lower_lp_pool);
}

/// Most table entries (taps over all output positions) a lowering emits.
const MAX_TAPS: usize = 1 << 22;

/// Writes a `static const` table of `u32` values.
fn table(cx: &mut LowerCx<'_>, base: &str, vals: &[u32]) -> String {
    let name = cx.fresh(base);
    let mut s = format!("static const uint32_t {name}[{}] = {{", vals.len().max(1));
    for (i, v) in vals.iter().enumerate() {
        if i % 16 == 0 {
            s.push_str("\n  ");
        }
        let _ = write!(s, "{v},");
    }
    if vals.is_empty() {
        s.push('0');
    }
    s.push_str("\n};");
    cx.global(s);
    name
}

fn lower_lp_pool(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let op = cx.op::<LpPool>()?.clone();
    let (x, y) = (cx.input(0)?.clone(), cx.output(0)?.clone());
    cx.ctype_of(&x)?;
    if !is_float(x.dtype) {
        return Err(cx.unsupported(format!("LpPool of {}", x.dtype)));
    }
    if x.rank() < 3 {
        return Err(cx.invalid(format!("input must have rank >= 3, got {:?}", x.shape)));
    }
    let k = op
        .win
        .kernel(x.rank() - 2, None)
        .map_err(|e| cx.invalid(e.to_string()))?;
    let g = op
        .win
        .geom(&x.shape[2..], k, op.ceil_mode)
        .map_err(|e| cx.invalid(e.to_string()))?;
    let (iv, ov, kv) = (g.in_vol(), g.out_vol(), g.kvol());
    let nc = x.shape[0] * x.shape[1];
    if y.numel() != nc * ov {
        return Err(cx.invalid(format!(
            "output shape {:?} differs from the window's {:?}",
            y.shape, g.out
        )));
    }
    if y.numel() == 0 {
        return Ok(());
    }
    if ov.saturating_mul(kv) > MAX_TAPS || iv > u32::MAX as usize {
        return Err(cx.unsupported(format!(
            "a window table of {ov} x {kv} positions (limit {MAX_TAPS})"
        )));
    }
    let mut start = Vec::with_capacity(ov + 1);
    let mut offs = Vec::new();
    let mut padded = Vec::with_capacity(ov);
    let mut taps = Vec::new();
    for o in 0..ov {
        start.push(offs.len() as u32);
        padded.push(g.taps(o, &mut taps) as u32);
        offs.extend(taps.iter().map(|&(_, off)| off as u32));
    }
    start.push(offs.len() as u32);
    let ts = table(cx, "start", &start);
    let to = table(cx, "off", &offs);
    let tp = table(cx, "padded", &padded);
    let p = op.p as f64;
    cx.line(format!("for (size_t b = 0; b < {nc}; b++) {{"));
    cx.line(format!("for (size_t o = 0; o < {ov}; o++) {{"));
    cx.line("double s = 0.0;");
    cx.line(format!(
        "for (uint32_t t = {ts}[o]; t < {ts}[o + 1]; t++) {{"
    ));
    cx.line(format!(
        "s += pow(fabs({}), {});",
        load_f64(&x, &format!("b * {iv} + {to}[t]")),
        c_double(p)
    ));
    cx.line("}");
    cx.line(format!(
        "if ({tp}[o] > 0) s = s * (double){kv} / (double){tp}[o];"
    ));
    cx.line(y.store(
        &format!("b * {ov} + o"),
        &format!("pow(s, {})", c_double(1.0 / p)),
    ));
    cx.close(2);
    Ok(())
}
