//! Integration test support: locating `../shared`, the node-suite harness and tensor comparison.

pub mod compare;
pub mod conformance;
pub mod cpu_conformance;
pub mod signature;

use std::path::PathBuf;

/// The environment variable naming the shared data folder (`.ci/run` always sets it).
pub const SHARED_ENV: &str = "PETASOS_SHARED";

/// The shared data folder, if the environment names one that exists.
pub fn shared_dir() -> Option<PathBuf> {
    let p = PathBuf::from(std::env::var_os(SHARED_ENV)?);
    p.is_dir().then_some(p)
}

/// Prints loudly that a test did not run because the shared data is absent.
pub fn skipped_loudly(test: &str) {
    eprintln!(
        "\n*** {test}: NOT RUN — set {SHARED_ENV} to the shared data folder (see README.md) ***\n"
    );
    println!("{test}: NOT RUN ({SHARED_ENV} unset)");
}
