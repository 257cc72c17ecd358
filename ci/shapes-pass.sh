#!/usr/bin/env bash
# Every paper run at its own shapes on this CPU (the built-in profile `shapes`, docs/suites.md),
# each run in its own process so its manifest's peak RSS is its own, then one table of what ran,
# what the memory estimate refused, and every failure.
#
#   bash ci/shapes-pass.sh [OUT] [SUITE.toml ...]     # default: shapes-pass/, every suites/paper/*.toml
#
# Finished runs are reused, so a rerun continues where an earlier one stopped. Writes
# OUT/summary.csv (suite, run, experiment, model, status, wall_s, peak_rss_mib (the run's process
# or its throughput child, whichever is larger), estimate_gib, error) and OUT/summary.md.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-shapes-pass}"
shift || true
suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(suites/paper/*.toml)
harness="${HARNESS_BIN:-./target/release/harness}"
[ -x "$harness" ] || { echo "build first: cargo build --release (ci/test.sh does)" >&2; exit 2; }
mkdir -p "$out"
for suite in "${suites[@]}"; do
  name="$(basename "$suite" .toml)"
  ids="$("$harness" plan "$suite" --profile shapes --results "$out/results" 2>/dev/null | grep -oE '^[0-9a-f]{12}  ' | tr -d ' ')"
  [ -n "$ids" ] || { echo "$suite: no runs at shapes" >&2; continue; }
  for id in $ids; do
    started=$SECONDS
    "$harness" run "$suite" --profile shapes --only "$id" -q --no-report --results "$out/results" >> "$out/$name.log" 2>&1
    echo "$name $id exit $? in $((SECONDS - started)) s" | tee -a "$out/progress.txt"
  done
  # One report per suite, from its finished runs: a report per run would render (and sample) every
  # finished run again each time.
  started=$SECONDS
  "$harness" report "$suite" --profile shapes --results "$out/results" --reports "$out/reports" >> "$out/$name.log" 2>&1
  echo "$name report exit $? in $((SECONDS - started)) s" | tee -a "$out/progress.txt"
done
python3 - "$out" <<'PYEOF'
import glob, json, os, re, sys
out = sys.argv[1]
rows = []
for log in sorted(glob.glob(os.path.join(out, "*.log"))):
    suite = os.path.basename(log)[:-4]
    seen = {}
    for line in open(log, encoding="utf-8", errors="replace"):
        m = re.match(r"\[\d+/\d+\] (\S+) ([0-9a-f]{12}) (.*?) seed \d+: (running|finished in .*|FAILED: .*|REFUSED: .*|SKIPPED: .*|finished earlier, reused.*)$", line.strip())
        if m:
            seen[m.group(2)] = (m.group(1), m.group(3), m.group(4))
    for run, (exp, model, what) in seen.items():
        if what == "running":
            what = "killed (no end recorded: out of memory?)"
        folders = glob.glob(os.path.join(out, "results", "*", run + "*", "manifest.json"))
        man = json.load(open(folders[0])) if folders else {}
        ex = man.get("execution", {})
        # A throughput job runs in a child process: its peak is the run's.
        peaks = [float(m.group(1)) for k in ("peak_rss", "peak_rss_children") if (m := re.match(r"([\d.]+) MiB", ex.get(k, "")))]
        est = re.match(r"([\d.]+) GiB", ex.get("memory_estimate", ""))
        refused = re.search(r"needs an estimated ([\d.]+) GiB", what)
        status = "finished" if what.startswith("finished") else what.split(":")[0].lower()
        rows.append({
            "suite": suite, "run": run, "experiment": exp, "model": model, "status": status,
            "wall_s": f"{man['wall_s']:.1f}" if man.get("wall_s") and status == "finished" else "",
            "peak_rss_mib": f"{max(peaks):.1f}" if peaks else "",
            "estimate_gib": est.group(1) if est else (refused.group(1) if refused else ""),
            "error": "" if status == "finished" else what.split(": ", 1)[-1][:300],
        })
# The report of each suite, written once after its runs (the last attempt counts).
reports = {}
progress = os.path.join(out, "progress.txt")
for line in open(progress) if os.path.exists(progress) else []:
    m = re.match(r"(\S+) report exit (\d+) in (\d+) s", line.strip())
    if m:
        reports[m.group(1)] = (m.group(2), m.group(3))
for suite, (code, secs) in sorted(reports.items()):
    rows.append({"suite": suite, "run": "report", "experiment": "", "model": "",
                 "status": "finished" if code == "0" else "failed", "wall_s": secs, "peak_rss_mib": "",
                 "estimate_gib": "", "error": "" if code == "0" else f"harness report exited {code} (see {suite}.log)"})
cols = ["suite", "run", "experiment", "model", "status", "wall_s", "peak_rss_mib", "estimate_gib", "error"]
with open(os.path.join(out, "summary.csv"), "w") as f:
    f.write(",".join(cols) + "\n")
    for r in rows:
        f.write(",".join('"' + r[c].replace('"', "'") + '"' for c in cols) + "\n")
with open(os.path.join(out, "summary.md"), "w") as f:
    counts = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    f.write("# Paper runs at their shapes on this CPU\n\n" + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) + "\n\n")
    f.write("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n")
    for r in rows:
        f.write("| " + " | ".join(r[c].replace("|", "/") for c in cols) + " |\n")
print(open(os.path.join(out, "summary.md")).read().split("\n\n")[1])
PYEOF
