//! The graph structure serialises with serde and comes back the same (weights above the inline
//! limit are kept by size only, so constants are compared by dtype and shape).

use petasos_tests::signature::signature;

fn structure(g: &petasos_ir::Graph) -> Vec<String> {
    signature(g)
        .into_iter()
        .map(|l| l.split(" #").next().unwrap_or("").to_string())
        .collect()
}

#[test]
fn demo_cnn_graph_round_trips_through_json() {
    let g = petasos_models::build("demo-cnn").expect("demo-cnn builds");
    let json = serde_json::to_string(&g).expect("serialise");
    let back: petasos_ir::Graph = serde_json::from_str(&json).expect("deserialise");
    assert_eq!(structure(&g), structure(&back));
    assert_eq!(g.inputs.len(), back.inputs.len());
    assert!(
        json.contains("\"Conv\"") || json.contains("Opaque"),
        "ops are serialised by name"
    );
}

#[test]
fn demo_cnn_runs_and_gives_probabilities() {
    let g = petasos_models::build("demo-cnn").expect("demo-cnn builds");
    petasos_ir::verify::verify(&g).expect("verifies");
    let x = petasos_ir::Tensor::from_f32(
        &[2, 3, 32, 32],
        (0..2 * 3 * 32 * 32)
            .map(|i| ((i % 17) as f32 - 8.0) / 8.0)
            .collect(),
    )
    .expect("input");
    let out = petasos_ir::interp::run(&g, vec![x]).expect("runs");
    let p = out[0].to_f64_vec().expect("floats");
    assert_eq!(out[0].shape(), &[2, 10]);
    for row in p.chunks(10) {
        let s: f64 = row.iter().sum();
        assert!((s - 1.0).abs() < 1e-5, "softmax rows sum to 1, got {s}");
        assert!(row.iter().all(|&v| v > 0.0));
    }
}
