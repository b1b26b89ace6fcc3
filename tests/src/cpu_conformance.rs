//! The node suite through the CPU backend: each case is compiled to C (standard passes,
//! shapes bound from the recorded inputs), built with `cc -O1` (runtime objects cached once
//! per run), run through the generated `main` on the recorded inputs, and compared with the
//! recorded outputs at the suite's tolerances. Integer inputs that decide shapes (a
//! Reshape's shape, a Slice's starts, ...) are frozen to their recorded values
//! (`--freeze-input`) when the shapes are not static otherwise.

use crate::compare::compare;
use crate::conformance::{read_set, ATOL, RTOL};
use petasos_compiler::backend::cpu::{self, CpuOptions};
use petasos_ir::onnx::import_file;
use petasos_ir::onnx::tensor_file::read_tensor_file;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where a case failed, for grouping.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    Import,
    Compile,
    Run,
    Compare,
}

/// A failed case: stage, a short grouping key, the full message.
#[derive(Debug, Clone)]
pub struct Failure {
    pub stage: Stage,
    pub key: String,
    pub msg: String,
}

/// Options of a CPU conformance run.
#[derive(Clone, Debug)]
pub struct CpuRun {
    /// Scratch folder (one subfolder per case, removed after it).
    pub work: PathBuf,
    /// Backend options (compiler, flags, runtime cache).
    pub opts: CpuOptions,
    /// Keep each case's artifact folder (for debugging).
    pub keep: bool,
    /// Freeze shape-deciding integer inputs when the shapes are not static otherwise.
    pub freeze: bool,
}

impl CpuRun {
    /// Defaults: `cc -O1`, runtime objects cached under `work/rt-cache`.
    pub fn new(work: PathBuf) -> CpuRun {
        let mut opts = CpuOptions::default();
        opts.cc.cflags = vec!["-O1".into()];
        opts.cc.shared_lib = false;
        opts.cc.rt_cache = Some(work.join("rt-cache"));
        CpuRun {
            work,
            opts,
            keep: false,
            freeze: true,
        }
    }
}

/// The grouping key of a compile error: `no lowering for op X`, `unsupported: op X ...`.
fn compile_key(msg: &str) -> String {
    if msg.contains("has no static shape") {
        let op = msg
            .split("output of node '")
            .nth(1)
            .and_then(|r| r.split("', ").nth(1))
            .and_then(|r| r.split(')').next())
            .unwrap_or("?");
        return format!("no static shape (output of op {op})");
    }
    if let Some(rest) = msg.split("op '").nth(1) {
        let op = rest.split('\'').next().unwrap_or("");
        if msg.contains("has no CPU lowering") {
            return format!("no lowering for op {op}");
        }
        if msg.contains("is not supported by the CPU backend") {
            return format!("unsupported variant of op {op}");
        }
        return format!("error in op {op}");
    }
    let first: String = msg
        .split([':', '('])
        .next()
        .unwrap_or("")
        .chars()
        .take(60)
        .collect();
    first.trim().to_string()
}

/// Freezes the recorded values of the integer inputs that decide shapes
/// (`specialise::inputs_to_freeze` on the shape-bound graph); false when there are none.
fn freeze_shape_inputs(
    g: &petasos_ir::Graph,
    inputs: &[petasos_ir::Tensor],
    opts: &mut CpuOptions,
) -> bool {
    let mut probe = g.clone();
    if cpu::specialise::specialise(&mut probe, &opts.dims, &opts.input_shapes).is_err() {
        return false;
    }
    let names = cpu::specialise::inputs_to_freeze(&probe);
    for (&n, t) in g.inputs.iter().zip(inputs) {
        let name = &g.g[n].outputs[0].name;
        if names.contains(name) {
            opts.frozen.insert(name.clone(), t.clone());
        }
    }
    !names.is_empty()
}

/// Runs one case through the CPU backend.
pub fn run_case_cpu(case: &Path, run: &CpuRun) -> Result<(), Failure> {
    let fail = |stage: Stage, key: String, msg: String| Failure { stage, key, msg };
    let name = case
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut g = import_file(&case.join("model.onnx"))
        .map_err(|e| fail(Stage::Import, "import".into(), e.to_string()))?;
    let inputs = read_set(case, "input").map_err(|e| fail(Stage::Import, "inputs".into(), e))?;
    let want = read_set(case, "output").map_err(|e| fail(Stage::Import, "outputs".into(), e))?;
    if want.is_empty() {
        return Err(fail(
            Stage::Import,
            "no recorded outputs".into(),
            "the case has no recorded outputs".into(),
        ));
    }
    if inputs.len() != g.inputs.len() {
        return Err(fail(
            Stage::Import,
            "input count".into(),
            format!(
                "{} input files, {} graph inputs",
                inputs.len(),
                g.inputs.len()
            ),
        ));
    }
    let mut opts = run.opts.clone();
    for (&n, t) in g.inputs.iter().zip(&inputs) {
        let shape = t.shape().iter().map(|&d| d as u64).collect();
        opts.input_shapes
            .insert(g.g[n].outputs[0].name.clone(), shape);
    }
    let pristine = g.clone();
    let dir = run.work.join(&name);
    let _ = std::fs::remove_dir_all(&dir);
    let out = dir.join("out");
    let r = (|| {
        let first = cpu::compile(&mut g, &opts, &out);
        let dynamic = matches!(
            first,
            Err(cpu::CpuError::Specialise(
                cpu::specialise::SpecialiseError::Dynamic { .. }
            ))
        );
        // Only when the shapes are not static otherwise: freeze the inputs that decide them.
        let r = if dynamic && run.freeze && freeze_shape_inputs(&pristine, &inputs, &mut opts) {
            let mut g = pristine.clone();
            cpu::compile(&mut g, &opts, &out)
        } else {
            first
        };
        r.map_err(|e| {
            let m = e.to_string();
            fail(Stage::Compile, compile_key(&m), m)
        })?;
        let mut cmd = Command::new(out.join("main"));
        let ds = case.join("test_data_set_0");
        for i in 0..inputs.len() {
            cmd.arg("-i").arg(ds.join(format!("input_{i}.pb")));
        }
        let res = dir.join("res");
        std::fs::create_dir_all(&res).map_err(|e| fail(Stage::Run, "io".into(), e.to_string()))?;
        let o = cmd
            .arg("-o")
            .arg(&res)
            .output()
            .map_err(|e| fail(Stage::Run, "spawn".into(), e.to_string()))?;
        if !o.status.success() {
            let m = String::from_utf8_lossy(&o.stderr).into_owned();
            return Err(fail(
                Stage::Run,
                format!("main exited with {}", o.status),
                m,
            ));
        }
        for (i, w) in want.iter().enumerate() {
            let p = res.join(format!("output_{i}.pb"));
            let got = read_tensor_file(&p)
                .map_err(|e| fail(Stage::Run, "missing output".into(), e.to_string()))?;
            compare(&got, w, RTOL, ATOL).map_err(|e| {
                fail(
                    Stage::Compare,
                    "mismatch".into(),
                    format!("output {i}: {e}"),
                )
            })?;
        }
        Ok(())
    })();
    if !run.keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    r
}

/// Runs many cases on `threads` workers; results in input order.
pub fn run_all_cpu(
    cases: &[PathBuf],
    threads: usize,
    run: &CpuRun,
) -> Vec<(String, Result<(), Failure>)> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    let next = AtomicUsize::new(0);
    let results: Mutex<BTreeMap<usize, Result<(), Failure>>> = Mutex::new(BTreeMap::new());
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= cases.len() {
                    break;
                }
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    run_case_cpu(&cases[i], run)
                }))
                .unwrap_or_else(|_| {
                    Err(Failure {
                        stage: Stage::Compile,
                        key: "panic".into(),
                        msg: "panic".into(),
                    })
                });
                if let Ok(mut v) = results.lock() {
                    v.insert(i, r);
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_default();
    cases
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let name = c
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let r = results.remove(&i).unwrap_or_else(|| {
                Err(Failure {
                    stage: Stage::Run,
                    key: "not run".into(),
                    msg: "not run".into(),
                })
            });
            (name, r)
        })
        .collect()
}

/// The allow-list: case names of tests/conformance/allow.txt.
pub fn allow_list() -> std::io::Result<Vec<String>> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance/allow.txt");
    Ok(std::fs::read_to_string(p)?
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect())
}
