//! `FlexAttention`'s `score_mod` / `prob_mod` subgraphs as per-element C.
//!
//! A mod subgraph maps the `(B, H, Lq, Lk)` score (or probability) tensor to one of the same
//! shape. Everything in it that does not depend on the tensor's values (its `Shape`, index
//! ranges built from it, constants) is evaluated here at compile time with the interpreter's
//! op implementations; what remains must be a chain of elementwise ops whose other operands
//! are those constants (broadcast against the tensor). That chain becomes C statements on one
//! element, each result rounded to its value's dtype as the interpreter does. Anything else is
//! an `unsupported` error naming the op.

use super::seq_common::{index, lit, round};
use super::{LowerCx, LowerError};
use petasos_ir::graph::{Graph, ValueRef};
use petasos_ir::op::{EvalCx, SubgraphRunner};
use petasos_ir::{DType, Tensor};
use std::collections::HashMap;

/// A value of the mod graph: known at compile time, or a C variable of the element.
enum Val {
    Const(Tensor),
    Var { name: String },
}

/// Refuses nested subgraphs (none of the supported mod graphs has one).
struct NoRunner;

impl SubgraphRunner for NoRunner {
    fn run(&mut self, _: &Graph, _: Vec<Tensor>) -> petasos_ir::Result<Vec<Tensor>> {
        Err(petasos_ir::eval_err!("nested subgraph"))
    }
}

/// The C of mod graph `sg` applied to the element variable [`INPUT`] (compute type `t`, dtype
/// `dtype`, position `(b, h, i, j)` of a tensor of shape `full`): file-scope constant tables
/// and body statements, and the variable holding the result.
pub struct ModCode {
    pub globals: Vec<String>,
    pub stmts: Vec<String>,
    pub result: String,
}

/// The C variable the element's value is read from (declare it before the statements).
pub const INPUT: &str = "mv_in";

/// Lowers mod graph `sg` (see the module docs) on the element in [`INPUT`]; `what` names it
/// in errors, `prefix` makes its table names unique.
pub fn lower_mod(
    cx: &LowerCx<'_>,
    sg: &Graph,
    full: [usize; 4],
    dtype: DType,
    t: &str,
    prefix: &str,
    what: &str,
) -> Result<ModCode, LowerError> {
    let unsup = |m: String| cx.unsupported(format!("{what}: {m}"));
    if sg.inputs.len() != 1 || sg.outputs.len() != 1 || !sg.captures.is_empty() {
        return Err(unsup("a graph other than one input to one output".into()));
    }
    let order = sg.topo_order().map_err(|e| unsup(e.to_string()))?;
    let mut vals: HashMap<ValueRef, Val> = HashMap::new();
    let mut code = ModCode {
        globals: Vec::new(),
        stmts: Vec::new(),
        result: String::new(),
    };
    let mut tables = 0usize;
    let mut vars = 0usize;
    for n in order {
        let node = &sg.g[n];
        if n == sg.inputs[0] {
            vals.insert(
                ValueRef { node: n, out: 0 },
                Val::Var {
                    name: INPUT.to_string(),
                },
            );
            continue;
        }
        if let Some(c) = sg.constant(n) {
            let tv = c.to_tensor().map_err(|e| unsup(e.to_string()))?;
            vals.insert(ValueRef { node: n, out: 0 }, Val::Const(tv));
            continue;
        }
        let op_type = node.op.op_type().to_string();
        let ins: Vec<Option<&Val>> = sg
            .node_inputs(n)
            .iter()
            .map(|v| v.and_then(|v| vals.get(&v)))
            .collect();
        let all_const = ins.iter().all(|v| matches!(v, None | Some(Val::Const(_))));
        // `Shape` of the element tensor is known: evaluate it on zeros of that shape.
        let shape_of_var = op_type == "Shape" && matches!(ins.first(), Some(Some(Val::Var { .. })));
        if all_const || shape_of_var {
            let zeros;
            let args: Vec<Option<&Tensor>> = if shape_of_var {
                zeros = Tensor::zeros(dtype, &full);
                vec![Some(&zeros)]
            } else {
                ins.iter()
                    .map(|v| match v {
                        Some(Val::Const(t)) => Some(t),
                        _ => None,
                    })
                    .collect()
            };
            let mut runner = NoRunner;
            let mut ecx = EvalCx {
                num_outputs: node.outputs.len(),
                runner: &mut runner,
            };
            let outs = node
                .op
                .eval(&mut ecx, &args)
                .map_err(|e| unsup(format!("evaluating {op_type}: {e}")))?;
            for (k, o) in outs.into_iter().enumerate() {
                vals.insert(ValueRef { node: n, out: k }, Val::Const(o));
            }
            continue;
        }
        // An elementwise op on the element.
        let out_dt = node.outputs.first().map(|v| v.ty.dtype).unwrap_or(dtype);
        if !out_dt.is_float() {
            return Err(unsup(format!("{op_type} producing {out_dt}")));
        }
        let mut args = Vec::new();
        for v in &ins {
            args.push(match v {
                Some(Val::Var { name, .. }) => name.clone(),
                Some(Val::Const(c)) => {
                    let s = c.shape().to_vec();
                    if s.len() > 4
                        || s.iter()
                            .rev()
                            .zip(full.iter().rev())
                            .any(|(&a, &b)| a != 1 && a != b)
                    {
                        return Err(unsup(format!("{op_type} operand of shape {s:?}")));
                    }
                    let mut padded = [1usize; 4];
                    padded[4 - s.len()..].copy_from_slice(&s);
                    let vals: Vec<f64> = c.to_f64_vec().map_err(|e| unsup(e.to_string()))?;
                    let name = format!("{prefix}_c{tables}");
                    tables += 1;
                    let body: Vec<String> = vals.iter().map(|&x| lit(x)).collect();
                    code.globals.push(format!(
                        "static const double {name}[{}] = {{ {} }};",
                        vals.len().max(1),
                        if body.is_empty() {
                            "0".into()
                        } else {
                            body.join(", ")
                        }
                    ));
                    format!("(({t}){name}[{}])", index(&padded, &["b", "h", "i", "j"]))
                }
                None => String::new(),
            });
        }
        let a = |k: usize| -> Result<&str, LowerError> {
            args.get(k)
                .filter(|s| !s.is_empty())
                .map(|s| s.as_str())
                .ok_or_else(|| unsup(format!("{op_type} without input {k}")))
        };
        let f = |name: &str| {
            if t == "float" && out_dt == DType::F32 {
                format!("{name}f")
            } else {
                name.to_string()
            }
        };
        let e = match op_type.as_str() {
            "Add" => format!("{} + {}", a(0)?, a(1)?),
            "Sub" => format!("{} - {}", a(0)?, a(1)?),
            "Mul" => format!("{} * {}", a(0)?, a(1)?),
            "Div" => format!("{} / {}", a(0)?, a(1)?),
            "Neg" => format!("-{}", a(0)?),
            "Abs" => format!("fabs({})", a(0)?),
            "Tanh" => format!("{}({})", f("tanh"), a(0)?),
            "Exp" => format!("{}({})", f("exp"), a(0)?),
            "Sigmoid" => format!("({t})1 / (({t})1 + {}(-{}))", f("exp"), a(0)?),
            "Relu" => format!("{0} < ({t})0 ? ({t})0 : {0}", a(0)?),
            "Where" => format!("({}) ? {} : {}", a(0)?, a(1)?, a(2)?),
            "Cast" | "Identity" => a(0)?.to_string(),
            other => return Err(unsup(format!("op {other} in the mod graph"))),
        };
        let name = format!("mv{vars}");
        vars += 1;
        code.stmts
            .push(format!("const {t} {name} = {};", round(out_dt, t, &e)));
        vals.insert(ValueRef { node: n, out: 0 }, Val::Var { name });
    }
    match vals.get(&sg.outputs[0].value) {
        Some(Val::Var { name, .. }) => code.result = name.clone(),
        Some(Val::Const(_)) => return Err(unsup("a constant result".into())),
        None => return Err(unsup("an unresolved output".into())),
    }
    Ok(code)
}
