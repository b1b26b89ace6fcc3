//! The petasos desktop viewer: open a model (ONNX file or built-in preset), see its per-op
//! estimates in a table and a graph with linked selection, the details of an op, search.
//!
//! Modules: [`doc`] (the open model), [`loader`] (loading off the UI thread), [`app`] (the
//! eframe app and its [`app::Session`]), [`table`], [`details`], [`search`], [`recent`].

pub mod app;
pub mod details;
pub mod doc;
pub mod loader;
pub mod recent;
pub mod search;
pub mod table;
