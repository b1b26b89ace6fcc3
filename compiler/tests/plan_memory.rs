//! Memory planner: a replay of the schedule checks every plan (no two simultaneously live
//! buffers overlap in the arena, every read happens while its buffer is live, the timeline and
//! totals add up, the arena is never below the largest live set) on seeded random DAGs,
//! hand-built graphs with known answers, resnet18 (built-in and, with PETASOS_SHARED, the ONNX
//! file) and the KV cache of afm-ondevice-2025 with and without KV sharing.

use petasos_compiler::plan::{
    kv_cache, kv_cache_bytes, plan, BufferKind, Fit, MemoryPlan, Order, PlanError, PlanOptions,
    Strategy,
};
use petasos_ir::builder::GraphBuilder;
use petasos_ir::graph::{Edge, ValueRef};
use petasos_ir::op::Attr;
use petasos_ir::{DType, Dim, Graph, ValueType};
use petasos_models::{build_with, BuildOptions, Phase};
use std::collections::HashMap;

/// Replays `p` over `g` and checks every invariant of a memory plan.
fn replay(g: &Graph, p: &MemoryPlan) {
    let steps = p.steps();
    assert!(steps >= 1);
    let by_value: HashMap<ValueRef, usize> = p
        .buffers
        .iter()
        .enumerate()
        .map(|(i, b)| (b.value, i))
        .collect();
    assert_eq!(by_value.len(), p.buffers.len(), "one buffer per value");
    // The order runs every op node once, after its producers.
    let ops: Vec<_> =
        g.g.node_indices()
            .filter(|&n| !matches!(g.g[n].op.op_type(), "Input" | "Constant"))
            .collect();
    assert_eq!(p.order.len(), ops.len());
    let mut step_of = HashMap::new();
    for (i, &n) in p.order.iter().enumerate() {
        assert!(step_of.insert(n, i).is_none(), "a node runs twice");
    }
    for (step, &n) in p.order.iter().enumerate() {
        for v in g.node_inputs(n).into_iter().flatten() {
            if g.constant(v.node).is_some() {
                assert!(!by_value.contains_key(&v), "a constant is not a buffer");
                continue;
            }
            let b = &p.buffers[by_value[&v]];
            assert!(
                b.first <= step && step <= b.last,
                "{} read at step {step} outside its life {}..={}",
                b.name,
                b.first,
                b.last
            );
            if let Some(&s) = step_of.get(&v.node) {
                assert!(s < step, "{} read before it is computed", b.name);
            }
        }
        for out in 0..g.g[n].outputs.len() {
            let b = &p.buffers[by_value[&ValueRef { node: n, out }]];
            assert_eq!(b.first, step, "{} defined at its first step", b.name);
        }
    }
    for &i in &g.inputs {
        let b = &p.buffers[by_value[&ValueRef { node: i, out: 0 }]];
        assert_eq!((b.first, b.kind), (0, BufferKind::Input));
    }
    for o in &g.outputs {
        if let Some(&i) = by_value.get(&o.value) {
            assert_eq!(
                p.buffers[i].last,
                steps - 1,
                "output {} lives to the end",
                o.name
            );
        }
    }
    // At every step: live buffers are disjoint in the arena and sum to the timeline.
    let mut max_live = 0;
    for t in 0..steps {
        let mut live: Vec<_> = p
            .buffers
            .iter()
            .filter(|b| b.first <= t && t <= b.last)
            .collect();
        let sum: u64 = live.iter().map(|b| b.bytes).sum();
        assert_eq!(p.timeline[t], sum, "timeline at step {t}");
        max_live = max_live.max(sum);
        live.retain(|b| b.bytes > 0);
        live.sort_by_key(|b| b.offset);
        for w in live.windows(2) {
            assert!(
                w[0].offset + w[0].bytes <= w[1].offset,
                "step {t}: {} [{}, +{}) overlaps {} at {}",
                w[0].name,
                w[0].offset,
                w[0].bytes,
                w[1].name,
                w[1].offset
            );
        }
        for b in live {
            assert!(
                b.offset + b.bytes <= p.arena_bytes,
                "{} beyond the arena",
                b.name
            );
        }
    }
    assert_eq!(p.max_live_bytes, max_live);
    assert_eq!(p.timeline[p.peak_step], max_live);
    assert!(
        p.arena_bytes >= p.max_live_bytes,
        "arena below the live set"
    );
    assert_eq!(
        p.naive_bytes,
        p.buffers.iter().map(|b| b.bytes).sum::<u64>()
    );
    assert!(p.arena_bytes <= p.naive_bytes.next_multiple_of(64) * 2 + 64 * p.buffers.len() as u64);
}

/// Every strategy, fit and alignment worth checking.
fn all_options(dims: &[(&str, u64)]) -> Vec<PlanOptions> {
    let mut v = Vec::new();
    for order in [Order::Graph, Order::Insertion] {
        for strategy in [Strategy::Auto, Strategy::GreedyBySize, Strategy::Sweep] {
            for fit in [Fit::Best, Fit::First] {
                for alignment in [1, 64] {
                    let mut o = PlanOptions {
                        strategy,
                        fit,
                        alignment,
                        order,
                        ..Default::default()
                    };
                    for &(k, x) in dims {
                        o = o.with_dim(k, x);
                    }
                    v.push(o);
                }
            }
        }
    }
    v
}

/// A xorshift generator for reproducible random graphs.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A random DAG over `[batch, w]` values: MatMul (new width), Relu, Add, Concat (wider), TopK
/// (two outputs, the indices often unused); random values become outputs.
fn random_graph(seed: u64, nodes: usize) -> Graph {
    let mut r = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut b = GraphBuilder::new("random", seed);
    let mut vals: Vec<(ValueRef, u64)> = Vec::new();
    for i in 0..1 + r.below(3) {
        let w = 1 + r.below(64) as u64;
        let ty = ValueType::new(DType::F32, vec![Dim::sym("batch"), Dim::Known(w)]);
        vals.push((b.input(&format!("x{i}"), ty), w));
    }
    for _ in 0..nodes {
        let (x, wx) = vals[r.below(vals.len())];
        let (y, wy) = vals[r.below(vals.len())];
        let made = match r.below(5) {
            0 => {
                let wo = 1 + r.below(96);
                let w = b.weight("w", DType::F32, &[wx as usize, wo], 0.1);
                vec![(b.op("MatMul", &[x, w], &[]).unwrap(), wo as u64)]
            }
            1 => vec![(b.op("Relu", &[x], &[]).unwrap(), wx)],
            2 if wx == wy => vec![(b.op("Add", &[x, y], &[]).unwrap(), wx)],
            3 => {
                let c = b.op("Concat", &[x, y], &[("axis", Attr::Int(1))]).unwrap();
                vec![(c, wx + wy)]
            }
            _ => {
                let k = b.ints("k", &[1]).unwrap();
                let o = b
                    .node(
                        "",
                        "TopK",
                        &[Some(x), Some(k)],
                        &[("axis", Attr::Int(1))],
                        2,
                    )
                    .unwrap();
                vec![(o[0], 1), (o[1], 1)]
            }
        };
        for (v, w) in made {
            // Index outputs are int64: keep only float values as operands.
            if b.ty(v).map(|t| t.dtype) == Some(DType::F32) {
                vals.push((v, w));
            }
        }
    }
    let n = vals.len();
    for i in 0..1 + r.below(3) {
        let (v, _) = vals[n - 1 - r.below(n.min(8))];
        b.output(v, &format!("y{i}"));
    }
    b.finish().unwrap()
}

#[test]
fn random_dags_replay_cleanly_under_every_option() {
    let mut strictly_reused = 0;
    for seed in 1..=40 {
        let g = random_graph(seed, 10 + (seed as usize * 7) % 50);
        for o in all_options(&[("batch", 1 + seed % 4)]) {
            let p = plan(&g, &o).unwrap();
            replay(&g, &p);
            assert!(p.assumed_dims.is_empty());
            assert_ne!(p.strategy, Strategy::Auto);
            if p.arena_bytes < p.naive_bytes {
                strictly_reused += 1;
            }
        }
    }
    assert!(
        strictly_reused > 100,
        "the arena reuses memory: {strictly_reused}"
    );
}

#[test]
fn auto_keeps_the_smaller_arena() {
    for seed in 1..=20 {
        let g = random_graph(seed, 40);
        let a = |s| {
            plan(
                &g,
                &PlanOptions {
                    strategy: s,
                    ..Default::default()
                },
            )
            .unwrap()
            .arena_bytes
        };
        assert_eq!(
            a(Strategy::Auto),
            a(Strategy::GreedyBySize).min(a(Strategy::Sweep))
        );
    }
}

/// x [1, 256] f32 -> Relu -> Relu -> Relu -> y: at most two 1 KiB buffers live at once.
fn chain() -> Graph {
    let mut b = GraphBuilder::new("chain", 0);
    let x = b.input("x", ValueType::known(DType::F32, &[1, 256]));
    let r1 = b.op("Relu", &[x], &[]).unwrap();
    let r2 = b.op("Relu", &[r1], &[]).unwrap();
    let r3 = b.op("Relu", &[r2], &[]).unwrap();
    b.output(r3, "y");
    b.finish().unwrap()
}

#[test]
fn a_chain_needs_two_buffers() {
    let g = chain();
    for o in all_options(&[]) {
        let p = plan(&g, &o).unwrap();
        replay(&g, &p);
        let life: Vec<_> = p.buffers.iter().map(|b| (b.first, b.last)).collect();
        assert_eq!(life, [(0, 0), (0, 1), (1, 2), (2, 2)]);
        assert_eq!(p.timeline, [2048, 2048, 2048]);
        assert_eq!(p.naive_bytes, 4096);
        assert_eq!(p.max_live_bytes, 2048);
        assert_eq!(p.arena_bytes, 2048, "{:?}", o.strategy);
        assert_eq!(p.weight_bytes, 0);
    }
}

#[test]
fn symbols_bind_from_options_or_count_as_one() {
    let mut b = GraphBuilder::new("sym", 0);
    let x = b.input(
        "x",
        ValueType::new(
            DType::F16,
            vec![Dim::sym("batch"), Dim::sym("S"), Dim::Known(8)],
        ),
    );
    let w = b.weight("w", DType::I4, &[8, 16], 0.1);
    let wf = b.op("Cast", &[w], &[("to", Attr::Int(10))]).unwrap();
    let y = b.op("MatMul", &[x, wf], &[]).unwrap();
    b.output(y, "y");
    let g = b.finish().unwrap();

    let p = plan(&g, &PlanOptions::default()).unwrap();
    replay(&g, &p);
    assert_eq!(p.assumed_dims.keys().collect::<Vec<_>>(), ["S"]);
    assert_eq!(p.buffers[0].bytes, 8 * 2);
    assert_eq!(
        p.weight_bytes,
        8 * 16 / 2,
        "int4 weights at their stored width"
    );

    let p = plan(
        &g,
        &PlanOptions::default()
            .with_dim("S", 100)
            .with_dim("batch", 3),
    )
    .unwrap();
    replay(&g, &p);
    assert!(p.assumed_dims.is_empty());
    assert_eq!(p.buffers[0].bytes, 3 * 100 * 8 * 2);
    let y = p
        .buffers
        .iter()
        .find(|b| b.kind == BufferKind::Output)
        .unwrap();
    assert_eq!(y.bytes, 3 * 100 * 16 * 2);
}

#[test]
fn a_cycle_is_an_error() {
    let mut g = chain();
    let relus: Vec<_> =
        g.g.node_indices()
            .filter(|&n| g.g[n].op.op_type() == "Relu")
            .collect();
    g.g.add_edge(
        relus[2],
        relus[0],
        Edge {
            src_out: 0,
            dst_in: 1,
        },
    );
    for order in [Order::Graph, Order::Insertion] {
        let o = PlanOptions {
            order,
            ..Default::default()
        };
        let e = plan(&g, &o).unwrap_err();
        assert!(matches!(e, PlanError::Ir(_)), "{e}");
        assert!(e.to_string().contains("cycle"), "{e}");
    }
}

fn report(what: &str, p: &MemoryPlan) {
    println!(
        "{what}: {} buffers, {} steps; arena {} bytes ({:.2} MB, {:?}), largest live set {} \
         bytes, naive sum {} bytes ({:.2} MB), weights {} bytes",
        p.buffers.len(),
        p.steps(),
        p.arena_bytes,
        p.arena_bytes as f64 / 1e6,
        p.strategy,
        p.max_live_bytes,
        p.naive_bytes,
        p.naive_bytes as f64 / 1e6,
        p.weight_bytes
    );
}

#[test]
fn resnet18_builtin_at_batch_1() {
    let g = build_with("resnet18", &BuildOptions::default()).unwrap();
    let p = plan(&g, &PlanOptions::default()).unwrap();
    replay(&g, &p);
    report("resnet18 (built-in), batch 1", &p);
    assert!(p.assumed_dims.is_empty(), "{:?}", p.assumed_dims);
    // The input image and the 64x112x112 stem output are live together.
    assert!(p.max_live_bytes >= 3 * 224 * 224 * 4 + 64 * 112 * 112 * 4);
    assert!(
        p.arena_bytes * 4 < p.naive_bytes,
        "reuse cuts memory by > 4x"
    );
    // 11,689,512 f32 parameters and nothing else stored.
    assert!(p.weight_bytes >= 11_689_512 * 4 && p.weight_bytes < 11_800_000 * 4);
}

#[test]
fn resnet18_onnx_at_batch_1() {
    let Some(shared) = std::env::var_os("PETASOS_SHARED") else {
        eprintln!(
            "!!!!! resnet18_onnx_at_batch_1: NOT RUN: set PETASOS_SHARED to the shared data \
             folder to plan models/resnet18.onnx !!!!!"
        );
        return;
    };
    let path = std::path::Path::new(&shared).join("models/resnet18.onnx");
    let g = petasos_ir::onnx::import_file(&path).unwrap();
    let p = plan(&g, &PlanOptions::default()).unwrap();
    replay(&g, &p);
    report("resnet18.onnx, batch 1", &p);
    assert!(
        p.arena_bytes * 3 < p.naive_bytes,
        "reuse cuts memory by > 3x"
    );
    assert!(p.max_live_bytes >= 3 * 224 * 224 * 4 + 64 * 112 * 112 * 4);
}

#[test]
fn afm_ondevice_kv_cache_with_and_without_sharing() {
    let decode = |overrides| {
        build_with(
            "afm-ondevice-2025",
            &BuildOptions {
                phase: Phase::Decode,
                overrides,
                ..Default::default()
            },
        )
        .unwrap()
    };
    // 35 cache-owning layers x (K, V) x 2 KV heads x 128 x 4096 tokens x 1 byte.
    let g = decode(None);
    let kv = kv_cache(&g, 4096, 8).unwrap();
    assert_eq!(kv.tensors, 70);
    assert_eq!(kv.elements_per_token, 35 * 2 * 2 * 128);
    assert_eq!(kv.bytes, 73_400_320);
    assert_eq!(kv_cache_bytes(&g, 4096, 16).unwrap(), 2 * 73_400_320);
    assert_eq!(kv_cache_bytes(&g, 4096, 4).unwrap(), 73_400_320 / 2);
    let shared = kv.bytes;

    let g = decode(Some(serde_json::json!({"kv_sharing": false})));
    let kv = kv_cache(&g, 4096, 8).unwrap();
    assert_eq!(kv.tensors, 112);
    assert_eq!(kv.bytes, 56 * 2 * 2 * 128 * 4096);
    assert_eq!(kv.bytes, 117_440_512);
    println!(
        "afm-ondevice-2025 KV cache at 4096 tokens, int8: {:.1} MB with sharing, {:.1} MB \
         without",
        shared as f64 / 1e6,
        kv.bytes as f64 / 1e6
    );

    // The prefill graph gives the same cache from its present outputs.
    let g = build_with("afm-ondevice-2025", &BuildOptions::default()).unwrap();
    assert_eq!(kv_cache_bytes(&g, 4096, 8).unwrap(), 73_400_320);
    // A CNN has none.
    assert_eq!(kv_cache(&chain(), 4096, 8).unwrap().tensors, 0);
}
