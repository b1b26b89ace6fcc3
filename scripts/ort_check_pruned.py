#!/usr/bin/env python3
"""Checks a pruned model against its masked model in onnxruntime.

Usage: ort_check_pruned.py PRUNED.onnx MASKED.onnx [--seed N] [--tol T]

Both files come from `petasos prune MODEL -o PRUNED.onnx --masked-out MASKED.onnx`. A seeded
standard-normal input (symbolic dims taken as 1) runs through both; the script prints the
largest absolute difference, max|masked output|, their ratio, and PASS when the ratio is at
most --tol (default 1e-5, the f32 tolerance of docs/upscale.md) for every output, else FAIL
(exit status 1). It also prints how many Gather and Slice nodes the pruned model has.
"""

import argparse
import sys

import numpy as np
import onnx
import onnxruntime as ort

DTYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
}


def feeds(sess, rng):
    out = {}
    for i in sess.get_inputs():
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in i.shape]
        dt = DTYPES.get(i.type)
        if dt is None:
            sys.exit(f"input {i.name}: unsupported type {i.type}")
        x = rng.standard_normal(shape)
        out[i.name] = x.astype(dt)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pruned")
    ap.add_argument("masked")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tol", type=float, default=1e-5)
    a = ap.parse_args()

    ops = [n.op_type for n in onnx.load(a.pruned, load_external_data=False).graph.node]
    print(f"pruned model: {ops.count('Gather')} Gather, {ops.count('Slice')} Slice nodes")

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sp = ort.InferenceSession(a.pruned, opts, providers=["CPUExecutionProvider"])
    sm = ort.InferenceSession(a.masked, opts, providers=["CPUExecutionProvider"])
    x = feeds(sm, np.random.default_rng(a.seed))
    if [i.name for i in sp.get_inputs()] != list(x):
        sys.exit("the two models have different inputs")
    yp = sp.run(None, x)
    ym = sm.run(None, x)
    ok = True
    for o, p, m in zip(sm.get_outputs(), yp, ym):
        if p.shape != m.shape:
            print(f"{o.name}: shape {p.shape} != {m.shape}  FAIL")
            ok = False
            continue
        diff = float(np.max(np.abs(p.astype(np.float64) - m.astype(np.float64))))
        scale = float(np.max(np.abs(m.astype(np.float64))))
        rel = diff / scale if scale > 0 else diff
        verdict = "PASS" if rel <= a.tol else "FAIL"
        ok &= rel <= a.tol
        print(f"{o.name}: max abs diff {diff:.3e}, max|out| {scale:.3e}, relative {rel:.3e}  {verdict}")
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
