//! Copy plans: the building block of the data-movement lowerings (Transpose, Slice, Concat,
//! Split, Expand, Tile, Pad, DepthToSpace, constant-index Gather...).
//!
//! A [`CopyPlan`] describes `dst[dst_off + sum_i dst_i(m_i)] = src[src_off + sum_i src_i(m_i)]`
//! for every multi-index `m` of a static loop shape, where each axis contributes an affine
//! offset (`m_i * stride`) or, on the source side, an entry of a static offset table. The
//! plan is simplified (size-1 axes dropped, adjacent axes merged, arithmetic tables turned
//! into strides) and emitted as plain nested C loops whose innermost contiguous run becomes
//! one `memcpy` — so a copy of contiguous runs costs one call per run, never an element loop.

use super::{LowerCx, LowerError};
use std::fmt::Write as _;

/// Where one loop axis reads its source offset from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Src {
    /// `m * stride` elements (stride may be 0 or negative).
    Stride(i64),
    /// `table[m]` elements (one entry per index of the axis).
    Table(Vec<i64>),
}

/// One loop axis: its size, destination stride and source offset rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Axis {
    pub n: usize,
    pub dst: i64,
    pub src: Src,
}

/// A copy of elements between two tensors (offsets and strides in elements).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyPlan {
    pub axes: Vec<Axis>,
    pub dst_off: i64,
    pub src_off: i64,
}

/// Row-major strides of `shape` as `i64`.
pub fn strides(shape: &[usize]) -> Vec<i64> {
    let mut s = vec![1i64; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1] as i64;
    }
    s
}

impl CopyPlan {
    /// A plan over `shape` writing a contiguous destination, reading the source with
    /// `src_strides` (one per axis) from `src_off`.
    pub fn gather(shape: &[usize], src_off: i64, src_strides: &[i64]) -> CopyPlan {
        let ds = strides(shape);
        CopyPlan {
            axes: shape
                .iter()
                .zip(ds)
                .zip(src_strides)
                .map(|((&n, d), &s)| Axis {
                    n,
                    dst: d,
                    src: Src::Stride(s),
                })
                .collect(),
            dst_off: 0,
            src_off,
        }
    }

    /// Number of elements copied.
    pub fn numel(&self) -> usize {
        self.axes.iter().map(|a| a.n).product()
    }

    /// Drops size-1 axes, turns arithmetic tables into strides, merges adjacent axes that
    /// walk both tensors contiguously with respect to each other.
    pub fn simplify(&mut self) {
        let mut split: Vec<Axis> = Vec::with_capacity(self.axes.len() + 2);
        for a in std::mem::take(&mut self.axes) {
            if let Src::Table(t) = &a.src {
                if let Some(s) = arithmetic(t) {
                    self.src_off += t.first().copied().unwrap_or(0);
                    split.push(Axis {
                        src: Src::Stride(s),
                        ..a
                    });
                    continue;
                }
                // Each entry repeated r times over an arithmetic base (nearest upsampling by
                // an integer factor): two strided axes, the inner one a broadcast.
                if let Some((r, s)) = repeated(t) {
                    self.src_off += t.first().copied().unwrap_or(0);
                    let r64 = r as i64;
                    split.push(Axis {
                        n: a.n / r,
                        dst: a.dst * r64,
                        src: Src::Stride(s),
                    });
                    split.push(Axis {
                        n: r,
                        dst: a.dst,
                        src: Src::Stride(0),
                    });
                    continue;
                }
            }
            split.push(a);
        }
        self.axes = split;
        let mut kept: Vec<Axis> = Vec::with_capacity(self.axes.len());
        for a in std::mem::take(&mut self.axes) {
            if a.n == 1 {
                if let Src::Table(t) = &a.src {
                    self.src_off += t.first().copied().unwrap_or(0);
                }
                continue;
            }
            kept.push(a);
        }
        let mut out: Vec<Axis> = Vec::with_capacity(kept.len());
        for a in kept {
            if let Some(last) = out.last_mut() {
                if let (Src::Stride(so), Src::Stride(si)) = (&last.src, &a.src) {
                    let n = a.n as i64;
                    if last.dst == a.dst * n && *so == si * n {
                        last.n *= a.n;
                        last.dst = a.dst;
                        last.src = Src::Stride(*si);
                        continue;
                    }
                }
            }
            out.push(a);
        }
        self.axes = out;
    }
}

/// `(r, d)` when `t` repeats each entry of an arithmetic sequence of difference `d` exactly
/// `r > 1` times (`[0, 0, 5, 5, 10, 10]`: `(2, 5)`).
fn repeated(t: &[i64]) -> Option<(usize, i64)> {
    let first = *t.first()?;
    let r = t.iter().take_while(|&&v| v == first).count();
    if r < 2 || !t.len().is_multiple_of(r) {
        return None;
    }
    let base: Vec<i64> = t.iter().step_by(r).copied().collect();
    let d = arithmetic(&base)?;
    t.iter()
        .enumerate()
        .all(|(j, &v)| v == first + (j / r) as i64 * d)
        .then_some((r, d))
}

/// The common difference of `t` if it is an arithmetic sequence (length <= 1: 0).
fn arithmetic(t: &[i64]) -> Option<i64> {
    match t {
        [] | [_] => Some(0),
        [a, b, ..] => {
            let d = b - a;
            t.windows(2).all(|w| w[1] - w[0] == d).then_some(d)
        }
    }
}

/// `base + sum(var_i * stride_i)` as a C expression (terms with stride 0 omitted).
fn index_expr(base: i64, terms: &[(String, i64)]) -> String {
    let mut s = String::new();
    for (v, k) in terms {
        if *k == 0 {
            continue;
        }
        if !s.is_empty() {
            s.push_str(" + ");
        }
        if *k == 1 {
            let _ = write!(s, "(ptrdiff_t){v}");
        } else {
            let _ = write!(s, "(ptrdiff_t){v} * {k}");
        }
    }
    if base != 0 || s.is_empty() {
        if s.is_empty() {
            let _ = write!(s, "{base}");
        } else if base > 0 {
            let _ = write!(s, " + {base}");
        } else {
            let _ = write!(s, " - {}", -base);
        }
    }
    s
}

/// Emits `plan` as C: `dst` and `src` are pointer expressions of element type `ctype`.
/// The loops are wrapped in a block of their own (index names may repeat across calls).
pub fn emit_copy_plan(
    cx: &mut LowerCx<'_>,
    dst: &str,
    src: &str,
    ctype: &str,
    plan: &CopyPlan,
) -> Result<(), LowerError> {
    let mut p = plan.clone();
    p.simplify();
    if plan.numel() == 0 {
        return Ok(());
    }
    cx.line("{");
    // Static offset tables, then the loop nest.
    let last = p.axes.len().checked_sub(1);
    let inner_memcpy = last.and_then(|l| {
        let a = &p.axes[l];
        (a.dst == 1 && a.src == Src::Stride(1)).then_some(a.n)
    });
    let loops = if inner_memcpy.is_some() {
        p.axes.len() - 1
    } else {
        p.axes.len()
    };
    for (i, a) in p.axes.iter().enumerate().take(loops) {
        if let Src::Table(t) = &a.src {
            let vals: Vec<String> = t.iter().map(|v| v.to_string()).collect();
            cx.line(format!(
                "static const int64_t tab{i}[{}] = {{{}}};",
                t.len(),
                vals.join(", ")
            ));
        }
    }
    let mut st = Nest {
        dst,
        src,
        ctype,
        inner_memcpy,
        loops,
        dt: Vec::new(),
        sd: Vec::new(),
        tt: Vec::new(),
    };
    st.emit(cx, &p, 0);
    cx.line("}");
    Ok(())
}

/// The loop-nest emitter state: index terms of the open loops.
struct Nest<'s> {
    dst: &'s str,
    src: &'s str,
    ctype: &'s str,
    inner_memcpy: Option<usize>,
    loops: usize,
    dt: Vec<(String, i64)>,
    sd: Vec<(String, i64)>,
    tt: Vec<String>,
}

impl Nest<'_> {
    /// Whether the axes after `q` write one dense destination block.
    fn dense_after(p: &CopyPlan, q: usize) -> bool {
        let mut size = 1i64;
        for a in p.axes[q + 1..].iter().rev() {
            if a.dst != size {
                return false;
            }
            size *= a.n as i64;
        }
        true
    }

    /// Emits the loops `from..loops` and the innermost copy. A broadcast axis (source stride
    /// 0) over a dense block computes the block once and memcpys it for the other indices.
    fn emit(&mut self, cx: &mut LowerCx<'_>, p: &CopyPlan, from: usize) {
        let n_axes = p.axes.len();
        let dup = (from..self.loops).find(|&q| {
            q + 1 < n_axes && p.axes[q].src == Src::Stride(0) && Self::dense_after(p, q)
        });
        let end = dup.unwrap_or(self.loops);
        let (d0, s0, t0) = (self.dt.len(), self.sd.len(), self.tt.len());
        for (i, a) in p.axes.iter().enumerate().take(end).skip(from) {
            let v = format!("i{i}");
            cx.line(format!("for (size_t {v} = 0; {v} < {}; {v}++) {{", a.n));
            self.dt.push((v.clone(), a.dst));
            match &a.src {
                Src::Stride(s) => self.sd.push((v.clone(), *s)),
                Src::Table(_) => self.tt.push(format!("tab{i}[{v}]")),
            }
        }
        match dup {
            None => {
                let d = index_expr(p.dst_off, &self.dt);
                let mut s = index_expr(p.src_off, &self.sd);
                for t in &self.tt {
                    s.push_str(&format!(" + {t}"));
                }
                let (dst, src, ct) = (self.dst, self.src, self.ctype);
                match self.inner_memcpy {
                    Some(n) => cx.line(format!(
                        "memcpy({dst} + ({d}), {src} + ({s}), {n} * sizeof({ct}));"
                    )),
                    None => cx.line(format!("{dst}[{d}] = {src}[{s}];")),
                }
            }
            Some(q) => {
                let a = &p.axes[q];
                let block: usize = p.axes[q + 1..].iter().map(|x| x.n).product();
                cx.line("{");
                self.emit(cx, p, q + 1);
                cx.line("}");
                let base = index_expr(p.dst_off, &self.dt);
                let v = format!("i{q}");
                let (dst, ct) = (self.dst, self.ctype);
                cx.line(format!("for (size_t {v} = 1; {v} < {}; {v}++) {{", a.n));
                cx.line(format!(
                    "memcpy({dst} + ({base} + (ptrdiff_t){v} * {}), {dst} + ({base}), {block} * sizeof({ct}));",
                    a.dst
                ));
                cx.line("}");
            }
        }
        for _ in from..end {
            cx.line("}");
        }
        self.dt.truncate(d0);
        self.sd.truncate(s0);
        self.tt.truncate(t0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concat_like_plan_merges_to_runs() {
        // Copy a [2,3,4] input into channels 5..8 of a [2,10,4] output: 2 runs of 12.
        let mut p = CopyPlan {
            axes: vec![
                Axis {
                    n: 2,
                    dst: 40,
                    src: Src::Stride(12),
                },
                Axis {
                    n: 3,
                    dst: 4,
                    src: Src::Stride(4),
                },
                Axis {
                    n: 4,
                    dst: 1,
                    src: Src::Stride(1),
                },
            ],
            dst_off: 20,
            src_off: 0,
        };
        p.simplify();
        assert_eq!(p.axes.len(), 2);
        assert_eq!(p.axes[1].n, 12);
        assert_eq!(p.axes[0].dst, 40);
    }

    #[test]
    fn arithmetic_tables_become_strides() {
        let mut p = CopyPlan {
            axes: vec![Axis {
                n: 3,
                dst: 1,
                src: Src::Table(vec![4, 5, 6]),
            }],
            dst_off: 0,
            src_off: 0,
        };
        p.simplify();
        assert_eq!(p.axes[0].src, Src::Stride(1));
        assert_eq!(p.src_off, 4);
        let mut q = CopyPlan {
            axes: vec![Axis {
                n: 3,
                dst: 1,
                src: Src::Table(vec![4, 6, 5]),
            }],
            dst_off: 0,
            src_off: 0,
        };
        q.simplify();
        assert!(matches!(q.axes[0].src, Src::Table(_)));
    }

    #[test]
    fn repeated_tables_split_into_a_broadcast_axis() {
        assert_eq!(repeated(&[0, 0, 5, 5, 10, 10]), Some((2, 5)));
        assert_eq!(repeated(&[0, 0, 5, 6]), None);
        assert_eq!(repeated(&[0, 1, 2]), None);
        let mut p = CopyPlan {
            axes: vec![Axis {
                n: 6,
                dst: 1,
                src: Src::Table(vec![3, 3, 4, 4, 5, 5]),
            }],
            dst_off: 0,
            src_off: 0,
        };
        p.simplify();
        assert_eq!(p.src_off, 3);
        assert_eq!(p.axes.len(), 2);
        assert_eq!((p.axes[1].n, p.axes[1].src.clone()), (2, Src::Stride(0)));
    }

    #[test]
    fn index_expressions() {
        assert_eq!(index_expr(0, &[]), "0");
        assert_eq!(
            index_expr(-3, &[("i0".into(), 4), ("i1".into(), 0)]),
            "(ptrdiff_t)i0 * 4 - 3"
        );
    }
}
