//! petasos graph IR.
//!
//! - [`graph`]: the dataflow graph (petgraph `StableGraph`) of typed [`op::Op`]s;
//! - [`dtype`], [`shape`]: element types and symbolic shapes;
//! - [`weights`]: constants backed by memory-mapped bytes, owned bytes or a seed;
//! - [`onnx`]: ONNX import and export;
//! - [`infer`], [`verify`]: shape/dtype inference and the graph verifier;
//! - [`interp`]: the reference interpreter, the numerical oracle for passes and backends;
//! - [`ops`]: the op library;
//! - [`builder`]: programmatic graph construction (built-in architectures).

pub mod builder;
pub mod dtype;
pub mod error;
pub mod graph;
pub mod infer;
pub mod interp;
pub mod minifloat;
pub mod onnx;
pub mod op;
pub mod ops;
pub mod shape;
pub mod stats;
pub mod tensor;
pub mod verify;
pub mod weights;

pub use dtype::DType;
pub use error::{Error, Result};
pub use graph::{Graph, Node, ValueRef};
pub use shape::{Dim, Shape, ValueType};
pub use tensor::Tensor;
