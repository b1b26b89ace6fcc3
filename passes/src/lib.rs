//! Graph optimisation passes.
//!
//! - [`Pass`]: one rewrite over a [`Graph`], given a [`PassContext`] (its rewrite budget and
//!   limits), reporting a [`PassReport`];
//! - [`registry`] / [`by_name`]: every pass by name, with its one-line summary;
//! - [`manager::PassManager`]: runs an ordered list of passes (from names or a serde
//!   [`manager::PipelineConfig`]), verifies the graph after every pass, records per-pass
//!   statistics and stops after `max_rewrites` rewrites in total (to bisect a bad rewrite);
//! - [`patch`]: the small rewrites passes are made of (redirect a value's uses, remove a node,
//!   insert a constant) and the rewrite budget;
//! - the passes, one file each: [`const_fold`], [`dce`], [`cse`], [`bn_fold`],
//!   [`bias_fusion`], [`shape_simplify`] (the last three share [`rewrite`]'s helpers);
//! - [`prune`]: UPSCALE channel pruning (segments, heuristics, channel ordering, surgery, the
//!   masked model) and the `prune` pass, configured by [`PipelineConfig::prune`].
//!
//! Passes rewrite the top-level graph; subgraphs (If/Loop/Scan bodies) are left as they are.

pub mod bias_fusion;
pub mod bn_fold;
pub mod const_fold;
pub mod cse;
pub mod dce;
pub mod manager;
pub mod patch;
pub mod prune;
pub mod rewrite;
pub mod shape_simplify;

pub use manager::{PassManager, PassStats, PipelineConfig, PipelineReport};
use petasos_ir::Graph;

/// Errors from running passes.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    /// No pass has this name.
    #[error("unknown pass '{0}' (known: {known})", known = known_names())]
    UnknownPass(String),
    /// The pipeline configuration is unusable.
    #[error("pass configuration: {0}")]
    Config(String),
    /// The graph given to the manager does not verify, before any pass ran.
    #[error("the input graph does not verify: {0}")]
    InvalidInput(#[source] petasos_ir::Error),
    /// The graph does not verify after a pass: the pass broke it.
    #[error("pass '{pass}' left a graph that does not verify: {source}")]
    Verify {
        pass: String,
        #[source]
        source: petasos_ir::Error,
    },
    /// A pass failed on an IR operation.
    #[error("pass '{pass}': {source}")]
    Ir {
        pass: String,
        #[source]
        source: petasos_ir::Error,
    },
    /// A rewrite was asked to do something the graph does not allow.
    #[error("rewrite: {0}")]
    Rewrite(String),
    /// The `prune` pass failed (bad configuration, nothing prunable, surgery).
    #[error("prune: {0}")]
    Prune(#[from] prune::PruneError),
}

fn known_names() -> String {
    registry()
        .iter()
        .map(|p| p.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a pass is given besides the graph.
#[derive(Clone, Debug)]
pub struct PassContext {
    /// The most rewrites this pass may make (`usize::MAX`: no limit). Every pass stops once it
    /// has made this many, leaving the graph valid.
    pub budget: usize,
    /// Largest tensor (elements) constant folding evaluates or creates.
    pub fold_limit: usize,
}

/// The default [`PassContext::fold_limit`]: 1 Mi elements (4 MiB of f32).
pub const DEFAULT_FOLD_LIMIT: usize = 1 << 20;

impl Default for PassContext {
    fn default() -> Self {
        PassContext {
            budget: usize::MAX,
            fold_limit: DEFAULT_FOLD_LIMIT,
        }
    }
}

impl PassContext {
    /// The default context with a rewrite budget of `budget`.
    pub fn with_budget(budget: usize) -> PassContext {
        PassContext {
            budget,
            ..Default::default()
        }
    }
}

/// What one run of a pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Number of rewrites made (never more than the budget).
    pub rewrites: usize,
    /// A short description of what changed (`"folded 3 nodes (Shape 1, Gather 2)"`).
    pub summary: String,
}

impl PassReport {
    /// A report of `rewrites` rewrites described by `summary`.
    pub fn new(rewrites: usize, summary: impl Into<String>) -> PassReport {
        PassReport {
            rewrites,
            summary: summary.into(),
        }
    }
}

/// A graph rewrite.
pub trait Pass: Send + Sync {
    /// Its registry name (`const_fold`).
    fn name(&self) -> &'static str;
    /// One line: what it does.
    fn summary(&self) -> &'static str;
    /// Rewrites `g`, making at most `cx.budget` rewrites; the graph must verify afterwards.
    fn run(&self, g: &mut Graph, cx: &PassContext) -> Result<PassReport, PassError>;
}

/// A pass written as a plain function `apply(g, budget) -> rewrites` (the shape of the
/// `bn_fold`, `bias_fusion` and `shape_simplify` modules), so it can be registered as-is.
pub struct FnPass {
    pub name: &'static str,
    pub summary: &'static str,
    pub apply: fn(&mut Graph, usize) -> Result<usize, PassError>,
}

impl Pass for FnPass {
    fn name(&self) -> &'static str {
        self.name
    }
    fn summary(&self) -> &'static str {
        self.summary
    }
    fn run(&self, g: &mut Graph, cx: &PassContext) -> Result<PassReport, PassError> {
        let n = (self.apply)(g, cx.budget)?;
        Ok(PassReport::new(n, format!("{n} rewrites")))
    }
}

/// A registered pass: its name, summary and constructor.
#[derive(Clone, Copy)]
pub struct PassInfo {
    pub name: &'static str,
    pub summary: &'static str,
    pub make: fn() -> Box<dyn Pass>,
}

/// Every pass, by name, in the order `petasos compile --list-passes` would show them.
pub fn registry() -> Vec<PassInfo> {
    vec![
        PassInfo {
            name: const_fold::NAME,
            summary: const_fold::SUMMARY,
            make: || Box::new(const_fold::ConstFold),
        },
        PassInfo {
            name: cse::NAME,
            summary: cse::SUMMARY,
            make: || Box::new(cse::Cse),
        },
        PassInfo {
            name: dce::NAME,
            summary: dce::SUMMARY,
            make: || Box::new(dce::Dce),
        },
        PassInfo {
            name: "bn_fold",
            summary: "folds inference BatchNormalization into the preceding Conv/Gemm/MatMul",
            make: || {
                Box::new(FnPass {
                    name: "bn_fold",
                    summary:
                        "folds inference BatchNormalization into the preceding Conv/Gemm/MatMul",
                    apply: |g, b| Ok(bn_fold::apply(g, b)?),
                })
            },
        },
        PassInfo {
            name: "bias_fusion",
            summary: "folds a constant Add after Conv/Gemm/MatMul into the op's bias",
            make: || {
                Box::new(FnPass {
                    name: "bias_fusion",
                    summary: "folds a constant Add after Conv/Gemm/MatMul into the op's bias",
                    apply: |g, b| Ok(bias_fusion::apply(g, b)?),
                })
            },
        },
        PassInfo {
            name: "shape_simplify",
            summary: "collapses Reshape/Transpose chains, cancelling Squeeze/Unsqueeze, Identity",
            make: || {
                Box::new(FnPass {
                    name: "shape_simplify",
                    summary:
                        "collapses Reshape/Transpose chains, cancelling Squeeze/Unsqueeze, Identity",
                    apply: |g, b| Ok(shape_simplify::apply(g, b)?),
                })
            },
        },
        PassInfo {
            name: prune::pass::NAME,
            summary: prune::pass::SUMMARY,
            make: || Box::new(prune::pass::PrunePass::default()),
        },
    ]
}

/// The pass called `name`.
pub fn by_name(name: &str) -> Result<Box<dyn Pass>, PassError> {
    registry()
        .into_iter()
        .find(|p| p.name == name)
        .map(|p| (p.make)())
        .ok_or_else(|| PassError::UnknownPass(name.to_string()))
}

/// The pass called `name`, configured by `cfg` where it takes configuration (`prune` reads
/// [`PipelineConfig::prune`]; without it, [`prune::pass::PruneConfig::default`]).
pub fn configured(name: &str, cfg: &PipelineConfig) -> Result<Box<dyn Pass>, PassError> {
    if name == prune::pass::NAME {
        let c = cfg.prune.clone().unwrap_or_default();
        return Ok(Box::new(prune::pass::PrunePass::new(c)?));
    }
    by_name(name)
}

/// The names of the default pipeline, in order: fold constants first (which also exposes
/// duplicate constants), fold batch-norms and biases, simplify shape ops, merge common
/// subexpressions, then remove what became dead.
pub fn standard_pipeline() -> Vec<&'static str> {
    vec![
        const_fold::NAME,
        "bn_fold",
        "bias_fusion",
        "shape_simplify",
        cse::NAME,
        dce::NAME,
    ]
}

impl From<rewrite::RewriteError> for PassError {
    fn from(e: rewrite::RewriteError) -> PassError {
        PassError::Rewrite(e.to_string())
    }
}
