//! Generated C loop nests over static N-d windows, shared by the generic (any float dtype,
//! any spatial rank) convolution and pooling lowerings.
//!
//! Loop variables: `o0..` output coordinates, `k0..` kernel coordinates, `p0..` the input
//! coordinate a tap reads (`long`). Every bound is a compile-time constant, so the C compiler
//! sees fixed trip counts.

use super::super::LowerCx;

/// A resolved sliding window over static spatial sizes (as the interpreter's `Geom`).
#[derive(Clone, Debug)]
pub struct Win {
    pub inp: Vec<usize>,
    pub out: Vec<usize>,
    pub k: Vec<usize>,
    pub s: Vec<usize>,
    pub d: Vec<usize>,
    /// Begin pads (may be negative for transposed convolutions).
    pub pb: Vec<i64>,
    /// End pads.
    pub pe: Vec<i64>,
}

impl Win {
    /// Spatial rank.
    pub fn rank(&self) -> usize {
        self.inp.len()
    }
    /// Input spatial volume.
    pub fn in_vol(&self) -> usize {
        self.inp.iter().product()
    }
    /// Output spatial volume.
    pub fn out_vol(&self) -> usize {
        self.out.iter().product()
    }
    /// Kernel volume.
    pub fn k_vol(&self) -> usize {
        self.k.iter().product()
    }
    /// Input `(H, W)` of a 1-D / 2-D window seen as 2-D (1-D: `H = 1`).
    pub fn in_2d(&self) -> (usize, usize) {
        as_2d(&self.inp, 1)
    }
    /// Output `(OH, OW)` of a 1-D / 2-D window seen as 2-D (1-D: `OH = 1`).
    pub fn out_2d(&self) -> (usize, usize) {
        as_2d(&self.out, 1)
    }
    /// `KH, KW, SH, SW, DH, DW, PT, PL, PB, PR` (the fields of the runtime's 2-D conv and pool
    /// descriptors) of a 1-D / 2-D window seen as 2-D (1-D: size, stride and dilation 1 and
    /// no pads along H).
    pub fn taps_2d(&self) -> String {
        let (kh, kw) = as_2d(&self.k, 1);
        let (sh, sw) = as_2d(&self.s, 1);
        let (dh, dw) = as_2d(&self.d, 1);
        let (pt, pl) = as_2d(&self.pb, 0);
        let (pb, pr) = as_2d(&self.pe, 0);
        format!("{kh}, {kw}, {sh}, {sw}, {dh}, {dw}, {pt}, {pl}, {pb}, {pr}")
    }
}

/// `(v[0], v[1])` of a 2-element `v`, `(one, v[0])` of a 1-element one.
fn as_2d<T: Copy>(v: &[T], one: T) -> (T, T) {
    if v.len() == 1 {
        (one, v[0])
    } else {
        (v[0], v[1])
    }
}

/// Row-major flat offset expression of coordinates `{var}0..` over `dims`.
pub fn flat(var: &str, dims: &[usize]) -> String {
    let mut e = String::from("0");
    for (j, d) in dims.iter().enumerate() {
        e = if j == 0 {
            format!("{var}{j}")
        } else {
            format!("({e}) * {d} + {var}{j}")
        };
    }
    e
}

/// Opens one `for` per dim over `{var}j` in `[0, dims[j])`; returns how many to close.
pub fn open_loops(cx: &mut LowerCx<'_>, var: &str, dims: &[usize]) -> usize {
    for (j, d) in dims.iter().enumerate() {
        cx.line(format!(
            "for (long {var}{j} = 0; {var}{j} < {d}; {var}{j}++) {{"
        ));
    }
    dims.len()
}

/// Opens the kernel-tap loops of a forward window (conv / pool) at output `o..`: `p{j}` is
/// the input coordinate; taps outside the input are skipped. Returns loops to close.
pub fn open_taps(cx: &mut LowerCx<'_>, w: &Win) -> usize {
    for j in 0..w.rank() {
        cx.line(format!("for (long k{j} = 0; k{j} < {}; k{j}++) {{", w.k[j]));
        cx.line(format!(
            "long p{j} = o{j} * {} + k{j} * {} - {};",
            w.s[j], w.d[j], w.pb[j]
        ));
        cx.line(format!("if (p{j} < 0 || p{j} >= {}) continue;", w.inp[j]));
    }
    w.rank()
}

/// Opens the tap loops of a transposed window at output `o..`: the taps `k..` whose input
/// coordinate `p{j} = (o{j} + pb{j} - k{j} * d{j}) / s{j}` is integral and inside.
pub fn open_taps_transposed(cx: &mut LowerCx<'_>, w: &Win) -> usize {
    for j in 0..w.rank() {
        cx.line(format!("for (long k{j} = 0; k{j} < {}; k{j}++) {{", w.k[j]));
        cx.line(format!(
            "long t{j} = o{j} + {} - k{j} * {};",
            w.pb[j], w.d[j]
        ));
        cx.line(format!("if (t{j} < 0 || t{j} % {} != 0) continue;", w.s[j]));
        cx.line(format!("long p{j} = t{j} / {};", w.s[j]));
        cx.line(format!("if (p{j} >= {}) continue;", w.inp[j]));
    }
    w.rank()
}

/// Emits `long pc = ...;`: how many kernel positions of output `o..` land inside the padded
/// input (begin pad + input + end pad), a product of per-axis counts.
pub fn padded_count(cx: &mut LowerCx<'_>, w: &Win) {
    cx.line("long pc = 1;");
    for j in 0..w.rank() {
        let end = w.inp[j] as i64 + w.pb[j] + w.pe[j];
        cx.line(format!(
            "{{ long c = 0; for (long k = 0; k < {}; k++) if (o{j} * {} + k * {} < {end}) c++; pc *= c; }}",
            w.k[j], w.s[j], w.d[j]
        ));
    }
}
