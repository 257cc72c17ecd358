//! `harness generate`: prompts continued by a trained model.
use super::{device_arg, print};
use anyhow::{Context, Result};
use harness::inference::{self, generate};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Generate {
    /// A run folder, a checkpoint file or a run id (6+ characters).
    target: String,
    /// A prompt (repeatable).
    #[arg(long)]
    prompt: Vec<String>,
    /// A file of prompts, one per line (blank lines skipped).
    #[arg(long)]
    prompts: Option<PathBuf>,
    #[arg(long, default_value_t = 64)]
    max_new_tokens: usize,
    /// 0: greedy.
    #[arg(long, default_value_t = 0.0)]
    temperature: f64,
    #[arg(long)]
    top_k: Option<i64>,
    #[arg(long)]
    top_p: Option<f64>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Keep generating past the end-of-text token.
    #[arg(long)]
    ignore_eos: bool,
    /// Recompute the whole prefix for every token instead of the incremental decoder (a
    /// check: the text is the same, only slower).
    #[arg(long)]
    recompute: bool,
    /// The run whose config and tokenizer a checkpoint file outside a run folder uses.
    #[arg(long)]
    model_of: Option<String>,
    #[arg(long, default_value = "results")]
    results: PathBuf,
    #[arg(long, value_name = "auto|cpu|cuda", default_value = "auto")]
    device: String,
    /// One JSON object per prompt (ids, text, timing) instead of text.
    #[arg(long)]
    json: bool,
}

impl Generate {
    pub fn run(self) -> Result<()> {
        let Generate { target, prompt, prompts, max_new_tokens, temperature, top_k, top_p, seed, ignore_eos, recompute, model_of, results, device, json } = self;
        let mut all = prompt;
        if let Some(f) = &prompts {
            let text = harness::artifacts::read_regular_string(f).with_context(|| format!("--prompts {}", f.display()))?;
            all.extend(text.lines().filter(|l| !l.trim().is_empty()).map(String::from));
        }
        anyhow::ensure!(!all.is_empty(), "no prompt: give --prompt TEXT (repeatable) or --prompts FILE");
        let sampling = generate::Sampling { temperature, top_k, top_p };
        sampling.check()?;
        let (dir, ckpt) = inference::resolve(&target, &results, model_of.as_deref())?;
        let m = inference::load(&dir, &ckpt, device_arg(&device)?)?;
        let out = generate::generate(&m, &all, max_new_tokens, &sampling, seed, recompute, ignore_eos)?;
        let mut text = String::new();
        if !json {
            text.push_str(&format!("{} on {}, {}, seed {seed}{}\n", m.label(), harness::device::describe(m.device), sampling.describe(), if recompute { ", full recompute" } else { "" }));
        }
        for g in &out {
            if json {
                text.push_str(&serde_json::to_string(g)?);
                text.push('\n');
            } else {
                text.push_str(&format!(
                    "\n{}\u{2016}{}\n[{} new tokens in {:.3} s, {:.1} tokens/s, stopped: {}]\n",
                    g.prompt,
                    g.continuation,
                    g.new_ids.len(),
                    g.seconds,
                    g.tokens_per_s,
                    serde_json::to_value(g.stop)?.as_str().unwrap_or_default()
                ));
            }
        }
        print(&text);
        Ok(())
    }
}
