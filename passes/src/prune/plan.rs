//! The pruning plan: what surgery will do, computed without touching the graph.
//!
//! [`Plan::new`] analyses the segments ([`super::segment`]), computes keep-masks
//! ([`super::heuristic`]: from a criterion and an amount, or explicit per layer name), maps
//! each consumer's mask into its segment's channel space (through the consumer's runs), orders
//! each prunable segment ([`super::order`]) in the chosen [`PruneMode`], and works out for every
//! consumer how it reads the pruned tensor ([`Read`]: the whole tensor, a contiguous `Slice`, or
//! a `Gather`) and which of its weight columns it keeps, in which order. The same plan drives
//! the surgery ([`super::surgery`]) and the masked model ([`super::masked`]), so the two agree
//! by construction. A segment the surgery cannot handle (a user's per-channel parameter that is
//! not a constant of the right shape, a consumer reading one channel twice) is skipped with the
//! reason, as is every unprunable segment.
//!
//! Example (E1 of `docs/upscale.md`): `P` (4 channels) feeds `K1` (keeps 1,2,3) and `K2`
//! (keeps 0,2,3). In [`PruneMode::Reorder`] the order `[1,2,3,0]` gives `K1` `Slice 0..3` and
//! `K2` `Slice 1..4` with its columns `[2,3,0]`; [`PruneMode::NoReorder`] gives `K1` `Slice 1..4`
//! and `K2` a `Gather [0,2,3]` (the plan's `baseline_gathers` counts the latter in every mode).

use super::heuristic::{
    constrained_masks, explicit_masks, masks_by_amount, Criterion, Masks, Scope,
};
use super::order::{order, OrderMode, OrderOptions, Ordering, SegmentMasks, SharedMask};
use super::segment::{layer, segments, Block, Consumer, PruneError, Run, Segment};
use crate::rewrite::{input, node_name};
use petasos_ir::ops::nn::conv::Conv;
use petasos_ir::Graph;
use petgraph::stable_graph::NodeIndex;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

/// Where the keep-masks come from.
#[derive(Clone, Debug, PartialEq)]
pub enum MaskSource {
    /// Drop `amount` (in `[0, 1)`) of the input channels with the lowest `criterion` scores,
    /// per layer or across the model.
    Heuristic {
        criterion: Criterion,
        amount: f64,
        scope: Scope,
    },
    /// Per layer (ONNX node name), one entry per input channel, `true` = keep; layers not named
    /// keep every channel.
    Explicit(BTreeMap<String, Vec<bool>>),
}

/// How the pruned model is exported (serialised `reorder`, `no-reorder`, `constrained`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PruneMode {
    /// Unconstrained masks, channels reordered so consumers slice instead of gather (UPSCALE).
    #[default]
    Reorder,
    /// Unconstrained masks in the original channel order: the baseline export, with gathers.
    NoReorder,
    /// One mask per segment (every coupled layer drops the same channels): no copies. With a
    /// heuristic the segment's channels are scored together; with explicit masks a channel is
    /// kept when any consumer keeps it.
    Constrained,
}

impl PruneMode {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            PruneMode::Reorder => "reorder",
            PruneMode::NoReorder => "no-reorder",
            PruneMode::Constrained => "constrained",
        }
    }
}

/// Options of [`super::surgery::prune`] and [`super::masked::masked`].
#[derive(Clone, Debug, PartialEq)]
pub struct PruneOptions {
    pub masks: MaskSource,
    pub mode: PruneMode,
    /// Most distinct kept sets per segment searched exactly (see [`OrderOptions`]).
    pub max_exact_sets: usize,
    /// Most search nodes per segment.
    pub node_budget: usize,
    /// Most segments rewritten (a pass's rewrite budget); `usize::MAX`: all.
    pub max_segments: usize,
    /// Replace every gather left after ordering by a `Slice` of the range covering the
    /// consumer's kept channels, with zero weight columns for the channels in that range it
    /// dropped: no copy, at the price of the MACs of those columns (reported).
    pub cover_gathers: bool,
}

impl PruneOptions {
    /// Heuristic masks with the default search bounds and no segment limit.
    pub fn heuristic(criterion: Criterion, amount: f64, scope: Scope, mode: PruneMode) -> Self {
        PruneOptions::with_masks(
            MaskSource::Heuristic {
                criterion,
                amount,
                scope,
            },
            mode,
        )
    }

    /// Masks from `masks` with the default search bounds and no segment limit.
    pub fn with_masks(masks: MaskSource, mode: PruneMode) -> Self {
        let d = OrderOptions::default();
        PruneOptions {
            masks,
            mode,
            max_exact_sets: d.max_exact_sets,
            node_budget: d.node_budget,
            max_segments: usize::MAX,
            cover_gathers: false,
        }
    }

    fn order_options(&self, mode: OrderMode) -> OrderOptions {
        OrderOptions {
            mode,
            max_exact_sets: self.max_exact_sets,
            node_budget: self.node_budget,
        }
    }
}

/// How one consumer reads its (pruned) input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection {
    /// The whole pruned tensor, as it is.
    Whole,
    /// A contiguous range of its channels (a `Slice`: a view, no copy).
    Slice(Range<usize>),
    /// These channels, in this order (a `Gather`: a copy).
    Gather(Vec<usize>),
}

/// One consumer after surgery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Read {
    pub node: NodeIndex,
    /// Its input columns before surgery.
    pub width: usize,
    /// The input columns it keeps (indices into its original columns), in the order of its new
    /// columns.
    pub columns: Vec<usize>,
    /// Columns (indices into its original columns, a subset of `columns`) kept only to cover a
    /// gather with a slice; their weights are zero (see [`PruneOptions::cover_gathers`]).
    pub padded: Vec<usize>,
    /// How it selects them from the pruned tensor it reads.
    pub selection: Selection,
    /// Why it gathers (`None` when it does not).
    pub reason: Option<String>,
}

/// A prunable segment's plan.
#[derive(Clone, Debug)]
pub struct SegmentPlan {
    pub segment: Segment,
    /// The segment's channel axis, counted from the last axis.
    pub back: usize,
    pub masks: SegmentMasks,
    /// The ordering in the plan's mode.
    pub ordering: Ordering,
    /// Per consumer (as in `segment.consumers`), how it reads after surgery.
    pub reads: Vec<Read>,
    /// Gathers the baseline export (same masks, original order) needs.
    pub baseline_gathers: usize,
}

impl SegmentPlan {
    /// Per producer block (as in `segment.blocks`), the kept channels (segment indices) in
    /// their new order.
    pub fn block_channels(&self) -> Vec<Vec<usize>> {
        self.segment
            .blocks
            .iter()
            .map(|b| {
                let r = b.offset..b.offset + b.channels;
                self.ordering
                    .perm
                    .iter()
                    .copied()
                    .filter(|c| r.contains(c))
                    .collect()
            })
            .collect()
    }

    /// Gathers left after surgery.
    pub fn gathers(&self) -> usize {
        self.reads
            .iter()
            .filter(|r| matches!(r.selection, Selection::Gather(_)))
            .count()
    }

    /// Gathers replaced by covering slices (see [`PruneOptions::cover_gathers`]).
    pub fn covered(&self) -> usize {
        self.reads.iter().filter(|r| !r.padded.is_empty()).count()
    }

    /// Slices inserted by surgery.
    pub fn slices(&self) -> usize {
        self.reads
            .iter()
            .filter(|r| matches!(r.selection, Selection::Slice(_)))
            .count()
    }
}

/// A segment the plan leaves alone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub segment: usize,
    pub channels: usize,
    /// Its first producer's name.
    pub producer: String,
    pub reason: String,
}

/// What pruning will do to a graph.
#[derive(Clone, Debug)]
pub struct Plan {
    pub mode: PruneMode,
    pub segments: Vec<SegmentPlan>,
    pub skipped: Vec<Skipped>,
}

/// The segment channels a tensor with these runs holds, in order.
pub fn old_channels(runs: &[Run]) -> Vec<usize> {
    runs.iter()
        .flat_map(|r| r.offset..r.offset + r.len)
        .collect()
}

/// The segment channels the pruned version of a tensor with these runs holds, in order.
pub fn new_channels(perm: &[usize], runs: &[Run]) -> Vec<usize> {
    runs.iter()
        .flat_map(|r| {
            perm.iter()
                .copied()
                .filter(move |&c| c >= r.offset && c < r.offset + r.len)
        })
        .collect()
}

impl Plan {
    /// Plans pruning `g` with `opts` (see the module doc). Errors: a bad amount, unknown layer
    /// names or wrong mask lengths in explicit masks, no prunable layer.
    pub fn new(g: &Graph, opts: &PruneOptions) -> Result<Plan, PruneError> {
        let segs = segments(g)?;
        let masks: Masks = match (&opts.masks, opts.mode) {
            (
                MaskSource::Heuristic {
                    criterion, amount, ..
                },
                PruneMode::Constrained,
            ) => constrained_masks(g, &segs, *criterion, *amount)?,
            (
                MaskSource::Heuristic {
                    criterion,
                    amount,
                    scope,
                },
                _,
            ) => masks_by_amount(g, &segs, *criterion, *amount, *scope)?,
            (MaskSource::Explicit(by_name), _) => explicit_masks(g, &segs, by_name)?,
        };
        let mode = match opts.mode {
            PruneMode::Reorder => OrderMode::Reorder,
            PruneMode::NoReorder => OrderMode::Identity,
            PruneMode::Constrained => OrderMode::Constrained(SharedMask::Union),
        };
        let mut plan = Plan {
            mode: opts.mode,
            segments: Vec::new(),
            skipped: Vec::new(),
        };
        for s in segs {
            let skip = |reason: String| Skipped {
                segment: s.id,
                channels: s.channels,
                producer: s
                    .producers
                    .first()
                    .map(|&p| node_name(g, p))
                    .unwrap_or_default(),
                reason,
            };
            let why = match &s.prunable {
                Err(r) => Some(r.clone()),
                Ok(()) if s.consumers.is_empty() => Some("no layer reads it".to_string()),
                Ok(()) => check(g, &s).err(),
            };
            if let Some(r) = why {
                plan.skipped.push(skip(r));
                continue;
            }
            let s = relayout(s);
            let back = s
                .producers
                .first()
                .and_then(|&p| layer(g, p))
                .map_or(0, |l| l.out_axis_back);
            let sm = segment_masks(&s, &masks);
            let ordering =
                order(&sm, &opts.order_options(mode)).map_err(|source| PruneError::Order {
                    segment: s.id,
                    source,
                })?;
            let reads = reads_of(g, &s, &ordering, opts.cover_gathers)?;
            let baseline_gathers = if mode == OrderMode::Identity && !opts.cover_gathers {
                count_gathers(&reads)
            } else {
                let base =
                    order(&sm, &opts.order_options(OrderMode::Identity)).map_err(|source| {
                        PruneError::Order {
                            segment: s.id,
                            source,
                        }
                    })?;
                count_gathers(&reads_of(g, &s, &base, false)?)
            };
            plan.segments.push(SegmentPlan {
                segment: s,
                back,
                masks: sm,
                ordering,
                reads,
                baseline_gathers,
            });
        }
        if plan.segments.is_empty() {
            let why = plan
                .skipped
                .first()
                .map_or("the graph has no layers".to_string(), |s| {
                    format!("e.g. segment of '{}': {}", s.producer, s.reason)
                });
            return Err(PruneError::NoPrunableLayer(why));
        }
        Ok(plan)
    }
}

fn count_gathers(reads: &[Read]) -> usize {
    reads
        .iter()
        .filter(|r| matches!(r.selection, Selection::Gather(_)))
        .count()
}

/// Whether surgery can rewrite every user and consumer of `s`.
fn check(g: &Graph, s: &Segment) -> Result<(), String> {
    let back = s
        .producers
        .first()
        .and_then(|&p| layer(g, p))
        .map_or(0, |l| l.out_axis_back);
    for k in &s.consumers {
        if has_duplicates(&old_channels(&k.runs)) {
            return Err(format!("'{}' reads a channel twice", node_name(g, k.node)));
        }
    }
    for (&u, runs) in s.users.iter().zip(&s.user_runs) {
        let c = old_channels(runs);
        if has_duplicates(&c) {
            return Err(format!("'{}' reads a channel twice", node_name(g, u)));
        }
        user_params(g, u, c.len(), back)?;
    }
    Ok(())
}

fn has_duplicates(v: &[usize]) -> bool {
    let mut seen = std::collections::HashSet::new();
    !v.iter().all(|x| seen.insert(*x))
}

/// A per-channel parameter of a user: input `slot` is a constant indexed by channel on `axis`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Param {
    pub slot: usize,
    pub axis: usize,
}

/// The per-channel parameters of user `u` reading `channels` channels on axis `back` (from the
/// last), or why they cannot be rewritten: `BatchNormalization` scale/B/mean/var, a depthwise
/// `Conv`'s weight and bias, and constant operands of elementwise ops (`PRelu` slope, `Add`/`Mul`
/// constants, ...) whose channel dim is `channels` (broadcast ones are left alone).
pub fn user_params(
    g: &Graph,
    u: NodeIndex,
    channels: usize,
    back: usize,
) -> Result<Vec<Param>, String> {
    let node = &g.g[u];
    let op = node.op.op_type();
    let name = || node_name(g, u);
    let mut out = Vec::new();
    let is_depthwise = node.op.as_any().downcast_ref::<Conv>().is_some();
    if op == "BatchNormalization" || is_depthwise {
        let slots: Vec<usize> = if is_depthwise {
            vec![1, 2]
        } else {
            vec![1, 2, 3, 4]
        };
        for slot in slots {
            let Some(v) = input(g, u, slot) else { continue };
            let Some(c) = g.constant(v.node) else {
                return Err(format!(
                    "{op} '{}' has a per-channel input {slot} that is not a constant",
                    name()
                ));
            };
            if c.shape.first() != Some(&channels) || (!is_depthwise && c.shape.len() != 1) {
                return Err(format!(
                    "{op} '{}' input {slot} has shape {:?}, not [{channels}]",
                    name(),
                    c.shape
                ));
            }
            out.push(Param { slot, axis: 0 });
        }
        return Ok(out);
    }
    const ELEMENTWISE: &[&str] = &[
        "Add", "Sub", "Mul", "Div", "Max", "Min", "Sum", "Mean", "Pow", "PRelu",
    ];
    if !ELEMENTWISE.contains(&op) {
        return Ok(out);
    }
    for (slot, v) in g.node_inputs(u).into_iter().enumerate() {
        let Some(v) = v else { continue };
        let Some(c) = g.constant(v.node) else {
            continue;
        };
        let s = &c.shape;
        if s.len() <= back || s[s.len() - 1 - back] == 1 {
            continue;
        }
        if s[s.len() - 1 - back] != channels {
            return Err(format!(
                "{op} '{}' has a constant of shape {s:?} that does not match {channels} channels",
                name()
            ));
        }
        out.push(Param {
            slot,
            axis: s.len() - 1 - back,
        });
    }
    Ok(out)
}

/// The blocks (indices into `blocks`, which are sorted by offset) a run list covers, in order.
fn run_blocks(blocks: &[Block], runs: &[Run]) -> Vec<usize> {
    runs.iter()
        .flat_map(|r| {
            blocks
                .iter()
                .enumerate()
                .filter(move |(_, b)| b.offset >= r.offset && b.offset < r.offset + r.len)
                .map(|(i, _)| i)
        })
        .collect()
}

/// `s` with its blocks laid out in an order every concatenation reading them agrees with, where
/// one exists (blocks come in topological order, which need not be a `Concat`'s input order;
/// channels never move across blocks, so a consumer of `Concat(P1, P2)` can only be made one
/// slice when `P1`'s block precedes `P2`'s). Ties keep the original order; conflicting
/// concatenations keep the original layout.
fn relayout(s: Segment) -> Segment {
    let nb = s.blocks.len();
    let lists: Vec<Vec<usize>> = s
        .consumers
        .iter()
        .map(|c| &c.runs)
        .chain(&s.user_runs)
        .map(|r| run_blocks(&s.blocks, r))
        .collect();
    let mut after: Vec<Vec<usize>> = vec![Vec::new(); nb];
    let mut indeg = vec![0usize; nb];
    for l in &lists {
        for w in l.windows(2) {
            if w[0] != w[1] && !after[w[0]].contains(&w[1]) {
                after[w[0]].push(w[1]);
                indeg[w[1]] += 1;
            }
        }
    }
    let mut order = Vec::with_capacity(nb);
    let mut ready: std::collections::BTreeSet<usize> = (0..nb).filter(|&b| indeg[b] == 0).collect();
    while let Some(b) = ready.pop_first() {
        order.push(b);
        for &n in &after[b] {
            indeg[n] -= 1;
            if indeg[n] == 0 {
                ready.insert(n);
            }
        }
    }
    if order.len() != nb || order.iter().enumerate().all(|(i, &b)| i == b) {
        return s;
    }
    let mut blocks: Vec<Block> = Vec::with_capacity(nb);
    let mut new_at = vec![0usize; nb];
    let mut at = 0;
    for &b in &order {
        new_at[b] = at;
        blocks.push(Block {
            offset: at,
            ..s.blocks[b].clone()
        });
        at += s.blocks[b].channels;
    }
    let remap = |runs: &[Run]| -> Vec<Run> {
        let mut out: Vec<Run> = Vec::new();
        for b in run_blocks(&s.blocks, runs) {
            let (offset, len) = (new_at[b], s.blocks[b].channels);
            match out.last_mut() {
                Some(r) if r.offset + r.len == offset => r.len += len,
                _ => out.push(Run { offset, len }),
            }
        }
        out
    };
    let consumers = s
        .consumers
        .iter()
        .map(|c| Consumer {
            node: c.node,
            runs: remap(&c.runs),
        })
        .collect();
    let user_runs = s.user_runs.iter().map(|r| remap(r)).collect();
    Segment {
        blocks,
        consumers,
        user_runs,
        ..s
    }
}

/// The segment masks of `s`: each consumer's keep-mask (over its columns) mapped through its
/// runs; consumers without a mask keep everything.
fn segment_masks(s: &Segment, masks: &Masks) -> SegmentMasks {
    let consumers: Vec<Vec<bool>> = s
        .consumers
        .iter()
        .map(|k| {
            let mut m = vec![false; s.channels];
            let cols = old_channels(&k.runs);
            let keep = masks.get(&k.node);
            for (i, &c) in cols.iter().enumerate() {
                m[c] = keep.and_then(|x| x.get(i)).copied().unwrap_or(true);
            }
            m
        })
        .collect();
    // A block no consumer reads anything of keeps its first channel, so no producer (nor the
    // Concat input it feeds) is left with zero channels; consumers skip it.
    let pinned = s
        .blocks
        .iter()
        .filter(|b| {
            !consumers.iter().any(|m: &Vec<bool>| {
                m.get(b.offset..b.offset + b.channels)
                    .is_some_and(|r| r.iter().any(|&x| x))
            })
        })
        .map(|b| b.offset)
        .collect();
    SegmentMasks {
        channels: s.channels,
        producers: s
            .blocks
            .iter()
            .map(|b| b.offset..b.offset + b.channels)
            .collect(),
        consumers,
        pinned,
    }
}

/// How each consumer of `s` reads its input under `o`, with gather reasons; with `cover`, a
/// gather becomes the covering slice with padded (zeroed) columns.
fn reads_of(g: &Graph, s: &Segment, o: &Ordering, cover: bool) -> Result<Vec<Read>, PruneError> {
    let mut out = Vec::with_capacity(s.consumers.len());
    for (k, cons) in s.consumers.iter().enumerate() {
        let old = old_channels(&cons.runs);
        let new = new_channels(&o.perm, &cons.runs);
        let col_of: HashMap<usize, usize> = old.iter().enumerate().map(|(i, &c)| (c, i)).collect();
        let pos_of: HashMap<usize, usize> = new.iter().enumerate().map(|(i, &c)| (c, i)).collect();
        let mut kept: Vec<(usize, usize)> = o
            .columns
            .get(k)
            .map(|v| v.as_slice())
            .unwrap_or_default()
            .iter()
            .filter_map(|c| Some((*pos_of.get(c)?, *col_of.get(c)?)))
            .collect();
        kept.sort_unstable();
        if kept.is_empty() {
            return Err(PruneError::Surgery {
                name: node_name(g, cons.node),
                msg: "keeps no input channel".into(),
            });
        }
        let first = kept[0].0;
        let last = kept[kept.len() - 1].0;
        let selection = if kept.len() == new.len() {
            Selection::Whole
        } else if last + 1 - first == kept.len() {
            Selection::Slice(first..last + 1)
        } else {
            Selection::Gather(kept.iter().map(|x| x.0).collect())
        };
        let reason = match &selection {
            Selection::Gather(_) => Some(match o.reasons.get(k).cloned().flatten() {
                Some(r) => r.to_string(),
                None => "its input concatenates blocks in another order than the segment".into(),
            }),
            _ => None,
        };
        let mut columns: Vec<usize> = kept.iter().map(|x| x.1).collect();
        let mut padded = Vec::new();
        let selection = match selection {
            Selection::Gather(_) if cover => {
                let keep: std::collections::HashSet<usize> = columns.iter().copied().collect();
                columns = new
                    .get(first..=last)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|c| col_of.get(c).copied())
                    .collect();
                padded = columns
                    .iter()
                    .copied()
                    .filter(|c| !keep.contains(c))
                    .collect();
                if last + 1 - first == new.len() {
                    Selection::Whole
                } else {
                    Selection::Slice(first..last + 1)
                }
            }
            other => other,
        };
        out.push(Read {
            node: cons.node,
            width: old.len(),
            columns,
            padded,
            reason: if cover { None } else { reason },
            selection,
        });
    }
    Ok(out)
}
