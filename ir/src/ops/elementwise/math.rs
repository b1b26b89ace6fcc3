//! Scalar helpers shared by the elementwise ops: `erf`, stable sigmoid/softplus, an MT19937 RNG.

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

/// MT19937 seeded as numpy's legacy `RandomState(seed)` is, so seeded draws match numpy's.
pub struct Rng {
    mt: Box<[u32; 624]>,
    idx: usize,
}

impl Rng {
    /// A generator for an integer seed (only its low 32 bits count, as in numpy); a fixed seed
    /// when absent.
    pub fn new(seed: Option<i64>) -> Rng {
        let mut mt = Box::new([0u32; 624]);
        let mut s = seed.unwrap_or(0) as u32;
        for (i, m) in mt.iter_mut().enumerate() {
            *m = s;
            s = 1_812_433_253u32
                .wrapping_mul(s ^ (s >> 30))
                .wrapping_add(i as u32 + 1);
        }
        Rng { mt, idx: 624 }
    }
    /// A generator from an ONNX float `seed` attribute (truncated to an integer).
    pub fn from_float_seed(seed: Option<f32>) -> Rng {
        Rng::new(seed.filter(|s| s.is_finite()).map(|s| s as i64))
    }
    fn twist(&mut self) {
        for i in 0..624 {
            let y = (self.mt[i] & 0x8000_0000) | (self.mt[(i + 1) % 624] & 0x7FFF_FFFF);
            let mag = if y & 1 == 1 { 0x9908_B0DF } else { 0 };
            self.mt[i] = self.mt[(i + 397) % 624] ^ (y >> 1) ^ mag;
        }
        self.idx = 0;
    }
    fn next_u32(&mut self) -> u32 {
        if self.idx >= 624 {
            self.twist();
        }
        let mut y = self.mt[self.idx];
        self.idx += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9D2C_5680;
        y ^= (y << 15) & 0xEFC6_0000;
        y ^ (y >> 18)
    }
    /// A uniform value in `[0, 1)` with 53 random bits (numpy's `random_sample`).
    pub fn uniform(&mut self) -> f64 {
        let a = (self.next_u32() >> 5) as f64;
        let b = (self.next_u32() >> 6) as f64;
        (a * 67_108_864.0 + b) / 9_007_199_254_740_992.0
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
    fn rng_matches_numpy_random_state() {
        // numpy.random.RandomState(0).random_sample(3)
        let mut r = Rng::new(Some(0));
        let want = [
            0.548_813_503_927_324_8,
            0.715_189_366_372_419_5,
            0.602_763_376_071_643_9,
        ];
        for w in want {
            assert!((r.uniform() - w).abs() < 1e-15);
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
