//! Graph optimisation passes (filled by a later issue).

pub mod bias_fusion;
pub mod bn_fold;
pub mod rewrite;
pub mod shape_simplify;
