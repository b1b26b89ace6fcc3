//! A spatial index over a [`Layout`]: boxes by rank row (rows sorted by y, boxes in a row
//! sorted by x, so a query is two binary searches per visible row) and edge segments in
//! fixed-height y buckets. Queries never touch items outside the queried rows/buckets.

use super::layout::Layout;
use egui::{Pos2, Rect};

/// Height of an edge-segment bucket (world units).
const BUCKET_H: f32 = 256.0;

/// One rank row: its y extent and its boxes sorted by x.
#[derive(Clone, Debug, Default)]
struct Row {
    y0: f32,
    y1: f32,
    items: Vec<u32>,
    x0: Vec<f32>,
    x1: Vec<f32>,
}

/// One straight piece of an edge polyline.
#[derive(Clone, Copy, Debug)]
pub struct Seg {
    /// Start point (world).
    pub a: Pos2,
    /// End point (world).
    pub b: Pos2,
    /// The input edge index this piece belongs to.
    pub edge: u32,
    /// Whether this is the last piece of its edge (where the arrow head goes).
    pub last: bool,
}

/// The index; built once per layout (on the layout worker).
#[derive(Clone, Debug, Default)]
pub struct SpatialIndex {
    rows: Vec<Row>,
    segs: Vec<Seg>,
    bucket_start: Vec<u32>,
    bucket_segs: Vec<u32>,
    long_segs: Vec<u32>,
    y_origin: f32,
    /// Segment ids by decreasing extent (max of |dx|, |dy|), and those extents.
    by_extent: Vec<u32>,
    extents: Vec<f32>,
}

impl SpatialIndex {
    /// Indexes the boxes and edge segments of `layout`.
    pub fn new(layout: &Layout) -> SpatialIndex {
        let nranks = layout.rank_top.len();
        let mut rows: Vec<Row> = (0..nranks)
            .map(|r| Row {
                y0: layout.rank_top[r],
                y1: layout.rank_top[r] + layout.rank_height.get(r).copied().unwrap_or(0.0),
                ..Row::default()
            })
            .collect();
        for (i, &r) in layout.rank.iter().enumerate() {
            if let Some(row) = rows.get_mut(r as usize) {
                row.items.push(i as u32);
            }
        }
        for row in &mut rows {
            row.items.sort_by(|&a, &b| {
                layout.rects[a as usize]
                    .min
                    .x
                    .total_cmp(&layout.rects[b as usize].min.x)
            });
            row.x0 = row
                .items
                .iter()
                .map(|&i| layout.rects[i as usize].min.x)
                .collect();
            // Boxes in a row never overlap, so max x is sorted too; take a running max anyway.
            let mut m = f32::NEG_INFINITY;
            row.x1 = row
                .items
                .iter()
                .map(|&i| {
                    m = m.max(layout.rects[i as usize].max.x);
                    m
                })
                .collect();
        }
        let mut segs = Vec::with_capacity(layout.edge_points.len());
        for e in 0..layout.edge_count() {
            let p = layout.edge_path(e);
            for k in 1..p.len() {
                segs.push(Seg {
                    a: p[k - 1],
                    b: p[k],
                    edge: e as u32,
                    last: k + 1 == p.len(),
                });
            }
        }
        let y_origin = layout.bounds.min.y;
        let nb = ((layout.bounds.height() / BUCKET_H).ceil() as usize).max(1) + 1;
        let bucket_of =
            |y: f32| (((y - y_origin) / BUCKET_H).floor().max(0.0) as usize).min(nb - 1);
        let mut counts = vec![0u32; nb + 1];
        let mut long_segs = Vec::new();
        for (i, s) in segs.iter().enumerate() {
            if (s.a.y - s.b.y).abs() > BUCKET_H {
                long_segs.push(i as u32);
            } else {
                counts[bucket_of(s.a.y.min(s.b.y)) + 1] += 1;
            }
        }
        for i in 0..nb {
            counts[i + 1] += counts[i];
        }
        let mut fill = counts.clone();
        let mut bucket_segs = vec![0u32; segs.len() - long_segs.len()];
        for (i, s) in segs.iter().enumerate() {
            if (s.a.y - s.b.y).abs() <= BUCKET_H {
                let b = bucket_of(s.a.y.min(s.b.y));
                bucket_segs[fill[b] as usize] = i as u32;
                fill[b] += 1;
            }
        }
        let extent = |s: &Seg| (s.a.x - s.b.x).abs().max((s.a.y - s.b.y).abs());
        let mut by_extent: Vec<u32> = (0..segs.len() as u32).collect();
        by_extent.sort_by(|&a, &b| {
            extent(&segs[b as usize])
                .total_cmp(&extent(&segs[a as usize]))
                .then(a.cmp(&b))
        });
        let extents = by_extent
            .iter()
            .map(|&i| extent(&segs[i as usize]))
            .collect();
        SpatialIndex {
            rows,
            by_extent,
            extents,
            segs,
            bucket_start: counts,
            bucket_segs,
            long_segs,
            y_origin,
        }
    }

    /// Calls `f` with every box index whose rect may intersect `r` (row and x-extent tested).
    pub fn items_in(&self, r: Rect, mut f: impl FnMut(usize)) {
        let first = self.rows.partition_point(|row| row.y1 < r.min.y);
        for row in &self.rows[first..] {
            if row.y0 > r.max.y {
                break;
            }
            let start = row.x1.partition_point(|&x1| x1 < r.min.x);
            for k in start..row.items.len() {
                if row.x0[k] > r.max.x {
                    break;
                }
                f(row.items[k] as usize);
            }
        }
    }

    /// The box under world point `p`, using `rects` (the layout's boxes) for the exact test.
    pub fn item_at(&self, p: Pos2, rects: &[Rect]) -> Option<usize> {
        let k = self.rows.partition_point(|row| row.y1 < p.y);
        let row = self.rows.get(k)?;
        if row.y0 > p.y {
            return None;
        }
        let i = row.x1.partition_point(|&x1| x1 < p.x);
        let item = *row.items.get(i)? as usize;
        rects.get(item).filter(|r| r.contains(p)).map(|_| item)
    }

    /// Calls `f` with every edge segment whose bounding box intersects `r`.
    pub fn segments_in(&self, r: Rect, mut f: impl FnMut(&Seg)) {
        let nb = self.bucket_start.len() - 1;
        let lo = ((r.min.y - BUCKET_H - self.y_origin) / BUCKET_H)
            .floor()
            .max(0.0) as usize;
        let hi = (((r.max.y - self.y_origin) / BUCKET_H).floor().max(0.0) as usize).min(nb - 1);
        let hits = |s: &Seg| {
            s.a.y.max(s.b.y) >= r.min.y
                && s.a.y.min(s.b.y) <= r.max.y
                && s.a.x.max(s.b.x) >= r.min.x
                && s.a.x.min(s.b.x) <= r.max.x
        };
        if lo <= hi {
            let range = self.bucket_start[lo] as usize..self.bucket_start[hi + 1] as usize;
            for &i in &self.bucket_segs[range] {
                let s = &self.segs[i as usize];
                if hits(s) {
                    f(s);
                }
            }
        }
        for &i in &self.long_segs {
            let s = &self.segs[i as usize];
            if hits(s) {
                f(s);
            }
        }
    }

    /// Calls `f` with every segment whose extent (max of |dx|, |dy|) exceeds `min_extent` and
    /// whose bounding box intersects `r`; visits only those long segments (for zoomed-out
    /// views, where shorter ones vanish inside one screen cell).
    pub fn long_segments_in(&self, min_extent: f32, r: Rect, mut f: impl FnMut(&Seg)) {
        let k = self.extents.partition_point(|&e| e > min_extent);
        for &i in &self.by_extent[..k] {
            let s = &self.segs[i as usize];
            if s.a.y.max(s.b.y) >= r.min.y
                && s.a.y.min(s.b.y) <= r.max.y
                && s.a.x.max(s.b.x) >= r.min.x
                && s.a.x.min(s.b.x) <= r.max.x
            {
                f(s);
            }
        }
    }

    /// The edge whose polyline passes within `tol` of `p`, nearest first.
    pub fn edge_near(&self, p: Pos2, tol: f32) -> Option<usize> {
        let mut best: Option<(f32, usize)> = None;
        self.segments_in(
            Rect::from_center_size(p, egui::Vec2::splat(2.0 * tol)),
            |s| {
                let d = dist_to_segment(p, s.a, s.b);
                if d <= tol && best.is_none_or(|(bd, _)| d < bd) {
                    best = Some((d, s.edge as usize));
                }
            },
        );
        best.map(|(_, e)| e)
    }

    /// All segments (for whole-graph passes such as the overview).
    pub fn segments(&self) -> &[Seg] {
        &self.segs
    }
}

/// Distance from `p` to the segment `a`-`b`.
pub fn dist_to_segment(p: Pos2, a: Pos2, b: Pos2) -> f32 {
    let ab = b - a;
    let len2 = ab.length_sq();
    let t = if len2 > 0.0 {
        ((p - a).dot(ab) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    (a + ab * t).distance(p)
}
