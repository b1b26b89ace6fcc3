//! `TfIdfVectorizer`: counts pooled n-grams (with skips) per row and weights them (TF, IDF, TFIDF).

use super::Registry;
use crate::onnx::attrs::NodeCtx;
use crate::op::{req, Attr, EvalCx, InferCx, Op};
use crate::shape::{Dim, ValueType};
use crate::tensor::{Data, Tensor};
use crate::{eval_err, DType, Result};
use ndarray::{ArrayD, IxDyn};
use serde::{Deserialize, Serialize};
use std::any::Any;
use std::collections::{HashMap, HashSet};

/// Registers this family's builders.
pub fn register(r: &mut Registry) {
    r.add("TfIdfVectorizer", build);
}

/// The vectorizer with its n-gram pool.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TfIdfVectorizer {
    pub max_gram_length: usize,
    pub min_gram_length: usize,
    pub max_skip_count: usize,
    pub mode: String,
    pub ngram_counts: Vec<i64>,
    pub ngram_indexes: Vec<i64>,
    pub pool_int64s: Vec<i64>,
    pub pool_strings: Vec<String>,
    pub weights: Vec<f32>,
}

fn build(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    let mode = cx.s("mode", "TF")?;
    if !matches!(mode.as_str(), "TF" | "IDF" | "TFIDF") {
        return Err(cx.invalid("mode", "must be TF, IDF or TFIDF"));
    }
    let nonneg = |name: &str| -> Result<usize> {
        let v = cx.i(name, 0)?;
        usize::try_from(v).map_err(|_| cx.invalid(name, "must not be negative"))
    };
    let ngram_indexes = cx.ints("ngram_indexes")?.unwrap_or_default();
    if ngram_indexes.iter().any(|&i| i < 0) {
        return Err(cx.invalid("ngram_indexes", "must not be negative"));
    }
    Ok(Box::new(TfIdfVectorizer {
        max_gram_length: nonneg("max_gram_length")?,
        min_gram_length: nonneg("min_gram_length")?,
        max_skip_count: nonneg("max_skip_count")?,
        mode,
        ngram_counts: cx.ints("ngram_counts")?.unwrap_or_default(),
        ngram_indexes,
        pool_int64s: cx.ints("pool_int64s")?.unwrap_or_default(),
        pool_strings: cx.strings("pool_strings")?.unwrap_or_default(),
        weights: cx.floats("weights")?.unwrap_or_default(),
    }))
}

type Gram = Vec<String>;

impl TfIdfVectorizer {
    fn output_size(&self) -> usize {
        self.ngram_indexes
            .iter()
            .map(|&i| i as usize + 1)
            .max()
            .unwrap_or(0)
    }

    /// The pooled n-grams (of allowed sizes) mapped to their ngram id, and all their prefixes.
    fn pool(&self) -> Result<(HashMap<Gram, usize>, HashSet<Gram>)> {
        let items: Vec<String> = if self.pool_strings.is_empty() {
            self.pool_int64s.iter().map(|v| v.to_string()).collect()
        } else {
            self.pool_strings.clone()
        };
        let mut grams = HashMap::new();
        let mut prefixes = HashSet::new();
        let mut id = 0usize;
        for (i, &start) in self.ngram_counts.iter().enumerate() {
            let n = i + 1;
            let end = self
                .ngram_counts
                .get(i + 1)
                .map(|&e| e as usize)
                .unwrap_or(items.len());
            let start = start as usize;
            if start > end || end > items.len() {
                return Err(eval_err!(
                    "TfIdfVectorizer: ngram_counts do not fit the pool"
                ));
            }
            let count = (end - start) / n;
            for k in 0..count {
                if n >= self.min_gram_length && n <= self.max_gram_length {
                    let g: Gram = items[start + k * n..start + (k + 1) * n].to_vec();
                    for p in 1..=n {
                        prefixes.insert(g[..p].to_vec());
                    }
                    grams.insert(g, id);
                }
                id += 1;
            }
        }
        Ok((grams, prefixes))
    }
}

#[typetag::serde]
impl Op for TfIdfVectorizer {
    fn op_type(&self) -> &str {
        "TfIdfVectorizer"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let x = cx.input(0)?;
        let o = Dim::Known(self.output_size() as u64);
        Ok(vec![match x.shape.as_deref() {
            Some([_]) => ValueType::new(DType::F32, vec![o]),
            Some([n, _]) => ValueType::new(DType::F32, vec![n.clone(), o]),
            _ => ValueType::unranked(DType::F32),
        }])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let tokens: Vec<String> = match x.data() {
            Data::I(a) => a.iter().map(|v| v.to_string()).collect(),
            Data::S(a) => a.iter().cloned().collect(),
            _ => {
                return Err(eval_err!(
                    "TfIdfVectorizer: input must be integers or strings"
                ))
            }
        };
        let (rows, width, out_shape) = match x.shape() {
            [c] => (1, *c, vec![self.output_size()]),
            [n, c] => (*n, *c, vec![*n, self.output_size()]),
            s => {
                return Err(eval_err!(
                    "TfIdfVectorizer: input must be 1-D or 2-D, got {s:?}"
                ))
            }
        };
        let (grams, prefixes) = self.pool()?;
        let size = self.output_size();
        let mut freq = vec![0f64; rows * size];
        for r in 0..rows {
            let row = &tokens[r * width..(r + 1) * width];
            let mut min_n = self.min_gram_length.max(1);
            for skip in 1..=self.max_skip_count + 1 {
                for start in 0..width {
                    if start + skip * (min_n - 1) >= width {
                        break;
                    }
                    let mut g: Gram = Vec::new();
                    let mut pos = start;
                    while g.len() < self.max_gram_length && pos < width {
                        g.push(row[pos].clone());
                        if !prefixes.contains(&g) {
                            break;
                        }
                        if g.len() >= min_n {
                            if let Some(&id) = grams.get(&g) {
                                let oi = *self.ngram_indexes.get(id).ok_or_else(|| {
                                    eval_err!("TfIdfVectorizer: ngram_indexes too short")
                                })? as usize;
                                freq[r * size + oi] += 1.0;
                            }
                        }
                        pos += skip;
                    }
                }
                if min_n == 1 {
                    min_n = 2;
                    if min_n > self.max_gram_length {
                        break;
                    }
                }
            }
        }
        let w = &self.weights;
        let y: Vec<f64> = freq
            .iter()
            .enumerate()
            .map(|(p, &f)| {
                let wi = w.get(p % size.max(1)).map(|&v| v as f64);
                match self.mode.as_str() {
                    "TF" => f,
                    "IDF" => {
                        if f > 0.0 {
                            wi.unwrap_or(1.0)
                        } else {
                            0.0
                        }
                    }
                    _ => wi.map(|wv| wv * f).unwrap_or(f),
                }
            })
            .collect();
        let a = ArrayD::from_shape_vec(IxDyn(&out_shape), y).map_err(|e| eval_err!("{e}"))?;
        Ok(vec![Tensor::float(DType::F32, a)])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        let mut v = vec![
            ("max_gram_length", Attr::Int(self.max_gram_length as i64)),
            ("min_gram_length", Attr::Int(self.min_gram_length as i64)),
            ("max_skip_count", Attr::Int(self.max_skip_count as i64)),
            ("mode", Attr::Str(self.mode.clone())),
            ("ngram_counts", Attr::Ints(self.ngram_counts.clone())),
            ("ngram_indexes", Attr::Ints(self.ngram_indexes.clone())),
        ];
        if !self.pool_int64s.is_empty() {
            v.push(("pool_int64s", Attr::Ints(self.pool_int64s.clone())));
        }
        if !self.pool_strings.is_empty() {
            v.push(("pool_strings", Attr::Strs(self.pool_strings.clone())));
        }
        if !self.weights.is_empty() {
            v.push(("weights", Attr::Floats(self.weights.clone())));
        }
        v
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}
