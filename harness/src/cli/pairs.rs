//! `harness data pairs`: the paper's summary -> passage sets: export the passages, summarise them
//! through a chat endpoint, join them into the pairs file (docs/summary-sets.md).
use anyhow::{Context, Result};
use harness::data::{pairset, summarize};
use std::path::PathBuf;

#[derive(clap::Subcommand)]
pub enum Pairs {
    /// Writes the passages of a set as JSON lines: `--count` documents after the first `--skip`
    /// (the CLM test rows), FineWeb and FineMath cut to their first 512 tokens of the paper's
    /// tokenizer, with the text the reference's summariser was given.
    Export {
        /// The set whose rows, cut and prompt text the reference used.
        #[arg(long, value_enum)]
        set: harness::data::summarize::PromptSet,
        /// The data set's files in order (.parquet, .jsonl with --text-column, or
        /// marker-separated text); read as one stream of documents.
        #[arg(long, required = true, num_args = 1..)]
        input: Vec<PathBuf>,
        #[arg(long, default_value = "text")]
        text_column: String,
        #[arg(long, default_value = "<|endoftext|>")]
        marker: String,
        /// The paper's tokenizer (FineWeb, FineMath): a tokenizer.json.
        #[arg(long)]
        tokenizer: Option<PathBuf>,
        /// Documents before the passages (default: the set's, 50,000 test rows for FineWeb and
        /// FineMath, 0 for TinyStories).
        #[arg(long)]
        skip: Option<usize>,
        /// Passages (the paper: 200,000; 400,000 for FineMath's larger set).
        #[arg(long)]
        count: usize,
        #[arg(long)]
        out: PathBuf,
        /// Overwrite an --out that is not a passages file.
        #[arg(long)]
        replace: bool,
    },
    /// Summarises exported passages (or one shard of them), resumably: rerun to continue.
    Summarize {
        /// The passages file `pairs export` wrote; its set decides the prompt.
        #[arg(long)]
        passages: PathBuf,
        /// Summaries, one JSON line per passage.
        #[arg(long)]
        out: PathBuf,
        /// Base URL of the chat API, e.g. http://127.0.0.1:8080/v1 (OPENAI_API_KEY is sent if set).
        #[arg(long)]
        endpoint: String,
        #[arg(long, default_value = "llama-3-8b-instruct")]
        model: String,
        /// This process's part, i/k from 0: contiguous rows, one shard per server or GPU.
        #[arg(long, default_value = "0/1")]
        shard: String,
        /// Requests in flight at once.
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
        /// Requests started per second at most (0: no limit).
        #[arg(long, default_value_t = 0.0, allow_negative_numbers = true, value_parser = non_negative_rate)]
        rate: f64,
        /// Seconds a request may take before it is retried.
        #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
        timeout_s: u64,
        /// Tries after the first on 429, 5xx, time-outs and malformed replies.
        #[arg(long, default_value_t = 6)]
        retries: usize,
        /// Sampling, sent with every request (defaults: llama-cpp-python's create_chat_completion,
        /// which the paper called; the server's own defaults differ).
        #[arg(long, default_value_t = 0.2)]
        temperature: f64,
        #[arg(long, default_value_t = 0.95)]
        top_p: f64,
        #[arg(long, default_value_t = 40)]
        top_k: i64,
        #[arg(long, default_value_t = 0.05)]
        min_p: f64,
        #[arg(long, default_value_t = 1.0)]
        repeat_penalty: f64,
        #[arg(long)]
        max_tokens: Option<u64>,
        #[arg(long)]
        seed: Option<u64>,
        /// Only the first N passages of the shard.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Joins the passages with every shard's summaries into a parquet pairs file (query,
    /// passage, row, split, pair_sha256, model, prompt_set, sampling) and its provenance.
    Join {
        #[arg(long)]
        passages: PathBuf,
        #[arg(long, required = true, num_args = 1..)]
        summaries: Vec<PathBuf>,
        /// The last N pairs are the test split (the paper: 20,000).
        #[arg(long)]
        test_pairs: usize,
        #[arg(long)]
        out: PathBuf,
        /// Overwrite an --out that this command did not write.
        #[arg(long)]
        replace: bool,
    },
}

impl Pairs {
    pub fn run(self) -> Result<()> {
        match self {
            Pairs::Export { set, input, text_column, marker, tokenizer, skip, count, out, replace } => {
                let tok = match &tokenizer {
                    Some(p) => Some(tokenizers::Tokenizer::from_file(p).map_err(|e| anyhow::anyhow!("--tokenizer {}: {e}", p.display()))?),
                    None => None,
                };
                let e = pairset::Export {
                    inputs: &input,
                    text_column: &text_column,
                    marker: &marker,
                    prompts: set,
                    tokenizer: tok.as_ref(),
                    skip: skip.unwrap_or(set.default_skip()),
                    count,
                };
                let n = pairset::export(&e, &out, replace).with_context(|| format!("data pairs export into {}", out.display()))?;
                println!("{n} {} passages (rows {} .. {}) in {}", set.name(), e.skip, e.skip + n - 1, out.display());
            }
            Pairs::Summarize {
                passages, out, endpoint, model, shard, concurrency, rate, timeout_s, retries, temperature, top_p, top_k, min_p,
                repeat_penalty, max_tokens, seed, limit,
            } => {
                let meta: serde_json::Value = std::fs::read_to_string(summarize::sidecar(&passages))
                    .ok()
                    .and_then(|t| serde_json::from_str(&t).ok())
                    .with_context(|| format!("{}: not found or unreadable; `harness data pairs export` writes it beside the passages", summarize::sidecar(&passages).display()))?;
                let prompts: summarize::PromptSet = serde_json::from_value(meta["prompt_set"].clone())
                    .with_context(|| format!("{}: no prompt_set", summarize::sidecar(&passages).display()))?;
                let (i, k) = shard
                    .split_once('/')
                    .and_then(|(i, k)| Some((i.parse::<usize>().ok()?, k.parse::<usize>().ok()?)))
                    .with_context(|| format!("--shard {shard}: give i/k, e.g. 0/4"))?;
                pairset::guard_output(&out, &[&passages, &summarize::sidecar(&passages)], |_| true, false)?;
                let all = pairset::read_passages(&passages)?;
                let mut jobs: Vec<summarize::Job> = summarize::shard(&all, i, k)?
                    .into_iter()
                    .map(|p| summarize::Job { row: p.row, text: p.prompt_text, passage_sha256: p.passage_sha256 })
                    .collect();
                if let Some(n) = limit {
                    jobs.truncate(n);
                }
                let s = summarize::Summarizer {
                    endpoint,
                    model,
                    api_key: std::env::var("OPENAI_API_KEY").ok(),
                    prompts,
                    sampling: summarize::Sampling { temperature, top_p, top_k, min_p, repeat_penalty, max_tokens, seed },
                    concurrency,
                    rate,
                    timeout: std::time::Duration::from_secs(timeout_s),
                    retries,
                    backoff: std::time::Duration::from_millis(500),
                    progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
                };
                let o = s.run(&jobs, &out).with_context(|| format!("summarizing shard {shard} of {} into {}", passages.display(), out.display()))?;
                println!(
                    "{} summaries in {} ({} asked now in {:.1} s, {:.2}/s; {} reused); retried: {} x 429, {} x 5xx, {} x time-out or no connection, {} x malformed; sha256 {}",
                    o.total,
                    out.display(),
                    o.requested,
                    o.wall_s,
                    o.requested as f64 / o.wall_s.max(1e-9),
                    o.reused,
                    o.retried_429,
                    o.retried_5xx,
                    o.retried_timeout,
                    o.retried_malformed,
                    o.output_sha256
                );
            }
            Pairs::Join { passages, summaries, test_pairs, out, replace } => {
                let st = pairset::join(&passages, &summaries, test_pairs, &out, replace).with_context(|| format!("data pairs join into {}", out.display()))?;
                println!(
                    "{} pairs ({} train, {} test) in {}; {} empty and {} duplicate summaries; summary words min/p10/p50/p90/max {:?}; provenance in {}",
                    st.pairs,
                    st.train,
                    st.test,
                    out.display(),
                    st.empty_summaries,
                    st.duplicate_summaries,
                    st.summary_words,
                    pairset::provenance_path(&out).display()
                );
            }
        }
        Ok(())
    }
}

/// `--rate`: requests per second, 0 for no limit.
fn non_negative_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r >= 0.0 => Ok(r),
        Ok(_) => Err("give requests per second, 0 or more (0: no limit)".into()),
        Err(e) => Err(format!("{e}; give requests per second, 0 or more (0: no limit)")),
    }
}
