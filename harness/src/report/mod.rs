//! The one report writer: `reports/<suite>/<version>/README.md` (version = UTC time + short git
//! sha, never overwritten) with tables (also parquet and csv) and figures (PNG and SVG), our
//! numbers beside the paper's.
pub mod claims;
pub mod paper;
pub mod paper_tables;
pub mod throughput;
pub mod plot;
pub mod table;
mod figures;
pub mod samples;
pub mod retrieval;

use crate::artifacts::{sha256_file, Provenance, RunStatus};
use crate::suite::{ExperimentKind, Run, Suite};
use anyhow::{Context, Result};
use plot::{Figure, Series};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use crate::stats::mean_sd;
use table::{fmt_num, Col, Table};
use figures::{family_color, figures};

/// Where a kind's own section goes in the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// After the paper tables, before the summary (throughput).
    BeforeSummary,
    /// After the summary, before the list of runs (retrieval).
    AfterSummary,
}

/// A kind's own section of the report, handed to [`write`] by the runner from the kinds a
/// suite runs (`experiments::Experiment::report`).
pub trait Section: Sync {
    fn place(&self) -> Place;

    /// Its markdown into `md`, its tables (parquet + csv) into `dir`, its figures into `figs`
    /// (file stem, caption).
    /// Claims it tests and paper cells it judges go into `found`.
    fn write(&self, dir: &Path, records: &[RunRecord], md: &mut String, figs: &mut Vec<(String, String)>, found: &mut Findings) -> Result<()>;
}

/// What a report's sections judge: claims (`claims.json`) and paper cells against the paper's
/// numbers (`cells.json`), with the suite's `[tolerance]` bands for the cells.
pub struct Findings<'a> {
    pub tolerance: &'a crate::suite::Tolerances,
    pub verdicts: Vec<claims::Verdict>,
    pub cells: Vec<paper_tables::CellVerdict>,
}

/// A run as the report sees it.
#[derive(Debug, Clone)]
pub struct RunRecord {
    pub run: Run,
    pub status: RunStatus,
    pub error: Option<String>,
    pub device: String,
    /// The manifest's execution facts (kernel path, precision, attention path, ...).
    pub execution: std::collections::BTreeMap<String, String>,
    pub wall_s: Option<f64>,
    pub summary: Map<String, Value>,
    /// (step, eval loss) and (step, train loss) for CLM runs.
    pub eval_curve: Vec<(f64, f64)>,
    pub train_curve: Vec<(f64, f64)>,
    /// Reused from an earlier invocation rather than computed now.
    pub reused: bool,
    /// The run's folder (its checkpoint and tokenizer, for samples).
    pub folder: PathBuf,
}

impl RunRecord {
    fn num(&self, key: &str) -> Option<f64> {
        self.summary.get(key).and_then(Value::as_f64)
    }
}

/// "masked_mixer d64 n2", "llama d64 n2 h4"; embeddings from a file by their suite label.
pub fn model_label(run: &Run) -> String {
    run.label.clone()
}


/// The sweep settings of a run other than the model and the seed.
pub fn setting(run: &Run) -> String {
    let mut parts: Vec<String> =
        run.axes.iter().filter(|(k, _)| !matches!(k.as_str(), "seed" | "model" | "data.n_ctx")).map(|(k, v)| format!("{k}={v}")).collect();
    if let Some(d) = &run.config.data {
        parts.insert(0, format!("n_ctx={}", d.n_ctx));
    }
    parts.join(" ")
}

fn version_dir(root: &Path, suite: &str, prov: &Provenance) -> Result<PathBuf> {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let base = root.join(suite);
    std::fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
    for i in 0.. {
        let name = if i == 0 { format!("{stamp}-{}", prov.short_sha()) } else { format!("{stamp}-{}-{i}", prov.short_sha()) };
        let dir = base.join(name);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
        }
    }
    unreachable!()
}

const METRICS: &[(&str, &str)] = &[
    ("train_loss", "train CE"),
    ("eval_loss", "eval CE"),
    ("train_ce", "retrieval train CE"),
    ("test_ce", "retrieval test CE"),
    ("chance_ce", "chance CE ln(n-1)"),
    ("test_top1", "retrieval test top-1 %"),
    ("infonce_test_loss", "InfoNCE test loss"),
    ("infonce_top1", "InfoNCE test top-1 %"),
    ("hamming", "Hamming"),
    ("hamming_untrained", "Hamming at step 0"),
    ("noise_l1", "noise L1"),
    ("tokens_per_s", "tok/s"),
];

fn runs_table(records: &[RunRecord]) -> Table {
    let mut t = Table::default();
    let s = |f: &dyn Fn(&RunRecord) -> String| Col::Str(records.iter().map(f).collect());
    t.push("experiment", s(&|r| r.run.experiment.clone()));
    t.push("run", s(&|r| r.run.short_id().to_string()));
    t.push("model", s(&|r| model_label(&r.run)));
    t.push("setting", s(&|r| setting(&r.run)));
    t.push("seed", Col::Int(records.iter().map(|r| Some(r.run.config.seed as i64)).collect()));
    t.push("params", Col::Int(records.iter().map(|r| r.num("params").map(|p| p as i64)).collect()));
    t.push("data", s(&|r| r.summary.get("data").and_then(Value::as_str).unwrap_or("—").to_string()));
    t.push("tokenizer", s(&|r| r.summary.get("tokenizer").and_then(Value::as_str).unwrap_or("—").to_string()));
    t.push("status", s(&|r| format!("{:?}{}", r.status, if r.reused { " (reused)" } else { "" }).to_lowercase()));
    t.push("device", s(&|r| r.device.clone()));
    for (key, _) in METRICS {
        t.push(key, Col::Num(records.iter().map(|r| r.num(key)).collect()));
    }
    t.push("wall_s", Col::Num(records.iter().map(|r| r.wall_s).collect()));
    t.push("paper", s(&|r| paper_text(&r.run)));
    t
}

/// Mean ± sd over seeds for each (experiment, model, setting).
fn summary_table(records: &[RunRecord]) -> (Table, Table) {
    let mut groups: BTreeMap<(String, String, String), Vec<&RunRecord>> = BTreeMap::new();
    for r in records.iter().filter(|r| r.status == RunStatus::Finished) {
        groups.entry((r.run.experiment.clone(), model_label(&r.run), setting(&r.run))).or_default().push(r);
    }
    let present: Vec<&(&str, &str)> =
        METRICS.iter().filter(|(k, _)| records.iter().any(|r| r.num(k).is_some())).collect();
    let mut md = Table::default();
    let mut num = Table::default();
    let keys: Vec<_> = groups.keys().cloned().collect();
    for (name, f) in [("experiment", 0usize), ("model", 1), ("setting", 2)] {
        let col = Col::Str(keys.iter().map(|k| [&k.0, &k.1, &k.2][f].clone()).collect());
        md.push(name, col.clone());
        num.push(name, col);
    }
    let seeds = Col::Int(groups.values().map(|v| Some(v.len() as i64)).collect());
    md.push("seeds", seeds.clone());
    num.push("seeds", seeds);
    let params = Col::Int(groups.values().map(|v| v[0].num("params").map(|p| p as i64)).collect());
    md.push("params", params.clone());
    num.push("params", params);
    for (key, label) in present {
        let stats: Vec<Option<(f64, f64)>> = groups
            .values()
            .map(|v| {
                let xs: Vec<f64> = v.iter().filter_map(|r| r.num(key)).collect();
                (!xs.is_empty()).then(|| mean_sd(&xs))
            })
            .collect();
        md.push(
            label,
            Col::Str(
                stats
                    .iter()
                    .zip(groups.values())
                    .map(|(s, runs)| match s {
                        None => "—".into(),
                        Some((m, _)) if runs.len() == 1 => fmt_num(*m),
                        Some((m, sd)) => format!("{} ± {}", fmt_num(*m), fmt_num(*sd)),
                    })
                    .collect(),
            ),
        );
        num.push(&format!("{key}_mean"), Col::Num(stats.iter().map(|s| s.map(|x| x.0)).collect()));
        num.push(&format!("{key}_sd"), Col::Num(stats.iter().map(|s| s.map(|x| x.1)).collect()));
    }
    let paper = Col::Str(groups.values().map(|v| paper_text(&v[0].run)).collect());
    md.push("paper", paper.clone());
    num.push("paper", paper);
    (md, num)
}

/// The paper's value for a run as the tables print it: for a frozen retrieval run with numeric
/// cells keyed by n, the test CE at its n (T11, T14); otherwise the text or all cells.
fn paper_text(run: &Run) -> String {
    let Some(p) = &run.paper else {
        return if run.cells.is_empty() { "—".into() } else { format!("cell {}", run.cells.join(", ")) };
    };
    if let Some(n) = run.config.retrieval_frozen.as_ref().map(|f| f.n) {
        if let Some(v) = p.cell(&n.to_string()) {
            return format!("test CE {v}");
        }
    }
    p.text()
}

/// The path a run's inputs came through: "clm → embed".
fn pipeline(r: &RunRecord) -> String {
    r.run.lineage.join(" → ")
}


/// Writes the report and returns its folder.
pub fn write(suite: &Suite, records: &[RunRecord], sections: &[&dyn Section], root: &Path, results: &Path, prov: &Provenance) -> Result<PathBuf> {
    paper_tables::check_metrics(suite, records)?;
    let dir = version_dir(root, &suite.file.name, prov)?;
    let runs = runs_table(records);
    runs.write(&dir, "runs").context("writing runs.parquet / runs.csv")?;
    let (summary_md, summary_num) = summary_table(records);
    summary_num.write(&dir, "summary").context("writing summary.parquet / summary.csv")?;
    let mut figs = figures(&dir, records, &suite.file.tables)?;
    let (mut before_summary, mut after_summary) = (String::new(), String::new());
    let mut tables_md = String::new();
    let mut found = Findings { tolerance: &suite.file.tolerance, verdicts: Vec::new(), cells: Vec::new() };
    paper_tables::section(&dir, suite, records, &mut tables_md, &mut found.verdicts, &mut found.cells)?;
    for s in sections {
        let md = if s.place() == Place::BeforeSummary { &mut before_summary } else { &mut after_summary };
        s.write(&dir, records, md, &mut figs, &mut found)?;
    }
    let Findings { verdicts, cells, .. } = found;
    crate::artifacts::write_atomic(&dir.join("claims.json"), serde_json::to_string_pretty(&verdicts)?.as_bytes())?;
    crate::artifacts::write_atomic(&dir.join("cells.json"), serde_json::to_string_pretty(&cells)?.as_bytes())?;

    let mut md = String::new();
    let f = &suite.file;
    let _ = writeln!(md, "# {} — {}\n", f.name, dir.file_name().unwrap_or_default().to_string_lossy());
    md.push_str(&headline(suite, records, &verdicts, &cells));
    let _ = writeln!(md, "{}\n", f.description.trim());
    scale_notes(&mut md, records);
    environment(&mut md, suite, records, prov);
    md.push_str(&tables_md);
    md.push_str(&before_summary);
    let _ = writeln!(md, "## Summary (mean ± sd over seeds)\n");
    let _ = writeln!(md, "{}", summary_md.without_empty_columns().markdown());
    let _ = writeln!(
        md,
        "CE is the mean natural-log cross entropy per non-pad token. Hamming is the modified Hamming metric of PAPER.md D \
         (share of non-pad positions whose token is not among the top-5 decoded ids; 0 = recovered). The `paper` column \
         quotes what PAPER.md reports for the matching experiment; at other scales it is a direction, not a target.\n"
    );
    md.push_str(&after_summary);
    let _ = writeln!(md, "## Runs\n");
    let _ = writeln!(md, "{}", runs.without_empty_columns().markdown());
    let _ = writeln!(md, "Columns with no value for any run of this suite are left out here; `runs.csv` and `runs.parquet` hold them all.\n");
    failed_and_figures(&mut md, records, &figs);
    // What the index needs, beside the report (listed and hashed below with the rest).
    let meta = serde_json::json!({
        "suite": f.name,
        "version": dir.file_name().unwrap_or_default().to_string_lossy(),
        "git_sha": prov.git_sha,
        "git_dirty": prov.git_dirty,
        "profile": records.iter().find_map(|r| r.run.config.profile.clone()),
        "devices": records.iter().map(|r| r.device.as_str()).filter(|d| !d.is_empty()).collect::<std::collections::BTreeSet<_>>(),
        "runs": records.len(),
        "finished": records.iter().filter(|r| r.status == RunStatus::Finished).count(),
        "verdicts": claims::tally(&verdicts),
        "seeds_for_tests": verdicts.iter().filter_map(|v| v.seeds_needed).max(),
        "cells": paper_tables::cell_tally(&cells),
    });
    crate::artifacts::write_atomic(&dir.join("report.json"), serde_json::to_string_pretty(&meta)?.as_bytes())?;
    write_inputs(&dir, records, results)?;
    let _ = writeln!(md, "## Files\n");
    let _ = writeln!(
        md,
        "Run folders: `results/{}/<run>/` (config, manifest with sha256 of every file, metrics, checkpoint). `inputs.json` holds \
         the sha256 of each run's manifest this report was built from, `claims.json` every claim's test and verdict, `cells.json` every paper cell against the paper's number, \
         `files.json` the files below and this README with their sha256; `harness report <suite> --verify <this folder>` re-hashes \
         those files, those manifests and every file they list.\n",
        f.name
    );
    seal(&dir, md)?;
    index(root)?;
    Ok(dir)
}

/// What a reader must know of the runs' scale before any number: wall-clock stops, profiles,
/// derived pairs, synthetic data.
fn scale_notes(md: &mut String, records: &[RunRecord]) {
    let stopped: Vec<&str> = records.iter().filter(|r| r.summary.get("wall_clock_stop").is_some()).map(|r| r.run.short_id()).collect();
    if !stopped.is_empty() {
        let _ = writeln!(
            md,
            "**Wall-clock stops.** `train.max_minutes` ended {} run(s) before their step budget ({}): where such a run \
             stops depends on the machine, so it is not reproducible bit for bit.\n",
            stopped.len(),
            stopped.join(", ")
        );
    }
    let profiles: std::collections::BTreeSet<&str> = records.iter().filter_map(|r| r.run.config.profile.as_deref()).collect();
    if !profiles.is_empty() {
        let names: Vec<&str> = profiles.into_iter().collect();
        let _ = writeln!(
            md,
            "**Profile: {}.** The suite's grid at another scale (its `[profile]` settings are in every run's config and \
             id): paper values are shown as a direction, and no difference to them is computed.\n",
            names.join(", ")
        );
    }
    let labels: std::collections::BTreeSet<&str> =
        records.iter().filter_map(|r| r.summary.get("data").and_then(Value::as_str)).collect();
    if labels.contains("derived") {
        let _ = writeln!(
            md,
            "**Pairs: derived.** Runs marked `derived` use query/passage pairs made from stories (one sentence vs the rest), \
             not the paper's LLM summaries.\n"
        );
    }
    if labels.contains("synthetic") {
        let _ = writeln!(
            md,
            "**Data: synthetic.** Runs marked `synthetic` use the harness's embedded, generated corpus, not the paper's \
             data; their numbers test the pipeline and the qualitative claims, not the paper's values.\n"
        );
    }
}

/// Where the numbers came from: tokenizers, the suite file, the harness, libtorch, devices, the
/// CPU kernel paths.
fn environment(md: &mut String, suite: &Suite, records: &[RunRecord], prov: &Provenance) {
    let devices: std::collections::BTreeSet<&str> = records.iter().map(|r| r.device.as_str()).collect();
    let tokenizers: std::collections::BTreeSet<&str> =
        records.iter().filter_map(|r| r.summary.get("tokenizer").and_then(Value::as_str)).collect();
    let _ = writeln!(md, "## Environment\n");
    if !tokenizers.is_empty() {
        let list: Vec<String> = tokenizers.iter().map(|t| format!("`{t}`")).collect();
        let _ = writeln!(
            md,
            "- tokenizer(s) (kind, vocabulary, sha256 prefix; the paper's are `llama` 4096 for TinyStories and `llama3` 8000 \
             for FineWeb-edu and FineMath): {}",
            list.join(", ")
        );
    }
    let _ = writeln!(md, "- suite file: `{}` (sha256 `{}`)", suite.path.display(), crate::artifacts::sha256_bytes(suite.source.as_bytes()));
    let _ = writeln!(md, "- harness {} at git `{}`{}", prov.harness_version, prov.git_sha, if prov.git_dirty { " (dirty)" } else { "" });
    let _ = writeln!(md, "- libtorch {}; device(s): {}", prov.libtorch_version, devices.into_iter().collect::<Vec<_>>().join(", "));
    let _ = writeln!(md, "- Cargo.lock sha256 `{}`", prov.cargo_lock_sha256.as_deref().unwrap_or("—"));
    md.push_str(&kernel_paths_md(records));
    md.push('\n');

}

/// The failed runs with their errors, then the figures.
fn failed_and_figures(md: &mut String, records: &[RunRecord], figs: &[(String, String)]) {
    let failed: Vec<&RunRecord> = records.iter().filter(|r| r.status != RunStatus::Finished).collect();
    if !failed.is_empty() {
        let _ = writeln!(md, "### Failed runs\n");
        for r in failed {
            let _ = writeln!(md, "- `{}` ({}): {}", r.run.short_id(), r.run.experiment, r.error.as_deref().unwrap_or("no error recorded"));
        }
        let _ = writeln!(md);
    }
    if !figs.is_empty() {
        let _ = writeln!(md, "## Figures\n");
        for (stem, caption) in figs {
            let _ = writeln!(md, "![{stem}]({stem}.png)\n\n{caption} ([SVG]({stem}.svg))\n");
        }
    }
}

/// `inputs.json`: what the report was built from, each finished run's manifest (which hashes
/// every file of the run) by run id; `harness report --verify` re-hashes them.
fn write_inputs(dir: &Path, records: &[RunRecord], results: &Path) -> Result<()> {
    let mut inputs = serde_json::Map::new();
    for r in records.iter().filter(|r| r.status == RunStatus::Finished) {
        let own = crate::artifacts::RunDir::new(results, &r.run.suite, &r.run.id);
        // A run read from the suite that computed it (shared between suites) is keyed
        // `<that suite>/<run id>`.
        let key = match r.folder.strip_prefix(results) {
            Ok(rel) if r.folder != own.path => rel.display().to_string(),
            _ => r.run.id.clone(),
        };
        if let Ok(h) = sha256_file(&r.folder.join("manifest.json")) {
            inputs.insert(key, Value::String(h));
        }
    }
    crate::artifacts::write_atomic(&dir.join("inputs.json"), serde_json::to_string_pretty(&inputs)?.as_bytes())?;
    Ok(())
}

/// Ends a report: every file of its folder with its sha256, as the README's last list and as
/// `files.json` (what `--verify` reads), which also holds the README's own hash, so an edited
/// number in it is found too; then writes the README.
fn seal(dir: &Path, mut md: String) -> Result<()> {
    let mut files = BTreeMap::new();
    for e in std::fs::read_dir(dir)? {
        let name = e?.file_name().to_string_lossy().to_string();
        files.insert(name.clone(), sha256_file(&dir.join(&name))?);
    }
    for (n, hash) in &files {
        let _ = writeln!(md, "- [`{n}`]({n}) sha256 `{hash}`");
    }
    crate::artifacts::write_atomic(&dir.join("README.md"), md.as_bytes())?;
    files.insert("README.md".into(), crate::artifacts::sha256_bytes(md.as_bytes()));
    crate::artifacts::write_atomic(&dir.join("files.json"), serde_json::to_string_pretty(&files)?.as_bytes())?;
    Ok(())
}

/// The claims' seed plan in one line: how many have one and the most seeds a side any needs,
/// with the `--set seeds` that runs them (the suite's first seed onwards).
fn seed_plan(suite: &Suite, records: &[RunRecord], verdicts: &[claims::Verdict]) -> Option<String> {
    let planned: Vec<usize> = verdicts.iter().filter_map(|v| v.seeds_needed).collect();
    let most = *planned.iter().max()?;
    let first = records.iter().map(|r| r.run.config.seed).min().unwrap_or(0);
    let seeds: Vec<String> = (first..first + most as u64).map(|s| s.to_string()).collect();
    Some(format!(
        "**Seeds for a test:** {} of {} claim tests have a seed plan at the paper's gaps; the most any needs is **{most} a side** \
         (`harness run {} --set 'seeds=[{}]'`; the column `seeds a side for a test` gives each)",
        planned.len(),
        verdicts.len(),
        suite.path.display(),
        seeds.join(", ")
    ))
}

/// What the report found, first: the claims' verdicts (each claim and view in one line), the
/// paper tables and numbering it reproduces, how many runs finished, and where they ran.
fn headline(suite: &Suite, records: &[RunRecord], verdicts: &[claims::Verdict], cells: &[paper_tables::CellVerdict]) -> String {
    let f = &suite.file;
    let finished = records.iter().filter(|r| r.status == RunStatus::Finished).count();
    let devices: std::collections::BTreeSet<&str> = records.iter().filter(|r| r.status == RunStatus::Finished).map(|r| r.device.as_str()).filter(|d| !d.is_empty()).collect();
    let mut md = String::new();
    let mut facts = vec![];
    if !f.reproduces.is_empty() {
        facts.push(format!("**Reproduces** {} (PAPER.md numbering)", f.reproduces.join(", ")));
    }
    if !f.tables.is_empty() {
        facts.push(format!("**tables** {}", f.tables.iter().map(|t| t.id.as_str()).collect::<Vec<_>>().join(", ")));
    }
    facts.push(format!("**{finished} of {} runs** finished", records.len()));
    if !devices.is_empty() {
        facts.push(format!("on {}", devices.into_iter().collect::<Vec<_>>().join("; ")));
    }
    let _ = writeln!(md, "> {}", facts.join(" · "));
    let judged = cells.iter().filter(|c| c.matches() || c.differs()).count();
    if judged > 0 {
        let (matches, differs) = (cells.iter().filter(|c| c.matches()).count(), cells.iter().filter(|c| c.differs()).count());
        let _ = writeln!(md, ">\n> **Paper cells: {matches} of {judged} match** the paper's number within the suite's `[tolerance]`, {differs} differ (the paper tables below give each cell)");
    }
    if verdicts.is_empty() {
        let _ = writeln!(md, ">\n> No claim of this suite is tested (it has no `[[claim]]` or section test with runs to compare).\n");
        return md;
    }
    let _ = writeln!(
        md,
        ">\n> **Claims: {}** (one-sided Welch tests over seeds at p < {}; a side of one seed gives the direction, untested; the claim tables below give each test)\n>",
        claims::tally_text(&claims::tally(verdicts)),
        claims::ALPHA
    );
    if let Some(line) = seed_plan(suite, records, verdicts) {
        let _ = writeln!(md, "> {line}\n>");
    }
    for v in verdicts {
        let _ = writeln!(
            md,
            "> - **{}**: {} — {} vs {}, {} ({} vs {})",
            v.verdict,
            v.claim.trim(),
            v.better,
            v.than,
            v.metric,
            table::fmt_num(v.mean_better),
            table::fmt_num(v.mean_than)
        );
    }
    md.push('\n');
    md
}

/// `reports/README.md`: every report under `root`, newest first per suite, with its git sha,
/// devices, runs and claim verdicts; rewritten whenever a report is written.
pub fn index(root: &Path) -> Result<()> {
    let mut rows: Vec<(String, String, Map<String, Value>)> = Vec::new();
    for suite in std::fs::read_dir(root).with_context(|| format!("listing {}", root.display()))?.flatten() {
        let Ok(versions) = std::fs::read_dir(suite.path()) else { continue };
        for v in versions.flatten().filter(|v| v.path().join("README.md").is_file()) {
            let meta = std::fs::read_to_string(v.path().join("report.json")).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
            rows.push((suite.file_name().to_string_lossy().into(), v.file_name().to_string_lossy().into(), meta));
        }
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    let mut md = String::from("# Reports\n\nEvery report in this folder, newest first per suite (rewritten by `harness run` and `harness report`). \
                               Verdicts count the claim rows of each report (a side of one seed gives the direction, untested).\n\n");
    md.push_str("| suite | report | date (UTC) | git | profile | device(s) | runs finished | verdicts |\n|---|---|---|---|---|---|---|---|\n");
    for (suite, version, m) in &rows {
        let s = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or("—").to_string();
        let date = version.split('-').next().unwrap_or_default().to_string();
        let git = m.get("git_sha").and_then(Value::as_str).map_or_else(
            || version.split('-').nth(1).unwrap_or("—").to_string(),
            |g| format!("{}{}", &g[..g.len().min(7)], if m.get("git_dirty").and_then(Value::as_bool) == Some(true) { " (dirty)" } else { "" }),
        );
        let devices = m.get("devices").and_then(Value::as_array).map_or("—".into(), |d| d.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("; "));
        let runs = match (m.get("finished").and_then(Value::as_u64), m.get("runs").and_then(Value::as_u64)) {
            (Some(f), Some(n)) => format!("{f} / {n}"),
            _ => "—".into(),
        };
        let verdicts = m.get("verdicts").map_or("—".into(), claims::tally_text);
        md.push_str(&format!("| {suite} | [{version}]({suite}/{version}/README.md) | {date} | {git} | {} | {devices} | {runs} | {verdicts} |\n", s("profile")));
    }
    crate::artifacts::write_atomic(&root.join("README.md"), md.as_bytes()).with_context(|| format!("writing {}/README.md", root.display()))
}

/// `harness report --verify`: re-hashes a report's listed files, the run manifests it was built
/// from (`inputs.json`) and every file those manifests list. Returns (item, ok, detail) rows.
pub fn verify(report: &Path, results: &Path, suite: &str) -> Result<Vec<(String, bool, String)>> {
    let listed = report_files(report)?;
    let mut out = Vec::new();
    for (name, want) in &listed {
        let got = sha256_file(&report.join(name)).unwrap_or_else(|e| format!("unreadable: {e}"));
        out.push((name.to_string(), &got == want, if &got == want { "matches".into() } else { format!("sha256 {got}, listed {want}") }));
    }
    anyhow::ensure!(!out.is_empty(), "{} lists no files: not a report of this harness", report.display());
    // Every file in the folder is one the report wrote and listed; the README is listed by
    // reports from this version on.
    let sealed = report.join("files.json").is_file();
    for e in std::fs::read_dir(report).with_context(|| format!("listing {}", report.display()))? {
        let name = e?.file_name().to_string_lossy().to_string();
        if listed.contains_key(&name) || name == "files.json" {
            continue;
        }
        if name == "README.md" {
            if sealed {
                out.push((name, true, "not hashed by this report (written before README.md was listed in files.json): not checked".into()));
            }
            continue;
        }
        out.push((name, false, "not written by this report: it lists no such file".into()));
    }
    let inputs: Map<String, Value> = std::fs::read_to_string(report.join("inputs.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .with_context(|| format!("{}/inputs.json is missing or not JSON (reports before this version have none)", report.display()))?;
    for (run, want) in &inputs {
        // `<suite>/<run id>`: a run another suite computed and this report read from there.
        let dir = match run.split_once('/') {
            Some((other, id)) => crate::artifacts::RunDir::new(results, other, id),
            None => crate::artifacts::RunDir::new(results, suite, run),
        };
        let got = sha256_file(&dir.file("manifest.json")).unwrap_or_else(|_| "missing".into());
        let ok = want.as_str() == Some(got.as_str()) && dir.verified_finished().is_some();
        let detail = match (want.as_str() == Some(got.as_str()), ok) {
            (true, true) => "manifest and every file it lists match".to_string(),
            (true, false) => "manifest matches, but a file it lists changed or is gone".to_string(),
            (false, _) => format!("manifest sha256 {got}, the report used {}", want.as_str().unwrap_or("?")),
        };
        out.push((format!("{}/manifest.json", dir.path.display()), ok, detail));
    }
    Ok(out)
}

/// The files of a report with their sha256: its `files.json`, or for reports written before
/// that file existed, the list in its README's "## Files" section.
fn report_files(report: &Path) -> Result<BTreeMap<String, String>> {
    if let Ok(text) = std::fs::read_to_string(report.join("files.json")) {
        return serde_json::from_str(&text).with_context(|| format!("{}/files.json is not a JSON object of file -> sha256", report.display()));
    }
    let readme = std::fs::read_to_string(report.join("README.md")).with_context(|| format!("reading {}/README.md", report.display()))?;
    let section = readme.split("## Files").nth(1).unwrap_or_default();
    // "- [`name`](name) sha256 `hash`"
    Ok(section
        .lines()
        .filter(|l| l.starts_with("- "))
        .filter_map(|l| {
            let parts: Vec<&str> = l.split('`').collect();
            Some((parts.get(1)?.to_string(), parts.get(3)?.to_string()))
        })
        .collect())
}

/// The CPU kernel paths the runs were computed on (one line each, with the CPU and how many
/// runs), and the bf16 probe of runs that used bf16 on a CPU: results from two machines can be
/// told apart before they are compared.
fn kernel_paths_md(records: &[RunRecord]) -> String {
    let mut paths: BTreeMap<(String, String, String, String), usize> = BTreeMap::new();
    let mut bf16 = std::collections::BTreeSet::new();
    for r in records {
        let Some(path) = r.execution.get("kernel_path") else { continue };
        let fact = |k: &str| r.execution.get(k).cloned().unwrap_or_default();
        *paths.entry((path.clone(), fact("cpu"), fact("cpu_isa"), fact("mkl_branch"))).or_default() += 1;
        if let Some(p) = r.execution.get("bf16_matmul") {
            bf16.insert(p.clone());
        }
    }
    let mut md = String::new();
    for ((path, cpu, isa, mkl), n) in &paths {
        let _ = writeln!(md, "- CPU kernel path `{path}` ({n} run(s)): {cpu}, {isa}; MKL branch {mkl}");
    }
    for p in bf16 {
        let _ = writeln!(md, "- bf16 matrix products on this CPU: {p}");
    }
    md
}
