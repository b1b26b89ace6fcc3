//! The graph view's layout and hierarchy on real models: the shared ONNX files (resnet18,
//! densenet121, tiny_llama; read from $PETASOS_SHARED) and the built-in afm-server-ptmoe
//! (12,900 ops, no files needed). Checks the layout invariants, that the default collapse
//! gives a manageable number of boxes, and prints the timings.

use petasos_ir::graph::Graph;
use petasos_ir::ValueRef;
use petasos_viewer::graph::hierarchy::Hierarchy;
use petasos_viewer::graph::{build_scene, GEdge, GNode, GraphData};
use std::collections::HashMap;

/// Op nodes of `g` (not inputs or constants) in topological order, edges between them labelled
/// with the producer's value type. (The app's own conversion lives in its document module.)
fn graph_data(g: &Graph) -> GraphData {
    let order = g.topo_order().expect("acyclic");
    let is_op = |n| {
        g.g.node_weight(n)
            .is_some_and(|w| !matches!(w.op.op_type(), "Input" | "Constant"))
    };
    let mut index = HashMap::new();
    let mut data = GraphData::default();
    for &n in order.iter().filter(|&&n| is_op(n)) {
        let w = &g.g[n];
        index.insert(n, data.nodes.len());
        let label = if w.provenance.onnx_name.is_empty() {
            w.outputs
                .first()
                .map(|v| v.name.clone())
                .unwrap_or_default()
        } else {
            w.provenance.onnx_name.clone()
        };
        data.nodes.push(GNode {
            label,
            op_type: w.op.op_type().to_string(),
            path: w.provenance.layer_path.clone(),
        });
    }
    for e in g.g.edge_indices() {
        let Some((src, dst)) = g.g.edge_endpoints(e) else {
            continue;
        };
        if let (Some(&a), Some(&b)) = (index.get(&src), index.get(&dst)) {
            let v = ValueRef {
                node: src,
                out: g.g[e].src_out,
            };
            data.edges.push(GEdge {
                from: a,
                to: b,
                label: g.value_type(v).map(|t| t.to_string()).unwrap_or_default(),
            });
        }
    }
    data
}

/// Renders the default view (fitted) and a 100% view of the first op with wgpu into the test
/// tmp dir, for inspection; prints NOT RUN when there is no adapter.
fn render(name: &str, data: GraphData) {
    use petasos_viewer::graph::{Camera, GraphView, NodeStyle};
    let data = std::sync::Arc::new(data);
    let mut v = GraphView::new(data);
    v.wait_for_layout();
    let mut h = egui_kittest::Harness::builder()
        .with_size(egui::vec2(1200.0, 800.0))
        .build_ui_state(
            |ui, v: &mut GraphView| {
                let mut sel = None;
                v.show(ui, &NodeStyle::default(), &mut sel);
            },
            v,
        );
    h.run_steps(2);
    for (suffix, cam) in [("fit", None), ("top", Some(1.0))] {
        if let Some(zoom) = cam {
            let top = h.state().scene().map(|s| s.layout.bounds);
            if let Some(b) = top {
                h.state_mut().set_camera(Camera {
                    center: egui::pos2(b.center().x, b.min.y + 380.0),
                    zoom,
                });
            }
            h.run_steps(1);
        }
        match h.render() {
            Ok(img) => {
                let p = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
                    .join(format!("graph_{name}_{suffix}.png"));
                if img.save(&p).is_ok() {
                    eprintln!("wrote {}", p.display());
                }
            }
            Err(e) => eprintln!("NOT RUN: no wgpu adapter ({e})"),
        }
    }
}

fn check(name: &str, g: &Graph) {
    let data = graph_data(g);
    assert!(!data.nodes.is_empty(), "{name}: no ops");
    let mut h = Hierarchy::new(&data);
    h.expand_all();
    let t0 = std::time::Instant::now();
    let s = build_scene(&data, &h, &|_| {});
    let full = t0.elapsed().as_secs_f64() * 1e3;
    for (e, ve) in s.vis.edges.iter().enumerate() {
        if !s.layout.reversed[e] {
            assert!(
                s.layout.rank[ve.from] < s.layout.rank[ve.to],
                "{name}: edge {e} not downwards"
            );
        }
    }
    assert!(
        s.layout.reversed.iter().all(|&r| !r),
        "{name}: a DAG needs no reversal"
    );
    h.auto_collapse(petasos_viewer::graph::view::DEFAULT_BUDGET);
    let t0 = std::time::Instant::now();
    let c = build_scene(&data, &h, &|_| {});
    let collapsed = t0.elapsed().as_secs_f64() * 1e3;
    eprintln!(
        "{name}: {} ops, {} edges, {} groups; full layout {full:.1} ms ({} ranks, {} dummies, {:.0}x{:.0}); default collapse {} boxes in {collapsed:.1} ms",
        data.nodes.len(),
        data.edges.len(),
        h.groups().len() - 1,
        s.layout.rank_top.len(),
        s.layout.dummies,
        s.layout.bounds.width(),
        s.layout.bounds.height(),
        c.vis.items.len(),
    );
    assert!(c.vis.items.len() <= data.nodes.len());
    assert_eq!(c.vis.item_count.iter().sum::<usize>(), data.nodes.len());
}

#[test]
fn shared_models() {
    let Ok(dir) = std::env::var("PETASOS_SHARED") else {
        eprintln!("NOT RUN: PETASOS_SHARED unset");
        return;
    };
    for m in ["resnet18", "densenet121", "tiny_llama"] {
        let path = std::path::Path::new(&dir).join(format!("models/{m}.onnx"));
        let g = petasos_ir::onnx::import_file(&path).expect("model imports");
        check(m, &g);
        if m != "tiny_llama" {
            render(m, graph_data(&g));
        }
    }
}

#[test]
fn builtin_ptmoe() {
    let g = petasos_models::build("afm-server-ptmoe").expect("builds");
    check("afm-server-ptmoe", &g);
}
