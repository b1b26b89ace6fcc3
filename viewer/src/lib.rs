//! The petasos desktop viewer: open a model (ONNX file or built-in preset), see its per-op
//! estimates in a table and a graph with linked selection, the details of an op, search,
//! what-if options, device choice, plots, compare and export.
//!
//! Modules: [`doc`] (the open model), [`loader`] (loading off the UI thread), [`app`] (the
//! eframe app and its [`app::Session`]), [`graph`] (layered layout and the graph view), [`table`], [`details`], [`search`], [`recent`];
//! analysis widgets on the compiler's types: [`whatif`], [`device`], [`plots`], [`compare`],
//! [`export`].

pub mod app;
pub mod compare;
pub mod details;
pub mod device;
pub mod doc;
pub mod export;
pub mod graph;
pub mod loader;
pub mod plots;
pub mod recent;
pub mod search;
pub mod table;
pub mod tabs;
pub mod whatif;
