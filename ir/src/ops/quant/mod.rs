//! Quantization ops: ONNX `QuantizeLinear`, `DequantizeLinear`, `DynamicQuantizeLinear`,
//! `MatMulInteger`, `QLinearMatMul`, and QONNX `Quant`, `BipolarQuant`, `Trunc`.

pub mod integer;
pub mod linear;
pub mod qonnx;

use super::{Registry, QONNX_DOMAINS};

/// Registers this family's builders.
pub fn register(r: &mut Registry) {
    r.add("QuantizeLinear", linear::build_quantize);
    r.add("DequantizeLinear", linear::build_dequantize);
    r.add("DynamicQuantizeLinear", |_| {
        Ok(Box::new(linear::DynamicQuantizeLinear))
    });
    r.add("MatMulInteger", |_| Ok(Box::new(integer::MatMulInteger)));
    r.add("QLinearMatMul", |_| Ok(Box::new(integer::QLinearMatMul)));
    for d in QONNX_DOMAINS {
        r.add_domain(d, "Quant", qonnx::build_quant);
        r.add_domain(d, "IntQuant", qonnx::build_quant);
        r.add_domain(d, "BipolarQuant", |cx| {
            Ok(Box::new(qonnx::BipolarQuant {
                domain: cx.domain.to_string(),
            }))
        });
        r.add_domain(d, "Trunc", qonnx::build_trunc);
    }
}
