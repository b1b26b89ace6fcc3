//! Invoking the system C compiler on an artifact folder: one object per `.c` file (compiled
//! in parallel), then the `main` executable and, optionally, `libmodel.so`.
//!
//! Runtime objects can be cached across compiles (`rt_cache`): an object is keyed by the
//! compiler, the flags and the file's contents, stored atomically, and reused as is — the
//! conformance run compiles only `model.c` per case.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// How to run the compiler.
#[derive(Clone, Debug)]
pub struct CcOptions {
    /// The compiler command (`cc`).
    pub cc: String,
    /// Optimisation/target flags (default `-O3 -march=native`).
    pub cflags: Vec<String>,
    /// Build with per-kernel timing (`-DPT_PROFILE`).
    pub profile: bool,
    /// Also link `libmodel.so`.
    pub shared_lib: bool,
    /// A folder caching runtime objects, if any.
    pub rt_cache: Option<PathBuf>,
    /// Run GEMMs and dense convolutions on this BLAS (`pt_blas.c`) instead of our kernels.
    pub blas: Option<Blas>,
}

/// A system BLAS to link (`--blas`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Blas {
    /// OpenBLAS (`cblas.h`, `-lopenblas`; Debian: `libopenblas-dev`).
    Openblas,
    /// Apple's Accelerate framework (macOS).
    Accelerate,
}

impl Blas {
    /// Preprocessor flags selecting the BLAS in the runtime.
    fn defines(self) -> [&'static str; 2] {
        match self {
            Blas::Openblas => ["-DPT_BLAS", "-DPT_BLAS_OPENBLAS"],
            Blas::Accelerate => ["-DPT_BLAS", "-DPT_BLAS_ACCELERATE"],
        }
    }

    /// Linker arguments.
    fn link(self) -> Vec<String> {
        match self {
            Blas::Openblas => vec!["-lopenblas".into()],
            Blas::Accelerate => vec!["-framework".into(), "Accelerate".into()],
        }
    }

    /// What to install when the build fails for want of it.
    fn hint(self) -> &'static str {
        match self {
            Blas::Openblas => "--blas openblas needs OpenBLAS's cblas.h and libopenblas (Debian/Ubuntu: apt-get install libopenblas-dev; Fedora: dnf install openblas-devel); or drop --blas to use the built-in kernels",
            Blas::Accelerate => "--blas accelerate needs macOS's Accelerate framework (Xcode command-line tools); or drop --blas to use the built-in kernels",
        }
    }
}

impl Default for CcOptions {
    fn default() -> Self {
        CcOptions {
            cc: "cc".into(),
            cflags: default_cflags(),
            profile: false,
            shared_lib: true,
            rt_cache: None,
            blas: None,
        }
    }
}

/// `-O3 -march=native`.
pub fn default_cflags() -> Vec<String> {
    vec!["-O3".into(), "-march=native".into()]
}

/// Flags every compile gets, before the user's.
const BASE_FLAGS: &[&str] = &["-std=c11", "-D_POSIX_C_SOURCE=200809L", "-fPIC", "-pthread"];

/// Compiler failures.
#[derive(Debug, thiserror::Error)]
pub enum CcError {
    #[error("C compiler '{0}' not found (install a C compiler or pass --cc PATH)")]
    NotFound(String),
    #[error("running the C compiler '{cc}': {source}")]
    Spawn { cc: String, source: std::io::Error },
    #[error("the C compiler failed on {what}:\n{stderr}")]
    Failed { what: String, stderr: String },
    #[error("runtime object cache {path}: {source}")]
    Cache {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The first 20 lines of a compiler's stderr.
fn head(stderr: &[u8]) -> String {
    let s = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = s.lines().take(20).collect();
    lines.join("\n")
}

fn spawn(cc: &str, dir: &Path, args: &[String]) -> Result<std::process::Child, CcError> {
    Command::new(cc)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                CcError::NotFound(cc.to_string())
            } else {
                CcError::Spawn {
                    cc: cc.to_string(),
                    source: e,
                }
            }
        })
}

fn wait(child: std::process::Child, what: &str) -> Result<(), CcError> {
    let out = child.wait_with_output().map_err(|e| CcError::Spawn {
        cc: what.to_string(),
        source: e,
    })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(CcError::Failed {
            what: what.to_string(),
            stderr: head(&out.stderr),
        })
    }
}

fn compile_flags(o: &CcOptions) -> Vec<String> {
    let mut f: Vec<String> = BASE_FLAGS.iter().map(|s| s.to_string()).collect();
    f.extend(o.cflags.iter().cloned());
    if o.profile {
        f.push("-DPT_PROFILE".into());
    }
    if let Some(b) = o.blas {
        f.extend(b.defines().iter().map(|s| s.to_string()));
    }
    f
}

/// Builds `main` (and `libmodel.so`) in `dir` from `model.c` and the runtime `.c` files
/// `rt_c` (all present in `dir`). Objects go to `dir` (or the cache).
pub fn build(dir: &Path, rt_c: &[&str], o: &CcOptions) -> Result<(), CcError> {
    build_objects(dir, rt_c, o).map_err(|e| match (e, o.blas) {
        (CcError::Failed { what, stderr }, Some(b))
            if what == "pt_blas.c" || what.starts_with("linking") =>
        {
            CcError::Failed {
                what,
                stderr: format!("{stderr}\nhint: {}", b.hint()),
            }
        }
        (e, _) => e,
    })
}

fn build_objects(dir: &Path, rt_c: &[&str], o: &CcOptions) -> Result<(), CcError> {
    let flags = compile_flags(o);
    let mut jobs = Vec::new();
    let mut objs: Vec<String> = Vec::new();
    let mut to_cache: Vec<(PathBuf, PathBuf)> = Vec::new();
    let sources = std::iter::once("model.c").chain(rt_c.iter().copied());
    for src in sources {
        let stem = src.trim_end_matches(".c");
        let mut obj = format!("{stem}.o");
        if src != "model.c" {
            if let Some(cache) = &o.rt_cache {
                let text = super::rt::file(src).unwrap_or("");
                let key = super::weights::fnv1a(
                    format!("{}\0{}\0{}", o.cc, flags.join("\0"), text).as_bytes(),
                );
                let cached = cache.join(format!("{stem}-{key:016x}.o"));
                if cached.is_file() {
                    objs.push(cached.to_string_lossy().into_owned());
                    continue;
                }
                to_cache.push((dir.join(&obj), cached));
            }
        }
        let mut args = flags.clone();
        args.extend(["-c".into(), src.into(), "-o".into(), obj.clone()]);
        jobs.push((spawn(&o.cc, dir, &args)?, src));
        objs.push(std::mem::take(&mut obj));
    }
    let mut first_err = None;
    for (child, src) in jobs {
        if let Err(e) = wait(child, src) {
            first_err.get_or_insert(e);
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    for (built, cached) in to_cache {
        store(&built, &cached)?;
    }
    let mut libs = vec!["-lm".to_string(), "-pthread".to_string()];
    if let Some(b) = o.blas {
        libs.splice(0..0, b.link());
    }
    let mut link: Vec<String> = o.cflags.clone();
    link.extend(objs.iter().cloned());
    link.extend(["-o".into(), "main".into()]);
    link.extend(libs.iter().cloned());
    let exe = spawn(&o.cc, dir, &link)?;
    let lib = if o.shared_lib {
        let mut args: Vec<String> = o.cflags.clone();
        args.push("-shared".into());
        args.extend(
            objs.iter()
                .filter(|p| !p.ends_with("pt_main.o") && !p.contains("pt_main-"))
                .cloned(),
        );
        args.extend(["-o".into(), "libmodel.so".into()]);
        args.extend(libs.iter().cloned());
        Some(spawn(&o.cc, dir, &args)?)
    } else {
        None
    };
    wait(exe, "linking main")?;
    if let Some(l) = lib {
        wait(l, "linking libmodel.so")?;
    }
    Ok(())
}

/// Copies a freshly built object into the cache atomically.
fn store(built: &Path, cached: &Path) -> Result<(), CcError> {
    let err = |source| CcError::Cache {
        path: cached.to_path_buf(),
        source,
    };
    if let Some(d) = cached.parent() {
        std::fs::create_dir_all(d).map_err(err)?;
    }
    // Unique per process and call: threads of one process (the conformance harness) store the
    // same object concurrently.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = cached.with_extension(format!("tmp{}-{n}", std::process::id()));
    std::fs::copy(built, &tmp).map_err(err)?;
    std::fs::rename(&tmp, cached).map_err(err)
}
