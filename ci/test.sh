#!/usr/bin/env bash
# README command 2: install what is missing, build, run every test (CPU, deterministic seeds),
# then the CI suites end to end (HARNESS_SKIP_SUITES=1 skips them).
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/env.sh
# The PyTorch peer's Llama (bench/pytorch/requirements.txt) and the scripts' packages
# (scripts/requirements.txt) beside that torch, once.
"$HARNESS_TORCH_DIR/bin/python" -c "import transformers, pyarrow, safetensors, tensorboard" 2>/dev/null \
  || "$HARNESS_TORCH_DIR/bin/python" -m pip install --quiet --disable-pip-version-check -r bench/pytorch/requirements.txt -r scripts/requirements.txt
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
cargo test --release --workspace "$@" 2>&1 | tee "$out/test.log"
# Tests that need an outside tool are #[ignore]d (a plain `cargo test` lists them as ignored, never
# as passed) and run here, where the tool is installed: transformers (above), Slurm (below).
cargo test --release -p harness --test throughput -- --ignored 2>&1 | tee -a "$out/test.log"
# The paper's tokenizers against transformers: same class, same ids, same retraining (scripts/hf_tokenizer_check.py).
cargo test --release -p harness --test tokenizers_hf -- --ignored 2>&1 | tee -a "$out/test.log"
# T1's e5 row: scripts/e5_embed.py on a tiny random Mistral, its file into retrieval_eval.
cargo test --release -p harness --test e5_script -- --ignored --nocapture 2>&1 | tee -a "$out/test.log"
# Generation: the Llama exported with `harness export hf` against transformers' greedy generate (scripts/hf_generate.py).
cargo test --release -p harness --test generate -- --ignored 2>&1 | tee -a "$out/test.log"
# Live curves: the event files training writes, read with TensorBoard's own reader (scripts/read_tensorboard.py).
cargo test --release -p harness --test tensorboard -- --ignored 2>&1 | tee -a "$out/test.log"
# The training path against a plain PyTorch loop written as the reference trains (scripts/reference_trajectory.py).
cargo test --release -p harness --test trajectory -- --ignored --nocapture 2>&1 | tee -a "$out/test.log"
# The summary-set pipeline against a real LLM server: llama-cpp-python's, built once per user
# (ci/llama-cpp.sh), serving a tiny random-weight Llama the test writes. HARNESS_SKIP_LLAMA_CPP=1 skips it.
if [ "${HARNESS_SKIP_LLAMA_CPP:-0}" != 1 ]; then
  HARNESS_LLAMA_CPP_PYTHON="$(bash ci/llama-cpp.sh)" \
    cargo test --release -p harness --test pairs_llama_cpp -- --ignored --nocapture 2>&1 | tee -a "$out/test.log"
else
  echo "llama-cpp: skipped (HARNESS_SKIP_LLAMA_CPP=1): the summary pipeline did not meet a real LLM server"
fi
# Totals over every test binary, printed last (cargo's own last lines are the doc-test binaries').
# Scale-out against a real Slurm: a one-node cluster on 127.0.0.1 (Debian's slurm-wlm and munge,
# installed when missing; needs root and apt-get), the job-array tests, then teardown. Nothing is
# left running. HARNESS_SKIP_SLURM=1 skips it.
if [ "${HARNESS_SKIP_SLURM:-0}" != 1 ] && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  started=$SECONDS
  cluster="$out/slurm-cluster"
  trap 'bash ci/slurm/cluster.sh stop "$cluster"; rm -rf "$out"' EXIT
  eval "$(bash ci/slurm/cluster.sh start "$cluster")"
  cargo test --release -p harness --test slurm -- --ignored --test-threads 1 2>&1 | tee -a "$out/test.log"
  bash ci/slurm/cluster.sh stop "$cluster"
  unset SLURM_CONF
  echo "slurm: the job-array tests against a real slurmctld, $((SECONDS - started)) s"
else
  echo "slurm: skipped (HARNESS_SKIP_SLURM=1, not root, or no apt-get): the job-array tests did not meet a real Slurm"
fi
totals="$(awk '/^test result:/ { p += $4; f += $6 } END { printf "%d passed, %d failed", p, f }' "$out/test.log")"
if [ "${HARNESS_SKIP_SUITES:-0}" != 1 ]; then
  # HARNESS_CI_CPU_KERNELS=portable runs the two bitwise suites on the portable CPU kernel path
  # (MKL COMPATIBLE, ATen AVX2, 2 threads), checked against their `@portable` baselines; unset,
  # they run natively and are checked against the baseline of this machine's kernel path.
  # Throughput always runs natively: its figures are this machine's speed.
  kernels=()
  [ -z "${HARNESS_CI_CPU_KERNELS:-}" ] || kernels=(--set "cpu_kernels=\"$HARNESS_CI_CPU_KERNELS\"")
  # The retrieval pipeline of PAPER.md F on CPU (suites/ci/retrieval.toml: 60 runs, 3 seeds, about
  # 5 minutes on 2 cores). Any failed run fails CI; the report's retrieval tables are printed.
  started=$SECONDS
  ./target/release/harness run suites/ci/retrieval.toml "${kernels[@]}" -q --results "$out/results" --reports "$out/reports"
  echo "ci-retrieval: every run finished, $((SECONDS - started)) s"
  sed -n '/^## Retrieval/,/^## Runs/p' "$out"/reports/ci-retrieval/*/README.md | grep -v '^## Runs'
  # The TinyStories CLM tables T2-T5 and T8 (suites/paper/ts_clm_width.toml) at their CPU profile:
  # 45 runs on ../shared/data, about 6 minutes on 2 cores; the paper-layout tables and claims.
  started=$SECONDS
  ./target/release/harness run suites/paper/ts_clm_width.toml --profile ci "${kernels[@]}" -q --results "$out/results" --reports "$out/reports"
  echo "ts-clm-width --profile ci: every run finished, $((SECONDS - started)) s"
  sed -n '/^## Paper tables/,/^## Summary/p' "$out"/reports/ts-clm-width/*/README.md | grep -v '^## Summary'
  # Speed against the PyTorch reference on this machine (suites/paper/throughput.toml, CPU
  # profile: 7 runs, 5 alternating rounds per side, the peer under the harness's allocator, about
  # 3.5 minutes); the speed-ups are checked below as floors (ci/baselines/throughput.ci[@<class>].toml).
  started=$SECONDS
  ./target/release/harness run suites/paper/throughput.toml --profile ci -q --results "$out/results" --reports "$out/reports"
  echo "throughput --profile ci: every run finished, $((SECONDS - started)) s"
  sed -n '/^## Throughput/,/^## Summary/p' "$out"/reports/throughput/*/README.md | grep -v '^## Summary'
  # Regression check: every metric of the suites against ci/baselines/ (CPU: bitwise-tight
  # bands; speed-ups as floors). Exit 1 on a drifted metric, 2 on a missing run or metric.
  checked=0
  for suite in "suites/ci/retrieval.toml" "suites/paper/ts_clm_width.toml --profile ci"; do
    echo "== harness check $suite ${kernels[*]}"
    # shellcheck disable=SC2086
    ./target/release/harness check $suite "${kernels[@]}" --results "$out/results" || checked=$?
  done
  echo "== harness check suites/paper/throughput.toml --profile ci"
  ./target/release/harness check suites/paper/throughput.toml --profile ci --results "$out/results" || checked=$?
  [ "$checked" -eq 0 ] || { echo "harness check failed (exit $checked): a metric drifted or is missing (tables above)" >&2; exit "$checked"; }
fi
echo "tests: $totals"
