//! Image scatter and small linear-algebra lowerings: Col2Im (the block geometry resolved at
//! compile time into a static tap table, overlaps summed in double), MaxUnpool (indices
//! scattered into a zeroed output, last write wins), Det (partial-pivot LU in double, as the
//! interpreter computes it).

use super::movement::{emit_copy_plan, strides, Axis, CopyPlan, Src};
use super::operand::{const_ints, ctype};
use super::{LowerCx, LowerError, Registry};
use petasos_ir::ops::nn::layout::Col2Im;
use petasos_ir::ops::nn::pool::MaxUnpool;

/// Registers this family's lowerings.
pub fn register(r: &mut Registry) {
    r.op("Col2Im", lower_col2im);
    r.op("MaxUnpool", lower_max_unpool);
    r.op("Det", lower_det);
}

fn lower_col2im(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let (x, y) = (cx.input(0)?.clone(), cx.output(0)?.clone());
    ctype(cx, &x)?;
    if !x.dtype.is_float() || y.dtype != x.dtype {
        return Err(cx.unsupported(format!("Col2Im of {}", x.dtype)));
    }
    let to_sizes = |v: Vec<i64>| v.iter().map(|&d| d.max(0) as usize).collect::<Vec<_>>();
    let img = to_sizes(const_ints(cx, 1, "image_shape")?.unwrap_or_default());
    let blk = to_sizes(const_ints(cx, 2, "block_shape")?.unwrap_or_default());
    let xs = &x.shape;
    let kv: usize = blk.iter().product();
    if xs.len() != 3 || img.len() != blk.len() || kv == 0 || xs[1] % kv != 0 {
        return Err(cx.invalid(format!(
            "input {xs:?}, image_shape {img:?} and block_shape {blk:?} do not fit"
        )));
    }
    let g = cx
        .op::<Col2Im>()?
        .win
        .geom(&img, blk, false)
        .map_err(|e| cx.invalid(e.to_string()))?;
    let l = g.out_vol();
    if xs[2] != l {
        return Err(cx.invalid(format!(
            "input has {} blocks, the geometry gives {l}",
            xs[2]
        )));
    }
    let (n, c) = (xs[0], xs[1] / kv);
    let iv = g.in_vol();
    let mut want = vec![n, c];
    want.extend(&img);
    if y.shape != want {
        return Err(cx.invalid(format!("output {:?} should be {want:?}", y.shape)));
    }
    if y.numel() == 0 {
        return Ok(());
    }
    // (source offset within one channel's columns, destination offset in the image) in the
    // interpreter's order: block position, then kernel tap.
    let mut src = Vec::new();
    let mut dst = Vec::new();
    let mut taps = Vec::new();
    for p in 0..l {
        g.taps(p, &mut taps);
        for &(k, off) in &taps {
            src.push((k * l + p).to_string());
            dst.push(off.to_string());
        }
    }
    let m = src.len();
    let acc = cx.scratch((iv * 8) as u64);
    cx.line(format!("double *const acc = (double *){acc};"));
    if m > 0 {
        cx.line(format!(
            "static const int32_t ts[{m}] = {{{}}};",
            src.join(", ")
        ));
        cx.line(format!(
            "static const int32_t td[{m}] = {{{}}};",
            dst.join(", ")
        ));
    }
    cx.line(format!("for (size_t bc = 0; bc < {}; bc++) {{", n * c));
    cx.line(format!("for (size_t i = 0; i < {iv}; i++) acc[i] = 0.0;"));
    if m > 0 {
        cx.line(format!("for (size_t j = 0; j < {m}; j++) {{"));
        cx.line(format!(
            "acc[td[j]] += (double){};",
            x.load(&format!("bc * {} + (size_t)ts[j]", kv * l))
        ));
        cx.line("}");
    }
    let t = y.compute_type();
    cx.line(format!("for (size_t i = 0; i < {iv}; i++) {{"));
    cx.line(y.store(&format!("bc * {iv} + i"), &format!("({t})acc[i]")));
    cx.close(2);
    Ok(())
}

fn lower_max_unpool(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let (x, ind, y) = (
        cx.input(0)?.clone(),
        cx.input(1)?.clone(),
        cx.output(0)?.clone(),
    );
    let t = ctype(cx, &x)?;
    let xs = &x.shape;
    if xs.len() < 3 || ind.shape != *xs || !ind.dtype.is_int() || y.dtype != x.dtype {
        return Err(cx.invalid("X and I must have the same shape of rank >= 3".into()));
    }
    // The default output: (in - 1) * stride - pads + kernel per spatial axis.
    let win = &cx.op::<MaxUnpool>()?.win;
    let nsp = xs.len() - 2;
    let k = win
        .kernel(nsp, None)
        .map_err(|e| cx.invalid(e.to_string()))?;
    let s = win.strides.clone().unwrap_or_else(|| vec![1; nsp]);
    let p = win.pads.clone().unwrap_or_else(|| vec![0; 2 * nsp]);
    if s.len() != nsp || p.len() != 2 * nsp {
        return Err(cx.invalid("strides/pads do not match the spatial axes".into()));
    }
    let mut inferred = xs[..2].to_vec();
    for i in 0..nsp {
        let o = (xs[i + 2] as i64 - 1) * s[i] - p[i] - p[i + nsp] + k[i] as i64;
        if o < 0 {
            return Err(cx.invalid("negative output size".into()));
        }
        inferred.push(o as usize);
    }
    if y.rank() != xs.len() {
        return Err(cx.invalid("output_shape has the wrong rank".into()));
    }
    let total: usize = inferred.iter().product();
    let direct = y.shape == inferred;
    let buf = if direct {
        y.expr.clone()
    } else {
        let s = cx.scratch((total * x.dtype.bytes_for(1)) as u64);
        cx.line(format!("{t} *const ub = ({t} *){s};"));
        "ub".to_string()
    };
    if total > 0 {
        cx.line(format!("memset({buf}, 0, {total} * sizeof({t}));"));
    }
    let f = cx.fn_name.clone();
    cx.line(format!("for (size_t e = 0; e < {}; e++) {{", x.numel()));
    cx.line(format!("const int64_t i = (int64_t){};", ind.load("e")));
    cx.line(format!("if (i < 0 || i >= {total}) {{"));
    cx.line(format!(
        "pt_set_error(\"{f}: index %lld is out of range for the output\", (long long)i);"
    ));
    cx.line("return;");
    cx.line("}");
    cx.line(format!("{buf}[i] = {}[e];", x.expr));
    cx.line("}");
    if direct {
        return Ok(());
    }
    // An explicit output shape: the inferred result goes to its leading corner.
    if y.numel() > 0 {
        cx.line(format!("memset({}, 0, {});", y.expr, y.bytes()));
    }
    let (ys, is) = (strides(&y.shape), strides(&inferred));
    let plan = CopyPlan {
        axes: (0..y.rank())
            .map(|i| Axis {
                n: y.shape[i].min(inferred[i]),
                dst: ys[i],
                src: Src::Stride(is[i]),
            })
            .collect(),
        dst_off: 0,
        src_off: 0,
    };
    emit_copy_plan(cx, &y.expr, "ub", t, &plan)
}

fn lower_det(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let (x, y) = (cx.input(0)?.clone(), cx.output(0)?.clone());
    ctype(cx, &x)?;
    if !x.dtype.is_float() || y.dtype != x.dtype {
        return Err(cx.unsupported(format!("Det of {}", x.dtype)));
    }
    let r = x.rank();
    if r < 2 || x.shape[r - 1] != x.shape[r - 2] {
        return Err(cx.invalid(format!("input must be (..., M, M), got {:?}", x.shape)));
    }
    let n = x.shape[r - 1];
    let batch: usize = x.shape[..r - 2].iter().product();
    if batch == 0 {
        return Ok(());
    }
    let t = y.compute_type();
    if n == 0 {
        cx.line(format!("for (size_t b = 0; b < {batch}; b++) {{"));
        cx.line(y.store("b", &format!("({t})1.0")));
        cx.line("}");
        return Ok(());
    }
    let m = cx.scratch((n * n * 8) as u64);
    cx.line(format!("double *const m = (double *){m};"));
    cx.line(format!("for (size_t b = 0; b < {batch}; b++) {{"));
    cx.line(format!(
        "for (size_t i = 0; i < {}; i++) m[i] = (double){};",
        n * n,
        x.load(&format!("b * {} + i", n * n))
    ));
    cx.line("double d = 1.0;");
    cx.line(format!("for (size_t c = 0; c < {n}; c++) {{"));
    cx.line("size_t p = c;");
    cx.line(format!(
        "for (size_t r = c + 1; r < {n}; r++) if (fabs(m[r * {n} + c]) > fabs(m[p * {n} + c])) p = r;"
    ));
    cx.line(format!("if (m[p * {n} + c] == 0.0) {{ d = 0.0; break; }}"));
    cx.line("if (p != c) {");
    cx.line(format!(
        "for (size_t k = 0; k < {n}; k++) {{ double s = m[c * {n} + k]; m[c * {n} + k] = m[p * {n} + k]; m[p * {n} + k] = s; }}"
    ));
    cx.line("d = -d;");
    cx.line("}");
    cx.line(format!("const double piv = m[c * {n} + c];"));
    cx.line("d *= piv;");
    cx.line(format!("for (size_t r = c + 1; r < {n}; r++) {{"));
    cx.line(format!("const double f = m[r * {n} + c] / piv;"));
    cx.line(format!(
        "if (f != 0.0) for (size_t k = c; k < {n}; k++) m[r * {n} + k] -= f * m[c * {n} + k];"
    ));
    cx.close(2);
    cx.line(y.store("b", &format!("({t})d")));
    cx.line("}");
    Ok(())
}
