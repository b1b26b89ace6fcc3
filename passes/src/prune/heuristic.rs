//! Pruning heuristics.
