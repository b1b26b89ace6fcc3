//! Ops of the `nn` family: convolutions, pools, resizing, sampling and detection helpers.

pub mod conv;
pub mod geom;
pub mod pool;
pub mod resize;

use super::Registry;
use pool::{GlobalPool, PoolKind};

/// Registers this family's builders.
pub fn register(r: &mut Registry) {
    r.add("Conv", conv::build_conv);
    r.add("ConvInteger", conv::build_conv_integer);
    r.add("QLinearConv", conv::build_qlinear_conv);
    r.add("ConvTranspose", conv::build_conv_transpose);
    r.add("DeformConv", conv::build_deform_conv);
    r.add("MaxPool", pool::build_max_pool);
    r.add("AveragePool", pool::build_average_pool);
    r.add("LpPool", pool::build_lp_pool);
    r.add("MaxUnpool", pool::build_max_unpool);
    r.add("Resize", resize::build_resize);
    r.add("Upsample", resize::build_upsample);
    r.add("GlobalAveragePool", |_| {
        Ok(Box::new(GlobalPool {
            kind: PoolKind::Avg,
            p: 2.0,
        }))
    });
    r.add("GlobalMaxPool", |_| {
        Ok(Box::new(GlobalPool {
            kind: PoolKind::Max,
            p: 2.0,
        }))
    });
    r.add("GlobalLpPool", |cx| {
        Ok(Box::new(GlobalPool {
            kind: PoolKind::Lp,
            p: cx.opt_f("p")?.unwrap_or(2.0),
        }))
    });
}
