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

/// An in-memory eframe storage: what the app persists, without a file (tests, headless runs).
#[derive(Debug, Default)]
pub struct MemoryStorage(pub std::collections::HashMap<String, String>);

impl eframe::Storage for MemoryStorage {
    fn get_string(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned()
    }
    fn set_string(&mut self, key: &str, value: String) {
        self.0.insert(key.to_string(), value);
    }
    fn remove_string(&mut self, key: &str) {
        self.0.remove(key);
    }
    fn flush(&mut self) {}
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

    use super::MemoryStorage as Mem;
    use eframe::Storage;

    #[test]
    fn persists_through_storage_and_cleans_what_it_reads() {
        let mut r = RecentFiles::default();
        r.push("/m/a.onnx");
        r.push("resnet18");
        let mut st = Mem::default();
        r.save(&mut st);
        assert_eq!(RecentFiles::load(Some(&st)), r);
        assert_eq!(RecentFiles::load(None), RecentFiles::default());
        // A hand-edited list with duplicates and too many entries is cleaned on load.
        let raw: Vec<String> = (0..14).map(|i| format!("m{}", i % 12)).collect();
        eframe::set_value(&mut st, STORAGE_KEY, &RecentFiles { items: raw });
        let l = RecentFiles::load(Some(&st));
        assert_eq!(l.items().len(), MAX_RECENT);
        assert_eq!(l.items()[0], "m0");
        // Garbage in storage: an empty list, no panic.
        st.set_string(STORAGE_KEY, "not json".into());
        assert!(RecentFiles::load(Some(&st)).items().is_empty());
    }
}
