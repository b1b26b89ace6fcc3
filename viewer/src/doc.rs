//! The open model: the IR graph, one [`OpEntry`] per top-level op (names, shapes, attributes,
//! provenance, weight statistics), the [`GraphData`] the graph view draws, and the
//! cost model's [`Estimator`] with the mapping from op index to estimator row.
//!
//! [`Document::load`] does the whole job (import or build, estimate, statistics) and reports
//! progress; it runs on the loader's worker thread and checks a cancel flag between stages.

use crate::graph::{GEdge, GNode, GraphData};
use petasos_compiler::cost::{work, DeviceProfile, EstimateOptions, Estimator, WhatIf};
use petasos_ir::graph::Graph;
use petasos_ir::op::Attr;
use petasos_ir::shape::shape_string;
use petasos_ir::weights::{decode_le, ConstTensor, Storage};
use petasos_ir::ValueRef;
use petasos_models::BuildOptions;
use petgraph::stable_graph::NodeIndex;
use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bins of every weight histogram.
pub const HIST_BINS: usize = 32;
/// At most this many values of one weight tensor are read for its statistics (evenly spaced
/// chunks of larger tensors; the statistics then say `sampled`).
pub const STATS_SAMPLE: usize = 1 << 20;
/// Values read for the statistics of a whole model: big models get smaller samples per
/// tensor (at least [`STATS_MIN_SAMPLE`]), so a load stays within seconds.
pub const STATS_BUDGET: usize = 48 << 20;
/// The smallest per-tensor sample.
pub const STATS_MIN_SAMPLE: usize = 1 << 14;

/// Why a model could not be opened. Every message names the file (or preset) and says how
/// to fix it.
#[derive(Debug, thiserror::Error)]
pub enum DocError {
    #[error("{model}: no such file, and not a built-in model. Open an .onnx file or pick a preset ({known}).")]
    NotFound { model: String, known: String },
    #[error("could not read model {file}: {cause}. The file is not a valid ONNX model (truncated or corrupt?): export it again or open another file.")]
    Load { file: String, cause: String },
    #[error(
        "could not estimate {file} on device '{device}': {cause}. Pick another device or model."
    )]
    Estimate {
        file: String,
        device: String,
        cause: String,
    },
    #[error("device profile '{device}': {cause}. Pick a built-in device ({known}) or a valid .toml profile.")]
    Device {
        device: String,
        cause: String,
        known: String,
    },
    #[error("loading {model} was cancelled")]
    Cancelled { model: String },
}

/// One input or output of an op.
#[derive(Clone, Debug)]
pub struct Port {
    /// The value name (ONNX tensor name); empty for an omitted optional input.
    pub name: String,
    pub dtype: String,
    /// e.g. `[1,64,56,56]`, `[?]` when unknown.
    pub shape: String,
    /// Whether the value is a constant (a weight).
    pub constant: bool,
}

/// Statistics of one constant input.
#[derive(Clone, Debug)]
pub struct WeightStats {
    /// Input slot of the op.
    pub slot: usize,
    pub name: String,
    pub dtype: String,
    pub shape: Vec<usize>,
    /// Elements in the tensor.
    pub numel: usize,
    /// Elements the statistics were computed on (`< numel` when sampled).
    pub counted: usize,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    pub std: f64,
    /// Fraction of the counted values that are exactly zero.
    pub zero_fraction: f64,
    /// Counts of [`HIST_BINS`] equal bins spanning `[min, max]`.
    pub hist: Vec<u64>,
}

impl WeightStats {
    /// Whether only a sample of the values was read.
    pub fn sampled(&self) -> bool {
        self.counted < self.numel
    }
}

/// One op of the model (a top-level graph node that is neither an input nor a constant).
#[derive(Clone, Debug)]
pub struct OpEntry {
    pub node: NodeIndex,
    /// Node name (the op type when the node has none).
    pub name: String,
    pub op_type: String,
    /// Provenance layer path, e.g. `/layer1/0/conv1`.
    pub layer: String,
    /// Source location the exporter recorded, if any.
    pub source: String,
    pub inputs: Vec<Port>,
    pub outputs: Vec<Port>,
    /// Attributes as `(name, text)`.
    pub attributes: Vec<(String, String)>,
    /// Statistics of the op's constant inputs.
    pub weights: Vec<WeightStats>,
}

/// An open model.
pub struct Document {
    /// Short name for the title bar (file stem or preset name).
    pub title: String,
    /// What was opened: a preset name or a file path.
    pub source: String,
    /// The device profile it is priced on.
    pub device: String,
    pub graph: Graph,
    pub ops: Vec<OpEntry>,
    /// The ops as nodes and edges, in the same order as `ops`.
    pub graph_data: Arc<GraphData>,
    pub estimator: Estimator,
    /// Op index -> index into `estimator.work.ops` (matched by node name).
    pub row_of_op: Vec<Option<usize>>,
    /// Estimator row -> op index (`None` for ops of subgraphs).
    pub op_of_row: Vec<Option<usize>>,
    /// Distinct op types, sorted.
    pub op_types: Vec<String>,
    /// Wall time of [`Document::load`].
    pub load_time: Duration,
}

/// Progress callback: fraction in `[0, 1]` and the stage text.
pub type Progress<'a> = &'a mut dyn FnMut(f32, &str);

impl Document {
    /// Opens `source` (a built-in preset name or an `.onnx` path) priced on `device` (a
    /// built-in profile name or a `.toml` path). Reports progress; returns
    /// [`DocError::Cancelled`] soon after `cancel` is set.
    pub fn load(
        source: &str,
        device: &str,
        progress: Progress<'_>,
        cancel: &AtomicBool,
    ) -> Result<Document, DocError> {
        let t0 = Instant::now();
        let cancelled = || DocError::Cancelled {
            model: source.to_string(),
        };
        progress(0.0, &format!("reading {source}"));
        let profile = load_profile(device)?;
        let graph = load_graph(source)?;
        if cancel.load(Ordering::Relaxed) {
            return Err(cancelled());
        }
        Document::build(graph, source, device, &profile, progress, cancel, t0)
    }

    /// A document of an already loaded `graph` (named `source`) priced on `device`.
    pub fn from_graph(graph: Graph, source: &str, device: &str) -> Result<Document, DocError> {
        let profile = load_profile(device)?;
        Document::build(
            graph,
            source,
            device,
            &profile,
            &mut |_, _| {},
            &AtomicBool::new(false),
            Instant::now(),
        )
    }

    /// Estimate, op entries, statistics and the plain graph of `graph`.
    fn build(
        graph: Graph,
        source: &str,
        device: &str,
        profile: &DeviceProfile,
        progress: Progress<'_>,
        cancel: &AtomicBool,
        t0: Instant,
    ) -> Result<Document, DocError> {
        let cancelled = || DocError::Cancelled {
            model: source.to_string(),
        };
        progress(0.35, "estimating per-op cost");
        let nodes = graph.g.node_count().max(1);
        let mut wp = |done: usize| {
            progress(
                0.35 + 0.35 * done as f32 / nodes as f32,
                "estimating per-op cost",
            );
        };
        let est_err = |cause: String| DocError::Estimate {
            file: source.to_string(),
            device: device.to_string(),
            cause,
        };
        let w = work::graph_work(&graph, &EstimateOptions::default().dims(), &mut wp)
            .map_err(|e| est_err(e.to_string()))?;
        let estimator = Estimator::new(w, profile, None, WhatIf::default())
            .map_err(|e| est_err(e.to_string()))?;
        if cancel.load(Ordering::Relaxed) {
            return Err(cancelled());
        }
        progress(0.7, "weight statistics");
        let order = graph.topo_order().map_err(|e| DocError::Load {
            file: source.to_string(),
            cause: e.to_string(),
        })?;
        let op_nodes: Vec<NodeIndex> = order
            .into_iter()
            .filter(|&n| !matches!(graph.g[n].op.op_type(), "Input" | "Constant"))
            .collect();
        let total = op_nodes.len().max(1);
        let weight_inputs: usize = op_nodes
            .iter()
            .map(|&n| {
                graph
                    .node_inputs(n)
                    .iter()
                    .flatten()
                    .filter(|v| graph.constant(v.node).is_some())
                    .count()
            })
            .sum();
        let sample = (STATS_BUDGET / weight_inputs.max(1)).clamp(STATS_MIN_SAMPLE, STATS_SAMPLE);
        let mut ops = Vec::with_capacity(op_nodes.len());
        for (i, &n) in op_nodes.iter().enumerate() {
            if i % 64 == 0 {
                if cancel.load(Ordering::Relaxed) {
                    return Err(cancelled());
                }
                progress(0.7 + 0.25 * i as f32 / total as f32, "weight statistics");
            }
            ops.push(op_entry(&graph, n, sample));
        }
        progress(0.95, "building the graph");
        let graph_data = Arc::new(graph_data(&graph, &ops));
        let row_of_op = match_rows(&ops, &estimator);
        let mut op_of_row = vec![None; estimator.work.ops.len()];
        for (op, r) in row_of_op.iter().enumerate() {
            if let Some(slot) = r.and_then(|r| op_of_row.get_mut(r)) {
                *slot = Some(op);
            }
        }
        let mut op_types: Vec<String> = ops.iter().map(|o| o.op_type.clone()).collect();
        op_types.sort();
        op_types.dedup();
        progress(1.0, "done");
        Ok(Document {
            title: title_of(source),
            source: source.to_string(),
            device: device.to_string(),
            graph,
            ops,
            graph_data,
            estimator,
            row_of_op,
            op_of_row,
            op_types,
            load_time: t0.elapsed(),
        })
    }

    /// Re-prices the same work on built-in or file profile `device`, keeping the what-if
    /// options. The graph is not reloaded.
    pub fn reprice(&mut self, device: &str) -> Result<(), DocError> {
        let profile = load_profile(device)?;
        self.reprice_with(&profile, None, device)
    }

    /// Re-prices the same work on `profile` (unit `unit`, else its default), keeping the
    /// what-if options (whole-model and per-op); `device` is what [`Document::device`] becomes.
    pub fn reprice_with(
        &mut self,
        profile: &DeviceProfile,
        unit: Option<&str>,
        device: &str,
    ) -> Result<(), DocError> {
        let est = crate::device::reprice(&self.estimator, profile, unit).map_err(|e| {
            DocError::Estimate {
                file: self.source.clone(),
                device: device.to_string(),
                cause: e.to_string(),
            }
        })?;
        self.estimator = est;
        self.device = device.to_string();
        Ok(())
    }

    /// The op of estimator row `row`, if it is a top-level op.
    pub fn op_of(&self, row: usize) -> Option<usize> {
        self.op_of_row.get(row).copied().flatten()
    }

    /// Loads without progress or cancellation (tests, command-line tools).
    pub fn load_sync(source: &str, device: &str) -> Result<Document, DocError> {
        Document::load(source, device, &mut |_, _| {}, &AtomicBool::new(false))
    }

    /// The estimator row of op `i`, if it has one.
    pub fn row(&self, op: usize) -> Option<usize> {
        self.row_of_op.get(op).copied().flatten()
    }
}

/// Device profile `device`: a built-in name, or a profile file (TOML, or JSON by extension).
fn load_profile(device: &str) -> Result<DeviceProfile, DocError> {
    let r = if petasos_compiler::cost::profile::builtin_names().contains(&device)
        || !Path::new(device).is_file()
    {
        DeviceProfile::load(device)
    } else {
        crate::device::load_profile_file(device)
    };
    r.map_err(|e| DocError::Device {
        device: device.to_string(),
        cause: e.to_string(),
        known: petasos_compiler::cost::profile::builtin_names().join(", "),
    })
}

/// The graph of `source`: a built-in preset (unless a file of that name exists) or an ONNX file.
fn load_graph(source: &str) -> Result<Graph, DocError> {
    let path = Path::new(source);
    if petasos_models::is_builtin(source) && !path.exists() {
        return petasos_models::build_with(source, &BuildOptions::default()).map_err(|e| {
            DocError::Load {
                file: source.to_string(),
                cause: e.to_string(),
            }
        });
    }
    if !path.exists() {
        return Err(DocError::NotFound {
            model: source.to_string(),
            known: petasos_models::names().join(", "),
        });
    }
    // Imports can panic deep in third-party parsing on hostile input; keep the app alive.
    let r = std::panic::catch_unwind(|| petasos_ir::onnx::import_file(path));
    match r {
        Ok(Ok(g)) => Ok(g),
        Ok(Err(e)) => Err(DocError::Load {
            file: source.to_string(),
            cause: e.to_string(),
        }),
        Err(_) => Err(DocError::Load {
            file: source.to_string(),
            cause: "the importer failed unexpectedly".to_string(),
        }),
    }
}

/// The file stem of a path, or the preset name.
fn title_of(source: &str) -> String {
    Path::new(source)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| source.to_string())
}

fn port(g: &Graph, v: Option<ValueRef>) -> Port {
    match v {
        None => Port {
            name: String::new(),
            dtype: String::new(),
            shape: String::new(),
            constant: false,
        },
        Some(v) => {
            let ty = g.value_type(v);
            Port {
                name: g.value_name(v).unwrap_or_default().to_string(),
                dtype: ty.map(|t| t.dtype.to_string()).unwrap_or_default(),
                shape: match ty.and_then(|t| t.shape.as_ref()) {
                    Some(s) => shape_string(s),
                    None => "[?]".to_string(),
                },
                constant: g.constant(v.node).is_some(),
            }
        }
    }
}

fn op_entry(g: &Graph, n: NodeIndex, sample: usize) -> OpEntry {
    let node = &g.g[n];
    let ins = g.node_inputs(n);
    let inputs: Vec<Port> = ins.iter().map(|v| port(g, *v)).collect();
    let outputs: Vec<Port> = (0..node.outputs.len())
        .map(|i| port(g, Some(ValueRef { node: n, out: i })))
        .collect();
    let weights = ins
        .iter()
        .enumerate()
        .filter_map(|(slot, v)| {
            let v = (*v)?;
            let c = g.constant(v.node)?;
            weight_stats(c, slot, g.value_name(v).unwrap_or_default(), sample)
        })
        .collect();
    let op_type = if node.op.domain().is_empty() {
        node.op.op_type().to_string()
    } else {
        format!("{}.{}", node.op.domain(), node.op.op_type())
    };
    OpEntry {
        node: n,
        name: if node.provenance.onnx_name.is_empty() {
            op_type.clone()
        } else {
            node.provenance.onnx_name.clone()
        },
        op_type,
        layer: node.provenance.layer_path.clone(),
        source: node.provenance.source.clone(),
        inputs,
        outputs,
        attributes: node
            .op
            .attrs()
            .into_iter()
            .map(|(k, a)| (k.to_string(), attr_text(&a)))
            .collect(),
        weights,
    }
}

/// An attribute as short text (long lists cut after 16 entries).
pub fn attr_text(a: &Attr) -> String {
    fn list<T: std::fmt::Display>(v: &[T]) -> String {
        let mut s: Vec<String> = v.iter().take(16).map(|x| x.to_string()).collect();
        if v.len() > 16 {
            s.push(format!("... ({} in all)", v.len()));
        }
        format!("[{}]", s.join(", "))
    }
    let tensor = |t: &ConstTensor| {
        let dims: Vec<String> = t.shape.iter().map(|d| d.to_string()).collect();
        format!("tensor {}[{}]", t.dtype, dims.join(","))
    };
    match a {
        Attr::Int(v) => v.to_string(),
        Attr::Float(v) => v.to_string(),
        Attr::Str(s) => format!("\"{s}\""),
        Attr::Ints(v) => list(v),
        Attr::Floats(v) => list(v),
        Attr::Strs(v) => list(v),
        Attr::Tensor(t) => tensor(t),
        Attr::Tensors(v) => format!("{} tensors", v.len()),
        Attr::Graph(g) => format!("graph '{}' ({} nodes)", g.name, g.g.node_count()),
        Attr::Graphs(v) => format!("{} graphs", v.len()),
    }
}

/// Values of `c` as `f64`: all of them up to `sample` (at least 512), else evenly spaced
/// chunks (a prefix for synthetic weights). `None` for strings, booleans or unavailable bytes.
fn sample_values(c: &ConstTensor, sample: usize) -> Option<Vec<f64>> {
    let n = c.numel();
    let sample = sample.max(512);
    if !(c.dtype.is_float() || c.dtype.is_int()) {
        return None;
    }
    if n <= sample {
        return c.to_tensor().ok()?.to_f64_vec().ok();
    }
    match &c.storage {
        // The generator is sequential: a shorter synthetic tensor is a prefix of the values.
        Storage::Synthetic { seed, scale } => {
            ConstTensor::synthetic(c.dtype, vec![sample], *seed, *scale)
                .to_tensor()
                .ok()?
                .to_f64_vec()
                .ok()
        }
        Storage::Mapped { .. } | Storage::Owned(_) => {
            let bytes = c.bytes().ok()??;
            // 64 chunks, element counts and starts multiples of 8 so sub-byte types stay
            // byte-aligned.
            let chunks = 64usize;
            let chunk = (sample / chunks) / 8 * 8;
            let step = (n / chunks) / 8 * 8;
            let mut out = Vec::with_capacity(chunks * chunk);
            for k in 0..chunks {
                let start = k * step;
                let b0 = c.dtype.bytes_for(start);
                let b1 = c.dtype.bytes_for(start + chunk);
                let part = bytes.get(b0..b1)?;
                out.extend(decode_le(c.dtype, &[chunk], part).ok()?.to_f64_vec().ok()?);
            }
            Some(out)
        }
        Storage::Values(t) => t.to_f64_vec().ok(),
        Storage::Detached { .. } => None,
    }
}

/// Statistics of constant `c` read by input `slot`, from at most about `sample` values;
/// `None` when it has no numeric values.
pub fn weight_stats(
    c: &ConstTensor,
    slot: usize,
    name: &str,
    sample: usize,
) -> Option<WeightStats> {
    let vals = sample_values(c, sample)?;
    let finite: Vec<f64> = vals.iter().copied().filter(|v| v.is_finite()).collect();
    let counted = vals.len();
    let (mut min, mut max, mut sum, mut zeros) = (f64::INFINITY, f64::NEG_INFINITY, 0.0, 0usize);
    for &v in &finite {
        min = min.min(v);
        max = max.max(v);
        sum += v;
        if v == 0.0 {
            zeros += 1;
        }
    }
    if finite.is_empty() {
        min = 0.0;
        max = 0.0;
    }
    let k = finite.len().max(1) as f64;
    let mean = sum / k;
    let var = finite.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / k;
    let mut hist = vec![0u64; HIST_BINS];
    let span = max - min;
    for &v in &finite {
        let b = if span > 0.0 {
            (((v - min) / span) * HIST_BINS as f64) as usize
        } else {
            0
        };
        if let Some(h) = hist.get_mut(b.min(HIST_BINS - 1)) {
            *h += 1;
        }
    }
    Some(WeightStats {
        slot,
        name: name.to_string(),
        dtype: c.dtype.to_string(),
        shape: c.shape.clone(),
        numel: c.numel(),
        counted,
        min,
        max,
        mean,
        std: var.sqrt(),
        zero_fraction: if counted > 0 {
            zeros as f64 / counted as f64
        } else {
            0.0
        },
        hist,
    })
}

/// Node `i` per op; an edge per (producer op, consumer op, value) pair.
fn graph_data(g: &Graph, ops: &[OpEntry]) -> GraphData {
    let index: HashMap<NodeIndex, usize> =
        ops.iter().enumerate().map(|(i, o)| (o.node, i)).collect();
    let nodes = ops
        .iter()
        .map(|o| GNode {
            label: o.name.clone(),
            op_type: o.op_type.clone(),
            path: o.layer.clone(),
        })
        .collect();
    let mut edges = Vec::new();
    for (to, o) in ops.iter().enumerate() {
        for v in g.node_inputs(o.node).into_iter().flatten() {
            if let Some(&from) = index.get(&v.node) {
                let label = match g.value_type(v) {
                    Some(t) => match &t.shape {
                        Some(s) => format!("{}{}", t.dtype, shape_string(s)),
                        None => format!("{}[?]", t.dtype),
                    },
                    None => String::new(),
                };
                edges.push(GEdge { from, to, label });
            }
        }
    }
    GraphData { nodes, edges }
}

/// Op -> estimator row by node name; repeated names are matched in execution order.
fn match_rows(ops: &[OpEntry], est: &Estimator) -> Vec<Option<usize>> {
    let mut by_name: HashMap<&str, VecDeque<usize>> = HashMap::new();
    for (i, w) in est.work.ops.iter().enumerate() {
        by_name.entry(w.name.as_str()).or_default().push_back(i);
    }
    ops.iter()
        .map(|o| {
            let key = est_name(o);
            by_name.get_mut(key).and_then(|q| q.pop_front())
        })
        .collect()
}

/// The name the estimator knows op `o` by (the raw node name, possibly empty).
fn est_name(o: &OpEntry) -> &str {
    if o.name == o.op_type {
        // The entry's name fell back to the op type because the node has none.
        ""
    } else {
        &o.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_of_a_known_tensor() {
        let t = petasos_ir::tensor::Tensor::from_f32(&[4], vec![0.0, 1.0, 2.0, -1.0]).unwrap();
        let s = weight_stats(&ConstTensor::from_tensor(t), 1, "w", STATS_SAMPLE).unwrap();
        assert_eq!((s.min, s.max), (-1.0, 2.0));
        assert!((s.mean - 0.5).abs() < 1e-12);
        assert!((s.zero_fraction - 0.25).abs() < 1e-12);
        assert_eq!(s.hist.iter().sum::<u64>(), 4);
        assert_eq!(s.hist[0], 1);
        assert_eq!(s.hist[HIST_BINS - 1], 1);
        assert!(!s.sampled());
    }

    #[test]
    fn large_stored_tensors_are_sampled_in_aligned_chunks() {
        // 3 * 2^20 f32 values 0, 1, 2, ... held as bytes: the sample reads 64 chunks spread
        // over the tensor, each a run of consecutive values.
        let n = STATS_SAMPLE * 3;
        let bytes: Vec<u8> = (0..n).flat_map(|i| (i as f32).to_le_bytes()).collect();
        let c = ConstTensor {
            dtype: petasos_ir::DType::F32,
            shape: vec![n],
            storage: Storage::Owned(bytes.into()),
        };
        let vals = sample_values(&c, STATS_SAMPLE).unwrap();
        let chunk = STATS_SAMPLE / 64;
        assert_eq!(vals.len(), 64 * chunk);
        assert_eq!(vals[0], 0.0);
        let step = (n / 64) as f64;
        for (k, run) in vals.chunks(chunk).enumerate() {
            assert_eq!(run[0], k as f64 * step, "chunk {k} starts at its offset");
            assert!(
                run.windows(2).all(|w| w[1] == w[0] + 1.0),
                "chunk {k} contiguous"
            );
        }
        let s = weight_stats(&c, 0, "ramp", STATS_SAMPLE).unwrap();
        assert!(s.sampled() && s.max > 0.9 * n as f64);
    }

    #[test]
    fn device_profiles_by_name_or_file_and_errors_name_the_cause() {
        let (name, text) = petasos_compiler::cost::profile::BUILTIN[1];
        let dir = std::env::temp_dir().join(format!("petasos-viewer-doc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("dev.toml");
        std::fs::write(&path, text).unwrap();
        let by_name = Document::load_sync("demo-cnn", name).unwrap();
        let by_file = Document::load_sync("demo-cnn", &path.to_string_lossy()).unwrap();
        assert_eq!(by_name.estimator.device, by_file.estimator.device);
        assert_eq!(
            by_name.estimator.sums().latency_s,
            by_file.estimator.sums().latency_s
        );
        let e = Document::load_sync("demo-cnn", "no-such-device")
            .err()
            .unwrap();
        assert!(matches!(e, DocError::Device { .. }), "{e}");
        assert!(e.to_string().contains("no-such-device"), "{e}");
        let e = Document::load_sync("no-such-model", name).err().unwrap();
        assert!(e.to_string().contains("not a built-in model"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn large_synthetic_tensors_are_sampled() {
        let c = ConstTensor::synthetic(petasos_ir::DType::F32, vec![STATS_SAMPLE * 3], 7, 0.5);
        let s = weight_stats(&c, 0, "big", STATS_SAMPLE).unwrap();
        assert!(s.sampled());
        assert_eq!(s.counted, STATS_SAMPLE);
        assert!(s.min >= -0.5 && s.max <= 0.5 && s.max > s.min);
    }
}
