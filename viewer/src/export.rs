//! Exports: the per-op table as CSV (rows in the order the table shows them) and the current
//! view as PNG, both written atomically (a temporary file in the target's folder, then a
//! rename), so a crash or a full disk never leaves a half-written file under the chosen name.

use egui::ColorImage;
use petasos_compiler::cost::{Estimator, Report};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Errors of the exports.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A row index the caller passed is not a row of the table.
    #[error("row {row} is not in the table ({rows} rows)")]
    RowOutOfRange { row: usize, rows: usize },
    /// Writing (or renaming) the file failed.
    #[error("writing {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The image could not be encoded.
    #[error("encoding {path} as PNG: {msg}")]
    Png { path: String, msg: String },
}

/// The CSV header of [`table_csv`] (the columns of `petasos estimate --csv`, plus the op's own
/// what-if options).
pub const CSV_COLUMNS: [&str; 24] = [
    "name",
    "op_type",
    "layer",
    "shape",
    "class",
    "precision",
    "macs",
    "flops",
    "weight_bytes",
    "activation_bytes",
    "kv_bytes",
    "dram_bytes",
    "onchip_bytes",
    "intensity",
    "compute_s",
    "memory_s",
    "overhead_s",
    "latency_s",
    "compute_energy_j",
    "memory_energy_j",
    "energy_j",
    "power_w",
    "bound",
    "options",
];

/// The rows `row_order` names (indices into `report.ops`, in that order) as CSV: a header line,
/// then one line per row, fields quoted per RFC 4180 where needed. An index outside the table
/// is an error (nothing is skipped silently).
pub fn table_csv(report: &Report, row_order: &[usize]) -> Result<String, ExportError> {
    let mut o = CSV_COLUMNS.join(",");
    o.push_str("\r\n");
    for &i in row_order {
        let r = report.ops.get(i).ok_or(ExportError::RowOutOfRange {
            row: i,
            rows: report.ops.len(),
        })?;
        let options = r
            .options
            .map(|opt| {
                let mut parts = Vec::new();
                if let Some(w) = opt.weight_bits {
                    parts.push(format!("weight-bits={w}"));
                }
                if let Some(w) = opt.embedding_bits {
                    parts.push(format!("embedding-bits={w}"));
                }
                if let Some(b) = opt.activation_bits {
                    parts.push(format!("activation-bits={b}"));
                }
                if let Some(s) = opt.sparsity {
                    parts.push(format!("sparsity={s}"));
                }
                parts.join(";")
            })
            .unwrap_or_default();
        let fields: [String; 24] = [
            r.name.clone(),
            r.op_type.clone(),
            r.layer.clone(),
            r.shape.clone(),
            r.class.key().to_string(),
            r.precision.to_string(),
            r.macs.to_string(),
            r.flops.to_string(),
            r.weight_bytes.to_string(),
            r.activation_bytes.to_string(),
            r.kv_bytes.to_string(),
            r.dram_bytes.to_string(),
            r.onchip_bytes.to_string(),
            r.intensity.to_string(),
            format!("{:e}", r.compute_s),
            format!("{:e}", r.memory_s),
            format!("{:e}", r.overhead_s),
            format!("{:e}", r.latency_s),
            format!("{:e}", r.compute_energy_j),
            format!("{:e}", r.memory_energy_j),
            format!("{:e}", r.energy_j),
            r.power_w.to_string(),
            r.bound.to_string(),
            options,
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        let _ = write!(o, "{}\r\n", line.join(","));
    }
    Ok(o)
}

/// [`table_csv`] of the estimator's current report.
pub fn estimator_csv(est: &Estimator, row_order: &[usize]) -> Result<String, ExportError> {
    table_csv(&Report::new("", est), row_order)
}

/// One CSV field: quoted (inner quotes doubled) when it holds a comma, a quote, a line break,
/// or leading/trailing spaces; as is otherwise.
pub fn csv_field(s: &str) -> String {
    let needs = s.contains([',', '"', '\n', '\r']) || s.starts_with(' ') || s.ends_with(' ');
    if needs {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Writes `bytes` to `path` atomically: into a uniquely named temporary file in the same folder
/// (flushed to disk), then renamed over `path`. On failure the temporary file is removed and
/// `path` is untouched.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let io = |source: std::io::Error| ExportError::Io {
        path: path.display().to_string(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| {
            io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the path names no file",
            ))
        })?
        .to_string_lossy()
        .into_owned();
    let tmp = dir.join(format!(
        ".{file_name}.{}.{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    Ok(())
}

/// Encodes `img` as an 8-bit RGBA PNG (alpha un-premultiplied).
pub fn png_bytes(img: &ColorImage) -> Result<Vec<u8>, String> {
    use image::ImageEncoder as _;
    let [w, h] = img.size;
    if img.pixels.len() != w * h {
        return Err(format!("image of {w}x{h} has {} pixels", img.pixels.len()));
    }
    let (w32, h32) = (
        u32::try_from(w).map_err(|_| "image too wide".to_string())?,
        u32::try_from(h).map_err(|_| "image too tall".to_string())?,
    );
    let raw: Vec<u8> = img
        .pixels
        .iter()
        .flat_map(|c| c.to_srgba_unmultiplied())
        .collect();
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(&raw, w32, h32, image::ExtendedColorType::Rgba8)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// Saves `img` (e.g. from `ViewportCommand::Screenshot`) as a PNG at `path`, atomically.
pub fn save_png(path: &Path, img: &ColorImage) -> Result<(), ExportError> {
    let bytes = png_bytes(img).map_err(|msg| ExportError::Png {
        path: path.display().to_string(),
        msg,
    })?;
    write_atomic(path, &bytes)
}

/// Asks the viewport for a screenshot of the next frame (`ViewportCommand::Screenshot`) and
/// saves it as a PNG at `path` when it arrives; the receiver gets the outcome (the path, or the
/// error). The save runs in the screenshot callback, off the UI pass that requested it.
pub fn request_png(
    ctx: &egui::Context,
    path: PathBuf,
) -> std::sync::mpsc::Receiver<Result<PathBuf, ExportError>> {
    let (tx, rx) = std::sync::mpsc::channel();
    let repaint = ctx.clone();
    let callback = egui::ScreenshotCallback::new(move |img| {
        let r = save_png(&path, &img).map(|()| path);
        let _ = tx.send(r);
        repaint.request_repaint();
    });
    ctx.send_viewport_cmd(egui::ViewportCommand::Screenshot(callback));
    rx
}
