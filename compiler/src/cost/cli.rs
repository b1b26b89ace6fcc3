//! The `petasos estimate` command: its flags and what it does with them.

use super::whatif::{parse_bits, OpOptions, WhatIf};
use super::{estimate, DeviceProfile, EstimateOptions, Report};
use anyhow::{Context, Result};
use petasos_ir::Graph;
use std::path::PathBuf;

/// On or off.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

/// Flags of `petasos estimate`.
#[derive(Clone, Debug, clap::Args)]
pub struct EstimateArgs {
    /// An ONNX file or a built-in model name.
    pub model: String,
    /// A shipped profile (apple-a17-pro, apple-m2, apple-m3-max, x86-avx512, host) or the
    /// path of a profile .toml file.
    #[arg(long, default_value = "host")]
    pub device: String,
    /// Compute unit of the profile (e.g. gpu, ane); its default unit when omitted.
    #[arg(long)]
    pub unit: Option<String>,
    /// Weight width: 16, 8, 4, 3.56, 2, ... bits, or pN (N-bit palettised); default: as stored.
    #[arg(long)]
    pub weight_bits: Option<String>,
    /// Embedding-table width (same forms); default: the weight width.
    #[arg(long)]
    pub embedding_bits: Option<String>,
    /// Float activation width in bits (also sets the compute precision).
    #[arg(long)]
    pub activation_bits: Option<String>,
    /// KV-cache element width in bits.
    #[arg(long)]
    pub kv_bits: Option<String>,
    /// Context length in tokens: the prefill length S and the decode cache length T.
    #[arg(long, default_value_t = 2048)]
    pub context: u64,
    /// KV sharing between layers (models with KV-sharing blocks); default: as built.
    #[arg(long)]
    pub kv_sharing: Option<OnOff>,
    /// Per-op option, OP:key=value[,key=value]; OP is a node name or a layer path (a path
    /// covers the ops under it); keys: weight-bits, embedding-bits, activation-bits, sparsity.
    #[arg(long = "what-if")]
    pub what_if: Vec<String>,
    /// Also write the per-op rows to this CSV file.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Write charts into this folder: latency by op type, the top-20 ops by latency, and
    /// activation memory over execution order.
    #[arg(long)]
    pub charts: Option<PathBuf>,
    /// Chart file format.
    #[arg(long, value_enum, default_value = "png")]
    pub chart_format: ChartFormatArg,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Chart file format.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum ChartFormatArg {
    Png,
    Svg,
}

impl EstimateArgs {
    /// The whole-model options the flags give.
    pub fn what_if_options(&self) -> Result<WhatIf> {
        let mut ops = OpOptions::default();
        if let Some(b) = &self.weight_bits {
            ops.set("weight-bits", b).context("--weight-bits")?;
        }
        if let Some(b) = &self.embedding_bits {
            ops.set("embedding-bits", b).context("--embedding-bits")?;
        }
        if let Some(b) = &self.activation_bits {
            ops.set("activation-bits", b).context("--activation-bits")?;
        }
        Ok(WhatIf {
            ops,
            kv_bits: match &self.kv_bits {
                Some(b) => Some(parse_bits("KV-cache bits", b).context("--kv-bits")?),
                None => None,
            },
            kv_sharing: self.kv_sharing.map(|s| matches!(s, OnOff::On)),
        })
    }
}

/// Runs `petasos estimate` on the loaded graph `g`.
pub fn run(a: &EstimateArgs, g: &Graph) -> Result<()> {
    let profile = DeviceProfile::load(&a.device)?;
    let opts = EstimateOptions {
        context: a.context,
        batch: 1,
    };
    let mut e = estimate(g, &profile, a.unit.as_deref(), &opts, a.what_if_options()?)?;
    for spec in &a.what_if {
        let (key, kvs) = spec
            .rsplit_once(':')
            .with_context(|| format!("--what-if '{spec}': want OP:key=value[,key=value]"))?;
        let mut o = OpOptions::default();
        for kv in kvs.split(',') {
            let (k, v) = kv
                .split_once('=')
                .with_context(|| format!("--what-if '{spec}': '{kv}' is not key=value"))?;
            o.set(k, v).with_context(|| format!("--what-if '{spec}'"))?;
        }
        for i in e.find_ops(key)? {
            let merged = e.op_options(i).unwrap_or_default().with(&o);
            e.set_op_options(i, Some(merged));
        }
    }
    let mut r = Report::new(&a.model, &e);
    let plan = crate::plan::memory::plan(
        g,
        &crate::plan::memory::PlanOptions {
            dims: opts.dims(),
            ..Default::default()
        },
    )?;
    r.totals.peak_activation_bytes = Some(plan.arena_bytes);
    r.totals.max_live_activation_bytes = Some(plan.max_live_bytes);
    r.totals.naive_activation_bytes = Some(plan.naive_bytes);
    if let Some(p) = &a.csv {
        petasos_ir::onnx::export::write_atomic(p, r.csv().as_bytes())?;
    }
    if let Some(dir) = &a.charts {
        let ext = match a.chart_format {
            ChartFormatArg::Png => "png",
            ChartFormatArg::Svg => "svg",
        };
        for path in write_charts(&r, Some(&plan), dir, ext)? {
            eprintln!("chart: {}", path.display());
        }
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print!("{}", r.render());
    }
    Ok(())
}

/// Writes the estimate's charts into `dir` (created if missing); returns their paths.
pub fn write_charts(
    r: &Report,
    plan: Option<&crate::plan::memory::MemoryPlan>,
    dir: &std::path::Path,
    ext: &str,
) -> Result<Vec<PathBuf>> {
    use crate::charts::{bar_chart, line_chart};
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut out = Vec::new();
    let mut by_type: std::collections::BTreeMap<&str, f64> = Default::default();
    for o in &r.ops {
        *by_type.entry(o.op_type.as_str()).or_default() += o.latency_s;
    }
    let mut bars: Vec<(String, f64)> = by_type
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    bars.sort_by(|a, b| b.1.total_cmp(&a.1));
    bars.truncate(40);
    let p = dir.join(format!("latency-by-op-type.{ext}"));
    bar_chart(
        &p,
        &format!("{}: latency by op type ({})", r.model, r.device),
        "s",
        &bars,
    )?;
    out.push(p);
    let mut top: Vec<(String, f64)> = r
        .ops
        .iter()
        .map(|o| {
            let label = if o.layer.is_empty() {
                o.name.clone()
            } else {
                format!("{} {}", o.layer, o.op_type)
            };
            (label, o.latency_s)
        })
        .collect();
    top.sort_by(|a, b| b.1.total_cmp(&a.1));
    top.truncate(20);
    let p = dir.join(format!("top-ops.{ext}"));
    bar_chart(
        &p,
        &format!(
            "{}: top {} ops by latency ({})",
            r.model,
            top.len(),
            r.device
        ),
        "s",
        &top,
    )?;
    out.push(p);
    if let Some(plan) = plan.filter(|p| !p.timeline.is_empty()) {
        let p = dir.join(format!("memory.{ext}"));
        let arena = vec![plan.arena_bytes as f64; plan.timeline.len()];
        let live: Vec<f64> = plan.timeline.iter().map(|&b| b as f64).collect();
        line_chart(
            &p,
            &format!("{}: activation memory over execution order", r.model),
            "step (op in execution order)",
            "bytes",
            &[
                ("live activations".to_string(), live),
                ("planned arena".to_string(), arena),
            ],
        )?;
        out.push(p);
    }
    Ok(out)
}
