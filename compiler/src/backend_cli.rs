//! Command-line pieces of the CPU backend: the `compile --target cpu` flags, and the `run`
//! and `bench` subcommands that drive a compiled artifact folder's `main`.

use crate::backend::cpu::{self, specialise, CpuOptions};
use anyhow::{bail, Context, Result};
use petasos_ir::onnx::tensor_file::read_tensor_file;
use petasos_ir::Graph;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Compile targets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// Optimised ONNX (the default).
    #[default]
    Onnx,
    /// Portable C compiled with the system C compiler into OUT/ (main, libmodel.so, ...).
    Cpu,
}

/// The `compile` flags of the backends.
#[derive(Clone, Debug, clap::Args)]
pub struct CompileTargetArgs {
    /// What to produce: `onnx` (an .onnx file) or `cpu` (an artifact folder; needs -o OUT/).
    #[arg(long, value_enum, default_value = "onnx")]
    pub target: Target,
    /// C compiler for --target cpu.
    #[arg(long, default_value = "cc")]
    pub cc: String,
    /// C compiler flags for --target cpu, replacing the default "-O3 -march=native".
    #[arg(long, allow_hyphen_values = true)]
    pub cflags: Option<String>,
    /// Run GEMMs and dense convolutions on a system BLAS instead of the built-in kernels
    /// (`openblas`: needs libopenblas-dev; `accelerate`: macOS).
    #[arg(long, value_enum)]
    pub blas: Option<cpu::Blas>,
    /// Default thread count of the compiled executable.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Build the executable with per-op timing (trace.json + ops.csv from `run`/`bench`).
    #[arg(long)]
    pub profile: bool,
    /// Bind a symbolic dim: NAME=VALUE (repeatable).
    #[arg(long = "dim", value_parser = specialise::parse_dim)]
    pub dims: Vec<(String, u64)>,
    /// Fix an input's shape: NAME=1x3x224x224 (repeatable).
    #[arg(long = "input-shape", value_parser = specialise::parse_input_shape)]
    pub input_shapes: Vec<(String, Vec<u64>)>,
    /// Freeze an input to the value in FILE (.pb or .npy): NAME=FILE (repeatable). The value
    /// is compiled in as a constant (e.g. a Reshape's shape input, to get static shapes); the
    /// executable refuses any other value for that input.
    #[arg(long = "freeze-input", value_parser = specialise::parse_freeze_input)]
    pub freeze_inputs: Vec<(String, petasos_ir::Tensor)>,
}

impl CompileTargetArgs {
    /// The backend options these flags describe.
    pub fn cpu_options(&self) -> CpuOptions {
        let mut o = CpuOptions {
            dims: self.dims.iter().cloned().collect(),
            input_shapes: self.input_shapes.iter().cloned().collect(),
            frozen: self.freeze_inputs.iter().cloned().collect(),
            ..CpuOptions::default()
        };
        o.cc.cc = self.cc.clone();
        if let Some(f) = &self.cflags {
            o.cc.cflags = f.split_whitespace().map(String::from).collect();
        }
        o.cc.profile = self.profile;
        o.cc.blas = self.blas;
        o.threads = self.threads.max(1);
        o
    }
}

/// `compile --target cpu`: the standard passes run inside the backend.
pub fn compile_cpu(model: &str, mut g: Graph, a: &CompileTargetArgs, out: &Path) -> Result<()> {
    let r = cpu::compile(&mut g, &a.cpu_options(), out)
        .with_context(|| format!("compiling {model} for the CPU"))?;
    println!(
        "{}: {} kernels ({} nodes), arena {} bytes, weights {} bytes{} -> {}",
        model,
        r.kernels,
        r.nodes,
        r.arena_bytes,
        r.weights_bytes,
        if r.profile { ", profiling" } else { "" },
        out.display()
    );
    Ok(())
}

/// The `main` of an artifact folder, checked to exist.
fn artifact_main(dir: &Path) -> Result<PathBuf> {
    let exe = dir.join("main");
    if !exe.is_file() || !dir.join(cpu::artifact::MARKER).is_file() {
        bail!(
            "{} is not a compiled artifact folder (no main / plan.json); build one with `petasos compile MODEL --target cpu -o {}`",
            dir.display(),
            dir.display()
        );
    }
    Ok(exe)
}

/// Whether the artifact was built with --profile.
fn is_profiled(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join(cpu::artifact::MARKER))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["report"]["profile"].as_bool())
        .unwrap_or(false)
}

/// Runs `cmd`; its stderr is the error on failure.
fn run_checked(mut cmd: Command, what: &str) -> Result<String> {
    let o = cmd.output().with_context(|| format!("running {what}"))?;
    if !o.status.success() {
        let err = String::from_utf8_lossy(&o.stderr);
        bail!(
            "{what} failed ({}): {}",
            o.status,
            err.trim().trim_start_matches("main: ")
        );
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// `petasos run OUT/ -i ... -o DIR`: the interpreter's conventions (output_N.pb or .npy).
pub fn run(
    dir: &Path,
    inputs: &[PathBuf],
    out: &Path,
    npy: bool,
    threads: Option<usize>,
) -> Result<()> {
    let exe = artifact_main(dir)?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut cmd = Command::new(&exe);
    cmd.arg("--weights").arg(dir.join("weights.bin"));
    for i in inputs {
        cmd.arg("-i").arg(i);
    }
    cmd.arg("-o").arg(out);
    if npy {
        cmd.arg("--npy");
    }
    if let Some(t) = threads {
        cmd.arg("--threads").arg(t.to_string());
    }
    if is_profiled(dir) {
        cmd.arg("--profile-dir").arg(dir);
    }
    let stdout = run_checked(cmd, &format!("{}", exe.display()))?;
    print!("{stdout}");
    for i in 0.. {
        let p = out.join(format!("output_{i}.{}", if npy { "npy" } else { "pb" }));
        if !p.is_file() {
            break;
        }
        let t = read_tensor_file(&p)?;
        println!(
            "output {i}: {} {:?} -> {}",
            t.dtype(),
            t.shape(),
            p.display()
        );
    }
    Ok(())
}

/// `petasos bench OUT/`: seeded inputs, warm-up, timed runs; the last line is `median_ms=<v>`.
pub fn bench(
    dir: &Path,
    threads: Option<usize>,
    runs: usize,
    warmup: usize,
    seed: u64,
) -> Result<()> {
    let exe = artifact_main(dir)?;
    let mut cmd = Command::new(&exe);
    cmd.arg("--weights")
        .arg(dir.join("weights.bin"))
        .arg("--random")
        .arg(seed.to_string())
        .arg("--warmup")
        .arg(warmup.to_string())
        .arg("--runs")
        .arg(runs.max(1).to_string());
    if let Some(t) = threads {
        cmd.arg("--threads").arg(t.to_string());
    }
    if is_profiled(dir) {
        cmd.arg("--profile-dir").arg(dir);
    }
    let stdout = run_checked(cmd, &format!("{}", exe.display()))?;
    let mut ms: Vec<f64> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("run_ms="))
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    if ms.is_empty() {
        bail!("{} printed no timings", exe.display());
    }
    ms.sort_by(|a, b| a.total_cmp(b));
    let n = ms.len();
    let median = if n % 2 == 1 {
        ms[n / 2]
    } else {
        0.5 * (ms[n / 2 - 1] + ms[n / 2])
    };
    println!(
        "runs={n} min_ms={:.4} max_ms={:.4} threads={}",
        ms[0],
        ms[n - 1],
        threads.map_or("default".to_string(), |t| t.to_string())
    );
    for l in stdout.lines().filter(|l| l.starts_with("profile_")) {
        println!("{l}");
    }
    if is_profiled(dir) {
        println!(
            "profile: {} and {}",
            dir.join("trace.json").display(),
            dir.join("ops.csv").display()
        );
    }
    println!("median_ms={median:.4}");
    Ok(())
}
