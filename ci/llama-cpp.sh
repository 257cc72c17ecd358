#!/usr/bin/env bash
# A real OpenAI-compatible LLM server for the summary-set tests: llama-cpp-python's (the paper's
# own tool, PAPER.md B.1), built once from PyPI into a per-user cache (llama.cpp compiles from
# source: about 8 minutes on 2 cores), with the `gguf` package that writes the test's tiny model.
# Prints the venv's python. HARNESS_LLAMA_CPP_DIR overrides the folder.
set -euo pipefail
version=0.3.36
dir="${HARNESS_LLAMA_CPP_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/masked-mixers-harness/llama-cpp-python-$version}"
if ! "$dir/bin/python" -c "import llama_cpp.server, gguf" 2>/dev/null; then
  started=$SECONDS
  rm -rf "$dir.partial"
  python3 -m venv "$dir.partial" >&2
  "$dir.partial/bin/python" -m pip install --quiet --disable-pip-version-check \
    "llama-cpp-python[server]==$version" "gguf==0.17.1" "numpy<3" >&2
  rm -rf "$dir"
  mv "$dir.partial" "$dir"
  # The venv's scripts name their folder; the moved venv is run through its python only.
  echo "llama-cpp: built llama-cpp-python $version into $dir in $((SECONDS - started)) s" >&2
fi
echo "$dir/bin/python"
