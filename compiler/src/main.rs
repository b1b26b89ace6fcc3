//! The `petasos` command line.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use petasos_compiler::{backend_cli, cost, inspect, load::load_model, plan::calibrate};
use petasos_ir::onnx::tensor_file::{read_tensor_file, write_tensor_file};
use petasos_models::{BuildOptions, Phase};
use std::path::PathBuf;

/// petasos: import, inspect and run neural-network models.
#[derive(Parser)]
#[command(name = "petasos", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    /// For built-in decoders: build the `prefill` or the `decode` graph.
    #[arg(long, global = true, default_value = "prefill")]
    phase: PhaseArg,
    /// For built-in models: JSON object overriding fields of the preset's config
    /// (e.g. '{"layers": 2}'), or @FILE to read it from a file.
    #[arg(long, global = true)]
    config: Option<String>,
    /// For built-in models: seed of the synthetic weights.
    #[arg(long, global = true, default_value_t = 0)]
    seed: u64,
    /// For built-in models: where weights come from. `synthetic` (the only source today):
    /// seeded random values, materialised only when a command needs them (interpret,
    /// export-onnx); inspect and models never materialise them.
    #[arg(long, global = true, default_value = "synthetic")]
    weights: WeightsArg,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum WeightsArg {
    Synthetic,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum PhaseArg {
    Prefill,
    Decode,
}

impl Cli {
    /// The build options the global flags describe.
    fn build_options(&self) -> Result<BuildOptions> {
        let overrides = match &self.config {
            None => None,
            Some(c) => {
                let text = match c.strip_prefix('@') {
                    Some(path) => std::fs::read_to_string(path)
                        .with_context(|| format!("reading --config file {path}"))?,
                    None => c.clone(),
                };
                Some(
                    serde_json::from_str(&text)
                        .with_context(|| format!("--config is not valid JSON: {text}"))?,
                )
            }
        };
        Ok(BuildOptions {
            phase: match self.phase {
                PhaseArg::Prefill => Phase::Prefill,
                PhaseArg::Decode => Phase::Decode,
            },
            seed: self.seed,
            overrides,
        })
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// List the built-in models with their parameter counts.
    Models,
    /// Print inputs/outputs, op histogram, parameter count and MACs of a model.
    Inspect {
        /// An ONNX file or a built-in model name.
        #[arg(default_value = "demo-cnn")]
        model: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run the reference interpreter on inputs given as TensorProto (.pb) or numpy (.npy) files.
    Interpret {
        /// An ONNX file or a built-in model name.
        model: String,
        /// Input files, in graph-input order.
        #[arg(short, long = "input")]
        inputs: Vec<PathBuf>,
        /// Output folder; receives output_N.pb (or .npy with --npy).
        #[arg(short, long)]
        out: PathBuf,
        /// Write outputs as .npy instead of .pb.
        #[arg(long)]
        npy: bool,
    },
    /// Estimate per-op latency, energy, power and memory on a device profile, with what-ifs.
    Estimate(cost::cli::EstimateArgs),
    /// Open a model in the desktop viewer (`petasos-viewer`, next to this executable or on PATH).
    View {
        /// An ONNX file or a built-in model name.
        model: Option<String>,
        /// A second model to compare with the first.
        #[arg(long)]
        compare: Option<String>,
        /// Device profile: a built-in name or a .toml file.
        #[arg(long, default_value = "host")]
        device: String,
    },
    /// Run optimisation passes (verified after each) and write the result as ONNX.
    Compile {
        /// An ONNX file or a built-in model name.
        model: String,
        /// Comma-separated pass names, in order (default: the standard pipeline).
        #[arg(long, value_delimiter = ',')]
        passes: Vec<String>,
        /// A JSON pipeline config ({"passes": [...], "max_rewrites": N, ...}) instead of --passes.
        #[arg(long, conflicts_with = "passes")]
        pipeline: Option<PathBuf>,
        /// Stop after this many rewrites in total (to bisect a bad rewrite).
        #[arg(long)]
        max_rewrites: Option<usize>,
        /// Output .onnx path (written atomically); omit to only report.
        #[arg(short, long)]
        out: Option<PathBuf>,
        /// Print the per-pass statistics as JSON.
        #[arg(long)]
        json: bool,
        /// `prune` pass: fraction of input channels to drop, in [0, 1) (default 0.3).
        #[arg(long, allow_negative_numbers = true)]
        prune_amount: Option<f64>,
        /// `prune` pass: how channels are scored (default l2).
        #[arg(long, value_enum)]
        prune_heuristic: Option<petasos_compiler::prune_cli::HeuristicArg>,
        #[command(flatten)]
        backend: backend_cli::CompileTargetArgs,
    },
    /// Run a compiled artifact folder (compile --target cpu) on input files, like `interpret`.
    Run {
        /// The artifact folder.
        dir: PathBuf,
        /// Input files (.pb or .npy), in graph-input order.
        #[arg(short, long = "input")]
        inputs: Vec<PathBuf>,
        /// Output folder; receives output_N.pb (or .npy with --npy).
        #[arg(short, long)]
        out: PathBuf,
        /// Write outputs as .npy instead of .pb.
        #[arg(long)]
        npy: bool,
        /// Threads (default: the compile's --threads).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Time a compiled artifact folder on seeded inputs; the last line is `median_ms=<v>`.
    Bench {
        /// The artifact folder.
        dir: PathBuf,
        /// Threads (default: the compile's --threads).
        #[arg(long)]
        threads: Option<usize>,
        /// Timed runs.
        #[arg(long, default_value_t = 20)]
        runs: usize,
        /// Untimed warm-up runs.
        #[arg(long, default_value_t = 3)]
        warmup: usize,
        /// Seed of the random inputs.
        #[arg(long, default_value_t = 0)]
        input_seed: u64,
    },
    /// UPSCALE channel pruning: write the pruned (and masked) model, report gathers and savings.
    Prune(petasos_compiler::prune_cli::PruneArgs),
    /// List the optimisation passes `compile` can run.
    Passes,
    /// Export a model (file or built-in) to ONNX.
    ExportOnnx {
        model: String,
        /// Output .onnx path (written atomically).
        #[arg(short, long)]
        out: PathBuf,
    },
    /// Measure this machine (GEMM, memory bandwidth, call overhead); write the `host` profile.
    Calibrate {
        /// Output TOML path (written atomically); default: the calibrated `host` profile that
        /// `--device host` reads ($PETASOS_HOME/host.toml, else ~/.config/petasos/host.toml).
        #[arg(short, long)]
        out: Option<PathBuf>,
        /// A short run (well under a second): same fields, noisier values.
        #[arg(long)]
        quick: bool,
    },
}

fn run(cli: Cli) -> Result<()> {
    let opts = cli.build_options()?;
    let load_model = |m: &str| load_model(m, &opts);
    match cli.cmd {
        Cmd::Models => {
            println!(
                "{:<20} {:<8} {:>18}  summary",
                "name", "family", "parameters"
            );
            for p in petasos_models::presets() {
                let params = match petasos_models::build_with(p.name, &opts) {
                    Ok(g) => inspect::thousands(petasos_models::learned_parameters(&g)),
                    Err(e) => format!("error: {e}"),
                };
                println!(
                    "{:<20} {:<8} {:>18}  {}",
                    p.name, p.family, params, p.summary
                );
            }
        }
        Cmd::Inspect { model, json } => {
            let g = load_model(&model)?;
            let r = inspect::inspect(&model, &g);
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                print!("{}", inspect::render(&r));
            }
        }
        Cmd::Interpret {
            model,
            inputs,
            out,
            npy,
        } => {
            let g = load_model(&model)?;
            if inputs.len() != g.inputs.len() {
                let names: Vec<&str> = g
                    .inputs
                    .iter()
                    .map(|&i| g.g[i].outputs[0].name.as_str())
                    .collect();
                bail!(
                    "{model} takes {} inputs ({}), {} given with -i",
                    names.len(),
                    names.join(", "),
                    inputs.len()
                );
            }
            let tensors = inputs
                .iter()
                .map(|p| read_tensor_file(p).map_err(anyhow::Error::from))
                .collect::<Result<Vec<_>>>()?;
            let outs =
                petasos_ir::interp::run(&g, tensors).with_context(|| format!("running {model}"))?;
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            for (i, (t, o)) in outs.iter().zip(&g.outputs).enumerate() {
                let p = out.join(format!("output_{i}.{}", if npy { "npy" } else { "pb" }));
                write_tensor_file(&p, &o.name, t)?;
                println!(
                    "{}: {} {:?} -> {}",
                    o.name,
                    t.dtype(),
                    t.shape(),
                    p.display()
                );
            }
        }
        Cmd::Estimate(a) => cost::cli::run(&a, &load_model(&a.model)?)?,
        Cmd::View {
            model,
            compare,
            device,
        } => view(model.as_deref(), compare.as_deref(), &device)?,
        Cmd::Compile {
            model,
            passes,
            pipeline,
            max_rewrites,
            out,
            json,
            backend,
            prune_amount,
            prune_heuristic,
        } => {
            if backend.target == backend_cli::Target::Cpu {
                let out = out.context("--target cpu needs -o OUT/ (the artifact folder)")?;
                return backend_cli::compile_cpu(&model, load_model(&model)?, &backend, &out);
            }
            let mut cfg = match &pipeline {
                Some(p) => {
                    let text = std::fs::read_to_string(p)
                        .with_context(|| format!("reading {}", p.display()))?;
                    serde_json::from_str::<petasos_passes::manager::PipelineConfig>(&text)
                        .with_context(|| format!("pipeline config {}", p.display()))?
                }
                None => petasos_passes::manager::PipelineConfig::default(),
            };
            if !passes.is_empty() {
                cfg.passes = passes;
            }
            if max_rewrites.is_some() {
                cfg.max_rewrites = max_rewrites;
            }
            if prune_amount.is_some() || prune_heuristic.is_some() {
                let p = cfg.prune.get_or_insert_with(Default::default);
                p.amount = prune_amount.unwrap_or(p.amount);
                p.heuristic = prune_heuristic.map_or(p.heuristic, Into::into);
            }
            let pm = petasos_passes::manager::PassManager::from_config(&cfg)?;
            let mut g = load_model(&model)?;
            let report = pm
                .run(&mut g)
                .with_context(|| format!("compiling {model}"))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.table());
            }
            if let Some(out) = out {
                petasos_ir::onnx::save_model(&g, &out)?;
                eprintln!("wrote {}", out.display());
            }
        }
        Cmd::Run {
            dir,
            inputs,
            out,
            npy,
            threads,
        } => backend_cli::run(&dir, &inputs, &out, npy, threads)?,
        Cmd::Bench {
            dir,
            threads,
            runs,
            warmup,
            input_seed,
        } => backend_cli::bench(&dir, threads, runs, warmup, input_seed)?,
        Cmd::Prune(a) => petasos_compiler::prune_cli::run(&a, load_model(&a.model)?)?,
        Cmd::Passes => {
            let standard = petasos_passes::standard_pipeline();
            for p in petasos_passes::registry() {
                let mark = if standard.contains(&p.name) { "*" } else { " " };
                println!("{mark} {:<16} {}", p.name, p.summary);
            }
            println!("(* = in the standard pipeline, the default of `compile`)");
        }
        Cmd::ExportOnnx { model, out } => {
            let g = load_model(&model)?;
            petasos_ir::onnx::save_model(&g, &out)?;
            println!("wrote {}", out.display());
        }
        Cmd::Calibrate { out, quick } => {
            let out = match out {
                Some(o) => o,
                None => {
                    let p = cost::profile::calibrated_host_path()
                        .context("no home folder for the host profile; pass -o FILE")?;
                    if let Some(d) = p.parent() {
                        std::fs::create_dir_all(d)
                            .with_context(|| format!("creating {}", d.display()))?;
                    }
                    p
                }
            };
            let dir = out.parent().filter(|d| !d.as_os_str().is_empty());
            if let Some(d) = dir.filter(|d| !d.is_dir()) {
                bail!(
                    "writing {}: folder {} does not exist",
                    out.display(),
                    d.display()
                );
            }
            let o = calibrate::CalibrateOptions { quick };
            let m = calibrate::measure(&o, |s| eprintln!("calibrate: {s}"));
            calibrate::write_profile(&out, &m)?;
            println!(
                "f32 {:.1} GFLOP/s, int8 {:.1} GOP/s, DRAM {:.1} GB/s, L2 {:.1} GB/s, call {:.3} us; wrote {}",
                m.f32_gflops.value, m.int8_gops.value, m.dram_gbps.value, m.l2_gbps.value,
                m.launch_us.value, out.display()
            );
        }
    }
    Ok(())
}

/// Runs the `petasos-viewer` found next to this executable (else on PATH) on the model and
/// waits for it; the compiler does not link the viewer.
fn view(model: Option<&str>, compare: Option<&str>, device: &str) -> Result<()> {
    let name = format!("petasos-viewer{}", std::env::consts::EXE_SUFFIX);
    let exe = std::env::current_exe().context("locating the petasos executable")?;
    let beside = exe.with_file_name(&name);
    let found = if beside.is_file() {
        Some(beside)
    } else {
        std::env::var_os("PATH").and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(&name))
                .find(|c| c.is_file())
        })
    };
    let Some(viewer) = found else {
        bail!(
            "{name} was not found next to {} or on PATH: build it with `cargo build -p petasos-viewer` (it is installed next to petasos)",
            exe.display()
        );
    };
    let mut cmd = std::process::Command::new(&viewer);
    cmd.args(model).arg("--device").arg(device);
    if let Some(c) = compare {
        cmd.arg("--compare").arg(c);
    }
    let status = cmd
        .status()
        .with_context(|| format!("starting {}", viewer.display()))?;
    if !status.success() {
        bail!("{} exited with {status}", viewer.display());
    }
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    std::panic::set_hook(Box::new(|_| {}));
    let r = std::panic::catch_unwind(move || run(cli));
    match r {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            let msg: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("petasos: error: {}", msg.join(": ").replace('\n', " "));
            std::process::exit(1);
        }
        Err(p) => {
            let what = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            eprintln!("petasos: error: internal error ({what}); this is a bug in petasos, please report it with the model");
            std::process::exit(1);
        }
    }
}
