//! Numpy broadcasting for generated C: per-input strides over the output's shape, collapsed to
//! as few loops as possible, and the loop nest that walks them.
//!
//! Contract: the output is row-major contiguous; each input is row-major contiguous with a
//! shape that broadcasts to the output's (right-aligned, each dim 1 or equal). Size-1 output
//! dims are dropped and adjacent dims merged wherever every input stays affine across them, so
//! equal shapes give one flat loop, a per-channel bias two loops, and so on. The innermost
//! loop has stride 1 or 0 in every input, which gcc vectorises.

use super::LowerCx;

/// A broadcast loop nest: collapsed output dims and each input's element strides over them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bcast {
    /// Collapsed output dims (outermost first); empty for a single element.
    pub dims: Vec<usize>,
    /// Per input, its stride (in elements) along each collapsed dim (0: broadcast).
    pub strides: Vec<Vec<usize>>,
    /// Number of output elements.
    pub numel: usize,
}

/// Row-major strides of `shape`.
fn row_major(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// The numpy broadcast of `shapes`, or a message naming the clashing dims.
pub fn broadcast_shape(shapes: &[&[usize]]) -> Result<Vec<usize>, String> {
    let rank = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out = vec![1usize; rank];
    for s in shapes {
        let off = rank - s.len();
        for (k, &d) in s.iter().enumerate() {
            let o = &mut out[off + k];
            if *o == 1 {
                *o = d;
            } else if d != 1 && d != *o {
                return Err(format!("shapes {shapes:?} do not broadcast"));
            }
        }
    }
    Ok(out)
}

impl Bcast {
    /// The loop nest computing an `out`-shaped result from inputs of shapes `ins`; an error
    /// when an input does not broadcast to `out`.
    pub fn new(out: &[usize], ins: &[&[usize]]) -> Result<Bcast, String> {
        let rank = out.len();
        let mut per_in: Vec<Vec<usize>> = Vec::with_capacity(ins.len());
        for s in ins {
            if s.len() > rank {
                return Err(format!(
                    "input shape {s:?} has a higher rank than output {out:?}"
                ));
            }
            let rm = row_major(s);
            let off = rank - s.len();
            let mut st = vec![0usize; rank];
            for (k, &d) in s.iter().enumerate() {
                let o = out[off + k];
                if d == o {
                    st[off + k] = if d == 1 { 0 } else { rm[k] };
                } else if d != 1 {
                    return Err(format!("input shape {s:?} does not broadcast to {out:?}"));
                }
            }
            per_in.push(st);
        }
        // Drop size-1 dims, then merge each dim into the previous where every input is affine.
        let mut dims: Vec<usize> = Vec::new();
        let mut strides: Vec<Vec<usize>> = vec![Vec::new(); ins.len()];
        for k in 0..rank {
            let d = out[k];
            if d == 1 {
                continue;
            }
            let merge = match dims.last() {
                Some(_) => per_in.iter().zip(&strides).all(|(st, cs)| {
                    cs.last()
                        .is_some_and(|&prev| prev == st[k].saturating_mul(d))
                }),
                None => false,
            };
            if merge {
                if let Some(last) = dims.last_mut() {
                    *last *= d;
                }
                for (cs, st) in strides.iter_mut().zip(&per_in) {
                    if let Some(l) = cs.last_mut() {
                        *l = st[k];
                    }
                }
            } else {
                dims.push(d);
                for (cs, st) in strides.iter_mut().zip(&per_in) {
                    cs.push(st[k]);
                }
            }
        }
        Ok(Bcast {
            numel: out.iter().product(),
            dims,
            strides,
        })
    }

    /// The index expressions (C `size_t`) of the output and of each input inside the nest.
    pub fn indices(&self) -> (String, Vec<String>) {
        let out_idx = index_expr(&row_major(&self.dims));
        let ins = self.strides.iter().map(|s| index_expr(s)).collect();
        (out_idx, ins)
    }

    /// The `for` heads of the nest, outermost first; `outer` replaces the outermost loop's
    /// range `[0, dims[0])` by `[lo, hi)` (C expressions).
    pub fn heads(&self, outer: Option<(&str, &str)>) -> Vec<String> {
        self.dims
            .iter()
            .enumerate()
            .map(|(k, d)| match outer {
                Some((lo, hi)) if k == 0 => {
                    format!("for (size_t i0 = {lo}; i0 < {hi}; i0++) {{")
                }
                _ => format!("for (size_t i{k} = 0; i{k} < {d}; i{k}++) {{"),
            })
            .collect()
    }

    /// Opens the loop nest in `cx`'s body and returns [`Bcast::indices`], valid until
    /// [`Bcast::close`].
    pub fn open(&self, cx: &mut LowerCx<'_>) -> (String, Vec<String>) {
        for h in self.heads(None) {
            cx.line(h);
        }
        self.indices()
    }

    /// Closes the loops opened by [`Bcast::open`].
    pub fn close(&self, cx: &mut LowerCx<'_>) {
        for _ in &self.dims {
            cx.line("}");
        }
    }
}

/// `i0*s0 + i1*s1 + ...` without zero terms (`0` when all are zero).
fn index_expr(strides: &[usize]) -> String {
    let terms: Vec<String> = strides
        .iter()
        .enumerate()
        .filter(|(_, &s)| s != 0)
        .map(|(k, &s)| {
            if s == 1 {
                format!("i{k}")
            } else {
                format!("i{k} * {s}")
            }
        })
        .collect();
    if terms.is_empty() {
        "0".into()
    } else {
        terms.join(" + ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_shapes_collapse_to_one_loop() {
        let b = Bcast::new(&[2, 3, 4], &[&[2, 3, 4], &[2, 3, 4]]).unwrap();
        assert_eq!(b.dims, vec![24]);
        assert_eq!(b.strides, vec![vec![1], vec![1]]);
    }

    #[test]
    fn channel_bias_keeps_two_loops() {
        // x [1, 8, 5, 5] + b [8, 1, 1]: the bias is constant over the inner 25 elements.
        let b = Bcast::new(&[1, 8, 5, 5], &[&[1, 8, 5, 5], &[8, 1, 1]]).unwrap();
        assert_eq!(b.dims, vec![8, 25]);
        assert_eq!(b.strides, vec![vec![25, 1], vec![1, 0]]);
    }

    #[test]
    fn scalar_and_row_broadcast() {
        let b = Bcast::new(&[3, 4], &[&[], &[4], &[3, 1]]).unwrap();
        assert_eq!(b.dims, vec![3, 4]);
        assert_eq!(b.strides, vec![vec![0, 0], vec![0, 1], vec![1, 0]]);
        assert_eq!(index_expr(&b.strides[1]), "i1");
        assert_eq!(index_expr(&b.strides[0]), "0");
        let s = Bcast::new(&[], &[&[], &[1]]);
        assert!(s.is_err(), "rank-1 input into a scalar output");
        let s = Bcast::new(&[1], &[&[], &[1]]).unwrap();
        assert!(s.dims.is_empty());
        assert_eq!(s.numel, 1);
    }

    #[test]
    fn clashing_shapes_are_errors() {
        assert!(Bcast::new(&[3, 4], &[&[3]]).is_err());
        assert!(broadcast_shape(&[&[2, 3], &[4, 3]]).is_err());
        assert_eq!(
            broadcast_shape(&[&[2, 1, 3], &[4, 1], &[]]).unwrap(),
            vec![2, 4, 3]
        );
    }

    #[test]
    fn zero_sized_output() {
        let b = Bcast::new(&[0, 3], &[&[0, 3], &[3]]).unwrap();
        assert_eq!(b.numel, 0);
    }
}
