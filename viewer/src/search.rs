//! Search over the ops: case-insensitive substring of name, op type or layer path, or
//! `type:Conv` for op types only. Keeps the match list and a cursor for next/previous.

use crate::doc::OpEntry;

/// The op indices `query` matches (in op order). An empty query matches nothing.
///
/// `type:X` matches ops whose type contains `X`; any other text matches name, type or layer.
/// Case-insensitive.
pub fn find(ops: &[OpEntry], query: &str) -> Vec<usize> {
    let q = query.trim().to_lowercase();
    if q.is_empty() {
        return Vec::new();
    }
    let by_type = q.strip_prefix("type:").map(str::trim);
    ops.iter()
        .enumerate()
        .filter(|(_, o)| match by_type {
            Some(t) => !t.is_empty() && o.op_type.to_lowercase().contains(t),
            None => {
                o.name.to_lowercase().contains(&q)
                    || o.op_type.to_lowercase().contains(&q)
                    || o.layer.to_lowercase().contains(&q)
            }
        })
        .map(|(i, _)| i)
        .collect()
}

/// Search state: the text, its matches, and the current match.
#[derive(Clone, Debug, Default)]
pub struct Search {
    pub text: String,
    /// Text the matches were computed for.
    searched: String,
    pub matches: Vec<usize>,
    /// Index into `matches` of the current one.
    pub current: usize,
    /// Per-op flag (same length as the ops) for highlighting.
    pub highlight: Vec<bool>,
}

impl Search {
    /// Recomputes the matches if the text changed (or `force`). Returns whether it did.
    pub fn update(&mut self, ops: &[OpEntry], force: bool) -> bool {
        if !force && self.searched == self.text && self.highlight.len() == ops.len() {
            return false;
        }
        self.searched = self.text.clone();
        self.matches = find(ops, &self.text);
        self.current = 0;
        self.highlight = vec![false; ops.len()];
        for &i in &self.matches {
            if let Some(h) = self.highlight.get_mut(i) {
                *h = true;
            }
        }
        true
    }

    /// The current match's op index.
    pub fn current_op(&self) -> Option<usize> {
        self.matches.get(self.current).copied()
    }

    /// Moves to the next match (wrapping) and returns its op index.
    pub fn next_match(&mut self) -> Option<usize> {
        if self.matches.is_empty() {
            return None;
        }
        self.current = (self.current + 1) % self.matches.len();
        self.current_op()
    }

    /// Moves to the previous match (wrapping) and returns its op index.
    pub fn previous_match(&mut self) -> Option<usize> {
        if self.matches.is_empty() {
            return None;
        }
        self.current = (self.current + self.matches.len() - 1) % self.matches.len();
        self.current_op()
    }

    /// Clears text and matches.
    pub fn clear(&mut self) {
        *self = Search::default();
    }
}
