//! `NonMaxSuppression`: greedy per-class box selection by score and IoU.

use crate::onnx::attrs::NodeCtx;
use crate::op::{opt, req, Attr, EvalCx, InferCx, Op};
use crate::shape::{Dim, ValueType};
use crate::tensor::Tensor;
use crate::{eval_err, DType, Result};
use ndarray::{ArrayD, IxDyn};
use serde::{Deserialize, Serialize};
use std::any::Any;

/// Selects boxes per (batch, class); outputs `(selected, 3)` rows of
/// `(batch, class, box index)`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NonMaxSuppression {
    pub center_point_box: bool,
}

pub fn build_nms(cx: &NodeCtx<'_>) -> Result<Box<dyn Op>> {
    let c = cx.i("center_point_box", 0)?;
    if c != 0 && c != 1 {
        return Err(cx.invalid("center_point_box", "must be 0 or 1"));
    }
    Ok(Box::new(NonMaxSuppression {
        center_point_box: c == 1,
    }))
}

/// A box as `(y1, x1, y2, x2)` with `y1 <= y2`, `x1 <= x2`.
fn corners(b: &[f64], center: bool) -> [f64; 4] {
    if center {
        let (xc, yc, w, h) = (b[0], b[1], b[2], b[3]);
        [yc - h / 2.0, xc - w / 2.0, yc + h / 2.0, xc + w / 2.0]
    } else {
        [
            b[0].min(b[2]),
            b[1].min(b[3]),
            b[0].max(b[2]),
            b[1].max(b[3]),
        ]
    }
}

fn iou(a: &[f64; 4], b: &[f64; 4]) -> f64 {
    let area = |r: &[f64; 4]| (r[2] - r[0]) * (r[3] - r[1]);
    let (aa, ab) = (area(a), area(b));
    if aa <= 0.0 || ab <= 0.0 {
        return 0.0;
    }
    let ih = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let iw = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = ih * iw;
    let union = aa + ab - inter;
    if union <= 0.0 {
        0.0
    } else {
        inter / union
    }
}

#[typetag::serde]
impl Op for NonMaxSuppression {
    fn op_type(&self) -> &str {
        "NonMaxSuppression"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        Ok(vec![ValueType::new(
            DType::I64,
            vec![cx.fresh_dim(), Dim::Known(3)],
        )])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let boxes = req(inputs, 0)?;
        let scores = req(inputs, 1)?;
        let (bs, ss) = (boxes.shape(), scores.shape());
        if bs.len() != 3 || bs[2] != 4 || ss.len() != 3 || ss[0] != bs[0] || ss[2] != bs[1] {
            return Err(eval_err!(
                "NonMaxSuppression: boxes {bs:?} and scores {ss:?} must be (B, N, 4) and (B, C, N)"
            ));
        }
        let max_out = opt(inputs, 2)
            .map(|t| t.scalar_i64())
            .transpose()?
            .unwrap_or(0)
            .max(0) as usize;
        let iou_th = opt(inputs, 3)
            .map(|t| t.scalar_f64())
            .transpose()?
            .unwrap_or(0.0);
        let score_th = opt(inputs, 4).map(|t| t.scalar_f64()).transpose()?;
        let (nb, nc, n) = (ss[0], ss[1], bs[1]);
        let bv: Vec<f64> = boxes.to_f()?.iter().copied().collect();
        let sv: Vec<f64> = scores.to_f()?.iter().copied().collect();
        let mut rows: Vec<i128> = Vec::new();
        for b in 0..nb {
            let bx: Vec<[f64; 4]> = (0..n)
                .map(|i| {
                    corners(
                        &bv[(b * n + i) * 4..(b * n + i + 1) * 4],
                        self.center_point_box,
                    )
                })
                .collect();
            for c in 0..nc {
                let sc = &sv[(b * nc + c) * n..(b * nc + c + 1) * n];
                let mut cand: Vec<usize> = (0..n)
                    .filter(|&i| score_th.is_none_or(|t| sc[i] > t))
                    .collect();
                // Highest score first; ties keep the lower index first.
                cand.sort_by(|&i, &j| sc[j].total_cmp(&sc[i]).then(i.cmp(&j)));
                let mut sel: Vec<usize> = Vec::new();
                for i in cand {
                    if sel.len() >= max_out {
                        break;
                    }
                    if sel.iter().all(|&s| iou(&bx[s], &bx[i]) <= iou_th) {
                        sel.push(i);
                    }
                }
                for i in sel {
                    rows.extend([b as i128, c as i128, i as i128]);
                }
            }
        }
        let k = rows.len() / 3;
        let a = ArrayD::from_shape_vec(IxDyn(&[k, 3]), rows).map_err(|e| eval_err!("{e}"))?;
        Ok(vec![Tensor::int(DType::I64, a)])
    }
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        vec![("center_point_box", Attr::Int(self.center_point_box as i64))]
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_of_flipped_boxes() {
        let a = corners(&[1.0, 1.0, 0.0, 0.0], false);
        let b = corners(&[0.0, 0.0, 1.0, 0.5], false);
        assert!((iou(&a, &b) - 0.5).abs() < 1e-12);
        let c = corners(&[0.5, 0.5, 1.0, 1.0], true);
        assert_eq!(c, [0.0, 0.0, 1.0, 1.0]);
    }
}
