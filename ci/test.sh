#!/usr/bin/env bash
# README command 2: install what is missing, build, run every test (CPU, deterministic seeds),
# then the CI suites end to end (HARNESS_SKIP_SUITES=1 skips them).
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/env.sh
cargo test --release --workspace "$@"
[ "${HARNESS_SKIP_SUITES:-0}" = 1 ] && exit 0
# The retrieval pipeline of PAPER.md F on CPU (suites/ci/retrieval.toml: 60 runs, 3 seeds, about
# 5 minutes on 2 cores). Any failed run fails CI; the report's retrieval tables are printed.
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
started=$SECONDS
./target/release/harness run suites/ci/retrieval.toml -q --results "$out/results" --reports "$out/reports"
echo "ci-retrieval: $((SECONDS - started)) s"
sed -n '/^## Retrieval/,/^## Runs/p' "$out"/reports/ci-retrieval/*/README.md | grep -v '^## Runs'
