//! A structural signature of a graph, for round-trip comparisons.

use petasos_ir::op::Attr;
use petasos_ir::Graph;

/// One line per node (sorted, so node numbering does not matter): op (with typed attributes, as JSON), input value
/// names, output names and types; constants add a checksum of their bytes. Subgraphs nest.
pub fn signature(g: &Graph) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(order) = g.topo_order() else {
        return vec!["<cycle>".into()];
    };
    for n in order {
        let node = &g.g[n];
        let ins: Vec<String> = g
            .node_inputs(n)
            .iter()
            .map(|v| v.and_then(|v| g.value_name(v)).unwrap_or("").to_string())
            .collect();
        let outs: Vec<String> = node
            .outputs
            .iter()
            .map(|v| format!("{}:{}", v.name, v.ty.dtype))
            .collect();
        let op = if let Some(c) = g.constant(n) {
            let sum = c
                .bytes()
                .ok()
                .flatten()
                .map(|b| {
                    b.iter().fold(0u64, |h, &x| {
                        h.wrapping_mul(1099511628211).wrapping_add(x as u64)
                    })
                })
                .unwrap_or(0);
            format!("Constant {} {:?} #{sum:x}", c.dtype, c.shape)
        } else if !node.op.subgraphs().is_empty() {
            // Subgraph node numbering may change across a round trip: render bodies by signature.
            let attrs: Vec<String> = node
                .op
                .attrs()
                .into_iter()
                .map(|(k, a)| match a {
                    Attr::Graph(g) => format!("{k}={{{}}}", signature(&g).join("; ")),
                    Attr::Graphs(gs) => format!(
                        "{k}=[{}]",
                        gs.iter()
                            .map(|g| signature(g).join("; "))
                            .collect::<Vec<_>>()
                            .join(" | ")
                    ),
                    other => format!("{k}={other:?}"),
                })
                .collect();
            format!(
                "{}.{}({})",
                node.op.domain(),
                node.op.op_type(),
                attrs.join(", ")
            )
        } else {
            serde_json::to_string(&node.op).unwrap_or_else(|e| format!("<unserialisable: {e}>"))
        };
        out.push(format!(
            "{op} ({}) -> ({})",
            ins.join(", "),
            outs.join(", ")
        ));
    }
    out.sort();
    for o in &g.outputs {
        out.push(format!("output {}", o.name));
    }
    out
}
