//! The desktop viewer (filled by a later issue).

pub mod graph;
