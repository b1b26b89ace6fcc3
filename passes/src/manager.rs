//! The pass manager: runs an ordered list of passes, verifying and measuring after each.
//!
//! A [`PassManager`] is built from pass names ([`PassManager::from_names`]), from a serde
//! [`PipelineConfig`] ([`PassManager::from_config`]), or pass by pass ([`PassManager::with_pass`]).
//! [`PassManager::run`] verifies the input graph, then runs each pass with the rewrite budget
//! still left, verifies the graph after it (always in debug builds and tests; release builds may
//! skip it with `skip_verify`), and records a [`PassStats`] per pass. With `max_rewrites` set it
//! stops once that many rewrites were made in total: bisecting over `max_rewrites` finds the
//! first rewrite that breaks a model. With `iterations > 1` the list is run again while the
//! previous round made any rewrite.

use crate::{by_name, Pass, PassContext, PassError, DEFAULT_FOLD_LIMIT};
use petasos_ir::stats::graph_stats;
use petasos_ir::verify::verify;
use petasos_ir::Graph;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// A pipeline as configuration (JSON/TOML): which passes, in which order, with which limits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Pass names, in order (see [`crate::registry`]).
    pub passes: Vec<String>,
    /// Stop after this many rewrites in total (all passes together).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rewrites: Option<usize>,
    /// Skip the verifier after each pass. Honoured in release builds only.
    #[serde(default)]
    pub skip_verify: bool,
    /// Largest tensor (elements) constant folding evaluates or creates.
    #[serde(default = "default_fold_limit")]
    pub fold_limit: usize,
    /// Run the whole list up to this many times, while a round still rewrites (at least 1).
    #[serde(default = "one")]
    pub iterations: usize,
    /// Configuration of the `prune` pass (default: [`crate::prune::pass::PruneConfig::default`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune: Option<crate::prune::pass::PruneConfig>,
}

fn default_fold_limit() -> usize {
    DEFAULT_FOLD_LIMIT
}
fn one() -> usize {
    1
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            passes: crate::standard_pipeline()
                .into_iter()
                .map(String::from)
                .collect(),
            max_rewrites: None,
            skip_verify: false,
            fold_limit: DEFAULT_FOLD_LIMIT,
            iterations: 1,
            prune: None,
        }
    }
}

/// What one pass did to the graph.
#[derive(Clone, Debug, Serialize)]
pub struct PassStats {
    /// The pass's name.
    pub pass: String,
    /// Which round of the list (0 unless `iterations > 1`).
    pub round: usize,
    /// Op nodes (inputs and constants excluded) before and after.
    pub nodes_before: usize,
    pub nodes_after: usize,
    /// Constant elements (parameters) before and after.
    pub params_before: u64,
    pub params_after: u64,
    /// Rewrites made.
    pub rewrites: usize,
    /// Wall time of the pass alone (verification excluded).
    #[serde(serialize_with = "secs")]
    pub time: Duration,
    /// Wall time of the verifier after it (zero when skipped).
    #[serde(serialize_with = "secs")]
    pub verify_time: Duration,
    /// The pass's description of what changed.
    pub summary: String,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// What a whole pipeline did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PipelineReport {
    /// One entry per pass run, in order.
    pub passes: Vec<PassStats>,
    /// Rewrites made in total.
    pub rewrites: usize,
    /// Whether the `max_rewrites` budget was used up (rewrites beyond it, if any, were not made).
    pub stopped_early: bool,
}

impl PipelineReport {
    /// A table: one line per pass with nodes, parameters, rewrites, time and summary.
    pub fn table(&self) -> String {
        let mut s = format!(
            "{:<16} {:>13} {:>23} {:>8} {:>9}  {}\n",
            "pass", "nodes", "parameters", "rewrites", "ms", "what changed"
        );
        for p in &self.passes {
            s.push_str(&format!(
                "{:<16} {:>6}->{:<6} {:>11}->{:<11} {:>8} {:>9.2}  {}\n",
                p.pass,
                p.nodes_before,
                p.nodes_after,
                p.params_before,
                p.params_after,
                p.rewrites,
                p.time.as_secs_f64() * 1e3,
                p.summary
            ));
        }
        s.push_str(&format!("total rewrites: {}", self.rewrites));
        if self.stopped_early {
            s.push_str(" (stopped by max_rewrites)");
        }
        s
    }
}

/// Runs passes in order; see the module doc.
pub struct PassManager {
    passes: Vec<Box<dyn Pass>>,
    max_rewrites: Option<usize>,
    skip_verify: bool,
    fold_limit: usize,
    iterations: usize,
}

impl Default for PassManager {
    fn default() -> Self {
        PassManager {
            passes: Vec::new(),
            max_rewrites: None,
            skip_verify: false,
            fold_limit: DEFAULT_FOLD_LIMIT,
            iterations: 1,
        }
    }
}

impl PassManager {
    /// A manager with no passes.
    pub fn new() -> PassManager {
        PassManager::default()
    }

    /// The standard pipeline ([`crate::standard_pipeline`]).
    pub fn standard() -> PassManager {
        // The standard names are all registered (a test checks it).
        Self::from_names(&crate::standard_pipeline()).unwrap_or_default()
    }

    /// A manager running the named passes in order.
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Result<PassManager, PassError> {
        let mut m = PassManager::new();
        for n in names {
            m.passes.push(by_name(n.as_ref())?);
        }
        Ok(m)
    }

    /// A manager configured by `cfg`.
    pub fn from_config(cfg: &PipelineConfig) -> Result<PassManager, PassError> {
        if cfg.iterations == 0 {
            return Err(PassError::Config("iterations must be at least 1".into()));
        }
        let mut m = PassManager::new();
        for n in &cfg.passes {
            m.passes.push(crate::configured(n, cfg)?);
        }
        m.max_rewrites = cfg.max_rewrites;
        m.skip_verify = cfg.skip_verify;
        m.fold_limit = cfg.fold_limit;
        m.iterations = cfg.iterations;
        Ok(m)
    }

    /// Appends a pass.
    pub fn with_pass(mut self, pass: Box<dyn Pass>) -> PassManager {
        self.passes.push(pass);
        self
    }

    /// Stops after `n` rewrites in total (`None`: no limit).
    pub fn max_rewrites(mut self, n: Option<usize>) -> PassManager {
        self.max_rewrites = n;
        self
    }

    /// Skips verification after each pass; only release builds honour it.
    pub fn skip_verify(mut self, skip: bool) -> PassManager {
        self.skip_verify = skip;
        self
    }

    /// Sets the constant-folding size limit (elements).
    pub fn fold_limit(mut self, limit: usize) -> PassManager {
        self.fold_limit = limit;
        self
    }

    /// Runs the list up to `n` times while a round still rewrites.
    pub fn iterations(mut self, n: usize) -> PassManager {
        self.iterations = n.max(1);
        self
    }

    /// The names of the passes, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.passes.iter().map(|p| p.name()).collect()
    }

    fn verifies(&self) -> bool {
        cfg!(debug_assertions) || !self.skip_verify
    }

    /// Runs the passes on `g`. On error `g` is left as the failing pass left it.
    pub fn run(&self, g: &mut Graph) -> Result<PipelineReport, PassError> {
        if self.verifies() {
            verify(g).map_err(PassError::InvalidInput)?;
        }
        let mut report = PipelineReport::default();
        let mut before = graph_stats(g);
        'rounds: for round in 0..self.iterations {
            let mut round_rewrites = 0;
            for pass in &self.passes {
                let left = match self.max_rewrites {
                    Some(max) => max.saturating_sub(report.rewrites),
                    None => usize::MAX,
                };
                if left == 0 {
                    report.stopped_early = true;
                    break 'rounds;
                }
                let cx = PassContext {
                    budget: left,
                    fold_limit: self.fold_limit,
                };
                let t = Instant::now();
                let r = pass.run(g, &cx)?;
                let time = t.elapsed();
                if r.rewrites > left {
                    return Err(PassError::Rewrite(format!(
                        "pass '{}' made {} rewrites with a budget of {left}",
                        pass.name(),
                        r.rewrites
                    )));
                }
                let t = Instant::now();
                if self.verifies() {
                    verify(g).map_err(|source| PassError::Verify {
                        pass: pass.name().to_string(),
                        source,
                    })?;
                }
                let verify_time = t.elapsed();
                let after = graph_stats(g);
                report.passes.push(PassStats {
                    pass: pass.name().to_string(),
                    round,
                    nodes_before: before.nodes,
                    nodes_after: after.nodes,
                    params_before: before.parameters,
                    params_after: after.parameters,
                    rewrites: r.rewrites,
                    time,
                    verify_time,
                    summary: r.summary,
                });
                report.rewrites += r.rewrites;
                round_rewrites += r.rewrites;
                before = after;
            }
            if round_rewrites == 0 {
                break;
            }
        }
        if let Some(max) = self.max_rewrites {
            if report.rewrites >= max {
                report.stopped_early = true;
            }
        }
        Ok(report)
    }
}
