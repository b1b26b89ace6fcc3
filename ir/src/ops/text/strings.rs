//! String ops: `StringConcat`, `StringSplit`, `StringNormalizer`, `RegexFullMatch`.

use crate::onnx::attrs::NodeCtx;
use crate::op::{req, Attr, EvalCx, InferCx, Op};
use crate::ops::util::{infer_broadcast, zip_broadcast};
use crate::shape::{Dim, ValueType};
use crate::tensor::Tensor;
use crate::{eval_err, DType, Result};
use ndarray::{ArrayD, IxDyn};
use serde::{Deserialize, Serialize};
use std::any::Any;

/// Elementwise concatenation of two string tensors (numpy broadcasting).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StringConcat;

#[typetag::serde]
impl Op for StringConcat {
    fn op_type(&self) -> &str {
        "StringConcat"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        Ok(vec![infer_broadcast(cx, Some(DType::String))?])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?.as_s()?;
        let y = req(inputs, 1)?.as_s()?;
        let out = zip_broadcast(x, y, |a, b| format!("{a}{b}"))
            .map_err(|e| eval_err!("StringConcat: {e}"))?;
        Ok(vec![Tensor::string(out)])
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Splits like Python's `str.split(sep, maxsplit)`: with no separator, on runs of whitespace
/// ignoring leading and trailing whitespace.
pub fn py_split(s: &str, sep: Option<&str>, maxsplit: Option<usize>) -> Vec<String> {
    match sep {
        Some(d) => match maxsplit {
            None => s.split(d).map(String::from).collect(),
            Some(m) => s.splitn(m + 1, d).map(String::from).collect(),
        },
        None => {
            let mut out = Vec::new();
            let mut rest = s.trim_start();
            while !rest.is_empty() {
                if maxsplit == Some(out.len()) {
                    out.push(rest.to_string());
                    break;
                }
                match rest.find(char::is_whitespace) {
                    None => {
                        out.push(rest.to_string());
                        break;
                    }
                    Some(i) => {
                        out.push(rest[..i].to_string());
                        rest = rest[i..].trim_start();
                    }
                }
            }
            out
        }
    }
}

/// Splits each string by a delimiter into a padded tensor of substrings plus their counts.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StringSplit {
    /// `None` (or empty) splits on whitespace runs.
    pub delimiter: Option<String>,
    pub maxsplit: Option<i64>,
}

/// Builds a `StringSplit`.
pub fn build_split(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    Ok(Box::new(StringSplit {
        delimiter: cx.opt_s("delimiter")?,
        maxsplit: cx.opt_i("maxsplit")?,
    }))
}

#[typetag::serde]
impl Op for StringSplit {
    fn op_type(&self) -> &str {
        "StringSplit"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let x = cx.input(0)?;
        Ok(match &x.shape {
            Some(s) => {
                let mut sub = s.clone();
                sub.push(cx.fresh_dim());
                vec![
                    ValueType::new(DType::String, sub),
                    ValueType::new(DType::I64, s.clone()),
                ]
            }
            None => vec![
                ValueType::unranked(DType::String),
                ValueType::unranked(DType::I64),
            ],
        })
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let xs = x.as_s().map_err(|e| eval_err!("StringSplit: {e}"))?;
        let sep = self.delimiter.as_deref().filter(|d| !d.is_empty());
        let maxsplit = self.maxsplit.and_then(|m| usize::try_from(m).ok());
        let parts: Vec<Vec<String>> = xs.iter().map(|s| py_split(s, sep, maxsplit)).collect();
        let width = parts.iter().map(|p| p.len()).max().unwrap_or(0);
        let mut shape = x.shape().to_vec();
        let lens: Vec<i128> = parts.iter().map(|p| p.len() as i128).collect();
        let mut flat = Vec::with_capacity(parts.len() * width);
        for p in parts {
            let n = p.len();
            flat.extend(p);
            flat.extend(std::iter::repeat_n(String::new(), width - n));
        }
        let lens = ArrayD::from_shape_vec(IxDyn(&shape), lens).map_err(|e| eval_err!("{e}"))?;
        shape.push(width);
        let subs = ArrayD::from_shape_vec(IxDyn(&shape), flat).map_err(|e| eval_err!("{e}"))?;
        Ok(vec![Tensor::string(subs), Tensor::int(DType::I64, lens)])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        let mut v = Vec::new();
        if let Some(d) = &self.delimiter {
            v.push(("delimiter", Attr::Str(d.clone())));
        }
        if let Some(m) = self.maxsplit {
            v.push(("maxsplit", Attr::Int(m)));
        }
        v
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Removes stopwords from a `[C]` or `[1, C]` string tensor and changes case.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StringNormalizer {
    /// `NONE`, `LOWER` or `UPPER`.
    pub case_change_action: String,
    pub is_case_sensitive: bool,
    pub locale: Option<String>,
    pub stopwords: Vec<String>,
}

/// Builds a `StringNormalizer`.
pub fn build_normalizer(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    let action = cx.s("case_change_action", "NONE")?;
    if !matches!(action.as_str(), "NONE" | "LOWER" | "UPPER") {
        return Err(cx.invalid("case_change_action", "must be NONE, LOWER or UPPER"));
    }
    Ok(Box::new(StringNormalizer {
        case_change_action: action,
        is_case_sensitive: cx.i("is_case_sensitive", 0)? != 0,
        locale: cx.opt_s("locale")?,
        stopwords: cx.strings("stopwords")?.unwrap_or_default(),
    }))
}

impl StringNormalizer {
    fn is_stop(&self, w: &str) -> bool {
        if self.is_case_sensitive {
            self.stopwords.iter().any(|s| s == w)
        } else {
            let lw = w.to_lowercase();
            self.stopwords.iter().any(|s| s.to_lowercase() == lw)
        }
    }
    fn change_case(&self, w: &str) -> String {
        match self.case_change_action.as_str() {
            "LOWER" => w.to_lowercase(),
            "UPPER" => w.to_uppercase(),
            _ => w.to_string(),
        }
    }
}

#[typetag::serde]
impl Op for StringNormalizer {
    fn op_type(&self) -> &str {
        "StringNormalizer"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let x = cx.input(0)?;
        Ok(vec![match x.shape.as_deref() {
            Some([_]) => ValueType::new(DType::String, vec![cx.fresh_dim()]),
            Some([r, _]) if r.known() == Some(1) => {
                ValueType::new(DType::String, vec![Dim::Known(1), cx.fresh_dim()])
            }
            _ => ValueType::unranked(DType::String),
        }])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let xs = x.as_s().map_err(|e| eval_err!("StringNormalizer: {e}"))?;
        let shape = x.shape().to_vec();
        let lead = match shape.as_slice() {
            [_] => None,
            [1, _] => Some(1),
            s => {
                return Err(eval_err!(
                    "StringNormalizer: input must be [C] or [1, C], got {s:?}"
                ))
            }
        };
        let mut kept: Vec<String> = xs
            .iter()
            .filter(|w| !self.is_stop(w))
            .map(|w| self.change_case(w))
            .collect();
        if kept.is_empty() {
            kept.push(String::new());
        }
        let n = kept.len();
        let out_shape: Vec<usize> = match lead {
            None => vec![n],
            Some(_) => vec![1, n],
        };
        let a = ArrayD::from_shape_vec(IxDyn(&out_shape), kept).map_err(|e| eval_err!("{e}"))?;
        Ok(vec![Tensor::string(a)])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        let mut v = vec![
            (
                "case_change_action",
                Attr::Str(self.case_change_action.clone()),
            ),
            (
                "is_case_sensitive",
                Attr::Int(self.is_case_sensitive as i64),
            ),
        ];
        if let Some(l) = &self.locale {
            v.push(("locale", Attr::Str(l.clone())));
        }
        if !self.stopwords.is_empty() {
            v.push(("stopwords", Attr::Strs(self.stopwords.clone())));
        }
        v
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Whether each string fully matches a regular expression (RE2-like syntax).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RegexFullMatch {
    pub pattern: String,
}

fn full_regex(pattern: &str) -> std::result::Result<regex::Regex, regex::Error> {
    regex::Regex::new(&format!(r"\A(?:{pattern})\z"))
}

/// Builds a `RegexFullMatch`, checking the pattern compiles.
pub fn build_regex(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    let pattern = cx.s("pattern", "")?;
    full_regex(&pattern).map_err(|e| cx.invalid("pattern", &e.to_string()))?;
    Ok(Box::new(RegexFullMatch { pattern }))
}

#[typetag::serde]
impl Op for RegexFullMatch {
    fn op_type(&self) -> &str {
        "RegexFullMatch"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        Ok(vec![ValueType {
            dtype: DType::Bool,
            shape: cx.input(0)?.shape.clone(),
        }])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let xs = x.as_s().map_err(|e| eval_err!("RegexFullMatch: {e}"))?;
        let re = full_regex(&self.pattern)
            .map_err(|e| eval_err!("RegexFullMatch: invalid pattern: {e}"))?;
        Ok(vec![Tensor::bool(xs.mapv(|s| re.is_match(&s)))])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        vec![("pattern", Attr::Str(self.pattern.clone()))]
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_split() {
        assert_eq!(py_split("a.b.", Some("."), None), vec!["a", "b", ""]);
        assert_eq!(py_split("a--b", Some("-"), None), vec!["a", "", "b"]);
        assert_eq!(
            py_split("a-b-c-d", Some("-"), Some(2)),
            vec!["a", "b", "c-d"]
        );
        assert_eq!(py_split("  a b  c ", None, None), vec!["a", "b", "c"]);
        assert_eq!(py_split("  a b  c ", None, Some(1)), vec!["a", "b  c "]);
        assert!(py_split("   ", None, None).is_empty());
        assert_eq!(py_split("", Some(","), None), vec![""]);
    }

    #[test]
    fn full_match() {
        let re = full_regex(r"www\.[\w.-]+\.\bcom\b").unwrap();
        assert!(re.is_match("www.google.com"));
        assert!(!re.is_match("www.google.com.au"));
        let alt = full_regex("a|ab").unwrap();
        assert!(alt.is_match("ab"));
    }
}

#[cfg(test)]
mod normalizer_tests {
    use super::*;

    struct NoRun;
    impl crate::op::SubgraphRunner for NoRun {
        fn run(&mut self, _g: &crate::Graph, _i: Vec<Tensor>) -> Result<Vec<Tensor>> {
            Err(eval_err!("no subgraphs"))
        }
    }

    #[test]
    fn stopwords_case_insensitive_and_empty() {
        let op = StringNormalizer {
            case_change_action: "UPPER".into(),
            is_case_sensitive: false,
            locale: None,
            stopwords: vec!["monday".into()],
        };
        let mut r = NoRun;
        let mut cx = EvalCx {
            num_outputs: 1,
            runner: &mut r,
        };
        let words = |v: &[&str], shape: &[usize]| {
            Tensor::string(
                ArrayD::from_shape_vec(IxDyn(shape), v.iter().map(|s| s.to_string()).collect())
                    .unwrap(),
            )
        };
        let x = words(&["Monday", "tuesday", "MONDAY"], &[1, 3]);
        let y = op.eval(&mut cx, &[Some(&x)]).unwrap().remove(0);
        assert_eq!(y.shape(), &[1, 1]);
        assert_eq!(y.as_s().unwrap()[[0, 0]], "TUESDAY");
        let x = words(&["monday"], &[1]);
        let y = op.eval(&mut cx, &[Some(&x)]).unwrap().remove(0);
        assert_eq!(y.shape(), &[1]);
        assert_eq!(y.as_s().unwrap()[[0]], "");
    }
}
