//! Recurrent lowerings: `RNN`, `GRU` and `LSTM` (every direction, activation function with
//! its alpha/beta, clip, `sequence_lens`, initial states, peepholes, `input_forget`,
//! `linear_before_reset`, both layouts).
//!
//! One C loop per direction and batch entry walks the sequence as the interpreter does
//! (`ir/src/ops/recurrent/`): gates computed in double, the new state rounded to the dtype
//! after every step, `Y` zero past each entry's length, `Y_h`/`Y_c` the last state. A
//! `sequence_lens` value outside `0..=seq` (an interpreter error) is clamped into that range.

use super::seq_common::{lit, need_float, round};
use super::{CTensor, LowerCx, LowerError, Registry};
use petasos_ir::ops::recurrent::{Gru, Lstm, Rnn, RnnAttrs};

/// Registers this family's lowerings.
pub fn register(r: &mut Registry) {
    r.op("RNN", lower_rnn);
    r.op("GRU", lower_gru);
    r.op("LSTM", lower_lstm);
}

/// The cell kind with its extra attribute.
#[derive(Clone, Copy, PartialEq)]
enum Cell {
    Rnn,
    Gru { linear_before_reset: bool },
    Lstm { input_forget: bool },
}

impl Cell {
    fn gates(self) -> usize {
        match self {
            Cell::Rnn => 1,
            Cell::Gru { .. } => 3,
            Cell::Lstm { .. } => 4,
        }
    }

    fn defaults(self) -> &'static [&'static str] {
        match self {
            Cell::Rnn => &["Tanh"],
            Cell::Gru { .. } => &["Sigmoid", "Tanh"],
            Cell::Lstm { .. } => &["Sigmoid", "Tanh", "Tanh"],
        }
    }
}

fn lower_rnn(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let at = cx.op::<Rnn>()?.common.clone();
    lower_recurrent(cx, &at, Cell::Rnn)
}

fn lower_gru(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let op = cx.op::<Gru>()?;
    let (at, lbr) = (op.common.clone(), op.linear_before_reset);
    lower_recurrent(
        cx,
        &at,
        Cell::Gru {
            linear_before_reset: lbr,
        },
    )
}

fn lower_lstm(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let op = cx.op::<Lstm>()?;
    let (at, coupled) = (op.common.clone(), op.input_forget);
    lower_recurrent(
        cx,
        &at,
        Cell::Lstm {
            input_forget: coupled,
        },
    )
}

/// A statement computing activation `name` (lower case) of the double variable `v` in place.
pub fn act_stmt(name: &str, alpha: f64, beta: f64, v: &str) -> Option<String> {
    let (a, b) = (lit(alpha), lit(beta));
    Some(match name {
        "relu" => format!("{v} = fmax({v}, 0.0);"),
        "tanh" => format!("{v} = tanh({v});"),
        "sigmoid" => format!("{v} = 1.0 / (1.0 + exp(-{v}));"),
        "affine" => format!("{v} = {a} * {v} + {b};"),
        "leakyrelu" => format!("{v} = {v} >= 0.0 ? {v} : {a} * {v};"),
        "thresholdedrelu" => format!("{v} = {v} > {a} ? {v} : 0.0;"),
        "scaledtanh" => format!("{v} = {a} * tanh({b} * {v});"),
        "hardsigmoid" => {
            format!("{v} = {a} * {v} + {b}; {v} = {v} < 0.0 ? 0.0 : ({v} > 1.0 ? 1.0 : {v});")
        }
        "elu" => format!("{v} = {v} >= 0.0 ? {v} : {a} * (exp({v}) - 1.0);"),
        "softsign" => format!("{v} = {v} / (1.0 + fabs({v}));"),
        "softplus" => format!("{v} = {v} > 30.0 ? {v} : log1p(exp({v}));"),
        _ => return None,
    })
}

/// The shared lowering of the three cells.
fn lower_recurrent(cx: &mut LowerCx<'_>, at: &RnnAttrs, cell: Cell) -> Result<(), LowerError> {
    let (x, w, r) = (
        cx.input(0)?.clone(),
        cx.input(1)?.clone(),
        cx.input(2)?.clone(),
    );
    let bias = cx.opt_input(3).cloned();
    let lens = cx.opt_input(4).cloned();
    let h0 = cx.opt_input(5).cloned();
    let (c0, peep) = match cell {
        Cell::Lstm { .. } => (cx.opt_input(6).cloned(), cx.opt_input(7).cloned()),
        _ => (None, None),
    };
    for (t, n) in [(&x, "X"), (&w, "W"), (&r, "R")] {
        need_float(cx, t, n)?;
    }
    if x.rank() != 3 || w.rank() != 3 || r.rank() != 3 {
        return Err(cx.invalid("X, W and R must be rank 3".into()));
    }
    let l1 = at.layout == 1;
    let (s, b, ni) = if l1 {
        (x.shape[1], x.shape[0], x.shape[2])
    } else {
        (x.shape[0], x.shape[1], x.shape[2])
    };
    let nd = at.num_directions();
    let h = r.shape[2];
    if at
        .hidden_size
        .is_some_and(|v| usize::try_from(v).ok() != Some(h))
    {
        return Err(cx.invalid(format!(
            "hidden_size {:?} does not match R {:?}",
            at.hidden_size, r.shape
        )));
    }
    let g = cell.gates();
    let gh = g * h;
    if w.shape != [nd, gh, ni] || r.shape != [nd, gh, h] {
        return Err(cx.invalid(format!(
            "W {:?} and R {:?} must be {:?} and {:?}",
            w.shape,
            r.shape,
            [nd, gh, ni],
            [nd, gh, h]
        )));
    }
    if let Some(bt) = &bias {
        need_float(cx, bt, "B")?;
        if bt.shape != [nd, 2 * gh] {
            return Err(cx.invalid(format!("B must be {:?}", [nd, 2 * gh])));
        }
    }
    if let Some(l) = &lens {
        if !l.dtype.is_int() || l.numel() != b {
            return Err(cx.invalid(format!("sequence_lens must hold {b} integers")));
        }
    }
    let state_shape = if l1 { [b, nd, h] } else { [nd, b, h] };
    for (st, n) in [(&h0, "initial_h"), (&c0, "initial_c")] {
        if let Some(st) = st {
            need_float(cx, st, n)?;
            if st.shape != state_shape {
                return Err(cx.invalid(format!("{n} must be {state_shape:?}")));
            }
        }
    }
    if let Some(p) = &peep {
        need_float(cx, p, "P")?;
        if p.shape != [nd, 3 * h] {
            return Err(cx.invalid(format!("P must be {:?}", [nd, 3 * h])));
        }
    }
    let acts = at
        .resolve(cell.defaults())
        .map_err(|e| cx.invalid(e.to_string()))?;
    let mut act_code: Vec<Vec<(String, f64, f64)>> = Vec::new();
    for dir in &acts {
        let mut v = Vec::new();
        for a in dir {
            if act_stmt(&a.name, a.alpha, a.beta, "v").is_none() {
                return Err(cx.unsupported(format!("activation '{}'", a.name)));
            }
            v.push((a.name.clone(), a.alpha, a.beta));
        }
        act_code.push(v);
    }
    let outs: Vec<Option<CTensor>> = (0..3).map(|i| cx.output(i).ok().cloned()).collect();
    let dt = x.dtype;
    let rnd = |e: &str| round(dt, "double", e);
    // Scratch: h, c, new h, new c, W x (+ Wb), R h (+ Rb), gated h (GRU).
    let hb = cx.scratch(8 * h as u64);
    let cb = cx.scratch(8 * h as u64);
    let nhb = cx.scratch(8 * h as u64);
    let ncb = cx.scratch(8 * h as u64);
    let wxb = cx.scratch(8 * gh as u64);
    let rhb = cx.scratch(8 * gh as u64);
    let gtb = cx.scratch(8 * h as u64);
    for (n, e) in [
        ("hs", hb),
        ("cs", cb),
        ("nh", nhb),
        ("nc", ncb),
        ("wx", wxb),
        ("rh", rhb),
        ("gt", gtb),
    ] {
        cx.line(format!("double *{n} = (double *){e};"));
    }
    cx.line("(void)cs; (void)nc; (void)gt;");
    if let Some(Some(y)) = outs.first() {
        if y.bytes() > 0 {
            cx.line(format!("memset({}, 0, {});", y.expr, y.bytes()));
        }
    }
    let xi = if l1 {
        format!("(bi * {s} + t) * {ni} + i")
    } else {
        format!("(t * {b} + bi) * {ni} + i")
    };
    let si = if l1 {
        format!("(bi * {nd} + d) * {h} + k")
    } else {
        format!("(d * {b} + bi) * {h} + k")
    };
    let yi = if l1 {
        format!("((bi * {s} + t) * {nd} + d) * {h} + k")
    } else {
        format!("((t * {nd} + d) * {b} + bi) * {h} + k")
    };
    let rev_only = at.direction == "reverse";
    for (d, dir_acts) in act_code.iter().enumerate() {
        let reverse = rev_only || d == 1;
        cx.line(format!(
            "/* direction {d}{} */",
            if reverse { " (reverse)" } else { "" }
        ));
        cx.line(format!("for (size_t bi = 0; bi < {b}; bi++) {{"));
        cx.line(format!("const size_t d = {d};"));
        match &lens {
            Some(l) => {
                cx.line(format!("int64_t len0 = (int64_t){};", l.load("bi")));
                cx.line(format!(
                    "const size_t len = len0 < 0 ? 0 : (len0 > {s} ? {s} : (size_t)len0);"
                ));
            }
            None => cx.line(format!("const size_t len = {s};")),
        }
        cx.line(format!("for (size_t k = 0; k < {h}; k++) {{"));
        match &h0 {
            Some(t) => cx.line(format!("hs[k] = (double){};", t.load(&si))),
            None => cx.line("hs[k] = 0;"),
        }
        match &c0 {
            Some(t) => cx.line(format!("cs[k] = (double){};", t.load(&si))),
            None => cx.line("cs[k] = 0;"),
        }
        cx.line("}");
        cx.line("for (size_t n = 0; n < len; n++) {");
        cx.line(format!(
            "const size_t t = {};",
            if reverse { "len - 1 - n" } else { "n" }
        ));
        // W x + Wb for every gate row.
        cx.line(format!("for (size_t gk = 0; gk < {gh}; gk++) {{"));
        let wb = match &bias {
            Some(bt) => format!("(double){}", bt.load(&format!("d * {} + gk", 2 * gh))),
            None => "0.0".into(),
        };
        cx.line("double acc = 0;");
        cx.line(format!(
            "for (size_t i = 0; i < {ni}; i++) acc += (double){} * (double){};",
            w.load(&format!("(d * {gh} + gk) * {ni} + i")),
            x.load(&xi)
        ));
        cx.line(format!("wx[gk] = acc + {wb};"));
        cx.line("}");
        let rows = |cx: &mut LowerCx<'_>, lo: usize, hi: usize, src: &str| {
            cx.line(format!("for (size_t gk = {lo}; gk < {hi}; gk++) {{"));
            let rb = match &bias {
                Some(bt) => format!(
                    "(double){}",
                    bt.load(&format!("d * {} + {gh} + gk", 2 * gh))
                ),
                None => "0.0".into(),
            };
            cx.line("double acc = 0;");
            cx.line(format!(
                "for (size_t i = 0; i < {h}; i++) acc += (double){} * {src}[i];",
                r.load(&format!("(d * {gh} + gk) * {h} + i"))
            ));
            cx.line(format!("rh[gk] = acc + {rb};"));
            cx.line("}");
        };
        let clip = |v: &str| match at.clip {
            Some(c) => {
                let c = lit(f64::from(c));
                format!("{v} = {v} < -{c} ? -{c} : ({v} > {c} ? {c} : {v});")
            }
            None => String::new(),
        };
        let act = |i: usize, v: &str| -> String {
            let (n, a, b) = &dir_acts[i];
            act_stmt(n, *a, *b, v).unwrap_or_default()
        };
        match cell {
            Cell::Rnn => {
                rows(cx, 0, gh, "hs");
                cx.line(format!("for (size_t k = 0; k < {h}; k++) {{"));
                cx.line("double v = wx[k] + rh[k];");
                cx.line(clip("v"));
                cx.line(act(0, "v"));
                cx.line("nh[k] = v;");
                cx.line("}");
            }
            Cell::Gru {
                linear_before_reset,
            } => {
                rows(cx, 0, 2 * h, "hs");
                // z into nc, r into gt (r * h when the reset comes first).
                cx.line(format!("for (size_t k = 0; k < {h}; k++) {{"));
                cx.line("double v = wx[k] + rh[k];");
                cx.line(clip("v"));
                cx.line(act(0, "v"));
                cx.line("nc[k] = v;");
                cx.line(format!("double u = wx[{h} + k] + rh[{h} + k];"));
                cx.line(clip("u"));
                cx.line(act(0, "u"));
                cx.line("gt[k] = u;");
                cx.line("}");
                if linear_before_reset {
                    rows(cx, 2 * h, 3 * h, "hs");
                    cx.line(format!("for (size_t k = 0; k < {h}; k++) {{"));
                    cx.line(format!(
                        "double v = wx[{} + k] + gt[k] * rh[{} + k];",
                        2 * h,
                        2 * h
                    ));
                } else {
                    cx.line(format!("for (size_t k = 0; k < {h}; k++) gt[k] *= hs[k];"));
                    rows(cx, 2 * h, 3 * h, "gt");
                    cx.line(format!("for (size_t k = 0; k < {h}; k++) {{"));
                    cx.line(format!("double v = wx[{} + k] + rh[{} + k];", 2 * h, 2 * h));
                }
                cx.line(clip("v"));
                cx.line(act(1, "v"));
                cx.line("nh[k] = (1.0 - nc[k]) * v + nc[k] * hs[k];");
                cx.line("}");
            }
            Cell::Lstm { input_forget } => {
                rows(cx, 0, gh, "hs");
                let pp = |gate: usize| match &peep {
                    Some(p) => format!(
                        "(double){}",
                        p.load(&format!("d * {} + {} + k", 3 * h, gate * h))
                    ),
                    None => "0.0".into(),
                };
                cx.line(format!("for (size_t k = 0; k < {h}; k++) {{"));
                cx.line(format!("double ig = wx[k] + rh[k] + {} * cs[k];", pp(0)));
                cx.line(clip("ig"));
                cx.line(act(0, "ig"));
                if input_forget {
                    cx.line("double fg = 1.0 - ig;");
                } else {
                    cx.line(format!(
                        "double fg = wx[{0} + k] + rh[{0} + k] + {1} * cs[k];",
                        2 * h,
                        pp(2)
                    ));
                    cx.line(clip("fg"));
                    cx.line(act(0, "fg"));
                }
                cx.line(format!("double cg = wx[{0} + k] + rh[{0} + k];", 3 * h));
                cx.line(clip("cg"));
                cx.line(act(1, "cg"));
                cx.line("const double c2 = fg * cs[k] + ig * cg;");
                cx.line("nc[k] = c2;");
                cx.line(format!(
                    "double og = wx[{h} + k] + rh[{h} + k] + {} * c2;",
                    pp(1)
                ));
                cx.line(clip("og"));
                cx.line(act(0, "og"));
                cx.line("double hc = c2;");
                cx.line(act(2, "hc"));
                cx.line("nh[k] = og * hc;");
                cx.line("}");
            }
        }
        cx.line(format!("for (size_t k = 0; k < {h}; k++) {{"));
        cx.line(format!("hs[k] = {};", rnd("nh[k]")));
        if matches!(cell, Cell::Lstm { .. }) {
            cx.line(format!("cs[k] = {};", rnd("nc[k]")));
        }
        if let Some(Some(y)) = outs.first() {
            cx.line(y.store(&yi, "hs[k]"));
        }
        cx.close(2);
        cx.line(format!("for (size_t k = 0; k < {h}; k++) {{"));
        if let Some(Some(yh)) = outs.get(1) {
            cx.line(yh.store(&si, "hs[k]"));
        }
        if let Some(Some(yc)) = outs.get(2) {
            cx.line(yc.store(&si, "cs[k]"));
        }
        cx.close(2);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_interpreter_activation_has_c() {
        for n in petasos_ir::ops::recurrent::ACTIVATIONS {
            let s = act_stmt(n, 0.5, 2.0, "v");
            assert!(s.as_deref().is_some_and(|s| s.starts_with("v = ")), "{n}");
        }
        assert!(act_stmt("gelu", 0.0, 0.0, "v").is_none());
        assert_eq!(
            act_stmt("affine", 0.5, 2.0, "v").as_deref(),
            Some("v = 0.5 * v + 2.0;")
        );
    }
}

#[cfg(test)]
mod e2e_tests {
    use super::super::seq_common::e2e::{check, values};
    use petasos_ir::builder::GraphBuilder;
    use petasos_ir::op::Attr;
    use petasos_ir::{DType, Tensor, ValueType};

    fn t(shape: &[usize], seed: u64) -> Tensor {
        let n = shape.iter().product();
        Tensor::from_f32(shape, values(n, seed)).expect("tensor")
    }

    /// Bidirectional, batch-major LSTM with lengths, initial states, peepholes, clip and
    /// parametrised activations; and a reverse GRU with linear_before_reset.
    #[test]
    fn lstm_and_gru_variants_match_interpreter() {
        let (s, b, i, h) = (4, 3, 5, 6);
        let mut g = GraphBuilder::new("rnn", 2);
        let x = g.input("x", ValueType::known(DType::F32, &[b, s, i]));
        let lens = g.input("lens", ValueType::known(DType::I32, &[b]));
        let w = g.input("w", ValueType::known(DType::F32, &[2, 4 * h, i]));
        let r = g.input("r", ValueType::known(DType::F32, &[2, 4 * h, h]));
        let bias = g.input("b", ValueType::known(DType::F32, &[2, 8 * h]));
        let h0 = g.input("h0", ValueType::known(DType::F32, &[b, 2, h]));
        let c0 = g.input("c0", ValueType::known(DType::F32, &[b, 2, h]));
        let p = g.input("p", ValueType::known(DType::F32, &[2, 3 * h]));
        let acts = [
            "HardSigmoid",
            "Tanh",
            "Softsign",
            "Sigmoid",
            "Elu",
            "ScaledTanh",
        ]
        .map(String::from)
        .to_vec();
        let attrs = [
            ("direction", Attr::Str("bidirectional".into())),
            ("layout", Attr::Int(1)),
            ("hidden_size", Attr::Int(h as i64)),
            ("clip", Attr::Float(2.5)),
            ("activations", Attr::Strs(acts)),
            ("activation_alpha", Attr::Floats(vec![0.3, 0.9, 1.1])),
            ("activation_beta", Attr::Floats(vec![0.4, 0.7])),
        ];
        let ins = [x, w, r, bias, lens, h0, c0, p].map(Some);
        let outs = g.node("", "LSTM", &ins, &attrs, 3).expect("lstm");
        for (k, o) in outs.iter().enumerate() {
            g.output(*o, &format!("lstm{k}"));
        }
        let gw = g.input("gw", ValueType::known(DType::F32, &[1, 3 * h, i]));
        let gr = g.input("gr", ValueType::known(DType::F32, &[1, 3 * h, h]));
        let gattrs = [
            ("direction", Attr::Str("reverse".into())),
            ("hidden_size", Attr::Int(h as i64)),
            ("linear_before_reset", Attr::Int(1)),
        ];
        let xt = g.input("xt", ValueType::known(DType::F32, &[s, b, i]));
        let gins = [Some(xt), Some(gw), Some(gr), None, Some(lens)];
        let gouts = g.node("", "GRU", &gins, &gattrs, 2).expect("gru");
        for (k, o) in gouts.iter().enumerate() {
            g.output(*o, &format!("gru{k}"));
        }
        let graph = g.finish().expect("graph");
        let lens_t = Tensor::from_i64(&[b], vec![4, 0, 2])
            .and_then(|x| x.cast(DType::I32, false))
            .expect("lens");
        let ins = vec![
            t(&[b, s, i], 1),
            lens_t,
            t(&[2, 4 * h, i], 2),
            t(&[2, 4 * h, h], 3),
            t(&[2, 8 * h], 4),
            t(&[b, 2, h], 5),
            t(&[b, 2, h], 6),
            t(&[2, 3 * h], 7),
            t(&[1, 3 * h, i], 8),
            t(&[1, 3 * h, h], 9),
            t(&[s, b, i], 10),
        ];
        check("rnn", &graph, ins);
    }
}
