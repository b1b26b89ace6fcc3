//! `ai.onnx.ml` `TreeEnsemble` (opset 5): decision-tree ensembles with set-membership splits.

use super::ml::ML;
use crate::onnx::attrs::NodeCtx;
use crate::op::{req, Attr, EvalCx, InferCx, Op};
use crate::shape::{Dim, ValueType};
use crate::tensor::Tensor;
use crate::weights::ConstTensor;
use crate::{eval_err, DType, Result};
use ndarray::{ArrayD, IxDyn};
use serde::{Deserialize, Serialize};
use std::any::Any;

/// A tree ensemble regressor/classifier scoring `n_targets` outputs per row.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TreeEnsemble {
    pub aggregate_function: i64,
    pub post_transform: i64,
    pub n_targets: usize,
    pub tree_roots: Vec<i64>,
    pub nodes_featureids: Vec<i64>,
    pub nodes_truenodeids: Vec<i64>,
    pub nodes_falsenodeids: Vec<i64>,
    pub nodes_trueleafs: Vec<i64>,
    pub nodes_falseleafs: Vec<i64>,
    pub nodes_missing_value_tracks_true: Option<Vec<i64>>,
    pub nodes_modes: ConstTensor,
    pub nodes_splits: ConstTensor,
    pub nodes_hitrates: Option<ConstTensor>,
    pub membership_values: Option<ConstTensor>,
    pub leaf_targetids: Vec<i64>,
    pub leaf_weights: ConstTensor,
}

const MEMBER: i64 = 6;

/// Builds a `TreeEnsemble`, checking the node and leaf lists agree in length.
pub fn build_tree_ensemble(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    let ints = |n: &str| -> Result<Vec<i64>> { Ok(cx.ints(n)?.unwrap_or_default()) };
    let tensor = |n: &str| -> Result<ConstTensor> {
        cx.tensor_attr(n)?
            .ok_or_else(|| cx.invalid(n, "required tensor attribute is missing"))
    };
    let n_targets = cx.i("n_targets", 0)?;
    let agg = cx.i("aggregate_function", 1)?;
    if !(0..=3).contains(&agg) {
        return Err(cx.invalid("aggregate_function", "must be 0 (AVERAGE) to 3 (MAX)"));
    }
    let post = cx.i("post_transform", 0)?;
    if !(0..=4).contains(&post) {
        return Err(cx.invalid("post_transform", "must be 0 to 4"));
    }
    let op = TreeEnsemble {
        aggregate_function: agg,
        post_transform: post,
        n_targets: usize::try_from(n_targets)
            .map_err(|_| cx.invalid("n_targets", "must not be negative"))?,
        tree_roots: ints("tree_roots")?,
        nodes_featureids: ints("nodes_featureids")?,
        nodes_truenodeids: ints("nodes_truenodeids")?,
        nodes_falsenodeids: ints("nodes_falsenodeids")?,
        nodes_trueleafs: ints("nodes_trueleafs")?,
        nodes_falseleafs: ints("nodes_falseleafs")?,
        nodes_missing_value_tracks_true: cx.ints("nodes_missing_value_tracks_true")?,
        nodes_modes: tensor("nodes_modes")?,
        nodes_splits: tensor("nodes_splits")?,
        nodes_hitrates: cx.tensor_attr("nodes_hitrates")?,
        membership_values: cx.tensor_attr("membership_values")?,
        leaf_targetids: ints("leaf_targetids")?,
        leaf_weights: tensor("leaf_weights")?,
    };
    let n = op.nodes_featureids.len();
    let same = [
        op.nodes_truenodeids.len(),
        op.nodes_falsenodeids.len(),
        op.nodes_trueleafs.len(),
        op.nodes_falseleafs.len(),
        op.nodes_modes.numel(),
        op.nodes_splits.numel(),
    ];
    if same.iter().any(|&l| l != n) {
        return Err(cx.invalid("nodes_featureids", "the nodes_* lists differ in length"));
    }
    if op.leaf_targetids.len() != op.leaf_weights.numel() {
        return Err(cx.invalid(
            "leaf_targetids",
            "leaf_targetids and leaf_weights differ in length",
        ));
    }
    Ok(Box::new(op))
}

/// Decoded trees, ready to evaluate.
struct Model {
    modes: Vec<i64>,
    splits: Vec<f64>,
    members: Vec<Vec<f64>>,
    weights: Vec<f64>,
}

impl TreeEnsemble {
    fn model(&self) -> Result<Model> {
        let modes = self.nodes_modes.to_tensor()?.to_i64_vec()?;
        let splits = self.nodes_splits.to_tensor()?.to_f64_vec()?;
        let weights = self.leaf_weights.to_tensor()?.to_f64_vec()?;
        let mv = match &self.membership_values {
            Some(t) => t.to_tensor()?.to_f64_vec()?,
            None => Vec::new(),
        };
        // Members of each MEMBER node in node order, each set ended by a NaN.
        let mut groups = mv.split(|v| v.is_nan());
        let mut members = vec![Vec::new(); modes.len()];
        for (i, &m) in modes.iter().enumerate() {
            if m == MEMBER {
                members[i] = groups
                    .next()
                    .ok_or_else(|| {
                        eval_err!(
                            "TreeEnsemble: membership_values has too few sets for the MEMBER nodes"
                        )
                    })?
                    .to_vec();
            }
        }
        Ok(Model {
            modes,
            splits,
            members,
            weights,
        })
    }

    /// The leaf a row reaches in the tree rooted at `root`.
    fn leaf(&self, m: &Model, root: i64, row: &[f64]) -> Result<usize> {
        let idx = |v: i64, what: &str| -> Result<usize> {
            usize::try_from(v).map_err(|_| eval_err!("TreeEnsemble: negative {what} {v}"))
        };
        let r = idx(root, "tree root")?;
        let get = |v: &[i64], i: usize| -> Result<i64> {
            v.get(i)
                .copied()
                .ok_or_else(|| eval_err!("TreeEnsemble: node {i} out of range"))
        };
        if get(&self.nodes_trueleafs, r)? != 0
            && get(&self.nodes_falseleafs, r)? != 0
            && get(&self.nodes_truenodeids, r)? == get(&self.nodes_falsenodeids, r)?
        {
            return Ok(r);
        }
        let mut node = r;
        for _ in 0..=m.modes.len() {
            let f = idx(get(&self.nodes_featureids, node)?, "feature id")?;
            let x = *row
                .get(f)
                .ok_or_else(|| eval_err!("TreeEnsemble: feature {f} out of range"))?;
            let s = m.splits[node];
            let missing_true = self
                .nodes_missing_value_tracks_true
                .as_ref()
                .and_then(|v| v.get(node))
                .is_some_and(|&b| b != 0);
            let cond = (missing_true && x.is_nan())
                || match m.modes[node] {
                    0 => x <= s,
                    1 => x < s,
                    2 => x >= s,
                    3 => x > s,
                    4 => x == s,
                    5 => x != s,
                    MEMBER => m.members[node].contains(&x),
                    other => return Err(eval_err!("TreeEnsemble: unknown node mode {other}")),
                };
            let (next, is_leaf) = if cond {
                (
                    get(&self.nodes_truenodeids, node)?,
                    get(&self.nodes_trueleafs, node)?,
                )
            } else {
                (
                    get(&self.nodes_falsenodeids, node)?,
                    get(&self.nodes_falseleafs, node)?,
                )
            };
            let next = idx(next, "node id")?;
            if is_leaf != 0 {
                return Ok(next);
            }
            node = next;
        }
        Err(eval_err!(
            "TreeEnsemble: the tree at root {root} has a cycle"
        ))
    }
}

fn dtype_max(d: DType) -> f64 {
    match d {
        DType::F64 => f64::MAX,
        DType::F16 => 65504.0,
        DType::BF16 => half::bf16::MAX.to_f64(),
        _ => f32::MAX as f64,
    }
}

fn post_transform(kind: i64, row: &mut [f64]) -> Result<()> {
    match kind {
        0 => {}
        1 | 3 => {
            let zero = kind == 3;
            let max = row
                .iter()
                .copied()
                .filter(|&v| !(zero && v == 0.0))
                .fold(f64::NEG_INFINITY, f64::max);
            let mut sum = 0.0;
            for v in row.iter_mut() {
                if !(zero && *v == 0.0) {
                    *v = (*v - max).exp();
                    sum += *v;
                }
            }
            for v in row.iter_mut() {
                if !(zero && *v == 0.0) && sum > 0.0 {
                    *v /= sum;
                }
            }
        }
        2 => row.iter_mut().for_each(|v| *v = 1.0 / (1.0 + (-*v).exp())),
        _ => {
            return Err(eval_err!(
                "TreeEnsemble: post_transform PROBIT is not supported"
            ))
        }
    }
    Ok(())
}

#[typetag::serde]
impl Op for TreeEnsemble {
    fn op_type(&self) -> &str {
        "TreeEnsemble"
    }
    fn domain(&self) -> &str {
        ML
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let x = cx.input(0)?;
        let n = match x.shape.as_deref() {
            Some([n, _]) => n.clone(),
            _ => cx.fresh_dim(),
        };
        Ok(vec![ValueType::new(
            x.dtype,
            vec![n, Dim::Known(self.n_targets as u64)],
        )])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        let dt = x.dtype();
        if !dt.is_float() {
            return Err(eval_err!(
                "TreeEnsemble: X must be a float tensor, got {dt}"
            ));
        }
        let (n, f) = match x.shape() {
            [n, f] => (*n, *f),
            s => return Err(eval_err!("TreeEnsemble: X must be 2-D, got {s:?}")),
        };
        let m = self.model()?;
        let xv: Vec<f64> = x.to_f()?.iter().copied().collect();
        let t = self.n_targets;
        let init = match self.aggregate_function {
            2 => dtype_max(dt),
            3 => -dtype_max(dt),
            _ => 0.0,
        };
        let n_trees = self.tree_roots.len().max(1) as f64;
        let mut out = vec![init; n * t];
        for r in 0..n {
            let row = &xv[r * f..(r + 1) * f];
            let acc = &mut out[r * t..(r + 1) * t];
            for &root in &self.tree_roots {
                let leaf = self.leaf(&m, root, row)?;
                let w = *m
                    .weights
                    .get(leaf)
                    .ok_or_else(|| eval_err!("TreeEnsemble: leaf {leaf} out of range"))?;
                let tid = self
                    .leaf_targetids
                    .get(leaf)
                    .and_then(|&v| usize::try_from(v).ok())
                    .filter(|&v| v < t)
                    .ok_or_else(|| eval_err!("TreeEnsemble: leaf {leaf} has a bad target id"))?;
                match self.aggregate_function {
                    0 => acc[tid] += w / n_trees,
                    1 => acc[tid] += w,
                    2 => acc[tid] = acc[tid].min(w),
                    _ => acc[tid] = acc[tid].max(w),
                }
            }
            post_transform(self.post_transform, acc)?;
        }
        let a = ArrayD::from_shape_vec(IxDyn(&[n, t]), out).map_err(|e| eval_err!("{e}"))?;
        Ok(vec![Tensor::float(dt, a)])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        let mut v = vec![
            ("aggregate_function", Attr::Int(self.aggregate_function)),
            ("post_transform", Attr::Int(self.post_transform)),
            ("n_targets", Attr::Int(self.n_targets as i64)),
            ("tree_roots", Attr::Ints(self.tree_roots.clone())),
            (
                "nodes_featureids",
                Attr::Ints(self.nodes_featureids.clone()),
            ),
            (
                "nodes_truenodeids",
                Attr::Ints(self.nodes_truenodeids.clone()),
            ),
            (
                "nodes_falsenodeids",
                Attr::Ints(self.nodes_falsenodeids.clone()),
            ),
            ("nodes_trueleafs", Attr::Ints(self.nodes_trueleafs.clone())),
            (
                "nodes_falseleafs",
                Attr::Ints(self.nodes_falseleafs.clone()),
            ),
            ("nodes_modes", Attr::Tensor(self.nodes_modes.clone())),
            ("nodes_splits", Attr::Tensor(self.nodes_splits.clone())),
            ("leaf_targetids", Attr::Ints(self.leaf_targetids.clone())),
            ("leaf_weights", Attr::Tensor(self.leaf_weights.clone())),
        ];
        if let Some(m) = &self.nodes_missing_value_tracks_true {
            v.push(("nodes_missing_value_tracks_true", Attr::Ints(m.clone())));
        }
        if let Some(h) = &self.nodes_hitrates {
            v.push(("nodes_hitrates", Attr::Tensor(h.clone())));
        }
        if let Some(mv) = &self.membership_values {
            v.push(("membership_values", Attr::Tensor(mv.clone())));
        }
        v
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ct(dt: DType, v: Vec<f64>) -> ConstTensor {
        ConstTensor::from_tensor(Tensor::from_f64_as(
            dt,
            ArrayD::from_shape_vec(IxDyn(&[v.len()]), v).unwrap(),
        ))
    }

    #[test]
    fn set_membership_tree() {
        // The ONNX set-membership example: x <= 11 ? (x in {1.2, 3.7, 8, 9} ? leaf 0 : node 2)
        // : leaf 2; node 2: x in {12, 7} ? leaf 1 : leaf 3.
        let op = TreeEnsemble {
            aggregate_function: 1,
            post_transform: 0,
            n_targets: 4,
            tree_roots: vec![0],
            nodes_featureids: vec![0, 0, 0],
            nodes_truenodeids: vec![1, 0, 1],
            nodes_falsenodeids: vec![2, 2, 3],
            nodes_trueleafs: vec![0, 1, 1],
            nodes_falseleafs: vec![1, 0, 1],
            nodes_missing_value_tracks_true: None,
            nodes_modes: ct(DType::U8, vec![0.0, 6.0, 6.0]),
            nodes_splits: ct(DType::F32, vec![11.0, 232344.0, f64::NAN]),
            nodes_hitrates: None,
            membership_values: Some(ct(
                DType::F32,
                vec![1.2, 3.7, 8.0, 9.0, f64::NAN, 12.0, 7.0, f64::NAN],
            )),
            leaf_targetids: vec![0, 1, 2, 3],
            leaf_weights: ct(DType::F32, vec![1.0, 10.0, 1000.0, 100.0]),
        };
        let m = op.model().unwrap();
        let f = |x: f64| op.leaf(&m, 0, &[x as f32 as f64]).unwrap();
        assert_eq!(f(1.2), 0);
        assert_eq!(f(5.0), 3);
        assert_eq!(f(12.0), 2);
        assert_eq!(f(7.0), 1);
        assert_eq!(f(f64::NAN), 2);
    }
}
