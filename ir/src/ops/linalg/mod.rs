//! Linear-algebra ops: `MatMul`, `Gemm`, `Einsum`, `Det`.

pub mod det;
pub mod einsum;
pub mod matmul;

use super::Registry;

/// Registers this family's builders.
pub fn register(r: &mut Registry) {
    r.add("MatMul", |_| Ok(Box::new(matmul::MatMul)));
    r.add("Gemm", matmul::build_gemm);
    r.add("Einsum", einsum::build_einsum);
    r.add("Det", |_| Ok(Box::new(det::Det)));
}
