#!/usr/bin/env bash
# README command 2: install what is missing, build, run every test (CPU, deterministic seeds).
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/env.sh
cargo test --release --workspace "$@"
