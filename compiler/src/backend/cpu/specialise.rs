//! Shape specialisation: bind every symbolic dim of the graph inputs to a value and re-infer,
//! so that every value has a static shape (the C backend knows all sizes at compile time).

use petasos_ir::ops::core::Input;
use petasos_ir::shape::{shape_string, Dim, ValueType};
use petasos_ir::Graph;
use std::collections::BTreeMap;

/// Why a graph could not be given static shapes.
#[derive(Debug, thiserror::Error)]
pub enum SpecialiseError {
    /// An input still has a symbolic dim after binding.
    #[error("input '{input}' has shape {shape}: dim '{dim}' is not bound; pass --dim {dim}=<value> or --input-shape {input}=<d0>x<d1>x...")]
    UnboundInput {
        input: String,
        shape: String,
        dim: String,
    },
    /// An input has no known rank.
    #[error("input '{0}' has no known rank; pass --input-shape {0}=<d0>x<d1>x...")]
    UnrankedInput(String),
    /// `--input-shape` names no input, or disagrees with the model.
    #[error("--input-shape {name}: {msg}")]
    BadInputShape { name: String, msg: String },
    /// A value inside the graph has no static shape (a data-dependent size).
    #[error("value '{value}' (output of node '{node}', {op}) has no static shape ({ty}); the CPU backend needs static shapes — bind symbolic dims with --dim NAME=<value> or --input-shape")]
    Dynamic {
        value: String,
        node: String,
        op: String,
        ty: String,
    },
    /// Re-inference failed with the bound shapes.
    #[error("shape inference with the bound input shapes failed: {0}")]
    Infer(#[from] petasos_ir::Error),
}

/// Binds the inputs of `g`: an input named in `input_shapes` takes that shape (its rank and
/// known dims must agree); any other input's symbols take their value from `dims`. Then every
/// value is re-inferred. Errors name the input and the flag that binds it.
pub fn specialise(
    g: &mut Graph,
    dims: &BTreeMap<String, u64>,
    input_shapes: &BTreeMap<String, Vec<u64>>,
) -> Result<(), SpecialiseError> {
    for name in input_shapes.keys() {
        if !g.inputs.iter().any(|&n| g.g[n].outputs[0].name == *name) {
            let names: Vec<&str> = g
                .inputs
                .iter()
                .map(|&n| g.g[n].outputs[0].name.as_str())
                .collect();
            return Err(SpecialiseError::BadInputShape {
                name: name.clone(),
                msg: format!("the model has no such input (inputs: {})", names.join(", ")),
            });
        }
    }
    for &n in &g.inputs.clone() {
        let v = &g.g[n].outputs[0];
        let name = v.name.clone();
        let ty = match input_shapes.get(&name) {
            Some(want) => {
                if let Some(s) = &v.ty.shape {
                    let agree = s.len() == want.len()
                        && s.iter()
                            .zip(want)
                            .all(|(d, w)| d.known().is_none_or(|k| k == *w));
                    if !agree {
                        return Err(SpecialiseError::BadInputShape {
                            name,
                            msg: format!(
                                "{want:?} does not fit the model's shape {}",
                                shape_string(s)
                            ),
                        });
                    }
                }
                ValueType::new(v.ty.dtype, want.iter().map(|&d| Dim::Known(d)).collect())
            }
            None => {
                let Some(s) = &v.ty.shape else {
                    return Err(SpecialiseError::UnrankedInput(name));
                };
                let mut missing = None;
                let bound = v.ty.bind(&mut |sym| match dims.get(sym) {
                    Some(&x) => x,
                    None => {
                        missing.get_or_insert_with(|| sym.to_string());
                        0
                    }
                });
                if let Some(dim) = missing {
                    return Err(SpecialiseError::UnboundInput {
                        input: name,
                        shape: shape_string(s),
                        dim,
                    });
                }
                if bound.numel().is_none() {
                    return Err(SpecialiseError::UnboundInput {
                        input: name,
                        shape: shape_string(s),
                        dim: "?".into(),
                    });
                }
                bound
            }
        };
        g.g[n].op = Box::new(Input { ty: ty.clone() });
        g.g[n].outputs[0].ty = ty;
    }
    petasos_ir::infer::infer_graph(g)?;
    Ok(())
}

/// Checks that every value of `g` has a static shape.
pub fn check_static(g: &Graph) -> Result<(), SpecialiseError> {
    let order = g.topo_order()?;
    for n in order {
        let node = &g.g[n];
        for v in &node.outputs {
            if v.ty.numel().is_none() {
                return Err(SpecialiseError::Dynamic {
                    value: v.name.clone(),
                    node: super::lower::node_label(node),
                    op: node.op.op_type().to_string(),
                    ty: v.ty.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// Parses `name=value` (for `--dim`).
pub fn parse_dim(s: &str) -> Result<(String, u64), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("'{s}' is not NAME=VALUE"))?;
    let v = v
        .trim()
        .parse::<u64>()
        .map_err(|_| format!("'{s}': the value is not a non-negative integer"))?;
    Ok((k.trim().to_string(), v))
}

/// Parses `name=1x3x224x224` (for `--input-shape`; `name=` alone is a scalar).
pub fn parse_input_shape(s: &str) -> Result<(String, Vec<u64>), String> {
    let (k, v) = s
        .rsplit_once('=')
        .ok_or_else(|| format!("'{s}' is not NAME=D0xD1x..."))?;
    let dims = if v.trim().is_empty() {
        Vec::new()
    } else {
        v.split(['x', 'X', ','])
            .map(|d| {
                d.trim()
                    .parse::<u64>()
                    .map_err(|_| format!("'{s}': '{d}' is not a dimension"))
            })
            .collect::<Result<_, _>>()?
    };
    Ok((k.to_string(), dims))
}
