//! Tensor comparison with the tolerances of the acceptance criteria.

use petasos_ir::tensor::Data;
use petasos_ir::Tensor;

/// Checks `got` against `want`: same dtype and shape; floats within
/// `|got - want| <= atol + rtol * |want|` (NaN equals NaN); everything else exactly.
pub fn compare(got: &Tensor, want: &Tensor, rtol: f64, atol: f64) -> Result<(), String> {
    if got.dtype() != want.dtype() {
        return Err(format!(
            "dtype {} != expected {}",
            got.dtype(),
            want.dtype()
        ));
    }
    if got.shape() != want.shape() {
        return Err(format!(
            "shape {:?} != expected {:?}",
            got.shape(),
            want.shape()
        ));
    }
    match (got.data(), want.data()) {
        (Data::F(g), Data::F(w)) => {
            for (i, (a, b)) in g.iter().zip(w.iter()).enumerate() {
                let ok =
                    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= atol + rtol * b.abs();
                if !ok {
                    return Err(format!("element {i}: got {a}, expected {b}"));
                }
            }
            Ok(())
        }
        (g, w) if g == w => Ok(()),
        (Data::I(g), Data::I(w)) => {
            let i = g
                .iter()
                .zip(w.iter())
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            Err(format!(
                "element {i} differs: got {:?}, expected {:?}",
                g.iter().nth(i),
                w.iter().nth(i)
            ))
        }
        _ => Err("values differ".into()),
    }
}

/// The model-level tolerance: `|got - want| <= rel * max|want| + abs`.
pub fn compare_scaled(got: &Tensor, want: &Tensor, rel: f64, abs: f64) -> Result<(), String> {
    let scale = want
        .to_f64_vec()
        .map(|v| {
            v.iter()
                .fold(0f64, |m, x| if x.is_finite() { m.max(x.abs()) } else { m })
        })
        .unwrap_or(0.0);
    compare(got, want, 0.0, rel * scale + abs)
}
