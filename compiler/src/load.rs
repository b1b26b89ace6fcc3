//! Loading a model named on the command line: a built-in name or an ONNX file path.

use anyhow::{Context, Result};
use petasos_ir::Graph;
use petasos_models::BuildOptions;
use std::path::Path;

/// Loads `model`: a built-in model name (see `petasos models`), built with `opts`, or a path
/// to an `.onnx` file.
pub fn load_model(model: &str, opts: &BuildOptions) -> Result<Graph> {
    if petasos_models::is_builtin(model) && !Path::new(model).exists() {
        return Ok(petasos_models::build_with(model, opts)?);
    }
    let path = Path::new(model);
    if !path.exists() {
        anyhow::bail!(
            "{model}: no such file, and not a built-in model (built-ins: {}; `petasos models` lists them)",
            petasos_models::names().join(", ")
        );
    }
    petasos_ir::onnx::import_file(path).with_context(|| model.to_string())
}
