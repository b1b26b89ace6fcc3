//! What pruning did: per segment (channels kept, gathers before and after reordering, slices,
//! parameters and MACs removed, why gathers remain) and totals; serialisable, and as a table.
//!
//! Parameters are learnable parameters ([`petasos_ir::stats::GraphStats::learnable_parameters`]:
//! batch-norm running statistics and the int64 index/shape constants of inserted `Slice` and
//! `Gather` nodes excluded); MACs are [`petasos_ir::stats::graph_stats`]'s (symbolic dims = 1).
//! A segment's removed parameters and MACs are measured around its own surgery, segments being
//! pruned in order, so they add up to the totals (a layer between two segments loses rows in one
//! and columns in the other).

use serde::Serialize;

/// One pruned segment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SegmentReport {
    /// Segment id (from [`super::segment::segments`]).
    pub segment: usize,
    /// Its producers' names.
    pub producers: Vec<String>,
    /// Number of layers reading it.
    pub consumers: usize,
    /// Channels of its channel space before and after pruning.
    pub channels: usize,
    pub kept: usize,
    /// Gathers of the baseline export (same masks, original order).
    pub gathers_before: usize,
    /// Gathers after surgery in the chosen mode.
    pub gathers: usize,
    /// `Slice` nodes inserted (consumers reading a strict sub-range).
    pub slices: usize,
    /// Gathers replaced by covering slices with zeroed columns (`cover_gathers`).
    pub covered: usize,
    /// The ordering search was cut short (wide segment or node budget); a better order may exist.
    pub fallback: bool,
    /// Ordering search nodes visited.
    pub search_nodes: usize,
    /// Per remaining gather: `"consumer: why"`.
    pub gather_reasons: Vec<String>,
    pub params_removed: u64,
    pub macs_removed: u64,
}

/// A segment left alone, with why.
pub use super::plan::Skipped;

/// Whole-graph figures.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Segments pruned, and prunable segments left alone (budget or surgery limits).
    pub segments: usize,
    pub skipped: usize,
    pub channels_before: usize,
    pub channels_after: usize,
    pub gathers_before: usize,
    pub gathers: usize,
    pub slices: usize,
    /// Gathers replaced by covering slices with zeroed columns (`cover_gathers`).
    pub covered: usize,
    pub params_before: u64,
    pub params_after: u64,
    pub macs_before: u64,
    pub macs_after: u64,
}

/// What [`super::surgery::prune`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    /// `reorder`, `no-reorder` or `constrained`.
    pub mode: String,
    pub segments: Vec<SegmentReport>,
    pub skipped: Vec<Skipped>,
    pub totals: Totals,
}

impl PruneReport {
    /// A table: one line per pruned segment, then the totals.
    pub fn table(&self) -> String {
        let mut s = format!(
            "{:>4} {:<28} {:>5} {:>13} {:>14} {:>6} {:>12} {:>14}\n",
            "seg",
            "first producer",
            "cons",
            "channels",
            "gathers b->a",
            "slices",
            "params -",
            "MACs -"
        );
        for r in &self.segments {
            let first = r.producers.first().map_or("", String::as_str);
            let more = if r.producers.len() > 1 {
                format!(" +{}", r.producers.len() - 1)
            } else {
                String::new()
            };
            let name = format!("{}{more}", shorten(first, 28 - more.len()));
            s.push_str(&format!(
                "{:>4} {:<28} {:>5} {:>6}->{:<6} {:>6}->{:<6}{} {:>6} {:>12} {:>14}\n",
                r.segment,
                name,
                r.consumers,
                r.channels,
                r.kept,
                r.gathers_before,
                r.gathers,
                if r.fallback { "*" } else { " " },
                r.slices,
                r.params_removed,
                r.macs_removed
            ));
            for why in &r.gather_reasons {
                s.push_str(&format!("       gather: {why}\n"));
            }
        }
        let t = &self.totals;
        s.push_str(&format!(
            "mode {}: {} segments pruned ({} left alone), channels {} -> {}, gathers {} (baseline) -> {}, slices {}\n",
            self.mode, t.segments, t.skipped, t.channels_before, t.channels_after, t.gathers_before, t.gathers, t.slices
        ));
        s.push_str(&format!(
            "parameters {} -> {} ({:.1}% removed), MACs {} -> {} ({:.1}% removed)",
            t.params_before,
            t.params_after,
            pct(t.params_before, t.params_after),
            t.macs_before,
            t.macs_after,
            pct(t.macs_before, t.macs_after)
        ));
        if t.covered > 0 {
            s.push_str(&format!(
                "\n{} gathers covered by slices with zeroed weight columns (their MACs are kept)",
                t.covered
            ));
        }
        if self.segments.iter().any(|r| r.fallback) {
            s.push_str("\n* ordering search bounded: the order is greedy, a better one may exist");
        }
        s
    }
}

fn pct(before: u64, after: u64) -> f64 {
    if before == 0 {
        0.0
    } else {
        100.0 * (before.saturating_sub(after)) as f64 / before as f64
    }
}

/// `s` cut to at most `n` characters, keeping its end (names end in the distinctive part).
fn shorten(s: &str, n: usize) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= n || n < 2 {
        return s.to_string();
    }
    let tail: String = chars[chars.len() - (n - 1)..].iter().collect();
    format!("~{tail}")
}
