//! Programmatic graph construction, for built-in architectures and tests.
//!
//! [`GraphBuilder`] adds nodes by ONNX op name and typed attributes; each op is made by the same
//! builder the ONNX importer uses (so attribute checks and defaults are identical), and each
//! node's output types are inferred as it is added, so a mistake surfaces at the node that made
//! it. Weights are synthetic (a seed, no bytes) unless given as values: building a 150B-parameter
//! graph allocates no weight memory.

use crate::graph::{Graph, Provenance, ValueRef};
use crate::infer::{node_context, Inferencer};
use crate::onnx::attrs::NodeCtx;
use crate::onnx::export::attr_proto;
use crate::op::Attr;
use crate::ops::registry;
use crate::shape::ValueType;
use crate::tensor::Tensor;
use crate::verify::verify;
use crate::weights::ConstTensor;
use crate::{import_err, DType, Result};
use onnx_protobuf::AttributeProto;
use std::collections::HashMap;

/// The opset the builder's ops follow (the newest the op library implements throughout).
pub const BUILDER_OPSET: i64 = 23;

/// Builds a [`Graph`] node by node, inferring types as it goes.
pub struct GraphBuilder {
    g: Graph,
    inf: Inferencer,
    scope: Vec<String>,
    used: HashMap<String, usize>,
    node_names: HashMap<String, usize>,
    seed: u64,
}

impl GraphBuilder {
    /// An empty graph called `name`; `seed` seeds every synthetic weight (each weight's own seed
    /// is derived from it and the weight's name, so weights do not depend on build order).
    pub fn new(name: &str, seed: u64) -> GraphBuilder {
        let mut g = Graph::new(name);
        g.opsets.insert(String::new(), BUILDER_OPSET);
        GraphBuilder {
            g,
            inf: Inferencer::default(),
            scope: Vec::new(),
            used: HashMap::new(),
            node_names: HashMap::new(),
            seed,
        }
    }

    /// Enters a named scope (`layers.3`, `attn`): names and layer paths below it are prefixed.
    pub fn push(&mut self, part: &str) {
        self.scope.push(part.to_string());
    }

    /// Leaves the innermost scope.
    pub fn pop(&mut self) {
        self.scope.pop();
    }

    /// The current scope as a layer path, `/layers.3/attn`.
    pub fn path(&self) -> String {
        self.scope.iter().map(|s| format!("/{s}")).collect()
    }

    /// A unique value name under the current scope.
    fn fresh(&mut self, base: &str) -> String {
        let p = self.scope.join(".");
        let stem = if p.is_empty() {
            base.to_string()
        } else {
            format!("{p}.{base}")
        };
        let k = self.used.entry(stem.clone()).or_insert(0);
        *k += 1;
        if *k == 1 {
            stem
        } else {
            format!("{stem}_{}", *k - 1)
        }
    }

    /// Adds a formal input of type `ty`.
    pub fn input(&mut self, name: &str, ty: ValueType) -> ValueRef {
        let name = self.fresh(name);
        let n = self.g.add_input(&name, ty);
        ValueRef { node: n, out: 0 }
    }

    /// Adds a weight of `shape` under the current scope: synthetic values uniform in
    /// `[-scale, scale]`, seeded from the builder's seed and the weight's full name.
    pub fn weight(&mut self, name: &str, dtype: DType, shape: &[usize], scale: f32) -> ValueRef {
        let name = self.fresh(name);
        let seed = self.seed ^ fnv1a(name.as_bytes());
        let c = ConstTensor::synthetic(dtype, shape.to_vec(), seed, scale);
        self.constant_tensor(&name, c)
    }

    /// Adds a constant with the given values.
    pub fn constant(&mut self, name: &str, value: Tensor) -> ValueRef {
        let name = self.fresh(name);
        self.constant_tensor(&name, ConstTensor::from_tensor(value))
    }

    /// A 1-D int64 constant (shapes, axes).
    pub fn ints(&mut self, name: &str, v: &[i64]) -> Result<ValueRef> {
        Ok(self.constant(name, Tensor::from_i64(&[v.len()], v.to_vec())?))
    }

    /// A scalar constant of `dtype`.
    pub fn scalar(&mut self, name: &str, dtype: DType, v: f64) -> ValueRef {
        self.constant(name, Tensor::scalar(dtype, v))
    }

    fn constant_tensor(&mut self, name: &str, c: ConstTensor) -> ValueRef {
        let n = self.g.add_const(name, c);
        // Constants always infer (their type is their shape); folding small ones is best effort.
        let _ = self.inf.infer_node(&mut self.g, n);
        ValueRef { node: n, out: 0 }
    }

    /// Adds a node of the default domain with one output.
    pub fn op(
        &mut self,
        op_type: &str,
        inputs: &[ValueRef],
        attrs: &[(&str, Attr)],
    ) -> Result<ValueRef> {
        let ins: Vec<Option<ValueRef>> = inputs.iter().copied().map(Some).collect();
        Ok(self.node("", op_type, &ins, attrs, 1)?[0])
    }

    /// Adds a node: `inputs` in slot order (`None` for an omitted optional input), `attrs` as
    /// ONNX attributes, `num_outputs` outputs. Errors name the node and what is wrong.
    pub fn node(
        &mut self,
        domain: &str,
        op_type: &str,
        inputs: &[Option<ValueRef>],
        attrs: &[(&str, Attr)],
        num_outputs: usize,
    ) -> Result<Vec<ValueRef>> {
        let node_name = {
            let base = format!("{}/{op_type}", self.path());
            let k = self.node_names.entry(base.clone()).or_insert(0);
            *k += 1;
            if *k == 1 {
                base
            } else {
                format!("{base}_{}", *k - 1)
            }
        };
        let protos: Vec<AttributeProto> = attrs
            .iter()
            .map(|(n, a)| attr_proto(n, a))
            .collect::<Result<_>>()?;
        let opset = if domain.is_empty() {
            BUILDER_OPSET
        } else {
            *self.g.opsets.entry(domain.to_string()).or_insert(1)
        };
        let no_sub = |_: &onnx_protobuf::GraphProto| -> Result<Graph> {
            Err(import_err!(
                "the graph builder does not take subgraph attributes"
            ))
        };
        let no_tensor = |_: &onnx_protobuf::TensorProto| -> Result<ConstTensor> {
            Err(import_err!(
                "the graph builder does not take tensor attributes; pass a constant input"
            ))
        };
        let cx = NodeCtx {
            op_type,
            domain,
            opset,
            num_inputs: inputs.len(),
            num_outputs,
            node_name: &node_name,
            attrs: &protos,
            subgraph: &no_sub,
            tensor: &no_tensor,
        };
        let build = registry().get(domain, op_type).ok_or_else(|| {
            import_err!("{node_name}: op {op_type} (domain '{domain}') is not in the op library")
        })?;
        let op = build(&cx).map_err(|e| import_err!("{node_name}: {e}"))?;
        let outs: Vec<String> = (0..num_outputs)
            .map(|i| {
                let base = if num_outputs == 1 {
                    op_type.to_ascii_lowercase()
                } else {
                    format!("{}_{i}", op_type.to_ascii_lowercase())
                };
                self.fresh(&base)
            })
            .collect();
        let prov = Provenance {
            onnx_name: node_name.clone(),
            layer_path: self.path(),
            source: String::new(),
        };
        let n = self.g.add_node(op, inputs.len(), &outs, prov);
        for (i, r) in inputs.iter().enumerate() {
            if let Some(r) = r {
                self.g.connect(*r, n, i);
            }
        }
        self.inf
            .infer_node(&mut self.g, n)
            .map_err(|e| node_context(&self.g, n, e))?;
        Ok((0..num_outputs)
            .map(|out| ValueRef { node: n, out })
            .collect())
    }

    /// The inferred type of a value.
    pub fn ty(&self, v: ValueRef) -> Option<&ValueType> {
        self.g.value_type(v)
    }

    /// Marks `v` as a graph output called `name`.
    pub fn output(&mut self, v: ValueRef, name: &str) {
        self.g.add_output(v, name);
    }

    /// Sets a metadata entry of the graph (shown by `inspect`).
    pub fn metadata(&mut self, key: &str, value: &str) {
        self.g.metadata.insert(key.to_string(), value.to_string());
    }

    /// Verifies and returns the graph.
    pub fn finish(self) -> Result<Graph> {
        verify(&self.g)?;
        Ok(self.g)
    }
}

/// FNV-1a, for seeds derived from names.
fn fnv1a(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| {
        (h ^ x as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interp;
    use crate::shape::Dim;

    #[test]
    fn builds_infers_and_runs_a_small_mlp() {
        let mut b = GraphBuilder::new("mlp", 7);
        let x = b.input(
            "x",
            ValueType::new(DType::F32, vec![Dim::sym("batch"), Dim::Known(4)]),
        );
        b.push("fc1");
        let w = b.weight("weight", DType::F32, &[4, 8], 0.5);
        let h = b.op("MatMul", &[x, w], &[]).unwrap();
        b.pop();
        let r = b.op("Relu", &[h], &[]).unwrap();
        let ty = b.ty(r).unwrap().clone();
        assert_eq!(ty.shape.as_ref().unwrap()[1], Dim::Known(8));
        assert_eq!(ty.shape.as_ref().unwrap()[0], Dim::sym("batch"));
        b.output(r, "y");
        let g = b.finish().unwrap();
        let xin = Tensor::from_f32(&[2, 4], vec![1.0; 8]).unwrap();
        let out = interp::run(&g, vec![xin]).unwrap();
        assert_eq!(out[0].shape(), &[2, 8]);
        assert!(out[0].to_f64_vec().unwrap().iter().all(|v| *v >= 0.0));
    }

    #[test]
    fn a_bad_node_is_an_error_naming_it() {
        let mut b = GraphBuilder::new("bad", 1);
        let x = b.input("x", ValueType::known(DType::F32, &[2, 3]));
        let y = b.input("y", ValueType::known(DType::F32, &[4, 5]));
        b.push("block");
        let e = b.op("MatMul", &[x, y], &[]).unwrap_err().to_string();
        assert!(e.contains("MatMul"), "{e}");
    }
}
