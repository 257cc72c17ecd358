//! Throughput and memory in a report (PAPER.md C.5, T6, T7), and `harness compare` across
//! devices: one row per measured side of a `throughput` run.
use super::plot::{bar_chart, Bars};
use super::table::{Col, Table};
use super::RunRecord;
use crate::artifacts::RunStatus;
use super::paper_tables::CellVerdict;
use crate::suite::{CellMatch, ExperimentKind, MetricKind, PaperValue, RunConfig};
use crate::throughput::Mode;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// One side of one throughput run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    pub suite: String,
    pub experiment: String,
    pub run: String,
    pub model: String,
    pub mode: String,
    pub n_ctx: i64,
    pub batch: i64,
    pub precision: String,
    /// "harness" or "pytorch".
    pub side: String,
    pub device: String,
    pub libtorch: String,
    pub driver: String,
    /// The side's host allocator: "glibc" (its defaults) or "no-mmap" (freed memory kept).
    #[serde(default)]
    pub malloc: String,
    pub step_ms: Option<f64>,
    /// Until the step's last operation was issued, before the synchronise (CUDA runs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issue_ms: Option<f64>,
    pub tokens_per_s: Option<f64>,
    pub mfu: Option<f64>,
    pub peak_mib: Option<f64>,
    pub oom: bool,
    /// Above the suite's `memory_limit_gib` (T6/T7's "OOM" on a 12 GB card).
    pub over_limit: bool,
    /// PyTorch step time / harness step time, median over rounds (harness rows of two-sided runs).
    pub speedup: Option<f64>,
}

/// The rows of one finished throughput run.
pub fn rows_of(suite: &str, experiment: &str, run: &str, model: &str, cfg: &RunConfig, summary: &Map<String, Value>, device: &str, libtorch: &str, driver: &str) -> Vec<Row> {
    let Some(t) = cfg.throughput.as_ref() else { return vec![] };
    let num = |k: &str| summary.get(k).and_then(Value::as_f64);
    let flag = |k: &str| summary.get(k).and_then(Value::as_bool).unwrap_or(false);
    let precision = serde_json::to_value(t.precision).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
    let mut out = Vec::new();
    for (side, prefix) in [("harness", ""), ("pytorch", "peer_")] {
        if summary.get(&format!("{prefix}params")).is_none() {
            continue;
        }
        out.push(Row {
            suite: suite.into(),
            experiment: experiment.into(),
            run: run.chars().take(12).collect(),
            model: if side == "pytorch" && t.attention == crate::suite::Attention::Eager { format!("{model} (eager attention)") } else { model.into() },
            mode: t.mode.name().into(),
            n_ctx: t.n_ctx,
            batch: t.batch_size,
            precision: precision.clone(),
            side: side.into(),
            device: device.into(),
            libtorch: libtorch.into(),
            driver: driver.into(),
            malloc: summary.get(&format!("{prefix}malloc")).and_then(Value::as_str).unwrap_or_default().into(),
            step_ms: num(&format!("{prefix}step_s")).map(|s| s * 1e3),
            issue_ms: num(&format!("{prefix}issue_s")).map(|s| s * 1e3),
            tokens_per_s: num(&format!("{prefix}tokens_per_s")),
            mfu: num(&format!("{prefix}mfu")),
            peak_mib: num(&format!("{prefix}peak_mib")),
            oom: flag(&format!("{prefix}oom")),
            over_limit: flag(&format!("{prefix}over_limit")),
            speedup: if side == "harness" { num("speedup") } else { None },
        });
    }
    out
}

fn opt(x: Option<f64>, digits: usize) -> String {
    x.map_or("—".into(), |v| format!("{v:.digits$}"))
}

/// One T6/T7 cell against the paper's (MiB on a 12 GB RTX 3060, `inf` its OOM). Only a card's
/// memory is compared (a CPU run measures the growth of the process's RSS); an OOM, ours (out of
/// memory, or above the suite's `memory_limit_gib`) or the paper's, matches only another OOM, and
/// such a cell holds the limit in MiB for the side that ran out (JSON has no infinity).
fn memory_verdict(r: &Row, rec: &RunRecord, paper: f64, band: Option<&crate::suite::Tolerance>, limit: Option<f64>) -> CellVerdict {
    let cap = limit.unwrap_or(12.0) * 1024.0;
    let ours_oom = r.oom || r.over_limit;
    let ours = r.peak_mib.filter(|_| !r.oom).unwrap_or(cap);
    let verdict = if !rec.device.starts_with("cuda") {
        "not compared (CPU: the growth of the process's peak RSS, not a card's memory)".to_string()
    } else if rec.run.config.profile.is_some() {
        format!("not compared (profile {})", rec.run.config.profile.as_deref().unwrap_or_default())
    } else {
        match (paper.is_infinite(), ours_oom, band) {
            (true, true, _) => "matches (OOM in both)".into(),
            (true, false, _) => format!("differs: fits here ({ours:.0} MiB), OOM in the paper"),
            (false, true, _) => "differs: OOM here".into(),
            (false, false, Some(b)) => CellMatch::of(ours, paper, b).text(),
            (false, false, None) => "no band stated".into(),
        }
    };
    CellVerdict {
        table: format!("{} ({} side)", rec.run.experiment, r.side),
        entry: r.model.clone(),
        metric: format!("peak MiB at n_ctx {}", r.n_ctx),
        ours,
        seeds: 1,
        paper: if paper.is_finite() { paper } else { cap },
        band: band.map(|b| b.abs),
        verdict,
    }
}

/// "1234", "OOM", "OOM (> 12 GiB: 15321)".
fn memory_cell(r: &Row, limit: Option<f64>) -> String {
    match (r.oom, r.over_limit, r.peak_mib) {
        (true, _, _) => "OOM".into(),
        (false, true, Some(p)) => format!("OOM (> {} GiB: {p:.0})", limit.map_or("limit".into(), |l| format!("{l}"))),
        (false, _, Some(p)) => format!("{p:.0}"),
        _ => "—".into(),
    }
}

/// The report's throughput and memory sections.
/// Step time, tokens/s, MFU and memory of the `throughput` runs (T6, T7).
pub struct Throughput;

impl super::Section for Throughput {
    fn place(&self) -> super::Place {
        super::Place::BeforeSummary
    }

    fn write(&self, dir: &Path, records: &[RunRecord], md: &mut String, figs: &mut Vec<(String, String)>, found: &mut super::Findings) -> Result<()> {
        section(dir, records, md, figs, found)
    }
}

fn section(dir: &Path, records: &[RunRecord], md: &mut String, figs: &mut Vec<(String, String)>, found: &mut super::Findings) -> Result<()> {
    let runs: Vec<&RunRecord> = records
        .iter()
        .filter(|r| r.run.config.kind == ExperimentKind::Throughput && r.status == RunStatus::Finished)
        .collect();
    if runs.is_empty() {
        return Ok(());
    }
    let libtorch = crate::device::libtorch_version().unwrap_or_default();
    let mut rows: Vec<(Row, &RunRecord)> = Vec::new();
    for r in &runs {
        for row in rows_of(&r.run.suite, &r.run.experiment, &r.run.id, &r.run.label, &r.run.config, &r.summary, &r.device, &libtorch, "") {
            rows.push((row, r));
        }
    }
    let speed: Vec<&(Row, &RunRecord)> = rows.iter().filter(|(r, _)| r.mode != "memory").collect();
    if !speed.is_empty() {
        let _ = writeln!(md, "## Throughput\n");
        let _ = writeln!(
            md,
            "One optimizer step (`train`: forward, loss, backward, clip, AdamW) or one forward to logits (`infer`) on \
             random tokens. Each side is timed in fresh processes, alternating round by round on the same device; a \
             figure is the median over rounds of each round's median synchronised step time after warm-up. The PyTorch \
             side is `bench/pytorch/peer.py`: the reference's LanguageMixer and Hugging Face's LlamaForCausalLM under \
             the Hugging Face Trainer's step. Speed-up = PyTorch step time / harness step time (median over rounds; the \
             smallest round's in brackets). MFU = model FLOPs / step time / the device's dense peak (none for a CPU). \
             Host issue (CUDA only): the time until a step's last operation was issued, before the synchronise; \
             near the step time, the host bounds the step (kernel launches, a sync inside it). \
             malloc: each side's host allocator, `glibc` (its defaults: large temporaries are fresh mmaps, zeroed on \
             every step) or `no-mmap` (freed memory kept, the harness's setting); on a CPU it alone can move a step by \
             10-30%, so `throughput.peer_malloc = \"harness\"` gives the peer the harness's setting.\n"
        );
        // One line per run: both sides side by side.
        let mut by_run: BTreeMap<String, (Option<&Row>, Option<&Row>)> = BTreeMap::new();
        let mut order = Vec::new();
        for (row, _) in &speed {
            let key = format!("{}/{}", row.experiment, row.run);
            if !by_run.contains_key(&key) {
                order.push(key.clone());
            }
            let e = by_run.entry(key).or_default();
            if row.side == "harness" {
                e.0 = Some(row);
            } else {
                e.1 = Some(row);
            }
        }
        let mut t = Table::default();
        let pick = |f: &dyn Fn(&Row) -> String, side: usize| -> Col {
            Col::Str(order.iter().map(|k| {
                let (h, p) = by_run[k];
                [h, p][side].map_or("—".into(), f)
            }).collect())
        };
        let any = |k: &String| by_run[k].0.or(by_run[k].1).expect("one side");
        t.push("experiment", Col::Str(order.iter().map(|k| any(k).experiment.clone()).collect()));
        t.push("model", Col::Str(order.iter().map(|k| any(k).model.clone()).collect()));
        t.push("mode", Col::Str(order.iter().map(|k| any(k).mode.clone()).collect()));
        t.push("n_ctx", Col::Int(order.iter().map(|k| Some(any(k).n_ctx)).collect()));
        t.push("batch", Col::Int(order.iter().map(|k| Some(any(k).batch)).collect()));
        t.push("precision", Col::Str(order.iter().map(|k| any(k).precision.clone()).collect()));
        t.push("device", Col::Str(order.iter().map(|k| any(k).device.clone()).collect()));
        t.push("harness ms/step", pick(&|r| opt(r.step_ms, 2), 0));
        t.push("harness tok/s", pick(&|r| opt(r.tokens_per_s, 0), 0));
        t.push("harness MFU", pick(&|r| r.mfu.map_or("—".into(), |m| format!("{:.1}%", 100.0 * m)), 0));
        t.push("PyTorch ms/step", pick(&|r| opt(r.step_ms, 2), 1));
        t.push("PyTorch tok/s", pick(&|r| opt(r.tokens_per_s, 0), 1));
        t.push("PyTorch MFU", pick(&|r| r.mfu.map_or("—".into(), |m| format!("{:.1}%", 100.0 * m)), 1));
        let min_of = |k: &String| speed.iter().find(|(r, _)| format!("{}/{}", r.experiment, r.run) == *k).and_then(|(_, rec)| rec.num("speedup_min"));
        t.push(
            "speed-up",
            Col::Str(order.iter().map(|k| match (by_run[k].0.and_then(|r| r.speedup), min_of(k)) {
                (Some(s), Some(m)) => format!("{s:.2}x ({m:.2}x)"),
                (Some(s), None) => format!("{s:.2}x"),
                _ => "—".into(),
            }).collect()),
        );
        t.push("malloc (harness / PyTorch)", Col::Str(order.iter().map(|k| {
            let (h, p) = by_run[k];
            let m = |r: Option<&Row>| r.map_or("—".to_string(), |r| if r.malloc.is_empty() { "—".into() } else { r.malloc.clone() });
            format!("{} / {}", m(h), m(p))
        }).collect()));
        t.push("peak MiB (harness / PyTorch)", Col::Str(order.iter().map(|k| {
            let (h, p) = by_run[k];
            format!("{} / {}", h.map_or("—".into(), |r| opt(r.peak_mib, 0)), p.map_or("—".into(), |r| opt(r.peak_mib, 0)))
        }).collect()));
        if speed.iter().any(|(r, _)| r.issue_ms.is_some()) {
            t.push("host issue ms (harness / PyTorch)", Col::Str(order.iter().map(|k| {
                let (h, p) = by_run[k];
                format!("{} / {}", h.map_or("—".into(), |r| opt(r.issue_ms, 2)), p.map_or("—".into(), |r| opt(r.issue_ms, 2)))
            }).collect()));
        }
        let _ = writeln!(md, "{}", t.markdown());
        t.write(dir, "throughput").context("writing throughput.parquet / throughput.csv")?;
        let categories: Vec<String> = order.iter().map(|k| {
            let r = any(k);
            format!("{} {} L{} b{} {}", r.model, r.mode, r.n_ctx, r.batch, r.precision)
        }).collect();
        let series: Vec<(String, Vec<Option<f64>>)> = ["harness", "PyTorch"]
            .iter()
            .enumerate()
            .map(|(i, name)| (name.to_string(), order.iter().map(|k| [by_run[k].0, by_run[k].1][i].and_then(|r| r.tokens_per_s)).collect()))
            .collect();
        bar_chart(dir, "throughput", &Bars { title: "Tokens per second, harness vs PyTorch", y_label: "tokens / s", categories: &categories, series: &series })?;
        figs.push(("throughput".into(), "Tokens per second of each configuration: this harness and the PyTorch reference on the same device.".into()));
    }
    memory_grids(&rows, md, found);
    let all: Vec<&Row> = rows.iter().map(|(r, _)| r).collect();
    crate::artifacts::write_atomic(&dir.join("throughput.json"), serde_json::to_string_pretty(&all)?.as_bytes())?;
    Ok(())
}

/// T6/T7's layout for `memory` runs: rows n_layers (the model), columns n_ctx; ours with the
/// paper's value (`paper = { "<label>" = { "512" = 2071, ... } }`, `inf` = the paper's OOM).
fn memory_grids(rows: &[(Row, &RunRecord)], md: &mut String, found: &mut super::Findings) {
    let band = found.tolerance.of(MetricKind::Memory);
    let mem: Vec<&(Row, &RunRecord)> = rows.iter().filter(|(r, _)| r.mode == Mode::Memory.name()).collect();
    if mem.is_empty() {
        return;
    }
    let _ = writeln!(md, "## Peak memory (PAPER.md T6, T7)\n");
    let _ = writeln!(
        md,
        "Forward and backward of the block stack without the LM head at batch 1 (the paper's \"one unbatched forward + \
         backward\"), MiB. CUDA: the PyTorch side reads the caching allocator's peak (`max_memory_allocated`), the \
         harness side the card's memory in use after the run less before it (libtorch keeps what it reserved), so the \
         two are not the same measure; the paper's figures include the CUDA context. CPU: growth of the process's peak \
         RSS over the measured steps. Cells in brackets are the paper's (RTX 3060, 12 GB; \"OOM\" there); a peak above \
         the suite's `memory_limit_gib` shows as OOM, as on the paper's card. Llama on the harness side uses SDPA; the \
         PyTorch side's eager attention materialises the L x L scores as the paper's 2023 runs did.\n"
    );
    // Grids by (experiment, side).
    let mut grids: BTreeMap<(String, String), Vec<&(Row, &RunRecord)>> = BTreeMap::new();
    for x in &mem {
        grids.entry((x.0.experiment.clone(), x.0.side.clone())).or_default().push(x);
    }
    for ((experiment, side), cells) in grids {
        let ctxs: BTreeSet<i64> = cells.iter().map(|(r, _)| r.n_ctx).collect();
        let mut models: Vec<(usize, String)> = cells.iter().map(|(r, rec)| (rec.run.config.model().n_layers(), r.model.clone())).collect();
        models.sort();
        models.dedup();
        let limit = cells.iter().find_map(|(_, rec)| rec.run.config.throughput.as_ref().and_then(|t| t.memory_limit_gib));
        let _ = writeln!(md, "### {experiment}, {side} side\n");
        let mut head = "| model |".to_string();
        let mut rule = "|---|".to_string();
        for c in &ctxs {
            let _ = write!(head, " {c} |");
            rule.push_str("---|");
        }
        head.push_str(" growth, shortest to longest |");
        rule.push_str("---|");
        let _ = writeln!(md, "{head}\n{rule}");
        for (_, model) in &models {
            let mut line = format!("| {model} |");
            let mut peaks = Vec::new();
            for c in &ctxs {
                let cell = cells.iter().find(|(r, _)| &r.model == model && r.n_ctx == *c);
                let text = match cell {
                    Some((r, rec)) => {
                        if !r.oom {
                            peaks.push(r.peak_mib);
                        }
                        let paper = match &rec.run.paper {
                            Some(PaperValue::Cells(m)) => m.get(&c.to_string()).copied(),
                            _ => None,
                        };
                        let judged = paper.map(|p| {
                            let cell = memory_verdict(r, rec, p, band, limit);
                            let text = if p.is_infinite() { "OOM".to_string() } else { format!("{p:.0}") };
                            let text = if cell.verdict.starts_with("not compared") { format!(" ({text})") } else { format!(" ({text}: {})", cell.verdict) };
                            found.cells.push(cell);
                            text
                        });
                        format!("{}{}", memory_cell(r, limit), judged.unwrap_or_default())
                    }
                    None => "—".into(),
                };
                let _ = write!(line, " {text} |");
            }
            let growth = match (peaks.first().copied().flatten(), peaks.last().copied().flatten()) {
                (Some(a), Some(b)) if a > 0.0 && peaks.len() == ctxs.len() => format!("{:.1}x", b / a),
                _ => "—".into(),
            };
            let _ = writeln!(line, " {growth} |");
            md.push_str(&line);
        }
        md.push('\n');
    }
}

/// `harness compare`: the throughput runs under `dirs` (results folders, searched for finished
/// run folders) as one table keyed by device and versions, and a bar chart of tokens/s.
pub fn compare(dirs: &[PathBuf], out: &Path) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    // Each results folder is read once: the same folder twice, or one inside another, would
    // count its runs twice.
    let mut read: Vec<(PathBuf, &PathBuf)> = Vec::new();
    for d in dirs {
        anyhow::ensure!(d.is_dir(), "{}: not a folder; give results folders (e.g. results/ or a copy of one from another machine)", d.display());
        let canonical = d.canonicalize().with_context(|| format!("reading {}", d.display()))?;
        if let Some((_, first)) = read.iter().find(|(c, _)| canonical.starts_with(c) || c.starts_with(&canonical)) {
            anyhow::bail!("{} and {} are the same folder or one holds the other: give each results folder once", first.display(), d.display());
        }
        read.push((canonical, d));
    }
    for d in dirs {
        let before = rows.len();
        scan(d, &mut rows, 0)?;
        anyhow::ensure!(rows.len() > before, "{}: holds no finished throughput runs (run e.g. `harness run suites/paper/throughput.toml` there first)", d.display());
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut t = Table::default();
    t.push("device", Col::Str(rows.iter().map(|r| r.device.clone()).collect()));
    t.push("driver", Col::Str(rows.iter().map(|r| r.driver.clone()).collect()));
    t.push("libtorch", Col::Str(rows.iter().map(|r| r.libtorch.clone()).collect()));
    t.push("side", Col::Str(rows.iter().map(|r| r.side.clone()).collect()));
    t.push("malloc", Col::Str(rows.iter().map(|r| r.malloc.clone()).collect()));
    t.push("model", Col::Str(rows.iter().map(|r| r.model.clone()).collect()));
    t.push("mode", Col::Str(rows.iter().map(|r| r.mode.clone()).collect()));
    t.push("n_ctx", Col::Int(rows.iter().map(|r| Some(r.n_ctx)).collect()));
    t.push("batch", Col::Int(rows.iter().map(|r| Some(r.batch)).collect()));
    t.push("precision", Col::Str(rows.iter().map(|r| r.precision.clone()).collect()));
    t.push("step_ms", Col::Num(rows.iter().map(|r| r.step_ms).collect()));
    t.push("tokens_per_s", Col::Num(rows.iter().map(|r| r.tokens_per_s).collect()));
    t.push("mfu", Col::Num(rows.iter().map(|r| r.mfu).collect()));
    t.push("peak_mib", Col::Num(rows.iter().map(|r| r.peak_mib).collect()));
    t.push("speedup", Col::Num(rows.iter().map(|r| r.speedup).collect()));
    t.write(out, "compare")?;
    let speed: Vec<&Row> = rows.iter().filter(|r| r.mode != "memory").collect();
    let configs: Vec<String> = {
        let mut c: Vec<String> = speed.iter().map(|r| format!("{} {} L{} b{} {}", r.model, r.mode, r.n_ctx, r.batch, r.precision)).collect();
        c.sort();
        c.dedup();
        c
    };
    let machines: Vec<String> = {
        let mut m: Vec<String> = speed.iter().map(|r| format!("{} ({})", r.device, r.side)).collect();
        m.sort();
        m.dedup();
        m
    };
    let series: Vec<(String, Vec<Option<f64>>)> = machines
        .iter()
        .map(|m| {
            let vals = configs
                .iter()
                .map(|c| speed.iter().find(|r| &format!("{} ({})", r.device, r.side) == m && &format!("{} {} L{} b{} {}", r.model, r.mode, r.n_ctx, r.batch, r.precision) == c).and_then(|r| r.tokens_per_s))
                .collect();
            (m.clone(), vals)
        })
        .collect();
    if !configs.is_empty() {
        bar_chart(out, "compare", &Bars { title: "Tokens per second by device", y_label: "tokens / s", categories: &configs, series: &series })?;
    }
    let mut md = String::from("# Throughput across devices\n\n");
    let _ = writeln!(md, "From: {}\n", dirs.iter().map(|d| format!("`{}`", d.display())).collect::<Vec<_>>().join(", "));
    md.push_str(&t.markdown());
    if !configs.is_empty() {
        md.push_str("\n![tokens per second by device](compare.png)\n");
    }
    crate::artifacts::write_atomic(&out.join("README.md"), md.as_bytes())?;
    Ok(rows)
}

/// Finished throughput run folders (`manifest.json` + `config.json` + `summary.json`) under `dir`.
fn scan(dir: &Path, rows: &mut Vec<Row>, depth: usize) -> Result<()> {
    if depth > 4 {
        return Ok(());
    }
    let manifest = dir.join("manifest.json");
    if manifest.is_file() {
        let m: crate::artifacts::Manifest = serde_json::from_str(&crate::artifacts::read_regular_string(&manifest)?).with_context(|| format!("reading {}", manifest.display()))?;
        if m.status != RunStatus::Finished {
            return Ok(());
        }
        let Ok(cfg) = serde_json::from_str::<RunConfig>(&crate::artifacts::read_regular_string(&dir.join("config.json"))?) else { return Ok(()) };
        if cfg.kind != ExperimentKind::Throughput {
            return Ok(());
        }
        let summary: Map<String, Value> = serde_json::from_str(&crate::artifacts::read_regular_string(&dir.join("summary.json"))?)?;
        let label = cfg.model.as_ref().map(mm_models::ModelSpec::label).unwrap_or_default();
        let driver = m.execution.get("driver").cloned().unwrap_or_default();
        rows.extend(rows_of(&m.suite, &m.experiment, &m.run_id, &label, &cfg, &summary, &m.device, &m.libtorch_version, &driver));
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_dir()).collect();
    entries.sort();
    for e in entries {
        if e.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
            continue;
        }
        scan(&e, rows, depth + 1)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::{Suite, Tolerance};

    /// A finished memory run of a one-run suite on `device`, and its harness-side row.
    fn measured(device: &str, peak_mib: f64, oom: bool, over_limit: bool) -> (Row, RunRecord) {
        let text = "schema = 1\nname = \"m\"\ndescription = \"d\"\n[defaults]\ndevice = \"cpu\"\n[defaults.throughput]\nmode = \"memory\"\nn_ctx = 64\nvocab_size = 64\nmemory_limit_gib = 12\n[[experiment]]\nname = \"mixer\"\nkind = \"throughput\"\nmodel = { kind = \"masked_mixer\", d_model = 16, n_layers = 1 }\n";
        let run = Suite::parse(Path::new("m.toml"), text.into(), &[], false).unwrap().runs.remove(0);
        let mut summary = Map::new();
        summary.insert("params".into(), 1.into());
        summary.insert("peak_mib".into(), peak_mib.into());
        summary.insert("oom".into(), oom.into());
        summary.insert("over_limit".into(), over_limit.into());
        let row = rows_of("m", "mixer", &run.id, &run.label, &run.config, &summary, device, "", "").remove(0);
        let rec = RunRecord {
            run,
            status: RunStatus::Finished,
            error: None,
            device: device.into(),
            execution: Default::default(),
            wall_s: None,
            summary,
            eval_curve: vec![],
            train_curve: vec![],
            reused: false,
            folder: Default::default(),
        };
        (row, rec)
    }

    #[test]
    fn a_memory_cell_matches_within_its_band_on_a_card_and_an_oom_only_another_oom() {
        let band = Tolerance { abs: 600.0, seed_sd: None, why: "context".into() };
        let verdict = |(r, rec): &(Row, RunRecord), paper: f64| memory_verdict(r, rec, paper, Some(&band), Some(12.0));
        let card = measured("cuda:0 (NVIDIA H100 80GB HBM3)", 1700.0, false, false);
        let near = verdict(&card, 2071.0);
        assert!(near.matches() && near.ours == 1700.0 && near.paper == 2071.0 && near.band == Some(600.0), "{near:?}");
        assert_eq!(verdict(&card, 1000.0).verdict, "differs by +700.00");
        assert_eq!(verdict(&card, f64::INFINITY).verdict, "differs: fits here (1700 MiB), OOM in the paper");
        // Over the suite's 12 GiB: the paper's OOM is matched; JSON holds the limit for it.
        let over = measured("cuda:0 (NVIDIA H100 80GB HBM3)", 15321.0, false, true);
        let both = verdict(&over, f64::INFINITY);
        assert!(both.matches() && both.verdict == "matches (OOM in both)" && both.paper == 12.0 * 1024.0 && both.ours == 15321.0, "{both:?}");
        assert!(serde_json::to_string(&both).unwrap().contains("\"paper\":12288.0"), "no infinity in cells.json");
        let oom = measured("cuda:0 (NVIDIA H100 80GB HBM3)", 0.0, true, false);
        let out = verdict(&oom, 2071.0);
        assert!(out.differs() && out.verdict == "differs: OOM here" && out.ours == 12.0 * 1024.0, "{out:?}");
        // A CPU run's RSS growth is another measure: never compared.
        let cpu = verdict(&measured("cpu", 1700.0, false, false), 1700.0);
        assert!(!cpu.matches() && !cpu.differs() && cpu.verdict.starts_with("not compared (CPU"), "{cpu:?}");
    }
}
