//! Shape specialisation: bind every symbolic dim of the graph inputs to a value and re-infer,
//! so that every value has a static shape (the C backend knows all sizes at compile time).
//!
//! Once shapes are bound, `Shape` and `Size` nodes are constants ([`fold_shapes`]), so the
//! passes fold the shape arithmetic after them.
//!
//! Value specialisation ([`freeze`], `--freeze-input NAME=FILE.pb`): an input whose values
//! decide shapes (a Reshape's shape, a Slice's starts, ...) is replaced inside the graph by a
//! constant holding the given values; the input stays in the C API and `model_run` refuses
//! other values ([`Frozen`]). [`inputs_to_freeze`] finds the inputs that need it.

use petasos_ir::graph::{Edge, Provenance, ValueRef};
use petasos_ir::ops::core::Input;
use petasos_ir::shape::{shape_string, Dim, ValueType};
use petasos_ir::weights::ConstTensor;
use petasos_ir::{DType, Graph, Tensor};
use petgraph::visit::EdgeRef;
use petgraph::Direction;
use std::collections::{BTreeMap, BTreeSet};

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
    #[error("value '{value}' (output of node '{node}', {op}) has no static shape ({ty}); the CPU backend needs static shapes — bind symbolic dims with --dim NAME=<value> or --input-shape{hint}")]
    Dynamic {
        value: String,
        node: String,
        op: String,
        ty: String,
        /// Names the inputs whose values decide the shape (`--freeze-input`), if any.
        hint: String,
    },
    /// `--freeze-input` names no input, or its value does not fit the input.
    #[error("--freeze-input {name}: {msg}")]
    BadFrozen { name: String, msg: String },
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
    if fold_shapes(g) > 0 {
        petasos_ir::infer::infer_graph(g)?;
    }
    Ok(())
}

/// Replaces every `Shape` and `Size` node whose input has a static shape by a constant of
/// its result (the node keeps its index and output, so readers and graph outputs are
/// unchanged), so that the passes fold the shape arithmetic that follows. Returns the count.
pub fn fold_shapes(g: &mut Graph) -> usize {
    use petasos_ir::ops::shape_ops::reshape::Shape;
    let mut folded = 0;
    let nodes: Vec<_> = g.g.node_indices().collect();
    for n in nodes {
        let op = g.g[n].op.op_type();
        if g.g[n].op.domain() != "" && g.g[n].op.domain() != "ai.onnx" {
            continue;
        }
        if op != "Shape" && op != "Size" {
            continue;
        }
        let Some(Some(src)) = g.node_inputs(n).first().copied() else {
            continue;
        };
        let Some(dims) = g.value_type(src).and_then(|t| {
            t.shape
                .as_ref()
                .and_then(|s| s.iter().map(|d| d.known()).collect::<Option<Vec<u64>>>())
        }) else {
            continue;
        };
        let t = if op == "Size" {
            Tensor::from_i64(&[], vec![dims.iter().product::<u64>() as i64])
        } else {
            let Some(sh) = g.g[n].op.as_any().downcast_ref::<Shape>() else {
                continue;
            };
            let (a, b) = sh.range(dims.len());
            let v: Vec<i64> = dims[a..b].iter().map(|&d| d as i64).collect();
            Tensor::from_i64(&[v.len()], v)
        };
        let Ok(t) = t else { continue };
        let edges: Vec<_> =
            g.g.edges_directed(n, Direction::Incoming)
                .map(|e| e.id())
                .collect();
        for e in edges {
            g.g.remove_edge(e);
        }
        let node = &mut g.g[n];
        node.num_inputs = 0;
        node.outputs[0].ty = ValueType::known(DType::I64, t.shape());
        node.op = Box::new(petasos_ir::ops::core::Constant {
            value: ConstTensor::from_tensor(t),
        });
        folded += 1;
    }
    folded
}

/// Checks that every value of `g` has a static shape.
pub fn check_static(g: &Graph) -> Result<(), SpecialiseError> {
    let order = g.topo_order()?;
    for n in order {
        let node = &g.g[n];
        for v in &node.outputs {
            if v.ty.numel().is_none() {
                let names = inputs_to_freeze(g);
                let hint = if names.is_empty() {
                    String::new()
                } else {
                    let flags: Vec<String> = names
                        .iter()
                        .map(|n| format!("--freeze-input {n}=FILE.pb"))
                        .collect();
                    format!(
                        "; sizes depend on the values of input(s) {}: {}",
                        names.join(", "),
                        flags.join(" ")
                    )
                };
                return Err(SpecialiseError::Dynamic {
                    value: v.name.clone(),
                    node: super::lower::node_label(node),
                    op: node.op.op_type().to_string(),
                    ty: v.ty.to_string(),
                    hint,
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

/// A graph input frozen to a value: its position among the graph inputs and the bytes
/// `model_run` must be given for it (row-major, little-endian storage of its dtype).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frozen {
    pub input: usize,
    pub name: String,
    pub bytes: Vec<u8>,
}

/// Replaces each input named in `frozen` by a constant of the given value inside the graph
/// (its readers read the constant; the input keeps its place, now with the value's static
/// shape). The dtype must equal the input's and the shape fit its declared shape. Returns
/// the runtime checks, in input order. Call before [`specialise`].
pub fn freeze(
    g: &mut Graph,
    frozen: &BTreeMap<String, Tensor>,
) -> Result<Vec<Frozen>, SpecialiseError> {
    let mut out = Vec::new();
    for name in frozen.keys() {
        if !g.inputs.iter().any(|&n| g.g[n].outputs[0].name == *name) {
            return Err(SpecialiseError::BadFrozen {
                name: name.clone(),
                msg: "the model has no such input".into(),
            });
        }
    }
    for (i, n) in g.inputs.clone().into_iter().enumerate() {
        let v = &g.g[n].outputs[0];
        let Some(t) = frozen.get(&v.name) else {
            continue;
        };
        let name = v.name.clone();
        let bad = |msg: String| SpecialiseError::BadFrozen {
            name: name.clone(),
            msg,
        };
        if t.dtype() != v.ty.dtype {
            return Err(bad(format!(
                "the value is {}, the input is {}",
                t.dtype(),
                v.ty.dtype
            )));
        }
        if let Some(s) = &v.ty.shape {
            let fits = s.len() == t.rank()
                && s.iter()
                    .zip(t.shape())
                    .all(|(d, &w)| d.known().is_none_or(|k| k == w as u64));
            if !fits {
                return Err(bad(format!(
                    "shape {:?} does not fit the input's {}",
                    t.shape(),
                    shape_string(s)
                )));
            }
        }
        let c = ConstTensor::from_tensor(t.clone());
        let bytes = c
            .bytes()
            .map_err(|e| bad(e.to_string()))?
            .ok_or_else(|| bad("string values cannot be frozen".into()))?
            .into_owned();
        let ty = ValueType::known(t.dtype(), t.shape());
        g.g[n].op = Box::new(Input { ty: ty.clone() });
        g.g[n].outputs[0].ty = ty;
        let cname = fresh_value_name(g, &format!("{name}_frozen"));
        let k = g.add_node(
            Box::new(petasos_ir::ops::core::Constant { value: c }),
            0,
            &[cname],
            Provenance::default(),
        );
        g.g[k].outputs[0].ty = g.g[n].outputs[0].ty.clone();
        let edges: Vec<_> =
            g.g.edges_directed(n, Direction::Outgoing)
                .map(|e| (e.id(), e.target(), e.weight().dst_in))
                .collect();
        for (id, dst, dst_in) in edges {
            g.g.remove_edge(id);
            g.g.add_edge(k, dst, Edge { src_out: 0, dst_in });
        }
        out.push(Frozen {
            input: i,
            name,
            bytes,
        });
    }
    Ok(out)
}

/// A value name not used in `g`, made from `base`.
fn fresh_value_name(g: &Graph, base: &str) -> String {
    let used: BTreeSet<&str> =
        g.g.node_weights()
            .flat_map(|n| n.outputs.iter().map(|v| v.name.as_str()))
            .collect();
    let mut name = base.to_string();
    let mut k = 1;
    while used.contains(name.as_str()) {
        name = format!("{base}_{k}");
        k += 1;
    }
    name
}

/// Whether input slot `slot` of an `op` node is data whose values decide the output's shape
/// only through data-dependent results (NonZero, Unique, ...): such inputs are not frozen,
/// as that would fold the op away instead of running it.
fn data_dependent(op: &str) -> bool {
    matches!(
        op,
        "NonZero"
            | "Unique"
            | "Compress"
            | "NonMaxSuppression"
            | "StringSplit"
            | "If"
            | "Loop"
            | "Scan"
    )
}

/// The input slots of `op` whose values decide its output shapes, for the ops where that is
/// known (elsewhere every slot but the first counts).
fn shape_slots(op: &str) -> Option<&'static [usize]> {
    Some(match op {
        "Reshape" | "Expand" | "Tile" | "Squeeze" | "Unsqueeze" | "Split" | "TopK" | "OneHot"
        | "CenterCropPad" | "AffineGrid" | "Upsample" => &[1],
        "Slice" => &[1, 2, 3, 4],
        "Pad" => &[1, 3],
        "Resize" => &[2, 3],
        "ConstantOfShape" | "HannWindow" | "HammingWindow" | "BlackmanWindow" => &[0],
        "Range" | "MelWeightMatrix" => &[0, 1, 2],
        "Col2Im" => &[1, 2],
        "DFT" => &[1, 2],
        "STFT" => &[1, 3],
        "MaxUnpool" => &[2],
        o if o.starts_with("Reduce") => &[1],
        _ => return None,
    })
}

/// Whether input `slot` of `op` is a shape-deciding operand that may be a float tensor
/// (Range's bounds and step, OneHot's depth, Resize's / Upsample's scales).
fn float_shape_operand(op: &str, slot: usize) -> bool {
    matches!(
        (op, slot),
        ("Range", 0..=2) | ("OneHot", 1) | ("Resize", 2) | ("Upsample", 1)
    )
}

/// The graph inputs (rank <= 1) whose values decide a shape the graph needs static: for
/// every value without a static shape (after [`specialise`]), the integer inputs that reach
/// its node's shape-deciding inputs ([`shape_slots`]) through any chain of nodes, and the
/// float inputs that directly
/// feed a float shape operand ([`float_shape_operand`]). Empty when every shape is static.
/// Names in graph-input order.
pub fn inputs_to_freeze(g: &Graph) -> Vec<String> {
    let Ok(order) = g.topo_order() else {
        return Vec::new();
    };
    let mut seeds: Vec<ValueRef> = Vec::new();
    let mut found: BTreeSet<petgraph::stable_graph::NodeIndex> = BTreeSet::new();
    for &n in &order {
        let node = &g.g[n];
        if node.outputs.iter().all(|v| v.ty.numel().is_some()) {
            continue;
        }
        let op = node.op.op_type();
        if data_dependent(op) {
            continue;
        }
        for (slot, v) in g.node_inputs(n).into_iter().enumerate() {
            if let Some(v) = v {
                let shape_like = match shape_slots(op) {
                    Some(slots) => slots.contains(&slot),
                    None => slot > 0,
                };
                if shape_like {
                    seeds.push(v);
                }
                let t = &g.g[v.node].outputs[0].ty;
                let small = t.shape.as_ref().is_some_and(|s| s.len() <= 1);
                if float_shape_operand(op, slot)
                    && g.inputs.contains(&v.node)
                    && t.dtype.is_float()
                    && small
                {
                    found.insert(v.node);
                }
            }
        }
    }
    let mut seen: BTreeSet<petgraph::stable_graph::NodeIndex> = BTreeSet::new();
    while let Some(v) = seeds.pop() {
        if !seen.insert(v.node) {
            continue;
        }
        let node = &g.g[v.node];
        if g.inputs.contains(&v.node) {
            let t = &node.outputs[0].ty;
            let small = t.shape.as_ref().is_some_and(|s| s.len() <= 1);
            if t.dtype.is_int() && small {
                found.insert(v.node);
            }
            continue;
        }
        if data_dependent(node.op.op_type()) {
            continue;
        }
        seeds.extend(g.node_inputs(v.node).into_iter().flatten());
    }
    g.inputs
        .iter()
        .filter(|n| found.contains(n))
        .map(|&n| g.g[n].outputs[0].name.clone())
        .collect()
}

/// Parses `name=FILE` (for `--freeze-input`) and reads the tensor file (.pb or .npy).
pub fn parse_freeze_input(s: &str) -> Result<(String, Tensor), String> {
    let (k, v) = s
        .rsplit_once('=')
        .ok_or_else(|| format!("'{s}' is not NAME=FILE"))?;
    let t = petasos_ir::onnx::tensor_file::read_tensor_file(std::path::Path::new(v))
        .map_err(|e| format!("'{s}': {e}"))?;
    Ok((k.to_string(), t))
}
