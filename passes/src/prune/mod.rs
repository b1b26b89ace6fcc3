//! Channel pruning (UPSCALE), built in parts: [`segment`] finds the segments (producers whose
//! outputs are summed or concatenated, their users and consumers) and why a segment cannot be
//! pruned; [`heuristic`] scores consumers' input channels (L1, L2, LAMP, FPGM) and makes masks
//! (per layer, global, explicit, constrained); [`order`] finds the channel permutation that turns
//! each consumer's kept channels into one contiguous slice where possible, and counts the
//! gathers that remain. Weight surgery and export come next.

pub mod heuristic;
pub mod order;
pub mod segment;
