//! `Det`: determinants of square matrices over the trailing two axes (LU with partial pivoting).

use crate::op::{req, EvalCx, InferCx, Op};
use crate::shape::ValueType;
use crate::tensor::Tensor;
use crate::{eval_err, infer_err, Result};
use ndarray::{ArrayD, IxDyn};
use serde::{Deserialize, Serialize};
use std::any::Any;

/// Determinant of `(..., M, M)` matrices.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Det;

/// Determinant of one row-major `n x n` matrix by Gaussian elimination with partial pivoting.
pub fn det(mut m: Vec<f64>, n: usize) -> f64 {
    let mut d = 1.0;
    for c in 0..n {
        let mut p = c;
        for r in c + 1..n {
            if m[r * n + c].abs() > m[p * n + c].abs() {
                p = r;
            }
        }
        if m[p * n + c] == 0.0 {
            return 0.0;
        }
        if p != c {
            for k in 0..n {
                m.swap(c * n + k, p * n + k);
            }
            d = -d;
        }
        let piv = m[c * n + c];
        d *= piv;
        for r in c + 1..n {
            let f = m[r * n + c] / piv;
            if f != 0.0 {
                for k in c..n {
                    m[r * n + k] -= f * m[c * n + k];
                }
            }
        }
    }
    d
}

#[typetag::serde]
impl Op for Det {
    fn op_type(&self) -> &str {
        "Det"
    }
    fn infer(&self, cx: &InferCx<'_>) -> Result<Vec<ValueType>> {
        let x = cx.input(0)?;
        Ok(vec![match &x.shape {
            Some(s) if s.len() >= 2 => {
                if let (Some(a), Some(b)) = (s[s.len() - 2].known(), s[s.len() - 1].known()) {
                    if a != b {
                        return Err(infer_err!("Det: matrices must be square, got {a}x{b}"));
                    }
                }
                ValueType::new(x.dtype, s[..s.len() - 2].to_vec())
            }
            Some(s) => {
                return Err(infer_err!(
                    "Det: input must have rank >= 2, got {}",
                    s.len()
                ))
            }
            None => ValueType::unranked(x.dtype),
        }])
    }
    fn eval(&self, _cx: &mut EvalCx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = req(inputs, 0)?;
        if !x.dtype().is_float() {
            return Err(eval_err!(
                "Det: input must be a float tensor, got {}",
                x.dtype()
            ));
        }
        let s = x.shape();
        if s.len() < 2 || s[s.len() - 1] != s[s.len() - 2] {
            return Err(eval_err!("Det: input must be (..., M, M), got {s:?}"));
        }
        let n = s[s.len() - 1];
        let batch = &s[..s.len() - 2];
        let v: Vec<f64> = x.to_f()?.iter().copied().collect();
        let out: Vec<f64> = if n == 0 {
            vec![1.0; batch.iter().product()]
        } else {
            v.chunks(n * n).map(|c| det(c.to_vec(), n)).collect()
        };
        let a = ArrayD::from_shape_vec(IxDyn(batch), out).map_err(|e| eval_err!("Det: {e}"))?;
        Ok(vec![Tensor::float(x.dtype(), a)])
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn determinants() {
        assert!((det(vec![1.0, 2.0, 3.0, 4.0], 2) + 2.0).abs() < 1e-12);
        assert_eq!(det(vec![0.0, 1.0, 1.0, 0.0], 2), -1.0);
        assert_eq!(det(vec![1.0, 2.0, 2.0, 4.0], 2), 0.0);
        let d = det(vec![2.0, 0.0, 1.0, 1.0, 3.0, 2.0, 1.0, 1.0, 2.0], 3);
        assert!((d - 6.0).abs() < 1e-12);
    }
}
