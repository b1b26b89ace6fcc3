//! Line charts of one or more series over a step index (e.g. live bytes per execution step).

use std::path::Path;

use plotters::coord::Shift;
use plotters::drawing::DrawingArea;
use plotters::prelude::*;

use super::format::format_si;
use super::{check_finite, render_to_file, with_canvas, ChartError, FONT, PALETTE};

/// The pixel size (width, height) of every line chart, PNG or SVG.
pub const LINE_CHART_SIZE: (u32, u32) = (1200, 600);

/// Series longer than this are reduced before drawing (see [`decimate`]).
const MAX_POINTS: usize = 4000;
/// Buckets a long series is reduced to; each keeps its minimum and maximum.
const BUCKETS: usize = 1500;

/// Draws `series` (name, values) as lines to `path` (`.png` or `.svg`).
///
/// Point `i` of each series is plotted at x = `i` (the step index); series may differ in
/// length and the x axis spans the longest. Tick labels use [`format_si`] without a unit, so
/// put the unit in `y_label` (e.g. `"live activations (B)"`). A series of one point is drawn
/// as a dot. Series colours cycle through a fixed palette and a legend names every series.
/// Series of more than 4000 points are reduced to the minimum and maximum of each of 1500
/// buckets (in step order), which keeps every peak and trough visible at chart resolution.
///
/// Errors: [`ChartError::EmptyData`] when `series` is empty or any series has no points
/// (naming it), [`ChartError::NonFinite`] naming the series and step of the first NaN or
/// infinite value, plus the format and I/O errors shared by all charts (see the module
/// docs). Nothing is written on error.
pub fn line_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(String, Vec<f64>)],
) -> Result<(), ChartError> {
    super::ChartFormat::from_path(path)?;
    if series.is_empty() {
        return Err(ChartError::EmptyData {
            path: path.to_path_buf(),
            what: "no series to draw".to_string(),
        });
    }
    for (name, values) in series {
        if values.is_empty() {
            return Err(ChartError::EmptyData {
                path: path.to_path_buf(),
                what: format!("series '{name}' has no points"),
            });
        }
        for (i, v) in values.iter().enumerate() {
            check_finite(path, || format!("series '{name}' at step {i}"), *v)?;
        }
    }
    let data = LineData {
        title,
        x_label,
        y_label,
        series: series
            .iter()
            .map(|(name, values)| (name.as_str(), decimate(values)))
            .collect(),
        max_len: series.iter().map(|(_, v)| v.len()).max().unwrap_or(0),
    };
    render_to_file(
        path,
        LINE_CHART_SIZE,
        |canvas| with_canvas!(canvas, root => draw(root, &data)),
    )
}

/// Validated, display-ready line chart input: points are (step, value).
struct LineData<'a> {
    title: &'a str,
    x_label: &'a str,
    y_label: &'a str,
    series: Vec<(&'a str, Vec<(i64, f64)>)>,
    max_len: usize,
}

/// The (step, value) points to draw for `values`: all of them when there are at most
/// 4000; otherwise, for each of 1500 equal step buckets, the bucket's minimum and maximum in
/// step order, plus the first and last point. The global maximum and minimum always survive.
pub(crate) fn decimate(values: &[f64]) -> Vec<(i64, f64)> {
    if values.len() <= MAX_POINTS {
        return values
            .iter()
            .enumerate()
            .map(|(i, &v)| (i as i64, v))
            .collect();
    }
    let n = values.len();
    let mut out = Vec::with_capacity(2 * BUCKETS + 2);
    out.push((0, values[0]));
    for b in 0..BUCKETS {
        let start = b * n / BUCKETS;
        let end = ((b + 1) * n / BUCKETS).max(start + 1);
        let (mut lo_i, mut hi_i) = (start, start);
        for i in start..end {
            if values[i] < values[lo_i] {
                lo_i = i;
            }
            if values[i] > values[hi_i] {
                hi_i = i;
            }
        }
        let (a, b) = if lo_i <= hi_i {
            (lo_i, hi_i)
        } else {
            (hi_i, lo_i)
        };
        out.push((a as i64, values[a]));
        if b != a {
            out.push((b as i64, values[b]));
        }
    }
    out.push(((n - 1) as i64, values[n - 1]));
    out.dedup_by_key(|p| p.0);
    out
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, d: &LineData) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let all = || d.series.iter().flat_map(|(_, pts)| pts.iter().map(|p| p.1));
    let lo = all().fold(0.0f64, f64::min);
    let hi = all().fold(0.0f64, f64::max);
    let (mut y0, mut y1) = if lo == hi { (0.0, 1.0) } else { (lo, hi) };
    // Headroom above the data for the legend.
    let span = y1 - y0;
    y1 += span * 0.15;
    if y0 < 0.0 {
        y0 -= span * 0.05;
    }
    let x1 = (d.max_len as i64 - 1).max(1);

    let mut chart = ChartBuilder::on(root)
        .caption(d.title, (FONT, 22).into_font())
        .margin(15)
        .margin_right(30)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d(0i64..x1, y0..y1)
        .map_err(|e| err(&e))?;
    let x_fmt = |v: &i64| format_si(*v as f64, "");
    let y_fmt = |v: &f64| format_si(*v, "");
    chart
        .configure_mesh()
        .x_desc(d.x_label)
        .y_desc(d.y_label)
        .x_labels(10)
        .y_labels(8)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .label_style((FONT, 13).into_font())
        .axis_desc_style((FONT, 15).into_font())
        .max_light_lines(1)
        .light_line_style(RGBColor(242, 242, 242))
        .bold_line_style(RGBColor(215, 215, 215))
        .draw()
        .map_err(|e| err(&e))?;

    for (k, (name, pts)) in d.series.iter().enumerate() {
        let color = PALETTE[k % PALETTE.len()];
        let style = color.stroke_width(2);
        let anno = if pts.len() == 1 {
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled())))
                .map_err(|e| err(&e))?
        } else {
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), style))
                .map_err(|e| err(&e))?
        };
        anno.label(*name).legend(move |(x, y)| {
            PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
        });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font((FONT, 14).into_font())
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(180, 180, 180))
        .draw()
        .map_err(|e| err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_series_are_kept_whole() {
        let v = [3.0, 1.0, 2.0];
        assert_eq!(decimate(&v), vec![(0, 3.0), (1, 1.0), (2, 2.0)]);
    }

    #[test]
    fn decimation_keeps_extremes_and_order() {
        let n = 100_003;
        let mut v: Vec<f64> = (0..n).map(|i| (i % 97) as f64).collect();
        v[54_321] = 1e9;
        v[77_777] = -5.0;
        let d = decimate(&v);
        assert!(d.len() <= 2 * BUCKETS + 2, "{} points", d.len());
        assert!(d.contains(&(54_321, 1e9)));
        assert!(d.contains(&(77_777, -5.0)));
        assert_eq!(d.first(), Some(&(0, 0.0)));
        assert_eq!(d.last(), Some(&((n - 1) as i64, v[n - 1])));
        assert!(
            d.windows(2).all(|w| w[0].0 < w[1].0),
            "steps strictly increase"
        );
    }
}
