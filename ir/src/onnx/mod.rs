//! ONNX import and export.

pub mod attrs;
pub mod export;
pub mod import;
pub mod tensor_file;
pub mod tensor_proto;
pub mod wire;

pub use export::{export_model, save_model};
pub use import::{import_bytes, import_file, ImportOptions};
