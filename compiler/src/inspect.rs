//! The `inspect` report: inputs and outputs, op histogram, parameters, MACs per op type.

use petasos_ir::stats::{graph_stats, OpTypeStats};
use petasos_ir::{Graph, ValueType};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;

/// A named value and its type.
#[derive(Serialize)]
pub struct Port {
    pub name: String,
    pub dtype: String,
    pub shape: Option<Vec<String>>,
}

/// What `petasos inspect` reports.
#[derive(Serialize)]
pub struct InspectReport {
    pub model: String,
    pub metadata: BTreeMap<String, String>,
    pub opsets: BTreeMap<String, i64>,
    pub inputs: Vec<Port>,
    pub outputs: Vec<Port>,
    pub nodes: usize,
    /// Every constant element (an ONNX file's initializers summed).
    pub parameters: u64,
    pub parameter_bytes: u64,
    /// Parameters less batch-norm running statistics and integer shape data.
    pub learnable_parameters: u64,
    /// Batch-norm running statistics.
    pub buffers: u64,
    pub macs: u64,
    pub flops: u64,
    /// Symbolic dims MACs were counted with (each set to 1).
    pub assumed_dims: BTreeMap<String, u64>,
    pub ops: BTreeMap<String, OpTypeStats>,
}

fn port(name: &str, t: &ValueType) -> Port {
    Port {
        name: name.to_string(),
        dtype: t.dtype.to_string(),
        shape: t
            .shape
            .as_ref()
            .map(|s| s.iter().map(|d| d.to_string()).collect()),
    }
}

/// Builds the report for `g`.
pub fn inspect(model: &str, g: &Graph) -> InspectReport {
    let s = graph_stats(g);
    InspectReport {
        model: model.to_string(),
        metadata: g.metadata.clone(),
        opsets: g.opsets.clone(),
        inputs: g
            .inputs
            .iter()
            .map(|&i| port(&g.g[i].outputs[0].name, &g.g[i].outputs[0].ty))
            .collect(),
        outputs: g
            .outputs
            .iter()
            .filter_map(|o| g.value_type(o.value).map(|t| port(&o.name, t)))
            .collect(),
        nodes: s.nodes,
        parameters: s.parameters,
        parameter_bytes: s.parameter_bytes,
        learnable_parameters: s.learnable_parameters,
        buffers: s.buffers,
        macs: s.macs,
        flops: s.flops,
        assumed_dims: s.assumed_dims,
        ops: s.ops,
    }
}

/// `1234567` -> `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `1.82e9` -> `1.82 G`.
pub fn si(n: u64) -> String {
    let x = n as f64;
    for (div, unit) in [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")] {
        if x >= div {
            return format!("{:.2} {unit}", x / div);
        }
    }
    format!("{n}")
}

fn shape_text(p: &Port) -> String {
    match &p.shape {
        Some(s) => format!("{}[{}]", p.dtype, s.join(", ")),
        None => format!("{}[?]", p.dtype),
    }
}

/// Renders the report as text.
pub fn render(r: &InspectReport) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "model: {}", r.model);
    for (k, v) in &r.metadata {
        let _ = writeln!(o, "  {k}: {v}");
    }
    let opsets: Vec<String> = r
        .opsets
        .iter()
        .map(|(d, v)| format!("{}:{v}", if d.is_empty() { "ai.onnx" } else { d }))
        .collect();
    let _ = writeln!(o, "  opsets: {}", opsets.join(", "));
    let _ = writeln!(o, "inputs:");
    for p in &r.inputs {
        let _ = writeln!(o, "  {:<24} {}", p.name, shape_text(p));
    }
    let _ = writeln!(o, "outputs:");
    for p in &r.outputs {
        let _ = writeln!(o, "  {:<24} {}", p.name, shape_text(p));
    }
    let _ = writeln!(
        o,
        "parameters: {} ({} bytes); learnable {}, buffers {}",
        thousands(r.parameters),
        thousands(r.parameter_bytes),
        thousands(r.learnable_parameters),
        thousands(r.buffers)
    );
    let assumed: Vec<String> = r
        .assumed_dims
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let _ = writeln!(
        o,
        "MACs: {} ({}), FLOPs: {}{}",
        si(r.macs),
        thousands(r.macs),
        si(r.flops),
        if assumed.is_empty() {
            String::new()
        } else {
            format!(" (with {})", assumed.join(", "))
        }
    );
    let _ = writeln!(o, "ops: {} nodes", r.nodes);
    let _ = writeln!(
        o,
        "  {:<28} {:>7} {:>12} {:>7}",
        "op type", "count", "MACs", "share"
    );
    let mut rows: Vec<_> = r.ops.iter().collect();
    rows.sort_by(|a, b| {
        b.1.macs
            .cmp(&a.1.macs)
            .then(b.1.count.cmp(&a.1.count))
            .then(a.0.cmp(b.0))
    });
    for (name, s) in rows {
        let share = if r.macs > 0 {
            100.0 * s.macs as f64 / r.macs as f64
        } else {
            0.0
        };
        let _ = writeln!(
            o,
            "  {:<28} {:>7} {:>12} {:>6.1}%",
            name,
            s.count,
            si(s.macs),
            share
        );
    }
    o
}
