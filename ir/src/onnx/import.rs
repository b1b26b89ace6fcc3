//! ONNX import: file -> [`Graph`].
//!
//! The file is memory-mapped and its tensor payloads lifted out ([`super::wire`]), so weights stay
//! in the map. Nodes are ordered topologically by value names (rejecting cycles and undefined
//! values), built through the op registry (unknown ops become opaque nodes), and their types
//! inferred as they are added, so subgraphs see the types of the values they capture.
//! Model-local functions are inlined at their call sites.

use super::attrs::NodeCtx;
use super::tensor_proto::{Backing, TensorSource};
use super::wire;
use crate::graph::{Graph, Provenance, ValueRef};
use crate::infer::{node_context, Inferencer};
use crate::op::Op;
use crate::ops::core::{Input, Opaque};
use crate::ops::registry;
use crate::shape::{Dim, ValueType};
use crate::{import_err, DType, Error, Result};
use memmap2::Mmap;
use onnx_protobuf::{
    AttributeProto, FunctionProto, GraphProto, ModelProto, NodeProto, TypeProto, ValueInfoProto,
};
use protobuf::Message;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

/// Import settings.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// Fail on shape-inference errors (otherwise the node's outputs are left unknown).
    pub strict_shapes: bool,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            strict_shapes: true,
        }
    }
}

/// Imports an ONNX model file, mapping it rather than reading it.
pub fn import_file(path: &Path) -> Result<Graph> {
    import_file_with(path, &ImportOptions::default())
}

/// [`import_file`] with options.
pub fn import_file_with(path: &Path, opts: &ImportOptions) -> Result<Graph> {
    let f = std::fs::File::open(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let meta = f.metadata().map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if meta.is_dir() {
        return Err(import_err!(
            "{} is a folder, not an ONNX file",
            path.display()
        ));
    }
    if meta.len() == 0 {
        return Err(import_err!("{} is empty", path.display()));
    }
    // SAFETY: read-only map of a model file; see TensorSource::external.
    let map = Arc::new(unsafe { Mmap::map(&f) }.map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?);
    let dir = path.parent().map(|p| {
        if p.as_os_str().is_empty() {
            Path::new(".").to_path_buf()
        } else {
            p.to_path_buf()
        }
    });
    let stripped = wire::strip(&map)?;
    let src = TensorSource::new(Backing::Map(map.clone()), stripped.ranges, dir);
    import_stripped(&stripped.bytes, src, opts)
}

/// Imports a model from bytes (external data is refused: there is no folder).
pub fn import_bytes(data: &[u8]) -> Result<Graph> {
    if data.is_empty() {
        return Err(import_err!("the model is empty"));
    }
    let stripped = wire::strip(data)?;
    let src = TensorSource::new(Backing::Bytes(Arc::from(data)), stripped.ranges, None);
    import_stripped(&stripped.bytes, src, &ImportOptions::default())
}

fn import_stripped(bytes: &[u8], src: TensorSource, opts: &ImportOptions) -> Result<Graph> {
    let model = ModelProto::parse_from_bytes(bytes).map_err(|e| {
        let m = e.to_string();
        if m.contains("recursion") {
            import_err!("the model nests messages too deeply: {m}")
        } else {
            import_err!("not a valid ONNX model: {m}")
        }
    })?;
    let gp = model
        .graph
        .as_ref()
        .ok_or_else(|| import_err!("the file holds no graph (is it an ONNX model?)"))?;
    if model.ir_version <= 0 && model.opset_import.is_empty() && gp.node.is_empty() {
        return Err(import_err!(
            "the file holds no ONNX model (no IR version, opsets or nodes)"
        ));
    }
    let mut opsets: HashMap<String, i64> = HashMap::new();
    for o in &model.opset_import {
        let d = if o.domain == "ai.onnx" {
            String::new()
        } else {
            o.domain.clone()
        };
        opsets.insert(d, o.version);
    }
    opsets.entry(String::new()).or_insert(21);
    let functions: HashMap<(String, String), &FunctionProto> = model
        .functions
        .iter()
        .map(|f| ((f.domain.clone(), f.name.clone()), f))
        .collect();
    let cx = ModelCx {
        src: &src,
        opsets: &opsets,
        functions: &functions,
        opts,
    };
    let mut g = build_graph(&cx, gp, &[], &[], 0)?;
    g.opsets = opsets.into_iter().collect();
    g.metadata
        .insert("ir_version".into(), model.ir_version.to_string());
    if !model.producer_name.is_empty() {
        g.metadata.insert(
            "producer".into(),
            format!("{} {}", model.producer_name, model.producer_version)
                .trim()
                .to_string(),
        );
    }
    for p in &model.metadata_props {
        g.metadata
            .insert(format!("meta.{}", p.key), p.value.clone());
    }
    Ok(g)
}

struct ModelCx<'a> {
    src: &'a TensorSource,
    opsets: &'a HashMap<String, i64>,
    functions: &'a HashMap<(String, String), &'a FunctionProto>,
    opts: &'a ImportOptions,
}

/// Converts an ONNX type to a [`ValueType`]; unnamed unknown dims get fresh names.
fn value_type(name: &str, tp: &TypeProto, unk: &mut u64) -> Result<ValueType> {
    use onnx_protobuf::type_proto::Value;
    match &tp.value {
        Some(Value::TensorType(t)) => {
            let dtype = DType::from_onnx_code(t.elem_type).ok_or_else(|| {
                import_err!("value '{name}' has unknown element type {}", t.elem_type)
            })?;
            let Some(shape) = t.shape.as_ref() else {
                return Ok(ValueType::unranked(dtype));
            };
            let mut dims = Vec::with_capacity(shape.dim.len());
            for d in &shape.dim {
                use onnx_protobuf::tensor_shape_proto::dimension::Value as DV;
                dims.push(match &d.value {
                    Some(DV::DimValue(v)) if *v >= 0 => {
                        if *v as u64 > super::tensor_proto::MAX_ELEMENTS {
                            return Err(import_err!(
                                "value '{name}' has a dim of {v}, larger than 2^40"
                            ));
                        }
                        Dim::Known(*v as u64)
                    }
                    Some(DV::DimParam(p)) if !p.is_empty() => Dim::sym(p),
                    _ => {
                        *unk += 1;
                        Dim::sym(&format!("{name}_dim{}", *unk))
                    }
                });
            }
            Ok(ValueType::new(dtype, dims))
        }
        None => Err(import_err!("value '{name}' has no type")),
        Some(_) => Err(import_err!(
            "value '{name}' is a sequence, map or optional; only tensors are supported"
        )),
    }
}

/// A node to build: the proto plus the attributes of an inlined function call, if any.
struct PendingNode {
    node: NodeProto,
}

/// Inlines calls to model-local functions (recursively), renaming their internal values.
fn expand_functions(
    cx: &ModelCx<'_>,
    nodes: &[NodeProto],
    depth: usize,
    counter: &mut usize,
) -> Result<Vec<PendingNode>> {
    let mut out = Vec::new();
    for n in nodes {
        let key = (n.domain.clone(), n.op_type.clone());
        let f = match cx.functions.get(&key) {
            Some(f) if registry().get(&n.domain, &n.op_type).is_none() || !n.domain.is_empty() => {
                *f
            }
            _ => {
                out.push(PendingNode { node: n.clone() });
                continue;
            }
        };
        if depth > 16 {
            return Err(import_err!(
                "function '{}' is recursive or nested more than 16 deep",
                n.op_type
            ));
        }
        *counter += 1;
        let prefix = format!("{}__f{}__", n.op_type, counter);
        let mut rename: HashMap<String, String> = HashMap::new();
        for (i, formal) in f.input.iter().enumerate() {
            rename.insert(formal.clone(), n.input.get(i).cloned().unwrap_or_default());
        }
        for (i, formal) in f.output.iter().enumerate() {
            rename.insert(formal.clone(), n.output.get(i).cloned().unwrap_or_default());
        }
        // Attribute values: call site overrides function defaults.
        let mut attr_vals: HashMap<String, AttributeProto> = HashMap::new();
        for a in &f.attribute_proto {
            attr_vals.insert(a.name.clone(), a.clone());
        }
        for a in &n.attribute {
            attr_vals.insert(a.name.clone(), a.clone());
        }
        let mut body = Vec::new();
        for bn in &f.node {
            let mut nn = bn.clone();
            let map = |s: &String, rename: &mut HashMap<String, String>| -> String {
                if s.is_empty() {
                    return String::new();
                }
                rename
                    .entry(s.clone())
                    .or_insert_with(|| format!("{prefix}{s}"))
                    .clone()
            };
            nn.input = bn.input.iter().map(|s| map(s, &mut rename)).collect();
            nn.output = bn.output.iter().map(|s| map(s, &mut rename)).collect();
            nn.name = format!("{prefix}{}", bn.name);
            let mut attrs = Vec::new();
            for a in &bn.attribute {
                if a.ref_attr_name.is_empty() {
                    attrs.push(a.clone());
                } else if let Some(v) = attr_vals.get(&a.ref_attr_name) {
                    let mut v = v.clone();
                    v.name = a.name.clone();
                    attrs.push(v);
                }
            }
            nn.attribute = attrs;
            body.push(nn);
        }
        out.extend(expand_functions(cx, &body, depth + 1, counter)?);
    }
    Ok(out)
}

/// Orders nodes so each comes after the producers of its inputs.
fn topo_sort(nodes: Vec<PendingNode>, graph_name: &str) -> Result<Vec<PendingNode>> {
    let mut producer: HashMap<&str, usize> = HashMap::new();
    for (i, p) in nodes.iter().enumerate() {
        for o in &p.node.output {
            if o.is_empty() {
                continue;
            }
            if producer.insert(o.as_str(), i).is_some() {
                return Err(import_err!(
                    "value '{o}' is produced by more than one node in graph '{graph_name}'"
                ));
            }
        }
    }
    let n = nodes.len();
    let mut indeg = vec![0usize; n];
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, p) in nodes.iter().enumerate() {
        let mut seen = HashSet::new();
        let mut implicit = HashSet::new();
        for a in &p.node.attribute {
            for sg in a.g.as_ref().into_iter().chain(a.graphs.iter()) {
                outer_uses(sg, &mut implicit);
            }
        }
        for inp in p.node.input.iter().chain(implicit.iter()) {
            if let Some(&j) = producer.get(inp.as_str()) {
                if seen.insert(j) {
                    indeg[i] += 1;
                    users[j].push(i);
                }
            }
        }
    }
    // Smallest index first: keeps the file's order wherever it is already valid.
    let mut q: BinaryHeap<Reverse<usize>> =
        (0..n).filter(|&i| indeg[i] == 0).map(Reverse).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse(i)) = q.pop() {
        order.push(i);
        for &u in &users[i] {
            indeg[u] -= 1;
            if indeg[u] == 0 {
                q.push(Reverse(u));
            }
        }
    }
    if order.len() < n {
        let stuck = (0..n)
            .find(|&i| indeg[i] > 0)
            .map(|i| nodes[i].node.name.clone())
            .unwrap_or_default();
        return Err(import_err!(
            "graph '{graph_name}' has a cycle (through node '{stuck}')"
        ));
    }
    let mut slots: Vec<Option<PendingNode>> = nodes.into_iter().map(Some).collect();
    Ok(order.into_iter().filter_map(|i| slots[i].take()).collect())
}

/// Adds to `uses` the names a subgraph (and the subgraphs nested in it) reads from enclosing
/// scopes: every name its nodes read that it does not define itself.
fn outer_uses(g: &GraphProto, uses: &mut HashSet<String>) {
    let mut defined: HashSet<&str> = HashSet::new();
    defined.extend(g.input.iter().map(|v| v.name.as_str()));
    defined.extend(g.initializer.iter().map(|t| t.name.as_str()));
    for n in &g.node {
        defined.extend(n.output.iter().map(|s| s.as_str()));
    }
    let mut inner = HashSet::new();
    for n in &g.node {
        inner.extend(n.input.iter().filter(|s| !s.is_empty()).cloned());
        for a in &n.attribute {
            for sg in a.g.as_ref().into_iter().chain(a.graphs.iter()) {
                outer_uses(sg, &mut inner);
            }
        }
    }
    for o in &g.output {
        inner.insert(o.name.clone());
    }
    uses.extend(inner.into_iter().filter(|s| !defined.contains(s.as_str())));
}

/// Derives the layer path from a node name like `/layer1/layer1.0/conv1/Conv`.
fn layer_path(node: &NodeProto) -> String {
    for p in &node.metadata_props {
        if p.key == "pkg.torch.onnx.name_scopes" {
            let parts: Vec<String> = p
                .value
                .trim_matches(|c| c == '[' || c == ']')
                .split(',')
                .map(|s| s.trim().trim_matches('\'').trim_matches('"').to_string())
                .filter(|s| !s.is_empty())
                .collect();
            if !parts.is_empty() {
                return format!("/{}", parts.join("/"));
            }
        }
    }
    let name = &node.name;
    if name.starts_with('/') {
        match name.rfind('/') {
            Some(0) | None => name.clone(),
            Some(i) => name[..i].to_string(),
        }
    } else {
        String::new()
    }
}

fn render_attr(a: &AttributeProto) -> String {
    if !a.ints.is_empty() {
        format!("{:?}", a.ints)
    } else if !a.floats.is_empty() {
        format!("{:?}", a.floats)
    } else if !a.s.is_empty() {
        String::from_utf8_lossy(&a.s).into_owned()
    } else if a.t.is_some() {
        "<tensor>".into()
    } else if a.g.is_some() {
        "<graph>".into()
    } else if a.f != 0.0 {
        a.f.to_string()
    } else {
        a.i.to_string()
    }
}

/// Builds one graph. `outer` are the visible value types of enclosing scopes, innermost first.
fn build_graph(
    cx: &ModelCx<'_>,
    gp: &GraphProto,
    outer: &[&HashMap<String, ValueType>],
    hints: &[Option<ValueType>],
    depth: usize,
) -> Result<Graph> {
    if depth > 64 {
        return Err(import_err!("subgraphs are nested more than 64 deep"));
    }
    let mut g = Graph::new(&gp.name);
    let mut names: HashMap<String, ValueRef> = HashMap::new();
    let mut types: HashMap<String, ValueType> = HashMap::new();
    let mut inf = Inferencer::default();
    let mut unk = 0u64;

    for t in &gp.initializer {
        if t.name.is_empty() {
            return Err(import_err!(
                "an initializer of graph '{}' has no name",
                gp.name
            ));
        }
        let c = cx.src.load(t)?;
        let n = g.add_const(&t.name, c);
        inf.infer_node(&mut g, n)?;
        if names
            .insert(t.name.clone(), ValueRef { node: n, out: 0 })
            .is_some()
        {
            return Err(import_err!("initializer '{}' is defined twice", t.name));
        }
        types.insert(t.name.clone(), g.g[n].outputs[0].ty.clone());
    }
    if !gp.sparse_initializer.is_empty() {
        return Err(import_err!("sparse initializers are not supported"));
    }
    for (i, vi) in gp.input.iter().enumerate() {
        if names.contains_key(&vi.name) {
            continue; // an initializer with a default value: treated as a constant
        }
        let ty = match (vi.type_.is_some(), hints.get(i).cloned().flatten()) {
            (false, Some(h)) => h,
            _ => declared(vi, &mut unk)?,
        };
        let n = g.add_input(&vi.name, ty.clone());
        names.insert(vi.name.clone(), ValueRef { node: n, out: 0 });
        types.insert(vi.name.clone(), ty);
    }

    // Types the model declares for intermediate values and outputs (used for opaque nodes).
    let declared_types: HashMap<String, ValueType> = gp
        .value_info
        .iter()
        .chain(gp.output.iter())
        .filter_map(|vi| {
            let tp = vi.type_.as_ref()?;
            let t = value_type(&vi.name, tp, &mut unk).ok()?;
            Some((vi.name.clone(), t))
        })
        .collect();
    let mut counter = 0usize;
    let pending = expand_functions(cx, &gp.node, 0, &mut counter)?;
    let pending = topo_sort(pending, &gp.name)?;

    for p in pending {
        let np = &p.node;
        let domain = if np.domain == "ai.onnx" {
            ""
        } else {
            np.domain.as_str()
        };
        let opset = cx
            .opsets
            .get(domain)
            .copied()
            .unwrap_or(if domain.is_empty() { 21 } else { 1 });
        // Resolve inputs first: subgraphs may capture values defined here.
        let mut input_refs: Vec<Option<ValueRef>> = Vec::with_capacity(np.input.len());
        for name in &np.input {
            if name.is_empty() {
                input_refs.push(None);
                continue;
            }
            input_refs.push(Some(resolve(
                &mut g,
                &mut names,
                &mut types,
                outer,
                name,
                &np.name,
                &np.op_type,
            )?));
        }
        // Trailing omitted inputs are dropped (as export does), so round trips keep the arity.
        while input_refs.last().is_some_and(|r| r.is_none()) {
            input_refs.pop();
        }
        let n_inputs = input_refs.len();
        let op: Box<dyn Op> = {
            let scope_chain: Vec<&HashMap<String, ValueType>> = std::iter::once(&types)
                .chain(outer.iter().copied())
                .collect();
            let hints = body_input_hints(&np.op_type, domain, opset, &np.input, &types);
            let sub = |sg: &GraphProto| build_graph(cx, sg, &scope_chain, &hints, depth + 1);
            let tl = |t: &onnx_protobuf::TensorProto| cx.src.load(t);
            let ncx = NodeCtx {
                op_type: &np.op_type,
                domain,
                opset,
                num_inputs: n_inputs,
                num_outputs: np.output.len(),
                node_name: &np.name,
                attrs: &np.attribute,
                subgraph: &sub,
                tensor: &tl,
            };
            match registry().get(domain, &np.op_type) {
                Some(b) => match b(&ncx) {
                    Ok(op) => op,
                    Err(e @ Error::Import(_)) if is_structural(&e) => return Err(e),
                    Err(e) => opaque(np, domain, e.to_string(), &declared_types),
                },
                None => opaque(np, domain, String::new(), &declared_types),
            }
        };
        let mut captures: Vec<String> = Vec::new();
        for sg in op.subgraphs() {
            for &c in &sg.captures {
                let name = &sg.g[c].outputs[0].name;
                if !captures.contains(name) {
                    captures.push(name.clone());
                }
            }
        }
        captures.sort(); // a canonical order, independent of the order nodes were read in
        let prov = Provenance {
            onnx_name: np.name.clone(),
            layer_path: layer_path(np),
            source: np
                .metadata_props
                .iter()
                .find(|p| p.key == "pkg.torch.onnx.stack_trace")
                .map(|p| p.value.lines().last().unwrap_or("").trim().to_string())
                .unwrap_or_default(),
        };
        let n = g.add_node(op, n_inputs + captures.len(), &np.output, prov);
        g.g[n].captures = captures.clone();
        for (i, r) in input_refs.iter().enumerate() {
            if let Some(r) = r {
                g.connect(*r, n, i);
            }
        }
        for (k, name) in captures.iter().enumerate() {
            let r = resolve(
                &mut g,
                &mut names,
                &mut types,
                outer,
                name,
                &np.name,
                &np.op_type,
            )?;
            g.connect(r, n, n_inputs + k);
        }
        match inf.infer_node(&mut g, n) {
            Ok(()) => {}
            Err(e) if cx.opts.strict_shapes => return Err(e),
            Err(_) => {}
        }
        for (i, o) in np.output.iter().enumerate() {
            if o.is_empty() {
                continue;
            }
            if names
                .insert(o.clone(), ValueRef { node: n, out: i })
                .is_some()
            {
                return Err(node_context(
                    &g,
                    n,
                    import_err!("value '{o}' is defined twice"),
                ));
            }
            types.insert(o.clone(), g.g[n].outputs[i].ty.clone());
        }
    }

    let mut seen = HashSet::new();
    for vi in &gp.output {
        if !seen.insert(vi.name.clone()) {
            return Err(import_err!(
                "graph '{}' lists output '{}' twice",
                gp.name,
                vi.name
            ));
        }
        let r = match names.get(&vi.name) {
            Some(r) => *r,
            None => resolve(
                &mut g,
                &mut names,
                &mut types,
                outer,
                &vi.name,
                "",
                "graph output",
            )?,
        };
        g.add_output(r, &vi.name);
    }
    Ok(g)
}

/// Errors that must fail the import rather than make the node opaque.
fn is_structural(e: &Error) -> bool {
    let m = e.to_string();
    m.contains("tensor '")
        || m.contains("nested")
        || m.contains("cycle")
        || m.contains("never defined")
        || m.contains("escapes")
}

/// Types for the formal inputs of a Loop or Scan body, from the node's own inputs, used where
/// the body leaves them untyped (as function bodies do). Shapes are left unknown: loop-carried
/// values may change shape between iterations.
fn body_input_hints(
    op_type: &str,
    domain: &str,
    opset: i64,
    inputs: &[String],
    types: &HashMap<String, ValueType>,
) -> Vec<Option<ValueType>> {
    if !domain.is_empty() {
        return Vec::new();
    }
    let of = |name: &String| types.get(name).map(|t| ValueType::unranked(t.dtype));
    match op_type {
        "Loop" => {
            let mut v = vec![
                Some(ValueType::known(DType::I64, &[])),
                Some(ValueType::known(DType::Bool, &[])),
            ];
            v.extend(inputs.iter().skip(2).map(of));
            v
        }
        "Scan" if opset >= 9 => inputs.iter().map(of).collect(),
        _ => Vec::new(),
    }
}

fn declared(vi: &ValueInfoProto, unk: &mut u64) -> Result<ValueType> {
    match vi.type_.as_ref() {
        Some(tp) => value_type(&vi.name, tp, unk),
        None => Err(import_err!("graph input '{}' has no type", vi.name)),
    }
}

/// An opaque op for a node the library cannot build; its outputs take the types the model
/// declares for them (value_info or graph outputs), where it declares any.
fn opaque(
    np: &NodeProto,
    domain: &str,
    reason: String,
    declared_types: &HashMap<String, ValueType>,
) -> Box<dyn Op> {
    Box::new(Opaque {
        op_type: np.op_type.clone(),
        domain: domain.to_string(),
        attributes: np
            .attribute
            .iter()
            .map(|a| (a.name.clone(), render_attr(a)))
            .collect(),
        declared: np
            .output
            .iter()
            .map(|o| declared_types.get(o).cloned())
            .collect(),
        reason,
        raw_attrs: np
            .attribute
            .iter()
            .filter_map(|a| a.write_to_bytes().ok())
            .collect(),
    })
}

/// Finds the value called `name`: local, or captured from an enclosing scope.
fn resolve(
    g: &mut Graph,
    names: &mut HashMap<String, ValueRef>,
    types: &mut HashMap<String, ValueType>,
    outer: &[&HashMap<String, ValueType>],
    name: &str,
    node: &str,
    op: &str,
) -> Result<ValueRef> {
    if let Some(r) = names.get(name) {
        return Ok(*r);
    }
    for scope in outer {
        if let Some(ty) = scope.get(name) {
            let n = g.add_node(
                Box::new(Input { ty: ty.clone() }),
                0,
                &[name.to_string()],
                Provenance::default(),
            );
            g.g[n].outputs[0].ty = ty.clone();
            g.captures.push(n);
            let r = ValueRef { node: n, out: 0 };
            names.insert(name.to_string(), r);
            types.insert(name.to_string(), ty.clone());
            return Ok(r);
        }
    }
    if node.is_empty() {
        return Err(import_err!(
            "{op} '{name}' is never defined (not an input, initializer or node output)"
        ));
    }
    Err(import_err!(
        "{op} node '{node}' uses value '{name}', which is never defined (not an input, initializer or node output)"
    ))
}
