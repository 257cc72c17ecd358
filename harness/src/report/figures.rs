//! The report's figures: training and evaluation curves, the mean over seeds with a min-max
//! band, one hue per architecture.
use super::*;

/// Palette index of an architecture, so every figure colours a family the same way.
pub(super) fn family_color(run: &crate::suite::Run) -> usize {
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
pub(super) fn smooth(ys: &[f64], w: usize) -> Vec<f64> {
    (0..ys.len()).map(|i| mean_sd(&ys[i.saturating_sub(w.saturating_sub(1))..=i]).0).collect()
}

/// One series per (experiment, model, setting): the mean over seeds at each step, with the
/// min-max band; colour by architecture, line style by setting within it.
pub(super) fn seed_bands(runs: &[&RunRecord], curve: impl Fn(&RunRecord) -> &Vec<(f64, f64)>, smoothing: bool) -> Vec<Series> {
    let mut groups: BTreeMap<(String, String, String), Vec<&RunRecord>> = BTreeMap::new();
    for r in runs {
        groups.entry((r.run.experiment.clone(), model_label(&r.run), setting(&r.run))).or_default().push(r);
    }
    // Setting words every series shares (n_ctx=64 everywhere) say nothing in a legend.
    let common: Vec<String> = {
        let sets: Vec<Vec<&str>> = groups.keys().map(|k| k.2.split(' ').collect()).collect();
        sets.first().map_or(vec![], |f| f.iter().filter(|w| sets.iter().all(|s| s.contains(w))).map(|w| w.to_string()).collect())
    };
    // The experiment names a line only when the figure has lines of several experiments.
    let experiments: std::collections::BTreeSet<&str> = groups.keys().map(|k| k.0.as_str()).collect();
    let several = experiments.len() > 1;
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
            let name = if several { format!("{model} {set}{seeds} ({exp})") } else { format!("{model} {set}{seeds}") };
            Series {
                name: name.replace("  ", " ").trim().to_string(),
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
pub(super) fn spans_fold(series: &[Series]) -> bool {
    let ys: Vec<f64> = series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).filter(|y| y.is_finite() && *y > 0.0).collect();
    let (lo, hi) = ys.iter().fold((f64::MAX, f64::MIN), |(a, b), &y| (a.min(y), b.max(y)));
    lo > 0.0 && hi / lo > 2.5
}

/// One line per entry of a paper table (the mean over its seeds, with the min-max band), named
/// by the entry; hue by architecture, line style by entry within it.
fn table_series(t: &crate::suite::PaperTable, records: &[RunRecord]) -> Vec<Series> {
    let mut styles: BTreeMap<usize, usize> = BTreeMap::new();
    t.entries
        .iter()
        .filter_map(|e| {
            let runs: Vec<&RunRecord> = records.iter().filter(|r| r.status == RunStatus::Finished && r.run.cells.contains(&t.cell(e)) && !r.eval_curve.is_empty()).collect();
            let first = runs.first()?;
            let mut at: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
            for r in &runs {
                for &(x, y) in r.eval_curve.iter().filter(|p| p.1.is_finite()) {
                    at.entry(x as i64).or_default().push(y);
                }
            }
            let color = family_color(&first.run);
            let k = styles.entry(color).or_default();
            let style = *k;
            *k += 1;
            let seeds = if runs.len() > 1 { format!(" ×{}", runs.len()) } else { String::new() };
            let stat = |f: fn(&[f64]) -> f64| at.iter().map(|(x, ys)| (*x as f64, f(ys))).collect::<Vec<_>>();
            let mean = stat(|ys| mean_sd(ys).0);
            let lo = stat(|ys| ys.iter().copied().fold(f64::MAX, f64::min));
            let hi = stat(|ys| ys.iter().copied().fold(f64::MIN, f64::max));
            Some(Series {
                name: format!("{e}: {}{seeds}", model_label(&first.run).replace("masked_mixer", "mixer")),
                band: if runs.len() > 1 { lo.iter().zip(&hi).map(|(l, h)| (l.0, l.1, h.1)).collect() } else { vec![] },
                points: mean,
                color,
                shade: (style / 4) % 4,
                dash: style % 4,
            })
        })
        .collect()
}

pub(super) fn figures(dir: &Path, records: &[RunRecord], tables: &[crate::suite::PaperTable]) -> Result<Vec<(String, String)>> {
    let mut out = vec![];
    let clm: Vec<&RunRecord> = records.iter().filter(|r| !r.eval_curve.is_empty()).collect();
    // One evaluation-loss figure per paper table with curves; the suite-wide one for runs in
    // no table.
    let mut in_tables = std::collections::BTreeSet::new();
    for t in tables {
        let series = table_series(t, records);
        if series.is_empty() {
            continue;
        }
        for r in &clm {
            if t.entries.iter().any(|e| r.run.cells.contains(&t.cell(e))) {
                in_tables.insert(r.run.id.clone());
            }
        }
        let stem = format!("eval_loss_{}", t.id.replace(|c: char| !c.is_ascii_alphanumeric(), "_"));
        let title = format!("{}: eval loss (mean token CE, non-pad)", t.id);
        plot::line_chart(dir, &stem, &Figure { title: &title, x_label: "optimizer step", x_log2: false, x_integer: true, y_label: "eval CE (nats)", y_log: spans_fold(&series), series: &series })?;
        out.push((stem, format!("Table {}: evaluation loss vs optimizer step per entry, the mean over seeds (×n: n seeds) shaded from the seeds' minimum to maximum; hue by architecture.", t.id)));
    }
    let rest: Vec<&RunRecord> = clm.iter().copied().filter(|r| !in_tables.contains(&r.run.id)).collect();
    if !rest.is_empty() {
        let eval = seed_bands(&rest, |r| &r.eval_curve, false);
        let y_log = spans_fold(&eval);
        plot::line_chart(dir, "eval_loss", &Figure { title: "Eval loss (mean token CE, non-pad)", x_label: "optimizer step", x_log2: false, x_integer: true, y_label: "eval CE (nats)", y_log, series: &eval })?;
        out.push(("eval_loss".into(), "Evaluation loss vs optimizer step: the mean over seeds per configuration (×n: n seeds), shaded from the seeds' minimum to maximum; hue by architecture, shade and line style by configuration; settings every line shares are left out of the legend.".into()));
    }
    if !clm.is_empty() {
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
