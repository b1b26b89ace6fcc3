//! Ops of the `shape_ops` family: reshaping, layout, indexing, scatter, padding and generators.

mod common;
pub mod gather;
pub mod generate;
pub mod layout;
pub mod reshape;
pub mod scatter;
pub mod select;
pub mod slice;

use super::Registry;

/// Registers this family's builders.
pub fn register(r: &mut Registry) {
    r.add("Reshape", reshape::build_reshape);
    r.add("Shape", reshape::build_shape);
    r.add("Size", |_| Ok(Box::new(reshape::Size)));
    r.add("Flatten", |cx| {
        Ok(Box::new(reshape::Flatten {
            axis: cx.i("axis", 1)?,
        }))
    });
    r.add("Squeeze", reshape::build_squeeze);
    r.add("Unsqueeze", reshape::build_unsqueeze);
    r.add("Expand", |_| Ok(Box::new(reshape::Expand)));
    r.add("Transpose", |cx| {
        Ok(Box::new(layout::Transpose {
            perm: cx.ints("perm")?,
        }))
    });
    r.add("Concat", |cx| {
        Ok(Box::new(layout::Concat {
            axis: cx.i("axis", 1)?,
        }))
    });
    r.add("Split", layout::build_split);
    r.add("Gather", |cx| {
        Ok(Box::new(gather::Gather {
            axis: cx.i("axis", 0)?,
        }))
    });
    r.add("GatherElements", |cx| {
        Ok(Box::new(gather::GatherElements {
            axis: cx.i("axis", 0)?,
        }))
    });
    r.add("GatherND", |cx| {
        Ok(Box::new(gather::GatherND {
            batch_dims: cx.i("batch_dims", 0)?,
        }))
    });
    r.add("ScatterElements", scatter::build_scatter_elements);
    r.add("Scatter", scatter::build_scatter_elements);
    r.add("ScatterND", scatter::build_scatter_nd);
    r.add("TensorScatter", scatter::build_tensor_scatter);
    r.add("Slice", slice::build_slice);
    r.add("Pad", slice::build_pad);
    r.add("Tile", |_| Ok(Box::new(slice::Tile)));
    r.add("ConstantOfShape", generate::build_constant_of_shape);
    r.add("Range", |_| Ok(Box::new(generate::Range)));
    r.add("EyeLike", generate::build_eye_like);
    r.add("OneHot", |cx| {
        Ok(Box::new(generate::OneHot {
            axis: cx.i("axis", -1)?,
        }))
    });
    r.add("Trilu", |cx| {
        Ok(Box::new(generate::Trilu {
            upper: cx.i("upper", 1)? != 0,
        }))
    });
    r.add("Compress", |cx| {
        Ok(Box::new(select::Compress {
            axis: cx.opt_i("axis")?,
        }))
    });
    r.add("NonZero", |_| Ok(Box::new(select::NonZero)));
    r.add("Unique", |cx| {
        Ok(Box::new(select::Unique {
            sorted: cx.i("sorted", 1)? != 0,
            axis: cx.opt_i("axis")?,
        }))
    });
    r.add("ReverseSequence", |cx| {
        Ok(Box::new(select::ReverseSequence {
            batch_axis: cx.i("batch_axis", 1)?,
            time_axis: cx.i("time_axis", 0)?,
        }))
    });
}

#[cfg(test)]
mod tests;
