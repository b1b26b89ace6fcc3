//! The elementwise family: the shared map emitter (inputs broadcast to the output, one loop
//! nest, one store per element), C expression helpers per dtype, and the registration of
//! every elementwise lowering (unary math and activations in `elementwise_unary`, binary,
//! variadic, `Where` and `Clip` in `elementwise_binary`, fused chains in `elementwise_fuse`).
//!
//! Every op of the family describes one element of one node as a [`NodeElem`] (its inputs
//! and an expression of them); [`lower_elementwise`] emits a single node with [`emit_map`]
//! and a fused region with `elementwise_fuse::emit_fused`.
//!
//! Semantics follow the reference interpreter (`ir/src/ops/elementwise/`): floats are computed
//! in `float` (f32, f16, bf16) or `double` (f64) and rounded to the output type on store;
//! integer arithmetic wraps to the output width (computed in `uint64_t`, where wrap-around is
//! defined, and truncated on store); integer division and remainder by zero give 0.

use super::broadcast::Bcast;
use super::{
    elementwise_binary, elementwise_fuse, elementwise_math, elementwise_unary, CTensor, LowerCx,
    LowerError, Registry,
};
use petasos_ir::graph::Node;
use petasos_ir::op::Attr;
use petasos_ir::DType;

/// Registers this family's lowerings (every op type through [`lower_elementwise`]) and the
/// fusion of elementwise regions.
pub fn register(r: &mut Registry) {
    for &op in elementwise_unary::OPS.iter().chain(elementwise_binary::OPS) {
        r.op(op, lower_elementwise);
        if elementwise_fuse::fusable_op(op) {
            r.fusion(op, elementwise_fuse::fuse_region);
        }
    }
}

/// One node's element: its value inputs (shapes as broadcast, e.g. after legacy `axis`
/// alignment), the node input slot each came from, and the computation of `x0`, `x1`, ...
#[derive(Clone, Debug)]
pub struct NodeElem {
    pub ins: Vec<CTensor>,
    pub slots: Vec<usize>,
    pub elem: Elem,
    pub access: Access,
}

/// The [`NodeElem`] of node `k` of the kernel.
pub fn node_elem(cx: &LowerCx<'_>, k: usize) -> Result<NodeElem, LowerError> {
    let op = cx.node_at(k)?.op.op_type().to_string();
    if elementwise_unary::OPS.contains(&op.as_str()) {
        elementwise_unary::node_elem(cx, k)
    } else {
        elementwise_binary::node_elem(cx, k)
    }
}

/// The lowering of every op of the family: one node, or a fused region.
pub fn lower_elementwise(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    if cx.nodes().len() > 1 {
        return elementwise_fuse::emit_fused(cx);
    }
    let ne = node_elem(cx, 0)?;
    let y = cx.output(0)?.clone();
    let refs: Vec<&CTensor> = ne.ins.iter().collect();
    let elem = ne.elem;
    emit_map(cx, &refs, &y, ne.access, &|_| elem.clone())
}

/// One element's computation: statements, then the value stored to the output (in the
/// output's compute type, or its storage type for a raw map).
#[derive(Clone, Debug, Default)]
pub struct Elem {
    pub pre: Vec<String>,
    pub val: String,
}

impl Elem {
    /// A bare expression.
    pub fn expr(val: impl Into<String>) -> Elem {
        Elem {
            pre: Vec::new(),
            val: val.into(),
        }
    }
}

/// How [`emit_map`] reads inputs and writes the output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Values in the compute type (f16/bf16 converted to and from `float`).
    Compute,
    /// Storage values as they are (selection ops that only move elements).
    Raw,
}

/// The local variable holding input `k`'s element inside an [`emit_map`] body.
pub fn var(k: usize) -> String {
    format!("x{k}")
}

/// Emits `out[o] = f(x0, x1, ...)` for every output element, each input broadcast to the
/// output's shape (numpy rules). `f` gets the variable names `x0`, `x1`, ... (declared
/// `const` in each input's compute type, see [`Access`]) and returns the statements and the
/// value. An empty output emits nothing.
pub fn emit_map(
    cx: &mut LowerCx<'_>,
    ins: &[&CTensor],
    out: &CTensor,
    access: Access,
    f: &dyn Fn(&[String]) -> Elem,
) -> Result<(), LowerError> {
    for t in ins.iter().copied().chain(std::iter::once(out)) {
        cx.ctype_of(t)?;
    }
    let shapes: Vec<&[usize]> = ins.iter().map(|t| t.shape.as_slice()).collect();
    let b = Bcast::new(&out.shape, &shapes).map_err(|e| cx.invalid(e))?;
    if b.numel == 0 {
        cx.line("/* empty output: nothing to compute */");
        return Ok(());
    }
    let vars: Vec<String> = (0..ins.len()).map(var).collect();
    let body = f(&vars);
    // Single elements are read once, before the loops (loop-invariant for the compiler).
    let hoist = |t: &CTensor| t.numel() == 1 && b.numel > 1;
    let mut before = Vec::new();
    for (t, v) in ins.iter().zip(&vars) {
        if hoist(t) {
            let (ty, load) = read(t, "0", access);
            before.push(format!("const {ty} {v}_s = {load};"));
        }
    }
    let (o, idx) = b.indices();
    let mut inner = Vec::new();
    for ((t, v), i) in ins.iter().zip(&vars).zip(&idx) {
        let (ty, load) = if hoist(t) {
            (read(t, "0", access).0, format!("{v}_s"))
        } else {
            read(t, i, access)
        };
        inner.push(format!("const {ty} {v} = {load};"));
    }
    inner.extend(body.pre.iter().cloned());
    inner.push(match access {
        Access::Compute => out.store(&o, &body.val),
        Access::Raw => format!("{}[{o}] = {};", out.expr, body.val),
    });
    let mut used: Vec<&CTensor> = ins.to_vec();
    used.push(out);
    emit_nest(cx, &b, &before, &inner, &used);
    Ok(())
}

/// Loops of at least this many elements are split over the thread pool.
pub const PARALLEL_MIN: usize = 1 << 16;
/// Elements per task at least (memory-bound loops: fewer, larger tasks).
const TASK_MIN: usize = 1 << 15;

/// Emits `before` (loop-invariant lines), then the loop nest of `b` around `inner`. Large
/// nests run as `pt_parallel_for` tasks over ranges of the outermost loop: the nest then
/// goes into a file-scope task function that redeclares the pointers of `used` (every tensor
/// the lines name) from their model-wide addresses.
pub fn emit_nest(
    cx: &mut LowerCx<'_>,
    b: &Bcast,
    before: &[String],
    inner: &[String],
    used: &[&CTensor],
) {
    if before
        .iter()
        .chain(inner)
        .any(|l| l.contains(elementwise_math::PREFIX))
    {
        cx.global(elementwise_math::HELPERS);
    }
    let d0 = b.dims.first().copied().unwrap_or(1);
    let tasks = (b.numel / TASK_MIN).min(d0).min(256);
    if b.numel < PARALLEL_MIN || tasks < 2 {
        for l in before {
            cx.line(l);
        }
        for h in b.heads(None) {
            cx.line(h);
        }
        for l in inner {
            cx.line(l);
        }
        b.close(cx);
        return;
    }
    let task = cx.fresh("task");
    let mut f = Block::default();
    f.push(format!("static void {task}(void *ctx, int64_t t) {{"));
    f.push("(void)ctx;");
    let mut seen = std::collections::BTreeSet::new();
    for t in used {
        if seen.insert(t.expr.clone()) {
            f.push(format!(
                "{}{} *const {} PT_UNUSED = {};",
                if t.addr.contains("(const ") {
                    "const "
                } else {
                    ""
                },
                t.ctype(),
                t.expr,
                t.addr
            ));
        }
    }
    f.push(format!(
        "const size_t lo = (size_t)t * {d0} / {tasks}, hi = (size_t)(t + 1) * {d0} / {tasks};"
    ));
    for l in before {
        f.push(l);
    }
    for h in b.heads(Some(("lo", "hi"))) {
        f.push(h);
    }
    for l in inner {
        f.push(l);
    }
    for _ in &b.dims {
        f.push("}");
    }
    f.push("}");
    cx.global(f.text);
    cx.need_rt("pt_threads.c");
    cx.line(format!(
        "pt_parallel_for({tasks}, {task}, NULL); /* {} elements in {tasks} tasks */",
        b.numel
    ));
}

/// C text indented by braces (as [`LowerCx::line`] does for kernel bodies).
#[derive(Default)]
struct Block {
    text: String,
    depth: usize,
}

impl Block {
    fn push(&mut self, l: impl AsRef<str>) {
        let l = l.as_ref().trim();
        if l.starts_with('}') {
            self.depth = self.depth.saturating_sub(1);
        }
        for _ in 0..self.depth {
            self.text.push_str("  ");
        }
        self.text.push_str(l);
        self.text.push('\n');
        if l.ends_with('{') {
            self.depth += 1;
        }
    }
}

/// The C type and the expression of element `idx` of `t` read for `access`.
pub fn read(t: &CTensor, idx: &str, access: Access) -> (&'static str, String) {
    match access {
        Access::Compute => (t.compute_type(), t.load(idx)),
        Access::Raw => (t.ctype(), format!("{}[{idx}]", t.expr)),
    }
}

/// `val` (in `d`'s compute type) rounded to `d` and back, as storing and reloading does.
pub fn round_to(d: DType, ctype: &str, val: &str) -> String {
    match d {
        DType::F16 => format!("pt_h2f(pt_f2h({val}))"),
        DType::BF16 => format!("pt_bf2f(pt_f2bf({val}))"),
        DType::Bool => format!("(uint8_t)(({val}) != 0)"),
        _ => format!("({ctype})({val})"),
    }
}

/// The C type floats of `d` are computed in (`float` for f32/f16/bf16, `double` for f64).
pub fn float_type(d: DType) -> Option<&'static str> {
    match d {
        DType::F32 | DType::F16 | DType::BF16 => Some("float"),
        DType::F64 => Some("double"),
        _ => None,
    }
}

/// The libm function `name` for the compute type `t` (`expf` for float, `exp` for double).
pub fn mfn(t: &str, name: &str) -> String {
    if t == "float" {
        format!("{name}f")
    } else {
        name.to_string()
    }
}

/// A C literal of `v` converted to the compute type `t` (exact for f32 attribute values).
pub fn lit(t: &str, v: f64) -> String {
    let s = if v.is_nan() {
        "NAN".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "INFINITY" } else { "-INFINITY" }.to_string()
    } else {
        // `{:?}` is the shortest text that reads back as the same f64.
        let s = format!("{v:?}");
        if s.contains(['.', 'e', 'E']) {
            s
        } else {
            format!("{s}.0")
        }
    };
    format!("(({t}){s})")
}

/// Statements converting the double expression `v` to an integer as the interpreter does
/// (truncation toward zero, NaN to 0, saturated to 128 bits, then wrapped to the output
/// width): leaves the low 64 bits of that integer in `uint64_t` variable `dst`, which the
/// store truncates further. `fmod` by 2^64 is exact, so no conversion leaves its range.
pub fn f2i(v: &str, dst: &str) -> Vec<String> {
    vec![
        format!("double {dst}_d = (double)({v});"),
        format!("{dst}_d = isnan({dst}_d) ? 0.0 : trunc({dst}_d);"),
        format!("const double {dst}_m = fmod({dst}_d, 18446744073709551616.0);"),
        format!(
            "const uint64_t {dst} = {dst}_d >= 1.7014118346046923e38 ? UINT64_MAX : ({dst}_d < -1.7014118346046923e38 ? 0 : ({dst}_m >= 0.0 ? (uint64_t){dst}_m : (uint64_t)0 - (uint64_t)(-{dst}_m)));"
        ),
    ]
}

/// `(uint64_t)(x)`: integer arithmetic that wraps (the store truncates to the output width).
pub fn u64(x: &str) -> String {
    format!("(uint64_t){x}")
}

/// Node `n`'s float attribute `name`, `default` when absent.
pub fn attr_f(n: &Node, name: &str, default: f32) -> f32 {
    match find_attr(n, name) {
        Some(Attr::Float(v)) => v,
        Some(Attr::Int(v)) => v as f32,
        _ => default,
    }
}

/// Node `n`'s optional float attribute `name`.
pub fn opt_attr_f(n: &Node, name: &str) -> Option<f32> {
    match find_attr(n, name) {
        Some(Attr::Float(v)) => Some(v),
        Some(Attr::Int(v)) => Some(v as f32),
        _ => None,
    }
}

/// Node `n`'s int attribute `name`, if present.
pub fn attr_i(n: &Node, name: &str) -> Option<i64> {
    match find_attr(n, name) {
        Some(Attr::Int(v)) => Some(v),
        _ => None,
    }
}

/// Node `n`'s string attribute `name`, if present.
pub fn attr_s(n: &Node, name: &str) -> Option<String> {
    match find_attr(n, name) {
        Some(Attr::Str(v)) => Some(v),
        _ => None,
    }
}

fn find_attr(n: &Node, name: &str) -> Option<Attr> {
    n.op.attrs()
        .into_iter()
        .find(|(k, _)| *k == name)
        .map(|x| x.1)
}

/// An error naming node `k` of the kernel (its op and name) and what is not supported.
pub fn unsupported_at(cx: &LowerCx<'_>, k: usize, what: String) -> LowerError {
    match cx.node_at(k) {
        Ok(n) if k > 0 => cx.unsupported(format!(
            "{what} (fused node {} '{}')",
            super::op_key(n),
            super::comment(&super::node_label(n))
        )),
        _ => cx.unsupported(what),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_exact_and_typed() {
        assert_eq!(lit("float", 0.5), "((float)0.5)");
        assert_eq!(lit("double", 2.0), "((double)2.0)");
        assert_eq!(lit("float", f64::NEG_INFINITY), "((float)-INFINITY)");
        let a = 0.2f32 as f64;
        let l = lit("float", a);
        let inner = l.trim_start_matches("((float)").trim_end_matches(')');
        assert_eq!(inner.parse::<f64>().unwrap() as f32, 0.2f32);
        assert_eq!(mfn("float", "exp"), "expf");
        assert_eq!(mfn("double", "exp"), "exp");
    }
}
