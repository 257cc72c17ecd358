//! The one report writer: `reports/<suite>/<version>/README.md` (version = UTC time + short git
//! sha, never overwritten) with tables (also parquet and csv) and figures (PNG and SVG), our
//! numbers beside the paper's.
pub mod paper_tables;
pub mod throughput;
pub mod plot;
pub mod table;

use crate::artifacts::{sha256_file, Provenance, RunStatus};
use crate::stats;
use crate::suite::{ExperimentKind, Run, Suite};
use anyhow::{Context, Result};
use plot::{Figure, Series};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use crate::stats::mean_sd;
use table::{fmt_num, Col, Table};

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

/// Palette index of an architecture, so every figure colours a family the same way.
fn family_color(run: &crate::suite::Run) -> usize {
    match run.config.model.as_ref().map(|m| m.kind()) {
        Some("masked_mixer") => 0,
        Some("llama") => 1,
        Some("gpt") => 2,
        Some("transfixer") => 3,
        Some("mixer_autoencoder") => 4,
        Some("llama_autoencoder") => 5,
        _ => 6,
    }
}

/// A trailing moving mean over `w` points (the noisy per-step training loss).
fn smooth(ys: &[f64], w: usize) -> Vec<f64> {
    (0..ys.len()).map(|i| mean_sd(&ys[i.saturating_sub(w.saturating_sub(1))..=i]).0).collect()
}

/// One series per (experiment, model, setting): the mean over seeds at each step, with the
/// min-max band; colour by architecture, line style by setting within it.
fn seed_bands(runs: &[&RunRecord], curve: impl Fn(&RunRecord) -> &Vec<(f64, f64)>, smoothing: bool) -> Vec<Series> {
    let mut groups: BTreeMap<(String, String, String), Vec<&RunRecord>> = BTreeMap::new();
    for r in runs {
        groups.entry((r.run.experiment.clone(), model_label(&r.run), setting(&r.run))).or_default().push(r);
    }
    // Setting words every series shares (n_ctx=64 everywhere) say nothing in a legend.
    let common: Vec<String> = {
        let sets: Vec<Vec<&str>> = groups.keys().map(|k| k.2.split(' ').collect()).collect();
        sets.first().map_or(vec![], |f| f.iter().filter(|w| sets.iter().all(|s| s.contains(w))).map(|w| w.to_string()).collect())
    };
    let mut styles: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    groups
        .iter()
        .map(|((exp, model, set), rs)| {
            let set: String = set.split(' ').filter(|w| !common.iter().any(|c| c == w)).collect::<Vec<_>>().join(" ");
            let model = model.replace("masked_mixer", "mixer");
            let mut at: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
            for r in rs {
                for &(x, y) in curve(r).iter().filter(|p| p.1.is_finite()) {
                    at.entry(x as i64).or_default().push(y);
                }
            }
            let color = family_color(&rs[0].run);
            let seen = styles.entry(color).or_default();
            let key = format!("{exp} {model} {set}");
            let dash = seen.iter().position(|k| k == &key).unwrap_or_else(|| {
                seen.push(key);
                seen.len() - 1
            });
            let seeds = if rs.len() > 1 { format!(" ×{}", rs.len()) } else { String::new() };
            let set = set.replace("train.batch_size=", "b=").replace("train.", "");
            let xs: Vec<f64> = at.keys().map(|x| *x as f64).collect();
            let w = if smoothing { (xs.len() / 40).max(1) } else { 1 };
            let mean = smooth(&at.values().map(|ys| mean_sd(ys).0).collect::<Vec<_>>(), w);
            let lo = smooth(&at.values().map(|ys| ys.iter().copied().fold(f64::MAX, f64::min)).collect::<Vec<_>>(), w);
            let hi = smooth(&at.values().map(|ys| ys.iter().copied().fold(f64::MIN, f64::max)).collect::<Vec<_>>(), w);
            Series {
                name: format!("{exp}: {model} {set}{seeds}").replace("  ", " "),
                points: xs.iter().copied().zip(mean).collect(),
                band: if rs.len() > 1 { xs.iter().enumerate().map(|(i, x)| (*x, lo[i], hi[i])).collect() } else { vec![] },
                color,
                // 16 distinct (shade, line style) pairs per architecture.
                shade: (dash / 4) % 4,
                dash: dash % 4,
            }
        })
        .collect()
}

/// A log scale helps when a curve spans several-fold (a loss from ln V down to ~2).
fn spans_fold(series: &[Series]) -> bool {
    let ys: Vec<f64> = series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).filter(|y| y.is_finite() && *y > 0.0).collect();
    let (lo, hi) = ys.iter().fold((f64::MAX, f64::MIN), |(a, b), &y| (a.min(y), b.max(y)));
    lo > 0.0 && hi / lo > 2.5
}

fn figures(dir: &Path, records: &[RunRecord]) -> Result<Vec<(String, String)>> {
    let mut out = vec![];
    let clm: Vec<&RunRecord> = records.iter().filter(|r| !r.eval_curve.is_empty()).collect();
    if !clm.is_empty() {
        let eval = seed_bands(&clm, |r| &r.eval_curve, false);
        let y_log = spans_fold(&eval);
        plot::line_chart(dir, "eval_loss", &Figure { title: "Eval loss (mean token CE, non-pad)", x_label: "optimizer step", x_log2: false, x_integer: true, y_label: "eval CE (nats)", y_log, series: &eval })?;
        out.push(("eval_loss".into(), "Evaluation loss vs optimizer step: the mean over seeds per configuration (×n: n seeds), shaded from the seeds' minimum to maximum; hue by architecture, shade and line style by configuration; settings every line shares are left out of the legend.".into()));
        let train = seed_bands(&clm, |r| &r.train_curve, true);
        let y_log = spans_fold(&train);
        plot::line_chart(dir, "train_loss", &Figure { title: "Training loss", x_label: "optimizer step", x_log2: false, x_integer: true, y_label: "train CE (nats)", y_log, series: &train })?;
        out.push(("train_loss".into(), "Training loss vs optimizer step: mean over seeds with the min-max band, each a trailing moving mean over 1/40 of the logged steps.".into()));
    }
    let rep: Vec<&RunRecord> = records
        .iter()
        .filter(|r| r.run.config.kind == ExperimentKind::Representation && r.status == RunStatus::Finished)
        .collect();
    if !rep.is_empty() {
        // Mean over seeds of each (experiment, model, setting): vs checkpoint step when there
        // are several, else one point per model at its width.
        let curve = |r: &RunRecord| -> Vec<(f64, f64)> {
            serde_json::from_value::<Vec<(f64, f64)>>(r.summary.get("curve").cloned().unwrap_or_default()).unwrap_or_default()
        };
        let over_steps = rep.iter().any(|r| curve(r).len() > 1);
        let mut groups: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        for r in &rep {
            if over_steps {
                let key = format!("{} {} {}", r.run.experiment, model_label(&r.run), setting(&r.run));
                groups.entry(key).or_default().extend(curve(r));
            } else {
                let key = format!("{} {}", r.run.experiment, r.run.config.model().kind());
                groups.entry(key).or_default().push((r.run.config.model().d_model() as f64, r.num("hamming").unwrap_or(f64::NAN)));
            }
        }
        let series: Vec<Series> = groups
            .into_iter()
            .map(|(name, pts)| {
                let mut by_x: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
                for (x, y) in pts {
                    by_x.entry(x as i64).or_default().push(y);
                }
                (name, by_x.into_iter().map(|(x, ys)| (x as f64, mean_sd(&ys).0)).collect())
            })
            .enumerate()
            .map(|(i, (name, points))| Series::line(name, points, i))
            .collect();
        let x_label = if over_steps { "training step of the checkpoint" } else { "d_model" };
        plot::line_chart(dir, "representation", &Figure { title: "Modified Hamming metric (0 = input recovered)", x_label, x_log2: false, x_integer: true, y_label: "Hamming (mean over seeds)", y_log: false, series: &series })?;
        out.push(("representation".into(), format!("Modified Hamming metric of the recovered input vs {x_label}, mean over seeds (PAPER.md D).")));
    }
    Ok(out)
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

/// Significance level of the claims' one-sided tests.
const ALPHA: f64 = 0.05;

/// PAPER.md T1's layout for every `retrieval_eval` experiment: top-1 (%) by n for each
/// (embedding pipeline, model), mean ± sd over seeds, the paper's cell beside ours; then the
/// claim "mixer embeddings retrieve better than transformer embeddings" as one-sided Welch
/// tests per n. Writes retrieval.{parquet,csv} and the top-1-vs-n figure.
fn retrieval_section(dir: &Path, records: &[RunRecord], md: &mut String, figs: &mut Vec<(String, String)>) -> Result<()> {
    let evals: Vec<&RunRecord> = records
        .iter()
        .filter(|r| r.run.config.kind == ExperimentKind::RetrievalEval && r.status == RunStatus::Finished)
        .collect();
    if evals.is_empty() {
        return Ok(());
    }
    let top1 = |r: &RunRecord, n: i64| r.num(&format!("top1@{n}"));
    let ns: std::collections::BTreeSet<i64> = evals
        .iter()
        .flat_map(|r| r.summary.keys().filter_map(|k| k.strip_prefix("top1@")?.parse().ok()).collect::<Vec<i64>>())
        .collect();
    let mut groups: BTreeMap<(String, String), Vec<&RunRecord>> = BTreeMap::new();
    for r in &evals {
        groups.entry((pipeline(r), model_label(&r.run))).or_default().push(r);
    }
    let stat = |runs: &[&RunRecord], n: i64| -> Vec<f64> { runs.iter().filter_map(|r| top1(r, n)).collect() };

    // Markdown: one row per (pipeline, model), one column per n.
    let mut t = Table::default();
    t.push("embeddings", Col::Str(groups.keys().map(|k| k.0.clone()).collect()));
    t.push("model", Col::Str(groups.keys().map(|k| k.1.clone()).collect()));
    t.push("seeds", Col::Int(groups.values().map(|v| Some(v.len() as i64)).collect()));
    for &n in &ns {
        let cells = groups
            .values()
            .map(|runs| {
                let xs = stat(runs, n);
                if xs.is_empty() {
                    return "—".to_string();
                }
                let (m, sd) = mean_sd(&xs);
                let ours = if xs.len() > 1 { format!("{m:.1} ± {sd:.1}") } else { format!("{m:.1}") };
                // Under a profile the scale is not the paper's: its value is a direction only.
                let profiled = runs[0].run.config.profile.is_some();
                match runs[0].run.paper.as_ref().and_then(|p| p.cell(&n.to_string())) {
                    Some(p) if profiled => format!("{ours} (paper {p:.1})"),
                    Some(p) => format!("{ours} (paper {p:.1}, Δ {:+.1})", m - p),
                    None => ours,
                }
            })
            .collect();
        t.push(&format!("n={n}"), Col::Str(cells));
    }
    // Long form for parquet/csv: one row per (pipeline, model, n).
    let mut long: Vec<(String, String, i64, usize, f64, f64, Option<f64>, bool)> = Vec::new();
    for ((pipe, model), runs) in &groups {
        for &n in &ns {
            let xs = stat(runs, n);
            if !xs.is_empty() {
                let (m, sd) = mean_sd(&xs);
                let paper = runs[0].run.paper.as_ref().and_then(|p| p.cell(&n.to_string()));
                long.push((pipe.clone(), model.clone(), n, xs.len(), m, sd, paper, runs[0].run.config.profile.is_some()));
            }
        }
    }
    let mut lt = Table::default();
    lt.push("embeddings", Col::Str(long.iter().map(|r| r.0.clone()).collect()));
    lt.push("model", Col::Str(long.iter().map(|r| r.1.clone()).collect()));
    lt.push("n", Col::Int(long.iter().map(|r| Some(r.2)).collect()));
    lt.push("seeds", Col::Int(long.iter().map(|r| Some(r.3 as i64)).collect()));
    lt.push("top1_mean", Col::Num(long.iter().map(|r| Some(r.4)).collect()));
    lt.push("top1_sd", Col::Num(long.iter().map(|r| Some(r.5)).collect()));
    lt.push("paper", Col::Num(long.iter().map(|r| r.6).collect()));
    lt.push("diff", Col::Num(long.iter().map(|r| r.6.filter(|_| !r.7).map(|p| r.4 - p)).collect()));
    lt.write(dir, "retrieval").context("writing retrieval.parquet / retrieval.csv")?;

    let _ = writeln!(md, "## Retrieval: top-1 accuracy (%) by n (PAPER.md T1 layout)\n");
    let _ = writeln!(
        md,
        "The F.2 protocol: for each test query, n - 1 random test passages plus its own (n counts the query slot, as in \
         T1); top-1 by the dot product of L2-normalised embeddings; mean ± sd over seeds. Chance is 100/(n - 1). \
         `embeddings` is the path the embeddings came through. Paper cells are FineMath-scale results: at another scale \
         or on other pairs they give the direction, not a target.\n"
    );
    let _ = writeln!(md, "{}", t.markdown());

    // The claim: each mixer group against each transformer group whose embeddings came the same
    // way after pretraining (the pipeline without its first experiment: suites pretrain the two
    // architectures in experiments of their own when their learning rates differ).
    let after_root = |pipe: &str| -> String {
        let parts: Vec<&str> = pipe.split(" → ").collect();
        if parts.len() > 1 { parts[1..].join(" → ") } else { pipe.to_string() }
    };
    let mut claims: Vec<[String; 9]> = Vec::new();
    let is_mixer = |runs: &Vec<&RunRecord>| runs[0].run.config.model.as_ref().map(|m| m.kind() == "masked_mixer");
    for ((mp, ml), mruns) in groups.iter().filter(|(_, r)| is_mixer(r) == Some(true)) {
        for ((tp, tl), truns) in groups.iter().filter(|((tp, _), r)| is_mixer(r) == Some(false) && after_root(tp) == after_root(mp)) {
            for &n in &ns {
                let (a, b) = (stat(mruns, n), stat(truns, n));
                if a.is_empty() || b.is_empty() {
                    continue;
                }
                let [t, df, p, verdict] = stats::columns(stats::welch_greater(&a, &b), ALPHA);
                let pipes = if mp == tp { mp.clone() } else { format!("{mp} / {tp}") };
                claims.push([
                    pipes,
                    format!("{ml} vs {tl}"),
                    n.to_string(),
                    format!("{:.1} vs {:.1}", mean_sd(&a).0, mean_sd(&b).0),
                    t,
                    df,
                    p,
                    format!("{} / {}", a.len(), b.len()),
                    verdict,
                ]);
            }
        }
    }
    if !claims.is_empty() {
        let _ = writeln!(md, "### Claim: mixer embeddings retrieve better than transformer embeddings\n");
        let _ = writeln!(
            md,
            "One-sided Welch t-test of mean top-1 (mixer) > mean top-1 (transformer) over seeds, per n. Rule: \
             **reproduced** when p < {ALPHA}, **contradicted** when the reverse one-sided test has p < {ALPHA}, else \
             **inconclusive** (also when both sides have no spread).\n"
        );
        let mut ct = Table::default();
        let names = ["embeddings", "models", "n", "top-1 mean", "t", "df", "p (one-sided)", "seeds", "verdict"];
        for (i, name) in names.iter().enumerate() {
            ct.push(name, Col::Str(claims.iter().map(|c| c[i].clone()).collect()));
        }
        let _ = writeln!(md, "{}", ct.markdown());
        ct.write(dir, "claims").context("writing claims.parquet / claims.csv")?;
    }

    let series: Vec<Series> = groups
        .iter()
        .map(|((pipe, model), runs)| {
            // min-max over seeds at each n, around the mean.
            let per_n: Vec<(f64, Vec<f64>)> = ns.iter().map(|&n| ((n as f64).log2(), stat(runs, n))).filter(|(_, xs)| !xs.is_empty()).collect();
            let pipes: Vec<String> = groups.keys().map(|k| k.0.clone()).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
            Series {
                name: format!("{model} ({pipe})"),
                points: per_n.iter().map(|(x, xs)| (*x, mean_sd(xs).0)).collect(),
                band: per_n.iter().filter(|(_, xs)| xs.len() > 1).map(|(x, xs)| (*x, xs.iter().copied().fold(f64::MAX, f64::min), xs.iter().copied().fold(f64::MIN, f64::max))).collect(),
                color: family_color(&runs[0].run),
                shade: pipes.iter().position(|p| p == pipe).unwrap_or(0),
                dash: pipes.iter().position(|p| p == pipe).unwrap_or(0),
            }
        })
        .collect();
    plot::line_chart(dir, "retrieval_top1", &Figure { title: "Retrieval top-1 vs samples per comparison", x_label: "n (samples per comparison, log scale)", x_log2: true, x_integer: false, y_label: "top-1 (%), mean over seeds", y_log: false, series: &series })?;
    figs.push(("retrieval_top1".into(), "Top-1 retrieval accuracy vs n on a log scale (PAPER.md T1): mean over seeds with the min-max band; colour by architecture, line style by embedding pipeline.".into()));
    Ok(())
}

/// Writes the report and returns its folder.
pub fn write(suite: &Suite, records: &[RunRecord], root: &Path, results: &Path, prov: &Provenance) -> Result<PathBuf> {
    let dir = version_dir(root, &suite.file.name, prov)?;
    let runs = runs_table(records);
    runs.write(&dir, "runs").context("writing runs.parquet / runs.csv")?;
    let (summary_md, summary_num) = summary_table(records);
    summary_num.write(&dir, "summary").context("writing summary.parquet / summary.csv")?;
    let mut figs = figures(&dir, records)?;
    let mut retrieval_md = String::new();
    retrieval_section(&dir, records, &mut retrieval_md, &mut figs)?;
    let mut tables_md = String::new();
    paper_tables::section(&dir, suite, records, &mut tables_md)?;
    let mut throughput_md = String::new();
    throughput::section(&dir, records, &mut throughput_md, &mut figs)?;

    let mut md = String::new();
    let f = &suite.file;
    let _ = writeln!(md, "# {} — {}\n", f.name, dir.file_name().unwrap_or_default().to_string_lossy());
    let _ = writeln!(md, "{}\n", f.description.trim());
    if !f.reproduces.is_empty() {
        let _ = writeln!(md, "Reproduces (PAPER.md numbering): {}\n", f.reproduces.join(", "));
    }
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
    let devices: std::collections::BTreeSet<&str> = records.iter().map(|r| r.device.as_str()).collect();
    let _ = writeln!(md, "## Environment\n");
    let _ = writeln!(md, "- suite file: `{}` (sha256 `{}`)", suite.path.display(), crate::artifacts::sha256_bytes(suite.source.as_bytes()));
    let _ = writeln!(md, "- harness {} at git `{}`{}", prov.harness_version, prov.git_sha, if prov.git_dirty { " (dirty)" } else { "" });
    let _ = writeln!(md, "- libtorch {}; device(s): {}", prov.libtorch_version, devices.into_iter().collect::<Vec<_>>().join(", "));
    let _ = writeln!(md, "- Cargo.lock sha256 `{}`", prov.cargo_lock_sha256.as_deref().unwrap_or("—"));
    md.push_str(&kernel_paths_md(records));
    md.push('\n');

    md.push_str(&tables_md);
    md.push_str(&throughput_md);
    let _ = writeln!(md, "## Summary (mean ± sd over seeds)\n");
    let _ = writeln!(md, "{}", summary_md.markdown());
    let _ = writeln!(
        md,
        "CE is the mean natural-log cross entropy per non-pad token. Hamming is the modified Hamming metric of PAPER.md D \
         (share of non-pad positions whose token is not among the top-5 decoded ids; 0 = recovered). The `paper` column \
         quotes what PAPER.md reports for the matching experiment; at other scales it is a direction, not a target.\n"
    );
    md.push_str(&retrieval_md);
    let _ = writeln!(md, "## Runs\n");
    let _ = writeln!(md, "{}", runs.markdown());
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
        for (stem, caption) in &figs {
            let _ = writeln!(md, "![{stem}]({stem}.png)\n\n{caption} ([SVG]({stem}.svg))\n");
        }
    }
    // What the index needs, beside the report (listed and hashed below with the rest).
    let verdict = |v: &str| md.lines().filter(|l| l.starts_with('|') && l.trim_end().ends_with(&format!("| {v} |"))).count();
    let meta = serde_json::json!({
        "suite": f.name,
        "version": dir.file_name().unwrap_or_default().to_string_lossy(),
        "git_sha": prov.git_sha,
        "git_dirty": prov.git_dirty,
        "profile": records.iter().find_map(|r| r.run.config.profile.clone()),
        "devices": records.iter().map(|r| r.device.as_str()).filter(|d| !d.is_empty()).collect::<std::collections::BTreeSet<_>>(),
        "runs": records.len(),
        "finished": records.iter().filter(|r| r.status == RunStatus::Finished).count(),
        "verdicts": { "reproduced": verdict("reproduced"), "contradicted": verdict("contradicted"), "inconclusive": verdict("inconclusive") },
    });
    crate::artifacts::write_atomic(&dir.join("report.json"), serde_json::to_string_pretty(&meta)?.as_bytes())?;
    // What the report was built from: each finished run's manifest (which hashes every file of
    // the run), by run id; `harness report --verify` re-hashes them.
    let mut inputs = serde_json::Map::new();
    for r in records.iter().filter(|r| r.status == RunStatus::Finished) {
        let m = crate::artifacts::RunDir::new(results, &r.run.suite, &r.run.id).file("manifest.json");
        if let Ok(h) = sha256_file(&m) {
            inputs.insert(r.run.id.clone(), Value::String(h));
        }
    }
    crate::artifacts::write_atomic(&dir.join("inputs.json"), serde_json::to_string_pretty(&inputs)?.as_bytes())?;
    let _ = writeln!(md, "## Files\n");
    let _ = writeln!(
        md,
        "Run folders: `results/{}/<run>/` (config, manifest with sha256 of every file, metrics, checkpoint). `inputs.json` holds \
         the sha256 of each run's manifest this report was built from; `harness report <suite> --verify <this folder>` \
         re-hashes the files below, those manifests and every file they list.\n",
        f.name
    );
    let mut names: Vec<String> = std::fs::read_dir(&dir)?.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().to_string()).collect();
    names.sort();
    for n in names {
        let _ = writeln!(md, "- [`{n}`]({n}) sha256 `{}`", sha256_file(&dir.join(&n))?);
    }
    crate::artifacts::write_atomic(&dir.join("README.md"), md.as_bytes())?;
    index(root)?;
    Ok(dir)
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
                               Verdicts count the claim rows of each report (reproduced / contradicted / inconclusive).\n\n");
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
        let verdicts = m.get("verdicts").map_or("—".into(), |v| {
            let n = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
            format!("{} / {} / {}", n("reproduced"), n("contradicted"), n("inconclusive"))
        });
        md.push_str(&format!("| {suite} | [{version}]({suite}/{version}/README.md) | {date} | {git} | {} | {devices} | {runs} | {verdicts} |\n", s("profile")));
    }
    crate::artifacts::write_atomic(&root.join("README.md"), md.as_bytes()).with_context(|| format!("writing {}/README.md", root.display()))
}

/// `harness report --verify`: re-hashes a report's listed files, the run manifests it was built
/// from (`inputs.json`) and every file those manifests list. Returns (item, ok, detail) rows.
pub fn verify(report: &Path, results: &Path, suite: &str) -> Result<Vec<(String, bool, String)>> {
    let readme = std::fs::read_to_string(report.join("README.md")).with_context(|| format!("reading {}/README.md", report.display()))?;
    let mut out = Vec::new();
    let files = readme.split("## Files").nth(1).unwrap_or_default();
    for line in files.lines().filter(|l| l.starts_with("- ")) {
        let parts: Vec<&str> = line.split('`').collect();
        // "- [`name`](name) sha256 `hash`"
        let (Some(name), Some(want)) = (parts.get(1), parts.get(3)) else { continue };
        let got = sha256_file(&report.join(name)).unwrap_or_else(|e| format!("unreadable: {e}"));
        out.push((name.to_string(), &got == want, if &got == want { "matches".into() } else { format!("sha256 {got}, listed {want}") }));
    }
    anyhow::ensure!(!out.is_empty(), "{}/README.md lists no files: not a report of this harness", report.display());
    let inputs: Map<String, Value> = std::fs::read_to_string(report.join("inputs.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .with_context(|| format!("{}/inputs.json is missing or not JSON (reports before this version have none)", report.display()))?;
    for (run, want) in &inputs {
        let dir = crate::artifacts::RunDir::new(results, suite, run);
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
