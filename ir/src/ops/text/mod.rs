//! Text and classic-ML ops: string ops (`StringConcat`, `StringSplit`, `StringNormalizer`,
//! `RegexFullMatch`) and `ai.onnx.ml` ops (`ArrayFeatureExtractor`, `Binarizer`,
//! `LabelEncoder`, `TreeEnsemble`).

pub mod ml;
pub mod ml_tree;
pub mod strings;

use super::Registry;
use ml::ML;

/// Registers this family's builders.
pub fn register(r: &mut Registry) {
    r.add("StringConcat", |_| Ok(Box::new(strings::StringConcat)));
    r.add("StringSplit", strings::build_split);
    r.add("StringNormalizer", strings::build_normalizer);
    r.add("RegexFullMatch", strings::build_regex);
    r.add_domain(ML, "ArrayFeatureExtractor", |_| {
        Ok(Box::new(ml::ArrayFeatureExtractor))
    });
    r.add_domain(ML, "Binarizer", |cx| {
        Ok(Box::new(ml::Binarizer {
            threshold: cx.f("threshold", 0.0)?,
        }))
    });
    r.add_domain(ML, "LabelEncoder", ml::build_label_encoder);
    r.add_domain(ML, "TreeEnsemble", ml_tree::build_tree_ensemble);
}
