#!/usr/bin/env bash
# The GPU check (issue 25), run ON the GPU machine (torch 2.11.0+cu130 at /opt/torch/.venv, no
# cargo, no network) with a `harness` binary built on an x86_64 machine and carried
# (.devbin/harness or .devbin/harness.gz; or HARNESS_BIN).
#
#   ci/gpu-check.sh [PHASE ...]         the phases given, in the order below (default: all)
#   ci/gpu-check.sh --plan [PHASE ...]  no GPU needed: each phase's suites expanded by `harness plan`
#                                       (suite, profile and --set checked), nothing run; CI runs it
#
# Phases, most needed first, with a guess of their H200 seconds (the summary records the real ones):
#   paths       suites/ci/gpu-paths.toml: rows in pinned host memory; a forced out-of-memory run
#               (its message and proposed batch); a run refused by the card-memory query      60
#   throughput  suites/paper/throughput.toml@gpu-check: harness vs the PyTorch peer, d256/d1024 n8,
#               n_ctx 512, fp32 and bf16, and MFU of the d1024 mixer in bf16 (the speed goals) 300
#   precision   suites/ci/gpu.toml: fp32, fp16-amp and bf16 CLM of both models, representation 130
#   band        `harness check` of those runs against a CUDA baseline written from them here    5
#   memory      suites/paper/memory.toml@gpu-smoke: the T6/T7 grid on the card               120
#   width       suites/paper/ts_clm_width.toml@gpu-smoke: every T2-T5/T8 shape, fp16 AMP      300
#   retrieval   suites/ci/gpu-retrieval.toml@gpu-smoke: CLM, frozen, InfoNCE, top-1 vs n     200
#   rerun       suites/ci/gpu.toml again, checked against the band's baseline (CUDA noise)   130
#   smoke       every other paper suite's gpu-smoke profile (autoencoders, FineWeb/FineMath
#               sweeps, heads, norms, bidirectional, representation, 4xV100, variants)       600
#
# Together they take longer than one 10-minute call. GPU_CHECK_BUDGET (seconds, default 540) is
# this call's share: a phase starts while the smaller of its guess and 90 s is left (runs are the unit
# of work: a phase stopped at the end of the budget keeps its finished runs), and the summary
# lists what waits. Runs and reports stay in GPU_WORK (default .gpu-work, ignored by git, so it
# stays on a warm machine): a second call continues where the first stopped; finished phases and
# runs are not redone.
#
# Outputs, in $OUT (default ./gpu-out): summary.md (also printed last), run.log, doctor.txt and
# record.tar.gz, which holds <date>-<card>/ with all of these, each phase's report folder, the
# check tables and the baseline: `tar -xzf record.tar.gz -C ci/gpu-runs` records the run. Exit
# status 1 when a phase failed; a phase that waits or was stopped at the budget does not fail it.
#
# The Llama peer needs Hugging Face transformers beside the card's torch (the card's image has
# it; ci/gpu-runs says which version each run used). Where it is missing, carry wheels for its
# Python (3.12) in .devbin/wheels (`python3 -m pip download -r bench/pytorch/requirements.txt
# --python-version 3.12 --only-binary=:all: --platform manylinux_2_28_x86_64 -d .devbin/wheels`);
# they are installed into a scratch folder on PYTHONPATH, nothing else changes.
set -uo pipefail
cd "$(dirname "$0")/.."
ALL=(paths throughput precision band memory width retrieval rerun smoke)
declare -A NEEDS=([band]=precision [rerun]=precision)
declare -A GUESS=([paths]=60 [throughput]=300 [precision]=130 [band]=5 [memory]=120 [width]=300 [retrieval]=200 [rerun]=130 [smoke]=600)
plan=0
phases=()
for a in "$@"; do
  case "$a" in
    --plan) plan=1 ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) [ -n "${GUESS[$a]:-}" ] || { echo "ci/gpu-check.sh: unknown phase '$a' (phases: ${ALL[*]})" >&2; exit 2; }
       phases+=("$a") ;;
  esac
done
[ ${#phases[@]} -gt 0 ] || phases=("${ALL[@]}")
started=$SECONDS
BUDGET="${GPU_CHECK_BUDGET:-540}"
OUT="${OUT:-$PWD/gpu-out}"
WORK="${GPU_WORK:-$PWD/.gpu-work}"
LOG="$WORK/record/run.log"

BIN="${HARNESS_BIN:-.devbin/harness}"
[ -x "$BIN" ] || { [ -f "$BIN.gz" ] && gunzip -c "$BIN.gz" > "$BIN" && chmod +x "$BIN"; }
if [ ! -x "$BIN" ] && [ "$plan" = 1 ] && [ -x target/release/harness ]; then BIN=target/release/harness; fi
[ -x "$BIN" ] || { echo "no harness binary at $BIN (build it with cargo on x86_64 and carry .devbin/harness.gz)" >&2; exit 1; }

# One harness invocation of a phase: `run` on the card; `plan` (same suite, profile and --set)
# under --plan. Usage: h <tag> <suite[@profile]> [run options...]
h() {
  local tag="$1" spec="$2"; shift 2
  local suite="${spec%@*}" profile=()
  [ "$spec" != "$suite" ] && profile=(--profile "${spec##*@}")
  if [ "$plan" = 1 ]; then
    local sets=() a
    while [ $# -gt 0 ]; do a="$1"; shift; [ "$a" = --set ] && { sets+=(--set "$1"); shift; }; done
    "$BIN" plan "$suite" "${profile[@]}" "${sets[@]}" 2>&1 | head -1
    return "${PIPESTATUS[0]}"
  fi
  echo "\$ harness run $spec $*" >> "$LOG"
  # (tch's autocast calls at::autocast::set_enabled, which libtorch 2.11 deprecates with a warning
  # on every call, thousands per fp16-amp run; TORCH_CPP_LOG_LEVEL does not silence them.)
  "$BIN" run "$suite" "${profile[@]}" --results "$WORK/results/$tag" --reports "$WORK/reports/$tag" -q "$@" 2>&1 \
    | grep --line-buffered -v 'autocast_mode.h' | tee -a "$LOG" "$WORK/record/$tag.log"
  return "${PIPESTATUS[0]}"
}
# `harness check` of a phase's results against a baseline; its table goes to record/<name>.txt.
check() {
  local name="$1" tag="$2" suite="$3"; shift 3
  [ "$plan" = 1 ] && return 0
  echo "\$ harness check $suite --results $WORK/results/$tag $*" >> "$LOG"
  "$BIN" check "$suite" --results "$WORK/results/$tag" --baseline "$WORK/record/ci-gpu.cuda.toml" "$@" > "$WORK/record/$name.txt" 2>&1
  local rc=$?
  cat "$WORK/record/$name.txt" >> "$LOG"
  echo "exit $rc" >> "$WORK/record/$name.txt"
  return $rc
}
# A line of the paths phase's verdicts.
verdict() { echo "$1" | tee -a "$WORK/record/paths.txt"; }

phase_paths() {
  : > "$WORK/record/paths.txt"
  h paths suites/ci/gpu-paths.toml
  local rc=$?
  [ "$plan" = 1 ] && { h paths suites/ci/gpu-paths.toml --only oom --set train.batch_size=4096; return; }
  local ok=0 rows oom
  rows="$(grep -ho '"training_rows": "[^"]*"' "$WORK"/results/paths/ci-gpu-paths/*/manifest.json 2>/dev/null | head -1)"
  case "$rows" in
    *"pinned host memory"*) verdict "ok   pinned rows: $rows" ;;
    *) verdict "FAIL pinned rows: expected pinned host memory, manifest says: ${rows:-nothing (did the run finish?)}"; ok=1 ;;
  esac
  oom="$(grep -h '^\[.*\] oom .*FAILED' "$WORK/record/paths.log" | tail -1)"
  if [ "$rc" -ne 0 ] && [[ "$oom" == *"CUDA out of memory: asked for"*"lower train.batch_size to 256 (and set train.accumulate = 2"* ]]; then
    verdict "ok   out of memory: ${oom#*FAILED: }"
  else
    verdict "FAIL out of memory: expected the harness's message with batch 256; got: ${oom:-no failed oom run (exit $rc)}"; ok=1
  fi
  local refused
  refused="$(h paths suites/ci/gpu-paths.toml --only oom --set train.batch_size=4096; echo "exit $?")"
  if [[ "$refused" == *"needs at least"*"but the cuda has"*"exit 1" ]]; then
    verdict "ok   refused before any work: $(echo "$refused" | grep -o 'run .* needs at least.*' | head -1)"
  else
    verdict "FAIL refusal by the card-memory query: got: $(echo "$refused" | tail -3 | tr '\n' ' ')"; ok=1
  fi
  return $ok
}
phase_throughput() { h throughput suites/paper/throughput.toml@gpu-check; }
phase_precision() { h precision suites/ci/gpu.toml; }
phase_band() {
  check band-baseline precision suites/ci/gpu.toml --update-baseline && check band precision suites/ci/gpu.toml
}
phase_memory() { h memory suites/paper/memory.toml@gpu-smoke; }
phase_width() { h width suites/paper/ts_clm_width.toml@gpu-smoke; }
phase_retrieval() { h retrieval suites/ci/gpu-retrieval.toml@gpu-smoke; }
SMOKE_LIST="autoencoders_ts finemath_ctx_sweep fineweb_bidirectional fineweb_ctx_sweep fineweb_heads
  fineweb_norms_residuals representation_fineweb ts_clm_4xv100 ts_clm_variants"
phase_smoke() {
  local s rc=0
  for s in $SMOKE_LIST; do h smoke "suites/paper/$s.toml@gpu-smoke" || rc=1; done
  return $rc
}
phase_rerun() {
  [ "$plan" = 1 ] || [ -f "$WORK/record/ci-gpu.cuda.toml" ] || phase_band || return 1
  h rerun suites/ci/gpu.toml && check rerun rerun suites/ci/gpu.toml
}

if [ "$plan" = 1 ]; then
  status=0
  for p in "${phases[@]}"; do
    out="$("phase_$p" 2>&1)" || { status=1; echo "FAIL $p:"; echo "$out" | sed 's/^/  /'; continue; }
    echo "ok   $p: $(echo "$out" | grep -c '^suite ') suite expansion(s)"
  done
  exit $status
fi

mkdir -p "$OUT" "$WORK/done" "$WORK/record"
VENV="${TORCH_VENV:-/opt/torch/.venv}"
TORCH_LIB="$(ls -d "$VENV"/lib/python3*/site-packages/torch/lib 2>/dev/null | head -1)"
[ -n "$TORCH_LIB" ] || { echo "no torch under $VENV" >&2; exit 1; }
export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
PY="$VENV/bin/python"
if ! "$PY" -c "import transformers" 2>/dev/null && [ -d .devbin/wheels ]; then
  pylib="$(mktemp -d)"
  "$PY" -m pip install --quiet --no-index --find-links .devbin/wheels --target "$pylib" -r bench/pytorch/requirements.txt \
    && export PYTHONPATH="$pylib${PYTHONPATH:+:$PYTHONPATH}"
fi
{
  echo "card: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1)"
  echo "torch: $("$PY" -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda)' 2>&1)"
  echo "transformers: $("$PY" -c 'import transformers; print(transformers.__version__)' 2>/dev/null || echo 'not importable: Llama peer runs will fail (see the header)')"
  echo "harness: $("$BIN" --version)"
  echo "date: $(date -u +%FT%TZ)"
  echo "phases asked: ${phases[*]}; budget ${BUDGET} s"
} | tee -a "$WORK/record/gpu.txt"
"$BIN" doctor --require-cuda 2>&1 | tee "$WORK/record/doctor.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "CUDA is not usable: stopping" >&2; cp "$WORK/record/doctor.txt" "$OUT/"; exit 1; }

# status.tsv: phase, state, seconds, this call's date (one line per phase per call).
export BIN WORK LOG plan
export SMOKE_LIST
export -f h check verdict phase_paths phase_throughput phase_precision phase_band phase_memory phase_width phase_retrieval phase_rerun phase_smoke
failed=0
for p in "${phases[@]}"; do
  if [ -f "$WORK/done/$p" ]; then
    echo "== $p: done in an earlier call"
    continue
  fi
  need="${NEEDS[$p]:-}"
  if [ -n "$need" ] && [ ! -f "$WORK/done/$need" ]; then
    echo "== $p: waits for phase $need"
    printf '%s\twaits for %s\t0\t%s\n' "$p" "$need" "$(date -u +%FT%TZ)" >> "$WORK/status.tsv"
    continue
  fi
  left=$((BUDGET - (SECONDS - started)))
  floor=$(( GUESS[$p] < 90 ? GUESS[$p] : 90 ))
  if [ "$left" -lt "$floor" ]; then
    echo "== $p: waits (about ${GUESS[$p]} s, ${left} s left of this call's budget)"
    printf '%s\twaits\t0\t%s\n' "$p" "$(date -u +%FT%TZ)" >> "$WORK/status.tsv"
    continue
  fi
  echo "== $p (guess ${GUESS[$p]} s, ${left} s left)" | tee -a "$LOG"
  t0=$SECONDS
  # The phase in a subshell under the time left: a phase past the budget is stopped, and its
  # finished runs are kept for the next call.
  timeout --kill-after=20 "$left" bash -c "phase_$p"
  rc=$?
  dt=$((SECONDS - t0))
  if [ "$rc" -eq 0 ]; then state=ok; touch "$WORK/done/$p"
  elif [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then state="stopped at the budget"
  else state="failed (exit $rc)"; failed=1
  fi
  printf '%s\t%s\t%s\t%s\n' "$p" "$state" "$dt" "$(date -u +%FT%TZ)" >> "$WORK/status.tsv"
done

"$PY" ci/gpu-summary.py "$WORK" > "$WORK/record/summary.md" 2> "$WORK/record/summary.err" \
  || { echo "ci/gpu-summary.py failed:"; cat "$WORK/record/summary.err"; }
[ -s "$WORK/record/summary.err" ] || rm -f "$WORK/record/summary.err"
card="$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | tr 'A-Z' 'a-z' | sed 's/nvidia //; s/[^a-z0-9]\+/-/g; s/-$//')"
name="$(date -u +%F)-${card:-gpu}"
stage="$(mktemp -d)"
mkdir -p "$stage/$name"
cp "$WORK"/record/* "$stage/$name/" 2>/dev/null
cp "$WORK/status.tsv" "$stage/$name/" 2>/dev/null
# Each phase's newest report folder per suite (figures, tables, README): reports/<phase>/<suite>/.
for d in "$WORK"/reports/*/*; do
  [ -d "$d" ] || continue
  newest="$(ls -d "$d"/*/ 2>/dev/null | sort | tail -1)"
  phase="$(basename "$(dirname "$d")")"
  [ -n "$newest" ] && mkdir -p "$stage/$name/reports/$phase" && cp -r "$newest" "$stage/$name/reports/$phase/$(basename "$d")"
done
tar -C "$stage" -czf "$OUT/record.tar.gz" "$name"
cp "$WORK/record/summary.md" "$LOG" "$WORK/record/doctor.txt" "$OUT/" 2>/dev/null
cat "$WORK/record/summary.md"
exit $failed
