//! `petasos calibrate`: measures this machine and writes the `host` device profile.
//!
//! What is measured, single-threaded, best (fastest) repetition of each:
//! - **f32 GEMM** at several shapes with the `matrixmultiply` crate's `sgemm` (packed, blocked,
//!   runtime-dispatched AVX/FMA/NEON kernels); the profile's `f32_gflops` is the best shape.
//! - **int8 GEMM**: an i8 × i8 → i32 dot-product GEMM of this module (AVX2 `vpmaddwd` where the
//!   CPU has it, else plain Rust, whose speed depends on the build profile; the source string
//!   records kernel and build).
//! - **f16**: not measured (no native f16 GEMM on the host path; f16 is converted to f32), set
//!   to the f32 figure and marked as such.
//! - **DRAM bandwidth**: `copy_from_slice` (memcpy) between two buffers far larger than the
//!   last-level cache, counting bytes read + written.
//! - **L2 bandwidth**: the same copy within a 128 KiB + 128 KiB working set, repeated.
//! - **Per-call overhead**: a 4×4×4 `sgemm` call (argument checks, dispatch, packing of a
//!   nearly empty problem): what one more kernel call costs on the host.
//! - **Dispatch**: a round trip handing a job to a parked worker thread and waiting for it
//!   (what a thread pool adds per parallel kernel).
//!
//! Energy figures are not measurable here and are written as documented estimates.
//! The run is structured the same every time (same shapes, same keys, same order); only the
//! measured values differ. A full run takes a few seconds, `quick` well under one.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Errors calibrating.
#[derive(Debug, thiserror::Error)]
pub enum CalibrateError {
    /// Writing the profile failed.
    #[error("writing {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Options of [`measure`].
#[derive(Clone, Copy, Debug, Default)]
pub struct CalibrateOptions {
    /// Shorter runs and smaller buffers (for tests): same structure, noisier values.
    pub quick: bool,
}

/// One measured (or estimated) figure and how it was obtained.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    pub value: f64,
    /// How the value was measured or where the estimate comes from.
    pub source: String,
}

/// One GEMM shape's result.
#[derive(Clone, Debug, PartialEq)]
pub struct GemmResult {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    /// Best GFLOP/s (2·m·k·n per run).
    pub gflops: f64,
}

/// Everything [`measure`] found.
#[derive(Clone, Debug)]
pub struct HostMeasurements {
    /// The CPU model, from `/proc/cpuinfo` where available.
    pub cpu: String,
    /// `dev` or `release`: the build the figures come from.
    pub build: &'static str,
    pub gemm_f32: Vec<GemmResult>,
    pub f32_gflops: Figure,
    pub f16_gflops: Figure,
    pub int8_gops: Figure,
    pub dram_gbps: Figure,
    pub l2_gbps: Figure,
    pub launch_us: Figure,
    pub dispatch_us: Figure,
    /// Wall time of the whole calibration, seconds.
    pub seconds: f64,
}

/// The GEMM shapes measured: square ones and a decode-style matrix–vector product.
pub const GEMM_SHAPES: [(usize, usize, usize); 5] = [
    (128, 128, 128),
    (256, 256, 256),
    (512, 512, 512),
    (1024, 1024, 1024),
    (1, 4096, 4096),
];

/// Runs `f` repeatedly for at least `min` (and at least `min_reps` times); returns the fastest
/// run's duration in seconds.
fn best_time(min: Duration, min_reps: usize, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut best = f64::INFINITY;
    let mut reps = 0;
    while reps < min_reps || start.elapsed() < min {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
        reps += 1;
    }
    best.max(1e-9)
}

/// Deterministic pseudo-random fill in [-1, 1).
fn fill(v: &mut [f32], seed: u32) {
    let mut s = seed.wrapping_mul(2_654_435_761).max(1);
    for x in v {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        *x = (s as f32 / u32::MAX as f32) * 2.0 - 1.0;
    }
}

/// `C = A·B` for row-major A (m×k), B (k×n), C (m×n) with `matrixmultiply::sgemm`.
fn sgemm(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
    // SAFETY: the asserts above keep every access of the row-major strides in bounds, and `c`
    // is a unique borrow, so the output does not alias the inputs.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            k as isize,
            1,
            b.as_ptr(),
            n as isize,
            1,
            0.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// `C = A·Bᵀ` for i8 row-major A (m×k) and B (n×k), i32 C: the int8 kernel (AVX2 where the CPU
/// has it, else plain Rust). Returns which kernel ran.
fn igemm(m: usize, k: usize, n: usize, a: &[i8], b: &[i8], c: &mut [i32]) -> &'static str {
    assert!(a.len() >= m * k && b.len() >= n * k && c.len() >= m * n);
    #[cfg(target_arch = "x86_64")]
    if k.is_multiple_of(16) && std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is present (checked just above); bounds are asserted above and every
        // load reads 16 bytes at a multiple of 16 below k within a row.
        unsafe { igemm_avx2(m, k, n, a, b, c) };
        return "AVX2 vpmaddwd";
    }
    for i in 0..m {
        let ar = &a[i * k..(i + 1) * k];
        for j in 0..n {
            let br = &b[j * k..(j + 1) * k];
            c[i * n + j] = ar
                .iter()
                .zip(br)
                .fold(0i32, |s, (&x, &y)| s.wrapping_add(x as i32 * y as i32));
        }
    }
    "plain Rust"
}

/// The AVX2 int8 kernel: i8 widened to i16, `vpmaddwd` into i32 lanes, one row of A against
/// four rows of B at a time. Requires `k % 16 == 0` and the bounds [`igemm`] asserts.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn igemm_avx2(m: usize, k: usize, n: usize, a: &[i8], b: &[i8], c: &mut [i32]) {
    use std::arch::x86_64::*;
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn hsum(v: __m256i) -> i32 {
        let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
        _mm_cvtsi128_si32(s)
    }
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn load(p: *const i8) -> __m256i {
        _mm256_cvtepi8_epi16(_mm_loadu_si128(p as *const __m128i))
    }
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    for i in 0..m {
        let ar = pa.add(i * k);
        let mut j = 0;
        while j + 4 <= n {
            let (b0, b1, b2, b3) = (
                pb.add(j * k),
                pb.add((j + 1) * k),
                pb.add((j + 2) * k),
                pb.add((j + 3) * k),
            );
            let (mut c0, mut c1, mut c2, mut c3) = (
                _mm256_setzero_si256(),
                _mm256_setzero_si256(),
                _mm256_setzero_si256(),
                _mm256_setzero_si256(),
            );
            let mut kk = 0;
            while kk < k {
                let av = load(ar.add(kk));
                c0 = _mm256_add_epi32(c0, _mm256_madd_epi16(av, load(b0.add(kk))));
                c1 = _mm256_add_epi32(c1, _mm256_madd_epi16(av, load(b1.add(kk))));
                c2 = _mm256_add_epi32(c2, _mm256_madd_epi16(av, load(b2.add(kk))));
                c3 = _mm256_add_epi32(c3, _mm256_madd_epi16(av, load(b3.add(kk))));
                kk += 16;
            }
            c[i * n + j] = hsum(c0);
            c[i * n + j + 1] = hsum(c1);
            c[i * n + j + 2] = hsum(c2);
            c[i * n + j + 3] = hsum(c3);
            j += 4;
        }
        while j < n {
            let bj = pb.add(j * k);
            let mut c0 = _mm256_setzero_si256();
            let mut kk = 0;
            while kk < k {
                c0 = _mm256_add_epi32(c0, _mm256_madd_epi16(load(ar.add(kk)), load(bj.add(kk))));
                kk += 16;
            }
            c[i * n + j] = hsum(c0);
            j += 1;
        }
    }
}

/// The CPU model name, or `unknown`.
fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| format!("unknown ({})", std::env::consts::ARCH))
}

/// Measures the host. `progress` receives one line per stage.
pub fn measure(opts: &CalibrateOptions, mut progress: impl FnMut(&str)) -> HostMeasurements {
    let t0 = Instant::now();
    let min = Duration::from_millis(if opts.quick { 5 } else { 250 });
    let build = if cfg!(debug_assertions) {
        "dev"
    } else {
        "release"
    };

    progress("f32 GEMM (matrixmultiply sgemm)");
    let mut gemm_f32 = Vec::new();
    for &(m, k, n) in &GEMM_SHAPES {
        let (m, k, n) = if opts.quick {
            (m.min(128), k.min(256), n.min(256))
        } else {
            (m, k, n)
        };
        let mut a = vec![0f32; m * k];
        let mut b = vec![0f32; k * n];
        let mut c = vec![0f32; m * n];
        fill(&mut a, 1);
        fill(&mut b, 2);
        let t = best_time(min, 3, || {
            sgemm(m, k, n, &a, &b, &mut c);
            black_box(&c);
        });
        gemm_f32.push(GemmResult {
            m,
            k,
            n,
            gflops: 2.0 * (m * k * n) as f64 / t / 1e9,
        });
    }
    let best = gemm_f32
        .iter()
        .fold(&gemm_f32[0], |b, g| if g.gflops > b.gflops { g } else { b });
    let shapes: Vec<String> = gemm_f32
        .iter()
        .map(|g| format!("{}x{}x{}", g.m, g.k, g.n))
        .collect();
    let f32_gflops = Figure {
        value: best.gflops,
        source: format!(
            "measured: matrixmultiply 0.3 sgemm, 1 thread, row-major, best of repeated runs over \
             shapes m x k x n = {}; best shape {}x{}x{}; 2 FLOPs per MAC",
            shapes.join(", "),
            best.m,
            best.k,
            best.n
        ),
    };
    let f16_gflops = Figure {
        value: best.gflops,
        source: "estimate: not measured; the host path converts f16 to f32 and runs f32 GEMM, \
                 so the f32 figure is used"
            .into(),
    };

    progress("int8 GEMM (own dot-product kernel)");
    let s = if opts.quick { 64 } else { 256 };
    let mut af = vec![0f32; s * s];
    fill(&mut af, 3);
    let a: Vec<i8> = af.iter().map(|x| (x * 127.0) as i8).collect();
    let b: Vec<i8> = a.iter().rev().copied().collect();
    let mut c = vec![0i32; s * s];
    let mut kernel = "";
    let t = best_time(min, 3, || {
        kernel = igemm(s, s, s, &a, &b, &mut c);
        black_box(&c);
    });
    let int8_gops = Figure {
        value: 2.0 * (s * s * s) as f64 / t / 1e9,
        source: format!(
            "measured: petasos' i8 x i8 -> i32 dot-product GEMM ({kernel} kernel, {build} \
             build), 1 thread, {s}x{s}x{s}, best of repeated runs; 2 ops per MAC"
        ),
    };

    progress("DRAM bandwidth (memcpy of large buffers)");
    let big = if opts.quick { 8 << 20 } else { 64 << 20 };
    let src = vec![1u8; big];
    let mut dst = vec![2u8; big];
    let t = best_time(min, 3, || {
        dst.copy_from_slice(black_box(&src));
        black_box(&dst);
    });
    let dram_gbps = Figure {
        value: 2.0 * big as f64 / t / 1e9,
        source: format!(
            "measured: copy_from_slice (memcpy) of {} MiB into another {} MiB buffer, 1 thread, \
             best of repeated runs; bytes read + written",
            big >> 20,
            big >> 20
        ),
    };
    drop((src, dst));

    progress("L2 bandwidth (memcpy within 256 KiB)");
    let small = 128 << 10;
    let reps = if opts.quick { 16 } else { 256 };
    let src = vec![1u8; small];
    let mut dst = vec![2u8; small];
    let t = best_time(min, 3, || {
        for _ in 0..reps {
            dst.copy_from_slice(black_box(&src));
            black_box(&dst);
        }
    });
    let l2_gbps = Figure {
        value: 2.0 * (small * reps) as f64 / t / 1e9,
        source: format!(
            "measured: copy_from_slice of 128 KiB into another 128 KiB buffer (256 KiB working \
             set), {reps} times per run, 1 thread, best run; bytes read + written"
        ),
    };

    progress("per-call overhead (4x4x4 sgemm)");
    let calls = if opts.quick { 1_000 } else { 100_000 };
    let a4 = [0.5f32; 16];
    let b4 = [0.25f32; 16];
    let mut c4 = [0f32; 16];
    let t = best_time(min, 3, || {
        for _ in 0..calls {
            sgemm(4, 4, 4, black_box(&a4), black_box(&b4), &mut c4);
            black_box(&c4);
        }
    });
    let launch_us = Figure {
        value: t / calls as f64 * 1e6,
        source: format!(
            "measured: mean time of a 4x4x4 matrixmultiply sgemm call over {calls} calls, best \
             of repeated runs (call, dispatch and packing cost of a kernel doing ~no work)"
        ),
    };

    progress("dispatch overhead (worker thread round trip)");
    let trips = if opts.quick { 100 } else { 5_000 };
    let dispatch = dispatch_round_trip(trips, min);
    let dispatch_us = Figure {
        value: dispatch * 1e6,
        source: format!(
            "measured: mean round trip handing a job to a parked worker thread over a channel \
             and waiting for its reply, {trips} trips, best of repeated runs"
        ),
    };

    HostMeasurements {
        cpu: cpu_name(),
        build,
        gemm_f32,
        f32_gflops,
        f16_gflops,
        int8_gops,
        dram_gbps,
        l2_gbps,
        launch_us,
        dispatch_us,
        seconds: t0.elapsed().as_secs_f64(),
    }
}

/// Mean seconds of one job round trip to a worker thread.
fn dispatch_round_trip(trips: usize, min: Duration) -> f64 {
    use std::sync::mpsc::channel;
    let (job_tx, job_rx) = channel::<u64>();
    let (done_tx, done_rx) = channel::<u64>();
    let worker = std::thread::spawn(move || {
        while let Ok(x) = job_rx.recv() {
            if done_tx.send(x.wrapping_add(1)).is_err() {
                break;
            }
        }
    });
    let t = best_time(min, 3, || {
        for i in 0..trips as u64 {
            if job_tx.send(i).is_err() || done_rx.recv().is_err() {
                break;
            }
        }
    });
    drop(job_tx);
    let _ = worker.join();
    t / trips as f64
}

/// A TOML basic string.
fn toml_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for ch in s.chars() {
        match ch {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => o.push_str(&format!("\\u{:04X}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// Energy estimates: (key, pJ value, source). Not measurable by calibration.
const ENERGY: [(&str, f64, &str); 5] = [
    (
        "pj_per_flop_f32",
        2.3,
        "estimate: Horowitz, 'Computing's energy problem', ISSCC 2014 (45 nm): fp32 multiply \
         3.7 pJ + add 0.9 pJ per FMA = 2 FLOPs; excludes instruction overhead",
    ),
    (
        "pj_per_flop_f16",
        0.75,
        "estimate: Horowitz ISSCC 2014 (45 nm): fp16 multiply 1.1 pJ + add 0.4 pJ per FMA = 2 FLOPs",
    ),
    (
        "pj_per_op_int8",
        0.115,
        "estimate: Horowitz ISSCC 2014 (45 nm): int8 multiply 0.2 pJ + add 0.03 pJ per MAC = 2 ops",
    ),
    (
        "pj_per_byte_dram",
        160.0,
        "estimate: Horowitz ISSCC 2014: DRAM 1.3-2.6 nJ per 64-bit access = 160-325 pJ/byte; \
         lower end taken",
    ),
    (
        "pj_per_byte_onchip",
        12.5,
        "estimate: Horowitz ISSCC 2014: 1 MB SRAM 64-bit read 100 pJ = 12.5 pJ/byte",
    ),
];

/// The `host` device profile as TOML, in the schema of `cost::profile` (every value a
/// `{ value, source }` pair): measured peaks, bandwidths and call overhead, estimated energies
/// and achievable fractions. Extra measurements (per-shape GEMM rates) are kept as comments.
/// This is the one place that names the profile's fields.
pub fn render_profile(m: &HostMeasurements) -> String {
    let mut s = String::new();
    let mut line = |l: String| {
        s.push_str(&l);
        s.push('\n');
    };
    let sourced =
        |v: f64, src: &str| format!("{{ value = {}, source = {} }}", toml_e(v), toml_str(src));
    let energy = |key: &str| -> (f64, &'static str) {
        ENERGY
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|(_, v, src)| (*v, *src))
            .unwrap_or((1.0, "estimate: missing"))
    };
    line("# petasos device profile of this machine, written by `petasos calibrate`.".into());
    line(format!(
        "# {} build, single thread, {:.1} s of calibration.",
        m.build, m.seconds
    ));
    for g in &m.gemm_f32 {
        line(format!(
            "# sgemm m={} k={} n={}: {:.2} GFLOP/s",
            g.m, g.k, g.n, g.gflops
        ));
    }
    line(format!("name = {}", toml_str("host")));
    line(format!(
        "summary = {}",
        toml_str(&format!(
            "{} (measured by petasos calibrate, 1 thread)",
            m.cpu
        ))
    ));
    line(format!("default_unit = {}", toml_str("cpu")));
    line(String::new());
    line("[memory.dram]".into());
    line(format!(
        "bandwidth_bytes_per_s = {}",
        sourced(m.dram_gbps.value * 1e9, &m.dram_gbps.source)
    ));
    let (e, src) = energy("pj_per_byte_dram");
    line(format!("energy_pj_per_byte = {}", sourced(e, src)));
    line(String::new());
    line("[memory.onchip]".into());
    line(format!(
        "bandwidth_bytes_per_s = {}",
        sourced(m.l2_gbps.value * 1e9, &m.l2_gbps.source)
    ));
    let (e, src) = energy("pj_per_byte_onchip");
    line(format!("energy_pj_per_byte = {}", sourced(e, src)));
    line(format!(
        "capacity_bytes = {}",
        sourced(
            1048576.0,
            "estimate: 1 MiB, a typical per-core L2; the bandwidth above was measured on a 128 KiB working set"
        )
    ));
    line(String::new());
    line("[units.cpu]".into());
    line(format!("summary = {}", toml_str("one core, as measured")));
    line(format!(
        "launch_overhead_s = {}",
        sourced(m.launch_us.value * 1e-6, &m.launch_us.source)
    ));
    line(format!(
        "peak_ops_per_s.f32 = {}",
        sourced(m.f32_gflops.value * 1e9, &m.f32_gflops.source)
    ));
    line(format!(
        "peak_ops_per_s.f16 = {}",
        sourced(m.f16_gflops.value * 1e9, &m.f16_gflops.source)
    ));
    line(format!(
        "peak_ops_per_s.int8 = {}",
        sourced(m.int8_gops.value * 1e9, &m.int8_gops.source)
    ));
    for (prec, key) in [
        ("f32", "pj_per_flop_f32"),
        ("f16", "pj_per_flop_f16"),
        ("int8", "pj_per_op_int8"),
    ] {
        let (e, src) = energy(key);
        line(format!("energy_pj_per_op.{prec} = {}", sourced(e, src)));
    }
    line(String::new());
    line("[units.cpu.achievable]".into());
    for (class, c, mem, src) in ACHIEVABLE {
        line(format!(
            "{class} = {{ compute = {c}, memory = {mem}, source = {} }}",
            toml_str(src)
        ));
    }
    s
}

/// Achievable fractions of the measured peaks by op class: (class, compute, memory, source).
/// The peaks are the measured sgemm rate and memcpy bandwidth, so matmul reaches them.
const ACHIEVABLE: [(&str, f64, f64, &str); 8] = [
    (
        "matmul",
        1.0,
        1.0,
        "measured: the peaks are the sgemm rate and memcpy bandwidth themselves",
    ),
    (
        "conv",
        0.8,
        0.9,
        "estimate: convolution lowered to GEMM loses some efficiency to im2col",
    ),
    (
        "attention",
        0.6,
        0.8,
        "estimate: batched small GEMMs plus softmax",
    ),
    (
        "elementwise",
        0.3,
        0.9,
        "estimate: bandwidth-bound, STREAM-like",
    ),
    (
        "normalization",
        0.3,
        0.8,
        "estimate: two passes over the data",
    ),
    ("reduction", 0.3, 0.8, "estimate: one pass, horizontal adds"),
    ("data_movement", 0.2, 0.7, "estimate: strided copies"),
    ("other", 0.1, 0.5, "estimate: unclassified ops, scalar code"),
];

/// A float in TOML's exponent form (`6.5e10`), finite values only.
fn toml_e(v: f64) -> String {
    if v.is_finite() {
        format!("{v:e}")
    } else {
        "0.0".into()
    }
}

/// Writes [`render_profile`] to `path` atomically (a temporary file beside it, then a rename).
pub fn write_profile(path: &Path, m: &HostMeasurements) -> Result<(), CalibrateError> {
    petasos_ir::onnx::export::write_atomic(path, render_profile(m).as_bytes()).map_err(
        |e| match e {
            petasos_ir::Error::Io { path, source } => CalibrateError::Io { path, source },
            other => CalibrateError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::other(other.to_string()),
            },
        },
    )
}
