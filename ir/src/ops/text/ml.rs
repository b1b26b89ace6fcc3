//! `ai.onnx.ml` ops: `ArrayFeatureExtractor`, `Binarizer`, `LabelEncoder`.

use crate::onnx::attrs::NodeCtx;
use crate::op::{req, Attr, EvalCx, InferCx, Op};
use crate::shape::{Dim, ValueType};
use crate::tensor::{Data, Tensor};
use crate::weights::ConstTensor;
use crate::{eval_err, DType, Result};
use ndarray::{ArrayD, Axis, IxDyn};
use serde::{Deserialize, Serialize};
use std::any::Any;
use std::collections::HashMap;

/// The `ai.onnx.ml` domain.
pub const ML: &str = "ai.onnx.ml";

/// Selects elements of the last axis of X by the indices in Y.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ArrayFeatureExtractor;

#[typetag::serde]
impl Op for ArrayFeatureExtractor {
    fn op_type(&self) -> &str {
        "ArrayFeatureExtractor"
    }
    fn domain(&self) -> &str {
        ML
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let x = cx.input(0)?;
        let y = cx.input(1)?;
        let n = y.numel().map(Dim::Known).unwrap_or_else(|| cx.fresh_dim());
        Ok(vec![match &x.shape {
            Some(s) if s.len() == 1 => ValueType::new(x.dtype, vec![Dim::Known(1), n]),
            Some(s) if !s.is_empty() => {
                let mut o = s[..s.len() - 1].to_vec();
                o.push(n);
                ValueType::new(x.dtype, o)
            }
            _ => ValueType::unranked(x.dtype),
        }])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let idx = req(inputs, 1)?.to_i64_vec()?;
        let s = x.shape().to_vec();
        let Some(&last) = s.last() else {
            return Err(eval_err!("ArrayFeatureExtractor: X must have rank >= 1"));
        };
        let ids: Vec<usize> = idx
            .iter()
            .map(|&i| {
                usize::try_from(i)
                    .ok()
                    .filter(|&u| u < last)
                    .ok_or_else(|| {
                        eval_err!(
                            "ArrayFeatureExtractor: index {i} out of range for last dim {last}"
                        )
                    })
            })
            .collect::<Result<_>>()?;
        let ax = Axis(s.len() - 1);
        let mut out_shape: Vec<usize> = if s.len() == 1 {
            vec![1]
        } else {
            s[..s.len() - 1].to_vec()
        };
        out_shape.push(ids.len());
        let data = crate::map_data!(x.data(), a => {
            let sel = a.select(ax, &ids);
            ArrayD::from_shape_vec(IxDyn(&out_shape), sel.iter().cloned().collect())
                .map_err(|e| eval_err!("ArrayFeatureExtractor: {e}"))?
        });
        Ok(vec![Tensor::from_data(x.dtype(), data)?])
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// `Y = X > threshold ? 1 : 0`, elementwise, in X's type.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Binarizer {
    pub threshold: f32,
}

#[typetag::serde]
impl Op for Binarizer {
    fn op_type(&self) -> &str {
        "Binarizer"
    }
    fn domain(&self) -> &str {
        ML
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        Ok(vec![cx.input(0)?.clone()])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let t = self.threshold as f64;
        let y = x.to_f()?.mapv(|v| if v > t { 1.0 } else { 0.0 });
        Ok(vec![Tensor::from_f64_as(x.dtype(), y)])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        vec![("threshold", Attr::Float(self.threshold))]
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A list attribute of `LabelEncoder` (keys or values), as given.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum LabelList {
    Floats(Vec<f32>),
    Ints(Vec<i64>),
    Strings(Vec<String>),
    Tensor(ConstTensor),
}

impl LabelList {
    fn read(cx: &NodeCtx<'_>, prefix: &str) -> Result<Option<LabelList>> {
        let mut found = Vec::new();
        if let Some(v) = cx.floats(&format!("{prefix}_floats"))? {
            found.push(LabelList::Floats(v));
        }
        if let Some(v) = cx.ints(&format!("{prefix}_int64s"))? {
            found.push(LabelList::Ints(v));
        }
        if let Some(v) = cx.strings(&format!("{prefix}_strings"))? {
            found.push(LabelList::Strings(v));
        }
        if let Some(v) = cx.tensor_attr(&format!("{prefix}_tensor"))? {
            found.push(LabelList::Tensor(v));
        }
        if found.len() > 1 {
            return Err(cx.invalid(prefix, "more than one list of this kind is given"));
        }
        Ok(found.pop())
    }
    fn as_tensor(&self) -> Result<Tensor> {
        let one = |dt, v: Vec<f64>| {
            Tensor::from_f64_as(
                dt,
                ArrayD::from_shape_vec(IxDyn(&[v.len()]), v).unwrap_or_default(),
            )
        };
        Ok(match self {
            LabelList::Floats(v) => one(DType::F32, v.iter().map(|&x| x as f64).collect()),
            LabelList::Ints(v) => Tensor::from_i64(&[v.len()], v.clone())?,
            LabelList::Strings(v) => Tensor::string(
                ArrayD::from_shape_vec(IxDyn(&[v.len()]), v.clone())
                    .map_err(|e| eval_err!("{e}"))?,
            ),
            LabelList::Tensor(t) => t.to_tensor()?,
        })
    }
    fn export(&self, prefix: &'static str, out: &mut Vec<(&'static str, Attr)>) {
        let (name, a): (&'static str, Attr) = match (prefix, self) {
            ("keys", LabelList::Floats(v)) => ("keys_floats", Attr::Floats(v.clone())),
            ("keys", LabelList::Ints(v)) => ("keys_int64s", Attr::Ints(v.clone())),
            ("keys", LabelList::Strings(v)) => ("keys_strings", Attr::Strs(v.clone())),
            ("keys", LabelList::Tensor(t)) => ("keys_tensor", Attr::Tensor(t.clone())),
            (_, LabelList::Floats(v)) => ("values_floats", Attr::Floats(v.clone())),
            (_, LabelList::Ints(v)) => ("values_int64s", Attr::Ints(v.clone())),
            (_, LabelList::Strings(v)) => ("values_strings", Attr::Strs(v.clone())),
            (_, LabelList::Tensor(t)) => ("values_tensor", Attr::Tensor(t.clone())),
        };
        out.push((name, a));
    }
}

/// A lookup key: floats by canonical bits (all NaNs equal, -0 == 0), ints, strings.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    F(u64),
    I(i128),
    S(String),
}

fn float_key(v: f64) -> Key {
    if v.is_nan() {
        Key::F(f64::NAN.to_bits())
    } else if v == 0.0 {
        Key::F(0)
    } else {
        Key::F(v.to_bits())
    }
}

fn keys_of(t: &Tensor) -> Vec<Key> {
    match t.data() {
        Data::F(a) => a.iter().map(|&v| float_key(v)).collect(),
        Data::I(a) => a.iter().map(|&v| Key::I(v)).collect(),
        Data::B(a) => a.iter().map(|&v| Key::I(v as i128)).collect(),
        Data::S(a) => a.iter().map(|s| Key::S(s.clone())).collect(),
    }
}

/// Maps each input value through a key -> value table, with a default for missing keys.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LabelEncoder {
    pub keys: LabelList,
    pub values: LabelList,
    pub default_float: Option<f32>,
    pub default_int64: Option<i64>,
    pub default_string: Option<String>,
    pub default_tensor: Option<ConstTensor>,
}

/// Builds a `LabelEncoder`.
pub fn build_label_encoder(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    let keys = LabelList::read(cx, "keys")?
        .ok_or_else(|| cx.invalid("keys", "no keys_* attribute is given"))?;
    let values = LabelList::read(cx, "values")?
        .ok_or_else(|| cx.invalid("values", "no values_* attribute is given"))?;
    let op = LabelEncoder {
        keys,
        values,
        default_float: cx.opt_f("default_float")?,
        default_int64: cx.opt_i("default_int64")?,
        default_string: cx.opt_s("default_string")?,
        default_tensor: cx.tensor_attr("default_tensor")?,
    };
    let (k, v) = (
        op.keys
            .as_tensor()
            .map_err(|e| cx.invalid("keys", &e.to_string()))?,
        op.values
            .as_tensor()
            .map_err(|e| cx.invalid("values", &e.to_string()))?,
    );
    if k.len() != v.len() {
        return Err(cx.invalid("keys", "keys and values differ in length"));
    }
    Ok(Box::new(op))
}

impl LabelEncoder {
    fn out_dtype(&self) -> DType {
        match &self.values {
            LabelList::Floats(_) => DType::F32,
            LabelList::Ints(_) => DType::I64,
            LabelList::Strings(_) => DType::String,
            LabelList::Tensor(t) => t.dtype,
        }
    }
    /// The default value as a one-element tensor of the output type.
    fn default_value(&self) -> Result<Tensor> {
        let dt = self.out_dtype();
        if let (LabelList::Tensor(_), Some(t)) = (&self.values, &self.default_tensor) {
            let t = t.to_tensor()?;
            if t.len() != 1 {
                return Err(eval_err!(
                    "LabelEncoder: default_tensor must hold one value"
                ));
            }
            return t.reshape(&[1])?.cast(dt, true);
        }
        Ok(match dt {
            DType::String => Tensor::string(ArrayD::from_elem(
                IxDyn(&[1]),
                self.default_string
                    .clone()
                    .unwrap_or_else(|| "_Unused".to_string()),
            )),
            d if d.is_float() => Tensor::float(
                d,
                ArrayD::from_elem(IxDyn(&[1]), self.default_float.map_or(-0.0, |v| v as f64)),
            ),
            d => Tensor::int(
                d,
                ArrayD::from_elem(IxDyn(&[1]), self.default_int64.unwrap_or(-1) as i128),
            ),
        })
    }
}

#[typetag::serde]
impl Op for LabelEncoder {
    fn op_type(&self) -> &str {
        "LabelEncoder"
    }
    fn domain(&self) -> &str {
        ML
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        Ok(vec![ValueType {
            dtype: self.out_dtype(),
            shape: cx.input(0)?.shape.clone(),
        }])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let keys = keys_of(&self.keys.as_tensor()?);
        let vals = self.values.as_tensor()?;
        let def = self.default_value()?;
        let table: HashMap<Key, usize> =
            keys.into_iter().enumerate().map(|(i, k)| (k, i)).collect();
        // Integer inputs looked up against float keys (and back) compare by value.
        let xk: Vec<Key> = match (x.data(), keys_float(&self.keys)) {
            (Data::I(a), true) => a.iter().map(|&v| float_key(v as f64)).collect(),
            (Data::F(a), false) if !matches!(self.keys, LabelList::Strings(_)) => a
                .iter()
                .map(|&v| Key::I(crate::tensor::f64_to_i128(v)))
                .collect(),
            _ => keys_of(x),
        };
        let shape = x.shape().to_vec();
        let data = crate::zip_data!(vals.data(), def.data(), v, d => {
            let vv: Vec<_> = v.iter().cloned().collect();
            let dv = d.iter().next().cloned().unwrap_or_default();
            let out: Vec<_> = xk
                .iter()
                .map(|k| {
                    table
                        .get(k)
                        .and_then(|&i| vv.get(i))
                        .cloned()
                        .unwrap_or_else(|| Clone::clone(&dv))
                })
                .collect();
            ArrayD::from_shape_vec(IxDyn(&shape), out).map_err(|e| eval_err!("LabelEncoder: {e}"))?
        })
        .ok_or_else(|| eval_err!("LabelEncoder: default value type differs from the values"))?;
        Ok(vec![Tensor::from_data(vals.dtype(), data)?])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        let mut v = Vec::new();
        self.keys.export("keys", &mut v);
        self.values.export("values", &mut v);
        if let Some(d) = self.default_float {
            v.push(("default_float", Attr::Float(d)));
        }
        if let Some(d) = self.default_int64 {
            v.push(("default_int64", Attr::Int(d)));
        }
        if let Some(d) = &self.default_string {
            v.push(("default_string", Attr::Str(d.clone())));
        }
        if let Some(d) = &self.default_tensor {
            v.push(("default_tensor", Attr::Tensor(d.clone())));
        }
        v
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

fn keys_float(k: &LabelList) -> bool {
    match k {
        LabelList::Floats(_) => true,
        LabelList::Tensor(t) => t.dtype.is_float(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoRun;
    impl crate::op::SubgraphRunner for NoRun {
        fn run(&mut self, _g: &crate::Graph, _i: Vec<Tensor>) -> Result<Vec<Tensor>> {
            Err(eval_err!("no subgraphs"))
        }
    }

    fn run(op: &dyn Op, x: &Tensor) -> Tensor {
        let mut r = NoRun;
        let mut cx = EvalCx {
            num_outputs: 1,
            runner: &mut r,
        };
        op.eval(&mut cx, &[Some(x)]).unwrap().remove(0)
    }

    #[test]
    fn label_encoder_float_keys_and_defaults() {
        let op = LabelEncoder {
            keys: LabelList::Floats(vec![f32::NAN, 0.0, 2.5]),
            values: LabelList::Strings(vec!["nan".into(), "zero".into(), "x".into()]),
            default_float: None,
            default_int64: None,
            default_string: None,
            default_tensor: None,
        };
        let x = Tensor::from_f32(&[4], vec![-0.0, f32::NAN, 2.5, 7.0]).unwrap();
        let y = run(&op, &x);
        let got: Vec<String> = y.as_s().unwrap().iter().cloned().collect();
        assert_eq!(got, vec!["zero", "nan", "x", "_Unused"]);

        let op = LabelEncoder {
            keys: LabelList::Strings(vec!["a".into(), "b".into()]),
            values: LabelList::Ints(vec![1, 2]),
            default_float: None,
            default_int64: None,
            default_string: None,
            default_tensor: None,
        };
        let x = Tensor::string(
            ArrayD::from_shape_vec(IxDyn(&[3]), vec!["b".into(), "c".into(), "a".into()]).unwrap(),
        );
        assert_eq!(run(&op, &x).to_i64_vec().unwrap(), vec![2, -1, 1]);
    }
}
