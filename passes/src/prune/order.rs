//! Channel reordering for one pruning segment (UPSCALE, ICML 2023), independent of the graph.
//!
//! **What it does.** Given the channels of one segment's shared tensor, the producers that write
//! them (one channel block each; summed producers share a block) and, for every consumer, the
//! input channels it keeps, [`order`] drops the channels no consumer keeps and finds an order of
//! the rest in which as many consumers as possible read one contiguous range (a slice, no copy).
//! The others need a gather; each one is reported with a [`GatherReason`].
//!
//! **How.** Channels that every consumer treats alike (same producer block, kept by the same
//! consumers) are merged into *atoms*; no optimal order ever needs to split one. Ordering the
//! atoms so that many kept sets are contiguous is the consecutive-ones problem; a
//! branch-and-bound search lays atoms out left to right (block by block, since channels only move
//! within their producer's block), marks a consumer *broken* once one of its atoms is followed by
//! a foreign atom while some of its atoms are still unplaced, and prunes a branch when the
//! consumers not yet broken cannot beat the best order found. Children are tried in a greedy
//! order (finish the open kept set closest to done, break little, continue the open ranges,
//! open few new ones; so nested sets are laid out inside their parents as the paper's subset
//! tree does). The greedy order, the original order and, per kept set, an order that makes
//! that set contiguous seed the search, so it never returns fewer slices than any of them. The objective is the number of consumers
//! left with a gather (the paper's path search maximises channels made contiguous instead). The search is exact when it finishes; for wide segments (more distinct kept
//! sets than [`OrderOptions::max_exact_sets`]) or once [`OrderOptions::node_budget`] nodes are
//! spent, the best order so far is returned with [`Ordering::fallback`] set.
//!
//! **Modes.** [`OrderMode::Reorder`] (the above), [`OrderMode::Identity`] (the baseline export:
//! same masks, original order, count the gathers) and [`OrderMode::Constrained`] (every consumer
//! keeps the intersection, or the union, of the kept sets: nothing is copied, but consumers lose
//! or gain channels).
//!
//! **Example** (E1 of `docs/upscale.md`): 4 channels, K1 keeps {1,2,3}, K2 keeps {0,2,3}. The
//! identity order slices K1 as `1..4` and gathers K2; the order `[1,2,3,0]` slices K1 `0..3` and
//! K2 `1..4` (its weight columns permuted to match), with no copy.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

/// One segment's masks: what [`order`] reorders.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SegmentMasks {
    /// Channels of the shared tensor (the concatenation of the producers' blocks).
    pub channels: usize,
    /// The channel block each producer writes. Producers summed together list the same block;
    /// blocks must otherwise be disjoint and cover `0..channels`. Empty: one producer writes all.
    pub producers: Vec<Range<usize>>,
    /// Per consumer, which channels it keeps (`consumers[k].len() == channels`).
    pub consumers: Vec<Vec<bool>>,
    /// Channels kept even if no consumer keeps them (e.g. summed with a kept channel).
    pub pinned: Vec<usize>,
}

impl SegmentMasks {
    /// A one-producer segment of `channels` channels with the given consumers' kept sets.
    pub fn from_sets(channels: usize, kept: &[&[usize]]) -> SegmentMasks {
        let consumers = kept
            .iter()
            .map(|set| {
                let mut m = vec![false; channels];
                for &c in set.iter() {
                    if c < channels {
                        m[c] = true;
                    }
                }
                m
            })
            .collect();
        SegmentMasks {
            channels,
            producers: Vec::new(),
            consumers,
            pinned: Vec::new(),
        }
    }
}

/// How to order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OrderMode {
    /// Search for the order with the fewest gathers (UPSCALE).
    #[default]
    Reorder,
    /// Keep the original order (the baseline export) and count the gathers.
    Identity,
    /// Every consumer keeps the same channels (constrained pruning).
    Constrained(SharedMask),
}

/// The shared mask of [`OrderMode::Constrained`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SharedMask {
    /// Channels every consumer keeps (what constrained pruners do; loses accuracy).
    Intersection,
    /// Channels any consumer keeps (nothing is removed that some consumer wanted).
    Union,
}

/// Options of [`order`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderOptions {
    pub mode: OrderMode,
    /// Most distinct kept sets searched exactly; wider segments get the greedy order.
    pub max_exact_sets: usize,
    /// Most search nodes; past it the best order found so far is returned.
    pub node_budget: usize,
}

impl Default for OrderOptions {
    fn default() -> Self {
        OrderOptions {
            mode: OrderMode::Reorder,
            max_exact_sets: 24,
            node_budget: 200_000,
        }
    }
}

impl OrderOptions {
    /// The default options with `mode`.
    pub fn with_mode(mode: OrderMode) -> OrderOptions {
        OrderOptions {
            mode,
            ..Default::default()
        }
    }
}

/// Why a consumer still needs a gather.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GatherReason {
    /// Identity mode: its kept channels are not one range in the original order.
    NotReordered,
    /// Its kept channels span several producer blocks, and a block in between (or the end of
    /// the first / start of the last) holds kept channels it does not read; channels cannot
    /// move across blocks, so no order makes it contiguous.
    SplitAcrossProducers,
    /// The exact search proved that no order makes more consumers contiguous; keeping this one
    /// contiguous would break others. `overlaps`: the sliced consumers sharing channels with it.
    Conflict { overlaps: Vec<usize> },
    /// The search was cut short (see [`Ordering::fallback`]): a better order may exist.
    SearchBounded { overlaps: Vec<usize> },
}

impl fmt::Display for GatherReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GatherReason::NotReordered => write!(f, "not contiguous in the original order"),
            GatherReason::SplitAcrossProducers => {
                write!(
                    f,
                    "spans producer blocks with foreign kept channels between"
                )
            }
            GatherReason::Conflict { overlaps } => {
                write!(
                    f,
                    "no order keeps it contiguous with consumers {overlaps:?}"
                )
            }
            GatherReason::SearchBounded { overlaps } => write!(
                f,
                "search bounded; not made contiguous with consumers {overlaps:?}"
            ),
        }
    }
}

/// The result of [`order`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ordering {
    /// The kept channels (old indices) in their new order: new position `i` holds `perm[i]`.
    /// Channels stay inside their producer's block; blocks keep their order.
    pub perm: Vec<usize>,
    /// Channels no consumer keeps (and not pinned), ascending: removed from the producers.
    pub removed: Vec<usize>,
    /// Per consumer, its kept channels (old indices) in new-position order: the order of its
    /// weight columns after surgery. In constrained mode this is the shared mask.
    pub columns: Vec<Vec<usize>>,
    /// Per consumer, the range of new positions it reads when that is contiguous (a slice).
    pub slices: Vec<Option<Range<usize>>>,
    /// Per consumer, why it gathers (`None` when it slices).
    pub reasons: Vec<Option<GatherReason>>,
    /// Consumers that need a gather.
    pub gathers: usize,
    /// The order is not proven optimal: the segment was too wide or the node budget ran out.
    pub fallback: bool,
    /// Search nodes visited (0 outside [`OrderMode::Reorder`]).
    pub nodes: usize,
}

impl Ordering {
    /// `old -> new position` for kept channels (`None` for removed ones).
    pub fn positions(&self, channels: usize) -> Vec<Option<usize>> {
        let mut pos = vec![None; channels];
        for (i, &c) in self.perm.iter().enumerate() {
            pos[c] = Some(i);
        }
        pos
    }
}

/// Invalid segment masks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    #[error("consumer {consumer}: mask has {len} entries, the segment has {channels} channels")]
    MaskLength {
        consumer: usize,
        len: usize,
        channels: usize,
    },
    #[error("producer {producer}: block {block:?} {why}")]
    Producers {
        producer: usize,
        block: Range<usize>,
        why: &'static str,
    },
    #[error("pinned channel {channel} is out of range (the segment has {channels} channels)")]
    Pinned { channel: usize, channels: usize },
}

/// Orders one segment's channels (see the module doc).
pub fn order(seg: &SegmentMasks, opts: &OrderOptions) -> Result<Ordering, OrderError> {
    let blocks = validate(seg)?;
    let n = seg.channels;
    let mut keep = vec![false; n];
    for m in &seg.consumers {
        for (k, &b) in keep.iter_mut().zip(m) {
            *k |= b;
        }
    }
    for &p in &seg.pinned {
        keep[p] = true;
    }
    let sets: Vec<Vec<bool>> = match opts.mode {
        OrderMode::Constrained(shared) => {
            if shared == SharedMask::Intersection {
                let mut inter = vec![!seg.consumers.is_empty(); n];
                for m in &seg.consumers {
                    for (x, &b) in inter.iter_mut().zip(m) {
                        *x &= b;
                    }
                }
                for &p in &seg.pinned {
                    inter[p] = true;
                }
                keep = inter;
            }
            vec![keep.clone(); seg.consumers.len()]
        }
        _ => seg.consumers.clone(),
    };
    let removed: Vec<usize> = (0..n).filter(|&c| !keep[c]).collect();

    let (perm, fallback, nodes) = match opts.mode {
        OrderMode::Reorder => search(&blocks, &keep, &sets, opts),
        _ => ((0..n).filter(|&c| keep[c]).collect(), false, 0),
    };

    let mut pos = vec![usize::MAX; n];
    for (i, &c) in perm.iter().enumerate() {
        pos[c] = i;
    }
    let mut columns = Vec::with_capacity(sets.len());
    let mut slices = Vec::with_capacity(sets.len());
    for s in &sets {
        let mut cols: Vec<usize> = (0..n).filter(|&c| s[c] && keep[c]).collect();
        cols.sort_by_key(|&c| pos[c]);
        let slice = match (cols.first(), cols.last()) {
            (Some(&a), Some(&b)) if pos[b] - pos[a] + 1 == cols.len() => Some(pos[a]..pos[b] + 1),
            (None, _) => Some(0..0),
            _ => None,
        };
        columns.push(cols);
        slices.push(slice);
    }
    let reasons: Vec<Option<GatherReason>> = (0..sets.len())
        .map(|k| {
            slices[k].is_none().then(|| {
                let overlaps = (0..sets.len())
                    .filter(|&j| {
                        j != k && slices[j].is_some() && (0..n).any(|c| sets[k][c] && sets[j][c])
                    })
                    .collect();
                if opts.mode == OrderMode::Identity {
                    GatherReason::NotReordered
                } else if split_across(&blocks, &keep, &sets[k]) {
                    GatherReason::SplitAcrossProducers
                } else if fallback {
                    GatherReason::SearchBounded { overlaps }
                } else {
                    GatherReason::Conflict { overlaps }
                }
            })
        })
        .collect();
    let gathers = reasons.iter().filter(|r| r.is_some()).count();
    Ok(Ordering {
        perm,
        removed,
        columns,
        slices,
        reasons,
        gathers,
        fallback,
        nodes,
    })
}

/// Checks the masks; returns the distinct producer blocks, ascending.
fn validate(seg: &SegmentMasks) -> Result<Vec<Range<usize>>, OrderError> {
    let n = seg.channels;
    for (k, m) in seg.consumers.iter().enumerate() {
        if m.len() != n {
            return Err(OrderError::MaskLength {
                consumer: k,
                len: m.len(),
                channels: n,
            });
        }
    }
    if let Some(&p) = seg.pinned.iter().find(|&&p| p >= n) {
        return Err(OrderError::Pinned {
            channel: p,
            channels: n,
        });
    }
    if seg.producers.is_empty() {
        return Ok(std::iter::once(0..n).collect());
    }
    let mut blocks: Vec<Range<usize>> = Vec::new();
    for (i, b) in seg.producers.iter().enumerate() {
        let bad = |why| OrderError::Producers {
            producer: i,
            block: b.clone(),
            why,
        };
        if b.start > b.end || b.end > n {
            return Err(bad("is outside the segment's channels"));
        }
        if b.is_empty() && n > 0 {
            return Err(bad("is empty"));
        }
        if blocks.contains(b) {
            continue;
        }
        if blocks.iter().any(|o| o.start < b.end && b.start < o.end) {
            return Err(bad(
                "overlaps another producer's block without being equal to it",
            ));
        }
        blocks.push(b.clone());
    }
    blocks.sort_by_key(|b| b.start);
    let mut at = 0;
    for b in &blocks {
        if b.start != at {
            return Err(OrderError::Producers {
                producer: seg.producers.iter().position(|p| p == b).unwrap_or(0),
                block: b.clone(),
                why: "leaves a gap: the blocks must cover all channels",
            });
        }
        at = b.end;
    }
    if at != n {
        return Err(OrderError::Producers {
            producer: seg.producers.len() - 1,
            block: blocks.last().cloned().unwrap_or(0..0),
            why: "leaves a gap: the blocks must cover all channels",
        });
    }
    Ok(blocks)
}

/// True when no order can make `set` contiguous because of the producer blocks: it spans
/// several blocks and a block strictly between holds a kept channel it does not read (in its
/// first and last block it can always be laid out as a suffix and a prefix).
fn split_across(blocks: &[Range<usize>], keep: &[bool], set: &[bool]) -> bool {
    let touched: Vec<usize> = blocks
        .iter()
        .enumerate()
        .filter(|(_, b)| (*b).clone().any(|c| set[c] && keep[c]))
        .map(|(i, _)| i)
        .collect();
    match (touched.first(), touched.last()) {
        (Some(&a), Some(&z)) if z > a => {
            (a + 1..z).any(|i| blocks[i].clone().any(|c| keep[c] && !set[c]))
        }
        _ => false,
    }
}

/// Set status during the search.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum St {
    Fresh,
    Open,
    Done,
    Broken,
}

struct Atom {
    block: usize,
    channels: Vec<usize>,
    /// Distinct kept sets containing it.
    sets: Vec<usize>,
}

struct Search<'a> {
    atoms: &'a [Atom],
    /// Per distinct set: how many consumers have it.
    weight: Vec<usize>,
    /// Per block, its atoms.
    by_block: Vec<Vec<usize>>,
    /// Per distinct set, the last block holding one of its atoms.
    last_block: Vec<usize>,
    budget: usize,
    nodes: usize,
    best: Option<(usize, Vec<usize>)>,
    total: usize,
    cut: bool,
}

#[derive(Clone)]
struct State {
    st: Vec<St>,
    left: Vec<usize>,
    placed: Vec<bool>,
    seq: Vec<usize>,
    broken: usize,
}

/// Finds the atom order; returns (perm of kept channels, fallback, nodes).
fn search(
    blocks: &[Range<usize>],
    keep: &[bool],
    sets: &[Vec<bool>],
    opts: &OrderOptions,
) -> (Vec<usize>, bool, usize) {
    // Distinct non-trivial kept sets (restricted to kept channels) and their multiplicity.
    let mut distinct: BTreeMap<Vec<usize>, usize> = BTreeMap::new();
    for s in sets {
        let members: Vec<usize> = (0..keep.len()).filter(|&c| s[c] && keep[c]).collect();
        if members.len() > 1 {
            *distinct.entry(members).or_insert(0) += 1;
        }
    }
    let (members, weight): (Vec<Vec<usize>>, Vec<usize>) = distinct.into_iter().unzip();
    // Atoms: channels with the same block and the same sets.
    let mut sig: Vec<Vec<usize>> = vec![Vec::new(); keep.len()];
    for (j, m) in members.iter().enumerate() {
        for &c in m {
            sig[c].push(j);
        }
    }
    let mut by_sig: BTreeMap<(usize, Vec<usize>), Vec<usize>> = BTreeMap::new();
    for (b, r) in blocks.iter().enumerate() {
        for c in r.clone().filter(|&c| keep[c]) {
            by_sig.entry((b, sig[c].clone())).or_default().push(c);
        }
    }
    let mut atoms: Vec<Atom> = by_sig
        .into_iter()
        .map(|((block, sets), channels)| Atom {
            block,
            channels,
            sets,
        })
        .collect();
    atoms.sort_by_key(|a| (a.block, a.channels[0]));
    let mut by_block = vec![Vec::new(); blocks.len()];
    for (i, a) in atoms.iter().enumerate() {
        by_block[a.block].push(i);
    }
    let mut left = vec![0; members.len()];
    for a in &atoms {
        for &j in &a.sets {
            left[j] += 1;
        }
    }
    let mut last_block = vec![0; members.len()];
    for a in &atoms {
        for &j in &a.sets {
            last_block[j] = last_block[j].max(a.block);
        }
    }
    let mut st = vec![St::Fresh; members.len()];
    let mut broken = 0;
    for (j, m) in members.iter().enumerate() {
        let mut mask = vec![false; keep.len()];
        m.iter().for_each(|&c| mask[c] = true);
        if split_across(blocks, keep, &mask) {
            st[j] = St::Broken;
            broken += weight[j];
        }
    }
    let total: usize = weight.iter().sum();
    let wide = members.len() > opts.max_exact_sets;
    let mut s = Search {
        atoms: &atoms,
        weight,
        by_block,
        last_block,
        budget: if wide { 0 } else { opts.node_budget.max(1) },
        nodes: 0,
        best: None,
        total,
        cut: wide,
    };
    let state = State {
        st,
        left,
        placed: vec![false; atoms.len()],
        seq: Vec::with_capacity(atoms.len()),
        broken,
    };
    s.seed(&state);
    if s.budget > 0 {
        s.dfs(state);
    }
    let seq = s.best.map(|b| b.1).unwrap_or_default();
    let perm = seq
        .iter()
        .flat_map(|&a| atoms[a].channels.iter().copied())
        .collect();
    (perm, s.cut, s.nodes)
}

impl Search<'_> {
    /// Places atom `a` after the current sequence.
    fn place(&self, s: &State, a: usize) -> State {
        let mut n = s.clone();
        self.place_mut(&mut n, a);
        n
    }

    fn place_mut(&self, n: &mut State, a: usize) {
        let atom = &self.atoms[a];
        for j in 0..n.st.len() {
            if n.st[j] == St::Open && !atom.sets.contains(&j) {
                n.st[j] = St::Broken;
                n.broken += self.weight[j];
            }
        }
        for &j in &atom.sets {
            n.left[j] -= 1;
            if n.st[j] == St::Fresh || n.st[j] == St::Open {
                n.st[j] = if n.left[j] == 0 { St::Done } else { St::Open };
            }
        }
        n.placed[a] = true;
        n.seq.push(a);
    }

    /// The unplaced atoms that may come next (those of the first unfinished block), best
    /// first by the greedy rule.
    fn children(&self, s: &State) -> Vec<usize> {
        let Some(block) = self
            .by_block
            .iter()
            .find(|b| b.iter().any(|&a| !s.placed[a]))
        else {
            return Vec::new();
        };
        let mut cand: Vec<usize> = block.iter().copied().filter(|&a| !s.placed[a]).collect();
        // Focus on the open set closest to done: its atoms first, so it completes.
        let focus = (0..s.st.len())
            .filter(|&j| s.st[j] == St::Open)
            .min_by_key(|&j| (s.left[j], usize::MAX - self.weight[j]));
        cand.sort_by_key(|&a| {
            let outside = focus.is_some_and(|j| !self.atoms[a].sets.contains(&j));
            (outside, self.key(s, a))
        });
        cand
    }

    /// Scores complete orders that need no search: the original order, the greedy order, and
    /// per kept set an order that makes it contiguous (its atoms last in its first block when
    /// it continues into a later one, first otherwise); keeps the best as the incumbent.
    fn seed(&mut self, start: &State) {
        let mut seqs: Vec<Vec<usize>> = vec![(0..self.atoms.len()).collect()];
        let mut g = start.clone();
        while let Some(&a) = self.children(&g).first() {
            self.place_mut(&mut g, a);
        }
        seqs.push(g.seq);
        for j in 0..start.st.len() {
            if start.st[j] == St::Broken {
                continue;
            }
            let first = self
                .atoms
                .iter()
                .find(|a| a.sets.contains(&j))
                .map_or(0, |a| a.block);
            let mut seq: Vec<usize> = (0..self.atoms.len()).collect();
            seq.sort_by_key(|&a| {
                let atom = &self.atoms[a];
                let member = atom.sets.contains(&j);
                let late = if atom.block == first && self.last_block[j] > first {
                    member
                } else {
                    !member
                };
                (atom.block, late, a)
            });
            seqs.push(seq);
        }
        for seq in seqs {
            let mut st = start.clone();
            for &a in &seq {
                self.place_mut(&mut st, a);
            }
            let score = self.total - st.broken;
            if self.best.as_ref().is_none_or(|b| score > b.0) {
                self.best = Some((score, st.seq));
            }
        }
    }

    /// Greedy key of placing `a` (smaller first): weight broken, minus weight continued,
    /// then fresh sets opened.
    fn key(&self, s: &State, a: usize) -> (usize, usize, isize, usize, usize) {
        let atom = &self.atoms[a];
        let mut breaks = 0;
        let mut cont = 0isize;
        for j in 0..s.st.len() {
            if s.st[j] == St::Open {
                if atom.sets.contains(&j) {
                    cont += self.weight[j] as isize;
                } else {
                    breaks += self.weight[j];
                }
            }
        }
        let fresh = || {
            atom.sets
                .iter()
                .filter(|&&j| s.st[j] == St::Fresh && s.left[j] > 1)
        };
        // Sets continuing into a later block must end this one: open them last.
        let forward = fresh()
            .filter(|&&j| self.last_block[j] > atom.block)
            .count();
        (breaks, forward, -cont, fresh().count(), a)
    }

    fn dfs(&mut self, s: State) {
        self.nodes += 1;
        if let Some((score, _)) = &self.best {
            if self.total - s.broken <= *score {
                return;
            }
        }
        if s.seq.len() == self.atoms.len() {
            self.best = Some((self.total - s.broken, s.seq));
            return;
        }
        let cand = self.children(&s);
        for a in cand {
            if self.nodes >= self.budget {
                self.cut = true;
                return;
            }
            let next = self.place(&s, a);
            self.dfs(next);
            if let Some((score, _)) = &self.best {
                if *score == self.total - s.broken {
                    return;
                }
            }
        }
    }
}
