//! The graph: a petgraph `StableGraph` of nodes, each holding an [`Op`], its output values and
//! its provenance; edges carry which output feeds which input.
//!
//! Invariants (checked by [`crate::verify`]): the graph is acyclic; every input slot of a node has
//! at most one incoming edge, and slots without one are omitted optional inputs; every edge's
//! source output exists; formal inputs are `Input` nodes; subgraph captures are `Input` nodes
//! named by the outer value they stand for.

use crate::op::Op;
use crate::ops::core::{Constant, Input};
use crate::shape::ValueType;
use crate::weights::ConstTensor;
use petgraph::stable_graph::{NodeIndex, StableGraph};
use petgraph::visit::EdgeRef;
use petgraph::Direction;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where a node came from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// The ONNX node name.
    pub onnx_name: String,
    /// The layer path the exporter encoded, e.g. `/layer1/0/conv1`.
    pub layer_path: String,
    /// Source location recorded by the exporter (torch stack trace), if any.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
}

/// One output value of a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Value {
    /// The value's name (the ONNX tensor name).
    pub name: String,
    /// Its type, filled in by shape inference.
    pub ty: ValueType,
}

/// A node: an op plus its outputs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Node {
    pub op: Box<dyn Op>,
    /// Number of input slots (including omitted optional ones).
    pub num_inputs: usize,
    pub outputs: Vec<Value>,
    pub provenance: Provenance,
    /// Outer-scope value names this node's subgraphs capture, fed by the input slots that follow
    /// the op's own inputs (`num_inputs - captures.len() ..`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub captures: Vec<String>,
}

/// An edge: output `src_out` of the source feeds input slot `dst_in` of the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Edge {
    pub src_out: usize,
    pub dst_in: usize,
}

/// A reference to one output of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ValueRef {
    pub node: NodeIndex,
    pub out: usize,
}

/// A graph output: the value and its name.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GraphOutput {
    pub value: ValueRef,
    pub name: String,
}

/// A dataflow graph (a model's main graph or a subgraph).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Graph {
    pub name: String,
    pub g: StableGraph<Node, Edge>,
    /// Formal inputs (`Input` nodes), in order.
    pub inputs: Vec<NodeIndex>,
    /// Captured outer values (`Input` nodes named by the outer value), in order.
    pub captures: Vec<NodeIndex>,
    pub outputs: Vec<GraphOutput>,
    /// Opset versions by domain (`""` = ai.onnx); set on top-level graphs.
    pub opsets: BTreeMap<String, i64>,
    /// Free-form model metadata (producer, ir_version, ...).
    pub metadata: BTreeMap<String, String>,
}

impl Graph {
    /// An empty graph.
    pub fn new(name: &str) -> Graph {
        Graph {
            name: name.to_string(),
            ..Default::default()
        }
    }

    /// Adds a node with `num_inputs` slots and outputs named `outputs` (types left unknown
    /// until inference).
    pub fn add_node(
        &mut self,
        op: Box<dyn Op>,
        num_inputs: usize,
        outputs: &[String],
        provenance: Provenance,
    ) -> NodeIndex {
        let outputs = outputs
            .iter()
            .map(|n| Value {
                name: n.clone(),
                ty: ValueType::unranked(crate::DType::F32),
            })
            .collect();
        self.g.add_node(Node {
            op,
            num_inputs,
            outputs,
            provenance,
            captures: Vec::new(),
        })
    }

    /// Adds a formal input.
    pub fn add_input(&mut self, name: &str, ty: ValueType) -> NodeIndex {
        let n = self.add_node(
            Box::new(Input { ty: ty.clone() }),
            0,
            &[name.to_string()],
            Provenance::default(),
        );
        self.g[n].outputs[0].ty = ty;
        self.inputs.push(n);
        n
    }

    /// Adds a constant node.
    pub fn add_const(&mut self, name: &str, value: ConstTensor) -> NodeIndex {
        let ty = ValueType::known(value.dtype, &value.shape);
        let n = self.add_node(
            Box::new(Constant { value }),
            0,
            &[name.to_string()],
            Provenance::default(),
        );
        self.g[n].outputs[0].ty = ty;
        n
    }

    /// Connects `src` to input slot `dst_in` of `dst`.
    pub fn connect(&mut self, src: ValueRef, dst: NodeIndex, dst_in: usize) {
        self.g.add_edge(
            src.node,
            dst,
            Edge {
                src_out: src.out,
                dst_in,
            },
        );
    }

    /// Marks a value as a graph output.
    pub fn add_output(&mut self, value: ValueRef, name: &str) {
        self.outputs.push(GraphOutput {
            value,
            name: name.to_string(),
        });
    }

    /// The values feeding each input slot of `n`, `None` for omitted ones.
    pub fn node_inputs(&self, n: NodeIndex) -> Vec<Option<ValueRef>> {
        let mut v = vec![None; self.g[n].num_inputs];
        for e in self.g.edges_directed(n, Direction::Incoming) {
            let w = e.weight();
            if w.dst_in < v.len() {
                v[w.dst_in] = Some(ValueRef {
                    node: e.source(),
                    out: w.src_out,
                });
            }
        }
        v
    }

    /// The type of a value.
    pub fn value_type(&self, v: ValueRef) -> Option<&ValueType> {
        self.g
            .node_weight(v.node)
            .and_then(|n| n.outputs.get(v.out))
            .map(|x| &x.ty)
    }

    /// The name of a value.
    pub fn value_name(&self, v: ValueRef) -> Option<&str> {
        self.g
            .node_weight(v.node)
            .and_then(|n| n.outputs.get(v.out))
            .map(|x| x.name.as_str())
    }

    /// Nodes in a topological order, or an error naming a node on a cycle.
    pub fn topo_order(&self) -> crate::Result<Vec<NodeIndex>> {
        petgraph::algo::toposort(&self.g, None).map_err(|c| {
            let n = &self.g[c.node_id()];
            crate::Error::Verify(format!(
                "the graph has a cycle through node '{}' ({})",
                n.provenance.onnx_name,
                n.op.op_type()
            ))
        })
    }

    /// Number of (value, user) pairs reading each value.
    pub fn users(&self, v: ValueRef) -> Vec<(NodeIndex, usize)> {
        self.g
            .edges_directed(v.node, Direction::Outgoing)
            .filter(|e| e.weight().src_out == v.out)
            .map(|e| (e.target(), e.weight().dst_in))
            .collect()
    }

    /// The constant held by a node, if it is a `Constant`.
    pub fn constant(&self, n: NodeIndex) -> Option<&ConstTensor> {
        self.g
            .node_weight(n)?
            .op
            .as_any()
            .downcast_ref::<Constant>()
            .map(|c| &c.value)
    }

    /// Number of op nodes (excluding inputs and constants).
    pub fn op_count(&self) -> usize {
        self.g
            .node_weights()
            .filter(|n| !matches!(n.op.op_type(), "Input" | "Constant"))
            .count()
    }
}
