//! `harness eval`: a run's mean cross entropy and perplexity on any text file, with the run's
//! own tokenizer, n_ctx, padding and packing (as its eval split was scored), over every non-pad
//! target its objective predicts.
use super::Loaded;
use crate::data::{columnar, shards, text};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use tch::Kind;

#[derive(Debug, Clone, serde::Serialize)]
pub struct Scored {
    pub run: String,
    pub model: String,
    pub checkpoint: PathBuf,
    pub checkpoint_sha256: String,
    pub data: PathBuf,
    pub data_sha256: String,
    pub texts: usize,
    pub rows: i64,
    pub tokens: i64,
    pub n_ctx: i64,
    pub mean_ce: f64,
    pub perplexity: f64,
    pub seconds: f64,
    pub device: String,
}

/// The texts of a file: JSON lines or parquet by extension (`field` of each row), else plain
/// text split at the run's story marker.
pub fn read_texts(path: &Path, field: &str, marker: &str) -> Result<Vec<String>> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase();
    let texts = match ext.as_str() {
        "jsonl" | "json" => columnar::read_column(path, columnar::Format::Jsonl, field)?,
        "parquet" => columnar::read_column(path, columnar::Format::Parquet, field)?,
        _ => text::read_stories(path, marker, false)?,
    };
    let texts: Vec<String> = texts.into_iter().filter(|t| !t.trim().is_empty()).collect();
    anyhow::ensure!(!texts.is_empty(), "{}: no non-empty text to score", path.display());
    Ok(texts)
}

pub fn eval(m: &Loaded, data: &Path, field: &str, batch: i64, cache: &Path) -> Result<Scored> {
    anyhow::ensure!(batch >= 1, "--batch-size must be at least 1");
    let d = m.config.data();
    let texts = read_texts(data, field, &d.marker).with_context(|| format!("--data {}", data.display()))?;
    let data_sha256 = crate::artifacts::sha256_file(data)?;
    let start = std::time::Instant::now();
    let (enc, _) = shards::encode_cached(&m.tok, &texts, d.n_ctx, d.padding, d.packing, &cache.join("tokens"))?;
    anyhow::ensure!(!enc.is_empty(), "{}: no row of {} tokens to score", data.display(), d.n_ctx);
    let precision = crate::suite::Precision::Fp32;
    let mean_ce = crate::train::evaluate(m.model.as_ref(), &enc, batch, None, m.device, precision);
    let tokens = mm_models::objective_targets(&enc.labels, m.model.objective()).ne(-100).sum(Kind::Int64).int64_value(&[]);
    Ok(Scored {
        run: m.short_id(),
        model: m.config.model().label(),
        checkpoint: m.checkpoint.clone(),
        checkpoint_sha256: m.checkpoint_sha256.clone(),
        data: data.to_path_buf(),
        data_sha256,
        texts: texts.len(),
        rows: enc.len(),
        tokens,
        n_ctx: d.n_ctx,
        mean_ce,
        perplexity: mean_ce.exp(),
        seconds: start.elapsed().as_secs_f64(),
        device: crate::device::describe(m.device),
    })
}

/// A small report of several scores: README.md and eval.json in `out` (a new folder).
pub fn write_report(out: &Path, scores: &[Scored]) -> Result<()> {
    if out.exists() {
        anyhow::bail!("--out {}: already exists; give a new folder (an eval report never replaces one)", out.display());
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut md = String::from("# Evaluation on given text\n\nMean cross entropy (natural log) per non-pad target token, and perplexity = exp(CE), with each run's own tokenizer, n_ctx, padding and packing.\n\n");
    md.push_str("| run | model | data | texts | rows | tokens | CE | perplexity | device |\n|---|---|---|---|---|---|---|---|---|\n");
    for s in scores {
        md.push_str(&format!(
            "| `{}` | {} | `{}` (sha256 `{}`) | {} | {} | {} | {:.4} | {:.2} | {} |\n",
            s.run,
            s.model,
            s.data.display(),
            &s.data_sha256[..12],
            s.texts,
            s.rows,
            s.tokens,
            s.mean_ce,
            s.perplexity,
            s.device
        ));
    }
    md.push_str("\nCheckpoints: ");
    md.push_str(&scores.iter().map(|s| format!("`{}` (sha256 `{}`)", s.checkpoint.display(), &s.checkpoint_sha256[..12])).collect::<Vec<_>>().join(", "));
    md.push('\n');
    crate::artifacts::write_atomic(&out.join("eval.json"), serde_json::to_string_pretty(scores)?.as_bytes())?;
    crate::artifacts::write_atomic(&out.join("README.md"), md.as_bytes())?;
    Ok(())
}
