#!/usr/bin/env python3
"""Latency of a petasos CPU artifact vs onnxruntime on the same model, input shape and
thread count, measured alternately in one process run.

For each thread count: `rounds` times, run `petasos bench ARTIFACT --threads T --runs K`
(its last line is `median_ms=<v>`), then K timed onnxruntime runs (after warm-up) on a
seeded random input of the same shape; report the best of the per-round medians of each
side (the machine is shared and noisy; the best median is the least disturbed) and the
ratio ours / onnxruntime.

With --clock cpu (meaningful at 1 thread only), both sides are timed in CPU time instead:
ours as the difference of the CPU time used by `petasos bench` with 2K and K runs, divided
by K; onnxruntime with time.process_time() around each run. On a loaded machine this
excludes the time a side spends descheduled, which wall-clock medians cannot; but
process_time() also counts onnxruntime's helper threads, so its figure can exceed its wall
time (the CPU ratio then flatters us): a diagnostic, not the acceptance figure.

Prints one line per (model, threads): name, threads, ours ms, ORT ms, ratio (columns as
bench/vs_onnxruntime.sh's header).
"""
import argparse
import resource
import statistics
import subprocess
import sys
import time

import numpy as np
import onnxruntime as ort

ORT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
}


def ort_session(model, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def feeds(sess, shapes, seed):
    rng = np.random.default_rng(seed)
    out = {}
    for i in sess.get_inputs():
        shape = shapes.get(i.name) or [d if isinstance(d, int) and d > 0 else 1 for d in i.shape]
        dt = ORT_DTYPES.get(i.type)
        if dt is None:
            sys.exit(f"input {i.name}: unsupported type {i.type}")
        if np.issubdtype(dt, np.floating):
            out[i.name] = rng.standard_normal(shape).astype(dt)
        else:
            out[i.name] = rng.integers(0, 2, size=shape).astype(dt)
    return out


def ort_median(sess, feed, runs, warmup):
    for _ in range(warmup):
        sess.run(None, feed)
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sess.run(None, feed)
        ts.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ts)


def ort_cpu(sess, feed, runs, warmup):
    for _ in range(warmup):
        sess.run(None, feed)
    ts = []
    for _ in range(runs):
        t0 = time.process_time()
        sess.run(None, feed)
        ts.append((time.process_time() - t0) * 1e3)
    return statistics.median(ts)


def children_cpu_s():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def ours_cpu(petasos, artifact, threads, runs, warmup):
    """CPU ms per run: (cpu of a 2*runs bench - cpu of a runs bench) / runs."""
    used = []
    for k in (runs, 2 * runs):
        t0 = children_cpu_s()
        ours_median(petasos, artifact, threads, k, warmup)
        used.append(children_cpu_s() - t0)
    return (used[1] - used[0]) / runs * 1e3


def ours_median(petasos, artifact, threads, runs, warmup):
    cmd = [petasos, "bench", artifact, "--threads", str(threads), "--runs", str(runs),
           "--warmup", str(warmup)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{p.stderr}")
    last = p.stdout.strip().splitlines()[-1]
    if not last.startswith("median_ms="):
        sys.exit(f"unexpected bench output: {last}")
    return float(last.split("=", 1)[1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--petasos", required=True)
    ap.add_argument("--artifact", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="wall-clock medians (default) or CPU time per run (1 thread)")
    ap.add_argument("--input-shape", action="append", default=[],
                    help="NAME=1x3x640x640 for inputs with symbolic dims")
    a = ap.parse_args()
    shapes = {}
    for s in a.input_shape:
        name, dims = s.split("=", 1)
        shapes[name] = [int(d) for d in dims.split("x")]
    for t in [int(x) for x in a.threads.split(",")]:
        sess = ort_session(a.model, t)
        feed = feeds(sess, shapes, 0)
        ours, theirs = [], []
        for _ in range(a.rounds):
            if a.clock == "cpu":
                ours.append(ours_cpu(a.petasos, a.artifact, t, a.runs, a.warmup))
                theirs.append(ort_cpu(sess, feed, a.runs, a.warmup))
            else:
                ours.append(ours_median(a.petasos, a.artifact, t, a.runs, a.warmup))
                theirs.append(ort_median(sess, feed, a.runs, a.warmup))
        o, r = min(ours), min(theirs)
        print(f"{a.name:<24} {t:>7} {o:>10.3f} {r:>10.3f} {o / r:>7.3f}", flush=True)


if __name__ == "__main__":
    main()
