//! Stop-gap lowerings the NN models need before the shape and reduce families land:
//! `Concat` (memcpy of contiguous runs) and `ReduceMean` over trailing axes (the global
//! average pool of torchvision exports). Registered before those families, so their
//! lowerings replace these once merged (the registry's last registration wins).

use super::super::fuse::attr_i;
use super::super::{LowerCx, LowerError, Registry};
use petasos_ir::op::Attr;

/// Registers the stop-gap lowerings.
pub fn register(r: &mut Registry) {
    r.op("Concat", lower_concat);
    r.op("ReduceMean", lower_reduce_mean);
}

/// `Concat` along `axis`: per outer index, each input's contiguous run in turn.
fn lower_concat(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let y = cx.output(0)?.clone();
    let rank = y.rank() as i64;
    let axis = attr_i(cx.node(), "axis").unwrap_or(0);
    let axis = if axis < 0 { axis + rank } else { axis };
    if axis < 0 || axis >= rank.max(1) {
        return Err(cx.invalid(format!("axis {axis} for rank {rank}")));
    }
    let axis = axis as usize;
    cx.ctype_of(&y)?;
    let outer: usize = y.shape[..axis].iter().product();
    let esize = y.dtype.bytes_for(1);
    let row: usize = y.shape[axis..].iter().product();
    let mut at = 0usize;
    for i in 0..cx.num_inputs() {
        let Some(x) = cx.opt_input(i).cloned() else {
            continue;
        };
        if x.dtype != y.dtype || x.rank() != y.rank() {
            return Err(cx.invalid(format!("input {i} of {} {:?}", x.dtype, x.shape)));
        }
        let run: usize = x.shape[axis..].iter().product();
        if run == 0 {
            continue;
        }
        cx.line(format!("for (size_t o = 0; o < {outer}; o++) {{"));
        cx.line(format!(
            "memcpy((uint8_t *){} + (o * {row} + {at}) * {esize}, (const uint8_t *){} + o * {} , {});",
            y.expr,
            x.expr,
            run * esize,
            run * esize
        ));
        cx.line("}");
        at += run;
    }
    if at != row {
        return Err(cx.invalid(format!("inputs fill {at} of {row} per row")));
    }
    Ok(())
}

/// `ReduceMean` of a float tensor over a trailing block of axes (size-1 axes anywhere).
fn lower_reduce_mean(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let x = cx.input(0)?.clone();
    let y = cx.output(0)?.clone();
    if !x.dtype.is_float() {
        return Err(cx.unsupported(format!("ReduceMean of {}", x.dtype)));
    }
    cx.ctype_of(&x)?;
    let rank = x.rank() as i64;
    let attr_axes = cx.node().op.attrs().into_iter().find_map(|(k, v)| match v {
        Attr::Ints(a) if k == "axes" => Some(a),
        _ => None,
    });
    let axes: Vec<i64> = match (attr_axes, cx.opt_input(1)) {
        (Some(a), _) => a,
        (None, Some(t)) => t
            .constant
            .as_ref()
            .and_then(|c| c.to_f64_vec().ok())
            .map(|v| v.iter().map(|&f| f as i64).collect())
            .ok_or_else(|| cx.unsupported("axes computed at run time"))?,
        (None, None) => (0..rank).collect(),
    };
    let mut red = vec![false; x.rank()];
    for a in axes {
        let a = if a < 0 { a + rank } else { a };
        if a < 0 || a >= rank {
            return Err(cx.invalid(format!("axis {a}")));
        }
        red[a as usize] = true;
    }
    // The reduced axes of size > 1 must come after every kept axis of size > 1.
    let last_kept = (0..x.rank()).rfind(|&i| !red[i] && x.shape[i] > 1);
    let first_red = (0..x.rank()).find(|&i| red[i] && x.shape[i] > 1);
    if let (Some(k), Some(r)) = (last_kept, first_red) {
        if r < k {
            return Err(cx.unsupported("ReduceMean over non-trailing axes"));
        }
    }
    let inner: usize = (0..x.rank())
        .filter(|&i| red[i])
        .map(|i| x.shape[i])
        .product();
    let outer = y.numel();
    if outer * inner != x.numel() || inner == 0 {
        return Err(cx.unsupported(format!("ReduceMean of {:?}", x.shape)));
    }
    cx.line(format!("for (size_t o = 0; o < {outer}; o++) {{"));
    cx.line("double acc = 0.0;");
    cx.line(format!(
        "for (size_t i = 0; i < {inner}; i++) acc += (double){};",
        x.load(&format!("o * {inner} + i"))
    ));
    cx.line(y.store("o", &format!("acc / {inner}.0")));
    cx.line("}");
    Ok(())
}
