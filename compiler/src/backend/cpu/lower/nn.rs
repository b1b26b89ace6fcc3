//! NN lowerings: `Conv`, `ConvTranspose`, `Gemm`, `MatMul`, the pools and inference
//! `BatchNormalization`, with fused epilogues ([`super::fuse`]).
//!
//! f32 convolutions, GEMMs, matrix products and 1-D / 2-D pools run on the rt kernels
//! (`pt_kernels.h`: packed GEMM, implicit-im2col / depthwise conv, pools; conv weights packed
//! once at init); every other dtype, rank or variant goes through generated loops over static
//! shapes (floats accumulated in double, integers wrapped in 64-bit unsigned arithmetic), so
//! the numbers follow the interpreter's. Variants neither path handles fail the compile with
//! `unsupported`.

pub mod bn;
pub mod conv;
pub mod gemm;
pub mod loops;
pub mod pool;

use super::fuse::{fuse_epilogue, ACT_HELPERS};
use super::{LowerCx, Registry};

/// Registers this family's lowerings and fusion rules.
pub fn register(r: &mut Registry) {
    r.op("Conv", conv::lower_conv);
    r.op("ConvTranspose", conv::lower_conv_transpose);
    r.op("Gemm", gemm::lower_gemm);
    r.op("MatMul", gemm::lower_matmul);
    r.op("MaxPool", pool::lower_max_pool);
    r.op("AveragePool", pool::lower_average_pool);
    r.op("GlobalAveragePool", pool::lower_global_pool);
    r.op("GlobalMaxPool", pool::lower_global_pool);
    r.op("BatchNormalization", bn::lower_batch_norm);
    for op in [
        "Conv",
        "ConvTranspose",
        "Gemm",
        "MatMul",
        "BatchNormalization",
    ] {
        r.fusion(op, fuse_epilogue);
    }
}

/// Declares the rt kernel files (`pt_kernels.h` and the `.c` files the kernels need).
pub(crate) fn need_kernels(cx: &mut LowerCx<'_>) {
    cx.need_rt("pt_kernels.h");
    for f in crate::backend::cpu::rt::KERNELS {
        cx.need_rt(f);
    }
}

/// Declares the activation helpers used by generated epilogue expressions.
pub(crate) fn need_act_helpers(cx: &mut LowerCx<'_>) {
    cx.global(ACT_HELPERS);
}
