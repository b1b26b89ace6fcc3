//! Pruning heuristics: input-channel importance of each consumer, and keep-masks from it.
//!
//! # What it does
//! For every consumer of a prunable [`Segment`], scores each input channel from that channel's
//! weight column (a `Conv` weight's `[:, i, ...]`, a `ConvTranspose`'s `[i, ...]`, a `Gemm` or
//! `MatMul` weight's row or column `i` as `transB` says):
//! - [`Criterion::L1`] / [`Criterion::L2`]: the column's L1 norm / L2 norm;
//! - [`Criterion::Lamp`] (layer-adaptive magnitude, Lee et al. 2021): with `n_i` the column's
//!   squared L2 norm, `n_i / sum(n_j for n_j >= n_i)`; the largest channel of a layer scores 1;
//! - [`Criterion::Fpgm`] (geometric median, He et al. 2019): `sum_j ||w_i - w_j||_2`; a small
//!   value means the channel is close to the others, hence redundant.
//!
//! Masks ([`Masks`], `true` = keep) come from an `amount` (the fraction of input channels
//! dropped, in `[0, 1)`), either per consumer ([`Scope::Layer`]: `floor(amount * C)` lowest
//! scores of each) or across the model ([`Scope::Global`]: `floor(amount * total)` lowest scores
//! overall; each consumer keeps at least one channel), or are given per layer by node name
//! ([`explicit_masks`]). Ties drop the lower channel index first.
//!
//! [`constrained_masks`] is the baseline UPSCALE compares against: one mask per segment (each
//! segment channel scored by the sum of its consumers' scores), so every consumer of a segment
//! drops the same channels.
//!
//! # Example
//! ```text
//! consumer weight (out x in) [[1, -2, 0.5], [3, 0, -0.5]]
//! L1 [4, 2, 1]  L2 [3.16, 2, 0.71]  LAMP [1, 2/7, 1/29]  amount 0.34 per layer -> keep [1, 1, 0]
//! ```

use super::segment::{layer, PruneError, Segment};
use crate::rewrite::node_name;
use ndarray::Axis;
use petasos_ir::Graph;
use petgraph::stable_graph::NodeIndex;
use std::collections::BTreeMap;

/// Keep-masks of consumers' input channels (`true` = keep), by consumer node.
pub type Masks = BTreeMap<NodeIndex, Vec<bool>>;

/// How input channels are scored (serialised lower-case: `l1`, `l2`, `lamp`, `fpgm`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Criterion {
    L1,
    L2,
    Lamp,
    Fpgm,
}

/// Where an `amount` applies (serialised `layer` / `global`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Each consumer drops that fraction of its own input channels.
    Layer,
    /// That fraction of all consumers' input channels is dropped, lowest scores first.
    Global,
}

/// The weight columns of consumer `n`, one flattened vector per input channel.
pub fn columns(g: &Graph, n: NodeIndex) -> Result<Vec<Vec<f64>>, PruneError> {
    let bad = |msg: String| PruneError::Weight {
        name: node_name(g, n),
        msg,
    };
    let l = layer(g, n).ok_or_else(|| bad("not a layer with a constant weight".into()))?;
    let w = g
        .constant(l.weight)
        .ok_or_else(|| bad("weight is not a constant".into()))?
        .to_tensor()?;
    let w = w
        .to_f()
        .map_err(|e| bad(format!("weight is not numeric: {e}")))?;
    Ok(w.axis_iter(Axis(l.weight_in_axis))
        .map(|c| c.iter().copied().collect())
        .collect())
}

/// Scores of consumer `n`'s input channels (higher = more important).
pub fn scores(g: &Graph, n: NodeIndex, c: Criterion) -> Result<Vec<f64>, PruneError> {
    let cols = columns(g, n)?;
    Ok(score_columns(&cols, c))
}

/// Scores of weight columns (one per input channel).
pub fn score_columns(cols: &[Vec<f64>], c: Criterion) -> Vec<f64> {
    let sq = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>();
    match c {
        Criterion::L1 => cols
            .iter()
            .map(|v| v.iter().map(|x| x.abs()).sum())
            .collect(),
        Criterion::L2 => cols.iter().map(|v| sq(v).sqrt()).collect(),
        Criterion::Lamp => {
            let n: Vec<f64> = cols.iter().map(|v| sq(v)).collect();
            n.iter()
                .map(|&ni| {
                    let denom: f64 = n.iter().filter(|&&nj| nj >= ni).sum();
                    if denom > 0.0 {
                        ni / denom
                    } else {
                        0.0
                    }
                })
                .collect()
        }
        Criterion::Fpgm => cols
            .iter()
            .map(|a| {
                cols.iter()
                    .map(|b| {
                        a.iter()
                            .zip(b)
                            .map(|(x, y)| (x - y) * (x - y))
                            .sum::<f64>()
                            .sqrt()
                    })
                    .sum()
            })
            .collect(),
    }
}

/// The consumers of prunable segments, in segment order, or an error when there are none.
pub fn prunable_consumers(segs: &[Segment]) -> Result<Vec<NodeIndex>, PruneError> {
    let v: Vec<NodeIndex> = segs
        .iter()
        .filter(|s| s.prunable.is_ok())
        .flat_map(|s| s.consumers.iter().map(|c| c.node))
        .collect();
    if v.is_empty() {
        let why = match segs.iter().find_map(|s| s.prunable.clone().err()) {
            Some(r) => format!(
                "{} segments, none prunable and read by a layer; e.g. {r}",
                segs.len()
            ),
            None => format!("{} segments, none read by a layer", segs.len()),
        };
        return Err(PruneError::NoPrunableLayer(why));
    }
    Ok(v)
}

/// Scores of every prunable consumer's input channels.
pub fn importance(
    g: &Graph,
    segs: &[Segment],
    c: Criterion,
) -> Result<BTreeMap<NodeIndex, Vec<f64>>, PruneError> {
    prunable_consumers(segs)?
        .into_iter()
        .map(|n| Ok((n, scores(g, n, c)?)))
        .collect()
}

/// Masks dropping `amount` of the prunable consumers' input channels, lowest scores first.
pub fn masks_by_amount(
    g: &Graph,
    segs: &[Segment],
    c: Criterion,
    amount: f64,
    scope: Scope,
) -> Result<Masks, PruneError> {
    if !(0.0..1.0).contains(&amount) {
        return Err(PruneError::Amount(amount));
    }
    let imp = importance(g, segs, c)?;
    Ok(masks_from_scores(&imp, amount, scope))
}

/// Masks dropping `amount` (in `[0, 1)`) of the channels scored in `imp`.
pub fn masks_from_scores(imp: &BTreeMap<NodeIndex, Vec<f64>>, amount: f64, scope: Scope) -> Masks {
    let mut masks: Masks = imp.iter().map(|(&n, s)| (n, vec![true; s.len()])).collect();
    // Candidates by ascending score, ties by node then channel.
    let order = |mut v: Vec<(f64, NodeIndex, usize)>| {
        v.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        v
    };
    let drop_lowest = |cands: Vec<(f64, NodeIndex, usize)>, k: usize, masks: &mut Masks| {
        let mut left = k;
        for (_, n, i) in order(cands) {
            if left == 0 {
                break;
            }
            let m = masks.get_mut(&n).expect("scored consumer");
            if m.iter().filter(|&&x| x).count() > 1 {
                m[i] = false;
                left -= 1;
            }
        }
    };
    let cands = |n: NodeIndex, s: &[f64]| -> Vec<(f64, NodeIndex, usize)> {
        s.iter().enumerate().map(|(i, &x)| (x, n, i)).collect()
    };
    match scope {
        Scope::Layer => {
            for (&n, s) in imp {
                let k = (amount * s.len() as f64).floor() as usize;
                drop_lowest(cands(n, s), k, &mut masks);
            }
        }
        Scope::Global => {
            let all: Vec<_> = imp.iter().flat_map(|(&n, s)| cands(n, s)).collect();
            let k = (amount * all.len() as f64).floor() as usize;
            drop_lowest(all, k, &mut masks);
        }
    }
    masks
}

/// Masks given per layer by node name (`true` = keep); layers not named keep every channel.
pub fn explicit_masks(
    g: &Graph,
    segs: &[Segment],
    by_name: &BTreeMap<String, Vec<bool>>,
) -> Result<Masks, PruneError> {
    let consumers = prunable_consumers(segs)?;
    let named: BTreeMap<String, NodeIndex> =
        consumers.iter().map(|&n| (node_name(g, n), n)).collect();
    let mut masks: Masks = BTreeMap::new();
    for &n in &consumers {
        let width = segs
            .iter()
            .find_map(|s| s.consumer(n))
            .map_or(0, |c| c.channels());
        masks.insert(n, vec![true; width]);
    }
    for (name, m) in by_name {
        let Some(&n) = named.get(name) else {
            let mut known: Vec<&str> = named.keys().map(String::as_str).collect();
            let more = known.len().saturating_sub(8);
            known.truncate(8);
            let mut known = known.join(", ");
            if more > 0 {
                known.push_str(&format!(", ... {more} more"));
            }
            return Err(PruneError::UnknownLayer {
                name: name.clone(),
                known,
            });
        };
        let expected = masks[&n].len();
        if m.len() != expected {
            return Err(PruneError::MaskLength {
                name: name.clone(),
                expected,
                got: m.len(),
            });
        }
        if !m.iter().any(|&x| x) {
            return Err(PruneError::EmptyMask(name.clone()));
        }
        masks.insert(n, m.clone());
    }
    Ok(masks)
}

/// Constrained masks: each prunable segment drops `floor(amount * channels)` of its channels
/// (lowest summed consumer scores first, keeping at least one), the same ones for every consumer.
pub fn constrained_masks(
    g: &Graph,
    segs: &[Segment],
    c: Criterion,
    amount: f64,
) -> Result<Masks, PruneError> {
    if !(0.0..1.0).contains(&amount) {
        return Err(PruneError::Amount(amount));
    }
    let imp = importance(g, segs, c)?;
    let mut masks = Masks::new();
    for s in segs
        .iter()
        .filter(|s| s.prunable.is_ok() && !s.consumers.is_empty())
    {
        let mut total = vec![0.0; s.channels];
        for k in &s.consumers {
            let seg_channels = k.runs.iter().flat_map(|r| r.offset..r.offset + r.len);
            for (ch, x) in seg_channels.zip(&imp[&k.node]) {
                total[ch] += x;
            }
        }
        let one = BTreeMap::from([(NodeIndex::end(), total)]);
        let keep = masks_from_scores(&one, amount, Scope::Layer)
            .remove(&NodeIndex::end())
            .expect("one mask");
        for k in &s.consumers {
            let m = k
                .runs
                .iter()
                .flat_map(|r| r.offset..r.offset + r.len)
                .map(|ch| keep[ch])
                .collect();
            masks.insert(k.node, m);
        }
    }
    Ok(masks)
}
