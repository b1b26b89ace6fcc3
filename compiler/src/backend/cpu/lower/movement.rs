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
        for a in &mut self.axes {
            if let Src::Table(t) = &a.src {
                if let Some(s) = arithmetic(t) {
                    self.src_off += t.first().copied().unwrap_or(0);
                    a.src = Src::Stride(s);
                }
            }
        }
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
    // Static offset tables.
    let mut src_terms: Vec<(String, i64)> = Vec::new();
    let mut dst_terms: Vec<(String, i64)> = Vec::new();
    let mut tab_terms: Vec<String> = Vec::new();
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
    for (i, a) in p.axes.iter().enumerate().take(loops) {
        let v = format!("i{i}");
        cx.line(format!("for (size_t {v} = 0; {v} < {}; {v}++) {{", a.n));
        dst_terms.push((v.clone(), a.dst));
        match &a.src {
            Src::Stride(s) => src_terms.push((v.clone(), *s)),
            Src::Table(_) => tab_terms.push(format!("tab{i}[{v}]")),
        }
    }
    let d = index_expr(p.dst_off, &dst_terms);
    let mut s = index_expr(p.src_off, &src_terms);
    for t in &tab_terms {
        s.push_str(&format!(" + {t}"));
    }
    match inner_memcpy {
        Some(n) => cx.line(format!(
            "memcpy({dst} + ({d}), {src} + ({s}), {n} * sizeof({ctype}));"
        )),
        None => cx.line(format!("{dst}[{d}] = {src}[{s}];")),
    }
    for _ in 0..loops {
        cx.line("}");
    }
    cx.line("}");
    Ok(())
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
    fn index_expressions() {
        assert_eq!(index_expr(0, &[]), "0");
        assert_eq!(
            index_expr(-3, &[("i0".into(), 4), ("i1".into(), 0)]),
            "(ptrdiff_t)i0 * 4 - 3"
        );
    }
}
