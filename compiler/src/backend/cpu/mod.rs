//! The CPU backend: a graph lowered to portable C11 and compiled with the system C compiler.
//!
//! Pipeline ([`compile`]): specialise shapes (bind symbolic dims; every value static) ->
//! the standard pass pipeline -> schedule (kernels, order, arena offsets from the memory
//! planner) -> weights blob -> lower every kernel to one C function ([`lower`], [`emit`]) ->
//! write the artifact folder in a staging folder -> `cc` -> rename onto `OUT/`.
//!
//! `OUT/` holds `model.c`, `model.h`, the runtime files (`rt/`), `weights.bin`, `plan.json`,
//! `main` and `libmodel.so`. The same graph and options give byte-identical sources.

pub mod artifact;
pub mod cc;
pub mod emit;
pub mod lower;
pub mod rt;
pub mod sanitize;
pub mod schedule;
pub mod specialise;
pub mod weights;

use petasos_ir::Graph;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

pub use cc::{Blas, CcOptions};

/// Errors of the CPU backend.
#[derive(Debug, thiserror::Error)]
pub enum CpuError {
    #[error(transparent)]
    Specialise(#[from] specialise::SpecialiseError),
    #[error("optimisation passes: {0}")]
    Passes(#[from] petasos_passes::PassError),
    #[error("scheduling: {0}")]
    Schedule(#[from] schedule::ScheduleError),
    #[error(transparent)]
    Lower(#[from] lower::LowerError),
    #[error(transparent)]
    Control(#[from] lower::control::ControlError),
    #[error("weights: {0}")]
    Weights(#[from] weights::WeightsError),
    #[error(transparent)]
    Cc(#[from] cc::CcError),
    #[error(transparent)]
    Artifact(#[from] artifact::ArtifactError),
}

/// Options of [`compile`].
#[derive(Clone, Debug)]
pub struct CpuOptions {
    /// Values of symbolic dims (`--dim name=v`).
    pub dims: BTreeMap<String, u64>,
    /// Shapes of inputs by name (`--input-shape name=1x3x224x224`).
    pub input_shapes: BTreeMap<String, Vec<u64>>,
    /// Inputs frozen to a value (`--freeze-input name=FILE.pb`, see [`specialise::freeze`]).
    pub frozen: BTreeMap<String, petasos_ir::Tensor>,
    /// Run the standard pass pipeline first.
    pub passes: bool,
    /// How to run the C compiler.
    pub cc: CcOptions,
    /// Default thread count of the generated `main` (its `--threads` overrides it).
    pub threads: usize,
}

impl Default for CpuOptions {
    fn default() -> Self {
        CpuOptions {
            dims: BTreeMap::new(),
            input_shapes: BTreeMap::new(),
            frozen: BTreeMap::new(),
            passes: true,
            cc: CcOptions::default(),
            threads: 1,
        }
    }
}

/// The generated (not yet compiled) artifact: file name -> bytes, in a fixed order.
#[derive(Debug, Clone)]
pub struct Sources {
    pub files: Vec<(String, Vec<u8>)>,
    /// Runtime `.c` files to compile besides `model.c`.
    pub rt_c: Vec<&'static str>,
    pub report: Report,
}

/// What was compiled.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub model: String,
    pub kernels: usize,
    pub nodes: usize,
    pub arena_bytes: u64,
    pub scratch_bytes: u64,
    pub weights_bytes: u64,
    /// Built with per-kernel timing.
    pub profile: bool,
    /// Default thread count of `main`.
    pub threads: usize,
}

/// `plan.json`: kernels, buffers and sizes.
#[derive(Serialize)]
struct PlanFile<'a> {
    report: &'a Report,
    inputs: Vec<IoEntry>,
    outputs: Vec<IoEntry>,
    kernels: Vec<KernelEntry>,
    buffers: &'a [crate::plan::memory::Buffer],
}

#[derive(Serialize)]
struct IoEntry {
    name: String,
    dtype: String,
    shape: Vec<u64>,
}

#[derive(Serialize)]
struct KernelEntry {
    function: String,
    ops: String,
    node: String,
}

/// Specialises, optimises and lowers `g` to C sources (no compiler run).
pub fn generate(g: &mut Graph, opts: &CpuOptions) -> Result<Sources, CpuError> {
    let frozen = specialise::freeze(g, &opts.frozen)?;
    specialise::specialise(g, &opts.dims, &opts.input_shapes)?;
    if opts.passes {
        petasos_passes::manager::PassManager::standard().run(g)?;
    }
    lower::control::prepare(g, opts.passes)?;
    let guards = lower::control::inline_runtime_ifs(g)?;
    specialise::check_static(g)?;
    let reg = lower::registry();
    let sched = schedule::schedule_guarded(g, &reg, &guards)?;
    let blob = weights::build(g, &sched.constants)?;
    let gen = emit::generate(g, &sched, &reg, &blob, opts.threads, &frozen)?;
    let report = Report {
        model: g.name.clone(),
        kernels: gen.kernels.len(),
        nodes: sched.kernels.iter().map(|k| k.nodes.len()).sum(),
        arena_bytes: sched.plan.arena_bytes,
        scratch_bytes: gen.scratch_bytes,
        weights_bytes: blob.bytes.len() as u64,
        profile: opts.cc.profile,
        threads: opts.threads,
    };
    let io = |name: &str, t: Option<&petasos_ir::ValueType>| IoEntry {
        name: name.to_string(),
        dtype: t.map(|t| t.dtype.to_string()).unwrap_or_default(),
        shape: t
            .and_then(|t| t.shape.as_ref())
            .map(|s| s.iter().map(|d| d.known().unwrap_or(0)).collect())
            .unwrap_or_default(),
    };
    let plan = PlanFile {
        report: &report,
        inputs: g
            .inputs
            .iter()
            .map(|&n| io(&g.g[n].outputs[0].name, Some(&g.g[n].outputs[0].ty)))
            .collect(),
        outputs: g
            .outputs
            .iter()
            .map(|o| io(&o.name, g.value_type(o.value)))
            .collect(),
        kernels: gen
            .kernels
            .iter()
            .map(|(f, o, n)| KernelEntry {
                function: f.clone(),
                ops: o.clone(),
                node: n.clone(),
            })
            .collect(),
        buffers: &sched.plan.buffers,
    };
    let plan_json = serde_json::to_string_pretty(&plan).unwrap_or_default() + "\n";
    let mut files: Vec<(String, Vec<u8>)> = vec![
        ("model.c".into(), gen.model_c.into_bytes()),
        ("model.h".into(), gen.model_h.into_bytes()),
    ];
    for (name, text) in rt::FILES {
        files.push((name.to_string(), text.as_bytes().to_vec()));
    }
    files.push(("weights.bin".into(), blob.bytes));
    files.push((artifact::MARKER.into(), plan_json.into_bytes()));
    let mut rt_c: Vec<&'static str> = rt::CORE
        .iter()
        .copied()
        .filter(|f| f.ends_with(".c"))
        .collect();
    for f in gen.rt.iter().copied().filter(|f| f.ends_with(".c")) {
        if !rt_c.contains(&f) {
            rt_c.push(f);
        }
    }
    if opts.cc.blas.is_some() && rt_c.iter().any(|f| *f == "pt_gemm.c" || *f == "pt_conv.c") {
        rt_c.push("pt_blas.c");
    }
    Ok(Sources {
        files,
        rt_c,
        report,
    })
}

/// Compiles `g` into the artifact folder `out` (replaced atomically; left untouched on error).
pub fn compile(g: &mut Graph, opts: &CpuOptions, out: &Path) -> Result<Report, CpuError> {
    let src = generate(g, opts)?;
    let st = artifact::Staging::new(out)?;
    for (name, bytes) in &src.files {
        st.write(name, bytes)?;
    }
    cc::build(&st.dir, &src.rt_c, &opts.cc)?;
    // Objects are build intermediates, not part of the artifact.
    if let Ok(rd) = std::fs::read_dir(&st.dir) {
        for e in rd.flatten() {
            if e.path().extension().is_some_and(|x| x == "o") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    st.commit()?;
    Ok(src.report)
}
