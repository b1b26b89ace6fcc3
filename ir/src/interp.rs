//! The reference interpreter: runs a graph op by op in topological order.
//!
//! It is the numerical oracle for every pass and backend: simple and obviously correct, not
//! fast. Values are freed after their last use, so peak memory stays near the live set.

use crate::graph::{Graph, ValueRef};
use crate::infer::node_context;
use crate::op::{EvalCx, SubgraphRunner};
use crate::shape::Dim;
use crate::tensor::Tensor;
use crate::{Error, Result};
use std::collections::HashMap;

/// Runs `g` on `inputs` (one per formal input, in order) and returns its outputs in order.
pub fn run(g: &Graph, inputs: Vec<Tensor>) -> Result<Vec<Tensor>> {
    if inputs.len() == g.inputs.len() {
        for (i, t) in inputs.iter().enumerate() {
            check_input(g, i, t)?;
        }
    }
    run_scoped(g, inputs, &HashMap::new())
}

/// Checks a supplied input against the declared type of formal input `i`.
fn check_input(g: &Graph, i: usize, t: &Tensor) -> Result<()> {
    let node = &g.g[g.inputs[i]];
    let v = &node.outputs[0];
    if v.ty.dtype != t.dtype() {
        return Err(Error::Eval(format!(
            "input {i} '{}' must be {}, got {}",
            v.name,
            v.ty.dtype,
            t.dtype()
        )));
    }
    if let Some(s) = &v.ty.shape {
        let ok = s.len() == t.rank()
            && s.iter().zip(t.shape()).all(|(d, &x)| match d {
                Dim::Known(k) => *k as usize == x,
                _ => true,
            });
        if !ok {
            return Err(Error::Eval(format!(
                "input {i} '{}' must have shape {}, got {:?}",
                v.name,
                crate::shape::shape_string(s),
                t.shape()
            )));
        }
    }
    Ok(())
}

/// Runs `g` with its captures resolved from `scope` (outer values by name).
pub fn run_scoped(
    g: &Graph,
    inputs: Vec<Tensor>,
    scope: &HashMap<String, Tensor>,
) -> Result<Vec<Tensor>> {
    if inputs.len() != g.inputs.len() {
        return Err(Error::Eval(format!(
            "the graph takes {} inputs, {} were given",
            g.inputs.len(),
            inputs.len()
        )));
    }
    let order = g.topo_order()?;
    let mut values: HashMap<ValueRef, Tensor> = HashMap::new();
    // Remaining reads of each value; graph outputs are never freed.
    let mut reads: HashMap<ValueRef, usize> = HashMap::new();
    for e in g.g.edge_indices() {
        if let (Some((s, _)), Some(w)) = (g.g.edge_endpoints(e), g.g.edge_weight(e)) {
            *reads
                .entry(ValueRef {
                    node: s,
                    out: w.src_out,
                })
                .or_default() += 1;
        }
    }
    for o in &g.outputs {
        *reads.entry(o.value).or_default() += 1 << 40;
    }
    for (i, t) in inputs.into_iter().enumerate() {
        values.insert(
            ValueRef {
                node: g.inputs[i],
                out: 0,
            },
            t,
        );
    }
    for &c in &g.captures {
        let name = &g.g[c].outputs[0].name;
        let t = scope.get(name).ok_or_else(|| {
            Error::Eval(format!(
                "subgraph value '{name}' is not defined in an enclosing scope"
            ))
        })?;
        values.insert(ValueRef { node: c, out: 0 }, t.clone());
    }
    for n in order {
        let node = &g.g[n];
        if node.op.op_type() == "Input" {
            continue;
        }
        let ins = g.node_inputs(n);
        let n_caps = node.captures.len();
        let n_regular = node.num_inputs.saturating_sub(n_caps);
        let mut args: Vec<Option<&Tensor>> = Vec::with_capacity(n_regular);
        for v in ins.iter().take(n_regular) {
            args.push(match v {
                Some(v) => Some(values.get(v).ok_or_else(|| {
                    node_context(
                        g,
                        n,
                        Error::Eval(format!("input value {:?} was not computed", v)),
                    )
                })?),
                None => None,
            });
        }
        let mut inner_scope = HashMap::new();
        for (name, v) in node.captures.iter().zip(ins.iter().skip(n_regular)) {
            if let Some(t) = v.and_then(|v| values.get(&v)) {
                inner_scope.insert(name.clone(), t.clone());
            }
        }
        let mut runner = ScopeRunner { scope: inner_scope };
        let mut cx = EvalCx {
            num_outputs: node.outputs.len(),
            runner: &mut runner,
        };
        let outs = node
            .op
            .eval(&mut cx, &args)
            .map_err(|e| node_context(g, n, e))?;
        if outs.len() < node.outputs.len() {
            return Err(node_context(
                g,
                n,
                Error::Eval(format!(
                    "produced {} outputs, {} expected",
                    outs.len(),
                    node.outputs.len()
                )),
            ));
        }
        for v in ins.iter().flatten() {
            if let Some(r) = reads.get_mut(v) {
                *r -= 1;
                if *r == 0 {
                    values.remove(v);
                }
            }
        }
        for (i, t) in outs.into_iter().take(node.outputs.len()).enumerate() {
            let key = ValueRef { node: n, out: i };
            if reads.get(&key).copied().unwrap_or(0) > 0 {
                values.insert(key, t);
            }
        }
    }
    g.outputs
        .iter()
        .map(|o| {
            values
                .get(&o.value)
                .cloned()
                .ok_or_else(|| Error::Eval(format!("graph output '{}' was not computed", o.name)))
        })
        .collect()
}

/// Runs subgraphs with the captured values of one node.
struct ScopeRunner {
    scope: HashMap<String, Tensor>,
}

impl SubgraphRunner for ScopeRunner {
    fn run(&mut self, g: &Graph, inputs: Vec<Tensor>) -> Result<Vec<Tensor>> {
        run_scoped(g, inputs, &self.scope)
    }
}
