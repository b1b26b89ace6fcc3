//! CPU backend types and value specialisation: the C conversions of `rt/pt_types.h`
//! (minifloat encode/decode, float -> integer wrapping, f64 -> bf16, float8e8m0) against the
//! interpreter's Rust implementations over edge-case sweeps; Cast/Quantize/Dequantize
//! graphs with float8 and int4 tensors end to end; and `--freeze-input`.

#[allow(dead_code)]
mod support;

use petasos_compiler::backend::cpu::{self, specialise, CpuOptions};
use petasos_ir::builder::GraphBuilder;
use petasos_ir::minifloat::{decode, encode};
use petasos_ir::op::Attr;
use petasos_ir::{DType, Graph, Tensor, ValueType};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use support::{quick, same, try_run_main, Cmp, TempDir};

const FORMATS: [DType; 5] = [
    DType::F8E4M3FN,
    DType::F8E4M3FNUZ,
    DType::F8E5M2,
    DType::F8E5M2FNUZ,
    DType::F4E2M1,
];

fn next_up(v: f64) -> f64 {
    if v.is_nan() || v == f64::INFINITY {
        return v;
    }
    if v == 0.0 {
        return f64::from_bits(1);
    }
    let b = v.to_bits();
    f64::from_bits(if v > 0.0 { b + 1 } else { b - 1 })
}

fn next_down(v: f64) -> f64 {
    -next_up(-v)
}

/// Values that exercise every rounding decision of the formats: each representable value,
/// the midpoints between neighbours (ties) and their neighbours, overflow boundaries,
/// specials, integers near the 64/128-bit limits and pseudo-random values.
fn sweep() -> Vec<f64> {
    let mut v = vec![
        0.0,
        -0.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
        1e-300,
        -1e-300,
        1e300,
        3.7,
        -3.7,
        2.5,
        -2.5,
        2f64.powi(63),
        2f64.powi(64),
        -(2f64.powi(63) + 2048.0),
        2f64.powi(64) - 2048.0,
        1e19,
        -1e19,
        1e30,
        -1e30,
        2f64.powi(127),
        -(2f64.powi(127)),
        1e40,
        -1e40,
        65504.0,
        65520.0,
        3.4e38,
    ];
    for d in FORMATS {
        let bits = d.bits() as u32;
        let mut vals: Vec<f64> = (0..(1u32 << bits))
            .map(|c| decode(d, c as u8))
            .filter(|x| x.is_finite())
            .collect();
        vals.sort_by(f64::total_cmp);
        vals.dedup();
        let last = *vals.last().expect("values");
        let prev = vals[vals.len() - 2];
        vals.push(last + (last - prev)); // the virtual next value: overflow ties
        for w in vals.windows(2) {
            let m = (w[0] + w[1]) / 2.0;
            v.extend([w[0], m, next_up(m), next_down(m)]);
        }
        v.push(last * 4.0);
    }
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    for i in 0..2000 {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        let u = (s >> 11) as f64 / (1u64 << 53) as f64;
        let scale = [1e-6, 0.01, 1.0, 100.0, 1e4, 6e4, 1e6, 1e20][i % 8];
        v.push((u * 2.0 - 1.0) * scale);
    }
    v
}

/// Compiles and runs a C program that prints the runtime's conversions of `vals`.
fn run_c(vals: &[f64], dir: &Path) -> String {
    let rt = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/backend/cpu/rt");
    let list: Vec<String> = vals
        .iter()
        .map(|v| format!("UINT64_C(0x{:016x})", v.to_bits()))
        .collect();
    let src = format!(
        r#"#include <stdio.h>
#include "pt_types.h"
static const uint64_t vals[] = {{{}}};
int main(void) {{
  const pt_mf_fmt f[5] = {{PT_E4M3FN, PT_E4M3FNUZ, PT_E5M2, PT_E5M2FNUZ, PT_E2M1}};
  for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {{
    double v;
    memcpy(&v, &vals[i], 8);
    for (int k = 0; k < 5; k++) printf("%u %u ", pt_d2mf(v, f[k], 0), pt_d2mf(v, f[k], 1));
    printf("%llu %u", (unsigned long long)pt_d2wrap64(v), (unsigned)pt_d2bf(v));
    for (int m = 0; m < 3; m++)
      for (int s = 0; s < 2; s++) printf(" %u", pt_f2e8m0((float)v, s, m));
    printf("\n");
  }}
  for (int c = 0; c < 256; c++) {{
    for (int k = 0; k < 5; k++) printf("%08x ", (unsigned)pt_f2bits(pt_mf2f((uint8_t)c, f[k])));
    printf("%08x\n", (unsigned)pt_f2bits(pt_e8m02f((uint8_t)c)));
  }}
  return 0;
}}
"#,
        list.join(", ")
    );
    let c = dir.join("conv.c");
    std::fs::write(&c, src).expect("write C");
    let exe = dir.join("conv");
    let o = Command::new("cc")
        .args([
            "-std=c11",
            "-D_POSIX_C_SOURCE=200809L",
            "-O2",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-I",
        ])
        .arg(&rt)
        .arg(&c)
        .arg("-o")
        .arg(&exe)
        .arg("-lm")
        .output()
        .expect("run cc");
    assert!(
        o.status.success(),
        "cc failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = Command::new(&exe).output().expect("run conversions");
    assert!(o.status.success());
    String::from_utf8(o.stdout).expect("utf8")
}

#[test]
fn c_conversions_match_the_interpreter() {
    let dir = TempDir::new("conv");
    let vals = sweep();
    let out = run_c(&vals, &dir.0);
    let mut lines = out.lines();
    let mut checked = 0;
    for &v in &vals {
        let l = lines.next().expect("line per value");
        let f: Vec<u64> = l
            .split_whitespace()
            .map(|x| x.parse().expect("number"))
            .collect();
        assert_eq!(f.len(), 18, "{l}");
        for (k, d) in FORMATS.iter().enumerate() {
            for sat in [false, true] {
                let got = f[2 * k + sat as usize];
                let want = encode(*d, v, sat) as u64;
                assert_eq!(
                    got,
                    want,
                    "{d} saturate={sat} of {v:e} ({:#x})",
                    v.to_bits()
                );
                checked += 1;
            }
        }
        let wrap = petasos_ir::tensor::f64_to_i128(v) as u64;
        assert_eq!(f[10], wrap, "wrap64 of {v:e}");
        let t = Tensor::scalar(DType::F64, v);
        let bf = t
            .cast(DType::BF16, true)
            .expect("bf16")
            .to_f64_vec()
            .expect("v")[0];
        let got_bf = f32::from_bits((f[11] as u32) << 16) as f64;
        assert!(
            same(got_bf, bf),
            "bf16 of {v:e}: got {got_bf:e}, want {bf:e}"
        );
        for (m, mode) in ["up", "down", "nearest"].iter().enumerate() {
            for sat in [false, true] {
                let want = t
                    .cast_with(DType::F8E8M0, sat, mode)
                    .expect("e8m0")
                    .to_f64_vec()
                    .expect("v")[0];
                let got = decode(DType::F8E8M0, f[12 + 2 * m + sat as usize] as u8);
                assert!(
                    same(got, want),
                    "e8m0 {mode} sat={sat} of {v:e}: {got:e} vs {want:e}"
                );
            }
        }
    }
    for c in 0..256u32 {
        let l = lines.next().expect("decode line");
        let f: Vec<u32> = l
            .split_whitespace()
            .map(|x| u32::from_str_radix(x, 16).expect("hex"))
            .collect();
        for (k, d) in FORMATS.iter().chain([DType::F8E8M0].iter()).enumerate() {
            let want = decode(*d, c as u8) as f32;
            let got = f32::from_bits(f[k]);
            assert!(
                (got.is_nan() && want.is_nan()) || got.to_bits() == want.to_bits(),
                "decode {d} {c:#x}: {got} vs {want}"
            );
        }
    }
    assert!(checked > 10_000, "only {checked} encodings checked");
}

/// Compiles `g` (with `o`), runs it and checks every output equals the interpreter's.
fn check(name: &str, g: &Graph, o: &CpuOptions, inputs: Vec<Tensor>) {
    support::check_with(name, g, o, &inputs, Cmp::Bits);
}

#[test]
fn float8_and_int4_graphs_match_the_interpreter() {
    let mut b = GraphBuilder::new("types", 0);
    let x = b.input("x", ValueType::known(DType::F32, &[2, 5]));
    let f8 = b
        .op(
            "Cast",
            &[x],
            &[("to", Attr::Int(17)), ("saturate", Attr::Int(0))],
        )
        .expect("cast f8");
    let back = b
        .op("Cast", &[f8], &[("to", Attr::Int(1))])
        .expect("cast f32");
    let i4 = b
        .op("Cast", &[x], &[("to", Attr::Int(22))])
        .expect("cast i4");
    let s = b.constant("s", Tensor::from_f32(&[2], vec![0.25, 0.5]).expect("s"));
    let zp = Tensor::from_i64(&[2], vec![-3, 2])
        .and_then(|t| t.cast(DType::I4, false))
        .expect("zp");
    let z = b.constant("z", zp);
    let q = b
        .op("QuantizeLinear", &[x, s, z], &[("axis", Attr::Int(0))])
        .expect("quantize");
    let dq = b
        .op("DequantizeLinear", &[q, s, z], &[("axis", Attr::Int(0))])
        .expect("dequantize");
    b.output(back, "f8_round_trip");
    b.output(i4, "as_int4");
    b.output(q, "quantized");
    b.output(dq, "dequantized");
    let g = b.finish().expect("graph");
    let x = Tensor::from_f32(
        &[2, 5],
        vec![
            0.3,
            -1.7,
            500.0,
            f32::NAN,
            -0.01,
            7.9,
            -8.6,
            1.25,
            3.0,
            -2.5,
        ],
    )
    .expect("x");
    check("types", &g, &quick(), vec![x]);
}

/// x[2,3] reshaped by a graph input `shape`.
fn reshape_by_input() -> Graph {
    let mut b = GraphBuilder::new("frozen", 0);
    let x = b.input("x", ValueType::known(DType::F32, &[2, 3]));
    let s = b.input("shape", ValueType::known(DType::I64, &[2]));
    let y = b.op("Reshape", &[x, s], &[]).expect("reshape");
    b.output(y, "y");
    b.finish().expect("graph")
}

#[test]
fn frozen_input_gives_static_shapes_and_is_checked_at_run_time() {
    let g = reshape_by_input();
    let x = Tensor::from_f32(&[2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).expect("x");
    let shape = Tensor::from_i64(&[2], vec![3, 2]).expect("shape");

    // Without freezing the output shape is unknown; the probe names the input to freeze.
    let dir = TempDir::new("frozen");
    let mut g0 = g.clone();
    let err = cpu::compile(&mut g0, &quick(), &dir.0.join("none")).expect_err("dynamic");
    let msg = err.to_string();
    assert!(msg.contains("no static shape"), "{msg}");
    assert!(msg.contains("--freeze-input shape=FILE.pb"), "{msg}");
    let mut probe = g.clone();
    specialise::specialise(&mut probe, &BTreeMap::new(), &BTreeMap::new()).expect("bind");
    assert_eq!(
        specialise::inputs_to_freeze(&probe),
        vec!["shape".to_string()]
    );

    let mut o = quick();
    o.frozen.insert("shape".into(), shape.clone());
    check("frozen", &g, &o, vec![x.clone(), shape.clone()]);

    let mut gc = g.clone();
    cpu::compile(&mut gc, &o, &dir.0.join("out")).expect("compile");
    let other = Tensor::from_i64(&[2], vec![6, 1]).expect("other");
    let (code, msg) =
        try_run_main(&dir.0.join("out"), &[x, other], &dir.0, &[]).expect_err("refused");
    assert_eq!(code, 3, "{msg}");
    assert!(msg.contains("'shape'") && msg.contains("frozen"), "{msg}");

    // A frozen value of the wrong dtype or shape is refused at compile time.
    let mut bad = quick();
    bad.frozen.insert(
        "shape".into(),
        Tensor::from_f32(&[2], vec![3.0, 2.0]).expect("f"),
    );
    let e = cpu::compile(&mut g.clone(), &bad, &dir.0.join("bad")).expect_err("dtype");
    assert!(e.to_string().contains("--freeze-input shape"), "{e}");
    bad.frozen.insert("nope".into(), shape);
    let e = cpu::compile(&mut g.clone(), &bad, &dir.0.join("bad")).expect_err("name");
    assert!(e.to_string().contains("no such input"), "{e}");
}

#[test]
fn shape_and_size_of_static_values_fold_to_constants() {
    let mut b = GraphBuilder::new("shapes", 0);
    let x = b.input("x", ValueType::known(DType::F32, &[2, 3, 4]));
    let y = b.input("y", ValueType::known(DType::F32, &[4, 6]));
    let sy = b.op("Shape", &[y], &[]).expect("shape");
    let r = b.op("Reshape", &[x, sy], &[]).expect("reshape");
    let tail = b
        .op("Shape", &[x], &[("start", Attr::Int(-2))])
        .expect("shape start");
    let n = b.op("Size", &[x], &[]).expect("size");
    b.output(r, "reshaped");
    b.output(tail, "tail");
    b.output(n, "size");
    let g = b.finish().expect("graph");
    let mut gs = g.clone();
    let src = cpu::generate(&mut gs, &quick()).expect("generate");
    assert_eq!(src.report.kernels, 1, "only the Reshape copy is left");
    let xs = Tensor::from_f32(&[2, 3, 4], (0..24).map(|v| v as f32).collect()).expect("x");
    let ys = Tensor::from_f32(&[4, 6], vec![0.0; 24]).expect("y");
    check("shapes", &g, &quick(), vec![xs, ys]);
}
