//! Scalar helpers shared by the elementwise ops: `erf`, stable sigmoid/softplus, a small PRNG.

use crate::eval_err;
use crate::Result;

/// The error function, accurate to about 1e-13: its Taylor series near zero and the continued
/// fraction of `erfc` in the tails.
pub fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    let a = x.abs();
    let r = if a < 2.5 {
        // erf(a) = 2/sqrt(pi) * sum_n (-1)^n a^(2n+1) / (n! (2n+1))
        let mut term = a; // (-1)^n a^(2n+1) / n!
        let mut sum = a;
        let a2 = a * a;
        for n in 1..200 {
            term *= -a2 / n as f64;
            let t = term / (2 * n + 1) as f64;
            sum += t;
            if t.abs() < 1e-17 * sum.abs() {
                break;
            }
        }
        sum * std::f64::consts::FRAC_2_SQRT_PI
    } else {
        // erfc(a) = exp(-a^2)/sqrt(pi) / (a + (1/2)/(a + 1/(a + (3/2)/(a + ...))))
        let mut t = a;
        for n in (1..=120).rev() {
            t = a + (n as f64 / 2.0) / t;
        }
        1.0 - (-a * a).exp() / (std::f64::consts::PI.sqrt() * t)
    };
    if x < 0.0 {
        -r
    } else {
        r
    }
}

/// The logistic function, without overflow for large `|x|`.
pub fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// `ln(1 + e^x)`, without overflow for large `x`.
pub fn softplus(x: f64) -> f64 {
    if x > 0.0 {
        x + (-x).exp().ln_1p()
    } else {
        x.exp().ln_1p()
    }
}

/// A splitmix64 generator: small, deterministic for a given seed.
pub struct Rng(u64);

impl Rng {
    /// A generator from an ONNX float `seed` attribute, or a fixed seed when absent.
    pub fn new(seed: Option<f32>) -> Rng {
        Rng(seed.map(|s| s.to_bits() as u64).unwrap_or(0x5EED) ^ 0x9E37_79B9_7F4A_7C15)
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// A uniform value in `[0, 1)`.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Checks that a probability-like ratio lies in `[0, 1]`.
pub fn check_ratio(op: &str, what: &str, r: f64) -> Result<()> {
    if (0.0..=1.0).contains(&r) {
        Ok(())
    } else {
        Err(eval_err!("{op}: {what} must be in [0, 1], got {r}"))
    }
}

/// Evaluates one op outside a graph (for unit tests).
#[cfg(test)]
pub fn eval_op(
    op: &dyn crate::op::Op,
    inputs: &[Option<&crate::tensor::Tensor>],
    num_outputs: usize,
) -> Result<Vec<crate::tensor::Tensor>> {
    struct NoRunner;
    impl crate::op::SubgraphRunner for NoRunner {
        fn run(
            &mut self,
            _g: &crate::graph::Graph,
            _inputs: Vec<crate::tensor::Tensor>,
        ) -> Result<Vec<crate::tensor::Tensor>> {
            Err(eval_err!("no subgraphs in unit tests"))
        }
    }
    let mut runner = NoRunner;
    let mut cx = crate::op::EvalCx {
        num_outputs,
        runner: &mut runner,
    };
    op.eval(&mut cx, inputs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_known_values() {
        let cases = [
            (0.0, 0.0),
            (0.5, 0.520_499_877_813_046_5),
            (1.0, 0.842_700_792_949_714_9),
            (2.0, 0.995_322_265_018_952_7),
            (2.5, 0.999_593_047_982_555),
            (3.0, 0.999_977_909_503_001_4),
            (-1.0, -0.842_700_792_949_714_9),
            (6.0, 1.0),
        ];
        for (x, want) in cases {
            assert!((erf(x) - want).abs() < 1e-13, "erf({x}) = {}", erf(x));
        }
    }

    #[test]
    fn stable_sigmoid_softplus() {
        assert_eq!(sigmoid(-1000.0), 0.0);
        assert_eq!(sigmoid(1000.0), 1.0);
        assert_eq!(softplus(1000.0), 1000.0);
        assert!((softplus(0.0) - 2f64.ln()).abs() < 1e-15);
    }
}
