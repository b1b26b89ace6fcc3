//! The desktop viewer (filled by a later issue).

pub mod compare;
pub mod device;
pub mod export;
pub mod graph;
pub mod plots;
pub mod whatif;
