//! `MaxPool` (with its `Indices` output), `AveragePool`, `GlobalAveragePool`,
//! `GlobalMaxPool`.
//!
//! f32 1-D / 2-D windowed pools without `Indices` and f32 global pools run on the rt kernels;
//! everything else (other dtypes, 3-D and up, `Indices`) is a generated loop nest with the
//! interpreter's rules: a max takes the first tap and then any greater one (a window with no
//! tap inside the input gives -inf), an average divides by the taps inside the input, or by
//! the kernel positions inside the padded input with `count_include_pad`.

use super::super::fuse::round;
use super::super::{CTensor, LowerCx, LowerError};
use super::loops::{flat, open_loops, open_taps, padded_count, Win};
use super::need_kernels;
use petasos_ir::ops::nn::geom::WinAttrs;
use petasos_ir::ops::nn::pool::{AveragePool, MaxPool};
use petasos_ir::DType;

/// The window of a pool over `x` (rank >= 3), checked against the output `y`.
fn pool_win(
    cx: &LowerCx<'_>,
    wa: &WinAttrs,
    ceil: bool,
    x: &CTensor,
    y: &CTensor,
) -> Result<Win, LowerError> {
    if x.rank() < 3 {
        return Err(cx.unsupported(format!("input of rank {}", x.rank())));
    }
    let inp = x.shape[2..].to_vec();
    let k = wa
        .kernel(inp.len(), None)
        .map_err(|e| cx.invalid(e.to_string()))?;
    let g = wa
        .geom(&inp, k.clone(), ceil)
        .map_err(|e| cx.invalid(e.to_string()))?;
    let mut ys = x.shape[..2].to_vec();
    ys.extend(&g.out);
    if ys != y.shape {
        return Err(cx.invalid(format!("output shape {:?}, expected {ys:?}", y.shape)));
    }
    Ok(Win {
        inp,
        out: g.out,
        k,
        s: g.s,
        d: g.d,
        pb: g.pb.iter().map(|&v| v as i64).collect(),
        pe: g.pe.iter().map(|&v| v as i64).collect(),
    })
}

/// `pt_pool2d_desc` initialiser of a 1-D / 2-D window.
fn pool_desc(w: &Win, n: usize, c: usize, include_pad: bool) -> String {
    let ((h, wd), (oh, ow)) = (w.in_2d(), w.out_2d());
    format!(
        "{{{n}, {c}, {h}, {wd}, {}, {oh}, {ow}, {}}}",
        w.taps_2d(),
        include_pad as i32
    )
}

/// Lowers `MaxPool`.
pub fn lower_max_pool(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let op = cx.op::<MaxPool>()?.clone();
    let x = cx.input(0)?.clone();
    let y = cx.output(0)?.clone();
    let idx = if cx.num_outputs() > 1 {
        Some(cx.output(1)?.clone())
    } else {
        None
    };
    let w = pool_win(cx, &op.win, op.ceil_mode, &x, &y)?;
    cx.ctype_of(&x)?;
    if x.dtype == DType::F32 && idx.is_none() && w.rank() <= 2 {
        need_kernels(cx);
        let d = cx.fresh("desc");
        cx.global(format!(
            "static const pt_pool2d_desc {d} = {};",
            pool_desc(&w, x.shape[0], x.shape[1], false)
        ));
        cx.line(format!("pt_maxpool2d(&{d}, {}, {});", x.expr, y.expr));
        return Ok(());
    }
    let t = if x.dtype.is_float() {
        "double"
    } else {
        x.compute_type()
    };
    let (nc, iv, ov) = (x.shape[0] * x.shape[1], w.in_vol(), w.out_vol());
    cx.line(format!("for (long b = 0; b < {nc}; b++) {{"));
    let lo = open_loops(cx, "o", &w.out);
    cx.line(format!("{t} best = 0; long bi = -1;"));
    let lt = open_taps(cx, &w);
    cx.line(format!("const long off = {};", flat("p", &w.inp)));
    cx.line(format!(
        "const {t} v = ({t}){};",
        x.load(&format!("b * {iv} + off"))
    ));
    cx.line("if (bi < 0 || v > best) { best = v; bi = off; }");
    cx.close(lt);
    cx.line(format!(
        "const size_t yi = (size_t)b * {ov} + {};",
        flat("o", &w.out)
    ));
    if x.dtype.is_float() {
        cx.line(y.store("yi", "bi < 0 ? -INFINITY : best"));
    } else {
        cx.line(y.store("yi", "best"));
    }
    if let Some(ix) = &idx {
        if ix.dtype != DType::I64 {
            return Err(cx.unsupported(format!("Indices of {}", ix.dtype)));
        }
        let off = if op.storage_order == 1 {
            // Column-major over the spatial axes: p0 + in0 * (p1 + in1 * (...)).
            cx.line("long cm = 0, r = bi < 0 ? 0 : bi;");
            let nd = w.rank();
            let mut e = String::new();
            for j in (0..nd).rev() {
                // coordinate j of r (row-major)
                let inner: usize = w.inp[j + 1..].iter().product();
                let c = format!("((r / {inner}) % {})", w.inp[j]);
                e = if e.is_empty() {
                    c
                } else {
                    format!("({e}) * {} + {c}", w.inp[j])
                };
            }
            cx.line(format!("cm = {e};"));
            "cm".to_string()
        } else {
            "(bi < 0 ? 0 : bi)".to_string()
        };
        cx.line(format!("{}[yi] = (int64_t)b * {iv} + {off};", ix.expr));
    }
    cx.close(lo);
    cx.line("}");
    Ok(())
}

/// Lowers `AveragePool`.
pub fn lower_average_pool(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let op = cx.op::<AveragePool>()?.clone();
    let x = cx.input(0)?.clone();
    let y = cx.output(0)?.clone();
    let w = pool_win(cx, &op.win, op.ceil_mode, &x, &y)?;
    if !x.dtype.is_float() {
        return Err(cx.unsupported(format!("AveragePool of {}", x.dtype)));
    }
    cx.ctype_of(&x)?;
    if x.dtype == DType::F32 && w.rank() <= 2 {
        need_kernels(cx);
        let d = cx.fresh("desc");
        cx.global(format!(
            "static const pt_pool2d_desc {d} = {};",
            pool_desc(&w, x.shape[0], x.shape[1], op.count_include_pad)
        ));
        cx.line(format!("pt_avgpool2d(&{d}, {}, {});", x.expr, y.expr));
        return Ok(());
    }
    let (nc, iv, ov) = (x.shape[0] * x.shape[1], w.in_vol(), w.out_vol());
    cx.line(format!("for (long b = 0; b < {nc}; b++) {{"));
    let lo = open_loops(cx, "o", &w.out);
    if op.count_include_pad {
        padded_count(cx, &w);
    }
    cx.line("double acc = 0.0; long cnt = 0;");
    let lt = open_taps(cx, &w);
    cx.line(format!(
        "acc += (double){}; cnt++;",
        x.load(&format!("b * {iv} + {}", flat("p", &w.inp)))
    ));
    cx.close(lt);
    cx.line(format!(
        "const size_t yi = (size_t)b * {ov} + {};",
        flat("o", &w.out)
    ));
    let div = if op.count_include_pad { "pc" } else { "cnt" };
    cx.line(y.store("yi", &format!("acc / (double){div}")));
    cx.close(lo);
    cx.line("}");
    Ok(())
}

/// Lowers `GlobalAveragePool` / `GlobalMaxPool`.
pub fn lower_global_pool(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let is_max = cx.node().op.op_type() == "GlobalMaxPool";
    let x = cx.input(0)?.clone();
    let y = cx.output(0)?.clone();
    if x.rank() < 2 || !x.dtype.is_float() {
        return Err(cx.unsupported(format!("{} {:?}", x.dtype, x.shape)));
    }
    cx.ctype_of(&x)?;
    let nc = x.shape[0] * x.shape[1];
    let hw: usize = x.shape[2..].iter().product();
    if y.numel() != nc {
        return Err(cx.invalid(format!("output shape {:?}", y.shape)));
    }
    if x.dtype == DType::F32 && hw > 0 {
        need_kernels(cx);
        let f = if is_max {
            "pt_global_maxpool"
        } else {
            "pt_global_avgpool"
        };
        cx.line(format!("{f}({nc}, {hw}, {}, {});", x.expr, y.expr));
        return Ok(());
    }
    cx.line(format!("for (long b = 0; b < {nc}; b++) {{"));
    if is_max {
        cx.line("double acc = -INFINITY;");
        cx.line(format!(
            "for (long i = 0; i < {hw}; i++) {{ double v = (double){}; if (i == 0 || v > acc) acc = v; }}",
            x.load(&format!("b * {hw} + i"))
        ));
        cx.line(y.store("b", &round(y.dtype, "acc")));
    } else {
        cx.line("double acc = 0.0;");
        cx.line(format!(
            "for (long i = 0; i < {hw}; i++) acc += (double){};",
            x.load(&format!("b * {hw} + i"))
        ));
        cx.line(y.store("b", &format!("acc / (double){hw}")));
    }
    cx.line("}");
    Ok(())
}
