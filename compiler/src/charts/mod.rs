//! Charts for cost reports: horizontal bar charts and line charts, written as PNG or SVG.
//!
//! Built on `plotters` with the `ab_glyph` text renderer and an embedded DejaVu Sans font
//! (see `compiler/assets/fonts/`), so charts render identically on a bare machine with no
//! system fonts or fontconfig. Text is measured with that font for both formats and, in
//! PNGs, drawn by `glyphs` (plotters' own bitmap text misplaces glyphs). The API takes plain
//! labels and numbers so it stays independent of the cost model's types.
//!
//! Contracts shared by every chart function:
//! - The output format follows the file extension, case-insensitively: `.png` (24-bit RGB
//!   bitmap) or `.svg`. Any other extension, or none, is [`ChartError::UnsupportedFormat`].
//! - The chart is rendered in memory, written to a temporary file in the destination folder
//!   and renamed over `path`. On any error no file is left at `path` (an existing file there
//!   is untouched) and the temporary file is removed.
//! - Input is validated before anything is drawn: empty data and NaN or infinite values are
//!   errors naming the chart path and the offending label or series (see each function), and
//!   so are magnitudes above [`MAX_ABS_VALUE`] (1e300), which would overflow the axis range.

mod bar;
mod font;
mod format;
mod glyphs;
mod line;

use std::io::Write;

use glyphs::GlyphText;
use plotters::coord::Shift;
use plotters::drawing::DrawingArea;
use plotters::prelude::{BitMapBackend, IntoDrawingArea, SVGBackend, WHITE};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

pub use bar::{bar_chart, bar_chart_size, MAX_BARS};
pub use format::{ellipsize_middle, format_si, shorten_path, MAX_LABEL_CHARS};
pub use line::{line_chart, LINE_CHART_SIZE};

/// Why a chart could not be written. Every variant names the requested output path.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    /// The path's extension is neither `.png` nor `.svg`.
    #[error("cannot write chart {}: unsupported format (use a .png or .svg file name)", path.display())]
    UnsupportedFormat { path: PathBuf },
    /// There is nothing to draw (no bars, no series, or only empty series).
    #[error("cannot write chart {}: {what}", path.display())]
    EmptyData { path: PathBuf, what: String },
    /// A value is NaN or infinite.
    #[error("cannot write chart {}: {what} is {value}, not a finite number", path.display())]
    NonFinite {
        path: PathBuf,
        what: String,
        value: f64,
    },
    /// A value's magnitude exceeds [`MAX_ABS_VALUE`].
    #[error("cannot write chart {}: {what} is {value:e}, beyond the plottable ±1e300", path.display())]
    OutOfRange {
        path: PathBuf,
        what: String,
        value: f64,
    },
    /// More bars than a readable chart can hold; pass the top N instead.
    #[error("cannot write chart {}: {count} bars, at most {max} fit a readable chart", path.display())]
    TooManyBars {
        path: PathBuf,
        count: usize,
        max: usize,
    },
    /// The drawing library or the PNG encoder failed.
    #[error("cannot render chart {}: {message}", path.display())]
    Render { path: PathBuf, message: String },
    /// Writing the file failed.
    #[error("cannot write chart {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Output format of a chart file, chosen by its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChartFormat {
    Png,
    Svg,
}

impl ChartFormat {
    /// The format for `path`'s extension (case-insensitive), or
    /// [`ChartError::UnsupportedFormat`].
    pub fn from_path(path: &Path) -> Result<Self, ChartError> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("png") => Ok(ChartFormat::Png),
            Some("svg") => Ok(ChartFormat::Svg),
            _ => Err(ChartError::UnsupportedFormat {
                path: path.to_path_buf(),
            }),
        }
    }
}

/// Renders with `draw` on the backend for `path`'s format and writes the result atomically.
///
/// `draw` receives a root drawing area of `size` pixels, already filled white, and returns
/// any plotters error as a string.
fn render_to_file(
    path: &Path,
    size: (u32, u32),
    draw: impl Fn(&Canvas<'_, '_>) -> Result<(), String>,
) -> Result<(), ChartError> {
    let format = ChartFormat::from_path(path)?;
    font::ensure_registered().map_err(|message| ChartError::Render {
        path: path.to_path_buf(),
        message,
    })?;
    let render_err = |message: String| ChartError::Render {
        path: path.to_path_buf(),
        message,
    };
    let font = font::dejavu_sans().ok_or_else(|| {
        render_err("the embedded DejaVu Sans font could not be parsed".to_string())
    })?;
    let bytes = match format {
        ChartFormat::Svg => {
            let mut svg = String::new();
            {
                let root = GlyphText::vector(SVGBackend::with_string(&mut svg, size), font)
                    .into_drawing_area();
                root.fill(&WHITE).map_err(|e| render_err(e.to_string()))?;
                draw(&Canvas::Svg(&root)).map_err(render_err)?;
                root.present().map_err(|e| render_err(e.to_string()))?;
            }
            svg.into_bytes()
        }
        ChartFormat::Png => {
            let (w, h) = size;
            let mut rgb = vec![0u8; w as usize * h as usize * 3];
            {
                let root = GlyphText::pixels(BitMapBackend::with_buffer(&mut rgb, size), font)
                    .into_drawing_area();
                root.fill(&WHITE).map_err(|e| render_err(e.to_string()))?;
                draw(&Canvas::Bitmap(&root)).map_err(render_err)?;
                root.present().map_err(|e| render_err(e.to_string()))?;
            }
            encode_png(&rgb, size).map_err(render_err)?
        }
    };
    write_atomically(path, &bytes)
}

/// The root drawing area of either backend (`'r`: the borrow of the area, `'b`: the
/// backend's borrow of its output buffer); chart code is generic over the backend and
/// dispatches through [`with_canvas!`].
enum Canvas<'r, 'b> {
    Svg(&'r DrawingArea<GlyphText<SVGBackend<'b>>, Shift>),
    Bitmap(&'r DrawingArea<GlyphText<BitMapBackend<'b>>, Shift>),
}

/// Evaluates `$body` with `$root` bound to the root area of whichever backend a [`Canvas`]
/// holds; the body is expanded once per backend, so it may call generic drawing code.
macro_rules! with_canvas {
    ($canvas:expr, $root:ident => $body:expr) => {
        match $canvas {
            $crate::charts::Canvas::Svg($root) => $body,
            $crate::charts::Canvas::Bitmap($root) => $body,
        }
    };
}
pub(crate) use with_canvas;

/// Encodes an 8-bit RGB buffer as PNG.
fn encode_png(rgb: &[u8], (w, h): (u32, u32)) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        // Charts are flat colours plus anti-aliased text: adaptive (per-row) filtering
        // makes the files 2-3x smaller than the default fixed filter.
        enc.set_adaptive_filter(png::AdaptiveFilterType::Adaptive);
        let mut writer = enc.write_header().map_err(|e| e.to_string())?;
        writer.write_image_data(rgb).map_err(|e| e.to_string())?;
        writer.finish().map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// Writes `bytes` to a fresh temporary file next to `path`, then renames it over `path`.
/// On failure the temporary file is removed and `path` is left as it was.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ChartError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let io_err = |source| ChartError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file_name = path.file_name().ok_or_else(|| {
        io_err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the path names no file",
        ))
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{}",
        file_name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        // Best effort: the temporary file may not exist if creating it failed.
        let _ = std::fs::remove_file(&tmp);
        return Err(io_err(e));
    }
    Ok(())
}

/// Largest magnitude a chart value may have: axis ranges (with headroom) must stay finite.
pub const MAX_ABS_VALUE: f64 = 1e300;

/// Checks that `value` is finite and within ±[`MAX_ABS_VALUE`]; the error names `what()`.
fn check_finite(path: &Path, what: impl FnOnce() -> String, value: f64) -> Result<(), ChartError> {
    if !value.is_finite() {
        Err(ChartError::NonFinite {
            path: path.to_path_buf(),
            what: what(),
            value,
        })
    } else if value.abs() > MAX_ABS_VALUE {
        Err(ChartError::OutOfRange {
            path: path.to_path_buf(),
            what: what(),
            value,
        })
    } else {
        Ok(())
    }
}

/// Stroke and fill colours for series and bars, chosen to stay distinguishable in print.
const PALETTE: [plotters::style::RGBColor; 6] = [
    plotters::style::RGBColor(31, 119, 180),
    plotters::style::RGBColor(214, 39, 40),
    plotters::style::RGBColor(44, 160, 44),
    plotters::style::RGBColor(255, 127, 14),
    plotters::style::RGBColor(148, 103, 189),
    plotters::style::RGBColor(140, 86, 75),
];

/// The font family every chart text uses; the embedded font is registered under this name
/// (and under plotters' default `sans-serif`). SVG files carry it as their `font-family`, so
/// viewers use DejaVu Sans where installed and fall back to any sans-serif font.
const FONT: &str = "DejaVu Sans, sans-serif";
