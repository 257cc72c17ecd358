#!/usr/bin/env bash
# README command 1: install what is missing (libtorch 2.11.0 from PyPI), build, run the main job.
# Extra arguments go to `harness run` (e.g. --set train.steps=50).
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/env.sh
cargo build --release --bin harness
exec ./target/release/harness run suites/quickstart.toml "$@"
