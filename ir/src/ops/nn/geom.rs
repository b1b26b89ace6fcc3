//! Sliding-window geometry shared by convolutions and pools: attributes, padding, output sizes.

use crate::onnx::attrs::NodeCtx;
use crate::op::{Attr, InferCx};
use crate::shape::{Dim, Shape};
use crate::{eval_err, Result};
use serde::{Deserialize, Serialize};

/// The window attributes of Conv-like and pool ops, as written in the model (defaults resolved
/// at evaluation time, when the spatial rank is known).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct WinAttrs {
    pub auto_pad: String,
    pub kernel_shape: Option<Vec<i64>>,
    pub pads: Option<Vec<i64>>,
    pub strides: Option<Vec<i64>>,
    pub dilations: Option<Vec<i64>>,
}

fn positive(cx: &NodeCtx<'_>, name: &str, v: &Option<Vec<i64>>) -> Result<()> {
    if v.as_ref().is_some_and(|v| v.iter().any(|&x| x <= 0)) {
        return Err(cx.invalid(name, "values must be positive"));
    }
    Ok(())
}

impl WinAttrs {
    /// Reads `auto_pad`, `kernel_shape`, `pads`, `strides`, `dilations`.
    pub fn read(cx: &NodeCtx<'_>) -> Result<WinAttrs> {
        let auto_pad = cx.s("auto_pad", "NOTSET")?;
        if !matches!(
            auto_pad.as_str(),
            "NOTSET" | "SAME_UPPER" | "SAME_LOWER" | "VALID"
        ) {
            return Err(cx.invalid(
                "auto_pad",
                "must be NOTSET, SAME_UPPER, SAME_LOWER or VALID",
            ));
        }
        let a = WinAttrs {
            auto_pad,
            kernel_shape: cx.ints("kernel_shape")?,
            pads: cx.ints("pads")?,
            strides: cx.ints("strides")?,
            dilations: cx.ints("dilations")?,
        };
        positive(cx, "kernel_shape", &a.kernel_shape)?;
        positive(cx, "strides", &a.strides)?;
        positive(cx, "dilations", &a.dilations)?;
        if a.pads.as_ref().is_some_and(|p| p.iter().any(|&x| x < 0)) {
            return Err(cx.invalid("pads", "negative pads are not supported"));
        }
        if a.pads.as_ref().is_some_and(|p| p.len() % 2 != 0) {
            return Err(cx.invalid("pads", "must hold a begin and an end value per axis"));
        }
        Ok(a)
    }

    /// The attributes for export.
    pub fn push(&self, v: &mut Vec<(&'static str, Attr)>) {
        if self.auto_pad != "NOTSET" {
            v.push(("auto_pad", Attr::Str(self.auto_pad.clone())));
        }
        if let Some(k) = &self.kernel_shape {
            v.push(("kernel_shape", Attr::Ints(k.clone())));
        }
        if let Some(p) = &self.pads {
            v.push(("pads", Attr::Ints(p.clone())));
        }
        if let Some(s) = &self.strides {
            v.push(("strides", Attr::Ints(s.clone())));
        }
        if let Some(d) = &self.dilations {
            v.push(("dilations", Attr::Ints(d.clone())));
        }
    }

    fn list(v: &Option<Vec<i64>>, n: usize, default: usize, what: &str) -> Result<Vec<usize>> {
        match v {
            None => Ok(vec![default; n]),
            Some(v) if v.len() == n => Ok(v.iter().map(|&x| x.max(0) as usize).collect()),
            Some(v) => Err(eval_err!(
                "{what} has {} values but the input has {n} spatial axes",
                v.len()
            )),
        }
    }

    /// Kernel shape: the attribute, else `w_kernel` (the weight's spatial dims).
    pub fn kernel(&self, n: usize, w_kernel: Option<&[usize]>) -> Result<Vec<usize>> {
        match (&self.kernel_shape, w_kernel) {
            (Some(_), _) => Self::list(&self.kernel_shape, n, 1, "kernel_shape"),
            (None, Some(k)) if k.len() == n => Ok(k.to_vec()),
            _ => Err(eval_err!("kernel_shape is required")),
        }
    }

    /// Resolves the window over input spatial sizes `inp`.
    pub fn geom(&self, inp: &[usize], k: Vec<usize>, ceil_mode: bool) -> Result<Geom> {
        let n = inp.len();
        let s = Self::list(&self.strides, n, 1, "strides")?;
        let d = Self::list(&self.dilations, n, 1, "dilations")?;
        let pads = match &self.pads {
            None => vec![0; 2 * n],
            Some(p) if p.len() == 2 * n => p.iter().map(|&x| x.max(0) as usize).collect(),
            Some(p) => {
                return Err(eval_err!(
                    "pads has {} values but the input has {n} spatial axes",
                    p.len()
                ))
            }
        };
        if k.len() != n {
            return Err(eval_err!(
                "kernel has {} axes but the input has {n} spatial axes",
                k.len()
            ));
        }
        let mut g = Geom {
            inp: inp.to_vec(),
            out: vec![0; n],
            k: k.clone(),
            s: s.clone(),
            d: d.clone(),
            pb: vec![0; n],
            pe: vec![0; n],
        };
        for i in 0..n {
            let ke = (k[i].max(1) - 1) * d[i] + 1;
            match self.auto_pad.as_str() {
                "SAME_UPPER" | "SAME_LOWER" => {
                    let out = inp[i].div_ceil(s[i]);
                    let total = ((out.max(1) - 1) * s[i] + ke).saturating_sub(inp[i]);
                    let (a, b) = (total / 2, total - total / 2);
                    (g.pb[i], g.pe[i]) = if self.auto_pad == "SAME_UPPER" {
                        (a, b)
                    } else {
                        (b, a)
                    };
                    g.out[i] = out;
                }
                _ => {
                    if self.auto_pad == "NOTSET" {
                        g.pb[i] = pads[i];
                        g.pe[i] = pads[i + n];
                    }
                    let span = inp[i] + g.pb[i] + g.pe[i];
                    if span < ke {
                        return Err(eval_err!(
                            "window of extent {ke} does not fit in padded size {span} on spatial axis {i}"
                        ));
                    }
                    let num = span - ke;
                    let mut out = if ceil_mode {
                        num.div_ceil(s[i]) + 1
                    } else {
                        num / s[i] + 1
                    };
                    // The last window must start inside the input or its begin padding.
                    if ceil_mode && (out - 1) * s[i] >= inp[i] + g.pb[i] {
                        out -= 1;
                    }
                    g.out[i] = out;
                }
            }
        }
        Ok(g)
    }

    /// Symbolic output spatial dims, for shape inference.
    pub fn infer_out(
        &self,
        cx: &InferCx<'_>,
        inp: &[Dim],
        k: Option<&[usize]>,
        ceil_mode: bool,
    ) -> Shape {
        let n = inp.len();
        if let (Some(known), Some(k)) = (crate::shape::shape_known(inp), k) {
            if let Ok(g) = self.geom(&known, k.to_vec(), ceil_mode) {
                return g.out.iter().map(|&o| Dim::from(o)).collect();
            }
        }
        let s = Self::list(&self.strides, n, 1, "strides").unwrap_or_else(|_| vec![1; n]);
        match (self.auto_pad.as_str(), k) {
            ("SAME_UPPER" | "SAME_LOWER", _) => inp
                .iter()
                .zip(&s)
                .map(|(d, &s)| d.ceil_div(&Dim::from(s)))
                .collect(),
            (_, Some(k)) if !ceil_mode && k.len() == n => {
                let d =
                    Self::list(&self.dilations, n, 1, "dilations").unwrap_or_else(|_| vec![1; n]);
                let pads = match &self.pads {
                    Some(p) if p.len() == 2 * n && self.auto_pad == "NOTSET" => {
                        p.iter().map(|&x| x.max(0) as usize).collect()
                    }
                    _ => vec![0; 2 * n],
                };
                (0..n)
                    .map(|i| {
                        let ke = (k[i].max(1) - 1) * d[i] + 1;
                        inp[i]
                            .add(&Dim::from(pads[i] + pads[i + n]))
                            .sub(&Dim::from(ke))
                            .floor_div(&Dim::from(s[i]))
                            .add(&Dim::Known(1))
                    })
                    .collect()
            }
            _ => cx.fresh_shape(n),
        }
    }
}

/// A resolved sliding window over concrete spatial sizes.
#[derive(Clone, Debug)]
pub struct Geom {
    pub inp: Vec<usize>,
    pub out: Vec<usize>,
    pub k: Vec<usize>,
    pub s: Vec<usize>,
    pub d: Vec<usize>,
    pub pb: Vec<usize>,
    pub pe: Vec<usize>,
}

/// Splits a flat row-major index into coordinates.
pub fn unflatten(mut i: usize, dims: &[usize], out: &mut [usize]) {
    for (j, &d) in dims.iter().enumerate().rev() {
        let d = d.max(1);
        out[j] = i % d;
        i /= d;
    }
}

impl Geom {
    pub fn kvol(&self) -> usize {
        self.k.iter().product()
    }
    pub fn in_vol(&self) -> usize {
        self.inp.iter().product()
    }
    pub fn out_vol(&self) -> usize {
        self.out.iter().product()
    }

    /// The taps of output position `o` (flat): `(kernel index, input flat offset)` for every
    /// kernel position that lands inside the input. Returns how many kernel positions land
    /// inside the padded input (begin pad + input + end pad).
    pub fn taps(&self, o: usize, taps: &mut Vec<(usize, usize)>) -> usize {
        let n = self.inp.len();
        taps.clear();
        let mut oc = vec![0; n];
        let mut kc = vec![0; n];
        unflatten(o, &self.out, &mut oc);
        let mut padded = 0;
        for ki in 0..self.kvol() {
            unflatten(ki, &self.k, &mut kc);
            let mut inside_pad = true;
            let mut inside = true;
            let mut off = 0;
            for j in 0..n {
                let p = oc[j] * self.s[j] + kc[j] * self.d[j];
                if p >= self.inp[j] + self.pb[j] + self.pe[j] {
                    inside_pad = false;
                }
                if p < self.pb[j] || p - self.pb[j] >= self.inp[j] {
                    inside = false;
                } else {
                    off = off * self.inp[j] + (p - self.pb[j]);
                }
            }
            if inside_pad {
                padded += 1;
            }
            if inside {
                taps.push((ki, off));
            }
        }
        padded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pads: Vec<i64>, strides: Vec<i64>) -> WinAttrs {
        WinAttrs {
            auto_pad: "NOTSET".into(),
            pads: Some(pads),
            strides: Some(strides),
            ..Default::default()
        }
    }

    #[test]
    fn ceil_mode_drops_window_starting_in_end_pad() {
        // in 4, k 3, s 2, pads (1, 1): floor gives 2; ceil gives 3 (the 3rd window starts at
        // padded position 4, still inside the input).
        let a = attrs(vec![1, 1], vec![2]);
        assert_eq!(a.geom(&[4], vec![3], false).unwrap().out, vec![2]);
        assert_eq!(a.geom(&[4], vec![3], true).unwrap().out, vec![3]);
        // in 5, k 2: ceil would give 4, but the 4th window starts at padded position 6 =
        // in + begin pad, entirely in the end padding, so it is dropped.
        assert_eq!(a.geom(&[5], vec![2], true).unwrap().out, vec![3]);
    }

    #[test]
    fn same_lower_pads_more_at_the_start() {
        let mut a = attrs(vec![], vec![1]);
        a.pads = None;
        a.auto_pad = "SAME_LOWER".into();
        let g = a.geom(&[5], vec![4], false).unwrap();
        assert_eq!((g.out[0], g.pb[0], g.pe[0]), (5, 2, 1));
        let mut t = Vec::new();
        assert_eq!(g.taps(0, &mut t), 4);
        assert_eq!(t, vec![(2, 0), (3, 1)]);
    }
}
