#!/usr/bin/env bash
# Sourced by the README commands and CI: makes sure libtorch 2.11.0 (the version tch =0.24.0 binds)
# is installed, then exports what torch-sys needs to build against it.
#
# libtorch comes from PyPI's torch==2.11.0 wheel, installed into a per-user cache keyed by the
# version (override with HARNESS_TORCH_DIR). An existing install is reused after its version is
# verified; a broken or mismatched one is reinstalled.
set -euo pipefail
TORCH_VERSION=2.11.0
HARNESS_TORCH_DIR="${HARNESS_TORCH_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/masked-mixers-harness/torch-$TORCH_VERSION}"
PY="$HARNESS_TORCH_DIR/bin/python"

torch_ok() {
  [ -x "$PY" ] && "$PY" - "$TORCH_VERSION" <<'PYEOF' 2>/dev/null
import sys, torch
want = sys.argv[1]
sys.exit(0 if torch.__version__.split("+")[0] == want else 1)
PYEOF
}

if ! torch_ok; then
  echo "[env] installing torch==$TORCH_VERSION into $HARNESS_TORCH_DIR (about 4.6 GB, once)" >&2
  rm -rf "$HARNESS_TORCH_DIR"
  mkdir -p "$(dirname "$HARNESS_TORCH_DIR")"
  python3 -m venv "$HARNESS_TORCH_DIR"
  "$PY" -m pip install --quiet --disable-pip-version-check --no-cache-dir "torch==$TORCH_VERSION"
  torch_ok || { echo "[env] torch $TORCH_VERSION did not install correctly into $HARNESS_TORCH_DIR" >&2; exit 1; }
fi

TORCH_SITE="$("$PY" -c 'import os, torch; print(os.path.dirname(torch.__file__))' 2>/dev/null)"
# torch-sys reads LIBTORCH; it then skips its own version check, which torch_ok above did.
export LIBTORCH="$TORCH_SITE"
export LIBTORCH_BYPASS_VERSION_CHECK=1
export HARNESS_TORCH_DIR
echo "[env] libtorch $TORCH_VERSION at $LIBTORCH" >&2
