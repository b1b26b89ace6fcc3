//! Layout invariants: edges go down in rank, boxes in a rank do not overlap, output is
//! deterministic, chains stay straight and narrow, cycles are broken.

use egui::vec2;
use petasos_viewer::graph::hierarchy::Hierarchy;
use petasos_viewer::graph::layout::{layout, LayoutInput};
use petasos_viewer::graph::{build_scene, synth, GraphData};

fn input_of(g: &GraphData) -> LayoutInput {
    LayoutInput {
        sizes: g
            .nodes
            .iter()
            .map(|n| vec2(40.0 + 3.0 * n.label.len() as f32, 30.0))
            .collect(),
        edges: g.edges.iter().map(|e| (e.from, e.to)).collect(),
    }
}

fn check_invariants(g: &GraphData) {
    let inp = input_of(g);
    let l = layout(&inp, &|_| {});
    assert_eq!(l.rects.len(), g.nodes.len());
    // Every (non-reversed) edge goes strictly downwards in rank, and its path starts at the
    // source box and ends at the target box.
    for (e, &(a, b)) in inp.edges.iter().enumerate() {
        assert!(!l.reversed[e], "acyclic input: no edge reversed");
        assert!(
            l.rank[a] < l.rank[b],
            "edge {a}->{b}: rank {} !< {}",
            l.rank[a],
            l.rank[b]
        );
        let p = l.edge_path(e);
        assert!(p.len() >= 2);
        assert!((p[0].y - l.rects[a].bottom()).abs() < 1e-3);
        assert!((p[p.len() - 1].y - l.rects[b].top()).abs() < 1e-3);
        for w in p.windows(2) {
            assert!(w[1].y >= w[0].y - 1e-3, "edge {e} path goes up");
        }
    }
    // No two boxes of a rank overlap (and boxes of different ranks do not overlap in y).
    let mut by_rank: Vec<Vec<usize>> = vec![Vec::new(); l.rank_top.len()];
    for (i, &r) in l.rank.iter().enumerate() {
        by_rank[r as usize].push(i);
    }
    for row in &by_rank {
        let mut xs: Vec<(f32, f32)> = row
            .iter()
            .map(|&i| (l.rects[i].min.x, l.rects[i].max.x))
            .collect();
        xs.sort_by(|a, b| a.0.total_cmp(&b.0));
        for w in xs.windows(2) {
            assert!(w[0].1 <= w[1].0 + 1e-3, "overlap in a rank: {w:?}");
        }
    }
    for i in 0..l.rects.len() {
        let j = (i * 7 + 3) % l.rects.len();
        if l.rank[i] != l.rank[j] {
            assert!(!l.rects[i].intersects(l.rects[j]) || l.rects[i] == l.rects[j]);
        }
    }
}

#[test]
fn residual_chain_invariants() {
    check_invariants(&synth::residual_chain(2000));
}

#[test]
fn transformer_invariants() {
    check_invariants(&synth::transformer(3000, 4));
}

#[test]
fn deterministic() {
    let g = synth::transformer(2000, 3);
    let a = layout(&input_of(&g), &|_| {});
    let b = layout(&input_of(&g), &|_| {});
    assert_eq!(a.rects, b.rects);
    assert_eq!(a.rank, b.rank);
    assert_eq!(a.edge_points, b.edge_points);
}

#[test]
fn chain_is_straight_and_narrow() {
    let g = synth::residual_chain(4000);
    let l = layout(&input_of(&g), &|_| {});
    let widest = l.rects.iter().map(|r| r.width()).fold(0.0, f32::max);
    // The main chain: consecutive nodes aligned.
    let aligned = (1..g.nodes.len())
        .filter(|&i| (l.rects[i].center().x - l.rects[i - 1].center().x).abs() < 1.0)
        .count();
    eprintln!(
        "bounds {:?}, aligned {aligned}/{}",
        l.bounds,
        g.nodes.len() - 1
    );
    assert!(
        l.bounds.width() < 4.0 * widest,
        "chain drifts: width {}",
        l.bounds.width()
    );
    assert!(
        aligned * 10 >= (g.nodes.len() - 1) * 9,
        "only {aligned} aligned"
    );
}

#[test]
fn cycles_are_broken() {
    // 0 -> 1 -> 2 -> 0 plus 2 -> 3: one edge reversed, the rest go down.
    let inp = LayoutInput {
        sizes: vec![vec2(50.0, 30.0); 4],
        edges: vec![(0, 1), (1, 2), (2, 0), (2, 3), (3, 3), (9, 1)],
    };
    let l = layout(&inp, &|_| {});
    assert_eq!(l.reversed.iter().filter(|&&r| r).count(), 1);
    for (e, &(a, b)) in inp.edges.iter().enumerate().take(4) {
        let (ra, rb) = (l.rank[a], l.rank[b]);
        if l.reversed[e] {
            assert!(rb < ra);
        } else {
            assert!(ra < rb);
        }
    }
    // Self-loops and out-of-range edges are ignored (empty paths).
    assert!(l.edge_path(4).is_empty());
    assert!(l.edge_path(5).is_empty());
}

#[test]
fn layout_of_50k_nodes_is_complete() {
    // Every node of a 50,000-node graph gets a box; the time is printed (the 2 s target is
    // measured by `graph_bench`, not asserted here).
    let g = synth::transformer(50_000, 8);
    let mut h = Hierarchy::new(&g);
    h.expand_all();
    let t0 = std::time::Instant::now();
    let s = build_scene(&g, &h, &|_| {});
    let secs = t0.elapsed().as_secs_f64();
    eprintln!("50k-node transformer scene built in {secs:.3} s");
    assert_eq!(s.layout.rects.len(), g.nodes.len());
}

#[test]
fn transformer_does_not_drift() {
    let g = synth::transformer(20_000, 8);
    let l = layout(&input_of(&g), &|_| {});
    let widest = l.rects.iter().map(|r| r.width()).fold(0.0, f32::max);
    eprintln!("transformer bounds {:?}", l.bounds);
    // One block is at most ~ (3 + 8 heads + a few dummies) boxes wide; no cumulative drift.
    assert!(
        l.bounds.width() < 30.0 * (widest + 20.0),
        "width {}",
        l.bounds.width()
    );
}

/// Crossings between consecutive ranks, from the edge polylines (segments spanning one gap).
fn crossings(l: &petasos_viewer::graph::Layout) -> usize {
    // Gap segments: from the bottom of one rank row to the top of the next.
    let mut segs: Vec<(u32, f32, f32)> = Vec::new();
    for e in 0..l.edge_count() {
        let p = l.edge_path(e);
        for w in p.windows(2) {
            if (w[1].y - w[0].y).abs() > 1e-3 {
                let r = l.rank_top.partition_point(|&t| t <= w[0].y) as u32;
                segs.push((r, w[0].x, w[1].x));
            }
        }
    }
    let mut n = 0;
    for (i, a) in segs.iter().enumerate() {
        for b in &segs[i + 1..] {
            if a.0 == b.0 && (a.1 - b.1) * (a.2 - b.2) < -1e-6 {
                n += 1;
            }
        }
    }
    n
}

#[test]
fn crossing_counter_counts() {
    // K(3,3) in two layers always has C(3,2)^2 = 9 crossings.
    let edges = (0..3).flat_map(|a| (3..6).map(move |b| (a, b))).collect();
    let inp = LayoutInput {
        sizes: vec![vec2(60.0, 30.0); 6],
        edges,
    };
    assert_eq!(crossings(&layout(&inp, &|_| {})), 9);
}

#[test]
fn trees_are_drawn_without_crossings() {
    // A tree whose children are numbered so that index order interleaves subtrees.
    let n = 120;
    let edges: Vec<(usize, usize)> = (1..n).map(|v| ((v * 37 + 11) % v, v)).collect();
    let inp = LayoutInput {
        sizes: vec![vec2(60.0, 30.0); n],
        edges,
    };
    let l = layout(&inp, &|_| {});
    assert_eq!(crossings(&l), 0);
}

#[test]
fn barycenter_untangles_a_twisted_ladder() {
    // Two parallel chains whose rungs are listed in an order that crosses when placed by index.
    let k = 30;
    let mut edges = Vec::new();
    for i in 0..k - 1 {
        edges.push((2 * i + (i % 2), 2 * (i + 1)));
        edges.push((2 * i + 1 - (i % 2), 2 * (i + 1) + 1));
    }
    let inp = LayoutInput {
        sizes: vec![vec2(60.0, 30.0); 2 * k],
        edges,
    };
    let l = layout(&inp, &|_| {});
    assert_eq!(crossings(&l), 0);
}

#[test]
fn empty_and_edgeless_graphs() {
    let l = layout(&LayoutInput::default(), &|_| {});
    assert!(l.rects.is_empty() && l.bounds.is_positive());
    let l = layout(
        &LayoutInput {
            sizes: vec![vec2(50.0, 30.0); 3],
            edges: vec![],
        },
        &|_| {},
    );
    // All in rank 0, side by side.
    assert!(l.rank.iter().all(|&r| r == 0));
    assert!(!l.rects[0].intersects(l.rects[1]) && !l.rects[1].intersects(l.rects[2]));
}

#[test]
fn cancelled_layouts_stop_early() {
    use petasos_viewer::graph::layout::layout_cancellable;
    use std::cell::Cell;
    let g = synth::transformer(3000, 4);
    let inp = input_of(&g);
    assert!(layout_cancellable(&inp, &|_| {}, &|| true).is_none());
    // Cancelled midway: the progress seen stops below 1.
    let calls = Cell::new(0);
    let last = Cell::new(0.0f32);
    let out = layout_cancellable(&inp, &|f| last.set(f), &|| {
        calls.set(calls.get() + 1);
        calls.get() > 4
    });
    assert!(out.is_none());
    assert!(last.get() < 1.0);
    // Not cancelled: same result as `layout`.
    let full = layout_cancellable(&inp, &|_| {}, &|| false).expect("not cancelled");
    assert_eq!(full.rects, layout(&inp, &|_| {}).rects);
}
