//! `petasos prune`: UPSCALE channel pruning from the command line.
//!
//! `petasos prune MODEL --amount A --heuristic l1|l2|lamp|fpgm [--global] [--constrained |
//! --no-reorder] [--cover-gathers] [--masks masks.json] [-o pruned.onnx] [--masked-out masked.onnx] [--json]`
//! plans the pruning once, writes the pruned model (gathers as `Gather`, slices as `Slice`)
//! and, if asked, the masked model (the original with dropped input columns zeroed: the
//! equivalence oracle) from the same plan, and prints a table per segment (channels kept,
//! gathers before/after reordering, parameters and MACs removed) or, with `--json`, the
//! report object (its `totals` has `gathers`, `slices`, `params_before`, `params_after`,
//! `macs_before`, `macs_after`).
//!
//! A masks file is a JSON object from layer (ONNX node) name to one entry per input channel,
//! `true`/`1` = keep: `{"/layer1/0/conv1/Conv": [1, 0, 1, ...]}`; layers not named keep all.

use anyhow::{bail, Context, Result};
use petasos_ir::Graph;
use petasos_passes::prune::heuristic::{Criterion, Scope};
use petasos_passes::prune::masked::mask;
use petasos_passes::prune::surgery::apply;
use petasos_passes::prune::{MaskSource, Plan, PruneMode, PruneOptions};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A channel-scoring heuristic on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum HeuristicArg {
    L1,
    L2,
    Lamp,
    Fpgm,
}

impl From<HeuristicArg> for Criterion {
    fn from(h: HeuristicArg) -> Criterion {
        match h {
            HeuristicArg::L1 => Criterion::L1,
            HeuristicArg::L2 => Criterion::L2,
            HeuristicArg::Lamp => Criterion::Lamp,
            HeuristicArg::Fpgm => Criterion::Fpgm,
        }
    }
}

/// Arguments of `petasos prune`.
#[derive(Clone, Debug, clap::Args)]
pub struct PruneArgs {
    /// An ONNX file or a built-in model name.
    pub model: String,
    /// Fraction of input channels to drop, in [0, 1) (required unless --masks is given).
    #[arg(long, allow_negative_numbers = true)]
    pub amount: Option<f64>,
    /// How channels are scored.
    #[arg(long, value_enum, default_value = "l2")]
    pub heuristic: HeuristicArg,
    /// Drop the lowest scores across the whole model instead of `amount` of every layer.
    #[arg(long)]
    pub global: bool,
    /// Every layer reading a segment drops the same channels (no copies; loses accuracy).
    #[arg(long, conflicts_with = "no_reorder")]
    pub constrained: bool,
    /// Keep the original channel order (the baseline export, with gathers).
    #[arg(long)]
    pub no_reorder: bool,
    /// Replace the gathers left after reordering by slices of the covering channel range with
    /// zeroed weight columns: no copies, at the price of those columns' MACs.
    #[arg(long)]
    pub cover_gathers: bool,
    /// Explicit masks: a JSON object from layer name to keep flags, one per input channel.
    #[arg(long, conflicts_with_all = ["amount", "global"])]
    pub masks: Option<PathBuf>,
    /// Write the pruned model here (ONNX, written atomically).
    #[arg(short, long)]
    pub out: Option<PathBuf>,
    /// Write the masked model (the original with dropped input columns zeroed) here.
    #[arg(long)]
    pub masked_out: Option<PathBuf>,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl PruneArgs {
    /// The surgery options these arguments describe.
    pub fn options(&self) -> Result<PruneOptions> {
        let mode = if self.constrained {
            PruneMode::Constrained
        } else if self.no_reorder {
            PruneMode::NoReorder
        } else {
            PruneMode::Reorder
        };
        let masks = match (&self.masks, self.amount) {
            (Some(p), _) => MaskSource::Explicit(read_masks(p)?),
            (None, Some(amount)) => MaskSource::Heuristic {
                criterion: self.heuristic.into(),
                amount,
                scope: if self.global {
                    Scope::Global
                } else {
                    Scope::Layer
                },
            },
            (None, None) => bail!("give --amount A (a fraction in [0, 1)) or --masks FILE"),
        };
        let mut o = PruneOptions::with_masks(masks, mode);
        o.cover_gathers = self.cover_gathers;
        Ok(o)
    }
}

/// Reads a masks file (see the module doc).
pub fn read_masks(path: &Path) -> Result<BTreeMap<String, Vec<bool>>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("masks file {} is not JSON", path.display()))?;
    let Some(obj) = v.as_object() else {
        bail!(
            "masks file {}: expected an object from layer name to a list of keep flags",
            path.display()
        );
    };
    let mut out = BTreeMap::new();
    for (name, flags) in obj {
        let Some(list) = flags.as_array() else {
            bail!(
                "masks file {}: '{name}' should be a list of true/false or 1/0",
                path.display()
            );
        };
        let mut m = Vec::with_capacity(list.len());
        for (i, f) in list.iter().enumerate() {
            m.push(match (f.as_bool(), f.as_i64()) {
                (Some(b), _) => b,
                (None, Some(0)) => false,
                (None, Some(1)) => true,
                _ => bail!(
                    "masks file {}: '{name}' entry {i} is {f}; use true/false or 1/0",
                    path.display()
                ),
            });
        }
        out.insert(name.clone(), m);
    }
    Ok(out)
}

/// Runs `petasos prune` on the loaded graph `g`.
pub fn run(a: &PruneArgs, g: Graph) -> Result<()> {
    let opts = a.options()?;
    let plan = Plan::new(&g, &opts).with_context(|| format!("pruning {}", a.model))?;
    if let Some(p) = &a.masked_out {
        let mut m = g.clone();
        mask(&mut m, &plan, usize::MAX).context("building the masked model")?;
        petasos_ir::onnx::save_model(&m, p).with_context(|| format!("writing {}", p.display()))?;
        eprintln!("wrote masked model {}", p.display());
    }
    let mut pruned = g;
    let report = apply(&mut pruned, &plan, usize::MAX).context("weight surgery")?;
    if let Some(p) = &a.out {
        petasos_ir::onnx::save_model(&pruned, p)
            .with_context(|| format!("writing {}", p.display()))?;
        eprintln!("wrote pruned model {}", p.display());
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{}", report.table());
    }
    Ok(())
}
