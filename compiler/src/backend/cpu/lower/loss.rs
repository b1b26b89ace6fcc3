//! Loss lowerings: `NegativeLogLikelihoodLoss` and `SoftmaxCrossEntropyLoss` (optional
//! class weights, `ignore_index`, reductions none / sum / mean; the optional log-probability
//! output of the latter).
//!
//! As in the interpreter, the log-softmax is computed in `double` and the loss reads the
//! unrounded value; ignored targets contribute nothing to the loss nor to the mean's weight
//! sum. A target outside `[0, C)` (an evaluation error in the interpreter, which a compiled
//! kernel cannot report) gives a NaN loss.

use super::reduce_nest::{c_double, is_float, is_int, load_f64};
use super::{CTensor, LowerCx, LowerError, Registry};
use petasos_ir::ops::reduce::{NegativeLogLikelihoodLoss, SoftmaxCrossEntropyLoss};

/// Registers this file's lowerings.
pub fn register(r: &mut Registry) {
    r.op("NegativeLogLikelihoodLoss", lower_loss);
    r.op("SoftmaxCrossEntropyLoss", lower_loss);
}

/// Lowers both losses: per position `(n, d)` the (log-softmax of the) score of the target
/// class, weighted, then the reduction.
fn lower_loss(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let (softmax, reduction, ignore) = if let Ok(o) = cx.op::<SoftmaxCrossEntropyLoss>() {
        (true, o.reduction.clone(), o.ignore_index)
    } else {
        let o = cx.op::<NegativeLogLikelihoodLoss>()?;
        (false, o.reduction.clone(), o.ignore_index)
    };
    let x = cx.input(0)?.clone();
    let target = cx.input(1)?.clone();
    let weight = cx.opt_input(2).cloned();
    let loss = cx.output(0)?.clone();
    let lp_out: Option<CTensor> = if softmax && cx.num_outputs() > 1 {
        Some(cx.output(1)?.clone())
    } else {
        None
    };
    cx.ctype_of(&x)?;
    cx.ctype_of(&target)?;
    if !is_float(x.dtype) || !is_float(loss.dtype) {
        return Err(cx.unsupported(format!("scores of {}", x.dtype)));
    }
    if !is_int(target.dtype) {
        return Err(cx.unsupported(format!("target of {}", target.dtype)));
    }
    if let Some(w) = &weight {
        cx.ctype_of(w)?;
        if !is_float(w.dtype) {
            return Err(cx.unsupported(format!("weight of {}", w.dtype)));
        }
    }
    if x.rank() < 2 {
        return Err(cx.invalid(format!("input must be (N, C, ...), got {:?}", x.shape)));
    }
    let (n, c) = (x.shape[0], x.shape[1]);
    let d: usize = x.shape[2..].iter().product();
    let mut tshape = vec![n];
    tshape.extend_from_slice(&x.shape[2..]);
    if target.shape != tshape {
        return Err(cx.invalid(format!(
            "target shape {:?} does not match input {:?}",
            target.shape, x.shape
        )));
    }
    if weight.as_ref().is_some_and(|w| w.numel() != c) {
        return Err(cx.invalid(format!("weight must have {c} values")));
    }
    let none = reduction == "none";
    if !none && !matches!(reduction.as_str(), "sum" | "mean") {
        return Err(cx.unsupported(format!("reduction '{reduction}'")));
    }
    cx.line("double tot = 0.0, wsum = 0.0;");
    cx.line("(void)wsum;");
    cx.line(format!("for (size_t b = 0; b < {n}; b++) {{"));
    cx.line(format!("for (size_t p = 0; p < {d}; p++) {{"));
    cx.line(format!("const size_t base = b * {} + p;", c * d));
    let xv = |i: &str| load_f64(&x, &format!("base + {i} * {d}"));
    if softmax {
        cx.line("double m = -INFINITY;");
        cx.line(format!(
            "for (size_t k = 0; k < {c}; k++) m = fmax(m, {});",
            xv("k")
        ));
        cx.line("double s = 0.0;");
        cx.line(format!(
            "for (size_t k = 0; k < {c}; k++) s += exp({} - m);",
            xv("k")
        ));
        cx.line("const double ls = log(s);");
        if let Some(lp) = &lp_out {
            cx.line(format!("for (size_t k = 0; k < {c}; k++) {{"));
            cx.line(lp.store(&format!("base + k * {d}"), &format!("{} - m - ls", xv("k"))));
            cx.line("}");
        }
    }
    cx.line(format!(
        "const int64_t t = (int64_t){}[b * {d} + p];",
        target.expr
    ));
    cx.line("double l = 0.0;");
    match ignore {
        Some(i64::MIN) => cx.line("if (t != INT64_MIN) {"),
        Some(ii) => cx.line(format!("if (t != (int64_t){ii}LL) {{")),
        None => cx.line("{"),
    }
    cx.line(format!("if (t < 0 || t >= {c}) {{"));
    cx.line("l = NAN;");
    cx.line("} else {");
    let w = match &weight {
        Some(w) => load_f64(w, "(size_t)t"),
        None => c_double(1.0),
    };
    cx.line(format!("const double w = {w};"));
    let val = if softmax {
        format!("({} - m - ls)", xv("(size_t)t"))
    } else {
        xv("(size_t)t")
    };
    cx.line(format!("l = -{val} * w;"));
    cx.line("wsum += w;");
    cx.close(2);
    if none {
        cx.line(loss.store(&format!("b * {d} + p"), "l"));
    } else {
        cx.line("tot += l;");
    }
    cx.close(2);
    match reduction.as_str() {
        "sum" => cx.line(loss.store("0", "tot")),
        "mean" => cx.line(loss.store("0", "tot / wsum")),
        _ => {}
    }
    Ok(())
}
