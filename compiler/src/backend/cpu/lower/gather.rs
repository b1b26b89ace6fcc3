//! Indexed-read lowerings: Gather (constant indices become a static copy plan of memcpy
//! runs; run-time indices are read, wrapped and bounds-checked), GatherElements, GatherND,
//! ReverseSequence.
//!
//! An out-of-range run-time index sets the model error (`pt_set_error`) and stops the kernel
//! (never an out-of-bounds read), as the interpreter fails on it.

use super::movement::{emit_copy_plan, strides, Axis, CopyPlan, Src};
use super::operand::{ctype, norm_axis};
use super::{CTensor, LowerCx, LowerError, Registry};
use petasos_ir::ops::shape_ops::gather::{Gather, GatherElements, GatherND};
use petasos_ir::ops::shape_ops::select::ReverseSequence;

/// Registers this family's lowerings.
pub fn register(r: &mut Registry) {
    r.op("Gather", lower_gather);
    r.op("GatherElements", lower_gather_elements);
    r.op("GatherND", lower_gather_nd);
    r.op("ReverseSequence", lower_reverse_sequence);
}

/// Emits `int64_t {var} = <index {idx} of ind>`, wrapped once into `0..dim` and checked:
/// out of range sets the model error and returns from the kernel.
pub fn emit_index(
    cx: &mut LowerCx<'_>,
    var: &str,
    ind: &CTensor,
    idx: &str,
    dim: usize,
    what: &str,
) -> Result<(), LowerError> {
    if !ind.dtype.is_int() {
        return Err(cx.unsupported(format!("{} indices", ind.dtype)));
    }
    cx.line(format!("int64_t {var} = (int64_t){};", ind.load(idx)));
    cx.line(format!("if ({var} < 0) {var} += {dim};"));
    cx.line(format!("if ({var} < 0 || {var} >= {dim}) {{"));
    let f = cx.fn_name.clone();
    cx.line(format!(
        "pt_set_error(\"{f}: {what} index %lld is out of range for a dimension of size {dim}\", (long long){});",
        ind.load(idx)
    ));
    cx.line("return;");
    cx.line("}");
    Ok(())
}

/// The wrapped, checked values of a constant index tensor.
fn const_indices(
    cx: &LowerCx<'_>,
    ind: &CTensor,
    dim: usize,
) -> Result<Option<Vec<i64>>, LowerError> {
    let Some(c) = &ind.constant else {
        return Ok(None);
    };
    let v = c
        .to_i64_vec()
        .map_err(|e| cx.invalid(format!("indices: {e}")))?;
    v.iter()
        .map(|&k| {
            let j = if k < 0 { k + dim as i64 } else { k };
            if j < 0 || j >= dim as i64 {
                Err(cx.invalid(format!(
                    "index {k} is out of range for a dimension of size {dim}"
                )))
            } else {
                Ok(j)
            }
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn lower_gather(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let (x, ind, y) = (
        cx.input(0)?.clone(),
        cx.input(1)?.clone(),
        cx.output(0)?.clone(),
    );
    let t = ctype(cx, &x)?;
    let a = norm_axis(cx, cx.op::<Gather>()?.axis, x.rank())?;
    let d = x.shape[a];
    let outer: usize = x.shape[..a].iter().product();
    let inner: usize = x.shape[a + 1..].iter().product();
    let n = ind.numel();
    if y.numel() != outer * n * inner || y.dtype != x.dtype {
        return Err(cx.invalid("output shape does not fit data and indices".into()));
    }
    if y.numel() == 0 {
        return Ok(());
    }
    let (ni, di, ii) = (n as i64, d as i64, inner as i64);
    if let Some(k) = const_indices(cx, &ind, d)? {
        let plan = CopyPlan {
            axes: vec![
                Axis {
                    n: outer,
                    dst: ni * ii,
                    src: Src::Stride(di * ii),
                },
                Axis {
                    n,
                    dst: ii,
                    src: Src::Table(k.iter().map(|v| v * ii).collect()),
                },
                Axis {
                    n: inner,
                    dst: 1,
                    src: Src::Stride(1),
                },
            ],
            dst_off: 0,
            src_off: 0,
        };
        return emit_copy_plan(cx, &y.expr, &x.expr, t, &plan);
    }
    cx.line(format!("for (size_t j = 0; j < {n}; j++) {{"));
    emit_index(cx, "k", &ind, "j", d, "Gather")?;
    cx.line(format!("for (size_t o = 0; o < {outer}; o++) {{"));
    if inner == 1 {
        cx.line(format!(
            "{}[o * {n} + j] = {}[o * {d} + (size_t)k];",
            y.expr, x.expr
        ));
    } else {
        cx.line(format!(
            "memcpy({} + (o * {n} + j) * {inner}, {} + (o * {d} + (size_t)k) * {inner}, {inner} * sizeof({t}));",
            y.expr, x.expr
        ));
    }
    cx.close(2);
    Ok(())
}

/// Opens one loop per axis of `shape` (`i0`, `i1`...); returns how many to close.
pub fn open_loops(cx: &mut LowerCx<'_>, shape: &[usize]) -> usize {
    for (i, n) in shape.iter().enumerate() {
        cx.line(format!("for (size_t i{i} = 0; i{i} < {n}; i{i}++) {{"));
    }
    shape.len()
}

/// `sum_i i{i} * strides[i]` over the axes except `skip`, as a C expression.
pub fn offset_expr(strides: &[i64], skip: Option<usize>) -> String {
    let terms: Vec<String> = strides
        .iter()
        .enumerate()
        .filter(|(i, s)| Some(*i) != skip && **s != 0)
        .map(|(i, s)| format!("i{i} * {s}"))
        .collect();
    if terms.is_empty() {
        "0".into()
    } else {
        terms.join(" + ")
    }
}

fn lower_gather_elements(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let (x, ind, y) = (
        cx.input(0)?.clone(),
        cx.input(1)?.clone(),
        cx.output(0)?.clone(),
    );
    ctype(cx, &x)?;
    let r = x.rank();
    let a = norm_axis(cx, cx.op::<GatherElements>()?.axis, r)?;
    if ind.rank() != r
        || y.shape != ind.shape
        || (0..r).any(|i| i != a && ind.shape[i] > x.shape[i])
    {
        return Err(cx.invalid(format!(
            "indices {:?} do not fit data {:?}",
            ind.shape, x.shape
        )));
    }
    if y.numel() == 0 {
        return Ok(());
    }
    let xs = strides(&x.shape);
    cx.line("size_t f = 0;");
    let n = open_loops(cx, &ind.shape);
    emit_index(cx, "k", &ind, "f", x.shape[a], "GatherElements")?;
    let off = offset_expr(&xs, Some(a));
    cx.line(format!(
        "{}[f] = {}[{off} + (size_t)k * {}];",
        y.expr, x.expr, xs[a]
    ));
    cx.line("f++;");
    cx.close(n);
    Ok(())
}

fn lower_gather_nd(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let (x, ind, y) = (
        cx.input(0)?.clone(),
        cx.input(1)?.clone(),
        cx.output(0)?.clone(),
    );
    let t = ctype(cx, &x)?;
    let b = cx.op::<GatherND>()?.batch_dims;
    let q = ind.rank();
    if b < 0 || q == 0 {
        return Err(cx.invalid("batch_dims < 0 or scalar indices".into()));
    }
    let b = b as usize;
    let k = ind.shape[q - 1];
    if b >= q || b + k > x.rank() || x.shape[..b] != ind.shape[..b] {
        return Err(cx.invalid(format!(
            "indices {:?} with batch_dims {b} do not fit data {:?}",
            ind.shape, x.shape
        )));
    }
    let xs = strides(&x.shape);
    let slice: usize = x.shape[b + k..].iter().product();
    let tuples: usize = ind.shape[..q - 1].iter().product();
    let per_batch: usize = ind.shape[b..q - 1].iter().product();
    let batch_stride: usize = x.shape[b..].iter().product();
    if y.numel() != tuples * slice {
        return Err(cx.invalid("output shape does not fit data and indices".into()));
    }
    if y.numel() == 0 {
        return Ok(());
    }
    cx.line(format!("for (size_t tu = 0; tu < {tuples}; tu++) {{"));
    cx.line(format!(
        "size_t off = (tu / {}) * {batch_stride};",
        per_batch.max(1)
    ));
    for j in 0..k {
        emit_index(
            cx,
            &format!("k{j}"),
            &ind,
            &format!("tu * {k} + {j}"),
            x.shape[b + j],
            "GatherND",
        )?;
        cx.line(format!("off += (size_t)k{j} * {};", xs[b + j]));
    }
    cx.line(format!(
        "memcpy({} + tu * {slice}, {} + off, {slice} * sizeof({t}));",
        y.expr, x.expr
    ));
    cx.line("}");
    Ok(())
}

fn lower_reverse_sequence(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let (x, lens, y) = (
        cx.input(0)?.clone(),
        cx.input(1)?.clone(),
        cx.output(0)?.clone(),
    );
    ctype(cx, &x)?;
    let op = cx.op::<ReverseSequence>()?;
    let r = x.rank();
    let (ba, ta) = (
        norm_axis(cx, op.batch_axis, r)?,
        norm_axis(cx, op.time_axis, r)?,
    );
    if r < 2 || ba == ta || lens.numel() != x.shape[ba] || !lens.dtype.is_int() {
        return Err(cx.invalid("bad batch/time axes or sequence_lens".into()));
    }
    if x.numel() == 0 {
        return Ok(());
    }
    let xs = strides(&x.shape);
    let dt = x.shape[ta];
    cx.line("size_t f = 0;");
    let n = open_loops(cx, &x.shape);
    cx.line(format!(
        "const int64_t l = (int64_t){};",
        lens.load(&format!("i{ba}"))
    ));
    cx.line(format!("if (l < 0 || l > {dt}) {{"));
    let f = cx.fn_name.clone();
    cx.line(format!(
        "pt_set_error(\"{f}: sequence length %lld is outside 0..={dt}\", (long long)l);"
    ));
    cx.line("return;");
    cx.line("}");
    cx.line(format!(
        "const size_t tt = ((int64_t)i{ta} < l) ? (size_t)(l - 1 - (int64_t)i{ta}) : i{ta};"
    ));
    cx.line(format!(
        "{}[f++] = {}[{} + tt * {}];",
        y.expr,
        x.expr,
        offset_expr(&xs, Some(ta)),
        xs[ta]
    ));
    cx.close(n);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_skip_the_indexed_axis() {
        assert_eq!(offset_expr(&[12, 4, 1], Some(1)), "i0 * 12 + i2 * 1");
        assert_eq!(offset_expr(&[1], Some(0)), "0");
    }
}
