//! A layered (top-down, Sugiyama-style) layout of a directed graph.
//!
//! Steps: break cycles (DFS back edges are reversed), rank by longest path from the sources
//! (sources then pulled down next to their first consumer), split long edges with dummy nodes,
//! reduce crossings with barycenter sweeps, place x by weighted isotonic regression per rank
//! (each node pulled towards its neighbours' mean, boxes kept apart, so chains come out
//! straight; one longest path is pinned to x = 0 so the drawing cannot drift), and route each edge as a polyline through its dummies.
//!
//! Everything is index-ordered (no hash iteration), so the output is a pure function of the
//! input. The cost is O((V + D) log(V + D)) per sweep for V nodes and D dummies.

use egui::{pos2, Pos2, Rect, Vec2};

/// Vertical gap between rank rows (world units).
pub const RANK_GAP: f32 = 40.0;
/// Horizontal gap between neighbouring boxes in a rank.
pub const NODE_GAP: f32 = 20.0;
/// Width reserved for a dummy node (an edge passing through a rank).
pub const DUMMY_W: f32 = 10.0;
/// Height of a rank that holds only dummies.
const EMPTY_RANK_H: f32 = 12.0;
/// Pairs of barycenter sweeps (down + up) for crossing reduction.
const ORDER_SWEEPS: usize = 4;
/// Pairs of x-placement sweeps.
const PLACE_SWEEPS: usize = 4;
/// At most this many dummies per real node; edges beyond the cap are drawn straight.
const DUMMY_CAP_PER_NODE: usize = 8;

/// What to lay out: box sizes per node and directed edges between node indices.
#[derive(Clone, Debug, Default)]
pub struct LayoutInput {
    /// Box size of every node (world units).
    pub sizes: Vec<Vec2>,
    /// Directed edges `(from, to)`; out-of-range indices and self-loops are ignored (their
    /// path is empty).
    pub edges: Vec<(usize, usize)>,
}

/// The result: a box per node, a rank per node, a polyline per input edge.
#[derive(Clone, Debug)]
pub struct Layout {
    /// The box of every node, in world units (y grows downwards).
    pub rects: Vec<Rect>,
    /// The rank (row) of every node; every non-reversed edge goes from a lower to a higher rank.
    pub rank: Vec<u32>,
    /// Top y of each rank row.
    pub rank_top: Vec<f32>,
    /// Height of each rank row.
    pub rank_height: Vec<f32>,
    /// Which input edges were reversed to break cycles.
    pub reversed: Vec<bool>,
    /// Polyline points of all edges, concatenated; see [`Layout::edge_path`].
    pub edge_points: Vec<Pos2>,
    /// `edge_start[e]..edge_start[e + 1]` indexes `edge_points` for input edge `e`.
    pub edge_start: Vec<u32>,
    /// Bounding box of everything drawn.
    pub bounds: Rect,
    /// Number of dummy nodes inserted.
    pub dummies: usize,
}

impl Default for Layout {
    fn default() -> Self {
        Layout {
            rects: Vec::new(),
            rank: Vec::new(),
            rank_top: Vec::new(),
            rank_height: Vec::new(),
            reversed: Vec::new(),
            edge_points: Vec::new(),
            edge_start: vec![0],
            bounds: Rect::from_min_size(Pos2::ZERO, Vec2::splat(1.0)),
            dummies: 0,
        }
    }
}

impl Layout {
    /// The polyline of input edge `e`, from its source's box to its target's box (empty for
    /// ignored edges or unknown `e`).
    pub fn edge_path(&self, e: usize) -> &[Pos2] {
        match (self.edge_start.get(e), self.edge_start.get(e + 1)) {
            (Some(&a), Some(&b)) => self.edge_points.get(a as usize..b as usize).unwrap_or(&[]),
            _ => &[],
        }
    }

    /// Number of input edges.
    pub fn edge_count(&self) -> usize {
        self.edge_start.len().saturating_sub(1)
    }
}

/// A compressed adjacency list.
struct Csr {
    start: Vec<u32>,
    adj: Vec<u32>,
}

impl Csr {
    fn new(n: usize, pairs: &[(u32, u32)]) -> Csr {
        let mut start = vec![0u32; n + 1];
        for &(a, _) in pairs {
            start[a as usize + 1] += 1;
        }
        for i in 0..n {
            start[i + 1] += start[i];
        }
        let mut fill = start.clone();
        let mut adj = vec![0u32; pairs.len()];
        for &(a, b) in pairs {
            adj[fill[a as usize] as usize] = b;
            fill[a as usize] += 1;
        }
        Csr { start, adj }
    }

    fn of(&self, v: usize) -> &[u32] {
        &self.adj[self.start[v] as usize..self.start[v + 1] as usize]
    }
}

/// Lays out `input`; `progress` is called with a fraction in `[0, 1]` as phases complete.
pub fn layout(input: &LayoutInput, progress: &dyn Fn(f32)) -> Layout {
    layout_cancellable(input, progress, &|| false).unwrap_or_default()
}

/// Like [`layout`], but gives up (returns `None`) at the next phase boundary once `cancelled`
/// returns true — used when a newer layout request makes this one moot.
pub fn layout_cancellable(
    input: &LayoutInput,
    progress: &dyn Fn(f32),
    cancelled: &dyn Fn() -> bool,
) -> Option<Layout> {
    let step = |f: f32| {
        progress(f);
        cancelled()
    };
    let n = input.sizes.len();
    if step(0.0) {
        return None;
    }
    // Valid edges (index into input.edges kept).
    let valid: Vec<(usize, u32, u32)> = input
        .edges
        .iter()
        .enumerate()
        .filter(|(_, &(a, b))| a < n && b < n && a != b)
        .map(|(e, &(a, b))| (e, a as u32, b as u32))
        .collect();

    // 1. Break cycles: DFS from sources (then any unvisited node), reverse edges to grey nodes.
    let pairs: Vec<(u32, u32)> = valid.iter().map(|&(_, a, b)| (a, b)).collect();
    let out = Csr::new(n, &pairs);
    let mut indeg = vec![0u32; n];
    for &(_, b) in &pairs {
        indeg[b as usize] += 1;
    }
    let mut state = vec![0u8; n]; // 0 white, 1 grey, 2 black
    let mut order = Vec::with_capacity(n); // post-order
    let mut back: std::collections::HashSet<(u32, u32)> = Default::default();
    let starts: Vec<usize> = (0..n)
        .filter(|&v| indeg[v] == 0)
        .chain((0..n).filter(|&v| indeg[v] != 0))
        .collect();
    let mut stack: Vec<(u32, u32)> = Vec::new();
    for s in starts {
        if state[s] != 0 {
            continue;
        }
        state[s] = 1;
        stack.push((s as u32, 0));
        while let Some(top) = stack.last_mut() {
            let v = top.0 as usize;
            let succ = out.of(v);
            if (top.1 as usize) < succ.len() {
                let w = succ[top.1 as usize] as usize;
                top.1 += 1;
                match state[w] {
                    0 => {
                        state[w] = 1;
                        stack.push((w as u32, 0));
                    }
                    1 => {
                        back.insert((v as u32, w as u32));
                    }
                    _ => {}
                }
            } else {
                state[v] = 2;
                order.push(v);
                stack.pop();
            }
        }
    }
    order.reverse(); // topological order of the DAG with back edges reversed
    if step(0.1) {
        return None;
    }

    // DAG edges (a -> b with a earlier), per valid edge.
    let reversed: Vec<bool> = valid
        .iter()
        .map(|&(_, a, b)| back.contains(&(a, b)))
        .collect();
    let dag: Vec<(u32, u32)> = valid
        .iter()
        .zip(&reversed)
        .map(|(&(_, a, b), &r)| if r { (b, a) } else { (a, b) })
        .collect();

    // 2. Ranks: longest path from the sources, then sources pulled down to their consumers.
    let dag_out = Csr::new(n, &dag);
    let mut rank = vec![0u32; n];
    let mut has_in = vec![false; n];
    for &v in &order {
        for &w in dag_out.of(v) {
            let w = w as usize;
            rank[w] = rank[w].max(rank[v] + 1);
            has_in[w] = true;
        }
    }
    for v in 0..n {
        if !has_in[v] {
            if let Some(m) = dag_out.of(v).iter().map(|&w| rank[w as usize]).min() {
                rank[v] = m.saturating_sub(1).max(rank[v]);
            }
        }
    }
    let nranks = rank.iter().map(|&r| r as usize + 1).max().unwrap_or(0);
    if step(0.2) {
        return None;
    }

    // 3. Dummy nodes: layered graph nodes 0..n real, then dummies; chains per DAG edge.
    let mut lrank: Vec<u32> = rank.clone();
    let mut chain_start: Vec<u32> = Vec::with_capacity(dag.len() + 1);
    let mut chain: Vec<u32> = Vec::with_capacity(dag.len() * 2);
    let mut layered: Vec<(u32, u32)> = Vec::with_capacity(dag.len() * 2);
    let cap = n.saturating_mul(DUMMY_CAP_PER_NODE).max(1000);
    for &(a, b) in &dag {
        chain_start.push(chain.len() as u32);
        chain.push(a);
        let (ra, rb) = (rank[a as usize], rank[b as usize]);
        let span = rb.saturating_sub(ra) as usize;
        if span > 1 && lrank.len() - n + span - 1 <= cap {
            let mut prev = a;
            for r in ra + 1..rb {
                let d = lrank.len() as u32;
                lrank.push(r);
                layered.push((prev, d));
                chain.push(d);
                prev = d;
            }
            layered.push((prev, b));
        } else if span >= 1 {
            layered.push((a, b));
        }
        chain.push(b);
    }
    chain_start.push(chain.len() as u32);
    let total = lrank.len();
    let dummies = total - n;
    let down = Csr::new(total, &layered);
    let flipped: Vec<(u32, u32)> = layered.iter().map(|&(a, b)| (b, a)).collect();
    let up = Csr::new(total, &flipped);
    if step(0.3) {
        return None;
    }

    // 4. Initial order within ranks: DFS discovery order over the layered graph.
    let mut rows: Vec<Vec<u32>> = vec![Vec::new(); nranks];
    let mut seen = vec![false; total];
    let mut dfs: Vec<u32> = Vec::new();
    let roots: Vec<u32> = order
        .iter()
        .copied()
        .chain(n..total)
        .map(|v| v as u32)
        .collect();
    for s in roots {
        if seen[s as usize] {
            continue;
        }
        dfs.push(s);
        while let Some(v) = dfs.pop() {
            if seen[v as usize] {
                continue;
            }
            seen[v as usize] = true;
            rows[lrank[v as usize] as usize].push(v);
            // Push in reverse so the first successor is visited first.
            for &w in down.of(v as usize).iter().rev() {
                if !seen[w as usize] {
                    dfs.push(w);
                }
            }
        }
    }
    let mut pos = vec![0f32; total];
    for row in &rows {
        for (i, &v) in row.iter().enumerate() {
            pos[v as usize] = i as f32;
        }
    }
    if step(0.4) {
        return None;
    }

    // 5. Crossing reduction: barycenter sweeps down and up.
    let mut keyed: Vec<(f32, f32, u32)> = Vec::new();
    let mut sweep = |rows: &mut Vec<Vec<u32>>, pos: &mut Vec<f32>, downward: bool| {
        let ranks: Vec<usize> = if downward {
            (1..nranks).collect()
        } else {
            (0..nranks.saturating_sub(1)).rev().collect()
        };
        for r in ranks {
            let row = &mut rows[r];
            keyed.clear();
            for &v in row.iter() {
                let nb = if downward {
                    up.of(v as usize)
                } else {
                    down.of(v as usize)
                };
                let own = pos[v as usize];
                let b = if nb.is_empty() {
                    own
                } else {
                    nb.iter().map(|&u| pos[u as usize]).sum::<f32>() / nb.len() as f32
                };
                keyed.push((b, own, v));
            }
            keyed.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.total_cmp(&y.1)));
            for (i, &(_, _, v)) in keyed.iter().enumerate() {
                row[i] = v;
                pos[v as usize] = i as f32;
            }
        }
    };
    for i in 0..ORDER_SWEEPS {
        sweep(&mut rows, &mut pos, true);
        sweep(&mut rows, &mut pos, false);
        if step(0.4 + 0.3 * (i + 1) as f32 / ORDER_SWEEPS as f32) {
            return None;
        }
    }

    // 6. x placement.
    let width = |v: usize| {
        if v < n {
            input.sizes[v].x.max(1.0)
        } else {
            DUMMY_W
        }
    };
    let sep = |a: usize, b: usize| {
        let gap = if a >= n && b >= n {
            NODE_GAP * 0.5
        } else {
            NODE_GAP
        };
        (width(a) + width(b)) * 0.5 + gap
    };
    let mut x = vec![0f32; total];
    for row in &rows {
        let mut cur = 0.0;
        for (i, &v) in row.iter().enumerate() {
            if i > 0 {
                cur += sep(row[i - 1] as usize, v as usize);
            }
            x[v as usize] = cur;
        }
        for &v in row {
            x[v as usize] -= cur * 0.5;
        }
    }
    // The spine: one longest path (through the layered graph, preferring real nodes) is pinned
    // to x = 0, so local placement rules cannot make the drawing drift sideways over thousands
    // of ranks.
    let mut spine = vec![false; total];
    if let Some(end) = (0..n).max_by_key(|&v| (rank[v], std::cmp::Reverse(v))) {
        let mut v = end;
        loop {
            spine[v] = true;
            let ups = up.of(v);
            let next = ups
                .iter()
                .copied()
                .filter(|&u| (u as usize) < n)
                .min()
                .or_else(|| ups.iter().copied().min());
            match next {
                Some(u) if !spine[u as usize] => v = u as usize,
                _ => break,
            }
        }
    }
    let mut pav = Pav::default();
    let mut place = |x: &mut Vec<f32>, downward: Option<bool>| {
        for row in &rows {
            pav.clear();
            let mut offset = 0.0;
            for (i, &v) in row.iter().enumerate() {
                let v = v as usize;
                if i > 0 {
                    offset += sep(row[i - 1] as usize, v);
                }
                let (a, b): (&[u32], &[u32]) = match downward {
                    Some(true) => (up.of(v), &[]),
                    Some(false) => (down.of(v), &[]),
                    None => (up.of(v), down.of(v)),
                };
                // Real nodes follow their real neighbours (so a chain stays straight and long
                // edges bend around it); dummies follow whatever they connect to.
                let (mut sum, mut k) = (0.0f32, 0usize);
                if v < n {
                    for &u in a.iter().chain(b).filter(|&&u| (u as usize) < n) {
                        sum += x[u as usize];
                        k += 1;
                    }
                }
                if k == 0 {
                    for &u in a.iter().chain(b) {
                        sum += x[u as usize];
                        k += 1;
                    }
                }
                let mut desired = if k == 0 { x[v] } else { sum / k as f32 };
                // Dummies yield to real boxes when they compete for a spot; the spine stays put.
                let mut weight = if v >= n { 1e-4 } else { 1.0 };
                if spine[v] {
                    desired = 0.0;
                    weight = 1e3;
                }
                pav.push(desired - offset, weight, offset);
            }
            pav.solve();
            for (i, &v) in row.iter().enumerate() {
                x[v as usize] = pav.value(i);
            }
        }
    };
    for i in 0..PLACE_SWEEPS {
        place(&mut x, Some(true));
        place(&mut x, Some(false));
        if step(0.7 + 0.25 * (i + 1) as f32 / PLACE_SWEEPS as f32) {
            return None;
        }
    }
    place(&mut x, None);

    // 7. y per rank, boxes, edge polylines.
    let mut rank_height = vec![EMPTY_RANK_H; nranks];
    for (&r, size) in rank.iter().zip(&input.sizes) {
        let r = r as usize;
        rank_height[r] = rank_height[r].max(size.y);
    }
    let mut rank_top = Vec::with_capacity(nranks);
    let mut y = 0.0;
    for &h in &rank_height {
        rank_top.push(y);
        y += h + RANK_GAP;
    }
    let rects: Vec<Rect> = (0..n)
        .map(|v| {
            let r = rank[v] as usize;
            let c = pos2(x[v], rank_top[r] + rank_height[r] * 0.5);
            Rect::from_center_size(c, input.sizes[v])
        })
        .collect();
    let mut edge_points = Vec::with_capacity(chain.len() * 2);
    let mut edge_start = Vec::with_capacity(input.edges.len() + 1);
    let mut k = 0; // index into valid/dag/chain_start
    let mut pts: Vec<Pos2> = Vec::new();
    for e in 0..input.edges.len() {
        edge_start.push(edge_points.len() as u32);
        if k >= valid.len() || valid[k].0 != e {
            continue;
        }
        pts.clear();
        let c = &chain[chain_start[k] as usize..chain_start[k + 1] as usize];
        if let (Some(&a), Some(&b)) = (c.first(), c.last()) {
            let ra = rects[a as usize];
            pts.push(pos2(ra.center().x, ra.bottom()));
            for &d in &c[1..c.len() - 1] {
                let d = d as usize;
                let r = lrank[d] as usize;
                pts.push(pos2(x[d], rank_top[r]));
                pts.push(pos2(x[d], rank_top[r] + rank_height[r]));
            }
            let rb = rects[b as usize];
            pts.push(pos2(rb.center().x, rb.top()));
        }
        if reversed[k] {
            pts.reverse();
        }
        edge_points.extend_from_slice(&pts);
        k += 1;
    }
    edge_start.push(edge_points.len() as u32);
    let mut bounds = Rect::NOTHING;
    for r in &rects {
        bounds = bounds.union(*r);
    }
    for p in &edge_points {
        bounds.extend_with(*p);
    }
    if !bounds.is_positive() {
        bounds = Rect::from_min_size(Pos2::ZERO, Vec2::splat(1.0));
    }
    progress(1.0);
    Some(Layout {
        rects,
        rank,
        rank_top,
        rank_height,
        reversed: {
            let mut r = vec![false; input.edges.len()];
            for (&(e, _, _), &rev) in valid.iter().zip(&reversed) {
                r[e] = rev;
            }
            r
        },
        edge_points,
        edge_start,
        bounds,
        dummies,
    })
}

/// Weighted isotonic regression (pool adjacent violators) for one rank: minimises
/// `sum w_i (y_i - t_i)^2` subject to `y` non-decreasing; positions are `y_i + offset_i`,
/// which keeps neighbouring boxes at least their separation apart.
#[derive(Default)]
struct Pav {
    target: Vec<(f32, f32, f32)>,   // (t, w, offset)
    blocks: Vec<(f32, f32, usize)>, // (sum w*t, sum w, count)
    out: Vec<f32>,
}

impl Pav {
    fn clear(&mut self) {
        self.target.clear();
        self.blocks.clear();
        self.out.clear();
    }

    fn push(&mut self, t: f32, w: f32, offset: f32) {
        self.target.push((t, w, offset));
    }

    fn solve(&mut self) {
        for &(t, w, _) in &self.target {
            self.blocks.push((w * t, w, 1));
            while self.blocks.len() >= 2 {
                let l = self.blocks.len();
                let (a, b) = (self.blocks[l - 2], self.blocks[l - 1]);
                if a.0 / a.1 >= b.0 / b.1 {
                    self.blocks[l - 2] = (a.0 + b.0, a.1 + b.1, a.2 + b.2);
                    self.blocks.pop();
                } else {
                    break;
                }
            }
        }
        for &(s, w, c) in &self.blocks {
            for _ in 0..c {
                self.out.push(s / w);
            }
        }
    }

    fn value(&self, i: usize) -> f32 {
        self.out[i] + self.target[i].2
    }
}
