//! Helpers shared by the reduce family: grouping values along axes, scattering results back,
//! axis masks and the shapes of reductions.

use crate::shape::Dim;
use crate::tensor::Tensor;
use crate::{eval_err, Result};
use ndarray::{ArrayD, IxDyn};

/// The kept axes (ascending) followed by the reduced axes (ascending).
fn perm_for(reduced: &[bool]) -> Vec<usize> {
    let kept = (0..reduced.len()).filter(|&i| !reduced[i]);
    let red = (0..reduced.len()).filter(|&i| reduced[i]);
    kept.chain(red).collect()
}

/// Product of the dims of `shape` where `mask` is `want`.
fn masked_product(shape: &[usize], mask: &[bool], want: bool) -> usize {
    shape
        .iter()
        .zip(mask)
        .filter(|(_, &m)| m == want)
        .map(|(d, _)| *d)
        .product()
}

/// Values of `a` grouped by position over its kept axes (row-major order of those positions):
/// each group holds the values along the `reduced` axes, row-major. `reduced` has one entry per
/// axis of `a`.
pub fn groups<T: Clone>(a: &ArrayD<T>, reduced: &[bool]) -> Result<Vec<Vec<T>>> {
    if reduced.len() != a.ndim() {
        return Err(eval_err!(
            "internal: axis mask of length {} for rank {}",
            reduced.len(),
            a.ndim()
        ));
    }
    let inner = masked_product(a.shape(), reduced, true);
    let outer = masked_product(a.shape(), reduced, false);
    if inner == 0 {
        return Ok(vec![Vec::new(); outer]);
    }
    let flat: Vec<T> = a
        .view()
        .permuted_axes(IxDyn(&perm_for(reduced)))
        .iter()
        .cloned()
        .collect();
    Ok(flat.chunks(inner).map(|c| c.to_vec()).collect())
}

/// The inverse of [`groups`]: builds an array from one result per group, where the reduced axes
/// now have sizes `out_reduced` (in axis order) and the kept axes keep their sizes from `shape`.
pub fn ungroup<T: Clone>(
    shape: &[usize],
    reduced: &[bool],
    out_reduced: &[usize],
    vals: Vec<Vec<T>>,
) -> Result<ArrayD<T>> {
    let perm = perm_for(reduced);
    let mut pshape: Vec<usize> = (0..shape.len())
        .filter(|&i| !reduced[i])
        .map(|i| shape[i])
        .collect();
    if pshape.len() + out_reduced.len() != shape.len() {
        return Err(eval_err!("internal: ungroup with mismatched reduced axes"));
    }
    pshape.extend_from_slice(out_reduced);
    let flat: Vec<T> = vals.into_iter().flatten().collect();
    let p = ArrayD::from_shape_vec(IxDyn(&pshape), flat)
        .map_err(|e| eval_err!("internal: ungroup to {pshape:?}: {e}"))?;
    let mut inv = vec![0; perm.len()];
    for (i, &p) in perm.iter().enumerate() {
        inv[p] = i;
    }
    Ok(p.permuted_axes(IxDyn(&inv))
        .as_standard_layout()
        .into_owned())
}

/// A mask of the axes named by `axes` (negative ones count from the end) for rank `rank`.
pub fn axes_mask(op: &str, axes: &[i64], rank: usize) -> Result<Vec<bool>> {
    let mut mask = vec![false; rank];
    for &a in axes {
        let r = rank as i64;
        let n = if a < 0 { a + r } else { a };
        if n < 0 || n >= r {
            return Err(eval_err!("{op}: axis {a} is out of range for rank {rank}"));
        }
        mask[n as usize] = true;
    }
    Ok(mask)
}

/// Normalises one axis for rank `rank` (which must be at least 1).
pub fn one_axis(op: &str, axis: i64, rank: usize) -> Result<usize> {
    let r = rank as i64;
    let n = if axis < 0 { axis + r } else { axis };
    if n < 0 || n >= r {
        return Err(eval_err!(
            "{op}: axis {axis} is out of range for rank {rank}"
        ));
    }
    Ok(n as usize)
}

/// The shape after reducing the masked axes (kept as 1 with `keepdims`, else dropped).
pub fn reduced_shape(shape: &[usize], reduced: &[bool], keepdims: bool) -> Vec<usize> {
    shape
        .iter()
        .zip(reduced)
        .filter_map(|(&d, &r)| match (r, keepdims) {
            (false, _) => Some(d),
            (true, true) => Some(1),
            (true, false) => None,
        })
        .collect()
}

/// [`reduced_shape`] over symbolic dims.
pub fn reduced_dims(dims: &[Dim], reduced: &[bool], keepdims: bool) -> Vec<Dim> {
    dims.iter()
        .zip(reduced)
        .filter_map(|(d, &r)| match (r, keepdims) {
            (false, _) => Some(d.clone()),
            (true, true) => Some(Dim::Known(1)),
            (true, false) => None,
        })
        .collect()
}

/// The float values of input `t`, or an error naming the op.
pub fn floats<'t>(op: &str, t: &'t Tensor) -> Result<&'t ArrayD<f64>> {
    t.as_f()
        .map_err(|_| eval_err!("{op}: expects a float tensor, got {}", t.dtype()))
}

/// An array from a shape and flat values, with an error naming the op on mismatch.
pub fn array<T>(op: &str, shape: &[usize], v: Vec<T>) -> Result<ArrayD<T>> {
    ArrayD::from_shape_vec(IxDyn(shape), v).map_err(|e| eval_err!("{op}: shape {shape:?}: {e}"))
}

/// Mean and population variance of a slice (NaN for an empty one).
pub fn mean_var(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    (mean, var)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_and_ungroup_round_trip() {
        let a = ArrayD::from_shape_vec(IxDyn(&[2, 3, 2]), (0..12).collect::<Vec<i32>>()).unwrap();
        let mask = [true, false, true];
        let g = groups(&a, &mask).unwrap();
        assert_eq!(g.len(), 3);
        assert_eq!(g[1], vec![2, 3, 8, 9]);
        let back = ungroup(a.shape(), &mask, &[2, 2], g).unwrap();
        assert_eq!(back, a);
        // Empty reduced set: one empty group per kept position.
        let e = ArrayD::<i32>::zeros(IxDyn(&[2, 0, 4]));
        let g = groups(&e, &[false, true, false]).unwrap();
        assert_eq!(g.len(), 8);
        assert!(g.iter().all(|x| x.is_empty()));
    }

    #[test]
    fn masks_reject_bad_axes() {
        assert_eq!(axes_mask("R", &[-1], 3).unwrap(), vec![false, false, true]);
        assert!(axes_mask("R", &[3], 3).is_err());
        assert!(one_axis("R", -4, 3).is_err());
    }
}
