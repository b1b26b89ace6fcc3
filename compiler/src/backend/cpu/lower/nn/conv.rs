//! `Conv` and `ConvTranspose`.
//!
//! f32 1-D / 2-D convolutions with a constant weight run on `pt_conv2d_*` (weight packed at
//! init, the epilogue fused). f32 transposed convolutions with a constant weight run as a
//! GEMM (`W^T x X` into scratch columns) plus a col2im scatter. Everything else (other float
//! dtypes, 3-D and up, a weight computed at run time) is a generated loop nest accumulating
//! in double.

use super::super::fuse::{round, Epilogue};
use super::super::{CTensor, LowerCx, LowerError};
use super::loops::{flat, open_loops, open_taps, open_taps_transposed, Win};
use super::{need_act_helpers, need_kernels};
use petasos_ir::ops::nn::conv::{Conv, ConvTranspose};
use petasos_ir::DType;

/// (N, C, M, spatial input sizes, kernel sizes) of a convolution.
type ConvDims = (usize, usize, usize, Vec<usize>, Vec<usize>);

/// (strides, dilations, begin pads, output padding) of a transposed convolution.
type TransposedGeom = (Vec<usize>, Vec<usize>, Vec<i64>, Vec<i64>);

/// A checked convolution: input, weight, optional bias, the fused epilogue (whose `out` is
/// the output), window and group count.
struct ConvJob {
    x: CTensor,
    w: CTensor,
    bias: Option<CTensor>,
    ep: Epilogue,
    win: Win,
    group: usize,
}

impl ConvJob {
    /// (N, C, M, C per group, M per group): batch, input and output channels.
    fn channels(&self) -> (usize, usize, usize, usize, usize) {
        let (n, c, m) = (self.x.shape[0], self.x.shape[1], self.ep.out.shape[1]);
        (n, c, m, c / self.group, m / self.group)
    }
}

/// Checks `x` / `w` shapes and dtypes of a convolution and returns its dims.
fn conv_dims(cx: &LowerCx<'_>, x: &CTensor, w: &CTensor) -> Result<ConvDims, LowerError> {
    if x.rank() < 3 || w.rank() != x.rank() {
        return Err(cx.unsupported(format!("input {:?} with weight {:?}", x.shape, w.shape)));
    }
    if !x.dtype.is_float() || w.dtype != x.dtype {
        return Err(cx.unsupported(format!("dtypes {} and {}", x.dtype, w.dtype)));
    }
    Ok((
        x.shape[0],
        x.shape[1],
        w.shape[0],
        x.shape[2..].to_vec(),
        w.shape[2..].to_vec(),
    ))
}

/// Lowers `Conv` (see the module docs).
pub fn lower_conv(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let op = cx.op::<Conv>()?.clone();
    let x = cx.input(0)?.clone();
    let w = cx.input(1)?.clone();
    let bias = cx.opt_input(2).cloned();
    let ep = Epilogue::of(cx)?;
    let (n, c, m, inp, k) = conv_dims(cx, &x, &w)?;
    let group = op.group.max(1);
    if c % group != 0 || m % group != 0 || w.shape[1] * group != c {
        return Err(cx.invalid(format!(
            "input {:?} and weight {:?} do not match group {group}",
            x.shape, w.shape
        )));
    }
    let kk = op
        .win
        .kernel(inp.len(), Some(&k))
        .map_err(|e| cx.invalid(e.to_string()))?;
    if kk != k {
        return Err(cx.invalid("kernel_shape does not match the weight".into()));
    }
    let g = op
        .win
        .geom(&inp, k.clone(), false)
        .map_err(|e| cx.invalid(e.to_string()))?;
    let win = Win {
        inp: inp.clone(),
        out: g.out.clone(),
        k: k.clone(),
        s: g.s.clone(),
        d: g.d.clone(),
        pb: g.pb.iter().map(|&v| v as i64).collect(),
        pe: g.pe.iter().map(|&v| v as i64).collect(),
    };
    let mut yshape = vec![n, m];
    yshape.extend(&win.out);
    if yshape != ep.out.shape {
        return Err(cx.invalid(format!(
            "output shape {:?}, expected {yshape:?}",
            ep.out.shape
        )));
    }
    let job = ConvJob {
        x,
        w,
        bias,
        ep,
        win,
        group,
    };
    emit_conv(cx, &job, false)
}

/// Checks the bias (M values of the input's dtype) and emits the (transposed when
/// `transposed`) convolution `job`: f32 with a constant weight on the kernels ([`conv_fast`]
/// where `pt_conv2d` takes the window, [`deconv_fast`]), else as generated loops.
fn emit_conv(cx: &mut LowerCx<'_>, job: &ConvJob, transposed: bool) -> Result<(), LowerError> {
    let (_, _, m, _, _) = job.channels();
    if let Some(b) = &job.bias {
        if b.numel() != m || b.dtype != job.x.dtype {
            return Err(cx.invalid(format!("bias of shape {:?}", b.shape)));
        }
    }
    let f32_const = job.x.dtype == DType::F32 && job.w.is_const;
    if f32_const && transposed {
        deconv_fast(cx, job)
    } else if f32_const && job.win.rank() <= 2 && fits_formula(&job.win) {
        conv_fast(cx, job)
    } else {
        conv_loops(cx, job, transposed)
    }
}

/// Whether the window's output sizes follow the floor formula `pt_conv2d` checks.
fn fits_formula(w: &Win) -> bool {
    (0..w.rank()).all(|j| {
        let span = w.inp[j] as i64 + w.pb[j] + w.pe[j];
        let ke = (w.k[j] as i64 - 1) * w.d[j] as i64 + 1;
        span >= ke && (span - ke) / w.s[j] as i64 + 1 == w.out[j] as i64
    })
}

/// `{a, b, ...}` of a 2-D view of the window (1-D: H = 1).
fn desc2d(win: &Win, n: usize, c: usize, m: usize, group: usize) -> String {
    let ((h, wd), (oh, ow)) = (win.in_2d(), win.out_2d());
    format!(
        "{{{n}, {c}, {h}, {wd}, {m}, {}, {group}, {oh}, {ow}}}",
        win.taps_2d()
    )
}

/// f32 conv on `pt_conv2d_*`: weight packed at init, epilogue fused.
fn conv_fast(cx: &mut LowerCx<'_>, job: &ConvJob) -> Result<(), LowerError> {
    let ep = &job.ep;
    need_kernels(cx);
    let (n, c, m, _, _) = job.channels();
    let prep = cx.fresh("conv");
    let desc = cx.fresh("desc");
    cx.global(format!(
        "static const pt_conv2d_desc {desc} = {};\nstatic void *{prep};",
        desc2d(&job.win, n, c, m, job.group)
    ));
    cx.init_line(format!(
        "{prep} = pt_conv2d_prepare(&{desc}, {});",
        job.w.addr
    ));
    cx.init_line(format!(
        "if (!{prep}) {{ pt_set_error(\"{}: cannot prepare the convolution\"); return 1; }}",
        cx.fn_name
    ));
    cx.free_line(format!("pt_conv2d_free({prep});\n{prep} = NULL;"));
    let b = job
        .bias
        .as_ref()
        .map_or("NULL".to_string(), |b| b.expr.clone());
    let r = ep
        .residual
        .as_ref()
        .map_or("NULL".to_string(), |r| r.expr.clone());
    cx.line(ep.pt_struct("ep", &b, &r));
    cx.line(format!(
        "pt_conv2d_run({prep}, {}, {}, &ep, NULL);",
        job.x.expr, ep.out.expr
    ));
    Ok(())
}

/// Generated loop nest for a (transposed when `transposed`) convolution of any float dtype.
/// Forward: weight `[M, C/G, k...]`; transposed: weight `[C, M/G, k...]`.
fn conv_loops(cx: &mut LowerCx<'_>, job: &ConvJob, transposed: bool) -> Result<(), LowerError> {
    let ConvJob {
        x,
        w,
        bias,
        ep,
        win,
        ..
    } = job;
    need_act_helpers(cx);
    let (n, c, m, cg, mg) = job.channels();
    let (iv, ov, kv) = (win.in_vol(), win.out_vol(), win.k_vol());
    cx.line(format!("for (long b = 0; b < {n}; b++) {{"));
    cx.line(format!("for (long m = 0; m < {m}; m++) {{"));
    cx.line(format!("const long g = m / {mg}, mi = m % {mg};"));
    cx.line("(void)mi;");
    let lo = open_loops(cx, "o", &win.out);
    let init = bias
        .as_ref()
        .map_or("0.0".to_string(), |b| format!("(double){}", b.load("m")));
    cx.line(format!("double acc = {init};"));
    cx.line(format!("for (long ci = 0; ci < {cg}; ci++) {{"));
    cx.line(format!("const long ch = g * {cg} + ci;"));
    let lt = if transposed {
        open_taps_transposed(cx, win)
    } else {
        open_taps(cx, win)
    };
    let xi = format!("(b * {c} + ch) * {iv} + {}", flat("p", &win.inp));
    let wi = if transposed {
        format!("(ch * {mg} + mi) * {kv} + {}", flat("k", &win.k))
    } else {
        format!("(m * {cg} + ci) * {kv} + {}", flat("k", &win.k))
    };
    cx.line(format!(
        "acc += (double){} * (double){};",
        x.load(&xi),
        w.load(&wi)
    ));
    cx.close(lt);
    cx.line("}");
    cx.line(format!(
        "const size_t yi = (size_t)(b * {m} + m) * {ov} + {};",
        flat("o", &win.out)
    ));
    let v = round(ep.out.dtype, "acc");
    cx.line(ep.out.store("yi", &ep.apply(&v, "yi")));
    cx.close(lo);
    cx.close(2);
    Ok(())
}

/// Begin pads and output sizes of a transposed convolution, as the interpreter resolves
/// them (`output_shape`, `auto_pad` SAME_*, `pads`, `output_padding`).
fn transposed_win(
    op: &ConvTranspose,
    inp: &[usize],
    k: &[usize],
) -> Result<TransposedGeom, String> {
    let n = inp.len();
    let list = |v: &Option<Vec<i64>>, def: i64| -> Result<Vec<i64>, String> {
        match v {
            None => Ok(vec![def; n]),
            Some(v) if v.len() >= n => Ok(v[v.len() - n..].to_vec()),
            Some(v) => Err(format!("attribute of {} values for {n} axes", v.len())),
        }
    };
    let s = list(&op.win.strides, 1)?;
    let d = list(&op.win.dilations, 1)?;
    let opad = match &op.output_padding {
        Some(v) if v.len() >= n => v[..n].to_vec(),
        _ => list(&op.output_padding, 0)?,
    };
    let pads = match &op.win.pads {
        Some(p) if p.len() == 2 * n => Some(p.clone()),
        Some(p) => return Err(format!("pads has {} values", p.len())),
        None => None,
    };
    let same = matches!(op.win.auto_pad.as_str(), "SAME_UPPER" | "SAME_LOWER");
    let oshape = match &op.output_shape {
        Some(v) => Some(list(&Some(v.clone()), 0)?),
        None => None,
    };
    let mut pb = vec![0i64; n];
    for i in 0..n {
        let ke = (k[i] as i64 - 1) * d[i] + 1;
        let full = s[i] * (inp[i] as i64 - 1) + opad[i] + ke;
        let target = match &oshape {
            Some(o) => Some(o[i]),
            None if same && pads.is_none() => Some(inp[i] as i64 * s[i]),
            None => None,
        };
        pb[i] = match (target, &pads) {
            (Some(t), None) => {
                let total = full - t;
                if op.win.auto_pad == "SAME_UPPER" {
                    total.div_euclid(2)
                } else {
                    total - total.div_euclid(2)
                }
            }
            (_, Some(p)) => p[i],
            (None, None) => 0,
        };
    }
    let us = |v: Vec<i64>| v.iter().map(|&x| x.max(1) as usize).collect::<Vec<_>>();
    Ok((us(s), us(d), pb, opad))
}

/// Lowers `ConvTranspose` (see the module docs).
pub fn lower_conv_transpose(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let op = cx.op::<ConvTranspose>()?.clone();
    let x = cx.input(0)?.clone();
    let w = cx.input(1)?.clone();
    let bias = cx.opt_input(2).cloned();
    let ep = Epilogue::of(cx)?;
    let (n, c, _, inp, k) = conv_dims(cx, &x, &w)?;
    let group = op.group.max(1);
    if w.shape[0] != c || c % group != 0 {
        return Err(cx.invalid(format!(
            "input {:?} and weight {:?} do not match group {group}",
            x.shape, w.shape
        )));
    }
    let m = w.shape[1] * group;
    let (s, d, pb, _) = transposed_win(&op, &inp, &k).map_err(|e| cx.invalid(e))?;
    let out = ep.out.shape.get(2..).unwrap_or(&[]).to_vec();
    if ep.out.shape.len() != x.rank() || ep.out.shape[0] != n || ep.out.shape[1] != m {
        return Err(cx.invalid(format!("output shape {:?}", ep.out.shape)));
    }
    let win = Win {
        inp,
        out,
        k,
        s,
        d,
        pb,
        pe: Vec::new(),
    };
    let job = ConvJob {
        x,
        w,
        bias,
        ep,
        win,
        group,
    };
    emit_conv(cx, &job, true)
}

/// f32 transposed conv: per image and group, `cols[Mg*KV x IV] = W_g^T x X_g` (pt_sgemm),
/// then each output is its bias plus the column entries that land on it (col2im), with the
/// epilogue applied on the way out.
fn deconv_fast(cx: &mut LowerCx<'_>, job: &ConvJob) -> Result<(), LowerError> {
    let ConvJob {
        x,
        w,
        bias,
        ep,
        win,
        group,
    } = job;
    need_kernels(cx);
    need_act_helpers(cx);
    let (n, c, m, cg, mg) = job.channels();
    let (iv, ov, kv) = (win.in_vol(), win.out_vol(), win.k_vol());
    let rows = mg * kv;
    let cols = cx.scratch((rows * iv * 4) as u64);
    cx.line(format!("float *cols = (float *){cols};"));
    cx.line(format!("for (long b = 0; b < {n}; b++) {{"));
    cx.line(format!("for (long g = 0; g < {group}; g++) {{"));
    // W_g is [Cg x (Mg*KV)] row-major: A = W_g^T (transA), B = X_g [Cg x IV].
    cx.line(format!(
        "pt_sgemm({rows}, {iv}, {cg}, {} + g * {}, {rows}, 1, {} + (b * {c} + g * {cg}) * {iv}, {iv}, 0, cols, {iv}, NULL);",
        w.expr,
        cg * rows,
        x.expr
    ));
    cx.line(format!("for (long mi = 0; mi < {mg}; mi++) {{"));
    cx.line(format!("const long m = g * {mg} + mi;"));
    cx.line(format!(
        "float *y = {} + (size_t)(b * {m} + m) * {ov};",
        ep.out.expr
    ));
    let init = bias.as_ref().map_or("0.0f".to_string(), |b| b.load("m"));
    cx.line(format!("for (long i = 0; i < {ov}; i++) y[i] = {init};"));
    // Scatter-add the columns: column (mi, k..) at input p.. lands on o = p*s + k*d - pb.
    let nd = win.rank();
    for j in 0..nd {
        cx.line(format!(
            "for (long k{j} = 0; k{j} < {}; k{j}++) {{",
            win.k[j]
        ));
    }
    cx.line(format!(
        "const float *col = cols + (size_t)(mi * {kv} + {}) * {iv};",
        flat("k", &win.k)
    ));
    for j in 0..nd {
        cx.line(format!(
            "for (long p{j} = 0; p{j} < {}; p{j}++) {{",
            win.inp[j]
        ));
        cx.line(format!(
            "const long o{j} = p{j} * {} + k{j} * {} - {};",
            win.s[j], win.d[j], win.pb[j]
        ));
        cx.line(format!("if (o{j} < 0 || o{j} >= {}) continue;", win.out[j]));
    }
    cx.line(format!(
        "y[{}] += col[{}];",
        flat("o", &win.out),
        flat("p", &win.inp)
    ));
    cx.close(2 * nd);
    if !ep.is_empty() {
        cx.line(format!("for (long i = 0; i < {ov}; i++) {{"));
        cx.line(format!(
            "const size_t yi = (size_t)(b * {m} + m) * {ov} + i;"
        ));
        cx.line(ep.out.store("yi", &ep.apply("y[i]", "yi")));
        cx.line("}");
    }
    cx.close(3);
    Ok(())
}
