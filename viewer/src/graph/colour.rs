//! Metric -> colour: a perceptual (viridis-like) ramp, linear or log-scaled.

use egui::Color32;

/// Control points of the ramp (viridis sampled at 0, 1/8, ..., 1), dark purple to yellow.
const RAMP: [[u8; 3]; 9] = [
    [68, 1, 84],
    [71, 44, 122],
    [59, 81, 139],
    [44, 113, 142],
    [33, 144, 141],
    [39, 173, 129],
    [92, 200, 99],
    [170, 220, 50],
    [253, 231, 37],
];

/// The ramp's colour at `t` in `[0, 1]` (clamped; NaN gives the low end).
pub fn ramp(t: f32) -> Color32 {
    let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
    let x = t * (RAMP.len() - 1) as f32;
    let i = (x.floor() as usize).min(RAMP.len() - 2);
    let f = x - i as f32;
    let (a, b) = (RAMP[i], RAMP[i + 1]);
    let mix = |k: usize| (a[k] as f32 + (b[k] as f32 - a[k] as f32) * f).round() as u8;
    Color32::from_rgb(mix(0), mix(1), mix(2))
}

/// Colours for per-node metric values on a linear scale from the smallest to the largest finite
/// value. Non-finite values get `None`; if all finite values are equal they all get the middle
/// colour.
pub fn metric_colours(values: &[f64]) -> Vec<Option<Color32>> {
    metric_colours_scaled(values, false)
}

/// Like [`metric_colours`]; with `log` the scale is logarithmic over the positive values
/// (values `<= 0` then get the low end of the ramp).
pub fn metric_colours_scaled(values: &[f64], log: bool) -> Vec<Option<Color32>> {
    let map = |v: f64| -> Option<f64> {
        if !v.is_finite() {
            None
        } else if log {
            Some(if v > 0.0 { v.ln() } else { f64::NEG_INFINITY })
        } else {
            Some(v)
        }
    };
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values
        .iter()
        .filter_map(|&v| map(v))
        .filter(|v| v.is_finite())
    {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    values
        .iter()
        .map(|&v| {
            let m = map(v)?;
            if !lo.is_finite() || !m.is_finite() {
                return Some(ramp(0.0));
            }
            let t = if hi > lo { (m - lo) / (hi - lo) } else { 0.5 };
            Some(ramp(t as f32))
        })
        .collect()
}
