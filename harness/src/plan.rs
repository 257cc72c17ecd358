//! What `harness plan` and `harness status` print: a suite's runs against a results folder.
use crate::suite::Suite;
use std::fmt::Write as _;
use std::path::Path;

/// The run table of `harness plan`: id, experiment, kind, model, setting, seed, parameters,
/// steps, device, producer, finished or pending, and the paper cells each run fills.
pub fn plan_text(suite: &Suite, profile: Option<&str>, results: &Path) -> String {
    let mut text = String::new();
    let profile = profile.map(|p| format!(", profile {p}")).unwrap_or_default();
    let _ = writeln!(text, "suite {} ({} runs{profile}): {}", suite.file.name, suite.runs.len(), suite.file.description.trim());
    let _ = writeln!(
        text,
        "{:<12}  {:<16} {:<17} {:<24} {:<34} {:>4} {:>13} {:>8}  {:<6} {:<12}  {:<8}  cell",
        "run", "experiment", "kind", "model", "setting", "seed", "params", "steps", "device", "from", "status"
    );
    for r in &suite.runs {
        let c = &r.config;
        let params = match (&c.model, &c.data, &c.throughput) {
            (Some(m), Some(d), _) => m.num_params(d.vocab_size as i64, d.n_ctx).to_string(),
            (Some(m), None, Some(t)) => m.num_params(t.vocab_size, t.n_ctx).to_string(),
            _ => "—".into(),
        };
        let vocab = c.data.as_ref().map(|d| match d.tokenizer { crate::suite::TokenizerKind::Bpe => format!(" V={}", d.vocab_size), k => format!(" V={} {}", d.vocab_size, k.name()) }).unwrap_or_default();
        let dir = crate::artifacts::RunDir::new(results, &r.suite, &r.id);
        let status = if dir.verified_finished().is_some() { "finished" } else { "pending" };
        let from = r.upstream().map_or("—".to_string(), |u| u[..12].to_string());
        let steps = match (&c.train, &c.data) {
            (Some(t), Some(d)) => t.budget_steps(d.n_ctx).to_string(),
            _ => "—".into(),
        };
        let cell = if r.cells.is_empty() { "—".to_string() } else { r.cells.join(", ") };
        let _ = writeln!(
            text,
            "{:<12}  {:<16} {:<17} {:<24} {:<34} {:>4} {:>13} {:>8}  {:<6} {:<12}  {status:<8}  {cell}",
            r.short_id(),
            r.experiment,
            c.kind.name(),
            crate::report::model_label(r),
            format!("{}{vocab}", crate::report::setting(r)),
            c.seed,
            params,
            steps,
            format!("{:?}", c.device).to_lowercase(),
            from,
        );
    }
    text
}

/// `harness status`: one line per run (running with its lock holder, finished, partial,
/// failed with its error, pending) and the counts.
pub fn status_text(suite: &Suite, results: &Path) -> String {
    let rows = crate::runner::status(suite, results);
    let mut text = String::new();
    let mut counts = std::collections::BTreeMap::new();
    for (run, state, detail) in &rows {
        *counts.entry(state.to_string()).or_insert(0) += 1;
        let _ = writeln!(text, "{:<12}  {:<16} {:<34} {:<9} {detail}", run.short_id(), run.experiment, crate::report::model_label(run), state);
    }
    let summary: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
    let _ = writeln!(text, "{}: {} runs: {}", suite.file.name, rows.len(), summary.join(", "));
    text
}
