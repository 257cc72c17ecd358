#!/usr/bin/env bash
# GPU readiness check, run ON the GPU machine (torch 2.11.0+cu130 at /opt/torch/.venv, no cargo):
#   1. `harness doctor --require-cuda` (libtorch version, GPU, libtorch_cuda linked),
#   2. each CUDA suite given as an argument (default: suites/ci/gpu.toml, about 2 minutes on an
#      H200; suites/ci/gpu-retrieval.toml takes about 10, so run it in a call of its own);
#      `path.toml@profile` runs a profile (suites/paper/ts_clm_width.toml@gpu-smoke),
#   3. a short table of each suite's results.
# The binary is built on an x86_64 machine with cargo and carried: .devbin/harness(.gz), or
# HARNESS_BIN. Outputs go to $OUT (default ./gpu-out): gpu.txt, doctor.txt, run.log, and
# reports.tar.gz with every report folder (the device tool returns at most 8 files).
#
# Speed and memory (issue 11): `ci/gpu-check.sh suites/paper/throughput.toml suites/paper/memory.toml@gpu-smoke`
# runs the peer comparison (harness vs bench/pytorch/peer.py on the same card, alternating) and
# the T6/T7 grid; their throughput.csv and memory tables are printed. The Llama peer needs
# Hugging Face transformers beside the card's torch: with no network there, carry wheels for its
# Python (3.12) in .devbin/wheels (`python3 -m pip download -r bench/pytorch/requirements.txt
# --python-version 3.12 --only-binary=:all: --platform manylinux_2_28_x86_64 -d .devbin/wheels`,
# about 44 MB); they are installed into a scratch folder on PYTHONPATH, nothing else changes.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu-out}"
mkdir -p "$OUT"
BIN="${HARNESS_BIN:-.devbin/harness}"
[ -x "$BIN" ] || { [ -f "$BIN.gz" ] && gunzip -c "$BIN.gz" > "$BIN" && chmod +x "$BIN"; }
TORCH_LIB="$(ls -d /opt/torch/.venv/lib/python3*/site-packages/torch/lib 2>/dev/null | head -1)"
[ -n "$TORCH_LIB" ] || { echo "no torch under /opt/torch/.venv" >&2; exit 1; }
export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
PY="$(dirname "$(dirname "$(dirname "$(dirname "$TORCH_LIB")")")")/../bin/python"
if ! "$PY" -c "import transformers" 2>/dev/null && [ -d .devbin/wheels ]; then
  pylib="$(mktemp -d)"
  "$PY" -m pip install --quiet --no-index --find-links .devbin/wheels --target "$pylib" -r bench/pytorch/requirements.txt \
    && export PYTHONPATH="$pylib${PYTHONPATH:+:$PYTHONPATH}"
fi
"$PY" -c "import transformers; print('transformers', transformers.__version__)" 2>/dev/null \
  || echo "transformers is not importable by $PY: Llama peer runs will fail (see the header)"
suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(suites/ci/gpu.toml)
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  echo "date: $(date -u +%FT%TZ)"
  echo "suites: ${suites[*]}"
} | tee "$OUT/gpu.txt"
"$BIN" doctor --require-cuda 2>&1 | tee "$OUT/doctor.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "CUDA is not usable: stopping" >&2; exit 1; }
work="$(mktemp -d)"
status=0
for suite in "${suites[@]}"; do
  profile=()
  case "$suite" in *@*) profile=(--profile "${suite##*@}"); suite="${suite%@*}" ;; esac
  "$BIN" run "$suite" "${profile[@]}" --results "$work/results" --reports "$work/reports" -q 2>&1 \
    | grep --line-buffered -v 'autocast_mode.h' | tee -a "$OUT/run.log"
  # (tch's autocast calls at::autocast::set_enabled, which libtorch 2.11 deprecates with a
  # warning on every call, thousands per fp16-amp run; TORCH_CPP_LOG_LEVEL does not silence them.)
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
done
tar -C "$work/reports" -czf "$OUT/reports.tar.gz" .
card="$(head -1 "$OUT/gpu.txt" | cut -d, -f1)"
for summary in "$work"/reports/*/*/summary.csv; do
  echo
  echo "== $(basename "$(dirname "$(dirname "$summary")")") ($card) =="
  # experiment, model, setting and the metrics worth a glance.
  awk -F, 'function col(k) { return (k in c) ? $c[k] : "" }
    function f(v, fmt) { return v == "" ? "-" : sprintf(fmt, v) }
    NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; printf "%-14s %-24s %-26s %9s %9s %9s %9s\n", "experiment", "model", "setting", "eval_CE", "Hamming", "tok/s", "test_CE"; next }
    { printf "%-14s %-24s %-26s %9s %9s %9s %9s\n", col("experiment"), col("model"), col("setting"), f(col("eval_loss_mean"), "%.4f"), f(col("hamming_mean"), "%.4f"), f(col("tokens_per_s_mean"), "%.0f"), f(col("test_ce_mean"), "%.3f") }' "$summary"
  retrieval="$(dirname "$summary")/retrieval.csv"
  [ -f "$retrieval" ] && { echo "-- top-1 (%) by n --"; cat "$retrieval"; }
  for t in "$(dirname "$summary")"/throughput.csv; do
    [ -f "$t" ] && { echo "-- throughput ($card) --"; cat "$t"; }
  done
  readme="$(dirname "$summary")/README.md"
  grep -q '^## Peak memory' "$readme" && sed -n '/^## Peak memory/,/^## Summary/p' "$readme" | grep '^|\|^###'
  for t in "$(dirname "$summary")"/table_*.csv; do
    [ -f "$t" ] && { echo "-- $(basename "$t" .csv) --"; cat "$t"; }
  done
done
exit "$status"
