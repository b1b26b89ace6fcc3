//! Horizontal bar charts: one labelled bar per entry, top to bottom in the order given.

use std::path::Path;

use plotters::coord::Shift;
use plotters::drawing::DrawingArea;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::format::{format_si, shorten_path, MAX_LABEL_CHARS};
use super::{check_finite, render_to_file, with_canvas, ChartError, FONT, PALETTE};

/// The most bars one chart accepts; callers with more pass the top N.
pub const MAX_BARS: usize = 200;

const WIDTH: u32 = 1200;
/// Vertical pixels per bar.
const ROW: u32 = 26;
/// Vertical pixels for the title, the x axis and the margins together.
const CHROME: u32 = 120;
const MIN_HEIGHT: u32 = 240;
/// Widest row label in pixels (42% of the chart width).
const MAX_LABEL_WIDTH: u32 = WIDTH * 42 / 100;

/// The pixel size (width, height) of a bar chart with `n_bars` bars: 1200 wide, 26 pixels per
/// bar plus room for the title and the axis, at least 240 high. SVG files use the same size.
pub fn bar_chart_size(n_bars: usize) -> (u32, u32) {
    let rows = n_bars.min(MAX_BARS) as u32;
    (WIDTH, (CHROME + ROW * rows).max(MIN_HEIGHT))
}

/// Draws a horizontal bar chart of `bars` (label, value) to `path` (`.png` or `.svg`).
///
/// Bars are drawn top to bottom in the order given (sort before calling). Labels too wide
/// for the label column (42% of the chart width) or longer than [`MAX_LABEL_CHARS`] are
/// shortened in the middle by [`shorten_path`], which keeps the first segment, layer
/// indices and the last segment of dotted or slashed layer paths; each bar is annotated
/// with its value and the x axis is ticked, both via [`format_si`] with `unit` (e.g. `"s"`,
/// `"B"`, `"J"`). Values may be negative (bars then extend left of zero) and all-zero data
/// draws empty bars on a 0..1 axis.
///
/// Errors: [`ChartError::EmptyData`] for no bars, [`ChartError::TooManyBars`] above
/// [`MAX_BARS`], [`ChartError::NonFinite`] naming the first NaN/infinite bar, plus the format
/// and I/O errors shared by all charts (see the module docs). Nothing is written on error.
pub fn bar_chart(
    path: &Path,
    title: &str,
    unit: &str,
    bars: &[(String, f64)],
) -> Result<(), ChartError> {
    super::ChartFormat::from_path(path)?;
    if bars.is_empty() {
        return Err(ChartError::EmptyData {
            path: path.to_path_buf(),
            what: "no bars to draw".to_string(),
        });
    }
    if bars.len() > MAX_BARS {
        return Err(ChartError::TooManyBars {
            path: path.to_path_buf(),
            count: bars.len(),
            max: MAX_BARS,
        });
    }
    for (label, value) in bars {
        check_finite(path, || format!("bar '{label}'"), *value)?;
    }
    let data = BarData {
        title,
        unit,
        labels: bars
            .iter()
            .map(|(l, _)| shorten_path(l, |t| t.chars().count() <= MAX_LABEL_CHARS))
            .collect(),
        values: bars.iter().map(|(_, v)| *v).collect(),
    };
    let size = bar_chart_size(bars.len());
    render_to_file(
        path,
        size,
        |canvas| with_canvas!(canvas, root => draw(root, &data)),
    )
}

/// `label` shortened by [`shorten_path`] until `width` of it is at most `max` pixels, with
/// its width; labels that fit are returned whole. A measuring error is returned as is.
fn fit_label(
    label: &str,
    max: u32,
    width: impl Fn(&str) -> Result<u32, String>,
) -> Result<(String, u32), String> {
    // A failed measurement counts as fitting; it is reported by the measurement below.
    let text = shorten_path(label, |t| width(t).map_or(true, |w| w <= max));
    let w = width(&text)?;
    Ok((text, w))
}

/// Validated, display-ready bar chart input.
struct BarData<'a> {
    title: &'a str,
    unit: &'a str,
    labels: Vec<String>,
    values: Vec<f64>,
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, d: &BarData) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let n = d.values.len();
    let label_style = TextStyle::from((FONT, 15).into_font()).color(&BLACK);
    let value_style = TextStyle::from((FONT, 13).into_font()).color(&RGBColor(60, 60, 60));

    // Labels are shortened in the middle until they fit MAX_LABEL_WIDTH; the label area is
    // as wide as the widest.
    let mut labels = Vec::with_capacity(n);
    let mut label_w = 0u32;
    for l in &d.labels {
        let (label, w) = fit_label(l, MAX_LABEL_WIDTH, |t| {
            root.estimate_text_size(t, &label_style)
                .map(|s| s.0)
                .map_err(|e| err(&e))
        })?;
        label_w = label_w.max(w);
        labels.push(label);
    }
    let label_area = label_w + 16;

    let lo = d.values.iter().copied().fold(0.0f64, f64::min);
    let hi = d.values.iter().copied().fold(0.0f64, f64::max);
    let (mut x0, mut x1) = if lo == hi { (0.0, 1.0) } else { (lo, hi) };
    // Headroom for the value annotations at the bar ends.
    let span = x1 - x0;
    if x1 > 0.0 {
        x1 += span * 0.16;
    }
    if x0 < 0.0 {
        x0 -= span * 0.16;
    }

    let mut chart = ChartBuilder::on(root)
        .caption(d.title, (FONT, 22).into_font())
        .margin_top(10)
        .margin_left(10)
        .margin_right(30)
        .margin_bottom(10)
        .x_label_area_size(40)
        .y_label_area_size(label_area)
        .build_cartesian_2d(x0..x1, 0f64..n as f64)
        .map_err(|e| err(&e))?;
    let unit = d.unit;
    let x_fmt = |v: &f64| format_si(*v, unit);
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_labels(8)
        .x_label_formatter(&x_fmt)
        .x_label_style((FONT, 13).into_font())
        .max_light_lines(1)
        .light_line_style(RGBColor(242, 242, 242))
        .bold_line_style(RGBColor(215, 215, 215))
        .draw()
        .map_err(|e| err(&e))?;

    // Bar i (0 = first given) sits in row n-1-i so the first bar is on top.
    let row = |i: usize| (n - 1 - i) as f64;
    let fill = PALETTE[0].mix(0.85).filled();
    chart
        .draw_series(
            d.values
                .iter()
                .enumerate()
                .map(|(i, &v)| Rectangle::new([(0.0, row(i) + 0.15), (v, row(i) + 0.85)], fill)),
        )
        .map_err(|e| err(&e))?;
    // Zero line, so bars of value 0 and negative bars have a reference.
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(0.0, 0.0), (0.0, n as f64)],
            RGBColor(90, 90, 90).stroke_width(1),
        )))
        .map_err(|e| err(&e))?;

    for (i, (label, &v)) in labels.iter().zip(&d.values).enumerate() {
        let (bx, by) = chart.backend_coord(&(v, row(i) + 0.5));
        let (value_pos, value_x) = if v < 0.0 {
            (Pos::new(HPos::Right, VPos::Center), bx - 6)
        } else {
            (Pos::new(HPos::Left, VPos::Center), bx + 6)
        };
        root.draw(&Text::new(
            format_si(v, d.unit),
            (value_x, by),
            value_style.pos(value_pos),
        ))
        .map_err(|e| err(&e))?;
        let plot_left = chart.plotting_area().get_pixel_range().0.start;
        root.draw(&Text::new(
            label.clone(),
            (plot_left - 8, by),
            label_style.pos(Pos::new(HPos::Right, VPos::Center)),
        ))
        .map_err(|e| err(&e))?;
    }
    Ok(())
}
