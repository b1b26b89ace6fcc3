#!/usr/bin/env bash
# Latency of petasos-compiled CPU executables vs onnxruntime, per model at 1 and 2 threads.
#
#   bench/vs_onnxruntime.sh [MODEL...]      (default: resnet18 mobilenet_v2 densenet121
#                                            ch_PP-OCRv4_det_infer)
# Environment: PETASOS_SHARED (the shared data folder; models under $PETASOS_SHARED/models),
#   PETASOS (the petasos binary; default: target/debug/petasos, built if missing),
#   THREADS (default 1,2), ROUNDS (default 3), RUNS (default 20), VENV (default ${TMPDIR:-/tmp}/petasos-ort-venv),
#   OUT (artifact folder root; default ${TMPDIR:-/tmp}/petasos-vs-ort),
#   CLOCK (wall, the default, or cpu: CPU time per run, robust on a loaded machine; 1 thread).
# onnxruntime: used from python3 when importable; otherwise a venv is created and
# onnxruntime + numpy installed into it from the package registry.
# Prints per model and thread count: ours ms, ORT ms, ratio (ours / ORT; < 1 is faster).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${PETASOS_SHARED:?set PETASOS_SHARED to the shared data folder}"
THREADS=${THREADS:-1,2}
ROUNDS=${ROUNDS:-3}
RUNS=${RUNS:-20}
CLOCK=${CLOCK:-wall}
OUT=${OUT:-${TMPDIR:-/tmp}/petasos-vs-ort}
PETASOS=${PETASOS:-target/debug/petasos}
if [ ! -x "$PETASOS" ]; then
  cargo build -q -p petasos-compiler --bin petasos
fi

PY=python3
if ! "$PY" -c 'import onnxruntime, numpy' 2>/dev/null; then
  VENV=${VENV:-${TMPDIR:-/tmp}/petasos-ort-venv}
  if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q onnxruntime numpy
  fi
  PY="$VENV/bin/python"
fi
echo "onnxruntime $("$PY" -c 'import onnxruntime; print(onnxruntime.__version__)')"

# Benchmark input shapes of models with symbolic dims (shared/models/README.md).
shape_args() {
  case "$1" in
    ch_PP-OCRv4_det_infer) echo "--input-shape x=1x3x640x640" ;;
    ch_PP-OCRv4_rec_infer) echo "--input-shape x=1x3x48x320" ;;
    ch_ppocr_mobile_v2.0_cls_infer) echo "--input-shape x=1x3x48x192" ;;
    *) echo "" ;;
  esac
}

MODELS=("$@")
[ ${#MODELS[@]} -gt 0 ] || MODELS=(resnet18 mobilenet_v2 densenet121 ch_PP-OCRv4_det_infer)
mkdir -p "$OUT"
printf '%-24s %7s %10s %10s %7s\n' model threads ours_ms ort_ms ratio
for m in "${MODELS[@]}"; do
  onnx="$PETASOS_SHARED/models/$m.onnx"
  art="$OUT/$m"
  # shellcheck disable=SC2046
  if ! "$PETASOS" compile "$onnx" --target cpu -o "$art" $(shape_args "$m") >/dev/null; then
    echo "$m: compile failed" >&2
    continue
  fi
  # shellcheck disable=SC2046
  "$PY" bench/vs_onnxruntime.py --petasos "$PETASOS" --artifact "$art" --model "$onnx" \
    --name "$m" --threads "$THREADS" --rounds "$ROUNDS" --runs "$RUNS" --clock "$CLOCK" $(shape_args "$m")
done
