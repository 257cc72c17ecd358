#!/usr/bin/env bash
# Renders a report folder's README.md to HTML (Python-Markdown with tables) and screenshots the
# page with headless Chromium, to check that a report reads as intended before it is committed:
#   bash ci/render-report.sh reports/<suite>/<version> [out.png]
# Needs `chromium` (Debian: apt-get install chromium); Python-Markdown goes into a per-user venv.
# Nothing is written into the report folder (its files are hashed in its README).
set -euo pipefail
report="$(realpath "$1")"
out="${2:-$PWD/$(basename "$report").png}"
[ -f "$report/README.md" ] || { echo "$report has no README.md" >&2; exit 1; }
command -v chromium >/dev/null || { echo "chromium is required (apt-get install chromium)" >&2; exit 1; }
venv="${XDG_CACHE_HOME:-$HOME/.cache}/masked-mixers-harness/markdown-venv"
[ -x "$venv/bin/python" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q markdown; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$venv/bin/python" - "$report" "$work/page.html" <<'PY'
import pathlib, sys, markdown
report, page = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
body = markdown.markdown((report / "README.md").read_text(encoding="utf-8"), extensions=["tables", "fenced_code"])
css = ("body{font-family:'DejaVu Sans',sans-serif;max-width:1250px;margin:1.5em auto;font-size:13px}"
       "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #bbb;padding:2px 6px}"
       "th{background:#f0f0f0}img{max-width:100%;border:1px solid #ddd}code{background:#f6f6f6}")
page.write_text(f'<!doctype html><meta charset="utf-8"><base href="{report.as_uri()}/"><style>{css}</style>{body}', encoding="utf-8")
PY
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1300,"${HEIGHT:-5000}" \
  --screenshot="$out" "file://$work/page.html" 2>/dev/null
echo "screenshot: $out"
