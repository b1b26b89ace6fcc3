//! Ops of the `nn` family: convolutions, pools, resizing, sampling and detection helpers.

pub mod conv;
pub mod geom;
pub mod layout;
pub mod nms;
pub mod pool;
pub mod resize;
pub mod sample;

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
    r.add("DepthToSpace", layout::build_depth_to_space);
    r.add("SpaceToDepth", layout::build_space_to_depth);
    r.add("CenterCropPad", layout::build_center_crop_pad);
    r.add("Col2Im", layout::build_col2im);
    r.add("GridSample", sample::build_grid_sample);
    r.add("AffineGrid", sample::build_affine_grid);
    r.add("RoiAlign", sample::build_roi_align);
    r.add("NonMaxSuppression", nms::build_nms);
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
