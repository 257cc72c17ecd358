//! `harness eval`: a run's mean cross entropy and perplexity on any text file, with the run's
//! own tokenizer, n_ctx, padding and packing (as its eval split was scored), over every non-pad
//! target its objective predicts.
use super::Loaded;
use crate::data::rows::{Rows, TokenRows};
use crate::data::{shards, Corpus};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;

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

pub fn eval(m: &Loaded, data: &Path, field: &str, batch: i64, cache: &Path) -> Result<Scored> {
    anyhow::ensure!(batch >= 1, "--batch-size must be at least 1");
    let d = m.config.data();
    // The file is streamed: hashed and scanned, then encoded into a cached shard (or found in
    // it), and scored a batch at a time.
    let file = crate::suite::DataConfig::for_file(data, Some(field), &d.marker, false);
    let corpus = Corpus::open(&file)
        .map_err(|e| match e {
            crate::data::DataError::TooFew { .. } => {
                anyhow::anyhow!("{}: no non-empty text to score", data.display())
            }
            e => anyhow::Error::new(e),
        }).with_context(|| format!("--data {}", data.display()))?;
    let data_sha256 = corpus.inputs.all().into_values().next().unwrap_or_default();
    let start = std::time::Instant::now();
    let (shard, _) = shards::encode_cached(&m.tok, &corpus.train.text_sha256, || corpus.train_docs(), &cache.join("tokens"))?;
    let rows = TokenRows::new(Arc::new(shard), d.n_ctx, d.packing, d.padding, m.tok.pad_id);
    anyhow::ensure!(!rows.is_empty(), "{}: no row of {} tokens to score", data.display(), d.n_ctx);
    let precision = crate::suite::Precision::Fp32;
    let scored = crate::train::evaluate(m.model.as_ref(), &rows, batch, None, m.device, precision)?;
    anyhow::ensure!(
        scored.targets > 0,
        "{}: no token to score: each text is at most one token with this run's tokenizer (a scored token needs one before it); give longer texts",
        data.display()
    );
    Ok(Scored {
        run: m.short_id(),
        model: m.config.model().label(),
        checkpoint: m.checkpoint.clone(),
        checkpoint_sha256: m.checkpoint_sha256.clone(),
        data: data.to_path_buf(),
        data_sha256,
        texts: corpus.train.docs,
        rows: rows.len() as i64,
        tokens: scored.targets as i64,
        n_ctx: d.n_ctx,
        mean_ce: scored.mean,
        perplexity: scored.mean.exp(),
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
