//! ONNX export: [`Graph`] -> `ModelProto`.
//!
//! Constants become initializers, formal inputs become graph inputs, captured values are
//! referenced by their outer names, and each op reports its attributes ([`crate::op::Op::attrs`]).
//! Files are written atomically (temporary file, then rename).

use super::tensor_proto::to_proto;
use crate::graph::Graph;
use crate::op::Attr;
use crate::ops::core::Opaque;
use crate::shape::{Dim, ValueType};
use crate::{Error, Result};
use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::tensor_shape_proto::dimension::Value as DV;
use onnx_protobuf::tensor_shape_proto::Dimension;
use onnx_protobuf::{
    type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    StringStringEntryProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use protobuf::{Message, MessageField};
use std::io::Write;
use std::path::Path;

fn type_proto(t: &ValueType) -> TypeProto {
    let mut tt = type_proto::Tensor::new();
    tt.elem_type = t.dtype.onnx_code();
    if let Some(s) = &t.shape {
        let mut sp = TensorShapeProto::new();
        for d in s {
            let mut dim = Dimension::new();
            dim.value = Some(match d {
                Dim::Known(v) => DV::DimValue(*v as i64),
                other => DV::DimParam(other.to_string()),
            });
            sp.dim.push(dim);
        }
        tt.shape = MessageField::some(sp);
    }
    let mut tp = TypeProto::new();
    tp.value = Some(type_proto::Value::TensorType(tt));
    tp
}

fn value_info(name: &str, t: &ValueType) -> ValueInfoProto {
    let mut vi = ValueInfoProto::new();
    vi.name = name.to_string();
    vi.type_ = MessageField::some(type_proto(t));
    vi
}

pub(crate) fn attr_proto(name: &str, a: &Attr) -> Result<AttributeProto> {
    let mut p = AttributeProto::new();
    p.name = name.to_string();
    let ty = match a {
        Attr::Int(v) => {
            p.i = *v;
            AttributeType::INT
        }
        Attr::Float(v) => {
            p.f = *v;
            AttributeType::FLOAT
        }
        Attr::Str(s) => {
            p.s = s.as_bytes().to_vec();
            AttributeType::STRING
        }
        Attr::Ints(v) => {
            p.ints = v.clone();
            AttributeType::INTS
        }
        Attr::Floats(v) => {
            p.floats = v.clone();
            AttributeType::FLOATS
        }
        Attr::Strs(v) => {
            p.strings = v.iter().map(|s| s.as_bytes().to_vec()).collect();
            AttributeType::STRINGS
        }
        Attr::Tensor(t) => {
            p.t = MessageField::some(to_proto("", t)?);
            AttributeType::TENSOR
        }
        Attr::Tensors(ts) => {
            p.tensors = ts.iter().map(|t| to_proto("", t)).collect::<Result<_>>()?;
            AttributeType::TENSORS
        }
        Attr::Graph(g) => {
            p.g = MessageField::some(export_graph(g)?);
            AttributeType::GRAPH
        }
        Attr::Graphs(gs) => {
            p.graphs = gs.iter().map(export_graph).collect::<Result<_>>()?;
            AttributeType::GRAPHS
        }
    };
    p.type_ = ty.into();
    Ok(p)
}

/// Exports one graph (main graph or subgraph).
pub fn export_graph(g: &Graph) -> Result<GraphProto> {
    let mut gp = GraphProto::new();
    gp.name = g.name.clone();
    for &i in &g.inputs {
        let v = &g.g[i].outputs[0];
        gp.input.push(value_info(&v.name, &v.ty));
    }
    for n in g.topo_order()? {
        let node = &g.g[n];
        let ot = node.op.op_type();
        if ot == "Input" {
            continue;
        }
        if let Some(c) = g.constant(n) {
            gp.initializer.push(to_proto(&node.outputs[0].name, c)?);
            continue;
        }
        let mut np = NodeProto::new();
        np.op_type = ot.to_string();
        np.domain = node.op.domain().to_string();
        np.name = node.provenance.onnx_name.clone();
        let n_regular = node.num_inputs - node.captures.len();
        np.input = g
            .node_inputs(n)
            .iter()
            .take(n_regular)
            .map(|v| v.and_then(|v| g.value_name(v)).unwrap_or("").to_string())
            .collect();
        // Trailing omitted inputs are dropped, as ONNX writers do.
        while np.input.last().is_some_and(|s| s.is_empty()) {
            np.input.pop();
        }
        np.output = node.outputs.iter().map(|v| v.name.clone()).collect();
        if let Some(o) = node.op.as_any().downcast_ref::<Opaque>() {
            for raw in &o.raw_attrs {
                np.attribute.push(
                    AttributeProto::parse_from_bytes(raw)
                        .map_err(|e| Error::Export(format!("attribute of '{}': {e}", np.name)))?,
                );
            }
        } else {
            for (name, a) in node.op.attrs() {
                np.attribute.push(attr_proto(name, &a)?);
            }
        }
        if !node.provenance.layer_path.is_empty() {
            let mut kv = StringStringEntryProto::new();
            kv.key = "petasos.layer_path".into();
            kv.value = node.provenance.layer_path.clone();
            np.metadata_props.push(kv);
        }
        gp.node.push(np);
    }
    for o in &g.outputs {
        let ty = g.value_type(o.value).ok_or_else(|| {
            Error::Export(format!("output '{}' refers to a missing value", o.name))
        })?;
        let vname = g.value_name(o.value).unwrap_or("");
        if vname != o.name {
            // Rename through an Identity so the output keeps its name.
            let mut np = NodeProto::new();
            np.op_type = "Identity".into();
            np.input = vec![vname.to_string()];
            np.output = vec![o.name.clone()];
            gp.node.push(np);
        }
        gp.output.push(value_info(&o.name, ty));
    }
    Ok(gp)
}

/// Largest constant payload exported into one protobuf (2 GiB less room for the graph).
const MAX_PROTO_BYTES: u64 = (2 << 30) - (64 << 20);

/// Exports a top-level graph as a model. Errors when its constants exceed what one protobuf
/// file can hold.
pub fn export_model(g: &Graph) -> Result<ModelProto> {
    let bytes = crate::stats::graph_stats(g).parameter_bytes;
    if bytes > MAX_PROTO_BYTES {
        return Err(Error::Export(format!(
            "the model's constants take {:.2} GB, more than the 2 GiB one ONNX protobuf file can \
             hold (export with external data is not implemented yet); export a smaller config",
            bytes as f64 / 1e9
        )));
    }
    let mut m = ModelProto::new();
    m.ir_version = g
        .metadata
        .get("ir_version")
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
        .max(3);
    m.producer_name = "petasos".into();
    m.producer_version = env!("CARGO_PKG_VERSION").into();
    let mut opsets = g.opsets.clone();
    opsets.entry(String::new()).or_insert(21);
    collect_domains(g, &mut opsets);
    for (d, v) in opsets {
        let mut o = OperatorSetIdProto::new();
        o.domain = d;
        o.version = v;
        m.opset_import.push(o);
    }
    m.graph = MessageField::some(export_graph(g)?);
    Ok(m)
}

fn collect_domains(g: &Graph, opsets: &mut std::collections::BTreeMap<String, i64>) {
    for n in g.g.node_weights() {
        let d = n.op.domain();
        if !d.is_empty() {
            opsets.entry(d.to_string()).or_insert(1);
        }
        for sg in n.op.subgraphs() {
            collect_domains(sg, opsets);
        }
    }
}

/// Serialises `g` and writes it to `path` atomically.
pub fn save_model(g: &Graph, path: &Path) -> Result<()> {
    let bytes = export_model(g)?
        .write_to_bytes()
        .map_err(|e| Error::Export(e.to_string()))?;
    write_atomic(path, &bytes)
}

/// Writes `bytes` to a temporary file beside `path`, then renames it into place.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let fname = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let tmp = dir.join(format!(".{fname}.tmp{}", std::process::id()));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(io)
}
