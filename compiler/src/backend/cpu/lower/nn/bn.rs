//! Inference `BatchNormalization`: `y = (x - mean) * scale / sqrt(var + eps) + bias` per
//! channel (axis 1), any float dtype, with the fused epilogue (e.g. the `Relu` after a
//! pre-activation batch norm). The per-channel factor and shift are computed in double at
//! run time (C values), the plane loop in the compute type (f32: one fused multiply-add per
//! element). Training mode (batch statistics) is not lowered.

use super::super::fuse::{attr_f, attr_i, round, Epilogue};
use super::super::{LowerCx, LowerError};
use super::need_act_helpers;

/// Lowers `BatchNormalization` (see the module docs).
pub fn lower_batch_norm(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let node = cx.node();
    let eps = attr_f(node, "epsilon").unwrap_or(1e-5) as f64;
    let training = attr_i(node, "training_mode").unwrap_or(0) != 0
        || (cx.num_outputs() > 1 && attr_i(node, "is_test").unwrap_or(0) == 0);
    if training {
        return Err(cx.unsupported("training mode"));
    }
    let x = cx.input(0)?.clone();
    let params = (1..5)
        .map(|i| cx.input(i).cloned())
        .collect::<Result<Vec<_>, _>>()?;
    let ep = Epilogue::of(cx)?;
    if x.rank() < 2 || !x.dtype.is_float() {
        return Err(cx.unsupported(format!("input {} {:?}", x.dtype, x.shape)));
    }
    cx.ctype_of(&x)?;
    let (n, c) = (x.shape[0], x.shape[1]);
    let sp: usize = x.shape[2..].iter().product();
    for p in &params {
        if p.numel() != c || !p.dtype.is_float() {
            return Err(cx.unsupported(format!("parameter of shape {:?}", p.shape)));
        }
        cx.ctype_of(p)?;
    }
    if ep.out.shape != x.shape {
        return Err(cx.invalid(format!("output shape {:?}", ep.out.shape)));
    }
    need_act_helpers(cx);
    let (s, b, m, v) = (&params[0], &params[1], &params[2], &params[3]);
    let t = ep.out.compute_type();
    cx.line(format!("for (long c = 0; c < {c}; c++) {{"));
    cx.line(format!(
        "const double f = (double){} / sqrt((double){} + {eps:?});",
        s.load("c"),
        v.load("c")
    ));
    cx.line(format!(
        "const {t} sc = ({t})f, sh = ({t})((double){} - (double){} * f);",
        b.load("c"),
        m.load("c")
    ));
    cx.line(format!("for (long b = 0; b < {n}; b++) {{"));
    cx.line(format!("const size_t base = (size_t)(b * {c} + c) * {sp};"));
    cx.line(format!("for (long i = 0; i < {sp}; i++) {{"));
    cx.line("const size_t yi = base + i;");
    let val = round(ep.out.dtype, &format!("{} * sc + sh", x.load("yi")));
    cx.line(ep.out.store("yi", &ep.apply(&val, "yi")));
    cx.close(3);
    Ok(())
}
