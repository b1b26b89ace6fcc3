//! Channel pruning (UPSCALE).
pub mod order;
