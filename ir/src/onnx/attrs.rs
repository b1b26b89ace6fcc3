//! Typed access to an ONNX node's attributes while building an op.

use crate::graph::Graph;
use crate::weights::ConstTensor;
use crate::{import_err, Result};
use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::{AttributeProto, GraphProto, TensorProto};

/// Imports a subgraph in the current scope.
pub type SubgraphImporter<'a> = dyn Fn(&GraphProto) -> Result<Graph> + 'a;
/// Loads a tensor attribute.
pub type TensorLoader<'a> = dyn Fn(&TensorProto) -> Result<ConstTensor> + 'a;

/// An ONNX node as an op builder sees it.
pub struct NodeCtx<'a> {
    pub op_type: &'a str,
    pub domain: &'a str,
    /// The opset version of the node's domain.
    pub opset: i64,
    /// Number of input slots (omitted optional inputs included).
    pub num_inputs: usize,
    pub num_outputs: usize,
    pub node_name: &'a str,
    pub attrs: &'a [AttributeProto],
    pub subgraph: &'a SubgraphImporter<'a>,
    pub tensor: &'a TensorLoader<'a>,
}

impl<'a> NodeCtx<'a> {
    fn find(&self, name: &str) -> Option<&'a AttributeProto> {
        self.attrs.iter().find(|a| a.name == name)
    }

    fn kind(a: &AttributeProto) -> Option<AttributeType> {
        let t = a.type_.enum_value().ok()?;
        if t != AttributeType::UNDEFINED {
            return Some(t);
        }
        // Old exporters leave `type` unset: guess from the populated field.
        Some(if !a.ints.is_empty() {
            AttributeType::INTS
        } else if !a.floats.is_empty() {
            AttributeType::FLOATS
        } else if !a.strings.is_empty() {
            AttributeType::STRINGS
        } else if a.t.is_some() {
            AttributeType::TENSOR
        } else if a.g.is_some() {
            AttributeType::GRAPH
        } else if !a.s.is_empty() {
            AttributeType::STRING
        } else if a.f != 0.0 {
            AttributeType::FLOAT
        } else {
            AttributeType::INT
        })
    }

    fn wrong(&self, a: &AttributeProto, want: &str) -> crate::Error {
        import_err!(
            "attribute '{}' of {} node '{}' should be {want}, got {:?}",
            a.name,
            self.op_type,
            self.node_name,
            Self::kind(a)
        )
    }

    /// Whether the attribute is present.
    pub fn has(&self, name: &str) -> bool {
        self.find(name).is_some()
    }

    /// An integer attribute, if present.
    pub fn opt_i(&self, name: &str) -> Result<Option<i64>> {
        match self.find(name) {
            None => Ok(None),
            Some(a) => match Self::kind(a) {
                Some(AttributeType::INT) => Ok(Some(a.i)),
                _ => Err(self.wrong(a, "INT")),
            },
        }
    }
    /// An integer attribute or its default.
    pub fn i(&self, name: &str, default: i64) -> Result<i64> {
        Ok(self.opt_i(name)?.unwrap_or(default))
    }
    /// A float attribute, if present.
    pub fn opt_f(&self, name: &str) -> Result<Option<f32>> {
        match self.find(name) {
            None => Ok(None),
            Some(a) => match Self::kind(a) {
                Some(AttributeType::FLOAT) => Ok(Some(a.f)),
                Some(AttributeType::INT) => Ok(Some(a.i as f32)),
                _ => Err(self.wrong(a, "FLOAT")),
            },
        }
    }
    /// A float attribute or its default.
    pub fn f(&self, name: &str, default: f32) -> Result<f32> {
        Ok(self.opt_f(name)?.unwrap_or(default))
    }
    /// A string attribute, if present.
    pub fn opt_s(&self, name: &str) -> Result<Option<String>> {
        match self.find(name) {
            None => Ok(None),
            Some(a) => match Self::kind(a) {
                Some(AttributeType::STRING) => Ok(Some(String::from_utf8_lossy(&a.s).into_owned())),
                _ => Err(self.wrong(a, "STRING")),
            },
        }
    }
    /// A string attribute or its default.
    pub fn s(&self, name: &str, default: &str) -> Result<String> {
        Ok(self.opt_s(name)?.unwrap_or_else(|| default.to_string()))
    }
    /// An integer-list attribute, if present.
    pub fn ints(&self, name: &str) -> Result<Option<Vec<i64>>> {
        match self.find(name) {
            None => Ok(None),
            Some(a) => match Self::kind(a) {
                Some(AttributeType::INTS) => Ok(Some(a.ints.clone())),
                Some(AttributeType::INT) => Ok(Some(vec![a.i])),
                _ => Err(self.wrong(a, "INTS")),
            },
        }
    }
    /// A float-list attribute, if present.
    pub fn floats(&self, name: &str) -> Result<Option<Vec<f32>>> {
        match self.find(name) {
            None => Ok(None),
            Some(a) => match Self::kind(a) {
                Some(AttributeType::FLOATS) => Ok(Some(a.floats.clone())),
                Some(AttributeType::FLOAT) => Ok(Some(vec![a.f])),
                _ => Err(self.wrong(a, "FLOATS")),
            },
        }
    }
    /// A string-list attribute, if present.
    pub fn strings(&self, name: &str) -> Result<Option<Vec<String>>> {
        match self.find(name) {
            None => Ok(None),
            Some(a) => match Self::kind(a) {
                Some(AttributeType::STRINGS) => Ok(Some(
                    a.strings
                        .iter()
                        .map(|s| String::from_utf8_lossy(s).into_owned())
                        .collect(),
                )),
                _ => Err(self.wrong(a, "STRINGS")),
            },
        }
    }
    /// A tensor attribute, if present.
    pub fn tensor_attr(&self, name: &str) -> Result<Option<ConstTensor>> {
        match self.find(name) {
            None => Ok(None),
            Some(a) => match Self::kind(a) {
                Some(AttributeType::TENSOR) => Ok(Some((self.tensor)(&a.t)?)),
                _ => Err(self.wrong(a, "TENSOR")),
            },
        }
    }
    /// A graph attribute imported as a subgraph, if present.
    pub fn graph(&self, name: &str) -> Result<Option<Graph>> {
        match self.find(name) {
            None => Ok(None),
            Some(a) => match Self::kind(a) {
                Some(AttributeType::GRAPH) => Ok(Some((self.subgraph)(&a.g)?)),
                _ => Err(self.wrong(a, "GRAPH")),
            },
        }
    }
    /// A graph attribute that must be present.
    pub fn req_graph(&self, name: &str) -> Result<Graph> {
        self.graph(name)?.ok_or_else(|| {
            import_err!(
                "{} node '{}' lacks its '{name}' graph attribute",
                self.op_type,
                self.node_name
            )
        })
    }
    /// An error saying an attribute value is invalid.
    pub fn invalid(&self, name: &str, why: &str) -> crate::Error {
        import_err!(
            "attribute '{name}' of {} node '{}': {why}",
            self.op_type,
            self.node_name
        )
    }
}
