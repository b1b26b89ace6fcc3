//! Channel reordering (`prune::order`): the worked examples E1-E7 of `docs/upscale.md`, the
//! baseline and constrained modes, input validation, and seeded random masks checked against
//! the contract (and, for small segments, against a brute-force optimum).

use petasos_passes::prune::order::{
    order, GatherReason, OrderError, OrderMode, OrderOptions, Ordering, SegmentMasks, SharedMask,
};

fn reorder(seg: &SegmentMasks) -> Ordering {
    order(seg, &OrderOptions::default()).expect("valid masks")
}

fn identity(seg: &SegmentMasks) -> Ordering {
    order(seg, &OrderOptions::with_mode(OrderMode::Identity)).expect("valid masks")
}

/// Checks the contract of an ordering against its masks; returns the number of consumers whose
/// kept channels are contiguous under `perm` (recomputed here, not taken from the report).
fn check(seg: &SegmentMasks, o: &Ordering) -> usize {
    let n = seg.channels;
    // perm and removed together are a permutation of 0..n.
    let mut seen = vec![false; n];
    for &c in o.perm.iter().chain(&o.removed) {
        assert!(
            c < n && !seen[c],
            "channel {c} twice or out of range: {o:?}"
        );
        seen[c] = true;
    }
    assert!(seen.iter().all(|&s| s), "a channel is missing: {o:?}");
    // removed: exactly the channels nobody keeps (and not pinned).
    for c in 0..n {
        let kept = seg.consumers.iter().any(|m| m[c]) || seg.pinned.contains(&c);
        assert_eq!(o.removed.contains(&c), !kept, "channel {c}: {o:?}");
    }
    // channels stay in their producer's block, blocks in order.
    if !seg.producers.is_empty() {
        let block = |c: usize| seg.producers.iter().position(|b| b.contains(&c)).unwrap();
        let bs: Vec<usize> = o.perm.iter().map(|&c| block(c)).collect();
        let starts: Vec<usize> = bs.iter().map(|&b| seg.producers[b].start).collect();
        assert!(
            starts.windows(2).all(|w| w[0] <= w[1]),
            "blocks mixed: {o:?}"
        );
    }
    let pos = o.positions(n);
    let mut contiguous = 0;
    for (k, m) in seg.consumers.iter().enumerate() {
        let mut p: Vec<usize> = (0..n).filter(|&c| m[c]).map(|c| pos[c].unwrap()).collect();
        p.sort();
        let is_contig = p.is_empty() || p[p.len() - 1] - p[0] + 1 == p.len();
        contiguous += usize::from(is_contig);
        // columns: the consumer's channels in new-position order.
        let cols: Vec<usize> = p.iter().map(|&i| o.perm[i]).collect();
        assert_eq!(o.columns[k], cols, "consumer {k}");
        match &o.slices[k] {
            Some(r) => {
                assert!(
                    is_contig,
                    "consumer {k} reported sliced but is not contiguous"
                );
                let want: Vec<usize> = p
                    .first()
                    .map(|&a| (a..a + p.len()).collect())
                    .unwrap_or_default();
                assert_eq!(
                    r.clone().collect::<Vec<_>>(),
                    want,
                    "consumer {k}: slice != its channels"
                );
                assert!(o.reasons[k].is_none());
            }
            None => {
                assert!(
                    !is_contig,
                    "consumer {k} contiguous but reported as a gather"
                );
                assert!(o.reasons[k].is_some());
            }
        }
    }
    assert_eq!(o.gathers, seg.consumers.len() - contiguous);
    contiguous
}

fn slice_len(o: &Ordering, k: usize) -> usize {
    o.slices[k].clone().expect("a slice").len()
}

#[test]
fn e1_fan_out() {
    // P (4 ch) feeds K1 (drops 0) and K2 (drops 1).
    let seg = SegmentMasks::from_sets(4, &[&[1, 2, 3], &[0, 2, 3]]);
    let base = identity(&seg);
    check(&seg, &base);
    assert_eq!(base.removed, Vec::<usize>::new());
    assert_eq!(base.slices[0], Some(1..4));
    assert_eq!(base.slices[1], None);
    assert_eq!(base.reasons[1], Some(GatherReason::NotReordered));
    assert_eq!(base.gathers, 1);
    let o = reorder(&seg);
    check(&seg, &o);
    assert_eq!(o.gathers, 0);
    assert!(!o.fallback);
    assert_eq!((slice_len(&o, 0), slice_len(&o, 1)), (3, 3));
}

#[test]
fn e2_nested() {
    let seg = SegmentMasks::from_sets(4, &[&[1, 2, 3], &[1, 3]]);
    let o = reorder(&seg);
    check(&seg, &o);
    assert_eq!(o.removed, vec![0]);
    assert_eq!(o.perm.len(), 3);
    assert_eq!(o.gathers, 0);
    assert_eq!(o.slices[0], Some(0..3));
    assert_eq!(slice_len(&o, 1), 2);
    assert_eq!(identity(&seg).gathers, 1);
}

#[test]
fn e3_residual() {
    // S = P1 + P2: both producers write the same block.
    let mut seg = SegmentMasks::from_sets(4, &[&[1, 2, 3], &[2, 3]]);
    seg.producers = vec![0..4, 0..4];
    let o = reorder(&seg);
    check(&seg, &o);
    assert_eq!(o.removed, vec![0]);
    assert_eq!(o.gathers, 0);
    assert_eq!(o.slices[0], Some(0..3));
    assert_eq!(slice_len(&o, 1), 2);

    // Variant: K1 keeps {1,3}, K2 keeps {0,2}: nothing removable, both slice after reordering.
    let mut v = SegmentMasks::from_sets(4, &[&[1, 3], &[0, 2]]);
    v.producers = vec![0..4, 0..4];
    assert_eq!(identity(&v).gathers, 2);
    let o = reorder(&v);
    check(&v, &o);
    assert_eq!(o.removed, Vec::<usize>::new());
    assert_eq!(o.gathers, 0);
    // A constrained export of those masks removes all 4 channels.
    let c = order(
        &v,
        &OrderOptions::with_mode(OrderMode::Constrained(SharedMask::Intersection)),
    )
    .unwrap();
    assert_eq!(c.removed, vec![0, 1, 2, 3]);
    assert!(c.perm.is_empty());
    assert_eq!(c.gathers, 0);
}

#[test]
fn e4_concat() {
    // K1 reads cat(P1, P2) (8 ch) and drops 0, 1; K2 reads P1 and drops 0, 2.
    let mut seg = SegmentMasks::from_sets(8, &[&[2, 3, 4, 5, 6, 7], &[1, 3]]);
    seg.producers = vec![0..4, 4..8];
    let o = reorder(&seg);
    check(&seg, &o);
    assert_eq!(o.removed, vec![0]);
    assert_eq!(o.perm.len(), 7);
    assert_eq!(o.gathers, 0);
    assert_eq!(o.slices[1], Some(0..2));
    assert_eq!(o.slices[0], Some(1..7));
    assert_eq!(&o.perm[..3], &[1, 3, 2]);
    assert_eq!(identity(&seg).gathers, 1);
}

#[test]
fn e5_unavoidable_copy() {
    let seg = SegmentMasks::from_sets(5, &[&[0, 1], &[1, 2], &[0, 2, 4]]);
    let o = reorder(&seg);
    assert_eq!(check(&seg, &o), 2);
    assert_eq!(o.removed, vec![3]);
    assert_eq!(o.gathers, 1);
    assert!(!o.fallback, "exact search: the copy is proven unavoidable");
    let k = o.slices.iter().position(|s| s.is_none()).unwrap();
    assert!(
        matches!(o.reasons[k], Some(GatherReason::Conflict { .. })),
        "{:?}",
        o.reasons[k]
    );
}

#[test]
fn e6_subsets() {
    let seg = SegmentMasks::from_sets(4, &[&[0, 1, 2], &[0, 2], &[1, 2], &[3]]);
    let o = reorder(&seg);
    assert_eq!(check(&seg, &o), 4);
    assert_eq!(o.gathers, 0);
    assert_eq!(identity(&seg).gathers, 1);
}

#[test]
fn e7_users() {
    // P -> BN -> {K1 (drops 1), K2 (drops 0)}: the BN follows P's order (graph level); the
    // segment's masks are those of a fan-out.
    let seg = SegmentMasks::from_sets(4, &[&[0, 2, 3], &[1, 2, 3]]);
    let o = reorder(&seg);
    check(&seg, &o);
    assert_eq!(o.gathers, 0);
    assert_eq!((slice_len(&o, 0), slice_len(&o, 1)), (3, 3));
    assert_eq!(identity(&seg).gathers, 1);
}

#[test]
fn constrained_union_keeps_everything_wanted() {
    let seg = SegmentMasks::from_sets(5, &[&[0, 1], &[1, 2], &[0, 2, 4]]);
    let c = order(
        &seg,
        &OrderOptions::with_mode(OrderMode::Constrained(SharedMask::Union)),
    )
    .unwrap();
    assert_eq!(c.removed, vec![3]);
    assert_eq!(c.gathers, 0);
    assert!(c.columns.iter().all(|cols| cols == &vec![0, 1, 2, 4]));
    assert!(c.slices.iter().all(|s| s == &Some(0..4)));
}

#[test]
fn split_across_producers_is_reported() {
    // K reads cat(P1, P2, P3) but skips a kept channel of P2: no order can help.
    let mut seg = SegmentMasks::from_sets(6, &[&[0, 2, 4], &[3]]);
    seg.producers = vec![0..2, 2..4, 4..6];
    let o = reorder(&seg);
    check(&seg, &o);
    assert_eq!(o.gathers, 1);
    assert_eq!(o.reasons[0], Some(GatherReason::SplitAcrossProducers));
}

#[test]
fn pinned_channels_are_kept() {
    let mut seg = SegmentMasks::from_sets(4, &[&[1, 2]]);
    seg.pinned = vec![0];
    let o = reorder(&seg);
    check(&seg, &o);
    assert_eq!(o.removed, vec![3]);
    assert_eq!(o.perm.len(), 3);
}

#[test]
fn invalid_masks_are_rejected() {
    let mut seg = SegmentMasks::from_sets(4, &[&[1], &[2]]);
    seg.consumers[1].pop();
    let e = order(&seg, &OrderOptions::default()).unwrap_err();
    assert_eq!(
        e,
        OrderError::MaskLength {
            consumer: 1,
            len: 3,
            channels: 4
        }
    );
    assert!(e.to_string().contains("consumer 1"));

    let mut seg = SegmentMasks::from_sets(4, &[&[1]]);
    seg.producers = vec![0..2, 1..4];
    assert!(matches!(
        order(&seg, &OrderOptions::default()),
        Err(OrderError::Producers { .. })
    ));
    seg.producers = std::iter::once(0..2).collect(); // leaves 2..4 uncovered
    assert!(matches!(
        order(&seg, &OrderOptions::default()),
        Err(OrderError::Producers { .. })
    ));
    seg.producers = vec![];
    seg.pinned = vec![4];
    assert!(matches!(
        order(&seg, &OrderOptions::default()),
        Err(OrderError::Pinned { .. })
    ));
}

#[test]
fn wide_segments_fall_back_to_greedy() {
    let mut rng = Rng(7);
    let seg = random_segment(&mut rng, 64, 40, false);
    let opts = OrderOptions {
        max_exact_sets: 8,
        ..Default::default()
    };
    let o = order(&seg, &opts).unwrap();
    check(&seg, &o);
    assert!(o.fallback);
    assert!(o.gathers <= identity(&seg).gathers);
    for r in o.reasons.iter().flatten() {
        assert!(matches!(
            r,
            GatherReason::SearchBounded { .. } | GatherReason::SplitAcrossProducers
        ));
    }
    // A node budget also bounds the search.
    let tight = OrderOptions {
        node_budget: 10,
        ..Default::default()
    };
    let o = order(&random_segment(&mut rng, 32, 12, false), &tight).unwrap();
    assert!(o.nodes <= 10 + 32, "{} nodes", o.nodes);
}

/// xorshift64*: deterministic random masks without a dev-dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn random_segment(rng: &mut Rng, channels: usize, consumers: usize, blocks: bool) -> SegmentMasks {
    let density = 1 + rng.below(3); // keep with probability density/4
    let consumers = (0..consumers)
        .map(|_| (0..channels).map(|_| rng.below(4) < density).collect())
        .collect();
    let mut producers = Vec::new();
    if blocks && channels > 1 {
        let cut = 1 + rng.below(channels - 1);
        producers = vec![0..cut, cut..channels];
        if rng.below(2) == 0 {
            producers.push(0..cut); // a summed producer
        }
    }
    SegmentMasks {
        channels,
        producers,
        consumers,
        pinned: Vec::new(),
    }
}

/// The most consumers any order (within blocks) makes contiguous, by trying every order.
fn brute_force_best(seg: &SegmentMasks, kept: &[usize]) -> usize {
    fn rec(seg: &SegmentMasks, left: &mut Vec<usize>, seq: &mut Vec<usize>, best: &mut usize) {
        if left.is_empty() {
            let n = seg.channels;
            let mut pos = vec![usize::MAX; n];
            for (i, &c) in seq.iter().enumerate() {
                pos[c] = i;
            }
            let ok = seg
                .consumers
                .iter()
                .filter(|m| {
                    let p: Vec<usize> = (0..n).filter(|&c| m[c]).map(|c| pos[c]).collect();
                    p.is_empty() || p.iter().max().unwrap() - p.iter().min().unwrap() + 1 == p.len()
                })
                .count();
            *best = (*best).max(ok);
            return;
        }
        for i in 0..left.len() {
            let c = left.remove(i);
            let block_ok = seg.producers.is_empty() || {
                let start = |c: usize| seg.producers.iter().find(|b| b.contains(&c)).unwrap().start;
                seq.last().is_none_or(|&l| start(l) <= start(c))
                    && left.iter().all(|&r| start(r) >= start(c))
            };
            if block_ok {
                seq.push(c);
                rec(seg, left, seq, best);
                seq.pop();
            }
            left.insert(i, c);
        }
    }
    let mut best = 0;
    rec(seg, &mut kept.to_vec(), &mut Vec::new(), &mut best);
    best
}

#[test]
fn random_masks_meet_the_contract_and_the_optimum() {
    let mut rng = Rng(0x5eed);
    for case in 0..300 {
        let channels = 1 + rng.below(7);
        let consumers = rng.below(6);
        let seg = random_segment(&mut rng, channels, consumers, case % 2 == 1);
        let o = reorder(&seg);
        let got = check(&seg, &o);
        assert!(!o.fallback);
        assert_eq!(
            got,
            brute_force_best(&seg, &o.perm),
            "case {case}: {seg:?} -> {o:?}"
        );
        let base = identity(&seg);
        check(&seg, &base);
        assert!(o.gathers <= base.gathers);
        for shared in [SharedMask::Intersection, SharedMask::Union] {
            let c = order(
                &seg,
                &OrderOptions::with_mode(OrderMode::Constrained(shared)),
            )
            .unwrap();
            assert_eq!(c.gathers, 0);
        }
    }
    // Larger segments: contract only.
    for _ in 0..40 {
        let channels = 8 + rng.below(56);
        let consumers = 1 + rng.below(12);
        let blocks = rng.below(2) == 0;
        let seg = random_segment(&mut rng, channels, consumers, blocks);
        let o = reorder(&seg);
        check(&seg, &o);
        assert!(o.gathers <= identity(&seg).gathers);
    }
}

/// Dense random masks on wide segments: most consumers must gather, but the search (seeded
/// with one order per kept set) always keeps at least one slice and never loses to the baseline.
#[test]
fn wide_random_segments_keep_a_slice() {
    let mut rng = Rng(99);
    for (ch, k, blocks) in [
        (1024, 32, true),
        (256, 20, true),
        (2048, 8, true),
        (512, 64, false),
    ] {
        let seg = random_segment(&mut rng, ch, k, blocks);
        let o = reorder(&seg);
        check(&seg, &o);
        assert!(o.gathers < k, "{ch}x{k}: {} gathers", o.gathers);
        assert!(o.gathers <= identity(&seg).gathers);
    }
}
