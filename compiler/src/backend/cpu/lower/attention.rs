//! Attention-family lowerings: `Attention` (opsets 23-25: masks, causal and sliding windows,
//! GQA, softcap, KV cache, nonpad lengths, every `qk_matmul_output_mode`), `RotaryEmbedding`,
//! `SwiGLU`, `LinearAttention`, `CausalConvWithState` and `FlexAttention` (with
//! `score_mod`/`prob_mod` subgraphs that reduce to elementwise code, see `flex_mod`).
//!
//! The C follows the reference interpreter step by step (`ir/src/ops/attention/`,
//! `ir/src/ops/recent.rs`), rounding to the op's dtype where it does, so that f16/bf16 results
//! match bit for bit in most positions; f32 is computed in float, f64 in double.

use super::flex_mod::lower_mod;
use super::seq_common::{ftype, index, lit, math, need_float, round, CBuf};
use super::{CTensor, LowerCx, LowerError, Registry};
use petasos_ir::ops::attention::{Attention, RotaryEmbedding};
use petasos_ir::ops::recent::{CausalConvWithState, FlexAttention, LinearAttention, SwiGlu};
use petasos_ir::DType;

/// Registers this family's lowerings.
pub fn register(r: &mut Registry) {
    r.op("Attention", lower_attention);
    r.op("RotaryEmbedding", lower_rotary);
    r.op("SwiGLU", lower_swiglu);
    r.op("LinearAttention", lower_linear_attention);
    r.op("CausalConvWithState", lower_causal_conv);
    r.op("ai.onnx.preview.FlexAttention", lower_flex_attention);
}

/// The static dimensions of an `Attention` node, heads split out.
#[derive(Clone, Copy, Debug)]
struct Dims {
    b: usize,
    hq: usize,
    sq: usize,
    d: usize,
    hkv: usize,
    /// Current (new) key length.
    skc: usize,
    /// Past key length (0 without a cache).
    past: usize,
    dv: usize,
}

impl Dims {
    fn skv(&self) -> usize {
        self.past + self.skc
    }
}

/// `(B, H, S, D)` of a rank-4 tensor, or of a packed rank-3 `(B, S, H*D)` one with `heads`.
fn heads_of(t: &CTensor, heads: Option<i64>) -> Option<[usize; 4]> {
    match *t.shape.as_slice() {
        [b, h, s, d] => Some([b, h, s, d]),
        [b, s, hd] => {
            let n = usize::try_from(heads?).ok().filter(|&n| n > 0)?;
            (hd % n == 0).then_some([b, n, s, hd / n])
        }
        _ => None,
    }
}

/// The index expression of element `(b, h, s, x)` of a rank-3 or rank-4 head tensor whose
/// heads-split shape is `hs`.
fn head_index(rank: usize, hs: [usize; 4], v: [&str; 4]) -> String {
    if rank == 4 {
        index(&hs, &v)
    } else {
        format!(
            "({}) * {} + ({}) * {} + ({})",
            index(&[hs[0], hs[2]], &[v[0], v[2]]),
            hs[1] * hs[3],
            v[1],
            hs[3],
            v[3]
        )
    }
}

fn lower_attention(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let op = cx.op::<Attention>()?.clone();
    let (q, k, v) = (
        cx.input(0)?.clone(),
        cx.input(1)?.clone(),
        cx.input(2)?.clone(),
    );
    for (t, n) in [(&q, "Q"), (&k, "K"), (&v, "V")] {
        need_float(cx, t, n)?;
    }
    let mask = cx.opt_input(3).cloned();
    let (pk, pv) = (cx.opt_input(4).cloned(), cx.opt_input(5).cloned());
    let nonpad = cx.opt_input(6).cloned();
    let rank = q.rank();
    if k.rank() != rank || v.rank() != rank || !(rank == 3 || rank == 4) {
        return Err(cx.unsupported(format!("Q/K/V ranks {}/{}/{}", rank, k.rank(), v.rank())));
    }
    let bad = |w: &str| cx.invalid(format!("{w} cannot be split into heads"));
    let qh = heads_of(&q, op.q_num_heads).ok_or_else(|| bad("Q"))?;
    let kh = heads_of(&k, op.kv_num_heads).ok_or_else(|| bad("K"))?;
    let vh = heads_of(&v, op.kv_num_heads).ok_or_else(|| bad("V"))?;
    if pk.is_some() != pv.is_some() {
        return Err(cx.invalid("past_key and past_value must be given together".into()));
    }
    if nonpad.is_some() && pk.is_some() {
        return Err(cx.unsupported("nonpad_kv_seqlen together with a KV cache"));
    }
    let past = match (&pk, &pv) {
        (Some(a), Some(b)) => {
            let ok = |p: &CTensor, cur: [usize; 4], dt: DType| {
                p.rank() == 4
                    && p.shape[0] == cur[0]
                    && p.shape[1] == cur[1]
                    && p.shape[3] == cur[3]
                    && p.dtype == dt
            };
            if !ok(a, kh, k.dtype) || !ok(b, vh, v.dtype) || a.shape[2] != b.shape[2] {
                return Err(cx.invalid("past_key/past_value do not match K/V".into()));
            }
            a.shape[2]
        }
        _ => 0,
    };
    let dm = Dims {
        b: qh[0],
        hq: qh[1],
        sq: qh[2],
        d: qh[3],
        hkv: kh[1],
        skc: kh[2],
        past,
        dv: vh[3],
    };
    if kh[0] != dm.b
        || vh[0] != dm.b
        || kh[3] != dm.d
        || vh[1] != dm.hkv
        || vh[2] != dm.skc
        || dm.hkv == 0
        || !dm.hq.is_multiple_of(dm.hkv)
    {
        return Err(cx.invalid(format!(
            "incompatible head shapes Q {:?}, K {:?}, V {:?}",
            q.shape, k.shape, v.shape
        )));
    }
    let skv = dm.skv();
    // The mask, right-aligned against (B, Hq, Sq, Skv).
    let mask_dims = match &mask {
        Some(m) => {
            if m.rank() == 0 || m.rank() > 4 {
                return Err(cx.invalid(format!("attn_mask of rank {}", m.rank())));
            }
            cx.ctype_of(m)?;
            if !(m.dtype == DType::Bool || m.dtype.is_float()) {
                return Err(cx.unsupported(format!("attn_mask of dtype {}", m.dtype)));
            }
            let mut s = [1usize; 4];
            s[4 - m.rank()..].copy_from_slice(&m.shape);
            let full = [dm.b, dm.hq, dm.sq, skv];
            if (0..3).any(|a| s[a] != 1 && s[a] != full[a]) || s[3] > skv {
                return Err(cx.invalid(format!(
                    "attn_mask {:?} does not broadcast to {full:?}",
                    m.shape
                )));
            }
            Some(s)
        }
        None => None,
    };
    if let Some(n) = &nonpad {
        if !n.dtype.is_int() || n.numel() != dm.b {
            return Err(cx.invalid(format!("nonpad_kv_seqlen must hold {} integers", dm.b)));
        }
    }
    let dt = q.dtype;
    let sp = match op.softmax_precision {
        Some(p) => i32::try_from(p)
            .ok()
            .and_then(DType::from_onnx_code)
            .filter(|d| d.is_float())
            .ok_or_else(|| cx.unsupported(format!("softmax_precision {p}")))?,
        None => dt,
    };
    let t = ftype(&[dt, sp, k.dtype, v.dtype]);
    let r = |x: &str| round(dt, t, x);
    let scale = op
        .scale
        .map(f64::from)
        .unwrap_or_else(|| 1.0 / (dm.d as f64).sqrt());
    let sqrt_scale = dt.round_f64(scale.sqrt());
    let tsz = if t == "double" { 8 } else { 4 } as u64;
    let qs_buf = cx.scratch(tsz * (dm.b * dm.hq * dm.sq * dm.d) as u64);
    let ks_buf = cx.scratch(tsz * (dm.b * dm.hkv * skv * dm.d) as u64);
    let vs_buf = cx.scratch(tsz * (dm.b * dm.hkv * skv * dm.dv) as u64);
    let rows_buf = cx.scratch(tsz * (dm.b * dm.hq * (2 * skv + dm.dv)) as u64);
    let group = dm.hq / dm.hkv;
    let (b, hq, sq, d, hkv, dv) = (dm.b, dm.hq, dm.sq, dm.d, dm.hkv, dm.dv);
    let p = dm.past;
    cx.line(format!(
        "/* Attention: B {b}, Hq {hq}, Hkv {hkv}, Sq {sq}, Skv {skv} (past {p}), D {d}, Dv {dv}, scale {scale:e}, softmax in {sp} */"
    ));
    cx.line(format!("{t} *qs = ({t} *){qs_buf};"));
    cx.line(format!("{t} *ks = ({t} *){ks_buf};"));
    cx.line(format!("{t} *vs = ({t} *){vs_buf};"));
    cx.line(format!("{t} *rows = ({t} *){rows_buf};"));
    cx.line(format!("const {t} ss = ({t}){};", lit(sqrt_scale)));
    // Q, heads split and pre-scaled by sqrt(scale) (as the interpreter does).
    cx.line(format!("for (size_t b = 0; b < {b}; b++) for (size_t h = 0; h < {hq}; h++) for (size_t i = 0; i < {sq}; i++) for (size_t x = 0; x < {d}; x++) {{"));
    let qi = head_index(rank, qh, ["b", "h", "i", "x"]);
    cx.line(format!(
        "qs[(((b * {hq}) + h) * {sq} + i) * {d} + x] = {};",
        r(&format!("({t}){} * ss", q.load(&qi)))
    ));
    cx.line("}");
    // K and V with the past prepended: the present outputs and the scaled compute copies.
    let outs: Vec<CTensor> = (0..cx.num_outputs())
        .map(|i| cx.output(i).cloned())
        .collect::<Result<_, _>>()?;
    for (cur, cur_h, pst, width, buf, present, scaled) in [
        (&k, kh, &pk, d, "ks", outs.get(1), true),
        (&v, vh, &pv, dv, "vs", outs.get(2), false),
    ] {
        cx.line(format!("for (size_t b = 0; b < {b}; b++) for (size_t h = 0; h < {hkv}; h++) for (size_t j = 0; j < {skv}; j++) for (size_t x = 0; x < {width}; x++) {{"));
        let dst = format!("(((b * {hkv}) + h) * {skv} + j) * {width} + x");
        let ci = head_index(rank, cur_h, ["b", "h", &format!("j - {p}"), "x"]);
        let load = |e: &str| -> String {
            if scaled {
                r(&format!("({t}){e} * ss"))
            } else {
                format!("({t}){e}")
            }
        };
        match pst {
            Some(pt) => {
                let pi = index(&[b, hkv, p, width], &["b", "h", "j", "x"]);
                cx.line(format!("if (j < {p}) {{"));
                cx.line(format!("{buf}[{dst}] = {};", load(&pt.load(&pi))));
                if let Some(o) = present {
                    cx.line(format!("{}[{dst}] = {}[{pi}];", o.expr, pt.expr));
                }
                cx.line("} else {");
                cx.line(format!("{buf}[{dst}] = {};", load(&cur.load(&ci))));
                if let Some(o) = present {
                    cx.line(format!("{}[{dst}] = {}[{ci}];", o.expr, cur.expr));
                }
                cx.line("}");
            }
            None => {
                cx.line(format!("{buf}[{dst}] = {};", load(&cur.load(&ci))));
                if let Some(o) = present {
                    cx.line(format!("{}[{dst}] = {}[{ci}];", o.expr, cur.expr));
                }
            }
        }
        cx.line("}");
    }
    let qk = outs.get(3);
    let y = outs.first().ok_or_else(|| cx.invalid("no output".into()))?;
    let mut w = CBuf::new(1);
    match (&nonpad, p) {
        (Some(n), _) => w.line(format!(
            "const int64_t off = (int64_t){} - {sq};",
            n.load("b")
        )),
        (None, p) => w.line(format!("const int64_t off = {p};")),
    }
    w.line("(void)off;");
    w.line(format!("const size_t kh = h / {group};"));
    w.line(format!("for (size_t i = 0; i < {sq}; i++) {{"));
    w.line(format!(
        "const {t} *qr = qs + ((b * {hq} + h) * {sq} + i) * {d};"
    ));
    let qk_row = format!("((b * {hq} + h) * {sq} + i) * {skv}");
    w.line(format!("for (size_t j = 0; j < {skv}; j++) {{"));
    w.line(format!(
        "const {t} *kr = ks + ((b * {hkv} + kh) * {skv} + j) * {d};"
    ));
    w.line(format!("{t} acc = 0;"));
    w.line(format!(
        "for (size_t x = 0; x < {d}; x++) acc += qr[x] * kr[x];"
    ));
    w.line(format!("{t} s = {};", r("acc")));
    if op.softcap > 0.0 {
        let c = lit(f64::from(op.softcap));
        let inner = r(&format!("s / ({t}){c}"));
        let th = r(&format!("{}({inner})", math("tanh", t, dt)));
        w.line(format!("s = {};", r(&format!("{th} * ({t}){c}"))));
    }
    if let Some(o) = qk {
        if op.qk_matmul_output_mode <= 1 {
            w.line(o.store(&format!("{qk_row} + j"), "s"));
        }
    }
    w.line(format!("{t} bv = 0;"));
    if let (Some(m), Some(ms)) = (&mask, mask_dims) {
        let mi = index(&ms, &["b", "h", "i", "j"]);
        let val = if m.dtype == DType::Bool {
            format!("({}[{mi}] ? ({t})0 : -({t})INFINITY)", m.expr)
        } else {
            format!("({t}){}", m.load(&mi))
        };
        w.line(format!("bv = j < {} ? {val} : -({t})INFINITY;", ms[3]));
    }
    if op.is_causal {
        w.line(format!(
            "bv = bv + ((int64_t)j <= (int64_t)i + off ? ({t})0 : -({t})INFINITY);"
        ));
    }
    if op.left_window_size >= 0 || op.right_window_size >= 0 {
        w.line("{");
        w.line("const int64_t diff = (int64_t)i + off - (int64_t)j;");
        let mut cond = Vec::new();
        if op.left_window_size >= 0 {
            cond.push(format!("diff <= {}", op.left_window_size));
        }
        if op.right_window_size >= 0 {
            cond.push(format!("-diff <= {}", op.right_window_size));
        }
        w.line(format!(
            "if (!({})) bv += -({t})INFINITY;",
            cond.join(" && ")
        ));
        w.line("}");
    }
    if let Some(n) = &nonpad {
        w.line(format!(
            "if ((int64_t)j >= (int64_t){}) bv += -({t})INFINITY;",
            n.load("b")
        ));
    }
    w.line(format!("bias[j] = {};", r("bv")));
    w.line("sc[j] = s;");
    w.line("}");
    // Every bias -inf (NaN-propagating max): the row's probabilities are zero.
    w.line(format!("{t} mb = -({t})INFINITY;"));
    w.line(format!(
        "for (size_t j = 0; j < {skv}; j++) mb = (isnan(mb) || isnan(bias[j])) ? ({t})NAN : (bias[j] > mb ? bias[j] : mb);"
    ));
    w.line(format!("const int all_masked = mb == -({t})INFINITY;"));
    w.line(format!(
        "for (size_t j = 0; j < {skv}; j++) sc[j] = {};",
        r("sc[j] + bias[j]")
    ));
    if let Some(o) = qk {
        if op.qk_matmul_output_mode == 2 {
            w.line(format!("for (size_t j = 0; j < {skv}; j++) {{"));
            w.line(o.store(&format!("{qk_row} + j"), "sc[j]"));
            w.line("}");
        }
    }
    emit_softmax(&mut w, t, sp, "sc", skv, "all_masked");
    if let Some(o) = qk {
        if op.qk_matmul_output_mode == 3 {
            w.line(format!("for (size_t j = 0; j < {skv}; j++) {{"));
            w.line(o.store(&format!("{qk_row} + j"), "sc[j]"));
            w.line("}");
        }
    }
    w.line(format!("for (size_t m = 0; m < {dv}; m++) yrow[m] = 0;"));
    w.line(format!("for (size_t j = 0; j < {skv}; j++) {{"));
    w.line(format!("const {t} pj = {};", r("sc[j]")));
    w.line(format!(
        "const {t} *vr = vs + ((b * {hkv} + kh) * {skv} + j) * {dv};"
    ));
    w.line(format!(
        "for (size_t m = 0; m < {dv}; m++) yrow[m] += pj * vr[m];"
    ));
    w.line("}");
    let yi = if rank == 4 {
        format!("((b * {hq} + h) * {sq} + i) * {dv} + m")
    } else {
        format!("(b * {sq} + i) * {} + h * {dv} + m", hq * dv)
    };
    w.line(format!("for (size_t m = 0; m < {dv}; m++) {{"));
    w.line(y.store(&yi, "yrow[m]"));
    w.line("}");
    w.line("}");
    let ctx_name = cx.fresh("ctx");
    let task_name = cx.fresh("task");
    // The per-(batch, head) task with its context: every pointer it reads or writes.
    let mut fields = vec![
        (format!("const {t} *"), "qs".to_string()),
        (format!("const {t} *"), "ks".to_string()),
        (format!("const {t} *"), "vs".to_string()),
        (format!("{t} *"), "rows".to_string()),
    ];
    for tn in [&mask, &nonpad].into_iter().flatten() {
        fields.push((format!("const {} *", tn.ctype()), tn.expr.clone()));
    }
    for tn in [Some(y), qk].into_iter().flatten() {
        fields.push((format!("{} *", tn.ctype()), tn.expr.clone()));
    }
    let mut g = String::from("typedef struct {\n");
    for (ty, n) in &fields {
        g.push_str(&format!("  {ty}{n};\n"));
    }
    g.push_str(&format!("}} {ctx_name};\n"));
    g.push_str(&format!(
        "static void {task_name}(void *vc, int64_t task) {{\n"
    ));
    g.push_str(&format!(
        "  const {ctx_name} *c = (const {ctx_name} *)vc;\n"
    ));
    for (ty, n) in &fields {
        g.push_str(&format!("  {ty}const {n} PT_UNUSED = c->{n};\n"));
    }
    g.push_str(&format!(
        "  const size_t b = (size_t)task / {hq}, h = (size_t)task % {hq};\n"
    ));
    g.push_str(&format!(
        "  {t} *sc = rows + (size_t)task * {row}, *bias = sc + {skv}, *yrow = bias + {skv};\n",
        row = 2 * skv + dv
    ));
    g.push_str(&w.text);
    g.push_str("}\n");
    cx.global(g);
    let init: Vec<String> = fields.iter().map(|(_, n)| n.clone()).collect();
    cx.line(format!("{ctx_name} c = {{ {} }};", init.join(", ")));
    cx.line(format!("pt_parallel_for({}, {task_name}, &c);", b * hq));
    if crate::backend::cpu::rt::file("pt_threads.c").is_some() {
        cx.need_rt("pt_threads.c");
    }
    Ok(())
}

/// Softmax of `buf[0..n]` in place, in precision `sp` (computed in `t`), as the interpreter's
/// attention softmax: a row whose max is -inf gives zeros, `masked` (a C condition) zeroes
/// the row, bf16 sums sequentially in bf16, a zero sum divides by 1.
fn emit_softmax(cx: &mut CBuf, t: &str, sp: DType, buf: &str, n: usize, masked: &str) {
    let rs = |x: &str| round(sp, t, x);
    cx.line(format!("if ({masked}) {{"));
    cx.line(format!("for (size_t j = 0; j < {n}; j++) {buf}[j] = 0;"));
    cx.line("} else {");
    cx.line(format!("{t} mx = -({t})INFINITY;"));
    cx.line(format!("for (size_t j = 0; j < {n}; j++) {{"));
    cx.line(format!("const {t} xv = {};", rs(&format!("{buf}[j]"))));
    cx.line(format!("{buf}[j] = xv;"));
    cx.line(format!(
        "mx = (isnan(mx) || isnan(xv)) ? ({t})NAN : (xv > mx ? xv : mx);"
    ));
    cx.line("}");
    cx.line(format!(
        "const {t} safe = mx == -({t})INFINITY ? ({t})0 : mx;"
    ));
    cx.line(format!("{t} sum = 0;"));
    cx.line(format!("for (size_t j = 0; j < {n}; j++) {{"));
    let e = rs(&format!(
        "{}({})",
        math("exp", t, sp),
        rs(&format!("{buf}[j] - safe"))
    ));
    cx.line(format!("const {t} e = {e};"));
    cx.line(format!("{buf}[j] = e;"));
    if sp == DType::BF16 {
        cx.line(format!("sum = {};", rs("sum + e")));
    } else {
        cx.line("sum += e;");
    }
    cx.line("}");
    cx.line(format!("sum = {};", rs("sum")));
    cx.line("if (sum == 0) sum = 1;");
    cx.line(format!(
        "for (size_t j = 0; j < {n}; j++) {buf}[j] = {};",
        rs(&format!("{buf}[j] / sum"))
    ));
    cx.line("}");
}

/// `RotaryEmbedding`: the first `rotary_embedding_dim` features of each head rotated pairwise
/// (halves or interleaved) by cos/sin caches, gathered by `position_ids` when given. A
/// position id outside the cache makes that row NaN (the interpreter fails the run).
fn lower_rotary(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let op = cx.op::<RotaryEmbedding>()?.clone();
    let (x, cos, sin) = (
        cx.input(0)?.clone(),
        cx.input(1)?.clone(),
        cx.input(2)?.clone(),
    );
    let pos = cx.opt_input(3).cloned();
    let y = cx.output(0)?.clone();
    for (t, n) in [(&x, "input"), (&cos, "cos_cache"), (&sin, "sin_cache")] {
        need_float(cx, t, n)?;
    }
    let (b, sq, h, d, four) = match *x.shape.as_slice() {
        [b, h, s, d] => (b, s, h, d, true),
        [b, s, hd] => {
            let n = usize::try_from(op.num_heads).unwrap_or(0);
            if n == 0 || hd % n != 0 {
                return Err(cx.invalid("3-D input needs num_heads dividing its last dim".into()));
            }
            (b, s, n, hd / n, false)
        }
        _ => return Err(cx.unsupported(format!("input of rank {}", x.rank()))),
    };
    let rd = if op.rotary_embedding_dim == 0 {
        d
    } else {
        usize::try_from(op.rotary_embedding_dim).unwrap_or(usize::MAX)
    };
    if rd > d || rd % 2 != 0 {
        return Err(cx.invalid(format!(
            "rotary_embedding_dim {rd} does not fit head size {d}"
        )));
    }
    let half = rd / 2;
    if cos.shape != sin.shape || cos.shape.last() != Some(&half) {
        return Err(cx.invalid(format!("cos/sin caches must end in {half}")));
    }
    let max_pos = match &pos {
        Some(p) => {
            if cos.rank() != 2 || p.shape != [b, sq] || !p.dtype.is_int() {
                return Err(cx.invalid(format!(
                    "position_ids must be {:?} integers and the caches 2-D",
                    [b, sq]
                )));
            }
            cos.shape[0]
        }
        None => {
            if cos.shape != [b, sq, half] {
                return Err(cx.invalid(format!(
                    "without position_ids the caches must be {:?}",
                    [b, sq, half]
                )));
            }
            0
        }
    };
    let t = ftype(&[x.dtype, cos.dtype]);
    let rnd = |e: &str| round(x.dtype, t, e);
    if x.bytes() > 0 {
        cx.line(format!("memcpy({}, {}, {});", y.expr, x.expr, x.bytes()));
    }
    cx.line(format!(
        "for (size_t b = 0; b < {b}; b++) for (size_t s = 0; s < {sq}; s++) {{"
    ));
    match &pos {
        Some(p) => {
            cx.line(format!(
                "const int64_t pid = (int64_t){};",
                p.load(&format!("b * {sq} + s"))
            ));
            cx.line(format!("const int ok = pid >= 0 && pid < {max_pos};"));
            cx.line(format!("const size_t row = ok ? (size_t)pid * {half} : 0;"));
        }
        None => {
            cx.line("const int ok = 1;");
            cx.line(format!("const size_t row = (b * {sq} + s) * {half};"));
        }
    }
    cx.line(format!("for (size_t h = 0; h < {h}; h++) {{"));
    let base = if four {
        format!("((b * {h} + h) * {sq} + s) * {d}")
    } else {
        format!("(b * {sq} + s) * {} + h * {d}", h * d)
    };
    cx.line(format!("const size_t base = {base};"));
    cx.line(format!("for (size_t k = 0; k < {half}; k++) {{"));
    let (i1, i2) = if op.interleaved {
        ("base + 2 * k", "base + 2 * k + 1")
    } else {
        ("base + k", &*format!("base + k + {half}"))
    };
    let i2 = i2.to_string();
    cx.line(format!(
        "const {t} x1 = ({t}){}, x2 = ({t}){};",
        x.load(i1),
        x.load(&i2)
    ));
    cx.line(format!(
        "const {t} c = ok ? ({t}){} : ({t})NAN, sn = ok ? ({t}){} : ({t})NAN;",
        cos.load("row + k"),
        sin.load("row + k")
    ));
    let re = rnd(&format!("{} - {}", rnd("c * x1"), rnd("sn * x2")));
    let im = rnd(&format!("{} + {}", rnd("sn * x1"), rnd("c * x2")));
    cx.line(y.store(i1, &re));
    cx.line(y.store(&i2, &im));
    cx.close(3);
    Ok(())
}

/// `SwiGLU`: `y = a * sigmoid(alpha * a) * b` elementwise (same shapes).
fn lower_swiglu(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let alpha = f64::from(cx.op::<SwiGlu>()?.alpha);
    let (a, b, y) = (
        cx.input(0)?.clone(),
        cx.input(1)?.clone(),
        cx.output(0)?.clone(),
    );
    need_float(cx, &a, "A")?;
    need_float(cx, &b, "B")?;
    if a.shape != b.shape {
        return Err(cx.invalid(format!("A {:?} and B {:?} differ", a.shape, b.shape)));
    }
    let t = ftype(&[a.dtype, b.dtype]);
    cx.line(format!("for (size_t i = 0; i < {}; i++) {{", y.numel()));
    cx.line(format!("const {t} av = ({t}){};", a.load("i")));
    cx.line(format!(
        "const {t} sg = ({t})1 / (({t})1 + {}(-({t}){} * av));",
        math("exp", t, y.dtype),
        lit(alpha)
    ));
    cx.line(y.store("i", &format!("av * sg * ({t}){}", b.load("i"))));
    cx.line("}");
    Ok(())
}

/// `CausalConvWithState`: causal depthwise 1-D convolution over `(B, C, L)` with weights
/// `(C, 1, K)`, the past state prepended (zeros without one), optional bias and SiLU; the new
/// state is the last `K - 1` positions of the padded input.
fn lower_causal_conv(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let silu = cx.op::<CausalConvWithState>()?.activation != "none";
    let (x, w) = (cx.input(0)?.clone(), cx.input(1)?.clone());
    let bias = cx.opt_input(2).cloned();
    let past = cx.opt_input(3).cloned();
    let y = cx.output(0)?.clone();
    let st = cx.output(1).ok().cloned();
    need_float(cx, &x, "input")?;
    need_float(cx, &w, "weight")?;
    let (b, c, l, k) = match (x.shape.as_slice(), w.shape.as_slice()) {
        (&[b, c, l], &[wc, 1, k]) if wc == c && k > 0 => (b, c, l, k),
        _ => {
            return Err(cx.invalid(format!(
                "input {:?} and weight {:?} must be (B, C, L) and (C, 1, K)",
                x.shape, w.shape
            )))
        }
    };
    if let Some(bt) = &bias {
        need_float(cx, bt, "bias")?;
        if bt.numel() != c {
            return Err(cx.invalid(format!("bias must have {c} values")));
        }
    }
    if let Some(p) = &past {
        need_float(cx, p, "past_state")?;
        if p.shape != [b, c, k - 1] {
            return Err(cx.invalid(format!("past_state must be {:?}", [b, c, k - 1])));
        }
    }
    let t = ftype(&[x.dtype, w.dtype]);
    let km = k - 1;
    let padded = |pos: &str| -> String {
        let cur = x.load(&format!("(bi * {c} + ci) * {l} + ({pos} - {km})"));
        if km == 0 {
            return format!("({t}){cur}");
        }
        let prev = match &past {
            Some(p) => format!(
                "({t}){}",
                p.load(&format!("(bi * {c} + ci) * {km} + ({pos})"))
            ),
            None => format!("({t})0"),
        };
        format!("(({pos}) < {km} ? {prev} : ({t}){cur})")
    };
    let pj = padded("tt + j");
    cx.line(format!(
        "for (size_t bi = 0; bi < {b}; bi++) for (size_t ci = 0; ci < {c}; ci++) {{"
    ));
    cx.line(format!("for (size_t tt = 0; tt < {l}; tt++) {{"));
    let b0 = match &bias {
        Some(bt) => format!("({t}){}", bt.load("ci")),
        None => format!("({t})0"),
    };
    cx.line(format!("{t} s = {b0};"));
    cx.line(format!(
        "for (size_t j = 0; j < {k}; j++) s += ({t}){} * {pj};",
        w.load(&format!("ci * {k} + j"))
    ));
    cx.line(format!("s = {};", round(x.dtype, t, "s")));
    let v = if silu {
        format!("s * (({t})1 / (({t})1 + {}(-s)))", math("exp", t, y.dtype))
    } else {
        "s".to_string()
    };
    cx.line(y.store(&format!("(bi * {c} + ci) * {l} + tt"), &v));
    cx.line("}");
    if let (Some(o), true) = (&st, km > 0) {
        let pl = padded(&format!("{l} + j"));
        cx.line(format!("for (size_t j = 0; j < {km}; j++) {{"));
        cx.line(o.store(&format!("(bi * {c} + ci) * {km} + j"), &pl));
        cx.line("}");
    }
    cx.line("}");
    Ok(())
}

/// `LinearAttention`: per KV head a `(Dk, Dv)` state updated each step (`linear`, `gated`
/// with `exp(decay)`, `delta`/`gated_delta` with `beta`), read by every query head of its
/// group; inputs packed `(B, T, H*D)`.
fn lower_linear_attention(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let op = cx.op::<LinearAttention>()?.clone();
    let (q, k, v) = (
        cx.input(0)?.clone(),
        cx.input(1)?.clone(),
        cx.input(2)?.clone(),
    );
    let past = cx.opt_input(3).cloned();
    let decay = cx.opt_input(4).cloned();
    let beta = cx.opt_input(5).cloned();
    let y = cx.output(0)?.clone();
    let so = cx.output(1).ok().cloned();
    for (t, n) in [(&q, "query"), (&k, "key"), (&v, "value")] {
        need_float(cx, t, n)?;
    }
    let (hq, hk) = (op.q_num_heads, op.kv_num_heads);
    let (b, tl, dk, dv) = match (q.shape.as_slice(), v.shape.as_slice()) {
        (&[b, t, qd], &[vb, vt, vd])
            if hq > 0 && hk > 0 && qd % hq == 0 && vd % hk == 0 && vb == b && vt == t =>
        {
            (b, t, qd / hq, vd / hk)
        }
        _ => {
            return Err(
                cx.invalid("query/value must be (B, T, H*D) divisible by the head counts".into())
            )
        }
    };
    if k.shape != [b, tl, hk * dk] || hq % hk != 0 {
        return Err(cx.invalid(format!("key must be {:?}", [b, tl, hk * dk])));
    }
    let gating = op.update_rule.contains("gated");
    let delta = op.update_rule.contains("delta");
    if gating != decay.is_some() || delta != beta.is_some() {
        return Err(cx.invalid(format!(
            "update_rule '{}' does not match the decay/beta inputs given",
            op.update_rule
        )));
    }
    let dlast = match &decay {
        Some(d) => {
            need_float(cx, d, "decay")?;
            let last = d.shape.last().copied().unwrap_or(0);
            if d.shape.len() != 3 || d.shape[..2] != [b, tl] || (last != hk && last != hk * dk) {
                return Err(cx.invalid(format!("decay must be (B, T, {hk} or {})", hk * dk)));
            }
            last
        }
        None => 0,
    };
    let blast = match &beta {
        Some(bt) => {
            need_float(cx, bt, "beta")?;
            let last = bt.shape.last().copied().unwrap_or(0);
            if bt.shape.len() != 3 || bt.shape[..2] != [b, tl] || (last != hk && last != 1) {
                return Err(cx.invalid(format!("beta must be (B, T, {hk} or 1)")));
            }
            last
        }
        None => 0,
    };
    if let Some(p) = &past {
        need_float(cx, p, "past_state")?;
        if p.shape != [b, hk, dk, dv] {
            return Err(cx.invalid(format!("past_state must be {:?}", [b, hk, dk, dv])));
        }
    }
    // The recurrence runs in double whatever the dtype (the interpreter keeps it in f64).
    let t = "double";
    let scale = if op.scale == 0.0 {
        1.0 / (dk as f64).sqrt()
    } else {
        f64::from(op.scale)
    };
    let ns = b * hk * dk * dv;
    let sbuf = cx.scratch(8 * ns as u64);
    let vbuf = cx.scratch(8 * dv as u64);
    cx.line(format!("{t} *S = ({t} *){sbuf};"));
    cx.line(format!("{t} *vt = ({t} *){vbuf};"));
    match &past {
        Some(p) => cx.line(format!(
            "for (size_t i = 0; i < {ns}; i++) S[i] = ({t}){};",
            p.load("i")
        )),
        None => cx.line(format!("for (size_t i = 0; i < {ns}; i++) S[i] = 0;")),
    }
    cx.line(format!(
        "for (size_t bi = 0; bi < {b}; bi++) for (size_t ti = 0; ti < {tl}; ti++) {{"
    ));
    cx.line(format!("const size_t bt = bi * {tl} + ti;"));
    cx.line(format!("for (size_t h = 0; h < {hk}; h++) {{"));
    cx.line(format!("{t} *Sh = S + (bi * {hk} + h) * {};", dk * dv));
    if let Some(d) = &decay {
        let di = if dlast == hk {
            format!("bt * {hk} + h")
        } else {
            format!("bt * {} + h * {dk} + i", hk * dk)
        };
        cx.line(format!("for (size_t i = 0; i < {dk}; i++) {{"));
        cx.line(format!("const {t} e = exp(({t}){});", d.load(&di)));
        cx.line(format!(
            "for (size_t m = 0; m < {dv}; m++) Sh[i * {dv} + m] *= e;"
        ));
        cx.line("}");
    }
    cx.line(format!(
        "for (size_t m = 0; m < {dv}; m++) vt[m] = ({t}){};",
        v.load(&format!("bt * {} + h * {dv} + m", hk * dv))
    ));
    let kl = |i: &str| {
        format!(
            "({t}){}",
            k.load(&format!("bt * {} + h * {dk} + {i}", hk * dk))
        )
    };
    if let Some(bt) = &beta {
        let bi = if blast == 1 {
            "bt".to_string()
        } else {
            format!("bt * {hk} + h")
        };
        cx.line(format!("const {t} beta = ({t}){};", bt.load(&bi)));
        cx.line(format!("for (size_t m = 0; m < {dv}; m++) {{"));
        cx.line(format!("{t} r = 0;"));
        cx.line(format!(
            "for (size_t i = 0; i < {dk}; i++) r += Sh[i * {dv} + m] * {};",
            kl("i")
        ));
        cx.line("vt[m] = beta * (vt[m] - r);");
        cx.line("}");
    }
    cx.line(format!("for (size_t i = 0; i < {dk}; i++) {{"));
    cx.line(format!("const {t} kv = {};", kl("i")));
    cx.line(format!(
        "for (size_t m = 0; m < {dv}; m++) Sh[i * {dv} + m] += kv * vt[m];"
    ));
    cx.close(2);
    cx.line(format!("for (size_t hqi = 0; hqi < {hq}; hqi++) {{"));
    cx.line(format!(
        "const {t} *Sh = S + (bi * {hk} + hqi / {}) * {};",
        hq / hk,
        dk * dv
    ));
    cx.line(format!("for (size_t m = 0; m < {dv}; m++) {{"));
    cx.line(format!("{t} o = 0;"));
    cx.line(format!(
        "for (size_t i = 0; i < {dk}; i++) o += ({t}){} * Sh[i * {dv} + m];",
        q.load(&format!("bt * {} + hqi * {dk} + i", hq * dk))
    ));
    cx.line(y.store(
        &format!("bt * {} + hqi * {dv} + m", hq * dv),
        &format!("({t}){} * o", lit(scale)),
    ));
    cx.close(3);
    if let Some(o) = &so {
        cx.line(format!("for (size_t i = 0; i < {ns}; i++) {{"));
        cx.line(o.store("i", "S[i]"));
        cx.line("}");
    }
    Ok(())
}

/// `FlexAttention`: softmax(mod(Q K^T * scale)) V over rank-4
/// inputs with GQA, scores and probabilities rounded to the softmax precision (f32 unless
/// the inputs are f64 or `softmax_precision` says otherwise).
fn lower_flex_attention(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let op = cx.op::<FlexAttention>()?;
    let (score_mod, prob_mod) = (op.score_mod.clone(), op.prob_mod.clone());
    let (scale_attr, prec_attr) = (op.scale, op.softmax_precision);
    let (q, k, v) = (
        cx.input(0)?.clone(),
        cx.input(1)?.clone(),
        cx.input(2)?.clone(),
    );
    let y = cx.output(0)?.clone();
    for (t, n) in [(&q, "Q"), (&k, "K"), (&v, "V")] {
        need_float(cx, t, n)?;
    }
    let (qs, ks, vs) = (&q.shape, &k.shape, &v.shape);
    if !FlexAttention::shapes_fit(qs, ks, vs) {
        return Err(cx.invalid(format!("incompatible shapes Q {qs:?}, K {ks:?}, V {vs:?}")));
    }
    let (b, hq, lq, d) = (qs[0], qs[1], qs[2], qs[3]);
    let (hk, lk, dv) = (ks[1], ks[2], vs[3]);
    let scale = scale_attr.map(f64::from).unwrap_or(1.0 / (d as f64).sqrt());
    let prec = match prec_attr {
        Some(p) => i32::try_from(p)
            .ok()
            .and_then(DType::from_onnx_code)
            .filter(|d| d.is_float())
            .ok_or_else(|| cx.unsupported(format!("softmax_precision {p}")))?,
        None if q.dtype == DType::F64 => DType::F64,
        None => DType::F32,
    };
    let t = ftype(&[q.dtype, k.dtype, v.dtype, prec]);
    let rp = |e: &str| round(prec, t, e);
    let tsz = if t == "double" { 8 } else { 4 } as u64;
    let sc = cx.scratch(tsz * lk as u64);
    let yr = cx.scratch(tsz * dv as u64);
    cx.line(format!("{t} *sc = ({t} *){sc};"));
    cx.line(format!("{t} *yrow = ({t} *){yr};"));
    cx.line(format!("for (size_t b = 0; b < {b}; b++) for (size_t h = 0; h < {hq}; h++) for (size_t i = 0; i < {lq}; i++) {{"));
    cx.line(format!("const size_t kh = h / {};", hq / hk));
    cx.line(format!("{t} mx = -({t})INFINITY;"));
    cx.line(format!("for (size_t j = 0; j < {lk}; j++) {{"));
    cx.line(format!("{t} acc = 0;"));
    cx.line(format!(
        "for (size_t x = 0; x < {d}; x++) acc += ({t}){} * ({t}){};",
        q.load(&format!("((b * {hq} + h) * {lq} + i) * {d} + x")),
        k.load(&format!("((b * {hk} + kh) * {lk} + j) * {d} + x"))
    ));
    cx.line(format!(
        "sc[j] = {};",
        rp(&format!("acc * ({t}){}", lit(scale)))
    ));
    let full = [b, hq, lq, lk];
    let mut mods = Vec::new();
    for (g, what) in [(&score_mod, "score_mod"), (&prob_mod, "prob_mod")] {
        mods.push(match g {
            Some(g) => {
                let prefix = cx.fresh(what);
                let m = lower_mod(cx, g, full, prec, t, &prefix, what)?;
                for gl in &m.globals {
                    cx.global(gl);
                }
                Some(m)
            }
            None => None,
        });
    }
    let apply = |cx: &mut LowerCx<'_>, m: &Option<super::flex_mod::ModCode>| {
        if let Some(m) = m {
            cx.line("{");
            cx.line(format!("const {t} {} = sc[j];", super::flex_mod::INPUT));
            for st in &m.stmts {
                cx.line(st);
            }
            cx.line(format!("sc[j] = {};", m.result));
            cx.line("}");
        }
    };
    apply(cx, &mods[0]);
    cx.line("if (sc[j] > mx) mx = sc[j];");
    cx.line("}");
    cx.line(format!("{t} sum = 0;"));
    cx.line(format!(
        "for (size_t j = 0; j < {lk}; j++) {{ sc[j] = mx == -({t})INFINITY ? ({t})0 : {}(sc[j] - mx); sum += sc[j]; }}",
        math("exp", t, prec)
    ));
    cx.line(format!(
        "for (size_t j = 0; j < {lk}; j++) sc[j] = sum > 0 ? {} : ({t})NAN;",
        rp("sc[j] / sum")
    ));
    if mods[1].is_some() {
        cx.line(format!("for (size_t j = 0; j < {lk}; j++) {{"));
        apply(cx, &mods[1]);
        cx.line("}");
    }
    cx.line(format!("for (size_t m = 0; m < {dv}; m++) yrow[m] = 0;"));
    cx.line(format!("for (size_t j = 0; j < {lk}; j++) for (size_t m = 0; m < {dv}; m++) yrow[m] += sc[j] * ({t}){};",
        v.load(&format!("((b * {hk} + kh) * {lk} + j) * {dv} + m"))));
    cx.line(format!("for (size_t m = 0; m < {dv}; m++) {{"));
    cx.line(y.store(
        &format!("((b * {hq} + h) * {lq} + i) * {dv} + m"),
        "yrow[m]",
    ));
    cx.close(2);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::seq_common::e2e::{check, values};
    use crate::backend::cpu::{self, CpuOptions};
    use petasos_ir::builder::GraphBuilder;
    use petasos_ir::op::Attr;
    use petasos_ir::{DType, Graph, Tensor, ValueType};

    fn t(shape: &[usize], seed: u64, dt: DType) -> Tensor {
        let n = shape.iter().product();
        Tensor::from_f32(shape, values(n, seed))
            .and_then(|x| x.cast(dt, false))
            .expect("tensor")
    }

    /// Packed 3-D GQA attention with a KV cache, causal offset, softcap, a float mask
    /// shorter than the keys, and every output (`qk_matmul_output` in `mode`).
    fn gqa_graph(dt: DType, mode: i64, bool_mask: bool) -> Graph {
        let mut b = GraphBuilder::new("attn", 3);
        let q = b.input("q", ValueType::known(dt, &[2, 3, 16]));
        let k = b.input("k", ValueType::known(dt, &[2, 5, 8]));
        let v = b.input("v", ValueType::known(dt, &[2, 5, 12]));
        let mdt = if bool_mask { DType::Bool } else { dt };
        let m = b.input("mask", ValueType::known(mdt, &[3, 6]));
        let pk = b.input("past_k", ValueType::known(dt, &[2, 2, 2, 4]));
        let pv = b.input("past_v", ValueType::known(dt, &[2, 2, 2, 6]));
        let attrs = [
            ("q_num_heads", Attr::Int(4)),
            ("kv_num_heads", Attr::Int(2)),
            ("is_causal", Attr::Int(1)),
            ("softcap", Attr::Float(3.0)),
            ("qk_matmul_output_mode", Attr::Int(mode)),
            ("softmax_precision", Attr::Int(1)),
        ];
        let ins = [q, k, v, m, pk, pv].map(Some);
        let outs = b.node("", "Attention", &ins, &attrs, 4).expect("attention");
        for (i, o) in outs.iter().enumerate() {
            b.output(*o, &format!("out{i}"));
        }
        b.finish().expect("graph")
    }

    fn gqa_inputs(dt: DType, bool_mask: bool) -> Vec<Tensor> {
        let mask = if bool_mask {
            let v: Vec<f32> = values(18, 9).iter().map(|&x| f32::from(x > -1.0)).collect();
            Tensor::from_f32(&[3, 6], v)
                .and_then(|x| x.cast(DType::Bool, false))
                .expect("mask")
        } else {
            t(&[3, 6], 9, dt)
        };
        vec![
            t(&[2, 3, 16], 1, dt),
            t(&[2, 5, 8], 2, dt),
            t(&[2, 5, 12], 3, dt),
            mask,
            t(&[2, 2, 2, 4], 4, dt),
            t(&[2, 2, 2, 6], 5, dt),
        ]
    }

    #[test]
    fn gqa_cache_causal_softcap_matches_interpreter() {
        for (dt, mode, bm) in [
            (DType::F32, 2, false),
            (DType::F32, 0, true),
            (DType::F16, 3, true),
            (DType::BF16, 1, false),
            (DType::F64, 3, false),
        ] {
            let name = format!("gqa_{dt}_{mode}_{bm}");
            check(&name, &gqa_graph(dt, mode, bm), gqa_inputs(dt, bm));
        }
    }

    #[test]
    fn rotary_and_swiglu_match_interpreter() {
        let mut b = GraphBuilder::new("rope", 1);
        let x = b.input("x", ValueType::known(DType::F32, &[2, 3, 12]));
        let c = b.input("cos", ValueType::known(DType::F32, &[5, 2]));
        let s = b.input("sin", ValueType::known(DType::F32, &[5, 2]));
        let p = b.input("pos", ValueType::known(DType::I64, &[2, 3]));
        let attrs = [
            ("num_heads", Attr::Int(2)),
            ("rotary_embedding_dim", Attr::Int(4)),
            ("interleaved", Attr::Int(1)),
        ];
        let y = b
            .node(
                "",
                "RotaryEmbedding",
                &[Some(x), Some(c), Some(s), Some(p)],
                &attrs,
                1,
            )
            .expect("rope")[0];
        let w = b
            .op("SwiGLU", &[y, x], &[("alpha", Attr::Float(1.5))])
            .expect("swiglu");
        b.output(y, "y");
        b.output(w, "w");
        let g = b.finish().expect("graph");
        let pos = Tensor::from_i64(&[2, 3], vec![0, 1, 4, 2, 3, 0]).expect("pos");
        let ins = vec![
            t(&[2, 3, 12], 11, DType::F32),
            t(&[5, 2], 12, DType::F32),
            t(&[5, 2], 13, DType::F32),
            pos,
        ];
        check("rope", &g, ins);
    }

    #[test]
    fn nonpad_with_cache_fails_the_compile_clearly() {
        let mut b = GraphBuilder::new("bad", 1);
        let dt = DType::F32;
        let q = b.input("q", ValueType::known(dt, &[1, 2, 3, 4]));
        let k = b.input("k", ValueType::known(dt, &[1, 2, 3, 4]));
        let v = b.input("v", ValueType::known(dt, &[1, 2, 3, 4]));
        let pk = b.input("pk", ValueType::known(dt, &[1, 2, 1, 4]));
        let pv = b.input("pv", ValueType::known(dt, &[1, 2, 1, 4]));
        let n = b.input("n", ValueType::known(DType::I64, &[1]));
        let ins = [Some(q), Some(k), Some(v), None, Some(pk), Some(pv), Some(n)];
        let y = b.node("", "Attention", &ins, &[], 1).expect("attention")[0];
        b.output(y, "y");
        let mut g = b.finish().expect("graph");
        let e = cpu::generate(&mut g, &CpuOptions::default())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("Attention") && e.contains("nonpad_kv_seqlen"),
            "unexpected result: {e:?}"
        );
    }
}
