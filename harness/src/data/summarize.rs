//! `harness data summarize`: one-sentence summaries of stories, produced the way the paper's
//! were (PAPER.md B.1: an instruction-tuned LLM, Llama-3-8B-Instruct there, with the reference's
//! system and user messages), through any OpenAI-compatible chat endpoint (a llama.cpp server,
//! vLLM, ...). Resumable: results are appended as JSON lines, and a rerun asks only for the
//! stories not yet summarized (matched by index and the story's sha256). Rate-limited.
use crate::artifacts::{sha256_bytes, sha256_file, write_atomic};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The reference's messages (`pc/generate_retrieval.py`).
pub const SYSTEM: &str = "You are an assistant for creating summaries for short stories.";
pub const USER_PREFIX: &str = "Give a brief one-sentence summary of the following story with no other text: ";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    pub index: usize,
    pub story_sha256: String,
    pub summary: String,
    pub model: String,
}

pub struct Summarizer {
    /// Base URL, e.g. http://127.0.0.1:8080/v1 (`/chat/completions` is appended).
    pub endpoint: String,
    pub model: String,
    pub api_key: Option<String>,
    /// At most this many requests per second (0 = no limit).
    pub rate: f64,
    pub timeout: Duration,
    pub retries: usize,
}

/// What a summarize call did.
#[derive(Debug, Serialize)]
pub struct Outcome {
    pub requested: usize,
    pub reused: usize,
    pub total: usize,
    pub output_sha256: String,
}

fn done_so_far(out: &Path) -> BTreeMap<usize, Summary> {
    let Ok(text) = std::fs::read_to_string(out) else { return BTreeMap::new() };
    // A line cut by a crash does not parse and is simply asked for again.
    text.lines().filter_map(|l| serde_json::from_str::<Summary>(l).ok()).map(|s| (s.index, s)).collect()
}

impl Summarizer {
    fn ask(&self, agent: &ureq::Agent, story: &str) -> Result<String> {
        let body = serde_json::json!({
            "model": self.model,
            "messages": [
                { "role": "system", "content": SYSTEM },
                { "role": "user", "content": format!("{USER_PREFIX}{story}") },
            ],
        });
        let url = format!("{}/chat/completions", self.endpoint.trim_end_matches('/'));
        let mut last = None;
        for attempt in 0..=self.retries {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(500 * (1 << attempt.min(5))));
            }
            let mut req = agent.post(&url).timeout(self.timeout);
            if let Some(key) = &self.api_key {
                req = req.set("Authorization", &format!("Bearer {key}"));
            }
            match req.send_json(body.clone()) {
                Ok(resp) => {
                    let v: serde_json::Value = resp.into_json().context("the endpoint's reply is not JSON")?;
                    let text = v["choices"][0]["message"]["content"]
                        .as_str()
                        .with_context(|| format!("no choices[0].message.content in the reply: {v}"))?;
                    return Ok(text.trim().to_string());
                }
                // A client error will not get better by retrying.
                Err(ureq::Error::Status(code, resp)) if (400..500).contains(&code) && code != 429 => {
                    bail!("{url}: HTTP {code}: {}", resp.into_string().unwrap_or_default())
                }
                Err(e) => last = Some(e.to_string()),
            }
        }
        bail!("{url}: no answer after {} tries: {}", self.retries + 1, last.unwrap_or_default())
    }

    /// Summarizes `stories` into `out` (JSON lines), skipping those already there.
    pub fn run(&self, stories: &[String], out: &Path) -> Result<Outcome> {
        let mut done = done_so_far(out);
        // Entries whose story changed, or that another model wrote, are redone.
        done.retain(|i, s| s.model == self.model && stories.get(*i).is_some_and(|st| sha256_bytes(st.as_bytes()) == s.story_sha256));
        let reused = done.len();
        let agent = ureq::AgentBuilder::new().build();
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(out).with_context(|| format!("opening {}", out.display()))?;
        let gap = if self.rate > 0.0 { Duration::from_secs_f64(1.0 / self.rate) } else { Duration::ZERO };
        let mut requested = 0;
        let bar = indicatif::ProgressBar::new((stories.len() - reused) as u64);
        for (i, story) in stories.iter().enumerate() {
            if done.contains_key(&i) {
                continue;
            }
            let started = Instant::now();
            let summary = self.ask(&agent, story).with_context(|| format!("story {i}"))?;
            let s = Summary { index: i, story_sha256: sha256_bytes(story.as_bytes()), summary, model: self.model.clone() };
            writeln!(file, "{}", serde_json::to_string(&s)?)?;
            file.flush()?;
            done.insert(i, s);
            requested += 1;
            bar.inc(1);
            if let Some(wait) = gap.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        bar.finish_and_clear();
        drop(file);
        // Rewrite in index order (drops superseded lines), atomically, then hash.
        let body: String = done.values().map(|s| serde_json::to_string(s).expect("serializes") + "\n").collect();
        write_atomic(out, body.as_bytes())?;
        let output_sha256 = sha256_file(out)?;
        let meta = serde_json::json!({
            "endpoint": self.endpoint, "model": self.model, "system": SYSTEM, "user_prefix": USER_PREFIX,
            "stories": stories.len(), "output_sha256": output_sha256,
        });
        write_atomic(&sidecar(out), serde_json::to_string_pretty(&meta)?.as_bytes())?;
        Ok(Outcome { requested, reused, total: done.len(), output_sha256 })
    }
}

/// `<out>.meta.json`: how the summaries were made, with the output's sha256.
pub fn sidecar(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(".meta.json");
    out.with_file_name(name)
}
