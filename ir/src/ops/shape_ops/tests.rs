//! Import-level tests of the family: symbolic shape values flowing through shape subgraphs.

use crate::onnx::import_bytes;
use crate::shape::Dim;
use onnx_protobuf::tensor_shape_proto::{dimension, Dimension};
use onnx_protobuf::type_proto::{Tensor as TT, Value};
use onnx_protobuf::{
    GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto,
    TypeProto, ValueInfoProto,
};
use protobuf::{Message, MessageField};

fn dim(d: &str) -> Dimension {
    let mut x = Dimension::new();
    x.value = Some(match d.parse::<i64>() {
        Ok(v) => dimension::Value::DimValue(v),
        Err(_) => dimension::Value::DimParam(d.into()),
    });
    x
}

fn vi(name: &str, elem: i32, dims: &[&str]) -> ValueInfoProto {
    let mut shape = TensorShapeProto::new();
    shape.dim = dims.iter().map(|d| dim(d)).collect();
    let mut t = TT::new();
    t.elem_type = elem;
    t.shape = MessageField::some(shape);
    let mut tp = TypeProto::new();
    tp.value = Some(Value::TensorType(t));
    let mut v = ValueInfoProto::new();
    v.name = name.into();
    v.type_ = MessageField::some(tp);
    v
}

fn ints(name: &str, dims: &[i64], v: &[i64]) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.into();
    t.dims = dims.to_vec();
    t.data_type = 7;
    t.int64_data = v.to_vec();
    t
}

fn node(op: &str, ins: &[&str], outs: &[&str]) -> NodeProto {
    let mut n = NodeProto::new();
    n.op_type = op.into();
    n.input = ins.iter().map(|s| s.to_string()).collect();
    n.output = outs.iter().map(|s| s.to_string()).collect();
    n
}

/// `Reshape(x, Concat(Unsqueeze(Gather(Shape(x), 0)), Unsqueeze(Gather(Shape(x), 1)), [12], [64]))`
/// keeps the symbolic batch and sequence dims; `Shape(x)[2:]` of known dims folds to a constant.
#[test]
fn symbolic_shape_chain_reaches_reshape() {
    let mut g = GraphProto::new();
    g.name = "g".into();
    g.input.push(vi("x", 1, &["batch", "seq", "768"]));
    g.initializer.push(ints("i0", &[], &[0]));
    g.initializer.push(ints("i1", &[], &[1]));
    g.initializer.push(ints("ax", &[1], &[0]));
    g.initializer.push(ints("h", &[1], &[12]));
    g.initializer.push(ints("d", &[1], &[64]));
    g.initializer.push(ints("s0", &[1], &[1]));
    g.initializer.push(ints("s1", &[1], &[i64::MAX]));
    g.node.push(node("Shape", &["x"], &["s"]));
    g.node.push(node("Gather", &["s", "i0"], &["b"]));
    g.node.push(node("Gather", &["s", "i1"], &["q"]));
    g.node.push(node("Unsqueeze", &["b", "ax"], &["b1"]));
    g.node.push(node("Unsqueeze", &["q", "ax"], &["q1"]));
    g.node
        .push(node("Concat", &["b1", "q1", "h", "d"], &["shp"]));
    g.node.push(node("Reshape", &["x", "shp"], &["y"]));
    g.node.push(node("Slice", &["s", "s0", "s1"], &["tail"]));
    g.node.push(node("Expand", &["x", "tail"], &["z"]));
    if let Some(n) = g.node.last_mut() {
        n.name = "expand".into();
    }
    let concat = g.node.iter_mut().find(|n| n.op_type == "Concat");
    if let Some(n) = concat {
        let mut a = onnx_protobuf::AttributeProto::new();
        a.name = "axis".into();
        a.i = 0;
        a.type_ = protobuf::EnumOrUnknown::new(onnx_protobuf::attribute_proto::AttributeType::INT);
        n.attribute.push(a);
    }
    g.output.push(vi("y", 1, &[]));
    g.output.push(vi("z", 1, &[]));
    g.output.push(vi("tail", 7, &[]));
    let mut m = ModelProto::new();
    m.ir_version = 8;
    let mut o = OperatorSetIdProto::new();
    o.version = 18;
    m.opset_import.push(o);
    m.graph = MessageField::some(g);
    let bytes = m.write_to_bytes().expect("serialise");
    let graph = import_bytes(&bytes).expect("import");
    let ty = |name: &str| {
        let out = graph
            .outputs
            .iter()
            .find(|o| o.name == name)
            .expect("output");
        graph.value_type(out.value).expect("type").clone()
    };
    let b = Dim::sym("batch");
    let s = Dim::sym("seq");
    assert_eq!(
        ty("y").shape,
        Some(vec![b.clone(), s.clone(), Dim::Known(12), Dim::Known(64)])
    );
    // Shape(x)[1:] = [seq, 768]; Expand(x, [seq, 768]) keeps x's shape.
    assert_eq!(ty("tail").shape, Some(vec![Dim::Known(2)]));
    assert_eq!(ty("z").shape, Some(vec![b, s, Dim::Known(768)]));
}
