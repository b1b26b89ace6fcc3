//! CPU backend, NN family: fused epilogues on small built graphs against the interpreter
//! (and that the fusion happened), QONNX quantizers, and the 12 shared models (env PETASOS_SHARED) compiled with
//! the default flags, run on their recorded inputs and compared with their recorded outputs.

#[allow(dead_code)]
mod support;

use petasos_compiler::backend::cpu::{self, CpuOptions};
use petasos_ir::builder::GraphBuilder;
use petasos_ir::onnx::import::import_file;
use petasos_ir::onnx::tensor_file::read_tensor_file;
use petasos_ir::op::Attr;
use petasos_ir::{DType, Graph, Tensor, ValueType};
use std::path::{Path, PathBuf};
use std::process::Command;
use support::{assert_close, quick_native, run_main_threads, values, TempDir};

/// The scale of the QONNX `Quant` node (one-element scale) that produces graph output `i`.
fn quant_step(g: &Graph, i: usize) -> Option<f64> {
    let n = g.outputs.get(i)?.value.node;
    if g.g[n].op.op_type() != "Quant" {
        return None;
    }
    let scale = g.node_inputs(n).get(1).copied().flatten()?;
    let t = g.constant(scale.node)?.to_tensor().ok()?;
    if t.len() != 1 {
        return None;
    }
    t.scalar_f64().ok()
}

/// [`assert_close`], except that in an output produced by a QONNX `Quant` of scale `step`, at
/// most 1 in 10,000 elements may differ by exactly one step: the recorded outputs come from
/// onnxruntime's float Conv, whose summation order moves values sitting on a rounding
/// boundary of the quantizer (the exception stated in tests/tests/shared_models.rs).
fn assert_close_quantized(what: &str, got: &[Tensor], want: &[Tensor], steps: &[Option<f64>]) {
    assert_eq!(got.len(), want.len(), "{what}: number of outputs");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        let Some(step) = steps.get(i).copied().flatten() else {
            assert_close(
                &format!("{what} output {i}"),
                std::slice::from_ref(a),
                std::slice::from_ref(b),
            );
            continue;
        };
        assert_eq!(a.dtype(), b.dtype(), "{what} output {i}");
        assert_eq!(a.shape(), b.shape(), "{what} output {i}");
        let (x, y) = (a.to_f64_vec().expect("f"), b.to_f64_vec().expect("f"));
        let mut one_step = 0usize;
        for (k, (p, q)) in x.iter().zip(&y).enumerate() {
            let tol = 1e-5 + 1e-3 * q.abs();
            let d = (p - q).abs();
            if d <= tol {
                continue;
            }
            assert!(
                (d - step).abs() <= tol,
                "{what} output {i} element {k}: got {p}, want {q} (quant step {step})"
            );
            one_step += 1;
        }
        let allowed = y.len() / 10_000;
        assert!(
            one_step <= allowed,
            "{what} output {i}: {one_step} elements one quant step ({step}) off; at most {allowed} may be"
        );
        println!(
            "{what} output {i}: {} values, {one_step} one quant step ({step}) off (at most {allowed} allowed)",
            x.len()
        );
    }
}

/// Compiles `g`, checks the kernels' op chains contain every one of `fused` (e.g.
/// `Conv+Add+Clip`), runs at 1 and 2 threads and compares with the interpreter.
fn check(name: &str, g: &Graph, inputs: Vec<Tensor>, fused: &[&str]) {
    check_with(name, g, inputs, fused, &quick_native());
}

/// [`check`] with compile options `opts`.
fn check_with(name: &str, g: &Graph, inputs: Vec<Tensor>, fused: &[&str], opts: &CpuOptions) {
    let want = support::interpret(g, &inputs);
    let (dir, out) = support::compile(name, g, opts);
    let plan = std::fs::read_to_string(out.join("plan.json")).expect("plan.json");
    for f in fused {
        assert!(
            plan.contains(&format!("\"ops\": \"{f}\"")),
            "{name}: no kernel {f} in plan.json:\n{plan}"
        );
    }
    for threads in [1, 2] {
        let got = run_main_threads(&out, &inputs, &dir.0, threads);
        assert_close(&format!("{name} ({threads} threads)"), &got, &want);
    }
}

fn ints(v: &[i64]) -> Attr {
    Attr::Ints(v.to_vec())
}

/// A float input tensor of `shape` with seeded values.
fn input(shape: &[usize], seed: u64) -> Tensor {
    Tensor::from_f32(shape, values(shape.iter().product(), seed)).expect("tensor")
}

#[test]
fn conv_residual_clip_and_depthwise_hardswish() {
    // Conv 3x3 (bias, pads, stride 1) + residual Add + Clip(0, 6); then a depthwise 3x3
    // stride-2 conv + HardSwish; then a 1-D-like 1x1 conv + Sigmoid.
    let mut b = GraphBuilder::new("conv_chain", 3);
    let x = b.input("x", ValueType::known(DType::F32, &[1, 8, 9, 11]));
    let w = b.weight("w", DType::F32, &[8, 8, 3, 3], 0.3);
    let bias = b.weight("b", DType::F32, &[8], 0.5);
    let c = b
        .op("Conv", &[x, w, bias], &[("pads", ints(&[1, 1, 1, 1]))])
        .expect("conv");
    let s = b.op("Add", &[x, c], &[]).expect("add");
    let lo = b.scalar("lo", DType::F32, 0.0);
    let hi = b.scalar("hi", DType::F32, 6.0);
    let cl = b.op("Clip", &[s, lo, hi], &[]).expect("clip");
    let wd = b.weight("wd", DType::F32, &[8, 1, 3, 3], 0.5);
    let d = b
        .op(
            "Conv",
            &[cl, wd],
            &[
                ("group", Attr::Int(8)),
                ("strides", ints(&[2, 2])),
                ("pads", ints(&[1, 0, 1, 2])),
            ],
        )
        .expect("dw");
    let hs = b.op("HardSwish", &[d], &[]).expect("hardswish");
    let w1 = b.weight("w1", DType::F32, &[5, 8, 1, 1], 0.4);
    let p = b.op("Conv", &[hs, w1], &[]).expect("pw");
    let sg = b.op("Sigmoid", &[p], &[]).expect("sigmoid");
    b.output(sg, "y");
    let g = b.finish().expect("graph");
    check(
        "conv_chain",
        &g,
        vec![input(&[1, 8, 9, 11], 1)],
        &["Conv+Add+Clip", "Conv+HardSwish", "Conv+Sigmoid"],
    );
}

#[test]
fn gemm_matmul_bn_deconv_epilogues() {
    // Gemm (transB, C per column) + residual Add + LeakyRelu; batched broadcasting MatMul +
    // Tanh; BatchNormalization + Relu; ConvTranspose (stride 2) + HardSigmoid.
    let mut b = GraphBuilder::new("misc_chain", 5);
    let a = b.input("a", ValueType::known(DType::F32, &[6, 10]));
    let r = b.input("r", ValueType::known(DType::F32, &[6, 7]));
    let w = b.weight("w", DType::F32, &[7, 10], 0.3);
    let c = b.weight("c", DType::F32, &[7], 1.0);
    let gm = b
        .op("Gemm", &[a, w, c], &[("transB", Attr::Int(1))])
        .expect("gemm");
    let s = b.op("Add", &[gm, r], &[]).expect("add");
    let lr = b
        .op("LeakyRelu", &[s], &[("alpha", Attr::Float(0.1))])
        .expect("leaky");
    b.output(lr, "gemm_out");

    let m1 = b.input("m1", ValueType::known(DType::F32, &[2, 1, 3, 4]));
    let m2 = b.weight("m2", DType::F32, &[3, 4, 5], 0.5);
    let mm = b.op("MatMul", &[m1, m2], &[]).expect("matmul");
    let th = b.op("Tanh", &[mm], &[]).expect("tanh");
    b.output(th, "matmul_out");

    let x = b.input("x", ValueType::known(DType::F32, &[2, 3, 4, 5]));
    let sc = b.weight("sc", DType::F32, &[3], 1.0);
    let bb = b.weight("bb", DType::F32, &[3], 1.0);
    let mean = b.weight("mean", DType::F32, &[3], 1.0);
    let var = b.constant(
        "var",
        Tensor::from_f32(&[3], vec![0.5, 1.0, 2.0]).expect("var"),
    );
    let bn = b
        .op("BatchNormalization", &[x, sc, bb, mean, var], &[])
        .expect("bn");
    let re = b.op("Relu", &[bn], &[]).expect("relu");
    let wt = b.weight("wt", DType::F32, &[3, 2, 3, 3], 0.4);
    let ct = b
        .op(
            "ConvTranspose",
            &[re, wt],
            &[("strides", ints(&[2, 2])), ("pads", ints(&[1, 1, 0, 0]))],
        )
        .expect("deconv");
    let hsg = b.op("HardSigmoid", &[ct], &[]).expect("hardsigmoid");
    b.output(hsg, "deconv_out");
    let g = b.finish().expect("graph");
    check(
        "misc_chain",
        &g,
        vec![
            input(&[6, 10], 2),
            input(&[6, 7], 3),
            input(&[2, 1, 3, 4], 4),
            input(&[2, 3, 4, 5], 5),
        ],
        &[
            "Gemm+Add+LeakyRelu",
            "MatMul+Tanh",
            "BatchNormalization+Relu",
            "ConvTranspose+HardSigmoid",
        ],
    );
}

#[test]
fn generic_loops_f16_conv3d_and_pools() {
    // f16 conv (generated loops) + residual + Relu; a 3-D conv; max pool with indices; a
    // ceil-mode average pool counting pads.
    let mut b = GraphBuilder::new("generic", 7);
    let x = b.input("x", ValueType::known(DType::F32, &[1, 2, 5, 6]));
    let xh = b.op("Cast", &[x], &[("to", Attr::Int(10))]).expect("cast");
    let w = b.weight("w", DType::F16, &[2, 2, 3, 3], 0.3);
    let c = b
        .op("Conv", &[xh, w], &[("pads", ints(&[1, 1, 1, 1]))])
        .expect("conv");
    let s = b.op("Add", &[c, xh], &[]).expect("add");
    let r = b.op("Relu", &[s], &[]).expect("relu");
    b.output(r, "f16_out");
    let v = b.input("v", ValueType::known(DType::F32, &[1, 2, 4, 5, 6]));
    let w3 = b.weight("w3", DType::F32, &[3, 2, 2, 3, 3], 0.3);
    let c3 = b
        .op("Conv", &[v, w3], &[("strides", ints(&[1, 2, 1]))])
        .expect("conv3d");
    b.output(c3, "conv3d_out");
    let mp = b
        .node(
            "",
            "MaxPool",
            &[Some(x)],
            &[
                ("kernel_shape", ints(&[3, 3])),
                ("strides", ints(&[2, 2])),
                ("pads", ints(&[1, 1, 1, 1])),
            ],
            2,
        )
        .expect("maxpool");
    b.output(mp[0], "max_out");
    b.output(mp[1], "max_idx");
    let ap = b
        .op(
            "AveragePool",
            &[x],
            &[
                ("kernel_shape", ints(&[3, 2])),
                ("strides", ints(&[2, 2])),
                ("pads", ints(&[1, 0, 1, 1])),
                ("ceil_mode", Attr::Int(1)),
                ("count_include_pad", Attr::Int(1)),
            ],
        )
        .expect("avgpool");
    b.output(ap, "avg_out");
    let g = b.finish().expect("graph");
    check(
        "generic",
        &g,
        vec![input(&[1, 2, 5, 6], 8), input(&[1, 2, 4, 5, 6], 9)],
        &["Conv+Add+Relu"],
    );
}

/// The shared models (every one must compile, run and match): the names in
/// `tests/shared_models.txt` (one a line, `#` comments).
fn shared_model_names() -> Vec<&'static str> {
    include_str!("../../tests/shared_models.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// Whether `name` must compile: every one of [`shared_model_names`] (other files in the
/// folder are checked when they compile).
fn required(name: &str) -> bool {
    shared_model_names().contains(&name)
}

#[test]
fn shared_models_compile_run_and_match() {
    let Some(shared) = std::env::var_os("PETASOS_SHARED").map(PathBuf::from) else {
        eprintln!("\n*** shared_models_compile_run_and_match: NOT RUN: PETASOS_SHARED unset ***\n");
        return;
    };
    let models = shared.join("models");
    let mut names: Vec<String> = std::fs::read_dir(&models)
        .expect("models folder")
        .flatten()
        .filter_map(|e| {
            let p = e.path();
            (p.extension().is_some_and(|x| x == "onnx")
                && p.with_extension("").join("test_data_set_0").is_dir())
            .then(|| p.file_stem()?.to_str().map(String::from))
            .flatten()
        })
        .collect();
    names.sort();
    let mut matched = Vec::new();
    let mut skipped = Vec::new();
    for name in &names {
        let data = models.join(name).join("test_data_set_0");
        let mut g = import_file(&models.join(format!("{name}.onnx"))).expect("import");
        let mut inputs = Vec::new();
        let mut opts = CpuOptions::default();
        for (i, &n) in g.inputs.clone().iter().enumerate() {
            let t = read_tensor_file(&data.join(format!("input_{i}.pb"))).expect("input");
            let iname = g.g[n].outputs[0].name.clone();
            opts.input_shapes
                .insert(iname, t.shape().iter().map(|&d| d as u64).collect());
            inputs.push(t);
        }
        let mut want = Vec::new();
        while let Ok(t) = read_tensor_file(&data.join(format!("output_{}.pb", want.len()))) {
            want.push(t);
        }
        let steps: Vec<Option<f64>> = (0..want.len()).map(|i| quant_step(&g, i)).collect();
        let dir = TempDir::new(name);
        let out = dir.0.join("out");
        match cpu::compile(&mut g, &opts, &out) {
            Ok(_) => {}
            // A model outside the 12 (see `required`).
            Err(e) if !required(name) => {
                println!("{name}: not compiled yet: {e}");
                skipped.push(name.clone());
                continue;
            }
            Err(e) => panic!("{name}: compile failed: {e}"),
        }
        let got = run_main_threads(&out, &inputs, &dir.0, 1);
        if steps.iter().any(|s| s.is_some()) {
            assert_close_quantized(name, &got, &want, &steps);
        } else {
            assert_close(name, &got, &want);
        }
        matched.push(name.clone());
    }
    println!(
        "shared models: {} compiled+matched ({}), {} not compiled yet ({})",
        matched.len(),
        matched.join(", "),
        skipped.len(),
        skipped.join(", ")
    );
    assert_eq!(
        shared_model_names().len(),
        12,
        "the 12 shared models are listed"
    );
    for r in shared_model_names() {
        assert!(matched.iter().any(|m| m == r), "{r} was not checked");
    }
}

#[test]
fn qonnx_quant_bipolar_trunc_match_the_interpreter() {
    // Inputs on and next to the rounding boundaries (multiples of half a step), negative and
    // positive, beyond the clip range; every rounding mode, signed/unsigned, narrow, 1-bit.
    let mut b = GraphBuilder::new("qonnx", 11);
    let n = 64;
    let x = b.input("x", ValueType::known(DType::F32, &[2, n]));
    let s = b.constant(
        "s",
        Tensor::from_f32(&[2, 1], vec![0.25, 0.5]).expect("scale"),
    );
    let z0 = b.scalar("z0", DType::F32, 0.0);
    let z1 = b.scalar("z1", DType::F32, 1.0);
    let bits4 = b.scalar("bits4", DType::F32, 4.0);
    let bits1 = b.scalar("bits1", DType::F32, 1.0);
    let d = "qonnx.custom_op.general";
    let modes = [
        "ROUND",
        "CEIL",
        "FLOOR",
        "UP",
        "DOWN",
        "HALF_UP",
        "HALF_DOWN",
    ];
    let mut k = 0;
    for (m, mode) in modes.iter().enumerate() {
        for (signed, narrow, z, bits) in [
            (1, 0, z0, bits4),
            (0, 1, z1, bits4),
            (1, 1, z1, bits4),
            (1, 0, z0, bits1),
        ] {
            let q = b
                .node(
                    d,
                    "Quant",
                    &[Some(x), Some(s), Some(z), Some(bits)],
                    &[
                        ("signed", Attr::Int(signed)),
                        ("narrow", Attr::Int(narrow)),
                        ("rounding_mode", Attr::Str((*mode).into())),
                    ],
                    1,
                )
                .expect("quant");
            b.output(q[0], &format!("quant_{m}_{k}"));
            k += 1;
        }
    }
    let bp = b
        .node(d, "BipolarQuant", &[Some(x), Some(s)], &[], 1)
        .expect("bipolar");
    b.output(bp[0], "bipolar");
    let ib = b.scalar("ib", DType::F32, 8.0);
    let ob = b.scalar("ob", DType::F32, 4.0);
    let one = b.scalar("one", DType::F32, 1.0);
    let t1 = b
        .node(
            d,
            "Trunc",
            &[Some(x), Some(one), Some(z0), Some(ib), Some(ob)],
            &[],
            1,
        )
        .expect("trunc v1");
    b.output(t1[0], "trunc_v1");
    let os = b.scalar("os", DType::F32, 16.0);
    let t2 = b
        .node(
            d,
            "Trunc",
            &[Some(x), Some(one), Some(z0), Some(ib), Some(os), Some(ob)],
            &[
                ("signed", Attr::Int(1)),
                ("rounding_mode", Attr::Str("ROUND".into())),
            ],
            1,
        )
        .expect("trunc v2");
    b.output(t2[0], "trunc_v2");
    let g = b.finish().expect("graph");
    // Half-step multiples from -6 to +6 (ties of every rounding), plus large magnitudes.
    let mut v: Vec<f32> = (0..2 * n)
        .map(|i| (i as f32 - n as f32) * 0.125 * if i % 3 == 0 { 1.0 } else { 0.5 })
        .collect();
    v[0] = 100.0;
    v[1] = -100.0;
    v[2] = 127.0;
    check(
        "qonnx",
        &g,
        vec![Tensor::from_f32(&[2, n], v).expect("x")],
        &[],
    );
}

/// Whether OpenBLAS's header and library are installed (a probe compile and link).
fn openblas_installed(dir: &Path) -> bool {
    let src = dir.join("probe.c");
    std::fs::write(
        &src,
        "#include <cblas.h>\nint main(void) { float a = 1, b = 1, c = 0;\n  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 1, 1, 1, 1.0f, &a, 1, &b, 1, 0.0f, &c, 1);\n  return c == 1.0f ? 0 : 1; }\n",
    )
    .expect("probe source");
    Command::new("cc")
        .arg(&src)
        .arg("-o")
        .arg(dir.join("probe"))
        .arg("-lopenblas")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[test]
fn blas_openblas_runs_gemms_and_dense_convs() {
    let probe = TempDir::new("blas-probe");
    if !openblas_installed(&probe.0) {
        println!(
            "NOT RUN: OpenBLAS is not installed (apt-get install libopenblas-dev); .ci/run installs it"
        );
        return;
    }
    // Dense convs (3x3 stride 2 with bias + Relu, 1x1, grouped 2) through im2col + cblas_sgemm,
    // a depthwise conv with a residual through the native kernel, Gemm and MatMul through
    // cblas_sgemm, each with its epilogue.
    let mut b = GraphBuilder::new("blas_chain", 3);
    let x = b.input("x", ValueType::known(DType::F32, &[2, 8, 13, 11]));
    let w = b.weight("w", DType::F32, &[16, 8, 3, 3], 0.3);
    let bias = b.weight("b", DType::F32, &[16], 0.5);
    let c = b
        .op(
            "Conv",
            &[x, w, bias],
            &[("pads", ints(&[1, 1, 1, 1])), ("strides", ints(&[2, 2]))],
        )
        .expect("conv");
    let r = b.op("Relu", &[c], &[]).expect("relu");
    let w1 = b.weight("w1", DType::F32, &[12, 16, 1, 1], 0.4);
    let p = b.op("Conv", &[r, w1], &[]).expect("pw");
    let wg = b.weight("wg", DType::F32, &[12, 6, 3, 3], 0.3);
    let gc = b
        .op(
            "Conv",
            &[p, wg],
            &[("group", Attr::Int(2)), ("pads", ints(&[1, 1, 1, 1]))],
        )
        .expect("grouped");
    let wd = b.weight("wd", DType::F32, &[12, 1, 3, 3], 0.5);
    let d = b
        .op(
            "Conv",
            &[gc, wd],
            &[("group", Attr::Int(12)), ("pads", ints(&[1, 1, 1, 1]))],
        )
        .expect("dw");
    let s = b.op("Add", &[d, p], &[]).expect("residual");
    let f = b
        .op("Flatten", &[s], &[("axis", Attr::Int(1))])
        .expect("flatten");
    let wm = b.weight("wm", DType::F32, &[12 * 7 * 6, 10], 0.1);
    let mm = b.op("MatMul", &[f, wm], &[]).expect("matmul");
    let wgm = b.weight("wgm", DType::F32, &[7, 10], 0.3);
    let cg = b.weight("cg", DType::F32, &[7], 1.0);
    let gm = b
        .op("Gemm", &[mm, wgm, cg], &[("transB", Attr::Int(1))])
        .expect("gemm");
    let th = b.op("Tanh", &[gm], &[]).expect("tanh");
    b.output(th, "y");
    let g = b.finish().expect("graph");
    let mut o = quick_native();
    o.cc.blas = Some(cpu::Blas::Openblas);
    check_with(
        "blas_chain",
        &g,
        vec![input(&[2, 8, 13, 11], 7)],
        &["Conv+Relu"],
        &o,
    );
}
