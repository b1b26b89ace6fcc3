//! The recent-files list: most recent first, deduplicated, at most [`MAX_RECENT`] entries,
//! persisted through eframe's storage.

use serde::{Deserialize, Serialize};

/// Entries kept.
pub const MAX_RECENT: usize = 10;
/// Key in eframe's storage.
pub const STORAGE_KEY: &str = "petasos-viewer/recent";

/// Recently opened models (paths or preset names).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RecentFiles {
    items: Vec<String>,
}

impl RecentFiles {
    /// Moves (or inserts) `source` to the front; drops the oldest beyond [`MAX_RECENT`].
    pub fn push(&mut self, source: &str) {
        self.items.retain(|s| s != source);
        self.items.insert(0, source.to_string());
        self.items.truncate(MAX_RECENT);
    }

    /// Removes `source` (e.g. a file that no longer opens).
    pub fn remove(&mut self, source: &str) {
        self.items.retain(|s| s != source);
    }

    /// Most recent first.
    pub fn items(&self) -> &[String] {
        &self.items
    }

    /// The list stored under [`STORAGE_KEY`], cleaned (deduplicated, capped); empty if absent.
    pub fn load(storage: Option<&dyn eframe::Storage>) -> RecentFiles {
        let raw: RecentFiles = storage
            .and_then(|s| eframe::get_value(s, STORAGE_KEY))
            .unwrap_or_default();
        let mut r = RecentFiles::default();
        for s in raw.items.iter().rev() {
            r.push(s);
        }
        r
    }

    /// Stores the list under [`STORAGE_KEY`].
    pub fn save(&self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, STORAGE_KEY, self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_cap_and_order() {
        let mut r = RecentFiles::default();
        for i in 0..15 {
            r.push(&format!("m{i}"));
        }
        r.push("m12");
        assert_eq!(r.items().len(), MAX_RECENT);
        assert_eq!(r.items()[0], "m12");
        assert_eq!(r.items()[1], "m14");
        assert_eq!(r.items().iter().filter(|s| *s == "m12").count(), 1);
        assert!(!r.items().contains(&"m0".to_string()));
    }
}
