//! Comparisons: resnet18 against itself has every op matched and every delta zero; against a
//! copy pruned by the library's prune pass it is faster with fewer MACs, matched ops only lose
//! work, and the panel shows the summary and sorts by delta.

mod analysis_common;

use analysis_common::{load, price, pruned, shared_model};
use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use petasos_compiler::cost::Estimator;
use petasos_viewer::compare::{Comparison, Filter, MatchKind, SortBy};

fn against_itself(est_a: &Estimator, est_b: &Estimator) {
    let c = Comparison::new(est_a, est_b);
    assert_eq!(c.rows.len(), est_a.work.ops.len());
    assert!(c.rows.iter().all(|r| r.kind == MatchKind::ByName));
    assert!(c
        .rows
        .iter()
        .all(|r| r.latency_delta() == 0.0 && r.macs_delta() == 0.0));
    assert_eq!(c.a, c.b);
    for (label, _, _, delta, pct) in c.total_lines() {
        assert_eq!(delta, "0", "{label}");
        assert_eq!(pct, Some(0.0), "{label}");
    }
    let s = c.summary();
    assert!(
        s.contains("the same latency") && s.contains("every op matched"),
        "{s}"
    );
}

fn against_pruned(a: &Estimator, b: &Estimator, model: &str) -> Comparison {
    let c = Comparison::new(a, b).with_names(model, "pruned");
    let (sa, sb) = (&c.a.sums, &c.b.sums);
    eprintln!("{model}: {}", c.summary());
    assert!(sb.latency_s < sa.latency_s, "pruned is faster");
    assert!(sb.macs < sa.macs * 0.9, "pruned has fewer MACs");
    assert!(sb.weight_bytes < sa.weight_bytes);
    // Every op of each side appears once.
    let na = c.rows.iter().filter(|r| r.a.is_some()).count();
    let nb = c.rows.iter().filter(|r| r.b.is_some()).count();
    assert_eq!((na, nb), (a.work.ops.len(), b.work.ops.len()));
    // Matched convs lose MACs or keep them, never gain; some lose latency.
    let convs: Vec<_> = c
        .rows
        .iter()
        .filter(|r| r.kind.matched() && r.op_type == "Conv")
        .collect();
    assert!(!convs.is_empty());
    assert!(convs.iter().all(|r| r.macs_delta() <= 0.0));
    assert!(convs.iter().any(|r| r.macs_delta() < 0.0));
    assert!(convs.iter().any(|r| r.latency_delta() < 0.0));
    let (lines, summary) = (c.total_lines(), c.summary());
    let lat = lines
        .iter()
        .find(|l| l.0 == "latency")
        .expect("latency line");
    assert!(lat.3.starts_with('-'), "latency delta {}", lat.3);
    assert!(lat.4.is_some_and(|p| p < 0.0));
    assert!(
        summary.starts_with("pruned is ")
            && summary.contains("% faster")
            && summary.contains("% fewer MACs"),
        "{summary}"
    );
    // Sorting by latency delta puts the largest saving first.
    let order = c.sorted(SortBy::LatencyDelta, Filter::All);
    let deltas: Vec<f64> = order.iter().map(|&i| c.rows[i].latency_delta()).collect();
    assert!(deltas.windows(2).all(|w| w[0] <= w[1]));
    assert!(deltas.first().is_some_and(|d| *d < 0.0));
    let only_b = c.sorted(SortBy::Order, Filter::OnlyB);
    assert!(only_b.iter().all(|&i| c.rows[i].kind == MatchKind::OnlyB));
    c
}

#[test]
fn resnet18_preset_against_itself_and_pruned() {
    let g = load("resnet18");
    let a = price(&g, "apple-m2");
    against_itself(&a, &price(&g, "apple-m2"));
    let b = price(&pruned(&g, 0.3), "apple-m2");
    let c = against_pruned(&a, &b, "resnet18");

    // The panel shows the summary and the per-op table, and a sort/filter change works
    // through the UI.
    let summary = c.summary();
    let mut h = Harness::builder()
        .with_size([1100.0, 800.0])
        .build_ui_state(
            |ui, c: &mut Comparison| {
                c.show(ui);
            },
            c,
        );
    h.get_by_label(&summary);
    h.get_by_label("Show").click();
    h.run();
    h.get_by_label("only in B").click();
    h.run();
    let c = h.state();
    assert_eq!(c.filter, Filter::OnlyB);
    let (removed, added) = c.removed_added();
    eprintln!("resnet18 pruned: {removed} ops removed, {added} added");
    if added > 0 {
        let first = c.sorted(c.sort, Filter::OnlyB)[0];
        let name = c.rows[first].name.clone();
        assert!(h.query_all_by_label(&name).count() >= 1, "{name} listed");
    }
}

#[test]
fn layer_matching_pairs_renamed_ops() {
    let g = load("demo-cnn");
    let a = price(&g, "apple-m2");
    let mut b = price(&g, "apple-m2");
    for w in b.work.ops.iter_mut() {
        w.name = format!("renamed/{}", w.name);
    }
    let c = Comparison::new(&a, &b);
    // Ops with a layer path pair by (layer, op type); the rest stay apart.
    for r in &c.rows {
        match r.kind {
            MatchKind::ByLayer => {
                assert_eq!(r.latency_delta(), 0.0);
                let (ia, ib) = (r.a.expect("a"), r.b.expect("b"));
                assert_eq!(a.work.ops[ia].layer, b.work.ops[ib].layer);
            }
            MatchKind::ByName => panic!("names differ everywhere"),
            _ => {}
        }
    }
    assert!(c.rows.iter().any(|r| r.kind == MatchKind::ByLayer));
}

#[test]
fn shared_resnet18_against_itself_and_pruned() {
    let Some(p) = shared_model("shared_resnet18_against_itself_and_pruned", "resnet18") else {
        return;
    };
    let g = load(&p.display().to_string());
    let a = price(&g, "apple-m2");
    against_itself(&a, &price(&g, "apple-m2"));
    against_pruned(&a, &price(&pruned(&g, 0.3), "apple-m2"), "resnet18.onnx");
}
