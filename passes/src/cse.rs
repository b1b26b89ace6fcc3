//! Common-subexpression elimination (`cse`).
//!
//! # What it does
//! Finds nodes that compute the same thing — same op type and domain, same attributes (compared
//! through `Op::attrs()`), same input values in the same slots, same output count and dtypes —
//! keeps the first in topological order and makes every reader of the others read it instead.
//! Constants are nodes too: two constants with the same dtype, shape and values merge.
//!
//! # When it applies
//! To deterministic ops: not random ([`crate::patch::is_random`]), no subgraphs, no captures,
//! not opaque (an unimplemented op's attributes are not compared). Constants compare by value
//! when their bytes are at most `PassContext::fold_limit` elements, else only by identity (the
//! same seed of a synthetic weight, the same bytes of the same mapped file). Floats attributes
//! compare by bits. Each merged node is one rewrite; nodes are visited in topological order, so
//! a merge exposes the next one (`a = Relu(x); b = Relu(x); Add(a, x)` and `Add(b, x)`).
//!
//! # What it preserves
//! Values: the kept node computes exactly what the dropped one did. Graph outputs keep their
//! names (an output that pointed at a dropped value points at the kept one). The dropped node is
//! removed at once; nothing else is.
//!
//! # Example
//! ```text
//! before:  a = Relu(x)   b = Relu(x)   y = Add(a, b)
//! after:   a = Relu(x)                 y = Add(a, a)
//! ```

use crate::patch::{describe, is_random, replace_node, Budget};
use crate::{Pass, PassContext, PassError, PassReport};
use petasos_ir::op::Attr;
use petasos_ir::ops::core::Opaque;
use petasos_ir::weights::{encode_le, ConstTensor, Storage};
use petasos_ir::{DType, Graph, ValueRef};
use petgraph::stable_graph::NodeIndex;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Registry name.
pub const NAME: &str = "cse";
/// One-line summary.
pub const SUMMARY: &str = "merges nodes with the same op, attributes and inputs";

/// The common-subexpression elimination pass.
pub struct Cse;

impl Pass for Cse {
    fn name(&self) -> &'static str {
        NAME
    }
    fn summary(&self) -> &'static str {
        SUMMARY
    }
    fn run(&self, g: &mut Graph, cx: &PassContext) -> Result<PassReport, PassError> {
        let (n, counts) = merge(g, cx.budget, cx.fold_limit)?;
        Ok(PassReport::new(n, describe("merged", &counts)))
    }
}

/// Merges up to `budget` nodes with the default size limit; returns how many were merged.
pub fn apply(g: &mut Graph, budget: usize) -> Result<usize, PassError> {
    merge(g, budget, crate::DEFAULT_FOLD_LIMIT).map(|(n, _)| n)
}

/// A constant's contents, as far as equality goes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Contents {
    Bytes(Vec<u8>),
    Strings(Vec<String>),
    Synthetic {
        seed: u64,
        scale: u32,
    },
    /// The same bytes of the same buffer (`ptr`, offset, length).
    Identity(usize, usize, usize),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct TensorKey {
    dtype: DType,
    shape: Vec<usize>,
    contents: Contents,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum AttrKey {
    Int(i64),
    Float(u32),
    Str(String),
    Ints(Vec<i64>),
    Floats(Vec<u32>),
    Strs(Vec<String>),
    Tensor(TensorKey),
    Tensors(Vec<TensorKey>),
}

/// Everything two nodes must share to be merged.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct NodeKey {
    op_type: String,
    domain: String,
    attrs: Vec<(&'static str, AttrKey)>,
    inputs: Vec<Option<ValueRef>>,
    outputs: Vec<DType>,
}

fn tensor_key(c: &ConstTensor, limit: usize) -> Option<TensorKey> {
    let small = c.numel() <= limit;
    let contents = match &c.storage {
        Storage::Synthetic { seed, scale } => Contents::Synthetic {
            seed: *seed,
            scale: scale.to_bits(),
        },
        Storage::Mapped { map, offset, len } if !small => {
            Contents::Identity(Arc::as_ptr(map) as *const u8 as usize, *offset, *len)
        }
        Storage::Owned(b) if !small => Contents::Identity(b.as_ptr() as usize, 0, b.len()),
        Storage::Values(t) if !small => {
            Contents::Identity(Arc::as_ptr(t) as *const u8 as usize, 0, 0)
        }
        Storage::Detached { .. } => return None,
        Storage::Values(t) if c.dtype == DType::String => {
            Contents::Strings(t.as_s().ok()?.iter().cloned().collect())
        }
        Storage::Values(t) => Contents::Bytes(encode_le(t).ok()?),
        Storage::Mapped { .. } | Storage::Owned(_) => {
            Contents::Bytes(c.bytes().ok()??.into_owned())
        }
    };
    Some(TensorKey {
        dtype: c.dtype,
        shape: c.shape.clone(),
        contents,
    })
}

fn attr_key(a: &Attr, limit: usize) -> Option<AttrKey> {
    Some(match a {
        Attr::Int(v) => AttrKey::Int(*v),
        Attr::Float(v) => AttrKey::Float(v.to_bits()),
        Attr::Str(v) => AttrKey::Str(v.clone()),
        Attr::Ints(v) => AttrKey::Ints(v.clone()),
        Attr::Floats(v) => AttrKey::Floats(v.iter().map(|x| x.to_bits()).collect()),
        Attr::Strs(v) => AttrKey::Strs(v.clone()),
        Attr::Tensor(t) => AttrKey::Tensor(tensor_key(t, limit)?),
        Attr::Tensors(ts) => AttrKey::Tensors(
            ts.iter()
                .map(|t| tensor_key(t, limit))
                .collect::<Option<_>>()?,
        ),
        Attr::Graph(_) | Attr::Graphs(_) => return None,
    })
}

/// The key of node `n`, or `None` when it must not be merged.
fn node_key(g: &Graph, n: NodeIndex, limit: usize) -> Option<NodeKey> {
    let node = &g.g[n];
    let op = node.op.as_ref();
    if op.op_type() == "Input"
        || is_random(op)
        || !op.subgraphs().is_empty()
        || !node.captures.is_empty()
        || op.as_any().downcast_ref::<Opaque>().is_some()
    {
        return None;
    }
    let mut attrs = op
        .attrs()
        .iter()
        .map(|(name, a)| Some((*name, attr_key(a, limit)?)))
        .collect::<Option<Vec<_>>>()?;
    attrs.sort_by(|a, b| a.0.cmp(b.0));
    Some(NodeKey {
        op_type: op.op_type().to_string(),
        domain: op.domain().to_string(),
        attrs,
        inputs: g.node_inputs(n),
        outputs: node.outputs.iter().map(|v| v.ty.dtype).collect(),
    })
}

fn merge(
    g: &mut Graph,
    budget: usize,
    limit: usize,
) -> Result<(usize, BTreeMap<String, usize>), PassError> {
    let order = g.topo_order().map_err(|source| PassError::Ir {
        pass: NAME.into(),
        source,
    })?;
    let mut budget = Budget::new(budget);
    let mut counts = BTreeMap::new();
    let mut seen: HashMap<NodeKey, NodeIndex> = HashMap::new();
    for n in order {
        if !budget.available() {
            break;
        }
        let Some(key) = node_key(g, n, limit) else {
            continue;
        };
        let Some(&kept) = seen.get(&key) else {
            seen.insert(key, n);
            continue;
        };
        budget.take();
        let with: Vec<ValueRef> = (0..key.outputs.len())
            .map(|out| ValueRef { node: kept, out })
            .collect();
        *counts.entry(g.g[n].op.op_type().to_string()).or_default() += 1;
        replace_node(g, n, &with)?;
    }
    Ok((budget.used(), counts))
}
