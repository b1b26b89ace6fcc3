//! Built-in model architectures, usable wherever a model file is (`petasos inspect demo-cnn`).
//!
//! Weights are synthesised from a seed, so no files are needed. The published architectures of
//! shared docs/architectures.md arrive with a later issue; `demo-cnn` is a small residual CNN
//! that exercises import, inference and the interpreter end to end.

mod demo;

use petasos_ir::Graph;

/// Errors building a built-in model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("unknown built-in model '{0}' (known: {known})", known = names().join(", "))]
    Unknown(String),
    #[error("building '{name}': {source}")]
    Build {
        name: String,
        #[source]
        source: petasos_ir::Error,
    },
}

/// Names of the built-in models.
pub fn names() -> Vec<&'static str> {
    vec!["demo-cnn"]
}

/// Whether `name` is a built-in model.
pub fn is_builtin(name: &str) -> bool {
    names().contains(&name)
}

/// Builds a built-in model by name.
pub fn build(name: &str) -> Result<Graph, ModelError> {
    match name {
        "demo-cnn" => demo::demo_cnn().map_err(|source| ModelError::Build {
            name: name.into(),
            source,
        }),
        _ => Err(ModelError::Unknown(name.into())),
    }
}
