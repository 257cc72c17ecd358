#!/usr/bin/env python3
"""The summary of a ci/gpu-check.sh work folder, as markdown on stdout (standard library only:
it runs under the GPU machine's Python and here).

    python3 ci/gpu-summary.py .gpu-work

It reads what the harness wrote (each phase's newest report: runs.csv, throughput.json,
retrieval.csv) and the script's own records (status.tsv, gpu.txt, paths.txt, the check tables),
and says, for issue 25: which phases ran, the speed goals (train step >= 1.1x the PyTorch peer;
MFU >= 45% for the d1024 flat mixer in bf16), the CUDA-only paths, whether every training run
ended with finite losses, and the band check.
"""
import csv
import json
import math
import sys
from pathlib import Path

SPEEDUP_GOAL = 1.1
MFU_GOAL = 0.45
# The phases in ci/gpu-check.sh's order, with the report each one writes (phase folder, suite).
PHASES = ["paths", "throughput", "precision", "band", "memory", "width", "retrieval", "rerun", "smoke"]


def newest_reports(work, tag):
    """The newest report folder a phase wrote for each suite: reports/<tag>/<suite>/<version>/."""
    out = []
    for suite in sorted(p for p in (work / "reports" / tag).glob("*") if p.is_dir()):
        versions = sorted(r.parent for r in suite.glob("*/README.md"))
        if versions:
            out.append(versions[-1])
    return out


def newest_report(work, tag):
    reports = newest_reports(work, tag)
    return reports[-1] if reports else None


def num(x):
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def fmt(v, spec):
    return "—" if v is None else format(v, spec)


def phases(work):
    """The last state of each phase and its seconds over every call."""
    state, seconds = {}, {}
    path = work / "status.tsv"
    if path.exists():
        for line in path.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) < 3:
                continue
            state[parts[0]] = parts[1]
            seconds[parts[0]] = seconds.get(parts[0], 0) + int(parts[2] or 0)
    rows = [(p, state.get(p, "not asked"), seconds.get(p, 0)) for p in PHASES]
    return table(["phase", "state", "seconds (all calls)"], rows)


def speed_goals(work):
    rep = newest_report(work, "throughput")
    if rep is None or not (rep / "throughput.json").exists():
        return "No throughput report (phase `throughput` has not run)."
    rows = json.loads((rep / "throughput.json").read_text())
    peer = {(r["run"]): r for r in rows if r["side"] == "pytorch"}
    lines, missed = [], 0
    steps = []
    for r in rows:
        if r["side"] != "harness" or r["experiment"] != "train_step":
            continue
        p = peer.get(r["run"], {})
        s = r.get("speedup")
        ok = s is not None and s >= SPEEDUP_GOAL
        missed += not ok
        steps.append((r["model"], r["precision"], r["n_ctx"], r["batch"], fmt(r.get("step_ms"), ".2f"), fmt(p.get("step_ms"), ".2f"),
                      fmt(s, ".2f") + "x" if s is not None else "—", "met" if ok else "MISSED",
                      fmt(None if r.get("mfu") is None else 100 * r["mfu"], ".1f"),
                      fmt(r.get("issue_ms"), ".2f"), fmt(p.get("issue_ms"), ".2f")))
    lines.append(f"Train step vs the PyTorch peer (goal: >= {SPEEDUP_GOAL}x), from `{rep.name}`. Host issue: until the step's"
                 " last operation was issued, before the synchronise; near the step time, the host (launches, syncs) is"
                 " the bound.\n")
    lines.append(table(["model", "precision", "n_ctx", "batch", "harness ms", "PyTorch ms", "speed-up", "goal", "harness MFU %",
                        "harness issue ms", "PyTorch issue ms"], steps))
    mfu = []
    best = None
    for r in rows:
        if r["side"] != "harness" or r["experiment"] != "mfu":
            continue
        p = peer.get(r["run"], {})
        m = r.get("mfu")
        if m is not None and (best is None or m > best):
            best = m
        state = "OOM" if r.get("oom") else fmt(None if m is None else 100 * m, ".1f")
        pm = "OOM" if p.get("oom") else fmt(None if p.get("mfu") is None else 100 * p["mfu"], ".1f")
        mfu.append((r["model"], r["precision"], r["batch"], fmt(r.get("step_ms"), ".1f"), state, pm, fmt(r.get("peak_mib"), ".0f")))
    if mfu:
        verdict = "met" if best is not None and best >= MFU_GOAL else "MISSED"
        lines.append(f"\nMFU of the d1024 flat mixer in bf16 (goal: >= {100 * MFU_GOAL:.0f}% at some batch): **{verdict}**"
                     f" (best {fmt(None if best is None else 100 * best, '.1f')}%)\n")
        lines.append(table(["model", "precision", "batch", "harness ms", "harness MFU %", "PyTorch MFU %", "harness peak MiB"], mfu))
    lines.append(f"\nSpeed goals missed: {missed} of {len(steps)} train-step shapes.")
    return "\n".join(lines)


def runs_table(work, tag):
    """A phase's runs (each suite's newest report's runs.csv) and the training runs that failed or
    ended with a non-finite loss (None when the phase wrote no report)."""
    reports = [r for r in newest_reports(work, tag) if (r / "runs.csv").exists()]
    if not reports:
        return f"No report from phase `{tag}`.", None
    rows = []
    for rep in reports:
        with open(rep / "runs.csv", newline="") as f:
            rows += [dict(r, suite=rep.parent.name) for r in csv.DictReader(f)]
    keys = [k for k in ["train_loss", "eval_loss", "hamming", "hamming_untrained", "test_top1", "infonce_top1", "tokens_per_s", "wall_s"]
            if any(r.get(k) for r in rows)]
    body, bad = [], []
    for r in rows:
        vals = []
        for k in keys:
            v = num(r.get(k))
            vals.append("—" if v is None else (f"{v:.0f}" if k == "tokens_per_s" else f"{v:.4g}"))
        status = r.get("status", "")
        if not status.startswith("finished"):
            bad.append(f"{r['experiment']} {r['model']} ({status})")
        else:
            for k in ("train_loss", "eval_loss"):
                v = num(r.get(k)) if r.get(k, "") != "" else 0.0
                if v is None or not math.isfinite(v):
                    bad.append(f"{r['experiment']} {r['model']} ({k} {r.get(k)})")
                    break
        body.append(([r["suite"]] if len(reports) > 1 else []) + [r["experiment"], r["model"], r.get("setting", ""), status] + vals)
    head = (["suite"] if len(reports) > 1 else []) + ["experiment", "model", "setting", "status"] + keys
    where = ", ".join(f"`{tag}/{r.parent.name}/{r.name}`" for r in reports)
    return f"From {where}:\n\n" + table(head, body), bad


def check_tail(work, name):
    """A check table's verdict line and every row that did not pass."""
    path = work / "record" / f"{name}.txt"
    if not path.exists():
        return f"`{name}`: not run."
    lines = [l for l in path.read_text().splitlines() if l.strip()]
    head = next((l for l in lines if l.startswith("baseline ")), "")
    rows = [l for l in lines if l.startswith("|") and not l.rstrip().endswith("| pass |")][2:]
    tail = [l for l in lines if " checks: " in l or l.startswith("exit ") or l.startswith("Error")]
    return f"`{name}.txt` ({head}):\n\n```\n" + "\n".join(rows[:20] + tail) + "\n```"


def main():
    work = Path(sys.argv[1] if len(sys.argv) > 1 else ".gpu-work")
    out = ["# GPU check (ci/gpu-check.sh)", ""]
    gpu = work / "record" / "gpu.txt"
    if gpu.exists():
        out += ["```", gpu.read_text().strip(), "```", ""]
    out += ["## Phases", "", phases(work), ""]
    out += ["## Speed goals", "", speed_goals(work), ""]
    paths = work / "record" / "paths.txt"
    out += ["## CUDA-only paths", "", "```", paths.read_text().strip() if paths.exists() else "phase `paths` has not run", "```", ""]
    all_bad, judged = [], 0
    for tag, title in [("precision", "fp32, fp16-amp and bf16 training (suites/ci/gpu.toml)"),
                       ("width", "Every T2-T5/T8 shape at n_ctx 512 (ts_clm_width@gpu-smoke)"),
                       ("retrieval", "Retrieval (gpu-retrieval@gpu-smoke)"),
                       ("rerun", "suites/ci/gpu.toml again (rerun)"),
                       ("smoke", "Every other gpu-smoke profile")]:
        text, bad = runs_table(work, tag)
        out += [f"## {title}", "", text, ""]
        if bad is not None:
            judged += 1
            all_bad += [f"{tag}: {b}" for b in bad]
    rep = newest_report(work, "retrieval")
    if rep is not None and (rep / "retrieval.csv").exists():
        out += ["Top-1 (%) by n:", "", "```", (rep / "retrieval.csv").read_text().strip(), "```", ""]
    rep = newest_report(work, "memory")
    if rep is not None:
        readme = (rep / "README.md").read_text()
        if "## Peak memory" in readme:
            section = readme.split("## Peak memory", 1)[1].split("\n## ", 1)[0]
            out += ["## Peak memory" + section.rstrip(), ""]
    out += ["## Band check", "", check_tail(work, "band"), "", check_tail(work, "rerun"), ""]
    if all_bad:
        losses = "Runs that failed or ended with a non-finite loss: " + "; ".join(all_bad)
    elif judged:
        losses = f"Every run of the {judged} training phase(s) that wrote a report finished, with finite losses."
    else:
        losses = "No training phase has written a report yet."
    out += ["## Losses", "", losses, ""]
    print("\n".join(out))


if __name__ == "__main__":
    main()
