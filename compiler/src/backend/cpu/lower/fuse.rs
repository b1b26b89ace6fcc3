//! Epilogue fusion for the NN kernels: `Conv` / `ConvTranspose` / `Gemm` / `MatMul` /
//! `BatchNormalization` -> [`Add` of a residual of the output's shape] -> [one activation:
//! `Relu`, `Clip`, `LeakyRelu`, `Sigmoid`, `HardSigmoid`, `HardSwish`, `Tanh`].
//!
//! [`fuse_epilogue`] is the fusion rule (registered for each anchor by `nn::register`);
//! [`Epilogue::of`] reads the fused chain back in a lowering, and gives the C of the
//! epilogue two ways: a `pt_epilogue` struct for the rt kernels ([`Epilogue::pt_struct`]) and
//! an inline expression for generated loops ([`Epilogue::apply`]).
//!
//! Contract: a lowering of an anchor registered with this rule must write the kernel's final
//! output ([`Epilogue::out`]) with the epilogue applied; intermediate outputs of the chain
//! have no other reader (the rule only takes sole users) and are not written.

use super::{CTensor, FuseCx, LowerCx, LowerError};
use petasos_ir::graph::Graph;
use petasos_ir::graph::Node;
use petasos_ir::op::Attr;
use petasos_ir::DType;
use petgraph::stable_graph::NodeIndex;

/// An activation the epilogue applies last.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Act {
    None,
    Relu,
    /// `min(max(x, lo), hi)` (infinite when unbounded).
    Clip(f32, f32),
    LeakyRelu(f32),
    Sigmoid,
    /// `clamp(alpha * x + beta, 0, 1)`.
    HardSigmoid(f32, f32),
    HardSwish,
    Tanh,
}

/// A constant scalar bound of `Clip` input `slot` (`Ok(None)`: absent; `Err`: not constant).
fn clip_bound(g: &Graph, n: NodeIndex, slot: usize) -> Result<Option<f32>, ()> {
    let Some(v) = g.node_inputs(n).get(slot).copied().flatten() else {
        return Ok(None);
    };
    let c = g.constant(v.node).ok_or(())?;
    if c.numel() != 1 {
        return Err(());
    }
    let t = c.to_tensor().map_err(|_| ())?;
    t.scalar_f64().map(|x| Some(x as f32)).map_err(|_| ())
}

/// Float attribute `name` of `node` (as the op exports it), if present.
pub fn attr_f(node: &Node, name: &str) -> Option<f32> {
    node.op.attrs().into_iter().find_map(|(k, v)| match v {
        Attr::Float(f) if k == name => Some(f),
        _ => None,
    })
}

/// Int attribute `name` of `node`, if present.
pub fn attr_i(node: &Node, name: &str) -> Option<i64> {
    node.op.attrs().into_iter().find_map(|(k, v)| match v {
        Attr::Int(i) if k == name => Some(i),
        _ => None,
    })
}

/// The activation node `n` computes, if it is one the epilogue supports.
pub fn act_of(g: &Graph, n: NodeIndex) -> Option<Act> {
    let node = g.g.node_weight(n)?;
    Some(match node.op.op_type() {
        "Relu" => Act::Relu,
        "Sigmoid" => Act::Sigmoid,
        "Tanh" => Act::Tanh,
        "HardSwish" => Act::HardSwish,
        "Clip" => {
            let lo = clip_bound(g, n, 1).ok()?.or(attr_f(node, "min"));
            let hi = clip_bound(g, n, 2).ok()?.or(attr_f(node, "max"));
            Act::Clip(lo.unwrap_or(f32::NEG_INFINITY), hi.unwrap_or(f32::INFINITY))
        }
        "LeakyRelu" => Act::LeakyRelu(attr_f(node, "alpha").unwrap_or(0.01)),
        "HardSigmoid" => Act::HardSigmoid(
            attr_f(node, "alpha").unwrap_or(0.2),
            attr_f(node, "beta").unwrap_or(0.5),
        ),
        _ => return None,
    })
}

/// The type of value `n`'s output 0, if static.
fn out_type(g: &Graph, n: NodeIndex) -> Option<(DType, Vec<u64>)> {
    let t = &g.g.node_weight(n)?.outputs.first()?.ty;
    let s = t
        .shape
        .as_ref()?
        .iter()
        .map(|d| d.known())
        .collect::<Option<Vec<u64>>>()?;
    Some((t.dtype, s))
}

/// The fusion rule: the anchor, then an `Add` of a tensor of exactly the anchor's output type
/// (a residual), then one supported activation. Only float outputs are fused.
pub fn fuse_epilogue(cx: &FuseCx<'_>) -> Vec<NodeIndex> {
    let g = cx.g;
    let mut chain = Vec::new();
    let Some((dt, shape)) = out_type(g, cx.anchor) else {
        return chain;
    };
    if !dt.is_float() {
        return chain;
    }
    let mut cur = cx.anchor;
    if let Some((u, slot)) = cx.sole_user(cur) {
        if cx.op_type(u) == "Add" {
            let other = g.node_inputs(u).get(1 - slot.min(1)).copied().flatten();
            let ok = other.is_some_and(|o| {
                o.node != cur
                    && g.value_type(o).is_some_and(|t| {
                        t.dtype == dt
                            && t.shape.as_ref().is_some_and(|s| {
                                s.len() == shape.len()
                                    && s.iter().zip(&shape).all(|(d, &e)| d.known() == Some(e))
                            })
                    })
            }) && out_type(g, u).is_some_and(|(d, s)| d == dt && s == shape);
            if ok && slot <= 1 {
                chain.push(u);
                cur = u;
            }
        }
    }
    if let Some((u, 0)) = cx.sole_user(cur) {
        if act_of(g, u).is_some() && out_type(g, u).is_some_and(|(d, s)| d == dt && s == shape) {
            chain.push(u);
        }
    }
    chain
}

/// The fused chain of a kernel, as a lowering uses it.
#[derive(Clone, Debug)]
pub struct Epilogue {
    /// Added before the activation; laid out like the output.
    pub residual: Option<CTensor>,
    pub act: Act,
    /// The kernel's final output (the last node's output 0).
    pub out: CTensor,
}

impl Epilogue {
    /// Reads the fused nodes after the anchor (see [`fuse_epilogue`]).
    pub fn of(cx: &LowerCx<'_>) -> Result<Epilogue, LowerError> {
        let nodes = cx.nodes().to_vec();
        let mut ep = Epilogue {
            residual: None,
            act: Act::None,
            out: cx.output(0)?.clone(),
        };
        for (k, &n) in nodes.iter().enumerate().skip(1) {
            let prev = nodes[k - 1];
            let node = cx.node_at(k)?;
            if node.op.op_type() == "Add" && ep.residual.is_none() && ep.act == Act::None {
                let ins = cx.g.node_inputs(n);
                let slot = ins
                    .iter()
                    .position(|v| v.is_some_and(|v| v.node != prev))
                    .ok_or_else(|| cx.invalid("fused Add has no residual operand".into()))?;
                ep.residual = Some(cx.input_of(k, slot)?.clone());
            } else if let Some(a) = act_of(cx.g, n) {
                if ep.act != Act::None {
                    return Err(cx.invalid("two fused activations".into()));
                }
                ep.act = a;
            } else {
                return Err(cx.invalid(format!(
                    "internal: unexpected fused op {}",
                    node.op.op_type()
                )));
            }
            ep.out = cx.output_of(k, 0)?.clone();
        }
        Ok(ep)
    }

    /// Whether the epilogue does anything.
    pub fn is_empty(&self) -> bool {
        self.residual.is_none() && self.act == Act::None
    }

    /// `PT_ACT_*`, lo, hi of the rt kernels' epilogue.
    pub fn pt_act(&self) -> (&'static str, f32, f32) {
        match self.act {
            Act::None => ("PT_ACT_NONE", 0.0, 0.0),
            Act::Relu => ("PT_ACT_RELU", 0.0, 0.0),
            Act::Clip(lo, hi) => ("PT_ACT_CLIP", lo, hi),
            Act::LeakyRelu(a) => ("PT_ACT_LEAKY_RELU", a, 0.0),
            Act::Sigmoid => ("PT_ACT_SIGMOID", 0.0, 0.0),
            Act::HardSigmoid(a, b) => ("PT_ACT_HARDSIGMOID", a, b),
            Act::HardSwish => ("PT_ACT_HARDSWISH", 0.0, 0.0),
            Act::Tanh => ("PT_ACT_TANH", 0.0, 0.0),
        }
    }

    /// A C statement declaring `pt_epilogue {var}` with `bias` (a `const float *` expression
    /// or `NULL`) and `residual` (an expression, `NULL` for none; usually this epilogue's
    /// residual pointer, possibly offset).
    pub fn pt_struct(&self, var: &str, bias: &str, residual: &str) -> String {
        let (act, lo, hi) = self.pt_act();
        format!(
            "pt_epilogue {var} = {{{act}, {}, {}, {bias}, {residual}}};",
            cfloat(lo),
            cfloat(hi)
        )
    }

    /// A C expression (in the output's compute type) of the epilogue applied to `v`, the
    /// anchor's value of element `idx` (already rounded to the output dtype). The residual
    /// sum is rounded to the dtype before the activation, as the interpreter does.
    pub fn apply(&self, v: &str, idx: &str) -> String {
        let t = self.out.compute_type();
        let mut e = v.to_string();
        if let Some(r) = &self.residual {
            e = round(self.out.dtype, &format!("({e}) + {}", r.load(idx)));
        }
        act_expr(self.act, &e, t)
    }
}

/// A C float literal (infinities as `INFINITY`).
pub fn cfloat(v: f32) -> String {
    if v.is_infinite() {
        if v > 0.0 {
            "INFINITY".into()
        } else {
            "-INFINITY".into()
        }
    } else if v.is_nan() {
        "NAN".into()
    } else {
        format!("{v:?}f")
    }
}

/// `e` (compute type) rounded to `dtype` and back (f16 / bf16 through their storage).
pub fn round(dtype: DType, e: &str) -> String {
    match dtype {
        DType::F16 => format!("pt_h2f(pt_f2h((float)({e})))"),
        DType::BF16 => format!("pt_bf2f(pt_f2bf((float)({e})))"),
        DType::F32 => format!("(float)({e})"),
        _ => format!("({e})"),
    }
}

/// The activation `a` of `v` in C type `t` (`float` or `double`), as the interpreter
/// computes it.
pub fn act_expr(a: Act, v: &str, t: &str) -> String {
    let f = |x: f32| -> String {
        if t == "double" {
            format!("(double){}", cfloat(x))
        } else {
            cfloat(x)
        }
    };
    let (exp, tanh) = if t == "double" {
        ("exp", "tanh")
    } else {
        ("expf", "tanhf")
    };
    match a {
        Act::None => v.to_string(),
        Act::Relu => format!("pt_relu_{t}({v})"),
        Act::Clip(lo, hi) => format!("pt_clip_{t}({v}, {}, {})", f(lo), f(hi)),
        Act::LeakyRelu(al) => format!("pt_leaky_{t}({v}, {})", f(al)),
        Act::Sigmoid => format!("pt_sigmoid_{t}({v})"),
        Act::HardSigmoid(al, b) => format!("pt_clip_{t}({} * ({v}) + {}, 0, 1)", f(al), f(b)),
        Act::HardSwish => format!("pt_hswish_{t}({v})"),
        Act::Tanh => {
            let _ = exp;
            format!("{tanh}({v})")
        }
    }
}

/// File-scope helpers used by [`act_expr`] (emitted once per kernel that needs them; all
/// `static inline`, guarded so that repeated emission is harmless).
pub const ACT_HELPERS: &str = r#"#ifndef PT_NN_ACT_HELPERS
#define PT_NN_ACT_HELPERS
static inline float pt_relu_float(float v) { return v > 0.0f ? v : 0.0f; }
static inline double pt_relu_double(double v) { return v > 0.0 ? v : 0.0; }
static inline float pt_clip_float(float v, float lo, float hi) { return v < lo ? lo : (v > hi ? hi : v); }
static inline double pt_clip_double(double v, double lo, double hi) { return v < lo ? lo : (v > hi ? hi : v); }
static inline float pt_leaky_float(float v, float a) { return v < 0.0f ? a * v : v; }
static inline double pt_leaky_double(double v, double a) { return v < 0.0 ? a * v : v; }
static inline float pt_sigmoid_float(float v) { if (v >= 0.0f) return 1.0f / (1.0f + expf(-v)); float e = expf(v); return e / (1.0f + e); }
static inline double pt_sigmoid_double(double v) { if (v >= 0.0) return 1.0 / (1.0 + exp(-v)); double e = exp(v); return e / (1.0 + e); }
static inline float pt_hswish_float(float v) { return v * pt_clip_float(v / 6.0f + 0.5f, 0.0f, 1.0f); }
static inline double pt_hswish_double(double v) { return v * pt_clip_double(v / 6.0 + 0.5, 0.0, 1.0); }
#endif
"#;
