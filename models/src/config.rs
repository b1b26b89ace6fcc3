//! What every builder shares: presets, build options, config overrides and errors.

use petasos_ir::Graph;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Errors building a built-in model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("unknown built-in model '{0}' (run `petasos models` for the list)")]
    Unknown(String),
    /// The config is inconsistent (zero heads, d not divisible by heads, top-k > experts, ...).
    #[error("bad config: {0}")]
    Config(String),
    #[error("building '{name}'")]
    Build {
        name: String,
        #[source]
        source: Box<ModelError>,
    },
    #[error(transparent)]
    Ir(#[from] petasos_ir::Error),
}

impl ModelError {
    /// Wraps the error with the preset it came from.
    pub fn context(self, name: &str) -> ModelError {
        match self {
            e @ ModelError::Unknown(_) => e,
            e => ModelError::Build {
                name: name.to_string(),
                source: Box::new(e),
            },
        }
    }
}

/// Which computation a decoder graph performs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// `S` new tokens, no cache in; outputs logits and the new K/V.
    #[default]
    Prefill,
    /// One new token attending over a cache of `T` past positions.
    Decode,
}

/// Options common to every builder.
#[derive(Clone, Debug, Default)]
pub struct BuildOptions {
    pub phase: Phase,
    /// Seed of the synthetic weights.
    pub seed: u64,
    /// JSON fields that override the preset's config (e.g. `{"layers": 2}`).
    pub overrides: Option<serde_json::Value>,
}

/// A named built-in model.
#[derive(Clone, Copy)]
pub struct Preset {
    pub name: &'static str,
    /// The family (`cnn`, `vit`, `decoder`, `ptmoe`, `demo`).
    pub family: &'static str,
    /// One line for `petasos models`.
    pub summary: &'static str,
    pub build: fn(&BuildOptions) -> Result<Graph, ModelError>,
}

/// `base` with the JSON fields of `overrides` replacing its own (unknown fields are an error).
pub fn apply_overrides<C: Serialize + DeserializeOwned>(
    base: &C,
    overrides: Option<&serde_json::Value>,
) -> Result<C, ModelError> {
    let Some(ov) = overrides else {
        return serde_json::from_value(serde_json::to_value(base).map_err(cfg)?).map_err(cfg);
    };
    let mut v = serde_json::to_value(base).map_err(cfg)?;
    let (Some(obj), Some(ov)) = (v.as_object_mut(), ov.as_object()) else {
        return Err(ModelError::Config(
            "config overrides must be a JSON object".into(),
        ));
    };
    let base_obj = obj.clone();
    for (k, x) in ov {
        if !obj.contains_key(k) {
            let known: Vec<&String> = obj.keys().collect();
            return Err(ModelError::Config(format!(
                "unknown config field '{k}' (fields: {known:?})"
            )));
        }
        obj.insert(k.clone(), x.clone());
    }
    serde_json::from_value(v).map_err(|e| {
        // Name the field: the first override that fails on its own.
        for (k, x) in ov {
            let mut one = base_obj.clone();
            one.insert(k.clone(), x.clone());
            if let Err(e1) = serde_json::from_value::<C>(serde_json::Value::Object(one)) {
                return ModelError::Config(format!("field '{k}': {e1}"));
            }
        }
        cfg(e)
    })
}

fn cfg(e: serde_json::Error) -> ModelError {
    ModelError::Config(e.to_string())
}

/// Errors unless `cond`, with `msg`.
pub fn ensure(cond: bool, msg: impl FnOnce() -> String) -> Result<(), ModelError> {
    if cond {
        Ok(())
    } else {
        Err(ModelError::Config(msg()))
    }
}
