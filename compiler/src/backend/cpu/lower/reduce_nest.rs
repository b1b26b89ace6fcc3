//! Helpers shared by the reduce/norm lowerings: loop nests that split a tensor's axes into
//! kept (outer) and reduced (inner) loops, axis normalisation, C literals, and the integer /
//! float conversions the interpreter applies.
//!
//! A [`Nest`] is built from an iteration shape, a mask of reduced axes, and the strides of
//! every tensor the kernel addresses along those axes (0 where a tensor is broadcast or does
//! not have the axis). Adjacent axes of the same class merge into one loop when every tensor
//! is contiguous across them, so a reduction over the last axes is two plain loops.

use super::{CTensor, LowerCx, LowerError};
use petasos_ir::DType;

/// One loop of a [`Nest`].
#[derive(Clone, Debug)]
struct Loop {
    size: usize,
    red: bool,
    /// Stride of each tensor of the nest along this loop.
    strides: Vec<usize>,
}

/// A loop nest over an iteration shape: the kept axes as outer loops (variables `i0`,
/// `i1`, ... in axis order), the reduced ones as inner loops (`r0`, `r1`, ...).
#[derive(Clone, Debug)]
pub struct Nest {
    loops: Vec<Loop>,
}

/// Which loops of a nest an operation concerns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The kept (outer) loops.
    Outer,
    /// The reduced (inner) loops.
    Inner,
}

impl Nest {
    /// A nest over `shape` with `mask[a]` true for the reduced axes; `strides[j][a]` is the
    /// stride of tensor `j` along axis `a`. Axes of size 1 are dropped (their index is always
    /// 0); adjacent axes of one class are merged where every tensor allows it.
    pub fn new(shape: &[usize], mask: &[bool], strides: &[Vec<usize>]) -> Nest {
        let mut loops: Vec<Loop> = Vec::new();
        for (a, &size) in shape.iter().enumerate() {
            if size == 1 {
                continue;
            }
            let red = mask.get(a).copied().unwrap_or(false);
            let st: Vec<usize> = strides
                .iter()
                .map(|s| s.get(a).copied().unwrap_or(0))
                .collect();
            if let Some(last) = loops.last_mut() {
                let mergeable = last.red == red
                    && size != 0
                    && last.size != 0
                    && last
                        .strides
                        .iter()
                        .zip(&st)
                        .all(|(&outer, &inner)| outer == inner * size);
                if mergeable {
                    last.size *= size;
                    last.strides = st;
                    continue;
                }
            }
            loops.push(Loop {
                size,
                red,
                strides: st,
            });
        }
        // Kept loops first, then reduced ones, each in axis order.
        let (mut kept, red): (Vec<Loop>, Vec<Loop>) = loops.into_iter().partition(|l| !l.red);
        kept.extend(red);
        Nest { loops: kept }
    }

    fn part(&self, p: Part) -> impl Iterator<Item = (usize, &Loop)> {
        let want_red = p == Part::Inner;
        let mut k = 0;
        self.loops
            .iter()
            .filter(move |l| l.red == want_red)
            .map(move |l| {
                let r = (k, l);
                k += 1;
                r
            })
    }

    fn var(p: Part, k: usize) -> String {
        match p {
            Part::Outer => format!("i{k}"),
            Part::Inner => format!("r{k}"),
        }
    }

    /// Number of iterations of the loops of `p`.
    pub fn len(&self, p: Part) -> usize {
        self.part(p).map(|(_, l)| l.size).product()
    }

    /// Opens the loops of `p` (each `for` adds one brace to close with [`LowerCx::close`]);
    /// returns how many were opened.
    pub fn open(&self, cx: &mut LowerCx<'_>, p: Part) -> usize {
        let mut n = 0;
        for (k, l) in self.part(p) {
            let v = Nest::var(p, k);
            // `!=` for an empty loop: `< 0` on a size_t draws -Wtype-limits.
            let cmp = if l.size == 0 { "!=" } else { "<" };
            cx.line(format!(
                "for (size_t {v} = 0; {v} {cmp} {}; {v}++) {{",
                l.size
            ));
            n += 1;
        }
        n
    }

    /// The C offset expression of tensor `j` over the loops of `p` (`0` without loops).
    pub fn off(&self, j: usize, p: Part) -> String {
        let terms: Vec<String> = self
            .part(p)
            .filter_map(|(k, l)| {
                let s = l.strides.get(j).copied().unwrap_or(0);
                let v = Nest::var(p, k);
                match s {
                    0 => None,
                    1 => Some(v),
                    s => Some(format!("{v} * {s}")),
                }
            })
            .collect();
        if terms.is_empty() {
            "0".into()
        } else {
            terms.join(" + ")
        }
    }

    /// The offset of tensor `j` over all loops (outer and inner).
    pub fn off_all(&self, j: usize) -> String {
        let (o, i) = (self.off(j, Part::Outer), self.off(j, Part::Inner));
        match (o.as_str(), i.as_str()) {
            ("0", _) => i,
            (_, "0") => o,
            _ => format!("{o} + {i}"),
        }
    }
}

/// Row-major strides of `shape`.
pub fn contiguous(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Strides of a tensor of shape `shape`, broadcast (numpy rules, right-aligned) to an
/// iteration space of rank `rank`: 0 along axes it lacks or has as 1. `None` when it does not
/// broadcast (a dim that is neither 1 nor the iteration's).
pub fn broadcast_strides(shape: &[usize], iter: &[usize]) -> Option<Vec<usize>> {
    if shape.len() > iter.len() {
        return None;
    }
    let own = contiguous(shape);
    let lead = iter.len() - shape.len();
    let mut s = vec![0; iter.len()];
    for (k, (&d, &st)) in shape.iter().zip(&own).enumerate() {
        let a = lead + k;
        if d == iter[a] && d != 1 {
            s[a] = st;
        } else if d != 1 {
            return None;
        }
    }
    Some(s)
}

/// Strides of the output of a reduction of `shape` over `mask`: contiguous over the kept
/// axes (with or without keepdims the order is the same), 0 along the reduced ones.
pub fn reduced_strides(shape: &[usize], mask: &[bool]) -> Vec<usize> {
    let kept: Vec<usize> = shape
        .iter()
        .zip(mask)
        .filter(|(_, &m)| !m)
        .map(|(&d, _)| d)
        .collect();
    let ks = contiguous(&kept);
    let mut out = vec![0; shape.len()];
    let mut k = 0;
    for (a, &m) in mask.iter().enumerate() {
        if !m {
            out[a] = ks.get(k).copied().unwrap_or(0);
            k += 1;
        }
    }
    out
}

/// Normalises `axis` (negative counts from the end) for `rank`.
pub fn norm_axis(cx: &LowerCx<'_>, axis: i64, rank: usize) -> Result<usize, LowerError> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r {
        return Err(cx.invalid(format!("axis {axis} is out of range for rank {rank}")));
    }
    Ok(a as usize)
}

/// A mask of the axes named by `axes` for `rank`.
pub fn axes_mask(cx: &LowerCx<'_>, axes: &[i64], rank: usize) -> Result<Vec<bool>, LowerError> {
    let mut m = vec![false; rank];
    for &a in axes {
        m[norm_axis(cx, a, rank)?] = true;
    }
    Ok(m)
}

/// The integer values of a constant input (axes, k), or an `unsupported` error.
pub fn const_ints(cx: &LowerCx<'_>, t: &CTensor, what: &str) -> Result<Vec<i64>, LowerError> {
    let c = t
        .constant
        .as_ref()
        .ok_or_else(|| cx.unsupported(format!("{what} from a non-constant input")))?;
    c.to_i64_vec()
        .map_err(|e| cx.invalid(format!("{what}: {e}")))
}

/// The integer values of input `slot` of the anchor: its constant, or else the value shape
/// inference derives from static shapes (e.g. `Range(axis, Size(Shape(x)))` of an expanded
/// function), found by re-running inference on a copy of the graph. `None` when neither
/// knows it.
pub fn known_ints(cx: &LowerCx<'_>, slot: usize) -> Option<Vec<i64>> {
    let t = cx.opt_input(slot)?;
    if let Some(c) = &t.constant {
        return c.to_i64_vec().ok();
    }
    let anchor = *cx.nodes().first()?;
    let v = cx.g.node_inputs(anchor).get(slot).copied().flatten()?;
    let mut g = cx.g.clone();
    let order = g.topo_order().ok()?;
    let mut inf = petasos_ir::infer::Inferencer::default();
    for n in order {
        if n == anchor {
            break;
        }
        inf.infer_node(&mut g, n).ok()?;
    }
    inf.value(v).and_then(|c| c.to_i64_vec().ok())
}

/// A C `double` literal of `v` (exact round trip; `INFINITY`/`NAN` for non-finite values).
pub fn c_double(v: f64) -> String {
    if v.is_nan() {
        "NAN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "INFINITY".into()
        } else {
            "(-INFINITY)".into()
        }
    } else {
        let s = format!("{v:?}");
        if s.contains('.') || s.contains('e') || s.contains("inf") {
            format!("({s})")
        } else {
            format!("({s}.0)")
        }
    }
}

/// Whether `d` is a float type the backend computes (f16, bf16, f32, f64).
pub fn is_float(d: DType) -> bool {
    matches!(d, DType::F16 | DType::BF16 | DType::F32 | DType::F64)
}

/// Whether `d` is an integer type the backend stores (8..64 bits, signed or not).
pub fn is_int(d: DType) -> bool {
    matches!(
        d,
        DType::I8
            | DType::I16
            | DType::I32
            | DType::I64
            | DType::U8
            | DType::U16
            | DType::U32
            | DType::U64
    )
}

/// The C constants of an integer type's smallest and largest values.
pub fn int_limits(d: DType) -> Option<(&'static str, &'static str)> {
    Some(match d {
        DType::I8 => ("INT8_MIN", "INT8_MAX"),
        DType::I16 => ("INT16_MIN", "INT16_MAX"),
        DType::I32 => ("INT32_MIN", "INT32_MAX"),
        DType::I64 => ("INT64_MIN", "INT64_MAX"),
        DType::U8 => ("0", "UINT8_MAX"),
        DType::U16 => ("0", "UINT16_MAX"),
        DType::U32 => ("0", "UINT32_MAX"),
        DType::U64 => ("0", "UINT64_MAX"),
        _ => return None,
    })
}

/// Statements storing the `double` expression `v` into integer tensor `y` at `idx` as the
/// interpreter converts floats to ints: NaN -> 0, truncation toward zero, wrap to the width.
pub fn store_double_as_int(y: &CTensor, idx: &str, v: &str) -> String {
    format!(
        "{{ double fv = {v}; fv = isnan(fv) ? 0.0 : trunc(fv); \
         uint64_t u = fv >= 9223372036854775808.0 ? (fv < 18446744073709551616.0 ? (uint64_t)fv : UINT64_MAX) \
         : (fv < -9223372036854775808.0 ? (uint64_t)INT64_MIN : (uint64_t)(int64_t)fv); \
         {}[{idx}] = ({})u; }}",
        y.expr,
        y.ctype()
    )
}

/// An expression of element `idx` of a float tensor as a `double`.
pub fn load_f64(t: &CTensor, idx: &str) -> String {
    format!("(double){}", t.load(idx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_contiguous_axes_of_one_class() {
        // (2, 3, 4) reduced over the last two axes: one kept loop of 2, one reduced of 12.
        let x = contiguous(&[2, 3, 4]);
        let y = reduced_strides(&[2, 3, 4], &[false, true, true]);
        let n = Nest::new(&[2, 3, 4], &[false, true, true], &[x, y]);
        assert_eq!(n.len(Part::Outer), 2);
        assert_eq!(n.len(Part::Inner), 12);
        assert_eq!(n.off(0, Part::Outer), "i0 * 12");
        assert_eq!(n.off(0, Part::Inner), "r0");
        assert_eq!(n.off(1, Part::Outer), "i0");
        assert_eq!(n.off(1, Part::Inner), "0");
    }

    #[test]
    fn middle_axis_reduction_keeps_three_loops() {
        let s = [2, 3, 4];
        let m = [false, true, false];
        let n = Nest::new(&s, &m, &[contiguous(&s), reduced_strides(&s, &m)]);
        assert_eq!(n.off(0, Part::Outer), "i0 * 12 + i1");
        assert_eq!(n.off(1, Part::Outer), "i0 * 4 + i1");
        assert_eq!(n.off(0, Part::Inner), "r0 * 4");
        // Size-1 axes vanish; a broadcast parameter blocks merging where it must.
        let p = broadcast_strides(&[4], &[2, 3, 4]).unwrap();
        assert_eq!(p, vec![0, 0, 1]);
        let n = Nest::new(&s, &[false, true, true], &[contiguous(&s), p]);
        assert_eq!(n.off(1, Part::Inner), "r1");
        assert_eq!(n.len(Part::Inner), 12);
        assert!(broadcast_strides(&[3], &[2, 3, 4]).is_none());
    }

    #[test]
    fn literals_round_trip() {
        assert_eq!(c_double(1.0), "(1.0)");
        assert_eq!(c_double(f64::NEG_INFINITY), "(-INFINITY)");
        let eps = 1e-5f32 as f64;
        let s = c_double(eps);
        let back: f64 = s.trim_matches(|c| c == '(' || c == ')').parse().unwrap();
        assert_eq!(back, eps);
    }
}
