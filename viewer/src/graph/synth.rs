//! Synthetic graphs for the benchmark and tests: a residual chain and a transformer-like
//! stack of blocks (q/k/v fan-out over heads, then joins). Both carry layer paths.

use super::{GEdge, GNode, GraphData};

fn push(g: &mut GraphData, op: &str, name: String, path: String) -> usize {
    g.nodes.push(GNode {
        label: name,
        op_type: op.to_string(),
        path,
    });
    g.nodes.len() - 1
}

fn edge(g: &mut GraphData, from: usize, to: usize, label: &str) {
    g.edges.push(GEdge {
        from,
        to,
        label: label.to_string(),
    });
}

/// A chain of `n` nodes grouped as `/stage{s}/block{b}/...` (50 ops per block, 20 blocks per
/// stage) where every fourth node is an `Add` that also takes the output from three nodes back
/// (a residual skip).
pub fn residual_chain(n: usize) -> GraphData {
    let mut g = GraphData::default();
    const OPS: [&str; 4] = ["Conv", "BatchNormalization", "Relu", "Add"];
    for i in 0..n {
        let op = OPS[i % 4];
        let (block, stage) = (i / 50, i / 1000);
        let path = format!("/stage{stage}/block{block}/{}{i}", op.to_lowercase());
        let v = push(&mut g, op, format!("{}_{i}", op.to_lowercase()), path);
        if i > 0 {
            edge(&mut g, v - 1, v, "float[1,64,56,56]");
        }
        if op == "Add" && i >= 3 {
            edge(&mut g, v - 3, v, "float[1,64,56,56]");
        }
    }
    g
}

/// A transformer-like stack with about `n` nodes: each block is LayerNorm, q/k/v projections,
/// per head QK^T -> Softmax -> AV, a Concat join of the heads, the output projection, a residual
/// Add, then LayerNorm -> MLP up -> Gelu -> down -> Add. Paths are `/layers/{b}/attn/...` and
/// `/layers/{b}/mlp/...`.
pub fn transformer(n: usize, heads: usize) -> GraphData {
    let heads = heads.max(1);
    let per_block = 13 + 3 * heads;
    let blocks = n.div_ceil(per_block).max(1);
    let mut g = GraphData::default();
    let t = "float[1,128,768]";
    let mut x = push(&mut g, "Gather", "embed".into(), "/embed".into());
    for b in 0..blocks {
        let p = |s: &str| format!("/layers/{b}/{s}");
        let ln = push(&mut g, "LayerNormalization", format!("ln1_{b}"), p("ln1"));
        edge(&mut g, x, ln, t);
        let mut qkv = [0usize; 3];
        for (k, name) in ["q_proj", "k_proj", "v_proj"].iter().enumerate() {
            qkv[k] = push(
                &mut g,
                "MatMul",
                format!("{name}_{b}"),
                p(&format!("attn/{name}")),
            );
            edge(&mut g, ln, qkv[k], t);
        }
        let concat = heads_and_join(&mut g, b, heads, qkv);
        let o = push(&mut g, "MatMul", format!("o_proj_{b}"), p("attn/o_proj"));
        edge(&mut g, concat, o, t);
        let add1 = push(&mut g, "Add", format!("add1_{b}"), p("add1"));
        edge(&mut g, o, add1, t);
        edge(&mut g, x, add1, t);
        let ln2 = push(&mut g, "LayerNormalization", format!("ln2_{b}"), p("ln2"));
        edge(&mut g, add1, ln2, t);
        let up = push(&mut g, "MatMul", format!("up_{b}"), p("mlp/up"));
        edge(&mut g, ln2, up, "float[1,128,3072]");
        let act = push(&mut g, "Gelu", format!("gelu_{b}"), p("mlp/act"));
        edge(&mut g, up, act, "float[1,128,3072]");
        let down = push(&mut g, "MatMul", format!("down_{b}"), p("mlp/down"));
        edge(&mut g, act, down, "float[1,128,3072]");
        let add2 = push(&mut g, "Add", format!("add2_{b}"), p("add2"));
        edge(&mut g, down, add2, t);
        edge(&mut g, add1, add2, t);
        x = add2;
    }
    let head = push(&mut g, "MatMul", "lm_head".into(), "/lm_head".into());
    edge(&mut g, x, head, "float[1,128,50257]");
    g
}

/// Per head: QK^T, Softmax, AV; then the Concat join. Returns the Concat node.
fn heads_and_join(g: &mut GraphData, b: usize, heads: usize, qkv: [usize; 3]) -> usize {
    let mut outs = Vec::with_capacity(heads);
    for h in 0..heads {
        let p = |s: &str| format!("/layers/{b}/attn/head{h}/{s}");
        let qk = push(g, "MatMul", format!("qk_{b}_{h}"), p("qk"));
        edge(g, qkv[0], qk, "float[1,12,128,64]");
        edge(g, qkv[1], qk, "float[1,12,128,64]");
        let sm = push(g, "Softmax", format!("softmax_{b}_{h}"), p("softmax"));
        edge(g, qk, sm, "float[1,12,128,128]");
        let av = push(g, "MatMul", format!("av_{b}_{h}"), p("av"));
        edge(g, sm, av, "float[1,12,128,128]");
        edge(g, qkv[2], av, "float[1,12,128,64]");
        outs.push(av);
    }
    let c = push(
        g,
        "Concat",
        format!("concat_{b}"),
        format!("/layers/{b}/attn/concat"),
    );
    for o in outs {
        edge(g, o, c, "float[1,128,64]");
    }
    c
}
