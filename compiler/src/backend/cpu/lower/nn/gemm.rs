//! `Gemm` and `MatMul`.
//!
//! f32 runs on `pt_sgemm` with the fused epilogue: a `MatMul` whose right operand has no batch
//! dims is one GEMM over the flattened batch; otherwise one GEMM per batch entry (broadcast
//! offsets computed from static strides). A `Gemm`'s `beta * C` becomes the epilogue's bias
//! (a column `[M, 1]`), its residual (C of the output's layout), or a broadcast copy in
//! scratch. Other dtypes (and `alpha != 1`) are generated loops: floats accumulate in double,
//! integers wrap in 64-bit unsigned arithmetic (the interpreter's wrap to the width).

use super::super::fuse::{round, Epilogue};
use super::super::{CTensor, LowerCx, LowerError};
use super::{need_act_helpers, need_kernels};
use petasos_ir::ops::linalg::matmul::Gemm;
use petasos_ir::DType;

/// `beta * C[i, j]` broadcast to `[M, N]` as a C expression (compute type double).
fn c_elem(cten: &CTensor, beta: f64, i: &str, j: &str) -> String {
    let (rows, cols) = match cten.shape.as_slice() {
        [] => (1, 1),
        [n] => (1, *n),
        [m, n] => (*m, *n),
        _ => (0, 0),
    };
    let ri = if rows == 1 {
        "0".to_string()
    } else {
        i.to_string()
    };
    let cj = if cols == 1 {
        "0".to_string()
    } else {
        j.to_string()
    };
    let v = format!(
        "(double){}",
        cten.load(&format!("({ri}) * {cols} + ({cj})"))
    );
    if beta == 1.0 {
        v
    } else {
        format!("{beta:?} * {v}")
    }
}

/// Lowers `Gemm` (see the module docs).
pub fn lower_gemm(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let op = cx.op::<Gemm>()?.clone();
    let a = cx.input(0)?.clone();
    let b = cx.input(1)?.clone();
    let cten = cx.opt_input(2).cloned();
    let ep = Epilogue::of(cx)?;
    if a.rank() != 2 || b.rank() != 2 || a.dtype != b.dtype {
        return Err(cx.unsupported(format!(
            "operands {} {:?} and {} {:?}",
            a.dtype, a.shape, b.dtype, b.shape
        )));
    }
    let (m, k) = if op.trans_a {
        (a.shape[1], a.shape[0])
    } else {
        (a.shape[0], a.shape[1])
    };
    let (k2, n) = if op.trans_b {
        (b.shape[1], b.shape[0])
    } else {
        (b.shape[0], b.shape[1])
    };
    if k != k2 || ep.out.shape != [m, n] {
        return Err(cx.invalid(format!(
            "shapes {:?} x {:?} -> {:?}",
            a.shape, b.shape, ep.out.shape
        )));
    }
    if let Some(c) = &cten {
        let ok = match c.shape.as_slice() {
            [] => true,
            [x] => *x == n || *x == 1,
            [r, x] => (*r == m || *r == 1) && (*x == n || *x == 1),
            _ => false,
        };
        if !ok || c.dtype != a.dtype {
            return Err(cx.invalid(format!("C of shape {:?}", c.shape)));
        }
    }
    let beta = op.beta as f64;
    let cten = cten.filter(|_| beta != 0.0);
    if a.dtype == DType::F32 && op.alpha == 1.0 {
        need_kernels(cx);
        // Where beta * C goes: the bias (per row), the residual, or a scratch copy.
        let mut bias = "NULL".to_string();
        let mut residual = ep.residual.as_ref().map(|r| r.expr.clone());
        if let Some(c) = &cten {
            let column = c.rank() == 2 && c.shape[1] == 1 && c.shape[0] == m && m > 1;
            let full = c.numel() == m * n && (c.shape.last() == Some(&n) || m == 1);
            if beta == 1.0 && column {
                bias = c.expr.clone();
            } else if beta == 1.0 && full && residual.is_none() {
                residual = Some(c.expr.clone());
            } else {
                let buf = cx.scratch((m * n * 4) as u64);
                cx.line(format!("float *cb = (float *){buf};"));
                cx.line(format!("for (long i = 0; i < {m}; i++) {{"));
                cx.line(format!("for (long j = 0; j < {n}; j++) {{"));
                let mut v = c_elem(c, beta, "i", "j");
                if let Some(r) = &ep.residual {
                    v = format!("{v} + (double){}", r.load(&format!("i * {n} + j")));
                }
                cx.line(format!("cb[i * {n} + j] = (float)({v});"));
                cx.close(2);
                residual = Some("cb".into());
            }
        }
        let r = residual.unwrap_or_else(|| "NULL".into());
        cx.line(ep.pt_struct("ep", &bias, &r));
        cx.line(format!(
            "pt_sgemm({m}, {n}, {k}, {}, {}, {}, {}, {}, {}, {}, {n}, &ep);",
            a.expr,
            a.shape[1],
            op.trans_a as i32,
            b.expr,
            b.shape[1],
            op.trans_b as i32,
            ep.out.expr
        ));
        return Ok(());
    }
    // Generated loops.
    need_act_helpers(cx);
    let ai = |i: &str, p: &str| {
        if op.trans_a {
            format!("{p} * {} + {i}", a.shape[1])
        } else {
            format!("{i} * {} + {p}", a.shape[1])
        }
    };
    let bi = |p: &str, j: &str| {
        if op.trans_b {
            format!("{j} * {} + {p}", b.shape[1])
        } else {
            format!("{p} * {} + {j}", b.shape[1])
        }
    };
    cx.line(format!("for (long i = 0; i < {m}; i++) {{"));
    cx.line(format!("for (long j = 0; j < {n}; j++) {{"));
    if a.dtype.is_float() {
        cx.line("double acc = 0.0;");
        cx.line(format!(
            "for (long p = 0; p < {k}; p++) acc += (double){} * (double){};",
            a.load(&ai("i", "p")),
            b.load(&bi("p", "j"))
        ));
        let mut v = format!("{:?} * acc", op.alpha as f64);
        if let Some(c) = &cten {
            v = format!("{v} + {}", c_elem(c, beta, "i", "j"));
        }
        let v = round(ep.out.dtype, &v);
        cx.line(ep.out.store(
            &format!("i * {n} + j"),
            &ep.apply(&v, &format!("i * {n} + j")),
        ));
    } else if a.dtype.is_int() && ep.is_empty() {
        cx.line("uint64_t acc = 0;");
        cx.line(format!(
            "for (long p = 0; p < {k}; p++) acc += (uint64_t)(int64_t){} * (uint64_t)(int64_t){};",
            a.load(&ai("i", "p")),
            b.load(&bi("p", "j"))
        ));
        cx.line(format!(
            "acc *= (uint64_t)(int64_t){};",
            op.alpha.trunc() as i64
        ));
        if let Some(c) = &cten {
            let (rows, cols) = match c.shape.as_slice() {
                [] => (1, 1),
                [x] => (1, *x),
                [r, x] => (*r, *x),
                _ => (1, 1),
            };
            let ri = if rows == 1 { "0" } else { "i" };
            let cj = if cols == 1 { "0" } else { "j" };
            cx.line(format!(
                "acc += (uint64_t)(int64_t){} * (uint64_t)(int64_t){};",
                c.load(&format!("({ri}) * {cols} + ({cj})")),
                op.beta.trunc() as i64
            ));
        }
        cx.line(format!(
            "{}[i * {n} + j] = ({})acc;",
            ep.out.expr,
            ep.out.ctype()
        ));
    } else {
        return Err(cx.unsupported(format!("Gemm of {}", a.dtype)));
    }
    cx.close(2);
    Ok(())
}

/// Row-major strides of `shape` in elements.
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Offset expression of batch entry `bi` (over `batch`) in an operand with batch dims `own`
/// (right-aligned, broadcast where 1) and `per` elements per matrix.
fn batch_offset(bi: &str, batch: &[usize], own: &[usize], per: usize) -> String {
    let off = batch.len() - own.len();
    let own_strides = strides(own);
    let bst = strides(batch);
    let mut terms = Vec::new();
    for (j, &d) in batch.iter().enumerate() {
        if j < off || own[j - off] == 1 || d == 1 {
            continue;
        }
        terms.push(format!(
            "(({bi} / {}) % {d}) * {}",
            bst[j],
            own_strides[j - off] * per
        ));
    }
    if terms.is_empty() {
        "0".into()
    } else {
        terms.join(" + ")
    }
}

/// Lowers `MatMul` (numpy semantics; see the module docs).
pub fn lower_matmul(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let a = cx.input(0)?.clone();
    let b = cx.input(1)?.clone();
    let ep = Epilogue::of(cx)?;
    if a.rank() == 0 || b.rank() == 0 || a.dtype != b.dtype {
        return Err(cx.unsupported(format!(
            "operands {} {:?} and {} {:?}",
            a.dtype, a.shape, b.dtype, b.shape
        )));
    }
    let mut a2 = a.shape.clone();
    if a2.len() == 1 {
        a2.insert(0, 1);
    }
    let mut b2 = b.shape.clone();
    if b2.len() == 1 {
        b2.push(1);
    }
    let (ra, rb) = (a2.len(), b2.len());
    let (m, k, k2, n) = (a2[ra - 2], a2[ra - 1], b2[rb - 2], b2[rb - 1]);
    let (abat, bbat) = (&a2[..ra - 2], &b2[..rb - 2]);
    let nb_rank = abat.len().max(bbat.len());
    let mut batch = vec![1usize; nb_rank];
    for (j, slot) in batch.iter_mut().enumerate() {
        let da = (j + abat.len()).checked_sub(nb_rank).map_or(1, |i| abat[i]);
        let db = (j + bbat.len()).checked_sub(nb_rank).map_or(1, |i| bbat[i]);
        if da != db && da != 1 && db != 1 {
            return Err(cx.invalid(format!("batch dims {abat:?} and {bbat:?} do not broadcast")));
        }
        *slot = da.max(db);
    }
    let nb: usize = batch.iter().product();
    if k != k2 || ep.out.numel() != nb * m * n {
        return Err(cx.invalid(format!(
            "shapes {:?} x {:?} -> {:?}",
            a.shape, b.shape, ep.out.shape
        )));
    }
    let aoff = batch_offset("bi", &batch, abat, m * k);
    let boff = batch_offset("bi", &batch, bbat, k * n);
    if a.dtype == DType::F32 {
        need_kernels(cx);
        let r = |off: &str| {
            ep.residual
                .as_ref()
                .map_or("NULL".to_string(), |r| format!("{} + {off}", r.expr))
        };
        // A right operand shared by every batch entry, and a left one stored whole: one GEMM.
        let a_whole = abat.iter().product::<usize>() == nb;
        if boff == "0" && a_whole {
            cx.line(ep.pt_struct("ep", "NULL", &r("0")));
            cx.line(format!(
                "pt_sgemm({}, {n}, {k}, {}, {k}, 0, {}, {n}, 0, {}, {n}, &ep);",
                nb * m,
                a.expr,
                b.expr,
                ep.out.expr
            ));
            return Ok(());
        }
        cx.line(format!("for (long bi = 0; bi < {nb}; bi++) {{"));
        cx.line(ep.pt_struct("ep", "NULL", &r(&format!("bi * {}", m * n))));
        cx.line(format!(
            "pt_sgemm({m}, {n}, {k}, {} + {aoff}, {k}, 0, {} + {boff}, {n}, 0, {} + bi * {}, {n}, &ep);",
            a.expr,
            b.expr,
            ep.out.expr,
            m * n
        ));
        cx.line("}");
        return Ok(());
    }
    need_act_helpers(cx);
    cx.line(format!("for (long bi = 0; bi < {nb}; bi++) {{"));
    cx.line(format!("const size_t ao = {aoff}, bo = {boff};"));
    cx.line(format!("for (long i = 0; i < {m}; i++) {{"));
    cx.line(format!("for (long j = 0; j < {n}; j++) {{"));
    let yi = format!("(size_t)bi * {} + i * {n} + j", m * n);
    let ax = a.load(&format!("ao + i * {k} + p"));
    let bx = b.load(&format!("bo + p * {n} + j"));
    if a.dtype.is_float() {
        cx.line("double acc = 0.0;");
        cx.line(format!(
            "for (long p = 0; p < {k}; p++) acc += (double){ax} * (double){bx};"
        ));
        let v = round(ep.out.dtype, "acc");
        cx.line(ep.out.store(&yi, &ep.apply(&v, &yi)));
    } else if a.dtype.is_int() && ep.is_empty() {
        cx.line("uint64_t acc = 0;");
        cx.line(format!(
            "for (long p = 0; p < {k}; p++) acc += (uint64_t)(int64_t){ax} * (uint64_t)(int64_t){bx};"
        ));
        cx.line(format!("{}[{yi}] = ({})acc;", ep.out.expr, ep.out.ctype()));
    } else {
        return Err(cx.unsupported(format!("MatMul of {}", a.dtype)));
    }
    cx.close(3);
    Ok(())
}
