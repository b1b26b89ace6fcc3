//! Index selection on constant tensors, the arithmetic of weight surgery: keep some indices of
//! one axis ([`take`]), or zero some indices of one axis ([`zero`], for the masked model).

use super::segment::PruneError;
use ndarray::Axis;
use petasos_ir::map_data;
use petasos_ir::tensor::Data;
use petasos_ir::Tensor;

/// `t` with only the indices `idx` of `axis`, in that order. Errors (naming `what`) when the
/// axis or an index is out of range.
pub fn take(t: &Tensor, axis: usize, idx: &[usize], what: &str) -> Result<Tensor, PruneError> {
    let bad = |msg: String| PruneError::Surgery {
        name: what.to_string(),
        msg,
    };
    let dim = *t
        .shape()
        .get(axis)
        .ok_or_else(|| bad(format!("axis {axis} of a rank-{} tensor", t.rank())))?;
    if let Some(&i) = idx.iter().find(|&&i| i >= dim) {
        return Err(bad(format!("index {i} on an axis of {dim}")));
    }
    let data = map_data!(t.data(), a => a.select(Axis(axis), idx));
    Ok(Tensor::from_data(t.dtype(), data)?)
}

/// `t` with the indices of `axis` not in `keep` set to zero (numeric tensors only).
pub fn zero(t: &Tensor, axis: usize, keep: &[usize], what: &str) -> Result<Tensor, PruneError> {
    let bad = |msg: String| PruneError::Surgery {
        name: what.to_string(),
        msg,
    };
    let dim = *t
        .shape()
        .get(axis)
        .ok_or_else(|| bad(format!("axis {axis} of a rank-{} tensor", t.rank())))?;
    let mut kept = vec![false; dim];
    for &i in keep {
        if i >= dim {
            return Err(bad(format!("index {i} on an axis of {dim}")));
        }
        kept[i] = true;
    }
    let data = match t.data() {
        Data::F(a) => {
            let mut a = a.clone();
            for (i, mut lane) in a.axis_iter_mut(Axis(axis)).enumerate() {
                if !kept[i] {
                    lane.fill(0.0);
                }
            }
            Data::F(a)
        }
        Data::I(a) => {
            let mut a = a.clone();
            for (i, mut lane) in a.axis_iter_mut(Axis(axis)).enumerate() {
                if !kept[i] {
                    lane.fill(0);
                }
            }
            Data::I(a)
        }
        _ => return Err(bad(format!("cannot zero a {} tensor", t.dtype()))),
    };
    Ok(Tensor::from_data(t.dtype(), data)?)
}
