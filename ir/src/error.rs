//! The error type of the IR crate: one enum, one variant per stage that can fail.

use std::path::PathBuf;

/// Errors from importing, inferring, verifying, interpreting or exporting a graph.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The model file is malformed or uses something the importer refuses.
    #[error("import: {0}")]
    Import(String),
    /// Shape or dtype inference found an inconsistency.
    #[error("shape inference: {0}")]
    Infer(String),
    /// The graph breaks an IR invariant.
    #[error("verify: {0}")]
    Verify(String),
    /// Evaluation failed (bad input values, unsupported dtype for an op, ...).
    #[error("{0}")]
    Eval(String),
    /// The op has no implementation for this operation.
    #[error("op {op} is not supported by the reference interpreter{detail}")]
    Unsupported { op: String, detail: String },
    /// Export to ONNX failed.
    #[error("export: {0}")]
    Export(String),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The result type of the IR crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Builds an [`Error::Eval`] from a format string.
#[macro_export]
macro_rules! eval_err {
    ($($t:tt)*) => { $crate::Error::Eval(format!($($t)*)) };
}

/// Builds an [`Error::Infer`] from a format string.
#[macro_export]
macro_rules! infer_err {
    ($($t:tt)*) => { $crate::Error::Infer(format!($($t)*)) };
}

/// Builds an [`Error::Import`] from a format string.
#[macro_export]
macro_rules! import_err {
    ($($t:tt)*) => { $crate::Error::Import(format!($($t)*)) };
}
