//! The pass manager: order, statistics, configuration, a broken pass surfacing as an error that
//! names it, and `max_rewrites` stopping early (every prefix of the rewrites leaves a valid,
//! equivalent graph, so bisecting over it works).

use petasos_ir::builder::GraphBuilder;
use petasos_ir::interp;
use petasos_ir::op::Attr;
use petasos_ir::verify::verify;
use petasos_ir::{DType, Graph, Tensor, ValueType};
use petasos_passes::{
    by_name, registry, standard_pipeline, Pass, PassContext, PassError, PassManager, PassReport,
    PipelineConfig,
};

/// A graph with work for every standard pass: two foldable nodes (Transpose, Add), a duplicate
/// Relu, and a dead Neg.
fn messy() -> Graph {
    let mut b = GraphBuilder::new("messy", 3);
    let x = b.input("x", ValueType::known(DType::F32, &[2, 3]));
    let w = b.constant(
        "w",
        Tensor::from_f32(&[2, 3], vec![1.0, -2.0, 3.0, 0.5, 5.0, -6.0]).unwrap(),
    );
    let wt = b
        .op("Transpose", &[w], &[("perm", Attr::Ints(vec![1, 0]))])
        .unwrap();
    let r1 = b.op("Relu", &[x], &[]).unwrap();
    let r2 = b.op("Relu", &[x], &[]).unwrap();
    let s = b.op("Add", &[r1, r2], &[]).unwrap();
    let mm = b.op("MatMul", &[s, wt], &[]).unwrap();
    let one = b.scalar("one", DType::F32, 1.0);
    let two = b.scalar("two", DType::F32, 2.0);
    let three = b.op("Add", &[one, two], &[]).unwrap();
    let y = b.op("Mul", &[mm, three], &[]).unwrap();
    let _dead = b.op("Neg", &[x], &[]).unwrap();
    b.output(y, "y");
    b.finish().unwrap()
}

fn x23() -> Vec<Tensor> {
    vec![Tensor::from_f32(&[2, 3], vec![0.5, -1.0, 2.0, -0.25, 3.0, -4.0]).unwrap()]
}

fn assert_same_outputs(a: &Graph, b: &Graph) {
    let (p, q) = (
        interp::run(a, x23()).unwrap(),
        interp::run(b, x23()).unwrap(),
    );
    for (x, y) in p.iter().zip(&q) {
        let (x, y) = (x.to_f64_vec().unwrap(), y.to_f64_vec().unwrap());
        let scale = x.iter().fold(0f64, |m, v| m.max(v.abs()));
        for (u, v) in x.iter().zip(&y) {
            assert!((u - v).abs() <= 1e-5 * scale, "{u} vs {v}");
        }
    }
}

#[test]
fn standard_pipeline_passes_are_registered_and_documented() {
    for name in standard_pipeline() {
        let p = by_name(name).unwrap();
        assert_eq!(p.name(), name);
        assert!(!p.summary().is_empty());
    }
    let names: Vec<&str> = registry().iter().map(|p| p.name).collect();
    assert!(names.contains(&"const_fold") && names.contains(&"dce") && names.contains(&"cse"));
    let e = by_name("no_such_pass").err().unwrap().to_string();
    assert!(
        e.contains("no_such_pass") && e.contains("const_fold"),
        "{e}"
    );
}

#[test]
fn runs_passes_in_order_and_records_statistics() {
    let mut g = messy();
    let orig = g.clone();
    let m = PassManager::from_names(&["const_fold", "cse", "dce"]).unwrap();
    assert_eq!(m.names(), ["const_fold", "cse", "dce"]);
    let r = m.run(&mut g).unwrap();
    let order: Vec<&str> = r.passes.iter().map(|p| p.pass.as_str()).collect();
    assert_eq!(order, ["const_fold", "cse", "dce"]);
    let [cf, cse, dce] = &r.passes[..] else {
        panic!("three passes expected")
    };
    assert_eq!(cf.rewrites, 2);
    assert_eq!((cf.nodes_before, cf.nodes_after), (8, 6));
    assert!(cf.summary.contains("Transpose 1"), "{}", cf.summary);
    assert_eq!(cse.rewrites, 1);
    assert_eq!((cse.nodes_before, cse.nodes_after), (6, 5));
    // Dead: Neg, the folded-away constants w, one, two.
    assert_eq!(dce.rewrites, 4, "{}", dce.summary);
    assert_eq!(dce.nodes_after, 4);
    assert_eq!(dce.params_before, cse.params_after);
    assert_eq!(dce.params_after, 6 + 1);
    assert_eq!(r.rewrites, 7);
    assert!(!r.stopped_early);
    assert!(r.table().contains("const_fold"));
    verify(&g).unwrap();
    assert_same_outputs(&orig, &g);
    // A second run has nothing left to do.
    let again = m.run(&mut g).unwrap();
    assert_eq!(again.rewrites, 0);
}

/// A pass that breaks the graph: it changes a value's recorded dtype.
struct Breaker;
impl Pass for Breaker {
    fn name(&self) -> &'static str {
        "breaker"
    }
    fn summary(&self) -> &'static str {
        "changes a Relu's output dtype (test only)"
    }
    fn run(&self, g: &mut Graph, _cx: &PassContext) -> Result<PassReport, PassError> {
        for n in g.g.node_weights_mut() {
            if n.op.op_type() == "Relu" {
                n.outputs[0].ty.dtype = DType::I64;
            }
        }
        Ok(PassReport::new(1, "broke a Relu"))
    }
}

#[test]
fn a_pass_that_breaks_the_graph_is_named_in_the_error() {
    let mut g = messy();
    let m = PassManager::from_names(&["const_fold"])
        .unwrap()
        .with_pass(Box::new(Breaker))
        .with_pass(by_name("dce").unwrap());
    let e = m.run(&mut g).unwrap_err();
    assert!(matches!(&e, PassError::Verify { pass, .. } if pass == "breaker"));
    let msg = e.to_string();
    assert!(msg.contains("'breaker'"), "{msg}");
}

#[test]
fn an_invalid_input_graph_is_reported_before_any_pass() {
    let mut g = messy();
    for n in g.g.node_weights_mut() {
        if n.op.op_type() == "MatMul" {
            n.outputs[0].ty.dtype = DType::I32;
        }
    }
    let e = PassManager::standard().run(&mut g).unwrap_err();
    assert!(matches!(e, PassError::InvalidInput(_)), "{e}");
}

#[test]
fn max_rewrites_stops_early_and_every_prefix_is_valid() {
    let orig = messy();
    let full = PassManager::standard().run(&mut orig.clone()).unwrap();
    assert_eq!(full.rewrites, 7);
    for k in 0..=full.rewrites {
        let mut g = orig.clone();
        let r = PassManager::standard()
            .max_rewrites(Some(k))
            .run(&mut g)
            .unwrap();
        assert_eq!(r.rewrites, k);
        assert!(r.stopped_early);
        verify(&g).unwrap();
        assert_same_outputs(&orig, &g);
    }
    // Budget 3: const_fold spends 2, the rewrite passes find nothing, cse spends 1, then dce
    // is not run.
    let mut g = orig.clone();
    let r = PassManager::standard()
        .max_rewrites(Some(3))
        .run(&mut g)
        .unwrap();
    let ran: Vec<&str> = r.passes.iter().map(|p| p.pass.as_str()).collect();
    assert_eq!(
        ran,
        [
            "const_fold",
            "bn_fold",
            "bias_fusion",
            "shape_simplify",
            "cse"
        ]
    );
}

#[test]
fn every_registered_pass_honours_a_zero_budget() {
    for p in registry() {
        let mut g = messy();
        let r = (p.make)()
            .run(&mut g, &PassContext::with_budget(0))
            .unwrap();
        assert_eq!(r.rewrites, 0, "{}", p.name);
        assert_eq!(g.g.node_count(), messy().g.node_count(), "{}", p.name);
    }
}

#[test]
fn configured_from_json() {
    let cfg: PipelineConfig =
        serde_json::from_str(r#"{"passes": ["cse", "dce"], "max_rewrites": 2}"#).unwrap();
    assert_eq!(cfg.iterations, 1);
    let mut g = messy();
    let r = PassManager::from_config(&cfg).unwrap().run(&mut g).unwrap();
    assert_eq!(r.rewrites, 2);
    assert_eq!(r.passes[0].pass, "cse");
    assert_eq!(PipelineConfig::default().passes, standard_pipeline());
    let bad = serde_json::from_str::<PipelineConfig>(r#"{"passes": [], "typo": 1}"#);
    assert!(bad.is_err());
    let unknown: PipelineConfig = serde_json::from_str(r#"{"passes": ["fold"]}"#).unwrap();
    assert!(matches!(
        PassManager::from_config(&unknown),
        Err(PassError::UnknownPass(n)) if n == "fold"
    ));
}

#[test]
fn iterations_repeat_until_nothing_changes() {
    // dce then const_fold: the fold leaves dead constants that only a second round removes.
    let mut g = messy();
    let cfg = PipelineConfig {
        passes: vec!["dce".into(), "const_fold".into()],
        iterations: 5,
        ..Default::default()
    };
    let r = PassManager::from_config(&cfg).unwrap().run(&mut g).unwrap();
    let rounds = r.passes.iter().map(|p| p.round).max().unwrap();
    assert_eq!(
        rounds, 2,
        "round 0 rewrites, round 1 removes the dead, round 2 is idle"
    );
    assert_eq!(r.passes.last().unwrap().rewrites, 0);
    assert_eq!(count_constants(&g), 2);
}

fn count_constants(g: &Graph) -> usize {
    g.g.node_weights()
        .filter(|n| n.op.op_type() == "Constant")
        .count()
}
