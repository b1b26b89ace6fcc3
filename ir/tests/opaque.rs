//! An op the library does not know imports as an opaque node: viewable with the types the model
//! declares, exportable with its attributes, and running it names the missing op.

use onnx_protobuf::tensor_shape_proto::dimension::Value as DV;
use onnx_protobuf::tensor_shape_proto::Dimension;
use onnx_protobuf::{
    attribute_proto::AttributeType, type_proto, AttributeProto, GraphProto, ModelProto, NodeProto,
    OperatorSetIdProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use petasos_ir::onnx::{export_model, import_bytes};
use petasos_ir::{interp, DType, Dim, Tensor};
use protobuf::{Message, MessageField};

fn vi(name: &str, elem: i32, dims: &[DV]) -> ValueInfoProto {
    let mut shape = TensorShapeProto::new();
    for d in dims {
        let mut dim = Dimension::new();
        dim.value = Some(d.clone());
        shape.dim.push(dim);
    }
    let mut tt = type_proto::Tensor::new();
    tt.elem_type = elem;
    tt.shape = MessageField::some(shape);
    let mut tp = TypeProto::new();
    tp.value = Some(type_proto::Value::TensorType(tt));
    let mut v = ValueInfoProto::new();
    v.name = name.into();
    v.type_ = MessageField::some(tp);
    v
}

fn model() -> Vec<u8> {
    let mut n = NodeProto::new();
    n.op_type = "FancyOp".into();
    n.domain = "com.example".into();
    n.name = "fancy".into();
    n.input.push("x".into());
    n.output.push("y".into());
    let mut a = AttributeProto::new();
    a.name = "alpha".into();
    a.f = 2.5;
    a.type_ = AttributeType::FLOAT.into();
    n.attribute.push(a);
    let mut g = GraphProto::new();
    g.name = "g".into();
    g.node.push(n);
    g.input
        .push(vi("x", 1, &[DV::DimValue(2), DV::DimValue(3)]));
    g.output
        .push(vi("y", 7, &[DV::DimParam("n".into()), DV::DimValue(7)]));
    let mut m = ModelProto::new();
    m.ir_version = 10;
    for (d, v) in [("", 21), ("com.example", 1)] {
        let mut o = OperatorSetIdProto::new();
        o.domain = d.into();
        o.version = v;
        m.opset_import.push(o);
    }
    m.graph = MessageField::some(g);
    m.write_to_bytes().expect("serialise")
}

#[test]
fn unknown_op_imports_with_declared_types_exports_and_names_itself_when_run() {
    let g = import_bytes(&model()).expect("import");
    let out = g.outputs[0].value;
    let ty = g.value_type(out).expect("type").clone();
    assert_eq!(ty.dtype, DType::I64, "declared dtype, not the input's");
    assert_eq!(ty.shape, Some(vec![Dim::sym("n"), Dim::Known(7)]));

    let bytes = export_model(&g)
        .expect("export")
        .write_to_bytes()
        .expect("serialise");
    let back = ModelProto::parse_from_bytes(&bytes).expect("parse");
    let node = &back.graph.node[0];
    assert_eq!(
        (node.op_type.as_str(), node.domain.as_str()),
        ("FancyOp", "com.example")
    );
    assert_eq!(node.attribute[0].name, "alpha");
    assert_eq!(node.attribute[0].f, 2.5);

    let x = Tensor::from_f32(&[2, 3], vec![0.0; 6]).expect("tensor");
    let e = interp::run(&g, vec![x])
        .expect_err("cannot run")
        .to_string();
    assert!(e.contains("com.example.FancyOp"), "{e}");
}
