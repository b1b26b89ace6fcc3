//! Channel pruning (UPSCALE).

pub mod heuristic;
pub mod segment;
