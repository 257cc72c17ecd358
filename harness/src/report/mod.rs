//! The one report writer: `reports/<suite>/<version>/README.md` (version = UTC time + short git
//! sha, never overwritten) with tables (also parquet and csv) and figures (PNG and SVG), our
//! numbers beside the paper's.
pub mod paper_tables;
pub mod plot;
pub mod stats;
pub mod table;

use crate::artifacts::{sha256_file, Provenance, RunStatus};
use crate::suite::{ExperimentKind, Run, Suite};
use anyhow::{Context, Result};
use plot::{Figure, Series};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use table::{fmt_num, mean_sd, Col, Table};

/// A run as the report sees it.
#[derive(Debug, Clone)]
pub struct RunRecord {
    pub run: Run,
    pub status: RunStatus,
    pub error: Option<String>,
    pub device: String,
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

/// "masked_mixer d64 n2", "llama d64 n2 h4".
pub fn model_label_of(model: &mm_models::ModelSpec) -> String {
    use mm_models::ModelSpec;
    match model {
        ModelSpec::MaskedMixer(s) => {
            use mm_models::masked_mixer::Mixing;
            let v = match s.mixing() {
                Mixing::Flat => String::new(),
                Mixing::Expanded { expansion } => format!(" expanded e{expansion}"),
                Mixing::Kernel { kernel } => format!(" kernel k{kernel}"),
                Mixing::Parallel { n } => format!(" parallel x{n}"),
                Mixing::MultiHead { heads, head_dim } => format!(" heads {heads}x{head_dim}"),
            };
            let bi = if s.bidirectional { " bidirectional" } else { "" };
            let extra = format!("{}{}", if s.embed_linear { " +wte_linear" } else { "" }, if s.layer_norm { "" } else { " no-norm" });
            format!("masked_mixer d{} n{}{v}{bi}{extra}", s.d_model, s.n_layers)
        }
        ModelSpec::Llama(s) => format!("llama d{} n{} h{}", s.d_model, s.n_layers, s.n_heads),
        ModelSpec::Transfixer(s) => format!("transfixer d{} n{} h{}", s.d_model, s.n_layers, s.n_heads),
        ModelSpec::Gpt(s) => format!("gpt d{} n{} h{}", s.d_model, s.n_layers, s.n_heads),
        ModelSpec::MixerAutoencoder(s) | ModelSpec::LlamaAutoencoder(s) => format!(
            "{}{} d{} {}+{}",
            model.kind(),
            if s.completion { " (completion)" } else { "" },
            s.d_model,
            s.encoder_layers,
            s.decoder_layers
        ),
    }
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

fn figures(dir: &Path, records: &[RunRecord]) -> Result<Vec<(String, String)>> {
    let mut out = vec![];
    let label = |r: &RunRecord| format!("{} {} {} s{}", r.run.experiment, model_label(&r.run), setting(&r.run), r.run.config.seed);
    let clm: Vec<&RunRecord> = records.iter().filter(|r| !r.eval_curve.is_empty()).collect();
    if !clm.is_empty() {
        let eval: Vec<Series> = clm.iter().map(|r| Series { name: label(r), points: r.eval_curve.clone() }).collect();
        plot::line_chart(dir, "eval_loss", &Figure { title: "Eval loss (mean token CE, non-pad)", x_label: "step", x_log2: false, y_label: "eval CE (nats)", series: &eval })?;
        out.push(("eval_loss".into(), "Evaluation loss vs optimizer step, one line per run.".into()));
        let train: Vec<Series> = clm.iter().map(|r| Series { name: label(r), points: r.train_curve.clone() }).collect();
        plot::line_chart(dir, "train_loss", &Figure { title: "Training loss", x_label: "step", x_log2: false, y_label: "train CE (nats)", series: &train })?;
        out.push(("train_loss".into(), "Training loss (per logged step) vs optimizer step.".into()));
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
                Series { name, points: by_x.into_iter().map(|(x, ys)| (x as f64, mean_sd(&ys).0)).collect() }
            })
            .collect();
        let x_label = if over_steps { "training step of the checkpoint" } else { "d_model" };
        plot::line_chart(dir, "representation", &Figure { title: "Modified Hamming metric (0 = input recovered)", x_label, x_log2: false, y_label: "Hamming (mean over seeds)", series: &series })?;
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
        .map(|((pipe, model), runs)| Series {
            name: format!("{model} ({pipe})"),
            points: ns.iter().filter_map(|&n| {
                let xs = stat(runs, n);
                (!xs.is_empty()).then(|| ((n as f64).log2(), mean_sd(&xs).0))
            }).collect(),
        })
        .collect();
    plot::line_chart(dir, "retrieval_top1", &Figure { title: "Retrieval top-1 vs samples per comparison", x_label: "n (samples per comparison, log scale)", x_log2: true, y_label: "top-1 (%), mean over seeds", series: &series })?;
    figs.push(("retrieval_top1".into(), "Top-1 retrieval accuracy vs n on a log scale (PAPER.md T1), one line per embedding pipeline and model.".into()));
    Ok(())
}

/// Writes the report and returns its folder.
pub fn write(suite: &Suite, records: &[RunRecord], root: &Path, prov: &Provenance) -> Result<PathBuf> {
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
    let _ = writeln!(md, "- Cargo.lock sha256 `{}`\n", prov.cargo_lock_sha256.as_deref().unwrap_or("—"));

    md.push_str(&tables_md);
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
    let _ = writeln!(md, "## Files\n");
    let _ = writeln!(md, "Run folders: `results/{}/<run>/` (config, manifest with sha256 of every file, metrics, checkpoint).\n", f.name);
    let mut names: Vec<String> = std::fs::read_dir(&dir)?.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().to_string()).collect();
    names.sort();
    for n in names {
        let _ = writeln!(md, "- `{n}` sha256 `{}`", sha256_file(&dir.join(&n))?);
    }
    crate::artifacts::write_atomic(&dir.join("README.md"), md.as_bytes())?;
    Ok(dir)
}
