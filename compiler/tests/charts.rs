//! Chart rendering: PNG and SVG output of bar and line charts, their sizes and content, input
//! validation, and atomic writes. Set `PETASOS_CHART_SAMPLES=DIR` to also keep sample charts
//! in DIR for looking at.

use std::path::{Path, PathBuf};

use petasos_compiler::charts::{
    bar_chart, bar_chart_size, line_chart, ChartError, LINE_CHART_SIZE, MAX_BARS,
};

/// A fresh, empty folder for one test, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("petasos-charts-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Names of the files in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A decoded 8-bit RGB image.
struct Rgb {
    width: u32,
    height: u32,
    pixels: Vec<[u8; 3]>,
}

fn decode_png(path: &Path) -> Rgb {
    let bytes = std::fs::read(path).expect("read png");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().expect("png header");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("png frame");
    assert_eq!(info.color_type, png::ColorType::Rgb);
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let pixels = buf[..info.buffer_size()]
        .chunks_exact(3)
        .map(|c| [c[0], c[1], c[2]])
        .collect();
    Rgb {
        width: info.width,
        height: info.height,
        pixels,
    }
}

impl Rgb {
    fn distinct_colors(&self) -> usize {
        let mut set: Vec<[u8; 3]> = self.pixels.clone();
        set.sort();
        set.dedup();
        set.len()
    }
    /// Fraction of pixels that are not pure white.
    fn ink(&self) -> f64 {
        let n = self
            .pixels
            .iter()
            .filter(|p| **p != [255, 255, 255])
            .count();
        n as f64 / self.pixels.len() as f64
    }
    /// Near-black pixels (text) in columns `x0..x1`.
    fn dark_in_columns(&self, x0: u32, x1: u32) -> usize {
        self.pixels
            .iter()
            .enumerate()
            .filter(|(i, p)| {
                let x = (*i as u32) % self.width;
                x >= x0 && x < x1 && p.iter().all(|&c| c < 90)
            })
            .count()
    }
    /// Pixels within `tol` of `color` in every channel.
    fn count_near(&self, color: [u8; 3], tol: u8) -> usize {
        self.pixels
            .iter()
            .filter(|p| (0..3).all(|k| p[k].abs_diff(color[k]) <= tol))
            .count()
    }
}

fn sample_bars() -> Vec<(String, f64)> {
    vec![
        ("Conv".to_string(), 4.2e-3),
        ("MatMul".to_string(), 1.1e-3),
        ("Relu".to_string(), 2.5e-4),
        ("Add".to_string(), 1.2e-4),
        ("GlobalAveragePool".to_string(), 9.0e-6),
    ]
}

fn sample_series() -> Vec<(String, Vec<f64>)> {
    let live: Vec<f64> = (0..60)
        .map(|i| 1e6 * (1.0 + ((i as f64) / 7.0).sin().abs() * 3.0) + 2e4 * i as f64)
        .collect();
    let peak = live.iter().copied().fold(0.0, f64::max);
    vec![
        ("live activations".to_string(), live),
        ("arena size".to_string(), vec![peak * 1.1; 60]),
    ]
}

#[test]
fn bar_chart_png_has_expected_size_bars_and_text() {
    let dir = TempDir::new("bar-png");
    let path = dir.join("ops.png");
    bar_chart(&path, "Latency by op type", "s", &sample_bars()).expect("render");
    let img = decode_png(&path);
    assert_eq!((img.width, img.height), bar_chart_size(5));
    assert!(
        img.distinct_colors() > 20,
        "{} colours",
        img.distinct_colors()
    );
    let ink = img.ink();
    assert!(ink > 0.02 && ink < 0.6, "ink fraction {ink}");
    // Bar fill: palette blue at 85% over white.
    assert!(img.count_near([65, 139, 191], 6) > 2000, "bar pixels");
    // Row labels are black text left of the plot.
    assert!(img.dark_in_columns(0, 150) > 200, "label text");
    assert_eq!(listing(&dir), vec!["ops.png"], "no temporary files left");
}

#[test]
fn bar_chart_svg_contains_title_labels_and_values() {
    let dir = TempDir::new("bar-svg");
    let path = dir.join("ops.svg");
    let long = "model.layers.27.self_attention.query_key_value_projection.weight_quantized_matmul";
    let mut bars = sample_bars();
    bars.push((long.to_string(), 3.0e-5));
    bars.push(("a<b & c>\"d\"".to_string(), 1.0e-6));
    bar_chart(&path, "Top ops by latency", "s", &bars).expect("render");
    let svg = std::fs::read_to_string(&path).expect("read svg");
    assert!(svg.starts_with("<svg"), "{}", &svg[..60.min(svg.len())]);
    assert!(svg.contains("width=\"1200\""), "width");
    assert!(
        svg.contains(&format!("height=\"{}\"", bar_chart_size(bars.len()).1)),
        "height"
    );
    assert!(svg.contains(">\nTop ops by latency\n<") || svg.contains(">Top ops by latency<"));
    for label in [
        "Conv",
        "MatMul",
        "GlobalAveragePool",
        "4.2 ms",
        "250 µs",
        "9 µs",
    ] {
        assert!(svg.contains(label), "missing {label}");
    }
    // The long path is shortened in the middle by whole segments: the layer index and the
    // op name survive.
    assert!(!svg.contains(long), "long label drawn whole");
    assert!(svg.contains(".27.…"), "layer index kept");
    assert!(svg.contains("model.layers.27.…query_key_value_projection.weight_quantized_matmul"));
    // Markup in labels is escaped.
    assert!(svg.contains("a&lt;b &amp; c&gt;"), "escaped label");
    assert!(!svg.contains("a<b"), "raw markup");
}

#[test]
fn line_chart_png_and_svg() {
    let dir = TempDir::new("line");
    let png_path = dir.join("memory.png");
    let svg_path = dir.join("memory.svg");
    let series = sample_series();
    for path in [&png_path, &svg_path] {
        line_chart(
            path,
            "Memory over execution order",
            "execution step",
            "bytes",
            &series,
        )
        .expect("render");
    }
    let img = decode_png(&png_path);
    assert_eq!((img.width, img.height), LINE_CHART_SIZE);
    assert!(img.distinct_colors() > 20);
    // Both series colours appear (palette blue and red lines, 2 px wide).
    assert!(img.count_near([31, 119, 180], 10) > 300, "first series");
    assert!(img.count_near([214, 39, 40], 10) > 300, "second series");
    assert!(img.dark_in_columns(0, 90) > 100, "y tick labels");

    let svg = std::fs::read_to_string(&svg_path).expect("read svg");
    for text in [
        "Memory over execution order",
        "execution step",
        "bytes",
        "live activations",
        "arena size",
    ] {
        assert!(svg.contains(text), "missing {text}");
    }
    assert!(svg.contains("<polyline"), "line drawn");
    assert_eq!(listing(&dir), vec!["memory.png", "memory.svg"]);
}

#[test]
fn uppercase_extension_and_overwrite() {
    let dir = TempDir::new("upper");
    let path = dir.join("A.PNG");
    std::fs::write(&path, b"old").expect("write");
    bar_chart(&path, "t", "B", &[("x".to_string(), 1.0)]).expect("render");
    let img = decode_png(&path);
    assert_eq!((img.width, img.height), bar_chart_size(1));
}

#[test]
fn degenerate_but_valid_inputs_render() {
    let dir = TempDir::new("degenerate");
    // All-zero and negative bars.
    bar_chart(
        &dir.join("zero.svg"),
        "zeros",
        "s",
        &[("a".into(), 0.0), ("b".into(), 0.0)],
    )
    .expect("zero bars");
    bar_chart(
        &dir.join("neg.png"),
        "signed",
        "J",
        &[("gain".into(), 2.0), ("loss".into(), -1.0)],
    )
    .expect("negative bars");
    // Empty title and label; extreme but allowed magnitudes.
    bar_chart(
        &dir.join("blank.png"),
        "",
        "",
        &[
            ("".into(), 1e300),
            ("tiny".into(), -1e300),
            ("sub".into(), 5e-324),
        ],
    )
    .expect("blank and extreme");
    // One-point series, series of different lengths, and a long series.
    line_chart(
        &dir.join("one.png"),
        "one",
        "step",
        "B",
        &[("p".into(), vec![5.0])],
    )
    .expect("one point");
    let one = decode_png(&dir.join("one.png"));
    assert!(one.count_near([31, 119, 180], 10) > 20, "dot drawn");
    line_chart(
        &dir.join("ragged.svg"),
        "ragged",
        "step",
        "B",
        &[("a".into(), vec![1.0, 2.0, 3.0]), ("b".into(), vec![2.0])],
    )
    .expect("ragged");
    let long: Vec<f64> = (0..200_000).map(|i| (i % 1000) as f64).collect();
    let long_svg = dir.join("long.svg");
    line_chart(&long_svg, "long", "step", "B", &[("l".into(), long)]).expect("long");
    let size = std::fs::metadata(&long_svg).expect("meta").len();
    assert!(size < 200_000, "decimated SVG is {size} bytes");
}

/// Asserts `result` is an error whose message names `path`, and that `dir` holds exactly
/// `expected` afterwards.
fn assert_clean_error(result: Result<(), ChartError>, path: &Path, dir: &Path, expected: &[&str]) {
    let err = result.expect_err("must fail");
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()),
        "message names the path: {msg}"
    );
    assert_eq!(listing(dir), expected, "after: {msg}");
}

#[test]
fn bad_extension_is_a_clear_error() {
    let dir = TempDir::new("ext");
    for name in ["chart.jpg", "chart", "chart.png.txt"] {
        let path = dir.join(name);
        let r = bar_chart(&path, "t", "s", &sample_bars());
        assert!(matches!(r, Err(ChartError::UnsupportedFormat { .. })));
        assert_clean_error(r, &path, &dir, &[]);
        let r = line_chart(&path, "t", "x", "y", &sample_series());
        assert!(matches!(r, Err(ChartError::UnsupportedFormat { .. })));
        let msg = r.expect_err("fails").to_string();
        assert!(msg.contains(".png or .svg"), "{msg}");
    }
}

#[test]
fn empty_and_non_finite_data_are_errors() {
    let dir = TempDir::new("bad-data");
    let path = dir.join("c.svg");
    let r = bar_chart(&path, "t", "s", &[]);
    assert!(matches!(r, Err(ChartError::EmptyData { .. })));
    assert_clean_error(r, &path, &dir, &[]);

    let r = bar_chart(
        &path,
        "t",
        "s",
        &[("ok".into(), 1.0), ("bad".into(), f64::NAN)],
    );
    let msg = r.as_ref().expect_err("nan").to_string();
    assert!(matches!(r, Err(ChartError::NonFinite { .. })));
    assert!(msg.contains("'bad'") && msg.contains("NaN"), "{msg}");
    assert_clean_error(r, &path, &dir, &[]);

    let r = bar_chart(&path, "t", "s", &[("huge".into(), -1e301)]);
    assert!(matches!(r, Err(ChartError::OutOfRange { .. })), "{r:?}");
    assert_clean_error(r, &path, &dir, &[]);
    let r = line_chart(
        &path,
        "t",
        "x",
        "y",
        &[("huge".into(), vec![0.0, f64::MAX])],
    );
    let msg = r.as_ref().expect_err("f64::MAX").to_string();
    assert!(msg.contains("'huge' at step 1"), "{msg}");
    assert_clean_error(r, &path, &dir, &[]);

    let too_many: Vec<(String, f64)> = (0..=MAX_BARS).map(|i| (i.to_string(), 1.0)).collect();
    let r = bar_chart(&path, "t", "s", &too_many);
    assert!(matches!(r, Err(ChartError::TooManyBars { .. })));
    assert_clean_error(r, &path, &dir, &[]);

    let r = line_chart(&path, "t", "x", "y", &[]);
    assert!(matches!(r, Err(ChartError::EmptyData { .. })));
    assert_clean_error(r, &path, &dir, &[]);

    let r = line_chart(
        &path,
        "t",
        "x",
        "y",
        &[("full".into(), vec![1.0]), ("hollow".into(), vec![])],
    );
    let msg = r.as_ref().expect_err("empty series").to_string();
    assert!(msg.contains("'hollow' has no points"), "{msg}");
    assert_clean_error(r, &path, &dir, &[]);

    let r = line_chart(
        &path,
        "t",
        "x",
        "y",
        &[("s".into(), vec![1.0, 2.0, f64::INFINITY])],
    );
    let msg = r.as_ref().expect_err("inf").to_string();
    assert!(
        msg.contains("'s' at step 2") && msg.contains("inf"),
        "{msg}"
    );
    assert_clean_error(r, &path, &dir, &[]);
}

#[test]
fn failed_render_leaves_existing_file_untouched() {
    let dir = TempDir::new("keep");
    let path = dir.join("c.png");
    bar_chart(&path, "first", "s", &sample_bars()).expect("render");
    let before = std::fs::read(&path).expect("read");
    let r = bar_chart(&path, "second", "s", &[("x".into(), f64::NEG_INFINITY)]);
    assert_clean_error(r, &path, &dir, &["c.png"]);
    assert_eq!(std::fs::read(&path).expect("read"), before);
}

#[test]
fn missing_folder_is_an_io_error() {
    let dir = TempDir::new("nofolder");
    let path = dir.join("absent").join("c.svg");
    let r = bar_chart(&path, "t", "s", &sample_bars());
    assert!(matches!(r, Err(ChartError::Io { .. })), "{r:?}");
    assert_clean_error(r, &path, &dir, &[]);
}

/// Renders realistic sample charts as PNG and SVG; kept in `$PETASOS_CHART_SAMPLES` if set.
#[test]
fn render_samples() {
    // `_guard` removes the folder afterwards unless samples are to be kept.
    let (dir, _guard) = match std::env::var_os("PETASOS_CHART_SAMPLES") {
        Some(d) => {
            let d = PathBuf::from(d);
            std::fs::create_dir_all(&d).expect("samples dir");
            (d, None)
        }
        None => {
            let t = TempDir::new("samples");
            (t.0.clone(), Some(t))
        }
    };
    let by_type = vec![
        ("Conv".to_string(), 3.81e-3),
        ("Gemm".to_string(), 2.1e-4),
        ("Relu".to_string(), 1.9e-4),
        ("Add".to_string(), 9.6e-5),
        ("MaxPool".to_string(), 4.1e-5),
        ("GlobalAveragePool".to_string(), 6.2e-6),
        ("Flatten".to_string(), 1.5e-6),
    ];
    let top: Vec<(String, f64)> = (0..20)
        .map(|i| {
            let layer = i / 4;
            let name = match i % 4 {
                // Too long for the label column: shown ellipsised in the middle.
                0 => "self_attention.grouped_query_attention.qkv_projection.int4_dequantize_matmul",
                1 => "feed_forward.up_projection.matmul",
                2 => "feed_forward.down_projection.matmul",
                _ => "self_attention.output_projection.matmul",
            };
            (
                format!("model.decoder.transformer_layers.{layer}.{name}"),
                2.4e-4 / (1.0 + i as f64 * 0.35),
            )
        })
        .collect();
    let steps = 400;
    let mut live = Vec::with_capacity(steps);
    for i in 0..steps {
        let t = i as f64 / steps as f64;
        live.push(4.0e6 * (1.0 - t) + 1.2e6 * ((i % 9) as f64 / 9.0) + 5.0e5);
    }
    let arena = live.iter().copied().fold(0.0, f64::max);
    let memory = vec![
        ("live activations".to_string(), live),
        ("arena size".to_string(), vec![arena; steps]),
    ];
    for ext in ["png", "svg"] {
        bar_chart(
            &dir.join(format!("latency-by-op-type.{ext}")),
            "resnet18 on apple-a17-pro: latency by op type",
            "s",
            &by_type,
        )
        .expect("by type");
        bar_chart(
            &dir.join(format!("top-ops.{ext}")),
            "Top 20 ops by latency",
            "s",
            &top,
        )
        .expect("top");
        line_chart(
            &dir.join(format!("memory.{ext}")),
            "Activation memory over execution order",
            "execution step",
            "live activations (B)",
            &memory,
        )
        .expect("memory");
    }
    let img = decode_png(&dir.join("top-ops.png"));
    assert_eq!((img.width, img.height), bar_chart_size(20));
}
