//! The paper's tables in their own layout (PAPER.md G): one `[[table]]` of the suite each, ours
//! (mean ± sd over seeds) beside the paper's value and the difference; then the suite's
//! `[[claim]]`s as one-sided Welch tests in two views, the runs' final values and equal
//! wall-clock on the machine that ran them (the paper compared at equal wall-clock, C.1).
use super::table::{fmt_num, Col, Table};
use super::claims::{self, Verdict};
use super::{model_label, RunRecord};
use crate::stats::mean_sd;
use crate::artifacts::RunStatus;
use crate::suite::{tables::find_cell, CellMatch, Layout, Metric, PaperTable, Suite, Tolerance, Tolerances};
use serde::{Deserialize, Serialize};
use anyhow::{Context, Result};
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

/// One paper cell of a table against the paper's number, as `cells.json` holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellVerdict {
    pub table: String,
    pub entry: String,
    pub metric: String,
    /// Our mean over the seeds that have a value, and how many.
    pub ours: f64,
    pub seeds: usize,
    pub paper: f64,
    /// The suite's band for the metric's kind (`[tolerance]`), if it states one.
    pub band: Option<f64>,
    /// `matches`, `differs by +0.12`, `no band stated` (no `[tolerance]` for the metric's kind)
    /// or `not compared (profile ci)` (another scale: the paper's value is a direction there).
    pub verdict: String,
}

impl CellVerdict {
    /// `matches`, or `matches (OOM in both)` for a memory cell.
    pub fn matches(&self) -> bool {
        self.verdict == "matches" || self.verdict.starts_with("matches (")
    }

    pub fn differs(&self) -> bool {
        self.verdict.starts_with("differs")
    }

    /// Our values of one cell over seeds against the paper's number: `matches` within the
    /// suite's band for the metric's kind, `differs by x` outside it, `no band stated` without
    /// one, and `not compared (profile p)` under a profile (another scale: a direction only).
    /// None when no seed has a value.
    pub fn judge(at: (&str, &str, &str), xs: &[f64], paper: f64, band: Option<&Tolerance>, profile: Option<&str>) -> Option<Self> {
        if xs.is_empty() {
            return None;
        }
        let ours = mean_sd(xs).0;
        let verdict = match (profile, band) {
            (Some(pr), _) => format!("not compared (profile {pr})"),
            (None, Some(b)) => CellMatch::of(ours, paper, b).text(),
            (None, None) => "no band stated".into(),
        };
        let (table, entry, metric) = at;
        Some(Self { table: table.into(), entry: entry.into(), metric: metric.into(), ours, seeds: xs.len(), paper, band: band.map(|b| b.abs), verdict })
    }
}

/// How many cells match and differ, for `report.json` and the headline.
pub fn cell_tally(cells: &[CellVerdict]) -> serde_json::Value {
    serde_json::json!({
        "cells": cells.len(),
        "matches": cells.iter().filter(|c| c.matches()).count(),
        "differs": cells.iter().filter(|c| c.differs()).count(),
    })
}

/// The finished runs (all seeds) of one table cell.
fn runs_of<'a>(records: &'a [RunRecord], cell: &str) -> Vec<&'a RunRecord> {
    records.iter().filter(|r| r.status == RunStatus::Finished && r.run.cells.iter().any(|c| c == cell)).collect()
}

/// Eval CE of a run at the last evaluation at or before `step`; none when that would be the
/// untrained model's (step 0) for a later step: a run not yet evaluated is not compared.
fn eval_at(r: &RunRecord, step: f64) -> Option<f64> {
    r.eval_curve.iter().rfind(|(s, _)| *s <= step + 1e-9).filter(|(s, _)| *s > 0.0 || step < 1e-9).map(|(_, v)| *v)
}

/// How far a run had trained after `seconds` of its training time (its mean rate).
fn step_after(r: &RunRecord, seconds: f64) -> Option<f64> {
    let (steps, wall) = (r.num("steps")?, r.num("train_wall_s")?);
    (wall > 0.0).then(|| seconds * steps / wall)
}

/// A metric of one run in one view.
#[derive(Clone, Copy, PartialEq)]
enum View {
    Final,
    /// Eval CE at this step (the largest step every compared run reached).
    Steps(f64),
    /// Eval CE after this many seconds of training (the shortest compared run's time).
    Seconds(f64),
}

/// The step at which a run finished `epochs` passes over its training rows.
fn epoch_step(r: &RunRecord, epochs: f64) -> Option<f64> {
    let rows = r.num("train_rows").or_else(|| r.num("train_stories"))?;
    let batch = r.run.config.train.as_ref()?.global_batch() as f64;
    Some((epochs * rows / batch).floor())
}

fn value(r: &RunRecord, metric: &Metric, view: View) -> Option<f64> {
    // A run finished as diverged (`train.on_divergence = "record"`) is worse than any run that
    // trained, in every view: +inf for a loss, -inf for an accuracy.
    if r.num("diverged_at_step").is_some() {
        return Some(if metric.lower_is_better() { f64::INFINITY } else { f64::NEG_INFINITY });
    }
    // "eval_loss@epoch1": the curve's last point at or before the end of the first epoch.
    if let Some((key, at)) = metric.key.split_once("@epoch") {
        let step = epoch_step(r, at.parse().ok()?)?;
        let curve = match key {
            "eval_loss" => &r.eval_curve,
            "train_loss" => &r.train_curve,
            _ => return None,
        };
        return (view == View::Final).then(|| curve.iter().rfind(|(s, _)| *s <= step + 1e-9).map(|(_, v)| *v)).flatten();
    }
    match view {
        View::Final => r.num(&metric.key),
        View::Steps(s) if metric.key == "eval_loss" => eval_at(r, s),
        View::Seconds(t) if metric.key == "eval_loss" => eval_at(r, step_after(r, t)?),
        _ => None,
    }
}

/// The values of a metric over seeds: finite, or infinite for a seed that diverged. At equal
/// time every seed must have been evaluated by then (else none): a mean over the seeds that
/// happened to run faster is no comparison.
fn values(runs: &[&RunRecord], metric: &Metric, view: View) -> Vec<f64> {
    let got: Vec<Option<f64>> = runs.iter().map(|r| value(r, metric, view)).collect();
    if matches!(view, View::Seconds(_)) && got.iter().any(Option::is_none) {
        return vec![];
    }
    got.into_iter().flatten().filter(|v| !v.is_nan()).collect()
}

fn ours(xs: &[f64]) -> String {
    let diverged = xs.iter().filter(|x| x.is_infinite()).count();
    if diverged > 0 {
        return if diverged == xs.len() { "diverged".into() } else { format!("diverged in {diverged} of {} seeds", xs.len()) };
    }
    match xs.len() {
        0 => "—".into(),
        1 => fmt_num(xs[0]),
        _ => {
            let (m, sd) = mean_sd(xs);
            format!("{} ± {}", fmt_num(m), fmt_num(sd))
        }
    }
}

/// A paper value as PAPER.md prints it: two decimals at least (1.70, not 1.7), more if it has them.
fn paper_num(p: f64) -> String {
    let two = format!("{p:.2}");
    if (two.parse::<f64>().unwrap_or(f64::NAN) - p).abs() < 1e-9 { two } else { p.to_string() }
}

/// The equal-steps and equal-time points of a set of cells: the fewest steps any of them
/// trained, and the shortest mean training time; `None` when the runs did not all run on one
/// device (their times are then not comparable).
fn common_points(groups: &[Vec<&RunRecord>]) -> (Option<f64>, Option<f64>) {
    let all: Vec<&RunRecord> = groups.iter().flatten().copied().collect();
    if all.is_empty() {
        return (None, None);
    }
    let steps = all.iter().filter_map(|r| r.num("steps")).fold(f64::INFINITY, f64::min);
    let devices: BTreeSet<&str> = all.iter().map(|r| r.device.as_str()).collect();
    let time = (devices.len() == 1)
        .then(|| {
            groups
                .iter()
                .filter(|g| !g.is_empty())
                .map(|g| mean_sd(&g.iter().filter_map(|r| r.num("train_wall_s")).collect::<Vec<_>>()).0)
                .fold(f64::INFINITY, f64::min)
        })
        .filter(|t| t.is_finite());
    (steps.is_finite().then_some(steps), time)
}

struct Row {
    metric: String,
    view: String,
    cells: Vec<String>,
    long: Vec<Reading>,
}

/// One entry's reading of a row's metric in the row's view: a line of the long-form table file.
struct Reading {
    /// The entry's index in the table.
    entry: usize,
    /// Mean, sd and count over the seeds that have a value; none when none has.
    stat: Option<(f64, f64, usize)>,
    /// The paper's value (final view only).
    paper: Option<f64>,
    /// The view as this entry was read: "final", "@ step S" or "@ T s".
    at: String,
    /// Against the paper's value within the suite's band ([`CellVerdict::verdict`]).
    verdict: Option<String>,
}

/// The row name of the equal-time view.
const EQUAL_TIME: &str = "@ equal time";

/// The n_ctx of an entry's runs: entries of one n_ctx cost alike per step, so the equal-time
/// view compares them with one another only.
fn cost_class(g: &[&RunRecord]) -> Option<i64> {
    g.first().and_then(|r| r.run.config.data.as_ref()).map(|d| d.n_ctx)
}

/// Per entry, the training time at which it is compared with the entries of its cost class: the
/// shortest mean training time among them (none for an entry alone in its class, or when the
/// runs did not all run on one device).
fn equal_times(groups: &[Vec<&RunRecord>]) -> Vec<Option<f64>> {
    let devices: BTreeSet<&str> = groups.iter().flatten().map(|r| r.device.as_str()).collect();
    let mean_time = |g: &Vec<&RunRecord>| {
        let ts: Vec<f64> = g.iter().filter_map(|r| r.num("train_wall_s")).collect();
        (!ts.is_empty()).then(|| mean_sd(&ts).0)
    };
    groups
        .iter()
        .map(|g| {
            if g.is_empty() || devices.len() != 1 {
                return None;
            }
            let class = cost_class(g);
            let peers: Vec<f64> = groups.iter().filter(|h| !h.is_empty() && cost_class(h) == class).filter_map(mean_time).collect();
            (peers.len() > 1).then(|| peers.iter().copied().fold(f64::INFINITY, f64::min)).filter(|t| t.is_finite())
        })
        .collect()
}

fn table_section(dir: &Path, t: &PaperTable, tol: &Tolerances, records: &[RunRecord], md: &mut String, cells: &mut Vec<CellVerdict>) -> Result<bool> {
    let groups: Vec<Vec<&RunRecord>> = t.entries.iter().map(|e| runs_of(records, &t.cell(e))).collect();
    if groups.iter().all(Vec::is_empty) {
        return Ok(false);
    }
    let profiled = groups.iter().flatten().any(|r| r.run.config.profile.is_some());
    let rows = rows(t, tol, &groups, profiled, cells);
    let out = wide(t, &groups, &rows);
    let _ = writeln!(md, "### {}: {}\n", t.id, t.caption.trim());
    if let Some(note) = &t.note {
        let _ = writeln!(md, "{}\n", note.trim());
    }
    let _ = writeln!(md, "{}", out.markdown());

    write_long(dir, t, &groups, &rows, profiled)?;
    Ok(true)
}

/// The table's rows: each metric at its final value, then (for eval CE) at the step every entry
/// reached and at equal wall-clock time within a cost class; each cell against the paper's number.
fn rows(t: &PaperTable, tol: &Tolerances, groups: &[Vec<&RunRecord>], profiled: bool, cells: &mut Vec<CellVerdict>) -> Vec<Row> {
    let (min_steps, _) = common_points(groups);
    let steps_differ = {
        let s: BTreeSet<i64> = groups.iter().flatten().filter_map(|r| r.num("steps")).map(|s| s as i64).collect();
        s.len() > 1
    };
    let times = equal_times(groups);
    let mut rows: Vec<Row> = Vec::new();
    // (the view of entry i, or none where it has no such view; the row's name)
    type ViewOf<'v> = Box<dyn Fn(usize) -> Option<View> + 'v>;
    let mut views: Vec<(ViewOf, String)> = vec![(Box::new(|_| Some(View::Final)), String::new())];
    if let (true, Some(s)) = (steps_differ, min_steps) {
        views.push((Box::new(move |_| Some(View::Steps(s))), format!("@ step {s:.0}")));
    }
    if times.iter().any(Option::is_some) {
        views.push((Box::new(|i| times[i].map(View::Seconds)), EQUAL_TIME.into()));
    }
    for (view_of, name) in &views {
        for m in t.metrics() {
            let is_final = name.is_empty();
            if !is_final && m.key != "eval_loss" {
                continue;
            }
            let mut row = Row { metric: m.name.clone(), view: name.clone(), cells: vec![], long: vec![] };
            let mut all: Vec<Vec<f64>> = groups.iter().enumerate().map(|(i, g)| view_of(i).map_or_else(Vec::new, |v| values(g, &m, v))).collect();
            // At equal time an entry is shown only beside another of its cost class.
            if name == EQUAL_TIME {
                let with_value = |class: Option<i64>| (0..groups.len()).filter(|&j| cost_class(&groups[j]) == class && !all[j].is_empty()).count();
                let lonely: Vec<usize> = (0..groups.len()).filter(|&i| with_value(cost_class(&groups[i])) < 2).collect();
                for i in lonely {
                    all[i].clear();
                }
            }
            for (i, xs) in all.into_iter().enumerate() {
                let view = view_of(i);
                let paper = is_final.then(|| t.paper(&t.entries[i], &m.name)).flatten();
                // A cell with a diverged seed reads "diverged": no mean, no band verdict.
                let diverged = xs.iter().any(|x| x.is_infinite());
                let stat = (!xs.is_empty() && !diverged).then(|| {
                    let (mean, sd) = mean_sd(&xs);
                    (mean, sd, xs.len())
                });
                let at = match view {
                    Some(View::Seconds(tm)) => format!("@ {tm:.1} s"),
                    Some(View::Steps(st)) => format!("@ step {st:.0}"),
                    Some(View::Final) => "final".into(),
                    None => name.clone(),
                };
                let profile = groups[i].iter().find_map(|r| r.run.config.profile.clone());
                let band = m.kind().and_then(|k| tol.of(k));
                let judged = paper.filter(|_| !diverged).and_then(|p| CellVerdict::judge((&t.id, &t.entries[i], &m.name), &xs, p, band, profile.as_deref()));
                let verdict = judged.as_ref().map(|c| c.verdict.clone());
                cells.extend(judged);
                let text = match (stat, paper) {
                    (Some((mean, _, _)), Some(p)) if !profiled => {
                        format!("{} (paper {}, Δ {:+.2}: {})", ours(&xs), paper_num(p), mean - p, verdict.as_deref().unwrap_or_default())
                    }
                    (_, Some(p)) => format!("{} (paper {})", ours(&xs), paper_num(p)),
                    (Some(_), None) if matches!(view, Some(View::Seconds(_))) => format!("{} ({at})", ours(&xs)),
                    _ => ours(&xs),
                };
                row.cells.push(text);
                row.long.push(Reading { entry: i, stat, paper, at, verdict });
            }
            rows.push(row);
        }
    }
    rows
}

fn group_label(g: &[&RunRecord]) -> String {
    g.first().map_or("not run".to_string(), |r| model_label(&r.run))
}

fn group_steps(g: &[&RunRecord]) -> String {
    let s: BTreeSet<i64> = g.iter().filter_map(|r| r.num("steps")).map(|s| s as i64).collect();
    s.iter().map(i64::to_string).collect::<Vec<_>>().join("/")
}

fn group_batch(g: &[&RunRecord]) -> String {
    g.first().and_then(|r| r.run.config.train.as_ref()).map_or("—".into(), |t| t.global_batch().to_string())
}

/// The table in the paper's layout: entries as columns or as rows.
fn wide(t: &PaperTable, groups: &[Vec<&RunRecord>], rows: &[Row]) -> Table {
    let mut out = Table::default();
    match t.layout {
        Layout::Columns => {
            let mut head = vec!["model".to_string(), "global batch".into(), "steps".into(), "seeds".into()];
            head.extend(rows.iter().map(|r| format!("{}{}", r.metric, if r.view.is_empty() { String::new() } else { format!(" {}", r.view) })));
            out.push("", Col::Str(head));
            for (i, e) in t.entries.iter().enumerate() {
                let g = &groups[i];
                let mut col = vec![group_label(g), group_batch(g), group_steps(g), g.len().to_string()];
                col.extend(rows.iter().map(|r| r.cells[i].clone()));
                out.push(e, Col::Str(col));
            }
        }
        Layout::Rows => {
            out.push("", Col::Str(t.entries.clone()));
            out.push("model", Col::Str(groups.iter().map(|g| group_label(g)).collect()));
            out.push("global batch", Col::Str(groups.iter().map(|g| group_batch(g)).collect()));
            out.push("steps", Col::Str(groups.iter().map(|g| group_steps(g)).collect()));
            out.push("seeds", Col::Int(groups.iter().map(|g| Some(g.len() as i64)).collect()));
            for r in rows {
                let name = if r.view.is_empty() { r.metric.clone() } else { format!("{} {}", r.metric, r.view) };
                out.push(&name, Col::Str(r.cells.clone()));
            }
        }
    }
    out
}

/// Long form, `table_<id>.parquet` / `.csv`: one row per (entry, metric, view).
fn write_long(dir: &Path, t: &PaperTable, groups: &[Vec<&RunRecord>], rows: &[Row], profiled: bool) -> Result<()> {
    let mut lt = Table::default();
    let flat: Vec<(&Row, &Reading)> = rows.iter().flat_map(|r| r.long.iter().map(move |l| (r, l))).collect();
    lt.push("table", Col::Str(flat.iter().map(|_| t.id.clone()).collect()));
    lt.push("entry", Col::Str(flat.iter().map(|(_, l)| t.entries[l.entry].clone()).collect()));
    lt.push("model", Col::Str(flat.iter().map(|(_, l)| group_label(&groups[l.entry])).collect()));
    lt.push("metric", Col::Str(flat.iter().map(|(r, _)| r.metric.clone()).collect()));
    lt.push("view", Col::Str(flat.iter().map(|(_, l)| l.at.clone()).collect()));
    lt.push("seeds", Col::Int(flat.iter().map(|(_, l)| l.stat.map(|s| s.2 as i64)).collect()));
    lt.push("mean", Col::Num(flat.iter().map(|(_, l)| l.stat.map(|s| s.0)).collect()));
    lt.push("sd", Col::Num(flat.iter().map(|(_, l)| l.stat.map(|s| s.1)).collect()));
    lt.push("paper", Col::Num(flat.iter().map(|(_, l)| l.paper).collect()));
    lt.push("diff", Col::Num(flat.iter().map(|(_, l)| match (l.stat, l.paper) {
        (Some(s), Some(p)) if !profiled => Some(s.0 - p),
        _ => None,
    }).collect()));
    lt.push("match", Col::Str(flat.iter().map(|(_, l)| l.verdict.clone().unwrap_or_default()).collect()));
    lt.write(dir, &format!("table_{}", t.id)).with_context(|| format!("writing table_{}.parquet / .csv", t.id))?;
    Ok(())
}

/// The suite's bands as a sentence for the tables' preamble.
fn bands(tol: &Tolerances) -> String {
    use crate::suite::MetricKind;
    let stated: Vec<String> = [(MetricKind::Ce, "CE", " nats"), (MetricKind::Top1, "top-1", " points"), (MetricKind::Hamming, "Hamming", "")]
        .iter()
        .filter_map(|(k, name, unit)| tol.of(*k).map(|b| format!("{name} within ±{}{unit} ({})", b.abs, b.why.trim().trim_end_matches('.'))))
        .collect();
    if stated.is_empty() {
        ", and no match verdict (the suite states no `[tolerance]`)".into()
    } else {
        format!(", and whether it matches the paper's: {}", stated.join("; "))
    }
}

/// Every metric of a table must be found in some finished run that fills the table: a metric
/// naming a summary key no run has would print an empty row and look like a result. Checked
/// before the report folder is made, so a failed check leaves no half-written report.
pub fn check_metrics(suite: &Suite, records: &[RunRecord]) -> Result<()> {
    for t in &suite.file.tables {
        let runs: Vec<&RunRecord> = t.entries.iter().flat_map(|e| runs_of(records, &t.cell(e))).collect();
        if runs.is_empty() {
            continue;
        }
        for m in t.metrics() {
            if runs.iter().any(|r| value(r, &m, View::Final).is_some()) {
                continue;
            }
            let keys: BTreeSet<&str> = runs.iter().flat_map(|r| r.summary.iter().filter(|(_, v)| v.is_number()).map(|(k, _)| k.as_str())).collect();
            anyhow::bail!(
                "{}: table {} metric `{}` reads summary key `{}`, which none of the table's {} finished run(s) has; \
                 fix the table's `metrics` (\"name=summary_key\") to one of: {} (the runs' results are kept; rerun \
                 `harness report` after fixing the suite)",
                suite.path.display(),
                t.id,
                m.name,
                m.key,
                runs.len(),
                keys.into_iter().collect::<Vec<_>>().join(", ")
            );
        }
    }
    Ok(())
}

/// Every table of the suite, then its claims. Nothing when the suite has no tables.
pub fn section(dir: &Path, suite: &Suite, records: &[RunRecord], md: &mut String, verdicts: &mut Vec<Verdict>, cells: &mut Vec<CellVerdict>) -> Result<()> {
    let tables = &suite.file.tables;
    let mut any = false;
    let mut body = String::new();
    for t in tables {
        any |= table_section(dir, t, &suite.file.tolerance, records, &mut body, cells)?;
    }
    if !any {
        return Ok(());
    }
    let profiled = records.iter().any(|r| r.run.config.profile.is_some());
    let _ = writeln!(md, "## Paper tables (PAPER.md G layout)\n");
    let _ = writeln!(
        md,
        "Each cell: ours as mean ± sd over seeds, the paper's value and the difference{}{}. Rows marked `@ step S` give eval CE \
         at the fewest steps any entry of the table trained (the per-step view, when budgets differ); `@ equal time` \
         compares entries of equal cost per step (the same n_ctx) at the shortest training time among them on the \
         machine that ran them (each cell says its time; from each run's mean step rate and its eval curve; it moves \
         with the machine and its load, while the final values are bitwise reproducible on CPU). An entry alone at its \
         n_ctx, or with a seed not yet evaluated at that time, shows —: no entry is read at step 0 because another was cheaper. Table files: `table_<id>.{{parquet,csv}}` (long form, every view).\n",
        if profiled { " (not computed under a profile: the paper's value is a direction there)" } else { "" },
        if profiled { String::new() } else { bands(&suite.file.tolerance) }
    );
    md.push_str(&body);

    let mut rows: Vec<[String; 11]> = Vec::new();
    for c in &suite.file.claims {
        let Ok(metric) = c.check(tables) else { continue };
        let (a, b) = (runs_of(records, &c.better), runs_of(records, &c.than));
        if a.is_empty() || b.is_empty() {
            continue;
        }
        let (_, time) = common_points(&[a.clone(), b.clone()]);
        let mut views = vec![(View::Final, "final".to_string())];
        if let Some(t) = time.filter(|_| metric.key == "eval_loss") {
            views.push((View::Seconds(t), format!("equal time ({t:.1} s)")));
        }
        for (view, name) in views {
            let (xa, xb) = (values(&a, &metric, view), values(&b, &metric, view));
            if xa.is_empty() || xb.is_empty() {
                continue;
            }
            let paper = |cell: &str| find_cell(tables, cell).and_then(|(t, e)| t.paper(e, &metric.name));
            let pair = paper(&c.better).zip(paper(&c.than));
            let seed_sd = metric.kind().and_then(|k| suite.file.tolerance.of(k)).and_then(|t| t.seed_sd);
            let v = Verdict::test("paper tables", &c.text, &c.better, &c.than, &format!("{} ({name})", metric.name), &xa, &xb, metric.lower_is_better())
                .plan_seeds(pair, seed_sd, metric.lower_is_better());
            let paper_dir = pair.map_or("—".into(), |(p, q)| format!("{} vs {}", paper_num(p), paper_num(q)));
            let seeds_cell = v.seeds_cell();
            let [t, df, p, verdict] = v.cells();
            verdicts.push(v);
            rows.push([
                c.text.clone(),
                format!("{} vs {}", c.better, c.than),
                format!("{} ({name})", metric.name),
                format!("{} vs {}", fmt_num(mean_sd(&xa).0), fmt_num(mean_sd(&xb).0)),
                paper_dir,
                t,
                df,
                p,
                format!("{} / {}", xa.len(), xb.len()),
                verdict,
                seeds_cell,
            ]);
        }
    }
    if !rows.is_empty() {
        let _ = writeln!(md, "### Claims\n");
        let _ = writeln!(
            md,
            "One-sided Welch t-test over seeds that the first cell is better (lower CE or Hamming, higher accuracy) than the second, in two views: the \
             runs' final values as budgeted, and at equal training time on this machine. {} {}\n",
            claims::rule(),
            claims::SEEDS_RULE
        );
        let mut ct = Table::default();
        let names = ["claim", "cells", "metric (view)", "ours", "paper", "t", "df", "p (one-sided)", "seeds", "verdict", "seeds a side for a test"];
        for (i, name) in names.iter().enumerate() {
            ct.push(name, Col::Str(rows.iter().map(|r| r[i].clone()).collect()));
        }
        let _ = writeln!(md, "{}", ct.markdown());
        ct.write(dir, "table_claims").context("writing table_claims.parquet / .csv")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifacts::RunStatus;

    /// Runs of one suite with the given (n_ctx, training seconds, eval curve) as finished records.
    fn records(specs: &[(i64, f64, &[(f64, f64)])]) -> Vec<RunRecord> {
        let text = "schema = 1\nname = \"t\"\ndescription = \"d\"\n[defaults.data]\nsource = \"embedded\"\nvocab_size = 300\n[defaults.train]\nsteps = 30\nbatch_size = 2\n[[experiment]]\nname = \"c\"\nkind = \"clm\"\nmodel = { kind = \"masked_mixer\", d_model = 8, n_layers = 1 }\n[experiment.sweep]\n\"data.n_ctx\" = [16, 32]\n";
        let suite = Suite::parse(Path::new("t.toml"), text.into(), &[], false).unwrap();
        specs
            .iter()
            .map(|(n_ctx, secs, curve)| {
                let run = suite.runs.iter().find(|r| r.config.data().n_ctx == *n_ctx).unwrap().clone();
                let mut summary = serde_json::Map::new();
                summary.insert("train_wall_s".into(), (*secs).into());
                summary.insert("steps".into(), 30.into());
                RunRecord {
                    run,
                    status: RunStatus::Finished,
                    error: None,
                    device: "cpu".into(),
                    execution: Default::default(),
                    wall_s: Some(*secs),
                    summary,
                    eval_curve: curve.to_vec(),
                    train_curve: vec![],
                    reused: false,
                    folder: Default::default(),
                }
            })
            .collect()
    }

    #[test]
    fn equal_time_compares_within_an_n_ctx_and_never_reads_step_0() {
        let curve_fast: &[(f64, f64)] = &[(0.0, 6.9), (10.0, 4.0), (20.0, 3.0), (30.0, 2.5)];
        let recs = records(&[(16, 3.0, curve_fast), (16, 6.0, curve_fast), (32, 60.0, curve_fast), (32, 90.0, curve_fast)]);
        let groups: Vec<Vec<&RunRecord>> = recs.iter().map(|r| vec![r]).collect();
        let t = equal_times(&groups);
        assert_eq!(t, vec![Some(3.0), Some(3.0), Some(60.0), Some(60.0)], "each n_ctx at its own cheapest entry's time");
        // At 3 s the 6-second run has done 15 of 30 steps: its step-10 evaluation, not step 0.
        let m = crate::suite::tables::parse_metric("eval").unwrap();
        assert_eq!(value(&recs[1], &m, View::Seconds(3.0)), Some(4.0));
        // Before its first evaluation after step 0 a run has no equal-time value.
        assert_eq!(value(&recs[1], &m, View::Seconds(1.0)), None);
        assert_eq!(values(&[&recs[0], &recs[1]], &m, View::Seconds(1.0)), Vec::<f64>::new(), "all seeds evaluated or none");
        // An entry alone at its n_ctx is compared with nothing.
        let alone = records(&[(16, 3.0, curve_fast), (16, 6.0, curve_fast), (32, 60.0, curve_fast)]);
        let groups: Vec<Vec<&RunRecord>> = alone.iter().map(|r| vec![r]).collect();
        assert_eq!(equal_times(&groups), vec![Some(3.0), Some(3.0), None]);
    }
}
