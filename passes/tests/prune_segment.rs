//! Segment analysis and pruning heuristics (`passes::prune`) on small graphs and built-in models.

use petasos_ir::builder::GraphBuilder;
use petasos_ir::op::Attr;
use petasos_ir::{DType, Graph, ValueRef, ValueType};
use petasos_passes::prune::segment::{segments, Run, Segment};
use petgraph::stable_graph::NodeIndex;

fn input(b: &mut GraphBuilder, c: usize) -> ValueRef {
    b.input("x", ValueType::known(DType::F32, &[1, c, 8, 8]))
}

fn conv(b: &mut GraphBuilder, x: ValueRef, cin: usize, cout: usize) -> ValueRef {
    let w = b.weight("w", DType::F32, &[cout, cin, 3, 3], 0.1);
    b.op("Conv", &[x, w], &[("pads", Attr::Ints(vec![1, 1, 1, 1]))])
        .unwrap()
}

fn name(g: &Graph, n: NodeIndex) -> String {
    g.g[n].provenance.onnx_name.clone()
}

fn seg_of(segs: &[Segment], n: NodeIndex) -> &Segment {
    segs.iter().find(|s| s.producers.contains(&n)).unwrap()
}

#[test]
fn chain_one_segment_per_producer() {
    let mut b = GraphBuilder::new("chain", 1);
    let x = input(&mut b, 3);
    let y = conv(&mut b, x, 3, 4);
    let y = b.op("Relu", &[y], &[]).unwrap();
    let z = conv(&mut b, y, 4, 5);
    b.output(z, "out");
    let g = b.finish().unwrap();
    let segs = segments(&g).unwrap();
    assert_eq!(segs.len(), 2);
    assert_eq!(segs[0].producers.len(), 1);
    assert_eq!(segs[0].channels, 4);
    assert_eq!(segs[0].users.len(), 1);
    assert_eq!(segs[0].consumers.len(), 1);
    assert_eq!(segs[0].consumers[0].node, z.node);
    assert_eq!(segs[0].consumers[0].offset(), Some(0));
    assert_eq!(segs[0].prunable, Ok(()));
    assert_eq!(segs[1].channels, 5);
    let why = segs[1].prunable.clone().unwrap_err();
    assert!(why.contains("graph output 'out'"), "{why}");
}

#[test]
fn residual_add_merges_producers() {
    // E3: S = P1 + P2; K1 reads S, K2 reads P1.
    let mut b = GraphBuilder::new("residual", 1);
    let x = input(&mut b, 3);
    let p1 = conv(&mut b, x, 3, 4);
    let p2 = conv(&mut b, x, 3, 4);
    let bias = b.weight("bias", DType::F32, &[1, 4, 1, 1], 0.1);
    let p2 = b.op("Add", &[p2, bias], &[]).unwrap();
    let s = b.op("Add", &[p1, p2], &[]).unwrap();
    let k1 = conv(&mut b, s, 4, 2);
    let k2 = conv(&mut b, p1, 4, 2);
    let k = b.op("Add", &[k1, k2], &[]).unwrap();
    let k = b.op("GlobalAveragePool", &[k], &[]).unwrap();
    let k = b.op("Flatten", &[k], &[]).unwrap();
    b.output(k, "out");
    let g = b.finish().unwrap();
    let segs = segments(&g).unwrap();
    assert_eq!(segs.len(), 2, "{segs:#?}");
    let s0 = &segs[0];
    assert_eq!(s0.producers.len(), 2);
    assert!(s0.producers.contains(&p1.node));
    assert_eq!(s0.blocks.len(), 1, "summed producers share one block");
    assert_eq!(s0.channels, 4);
    assert_eq!(s0.users.len(), 2);
    assert_eq!(s0.consumers.len(), 2);
    assert!(s0.consumers.iter().all(|c| c.offset() == Some(0)));
    assert_eq!(s0.prunable, Ok(()));
    let why = segs[1].prunable.clone().unwrap_err();
    assert!(why.contains("Flatten"), "{why}");
}

#[test]
fn concat_composes_blocks_with_offsets() {
    // E4: K1 reads cat(P1, P2), K2 reads P1, K3 reads cat(P2, P1).
    let mut b = GraphBuilder::new("concat", 1);
    let x = input(&mut b, 3);
    let p1 = conv(&mut b, x, 3, 4);
    let p2 = conv(&mut b, x, 3, 3);
    let c = b
        .op("Concat", &[p1, p2], &[("axis", Attr::Int(1))])
        .unwrap();
    let k1 = conv(&mut b, c, 7, 2);
    let k2 = conv(&mut b, p1, 4, 2);
    let c2 = b
        .op("Concat", &[p2, p1], &[("axis", Attr::Int(-3))])
        .unwrap();
    let k3 = conv(&mut b, c2, 7, 2);
    let k = b.op("Sum", &[k1, k2, k3], &[]).unwrap();
    b.output(k, "out");
    let g = b.finish().unwrap();
    let segs = segments(&g).unwrap();
    assert_eq!(segs.len(), 2, "{segs:#?}");
    let s0 = &segs[0];
    let mut producers = s0.producers.clone();
    producers.sort();
    assert_eq!(producers, vec![p1.node, p2.node]);
    assert_eq!(s0.channels, 7);
    // Blocks are laid out in topological order, which may put either producer first.
    let at = |p: NodeIndex| {
        let b = s0.blocks.iter().find(|b| b.producers == vec![p]).unwrap();
        Run {
            offset: b.offset,
            len: b.channels,
        }
    };
    let (r1, r2) = (at(p1.node), at(p2.node));
    assert_eq!((r1.len, r2.len), (4, 3));
    let runs = |n: NodeIndex| s0.consumer(n).unwrap().runs.clone();
    let joined = |a: Run, b: Run| {
        if a.offset + a.len == b.offset {
            vec![Run {
                offset: a.offset,
                len: a.len + b.len,
            }]
        } else {
            vec![a, b]
        }
    };
    assert_eq!(runs(k1.node), joined(r1, r2));
    assert_eq!(runs(k2.node), vec![r1]);
    assert_eq!(runs(k3.node), joined(r2, r1));
    assert_eq!(s0.consumer(k1.node).unwrap().channels(), 7);
    assert_eq!(s0.consumer(k3.node).unwrap().channels(), 7);
    assert_eq!(s0.prunable, Ok(()));
    // Sum merges the three consumers' outputs into one block.
    assert_eq!(segs[1].blocks.len(), 1);
    assert_eq!(segs[1].producers.len(), 3);
}

#[test]
fn unknown_reader_and_outside_tensor_make_unprunable() {
    let mut b = GraphBuilder::new("odd", 1);
    let x = input(&mut b, 4);
    let p = conv(&mut b, x, 4, 4);
    let m = b.op("Mul", &[p, x], &[]).unwrap();
    let k = conv(&mut b, m, 4, 2);
    let q = conv(&mut b, x, 4, 4);
    let t = b
        .op("Transpose", &[q], &[("perm", Attr::Ints(vec![0, 2, 3, 1]))])
        .unwrap();
    b.output(k, "k");
    b.output(t, "t");
    let g = b.finish().unwrap();
    let segs = segments(&g).unwrap();
    let why = seg_of(&segs, p.node).prunable.clone().unwrap_err();
    assert!(why.contains("outside the segment"), "{why}");
    let why = seg_of(&segs, q.node).prunable.clone().unwrap_err();
    assert!(why.contains("Transpose"), "{why}");
}

#[test]
fn depthwise_conv_and_bn_are_users() {
    let mut b = GraphBuilder::new("dw", 1);
    let x = input(&mut b, 3);
    let p = conv(&mut b, x, 3, 6);
    let w = b.weight("dw", DType::F32, &[6, 1, 3, 3], 0.1);
    let d = b
        .op(
            "Conv",
            &[p, w],
            &[
                ("group", Attr::Int(6)),
                ("pads", Attr::Ints(vec![1, 1, 1, 1])),
            ],
        )
        .unwrap();
    let k = conv(&mut b, d, 6, 2);
    b.output(k, "out");
    let g = b.finish().unwrap();
    let segs = segments(&g).unwrap();
    assert_eq!(segs.len(), 2);
    assert_eq!(segs[0].users, vec![d.node]);
    assert_eq!(segs[0].consumers[0].node, k.node);
    assert_eq!(segs[0].prunable, Ok(()));
}

#[test]
fn resnet18_segments_follow_stages() {
    let g = petasos_models::build("resnet18").unwrap();
    let segs = segments(&g).unwrap();
    let by_name = |s: &str| {
        g.g.node_indices()
            .find(|&n| name(&g, n) == s)
            .unwrap_or_else(|| panic!("no node {s}"))
    };
    let names: Vec<Vec<String>> = segs
        .iter()
        .map(|s| s.producers.iter().map(|&p| name(&g, p)).collect())
        .collect();
    // Stem + layer1 convs2; layer2..4 downsample + conv2s; 8 block-internal; the fc.
    assert_eq!(segs.len(), 13, "{names:#?}");
    for stage in 1..=4 {
        let a = seg_of(&segs, by_name(&format!("/layer{stage}/0/conv2/Conv")));
        let b = seg_of(&segs, by_name(&format!("/layer{stage}/1/conv2/Conv")));
        assert_eq!(a.id, b.id, "stage {stage} blocks share a segment");
        assert_eq!(a.producers.len(), 3, "{:?}", names[a.id]);
        assert_eq!(a.blocks.len(), 1);
        // Consumers: the blocks' conv1s after the first (also the first in stage 1, which
        // shares the stem's segment), then the next stage's conv1 and downsample.
        if stage < 4 {
            assert_eq!(a.prunable, Ok(()), "stage {stage}");
            let expect = if stage == 1 { 4 } else { 3 };
            assert_eq!(a.consumers.len(), expect, "stage {stage}");
        } else {
            let why = a.prunable.clone().unwrap_err();
            assert!(why.contains("Flatten"), "{why}");
        }
        let inner = seg_of(&segs, by_name(&format!("/layer{stage}/0/conv1/Conv")));
        assert_eq!(inner.producers.len(), 1);
        assert_eq!(inner.consumers.len(), 1);
        assert_eq!(inner.prunable, Ok(()));
    }
    let prunable = segs.iter().filter(|s| s.prunable.is_ok()).count();
    assert_eq!(prunable, 11);
}

#[test]
fn densenet121_concat_segments() {
    let g = petasos_models::build("densenet121").unwrap();
    let segs = segments(&g).unwrap();
    // 4 dense-block segments, 58 bottleneck (conv1) segments, the classifier.
    assert_eq!(segs.len(), 63);
    let blocks: Vec<&Segment> = segs.iter().filter(|s| s.blocks.len() > 1).collect();
    assert_eq!(blocks.len(), 4);
    let layers = [6usize, 12, 24, 16];
    let mut init = 64;
    for (i, s) in blocks.iter().enumerate() {
        assert_eq!(s.blocks.len(), layers[i] + 1, "block {i}");
        assert_eq!(s.channels, init + 32 * layers[i]);
        // Layer j's conv1 reads the first init + 32 j channels; the block's last reader sees all.
        for (j, c) in s.consumers.iter().enumerate().take(layers[i]) {
            assert_eq!(
                c.runs,
                vec![Run {
                    offset: 0,
                    len: init + 32 * j
                }]
            );
        }
        for (j, blk) in s.blocks.iter().enumerate().skip(1) {
            assert_eq!(blk.offset, init + 32 * (j - 1));
        }
        if i < 3 {
            assert_eq!(s.prunable, Ok(()), "block {i}");
            assert_eq!(s.consumers.len(), layers[i] + 1);
        } else {
            assert!(s.prunable.is_err());
        }
        init = (init + 32 * layers[i]) / 2;
    }
}

mod heuristics {
    use super::*;
    use petasos_ir::Tensor;
    use petasos_passes::prune::heuristic::{
        columns, explicit_masks, importance, masks_by_amount, scores, Criterion, Scope,
    };
    use petasos_passes::prune::segment::PruneError;
    use std::collections::BTreeMap;

    /// P (conv 3->3) feeds K1 (1x1 conv, weight [[1, -2, 0.5], [3, 0, -0.5]]) and
    /// K2 (1x1 conv, weight [[0.1, 0.2, 5]]); both outputs are graph outputs.
    fn graph() -> (Graph, NodeIndex, NodeIndex) {
        let mut b = GraphBuilder::new("h", 1);
        let x = input(&mut b, 3);
        let p = conv(&mut b, x, 3, 3);
        let w1 = Tensor::from_f32(&[2, 3, 1, 1], vec![1.0, -2.0, 0.5, 3.0, 0.0, -0.5]).unwrap();
        let w1 = b.constant("w1", w1);
        let k1 = b.op("Conv", &[p, w1], &[]).unwrap();
        let w2 = Tensor::from_f32(&[1, 3, 1, 1], vec![0.1, 0.2, 5.0]).unwrap();
        let w2 = b.constant("w2", w2);
        let k2 = b.op("Conv", &[p, w2], &[]).unwrap();
        b.output(k1, "k1");
        b.output(k2, "k2");
        (b.finish().unwrap(), k1.node, k2.node)
    }

    fn close(a: &[f64], b: &[f64]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-6, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn scores_on_hand_checked_weights() {
        let (g, k1, _) = graph();
        assert_eq!(
            columns(&g, k1).unwrap(),
            vec![vec![1.0, 3.0], vec![-2.0, 0.0], vec![0.5, -0.5]]
        );
        close(&scores(&g, k1, Criterion::L1).unwrap(), &[4.0, 2.0, 1.0]);
        let l2 = scores(&g, k1, Criterion::L2).unwrap();
        close(&l2, &[10f64.sqrt(), 2.0, 0.5f64.sqrt()]);
        // n = [10, 4, 0.5]: 10/10, 4/14, 0.5/14.5.
        let lamp = scores(&g, k1, Criterion::Lamp).unwrap();
        close(&lamp, &[1.0, 2.0 / 7.0, 1.0 / 29.0]);
        // Distances: d01 = sqrt 18, d02 = sqrt 12.5, d12 = sqrt 6.5.
        let (a, b, c) = (18f64.sqrt(), 12.5f64.sqrt(), 6.5f64.sqrt());
        let fpgm = scores(&g, k1, Criterion::Fpgm).unwrap();
        close(&fpgm, &[a + b, a + c, b + c]);
    }

    #[test]
    fn amount_per_layer_and_global() {
        let (g, k1, k2) = graph();
        let segs = segments(&g).unwrap();
        let imp = importance(&g, &segs, Criterion::L1).unwrap();
        assert_eq!(imp.len(), 2);
        let m = masks_by_amount(&g, &segs, Criterion::L1, 0.34, Scope::Layer).unwrap();
        assert_eq!(m[&k1], vec![true, true, false]);
        assert_eq!(m[&k2], vec![false, true, true]);
        let m = masks_by_amount(&g, &segs, Criterion::L1, 0.0, Scope::Layer).unwrap();
        assert!(m.values().all(|v| v.iter().all(|&x| x)));
        // Global L1: scores k1 [4, 2, 1], k2 [0.1, 0.2, 5]; half of 6 drops 0.1, 0.2, 1.
        let m = masks_by_amount(&g, &segs, Criterion::L1, 0.5, Scope::Global).unwrap();
        assert_eq!(m[&k1], vec![true, true, false]);
        assert_eq!(m[&k2], vec![false, false, true]);
        // Nearly everything: each consumer keeps at least one channel.
        let m = masks_by_amount(&g, &segs, Criterion::Lamp, 0.99, Scope::Global).unwrap();
        assert_eq!(m[&k1], vec![true, false, false]);
        assert_eq!(m[&k2], vec![false, false, true]);
    }

    #[test]
    fn amount_out_of_range() {
        let (g, _, _) = graph();
        let segs = segments(&g).unwrap();
        for a in [-0.1, 1.0, 1.5, f64::NAN] {
            let e = masks_by_amount(&g, &segs, Criterion::L2, a, Scope::Layer).unwrap_err();
            assert!(matches!(e, PruneError::Amount(_)), "{e}");
            assert!(e.to_string().contains("outside [0, 1)"), "{e}");
        }
    }

    #[test]
    fn no_prunable_layer() {
        let mut b = GraphBuilder::new("one", 1);
        let x = input(&mut b, 3);
        let y = conv(&mut b, x, 3, 4);
        b.output(y, "y");
        let g = b.finish().unwrap();
        let segs = segments(&g).unwrap();
        let e = masks_by_amount(&g, &segs, Criterion::L1, 0.5, Scope::Layer).unwrap_err();
        assert!(matches!(e, PruneError::NoPrunableLayer(_)), "{e}");
        assert!(e.to_string().contains("graph output 'y'"), "{e}");
    }

    #[test]
    fn explicit_masks_by_name() {
        let (g, k1, k2) = graph();
        let segs = segments(&g).unwrap();
        let n1 = name(&g, k1);
        let mut by = BTreeMap::new();
        by.insert(n1.clone(), vec![false, true, true]);
        let m = explicit_masks(&g, &segs, &by).unwrap();
        assert_eq!(m[&k1], vec![false, true, true]);
        assert_eq!(m[&k2], vec![true; 3]);

        by.insert("nope".to_string(), vec![true; 3]);
        let e = explicit_masks(&g, &segs, &by).unwrap_err();
        assert!(matches!(e, PruneError::UnknownLayer { .. }), "{e}");
        assert!(e.to_string().contains(&n1), "{e}");

        let mut by = BTreeMap::new();
        by.insert(n1.clone(), vec![true; 2]);
        let e = explicit_masks(&g, &segs, &by).unwrap_err();
        assert!(e.to_string().contains("has 2 entries"), "{e}");
        assert!(e.to_string().contains("3 input channels"), "{e}");

        by.insert(n1, vec![false; 3]);
        let e = explicit_masks(&g, &segs, &by).unwrap_err();
        assert!(matches!(e, PruneError::EmptyMask(_)), "{e}");
    }

    #[test]
    fn resnet18_global_lamp() {
        let g = petasos_models::build("resnet18").unwrap();
        let segs = segments(&g).unwrap();
        let m = masks_by_amount(&g, &segs, Criterion::Lamp, 0.3, Scope::Global).unwrap();
        let total: usize = m.values().map(Vec::len).sum();
        let dropped: usize = m.values().map(|v| v.iter().filter(|&&x| !x).count()).sum();
        assert_eq!(dropped, (0.3 * total as f64).floor() as usize);
        let m = masks_by_amount(&g, &segs, Criterion::L2, 0.5, Scope::Layer).unwrap();
        for v in m.values() {
            assert_eq!(v.iter().filter(|&&x| !x).count(), v.len() / 2);
        }
    }
}

mod more {
    use super::*;
    use petasos_ir::Tensor;
    use petasos_passes::prune::heuristic::{columns, constrained_masks, Criterion};

    #[test]
    fn gemm_and_matmul_layers() {
        let mut b = GraphBuilder::new("mlp", 1);
        let x = b.input("x", ValueType::known(DType::F32, &[2, 8]));
        let w1 = b.weight("w1", DType::F32, &[4, 8], 0.1);
        let h = b.op("Gemm", &[x, w1], &[("transB", Attr::Int(1))]).unwrap();
        let h = b.op("Relu", &[h], &[]).unwrap();
        let w2 = Tensor::from_f32(&[4, 3], (0..12).map(|i| i as f32).collect()).unwrap();
        let w2 = b.constant("w2", w2);
        let y = b.op("MatMul", &[h, w2], &[]).unwrap();
        b.output(y, "y");
        let g = b.finish().unwrap();
        let segs = segments(&g).unwrap();
        assert_eq!(segs.len(), 2);
        assert_eq!(segs[0].channels, 4);
        assert_eq!(segs[0].consumers[0].node, y.node);
        assert_eq!(segs[0].prunable, Ok(()));
        assert_eq!(segs[1].channels, 3);
        assert_eq!(columns(&g, y.node).unwrap()[1], vec![3.0, 4.0, 5.0]);
        assert!(columns(&g, h.node).is_err(), "Relu is not a layer");
    }

    #[test]
    fn resize_with_sizes_is_unprunable() {
        let mut b = GraphBuilder::new("rs", 1);
        let x = input(&mut b, 3);
        let p = conv(&mut b, x, 3, 4);
        let sizes = b.ints("sizes", &[1, 4, 16, 16]).unwrap();
        let r = b
            .node("", "Resize", &[Some(p), None, None, Some(sizes)], &[], 1)
            .unwrap()[0];
        let k = conv(&mut b, r, 4, 2);
        b.output(k, "k");
        let g = b.finish().unwrap();
        let segs = segments(&g).unwrap();
        let why = seg_of(&segs, p.node).prunable.clone().unwrap_err();
        assert!(why.contains("explicit sizes"), "{why}");
    }

    #[test]
    fn constrained_masks_share_segment_channels() {
        // K1 and K2 read P; K3 reads cat(P, Q).
        let mut b = GraphBuilder::new("c", 1);
        let x = input(&mut b, 3);
        let p = conv(&mut b, x, 3, 4);
        let q = conv(&mut b, x, 3, 2);
        let k1 = conv(&mut b, p, 4, 2);
        let k2 = conv(&mut b, p, 4, 2);
        let c = b.op("Concat", &[p, q], &[("axis", Attr::Int(1))]).unwrap();
        let k3 = conv(&mut b, c, 6, 2);
        let s = b.op("Sum", &[k1, k2, k3], &[]).unwrap();
        b.output(s, "s");
        let g = b.finish().unwrap();
        let segs = segments(&g).unwrap();
        let m = constrained_masks(&g, &segs, Criterion::L2, 0.5).unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m[&k1.node], m[&k2.node]);
        assert_eq!(m[&k1.node][..], m[&k3.node][..4]);
        let dropped: usize = m[&k3.node].iter().filter(|&&x| !x).count();
        assert_eq!(dropped, 3);
    }
}

#[test]
fn conv_transpose_layer() {
    use petasos_passes::prune::heuristic::columns;
    let mut b = GraphBuilder::new("ct", 1);
    let x = input(&mut b, 3);
    let p = conv(&mut b, x, 3, 2);
    let w =
        petasos_ir::Tensor::from_f32(&[2, 5, 1, 1], (0..10).map(|i| i as f32).collect()).unwrap();
    let w = b.constant("wt", w);
    let t = b.op("ConvTranspose", &[p, w], &[]).unwrap();
    b.output(t, "t");
    let g = b.finish().unwrap();
    let segs = segments(&g).unwrap();
    assert_eq!(segs.len(), 2);
    assert_eq!(segs[0].consumers[0].node, t.node);
    assert_eq!(segs[1].channels, 5);
    assert_eq!(
        columns(&g, t.node).unwrap()[1],
        vec![5.0, 6.0, 7.0, 8.0, 9.0]
    );
}
