//! Layout lowerings: ops whose output is a rearrangement of input elements at positions
//! known at compile time — Transpose, Concat, Split, Slice, Expand, Tile, Pad (constant,
//! reflect, edge, wrap), DepthToSpace, SpaceToDepth, CenterCropPad. Each becomes one or a few
//! [`CopyPlan`]s (memcpy of contiguous runs), plus a fill for padded regions.

use super::layout_rt::{is_runtime, lower_pad_rt, lower_slice_rt};
use super::movement::{emit_copy_plan, strides, Axis, CopyPlan, Src};
use super::operand::{const_ints, ctype, fill, literal, norm_axis};
use super::{CTensor, LowerCx, LowerError, Registry};
use petasos_ir::ops::nn::layout::{DepthToSpace, SpaceToDepth};
use petasos_ir::ops::shape_ops::layout::{Concat, Transpose};
use petasos_ir::ops::shape_ops::slice::{slice_axis, Pad, PadMode, Slice};

/// Registers this family's lowerings.
pub fn register(r: &mut Registry) {
    r.op("Transpose", lower_transpose);
    r.op("Concat", lower_concat);
    r.op("Split", lower_split);
    r.op("Slice", lower_slice);
    r.op("Expand", lower_expand);
    r.op("Tile", lower_tile);
    r.op("Pad", lower_pad);
    r.op("DepthToSpace", lower_depth_to_space);
    r.op("SpaceToDepth", lower_space_to_depth);
    r.op("CenterCropPad", lower_center_crop_pad);
}

fn io(cx: &LowerCx<'_>) -> Result<(CTensor, CTensor), LowerError> {
    let (x, y) = (cx.input(0)?.clone(), cx.output(0)?.clone());
    if x.dtype != y.dtype {
        return Err(cx.invalid(format!("input {} but output {}", x.dtype, y.dtype)));
    }
    ctype(cx, &x)?;
    Ok((x, y))
}

/// Emits the copy `plan` from `x` into `y`.
fn copy(cx: &mut LowerCx<'_>, x: &CTensor, y: &CTensor, plan: &CopyPlan) -> Result<(), LowerError> {
    let t = ctype(cx, y)?;
    emit_copy_plan(cx, &y.expr, &x.expr, t, plan)
}

/// Checks the output has the shape the lowering computed (a mismatch is an internal error).
fn check_shape(cx: &LowerCx<'_>, y: &CTensor, want: &[usize]) -> Result<(), LowerError> {
    if y.shape != want {
        return Err(cx.invalid(format!(
            "output shape {:?} differs from the computed {want:?}",
            y.shape
        )));
    }
    Ok(())
}

fn lower_transpose(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let (x, y) = io(cx)?;
    let r = x.rank();
    let perm: Vec<usize> = match &cx.op::<Transpose>()?.perm {
        None => (0..r).rev().collect(),
        Some(p) => p
            .iter()
            .map(|&a| norm_axis(cx, a, r))
            .collect::<Result<_, _>>()?,
    };
    let xs = strides(&x.shape);
    let want: Vec<usize> = perm.iter().map(|&a| x.shape[a]).collect();
    check_shape(cx, &y, &want)?;
    let src: Vec<i64> = perm.iter().map(|&a| xs[a]).collect();
    copy(cx, &x, &y, &CopyPlan::gather(&y.shape, 0, &src))
}

fn lower_concat(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let y = cx.output(0)?.clone();
    ctype(cx, &y)?;
    let a = norm_axis(cx, cx.op::<Concat>()?.axis, y.rank())?;
    let ys = strides(&y.shape);
    let mut pos = 0usize;
    let ins: Vec<CTensor> = (0..cx.num_inputs())
        .filter_map(|i| cx.opt_input(i).cloned())
        .collect();
    for x in &ins {
        if x.dtype != y.dtype || x.rank() != y.rank() {
            return Err(cx.invalid("inputs differ in dtype or rank from the output".into()));
        }
        let xs = strides(&x.shape);
        let plan = CopyPlan {
            axes: x
                .shape
                .iter()
                .enumerate()
                .map(|(i, &n)| Axis {
                    n,
                    dst: ys[i],
                    src: Src::Stride(xs[i]),
                })
                .collect(),
            dst_off: pos as i64 * ys.get(a).copied().unwrap_or(0),
            src_off: 0,
        };
        copy(cx, x, &y, &plan)?;
        pos += x.shape[a];
    }
    check_shape(cx, &y, &{
        let mut s = y.shape.clone();
        if let Some(d) = s.get_mut(a) {
            *d = pos;
        }
        s
    })
}

fn lower_split(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let x = cx.input(0)?.clone();
    ctype(cx, &x)?;
    let a = norm_axis(
        cx,
        cx.op::<petasos_ir::ops::shape_ops::layout::Split>()?.axis,
        x.rank(),
    )?;
    let xs = strides(&x.shape);
    let mut pos = 0usize;
    for k in 0..cx.num_outputs() {
        let y = cx.output(k)?.clone();
        if y.dtype != x.dtype || y.rank() != x.rank() {
            return Err(cx.invalid("outputs differ in dtype or rank from the input".into()));
        }
        let plan = CopyPlan::gather(&y.shape, pos as i64 * xs[a], &xs);
        copy(cx, &x, &y, &plan)?;
        pos += y.shape[a];
    }
    if pos != x.shape[a] {
        return Err(cx.invalid(format!(
            "split sizes add up to {pos}, not the axis size {}",
            x.shape[a]
        )));
    }
    Ok(())
}

fn lower_slice(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let (x, y) = io(cx)?;
    let attr_form = cx.op::<Slice>()?.attr_form.is_some();
    if !attr_form && [1, 2, 4].iter().any(|&k| is_runtime(cx, k)) {
        return lower_slice_rt(cx, &x, &y);
    }
    let (st, en, ax, sp) = match &cx.op::<Slice>()?.attr_form {
        Some((s, e, a)) => (s.clone(), e.clone(), a.clone(), None),
        None => (
            const_ints(cx, 1, "starts")?.unwrap_or_default(),
            const_ints(cx, 2, "ends")?.unwrap_or_default(),
            const_ints(cx, 3, "axes")?,
            const_ints(cx, 4, "steps")?,
        ),
    };
    let n = st.len();
    if en.len() != n
        || ax.as_ref().is_some_and(|a| a.len() != n)
        || sp.as_ref().is_some_and(|s| s.len() != n)
    {
        return Err(cx.invalid("starts, ends, axes and steps differ in length".into()));
    }
    let r = x.rank();
    let mut start = vec![0i64; r];
    let mut step = vec![1i64; r];
    let mut count = x.shape.clone();
    for i in 0..n {
        let a = norm_axis(cx, ax.as_ref().map_or(i as i64, |v| v[i]), r)?;
        let p = sp.as_ref().map_or(1, |v| v[i]);
        let s = slice_axis(st[i], en[i], p, x.shape[a]).map_err(|e| cx.invalid(e.to_string()))?;
        start[a] = s.start as i64;
        step[a] = s.step;
        count[a] = s.count;
    }
    check_shape(cx, &y, &count)?;
    let xs = strides(&x.shape);
    let off: i64 = start.iter().zip(&xs).map(|(a, b)| a * b).sum();
    let src: Vec<i64> = step.iter().zip(&xs).map(|(a, b)| a * b).collect();
    copy(cx, &x, &y, &CopyPlan::gather(&count, off, &src))
}

/// Source strides reading `x` broadcast (numpy rules) to `out`.
fn broadcast_strides(x: &[usize], out: &[usize]) -> Option<Vec<i64>> {
    let xs = strides(x);
    let lead = out.len().checked_sub(x.len())?;
    let mut s = vec![0i64; out.len()];
    for (i, (&d, st)) in x.iter().zip(xs).enumerate() {
        let o = out[lead + i];
        if d == o {
            s[lead + i] = st;
        } else if d != 1 {
            return None;
        }
    }
    Some(s)
}

fn lower_expand(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let (x, y) = io(cx)?;
    let src = broadcast_strides(&x.shape, &y.shape).ok_or_else(|| {
        cx.invalid(format!(
            "input shape {:?} does not broadcast to {:?}",
            x.shape, y.shape
        ))
    })?;
    copy(cx, &x, &y, &CopyPlan::gather(&y.shape, 0, &src))
}

fn lower_tile(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let (x, y) = io(cx)?;
    let r = x.rank();
    if y.rank() != r {
        return Err(cx.invalid("output rank differs from the input".into()));
    }
    // View the output axis i as [repeats_i, d_i]: the repeat index does not move the source.
    let xs = strides(&x.shape);
    let mut shape = Vec::with_capacity(2 * r);
    let mut src = Vec::with_capacity(2 * r);
    for (i, &st) in xs.iter().enumerate() {
        let d = x.shape[i];
        let reps = y.shape[i].checked_div(d).unwrap_or(0);
        if reps * d != y.shape[i] {
            return Err(cx.invalid(format!(
                "output dim {} is not a multiple of input dim {d}",
                y.shape[i]
            )));
        }
        shape.extend([reps, d]);
        src.extend([0, st]);
    }
    copy(cx, &x, &y, &CopyPlan::gather(&shape, 0, &src))
}

/// The fill value of a constant Pad: the attribute, the optional value input (read at run
/// time), else zero — as a C expression in the compute type of `x`.
fn pad_value(cx: &LowerCx<'_>, x: &CTensor) -> Result<String, LowerError> {
    let op = cx.op::<Pad>()?;
    if let Some(v) = op.value_attr {
        return Ok(literal(x.dtype, v as f64));
    }
    match cx.opt_input(2) {
        Some(v) if v.numel() > 0 => {
            if v.dtype != x.dtype {
                return Err(cx.invalid(format!("value is {}, data {}", v.dtype, x.dtype)));
            }
            Ok(v.load("0"))
        }
        _ => Ok(literal(x.dtype, 0.0)),
    }
}

/// Per-axis `(before, after)` pads of a Pad node.
fn pads_per_axis(cx: &LowerCx<'_>, rank: usize) -> Result<Vec<(i64, i64)>, LowerError> {
    let op = cx.op::<Pad>()?;
    let pads = match &op.pads_attr {
        Some(p) => p.clone(),
        None => const_ints(cx, 1, "pads")?.unwrap_or_default(),
    };
    let axes: Vec<usize> = match const_ints(cx, 3, "axes")? {
        Some(a) => a
            .iter()
            .map(|&v| norm_axis(cx, v, rank))
            .collect::<Result<_, _>>()?,
        None => (0..rank).collect(),
    };
    let n = axes.len();
    if pads.len() != 2 * n {
        return Err(cx.invalid(format!("{} pads for {n} axes", pads.len())));
    }
    let mut out = vec![(0, 0); rank];
    for (i, &a) in axes.iter().enumerate() {
        out[a] = (pads[i], pads[n + i]);
    }
    Ok(out)
}

/// The source coordinate of output coordinate `o` on an axis padded by `before` in `mode`
/// (`None`: fill), as the interpreter maps it.
fn pad_source(mode: PadMode, o: i64, before: i64, d: i64) -> Option<i64> {
    let x = o - before;
    if (0..d).contains(&x) {
        return Some(x);
    }
    if d == 0 {
        return None;
    }
    Some(match mode {
        PadMode::Constant => return None,
        PadMode::Edge => x.clamp(0, d - 1),
        PadMode::Wrap => x.rem_euclid(d),
        PadMode::Reflect => {
            if d == 1 {
                0
            } else {
                let p = 2 * (d - 1);
                let y = x.rem_euclid(p);
                if y >= d {
                    p - y
                } else {
                    y
                }
            }
        }
    })
}

fn lower_pad(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let (x, y) = io(cx)?;
    let r = x.rank();
    if cx.op::<Pad>()?.pads_attr.is_none() && is_runtime(cx, 1) {
        let v = if cx.op::<Pad>()?.mode == PadMode::Constant {
            pad_value(cx, &x)?
        } else {
            literal(x.dtype, 0.0)
        };
        return lower_pad_rt(cx, &x, &y, &v);
    }
    let pa = pads_per_axis(cx, r)?;
    let mode = cx.op::<Pad>()?.mode;
    let mut out = Vec::with_capacity(r);
    for (i, &(b, e)) in pa.iter().enumerate() {
        let n = x.shape[i] as i64 + b + e;
        if n < 0 || (mode != PadMode::Constant && x.shape[i] == 0 && n > 0) {
            return Err(cx.invalid(format!("pads {pa:?} do not fit input {:?}", x.shape)));
        }
        out.push(n as usize);
    }
    check_shape(cx, &y, &out)?;
    let xs = strides(&x.shape);
    let ys = strides(&y.shape);
    if mode == PadMode::Constant {
        // Fill where the output extends past the input, then copy the overlap.
        if pa.iter().any(|&(b, e)| b > 0 || e > 0) {
            let v = pad_value(cx, &x)?;
            fill(cx, &y, &v);
        }
        let mut plan = CopyPlan {
            axes: Vec::with_capacity(r),
            dst_off: 0,
            src_off: 0,
        };
        for i in 0..r {
            let (b, _) = pa[i];
            // Output o reads input o - b; keep 0 <= o < out, 0 <= o - b < d.
            let lo = b.max(0);
            let hi = (out[i] as i64).min(x.shape[i] as i64 + b);
            let n = (hi - lo).max(0) as usize;
            plan.dst_off += lo * ys[i];
            plan.src_off += (lo - b) * xs[i];
            plan.axes.push(Axis {
                n,
                dst: ys[i],
                src: Src::Stride(xs[i]),
            });
        }
        return copy(cx, &x, &y, &plan);
    }
    // Reflect/edge/wrap: every output element has a source; padded axes use offset tables.
    let mut plan = CopyPlan::gather(&out, 0, &xs);
    for i in 0..r {
        if pa[i] == (0, 0) {
            continue;
        }
        let d = x.shape[i] as i64;
        let tab: Vec<i64> = (0..out[i] as i64)
            .map(|o| pad_source(mode, o, pa[i].0, d).unwrap_or(0) * xs[i])
            .collect();
        plan.axes[i].src = Src::Table(tab);
    }
    copy(cx, &x, &y, &plan)
}

/// `(N, C, H, W)` of a rank-4 tensor.
fn nchw(cx: &LowerCx<'_>, t: &CTensor) -> Result<[usize; 4], LowerError> {
    match t.shape.as_slice() {
        &[n, c, h, w] => Ok([n, c, h, w]),
        s => Err(cx.invalid(format!("expects rank 4, got {s:?}"))),
    }
}

fn lower_depth_to_space(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let (x, y) = io(cx)?;
    let op = cx.op::<DepthToSpace>()?;
    let (b, dcr) = (op.blocksize, op.mode == "DCR");
    let [n, c, h, w] = nchw(cx, &x)?;
    if b == 0 || c % (b * b) != 0 {
        return Err(cx.invalid(format!("channels {c} not divisible by blocksize² ({b})")));
    }
    let co = c / (b * b);
    check_shape(cx, &y, &[n, co, h * b, w * b])?;
    let xs = strides(&x.shape);
    let (sc, sh, sw) = (xs[1], xs[2], xs[3]);
    // Output viewed as [n, co, h, i, w, j]; input channel = (i*b + j)*co + ci (DCR) or
    // ci*b*b + i*b + j (CRD).
    let (s_ci, s_i, s_j) = if dcr {
        (sc, (b * co) as i64 * sc, co as i64 * sc)
    } else {
        ((b * b) as i64 * sc, b as i64 * sc, sc)
    };
    let shape = [n, co, h, b, w, b];
    let src = [xs[0], s_ci, sh, s_i, sw, s_j];
    copy(cx, &x, &y, &CopyPlan::gather(&shape, 0, &src))
}

fn lower_space_to_depth(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let (x, y) = io(cx)?;
    let op = cx.op::<SpaceToDepth>()?;
    let (b, dcr) = (op.blocksize, op.mode == "DCR");
    let [n, c, h, w] = nchw(cx, &x)?;
    if b == 0 || h % b != 0 || w % b != 0 {
        return Err(cx.invalid(format!("H, W not divisible by blocksize {b}")));
    }
    check_shape(cx, &y, &[n, c * b * b, h / b, w / b])?;
    let xs = strides(&x.shape);
    let (sc, sh, sw) = (xs[1], xs[2], xs[3]);
    // Input pixel (y*b + i, x*b + j) of channel ci goes to output channel
    // (i*b + j)*c + ci (DCR) or ci*b*b + i*b + j (CRD).
    let (shape, src) = if dcr {
        (
            vec![n, b, b, c, h / b, w / b],
            vec![xs[0], sh, sw, sc, b as i64 * sh, b as i64 * sw],
        )
    } else {
        (
            vec![n, c, b, b, h / b, w / b],
            vec![xs[0], sc, sh, sw, b as i64 * sh, b as i64 * sw],
        )
    };
    copy(cx, &x, &y, &CopyPlan::gather(&shape, 0, &src))
}

fn lower_center_crop_pad(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let (x, y) = io(cx)?;
    let r = x.rank();
    if y.rank() != r {
        return Err(cx.invalid("output rank differs from the input".into()));
    }
    let xs = strides(&x.shape);
    let ys = strides(&y.shape);
    let mut plan = CopyPlan {
        axes: Vec::with_capacity(r),
        dst_off: 0,
        src_off: 0,
    };
    let mut pads = false;
    for i in 0..r {
        let (d, t) = (x.shape[i] as i64, y.shape[i] as i64);
        // Output o reads input o + shift (the interpreter's centring).
        let shift = if t < d { (d - t) / 2 } else { -((t - d) / 2) };
        let lo = (-shift).max(0);
        let hi = t.min(d - shift);
        pads |= lo > 0 || hi < t;
        plan.dst_off += lo * ys[i];
        plan.src_off += (lo + shift) * xs[i];
        plan.axes.push(Axis {
            n: (hi - lo).max(0) as usize,
            dst: ys[i],
            src: Src::Stride(xs[i]),
        });
    }
    if pads {
        fill(cx, &y, &literal(y.dtype, 0.0));
    }
    copy(cx, &x, &y, &plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pad_sources_follow_the_modes() {
        let r: Vec<_> = (0..7)
            .map(|o| pad_source(PadMode::Reflect, o, 2, 3).unwrap_or(-1))
            .collect();
        assert_eq!(r, vec![2, 1, 0, 1, 2, 1, 0]);
        let e: Vec<_> = (0..5)
            .map(|o| pad_source(PadMode::Edge, o, 1, 3).unwrap_or(-1))
            .collect();
        assert_eq!(e, vec![0, 0, 1, 2, 2]);
        assert_eq!(pad_source(PadMode::Constant, 0, 1, 3), None);
    }

    #[test]
    fn broadcast_strides_zero_the_stretched_axes() {
        assert_eq!(broadcast_strides(&[3, 1], &[2, 3, 4]), Some(vec![0, 1, 0]));
        assert_eq!(broadcast_strides(&[3, 2], &[3, 4]), None);
    }
}
