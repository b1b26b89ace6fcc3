//! Channel pruning (UPSCALE), built in parts: [`segment`] finds the segments (producers whose
//! outputs are summed or concatenated, their users and consumers) and why a segment cannot be
//! pruned; [`heuristic`] scores consumers' input channels (L1, L2, LAMP, FPGM) and makes masks
//! (per layer, global, explicit, constrained); [`order`] finds the channel permutation that turns
//! each consumer's kept channels into one contiguous slice where possible, and counts the
//! gathers that remain; [`plan`] ties them together per segment without touching the graph;
//! [`surgery`] rewrites the weights and routes consumers through `Slice`/`Gather`
//! ([`surgery::prune`]); [`masked`] builds the equivalence oracle (dropped columns zeroed);
//! [`report`] is what both tell; [`pass`] is the registered `prune` pass.

pub mod heuristic;
pub mod masked;
pub mod order;
pub mod pass;
pub mod plan;
pub mod report;
pub mod segment;
pub mod select;
pub mod surgery;

pub use masked::masked;
pub use plan::{MaskSource, Plan, PruneMode, PruneOptions};
pub use report::PruneReport;
pub use segment::PruneError;
pub use surgery::prune;
