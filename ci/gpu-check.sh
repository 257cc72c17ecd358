#!/usr/bin/env bash
# GPU readiness check, run ON the GPU machine (torch 2.11.0+cu130 at /opt/torch/.venv, no cargo):
#   1. `harness doctor --require-cuda` (libtorch version, GPU, libtorch_cuda linked),
#   2. the CUDA suite suites/ci/gpu.toml (CLM throughput + representation),
#   3. a short table of the results.
# The binary is built on an x86_64 machine with cargo and carried: .devbin/harness(.gz), or
# HARNESS_BIN. Outputs (flat, for the device tool) go to $OUT (default ./gpu-out).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu-out}"
mkdir -p "$OUT"
BIN="${HARNESS_BIN:-.devbin/harness}"
[ -x "$BIN" ] || { [ -f "$BIN.gz" ] && gunzip -c "$BIN.gz" > "$BIN" && chmod +x "$BIN"; }
TORCH_LIB="$(ls -d /opt/torch/.venv/lib/python3*/site-packages/torch/lib 2>/dev/null | head -1)"
[ -n "$TORCH_LIB" ] || { echo "no torch under /opt/torch/.venv" >&2; exit 1; }
export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  echo "date: $(date -u +%FT%TZ)"
} | tee "$OUT/gpu.txt"
"$BIN" doctor --require-cuda 2>&1 | tee "$OUT/doctor.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "CUDA is not usable: stopping" >&2; exit 1; }
work="$(mktemp -d)"
"$BIN" run suites/ci/gpu.toml --results "$work/results" --reports "$work/reports" -q "$@" 2>&1 \
  | grep --line-buffered -v 'autocast_mode.h' | tee "$OUT/run.log"
# (tch's autocast calls at::autocast::set_enabled, which libtorch 2.11 deprecates with a warning
# on every call, thousands per fp16-amp run; TORCH_CPP_LOG_LEVEL does not silence them.)
status=${PIPESTATUS[0]}
report="$(ls -d "$work"/reports/ci-gpu/*/ | tail -1)"
for f in README.md summary.csv runs.csv eval_loss.png; do cp "$report/$f" "$OUT/$f" 2>/dev/null; done
echo
echo "== summary ($(head -1 "$OUT/gpu.txt" | cut -d, -f1)) =="
# experiment, model, eval CE, Hamming, tok/s: the columns worth a glance.
awk -F, 'function f(v, fmt) { return v == "" ? "-" : sprintf(fmt, v) }
  NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; printf "%-16s %-22s %10s %10s %10s\n", "experiment", "model", "eval_CE", "Hamming", "tok/s"; next }
  { printf "%-16s %-22s %10s %10s %10s\n", $c["experiment"], $c["model"], f($c["eval_loss_mean"], "%.4f"), f($c["hamming_mean"], "%.4f"), f($c["tokens_per_s_mean"], "%.0f") }' "$OUT/summary.csv"
exit "$status"
