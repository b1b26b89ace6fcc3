//! Ops of the `reduce` family: reductions, arg-reductions, softmaxes, running scans, TopK,
//! normalisations and losses.

mod arg;
mod common;
mod cum;
mod loss;
mod norm;
mod norm_misc;
mod reduction;
mod softmax;
mod topk;

pub use arg::ArgReduce;
pub use cum::Cumulative;
pub use loss::{NegativeLogLikelihoodLoss, SoftmaxCrossEntropyLoss};
pub use norm::{
    BatchNormalization, GroupNormalization, InstanceNormalization, LayerNormalization,
    RmsNormalization,
};
pub use norm_misc::{LpNormalization, Lrn, MeanVarianceNormalization};
pub use reduction::{Reduce, ReduceKind};
pub use softmax::{SoftKind, SoftmaxLike};
pub use topk::TopK;

use super::Registry;

/// Registers this family's builders.
pub fn register(r: &mut Registry) {
    reduction::register(r);
    arg::register(r);
    softmax::register(r);
    cum::register(r);
    topk::register(r);
    norm::register(r);
    norm_misc::register(r);
    loss::register(r);
}
