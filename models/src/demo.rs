//! `demo-cnn`: a small residual CNN (two 3x3 conv blocks with a skip, pooling, classifier),
//! written as an ONNX model in memory and imported like any file.

use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::tensor_shape_proto::dimension::Value as DV;
use onnx_protobuf::tensor_shape_proto::Dimension;
use onnx_protobuf::{
    type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};
use petasos_ir::{Graph, Result};
use protobuf::{Message, MessageField};

fn weights(name: &str, dims: &[i64], seed: u64, scale: f32) -> TensorProto {
    let n: i64 = dims.iter().product();
    let mut s = seed;
    let mut raw = Vec::with_capacity(n as usize * 4);
    for _ in 0..n {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let u = ((s >> 40) as f32) / (1u64 << 24) as f32;
        raw.extend_from_slice(&((2.0 * u - 1.0) * scale).to_le_bytes());
    }
    let mut t = TensorProto::new();
    t.name = name.into();
    t.dims = dims.to_vec();
    t.data_type = 1;
    t.raw_data = raw;
    t
}

fn ints(name: &str, v: &[i64]) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.ints = v.to_vec();
    a.type_ = AttributeType::INTS.into();
    a
}

fn node(
    op: &str,
    name: &str,
    inputs: &[&str],
    outputs: &[&str],
    attrs: Vec<AttributeProto>,
) -> NodeProto {
    let mut n = NodeProto::new();
    n.op_type = op.into();
    n.name = name.into();
    n.input = inputs.iter().map(|s| s.to_string()).collect();
    n.output = outputs.iter().map(|s| s.to_string()).collect();
    n.attribute = attrs;
    n
}

fn value(name: &str, dims: &[DV]) -> ValueInfoProto {
    let mut tt = type_proto::Tensor::new();
    tt.elem_type = 1;
    let mut sp = TensorShapeProto::new();
    for d in dims {
        let mut dim = Dimension::new();
        dim.value = Some(d.clone());
        sp.dim.push(dim);
    }
    tt.shape = MessageField::some(sp);
    let mut tp = TypeProto::new();
    tp.value = Some(type_proto::Value::TensorType(tt));
    let mut vi = ValueInfoProto::new();
    vi.name = name.into();
    vi.type_ = MessageField::some(tp);
    vi
}

/// Serialized ONNX bytes of `demo-cnn` (input `image` [batch, 3, 32, 32], output `probs` [batch, 10]).
pub fn demo_cnn_onnx() -> Vec<u8> {
    let conv = |name: &str, i: &str, o: &str, w: &str, b: &str| {
        node(
            "Conv",
            name,
            &[i, w, b],
            &[o],
            vec![ints("kernel_shape", &[3, 3]), ints("pads", &[1, 1, 1, 1])],
        )
    };
    let mut g = GraphProto::new();
    g.name = "demo-cnn".into();
    g.initializer = vec![
        weights("stem.w", &[16, 3, 3, 3], 1, 0.27),
        weights("stem.b", &[16], 2, 0.1),
        weights("block.conv1.w", &[16, 16, 3, 3], 3, 0.08),
        weights("block.conv1.b", &[16], 4, 0.1),
        weights("block.conv2.w", &[16, 16, 3, 3], 5, 0.08),
        weights("block.conv2.b", &[16], 6, 0.1),
        weights("fc.w", &[10, 16], 7, 0.25),
        weights("fc.b", &[10], 8, 0.1),
    ];
    g.node = vec![
        conv("/stem/Conv", "image", "s0", "stem.w", "stem.b"),
        node("Relu", "/stem/Relu", &["s0"], &["s1"], vec![]),
        conv(
            "/block/conv1/Conv",
            "s1",
            "b0",
            "block.conv1.w",
            "block.conv1.b",
        ),
        node("Relu", "/block/relu1/Relu", &["b0"], &["b1"], vec![]),
        conv(
            "/block/conv2/Conv",
            "b1",
            "b2",
            "block.conv2.w",
            "block.conv2.b",
        ),
        node("Add", "/block/Add", &["b2", "s1"], &["b3"], vec![]),
        node("Relu", "/block/relu2/Relu", &["b3"], &["b4"], vec![]),
        node(
            "GlobalAveragePool",
            "/pool/GlobalAveragePool",
            &["b4"],
            &["p0"],
            vec![],
        ),
        node("Flatten", "/pool/Flatten", &["p0"], &["p1"], vec![]),
        node("Gemm", "/fc/Gemm", &["p1", "fc.w", "fc.b"], &["logits"], {
            let mut a = AttributeProto::new();
            a.name = "transB".into();
            a.i = 1;
            a.type_ = AttributeType::INT.into();
            vec![a]
        }),
        node("Softmax", "/Softmax", &["logits"], &["probs"], vec![]),
    ];
    let batch = DV::DimParam("batch".into());
    g.input = vec![value(
        "image",
        &[
            batch.clone(),
            DV::DimValue(3),
            DV::DimValue(32),
            DV::DimValue(32),
        ],
    )];
    g.output = vec![value("probs", &[batch, DV::DimValue(10)])];
    let mut m = ModelProto::new();
    m.ir_version = 10;
    m.producer_name = "petasos-models".into();
    let mut o = OperatorSetIdProto::new();
    o.version = 21;
    m.opset_import = vec![o];
    m.graph = MessageField::some(g);
    m.write_to_bytes().unwrap_or_default()
}

/// The imported `demo-cnn` graph.
pub fn demo_cnn() -> Result<Graph> {
    petasos_ir::onnx::import_bytes(&demo_cnn_onnx())
}
