//! Summaries written by an instruction-tuned LLM, made the way the paper made its retrieval
//! queries (PAPER.md B.1-B.3: Llama-3-8B-Instruct Q8_0 through llama-cpp-python, library-default
//! sampling, the reference's system and user messages), through any OpenAI-compatible chat
//! endpoint (llama-cpp-python's or llama.cpp's server, vLLM, ...).
//!
//! Several requests are in flight at once (`concurrency`); a request that fails in a way that may
//! pass (HTTP 429 or 5xx, a time-out, a reply that is not the expected JSON) is retried with
//! exponential backoff; every finished summary is appended to the output as one JSON line at
//! once, so a killed run loses at most the requests in flight, and a rerun asks only for the rows
//! not yet there (matched by row, passage sha256, model, prompt set and sampling).
use crate::artifacts::{sha256_bytes, sha256_file, write_atomic};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

/// The system message of every summary set (`pc/generate_retrieval.py` @ c1b7baa,
/// `mixer_lm/generate_retrieval.py` and `mixer_lm/retrieval_generation/gen.py` @ 2270414).
pub const SYSTEM: &str = "You are an assistant for creating summaries for short stories.";

/// The data sets whose prompts the reference code fixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum PromptSet {
    /// One-sentence summaries of TinyStories stories (B.1), the story as it is.
    Tinystories,
    /// One-sentence summaries of FineWeb-edu documents' first 512 tokens (B.2).
    Fineweb,
    /// Few-word summaries of FineMath documents' first 512 tokens (B.3).
    Finemath,
}

impl PromptSet {
    /// The user message for a text (the reference's f-strings).
    pub fn user(self, text: &str) -> String {
        match self {
            Self::Tinystories => format!("Give a brief one-sentence summary of the following story with no other text: {text}"),
            Self::Fineweb => format!(
                "Give a brief one-sentence summary of the following with no other output, do not begin with 'Here is a summary...'. Text: {text}"
            ),
            Self::Finemath => format!(
                "Give a brief few-word summary of the following with no other output, do not begin with 'Here is a summary...'. Text: {text}"
            ),
        }
    }

    /// Where the prompt comes from in blbadger/maskedmixers.
    pub fn source(self) -> &'static str {
        match self {
            Self::Tinystories => "pc/generate_retrieval.py @ c1b7baa",
            Self::Fineweb => "mixer_lm/generate_retrieval.py @ 2270414",
            Self::Finemath => "mixer_lm/retrieval_generation/gen.py @ 2270414",
        }
    }

    /// The text the reference put into the prompt for a passage. TinyStories: the story. FineWeb
    /// and FineMath: `tokenizer.decode(input_ids).strip('<|end_of_text|>')`, Python's `str.strip`
    /// with a string argument, which removes every leading and trailing character found in it
    /// (`<|end_ofxt>`), not the pad token alone: "often the ..." loses its first word, "... is best"
    /// its final t. The summariser saw that text; the passage stored in the pairs is whole.
    pub fn prompt_text(self, passage: &str) -> String {
        match self {
            Self::Tinystories => passage.to_string(),
            Self::Fineweb | Self::Finemath => py_strip(passage, "<|end_of_text|>"),
        }
    }

    /// Rows before the passages: the test split the CLM runs held out (B.2, B.3: the first
    /// 50,000 rows), none for TinyStories (its first 200,000 train stories, B.1).
    pub fn default_skip(self) -> usize {
        match self {
            Self::Tinystories => 0,
            Self::Fineweb | Self::Finemath => 50_000,
        }
    }

    /// Passages are a document's first 512 tokens of the paper's tokenizer (B.2, B.3), decoded;
    /// TinyStories passages are whole stories.
    pub fn passage_tokens(self) -> Option<usize> {
        match self {
            Self::Tinystories => None,
            Self::Fineweb | Self::Finemath => Some(512),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Tinystories => "tinystories",
            Self::Fineweb => "fineweb",
            Self::Finemath => "finemath",
        }
    }
}

/// Python's `s.strip(chars)`.
pub fn py_strip(s: &str, chars: &str) -> String {
    s.trim_matches(|c| chars.contains(c)).to_string()
}

/// The sampling parameters sent with every request. The defaults are llama-cpp-python's
/// `Llama.create_chat_completion` defaults (0.3.36), which the reference called directly; its
/// OpenAI-compatible server has other defaults (temperature 0.8, repeat_penalty 1.1), so they
/// are always sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    pub temperature: f64,
    pub top_p: f64,
    pub top_k: i64,
    pub min_p: f64,
    pub repeat_penalty: f64,
    /// None: the server's (llama-cpp-python: until the end token or the context).
    pub max_tokens: Option<u64>,
    pub seed: Option<u64>,
}

impl Default for Sampling {
    fn default() -> Self {
        Self { temperature: 0.2, top_p: 0.95, top_k: 40, min_p: 0.05, repeat_penalty: 1.0, max_tokens: None, seed: None }
    }
}

/// One text to summarise: its row in the data set, the prompt text, the passage's sha256.
#[derive(Debug, Clone)]
pub struct Job {
    pub row: usize,
    pub text: String,
    pub passage_sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    pub row: usize,
    pub passage_sha256: String,
    pub summary: String,
    pub model: String,
    pub prompts: PromptSet,
    pub sampling: Sampling,
}

pub struct Summarizer {
    /// Base URL, e.g. http://127.0.0.1:8080/v1 (`/chat/completions` is appended).
    pub endpoint: String,
    pub model: String,
    pub api_key: Option<String>,
    pub prompts: PromptSet,
    pub sampling: Sampling,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// At most this many requests started per second, all workers together (0 = no limit).
    pub rate: f64,
    pub timeout: Duration,
    /// Tries after the first, per request.
    pub retries: usize,
    /// The first backoff; each retry doubles it (capped at 32 x).
    pub backoff: Duration,
    pub progress: bool,
}

/// What a summarise call did, with the retries by cause.
#[derive(Debug, Default, Serialize, Clone, PartialEq)]
pub struct Outcome {
    pub requested: usize,
    pub reused: usize,
    pub total: usize,
    pub retried_429: usize,
    pub retried_5xx: usize,
    pub retried_timeout: usize,
    pub retried_malformed: usize,
    pub wall_s: f64,
    pub output_sha256: String,
}

/// Why one try failed.
enum Failure {
    /// Worth another try, with the counter it goes to.
    Retry(&'static str, String),
    Fatal(String),
}

/// The summaries already in `out`. A last line cut by a kill does not parse and is asked for
/// again; any other line that is not a summary means the file is not this command's: refused.
fn done_so_far(out: &Path) -> Result<BTreeMap<usize, Summary>> {
    let text = match crate::artifacts::read_regular_string(out) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            bail!("{} is not a summaries file (not UTF-8 text: a parquet file?): choose another --out", out.display())
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", out.display())),
    };
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut done = BTreeMap::new();
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_str::<Summary>(line) {
            Ok(s) => {
                done.insert(s.row, s);
            }
            Err(_) if i + 1 == lines.len() && !line.ends_with('\n') => {}
            Err(_) => bail!(
                "{} line {} is not a summary this command wrote: the file is not a summaries file (choose another --out, or remove it)",
                out.display(),
                i + 1
            ),
        }
    }
    Ok(done)
}

impl Summarizer {
    fn body(&self, text: &str) -> serde_json::Value {
        let s = &self.sampling;
        let mut body = serde_json::json!({
            "model": self.model,
            "messages": [
                { "role": "system", "content": SYSTEM },
                { "role": "user", "content": self.prompts.user(text) },
            ],
            "temperature": s.temperature, "top_p": s.top_p, "top_k": s.top_k, "min_p": s.min_p,
            "repeat_penalty": s.repeat_penalty,
        });
        if let Some(m) = s.max_tokens {
            body["max_tokens"] = m.into();
        }
        if let Some(seed) = s.seed {
            body["seed"] = seed.into();
        }
        body
    }

    fn try_once(&self, agent: &ureq::Agent, url: &str, body: &serde_json::Value) -> Result<String, Failure> {
        let mut req = agent.post(url).timeout(self.timeout);
        if let Some(key) = &self.api_key {
            req = req.set("Authorization", &format!("Bearer {key}"));
        }
        match req.send_json(body.clone()) {
            Ok(resp) => {
                let text = resp.into_string().map_err(|e| Failure::Retry("timeout", format!("reading the reply: {e}")))?;
                let v: serde_json::Value =
                    serde_json::from_str(&text).map_err(|e| Failure::Retry("malformed", format!("the reply is not JSON ({e}): {:.200}", text)))?;
                match v["choices"][0]["message"]["content"].as_str() {
                    Some(content) if !content.trim().is_empty() => Ok(content.trim().to_string()),
                    Some(_) => Err(Failure::Retry("malformed", "an empty summary".into())),
                    None => Err(Failure::Retry("malformed", format!("no choices[0].message.content in the reply: {:.200}", text))),
                }
            }
            Err(ureq::Error::Status(429, _)) => Err(Failure::Retry("429", "HTTP 429 (too many requests)".into())),
            Err(ureq::Error::Status(code, resp)) if code >= 500 => {
                Err(Failure::Retry("5xx", format!("HTTP {code}: {:.200}", resp.into_string().unwrap_or_default())))
            }
            // A client error will not get better by retrying.
            Err(ureq::Error::Status(code, resp)) => Err(Failure::Fatal(format!("HTTP {code}: {}", resp.into_string().unwrap_or_default()))),
            Err(e) => Err(Failure::Retry("timeout", e.to_string())),
        }
    }

    /// The summaries already in `out` that still hold for `jobs` (the same passage, model,
    /// prompt set and sampling; other shards' rows kept as they are), and how many of this
    /// shard's they are. A last line cut by a kill is dropped from the file first.
    fn resume(&self, jobs: &[Job], out: &Path) -> Result<(BTreeMap<usize, Summary>, usize)> {
        let mut done = done_so_far(out)?;
        let wanted: BTreeMap<usize, &Job> = jobs.iter().map(|j| (j.row, j)).collect();
        // This shard's entries for changed passages, another model, prompt set or sampling are
        // redone; rows of other shards in the same file are kept as they are.
        done.retain(|row, s| {
            wanted.get(row).is_none_or(|j| {
                j.passage_sha256 == s.passage_sha256 && s.model == self.model && s.prompts == self.prompts && s.sampling == self.sampling
            })
        });
        let reused = done.keys().filter(|r| wanted.contains_key(r)).count();
        // A last line cut by a kill is dropped (its row is asked for again): the file keeps whole
        // lines only, so an interrupted rerun never leaves a broken line inside it.
        if let Ok(bytes) = std::fs::read(out) {
            if bytes.last().is_some_and(|c| *c != b'\n') {
                let keep = bytes.iter().rposition(|c| *c == b'\n').map_or(0, |i| i + 1);
                let f = std::fs::OpenOptions::new().write(true).open(out).with_context(|| format!("opening {}", out.display()))?;
                f.set_len(keep as u64).with_context(|| format!("dropping the cut last line of {}", out.display()))?;
            }
        }
        Ok((done, reused))
    }

    /// One passage's summary: asked at most `retries + 1` times, at the rate's next free slot,
    /// backing off between tries; the error says the row, the endpoint and the last failure.
    fn ask(&self, job: &Job, agent: &ureq::Agent, url: &str, (gap, slot): (Duration, &Mutex<Instant>), counts: &BTreeMap<&str, AtomicUsize>) -> Result<Summary, String> {
        let body = self.body(&job.text);
        let mut result = Err(String::new());
        for attempt in 0..=self.retries {
            if attempt > 0 {
                std::thread::sleep(self.backoff * (1u32 << (attempt - 1).min(5)));
            }
            if !gap.is_zero() {
                let wait = {
                    let mut s = slot.lock().expect("the rate slot");
                    let now = Instant::now();
                    let at = (*s).max(now);
                    *s = at + gap;
                    at - now
                };
                std::thread::sleep(wait);
            }
            match self.try_once(agent, url, &body) {
                Ok(summary) => {
                    result = Ok(Summary {
                        row: job.row,
                        passage_sha256: job.passage_sha256.clone(),
                        summary,
                        model: self.model.clone(),
                        prompts: self.prompts,
                        sampling: self.sampling.clone(),
                    });
                    break;
                }
                Err(Failure::Fatal(e)) => {
                    result = Err(format!("row {}: {url}: {e}", job.row));
                    break;
                }
                Err(Failure::Retry(kind, e)) => {
                    counts[kind].fetch_add(1, Ordering::SeqCst);
                    result = Err(format!("row {}: {url}: no answer after {} tries; the last: {e}", job.row, attempt + 1));
                }
            }
        }
        result
    }

    /// Summarises `jobs` into `out` (JSON lines), skipping those already there; the rows of
    /// `jobs` are this shard's.
    pub fn run(&self, jobs: &[Job], out: &Path) -> Result<Outcome> {
        anyhow::ensure!(self.concurrency >= 1, "--concurrency must be at least 1");
        let started = Instant::now();
        let _lock = lock_out(out)?;
        let (mut done, reused) = self.resume(jobs, out)?;
        let pending: Vec<&Job> = jobs.iter().filter(|j| !done.contains_key(&j.row)).collect();
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(out).with_context(|| format!("opening {}", out.display()))?;
        let url = format!("{}/chat/completions", self.endpoint.trim_end_matches('/'));
        let agent = ureq::AgentBuilder::new().max_idle_connections_per_host(self.concurrency).build();
        let bar = if self.progress { indicatif::ProgressBar::new(pending.len() as u64) } else { indicatif::ProgressBar::hidden() };
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} summaries, {per_sec}, ETA {eta}").expect("a valid template"),
        );
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let counts: BTreeMap<&str, AtomicUsize> = ["429", "5xx", "timeout", "malformed"].into_iter().map(|k| (k, AtomicUsize::new(0))).collect();
        let gap = if self.rate > 0.0 { Duration::from_secs_f64(1.0 / self.rate) } else { Duration::ZERO };
        let slot = Mutex::new(Instant::now());
        let (tx, rx) = mpsc::channel::<Result<Summary, String>>();
        let mut requested = 0;
        let mut first_error = None;
        std::thread::scope(|scope| -> Result<()> {
            for _ in 0..self.concurrency.min(pending.len().max(1)) {
                let tx = tx.clone();
                let (next, stop, counts, slot, agent, url, pending) = (&next, &stop, &counts, &slot, &agent, url.as_str(), &pending);
                scope.spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        let Some(job) = pending.get(next.fetch_add(1, Ordering::SeqCst)) else { break };
                        let result = self.ask(job, agent, url, (gap, slot), counts);
                        if result.is_err() {
                            stop.store(true, Ordering::SeqCst);
                        }
                        if tx.send(result).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(tx);
            // The writer: one line per finished summary, flushed at once.
            for result in rx {
                match result {
                    Ok(s) => {
                        writeln!(file, "{}", serde_json::to_string(&s)?)?;
                        file.flush()?;
                        done.insert(s.row, s);
                        requested += 1;
                        bar.inc(1);
                    }
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            Ok(())
        })?;
        bar.finish_and_clear();
        drop(file);
        let count = |k: &str| counts[k].load(Ordering::SeqCst);
        if let Some(e) = first_error {
            bail!("{e} ({requested} summaries written this run, {} in all, kept in {}; rerun to continue)", done.len(), out.display());
        }
        // Rewrite in row order (drops superseded lines), atomically, then hash.
        let body: String = done.values().map(|s| serde_json::to_string(s).expect("serializes") + "\n").collect();
        write_atomic(out, body.as_bytes())?;
        let output_sha256 = sha256_file(out)?;
        let outcome = Outcome {
            requested,
            reused,
            total: done.len(),
            retried_429: count("429"),
            retried_5xx: count("5xx"),
            retried_timeout: count("timeout"),
            retried_malformed: count("malformed"),
            wall_s: started.elapsed().as_secs_f64(),
            output_sha256,
        };
        let meta = serde_json::json!({
            "endpoint": self.endpoint, "model": self.model, "system": SYSTEM, "user_template": self.prompts.user("{text}"),
            "prompt_set": self.prompts, "prompt_source": self.prompts.source(), "sampling": self.sampling,
            "concurrency": self.concurrency, "rows": jobs.len(), "first_row": jobs.first().map(|j| j.row),
            "last_row": jobs.last().map(|j| j.row), "outcome": outcome,
        });
        write_atomic(&sidecar(out), serde_json::to_string_pretty(&meta)?.as_bytes())?;
        Ok(outcome)
    }
}

/// One writer per file: two shards appending to one --out would interleave and each keep only
/// its own rows on the next read.
fn lock_out(out: &Path) -> Result<crate::lock::RunLock> {
    let mut lock_name = out.file_name().unwrap_or_default().to_os_string();
    lock_name.push(".lock");
    Ok(match crate::lock::try_acquire(&out.with_file_name(lock_name)).with_context(|| format!("locking {}", out.display()))? {
        crate::lock::Acquire::Held(l) => l,
        crate::lock::Acquire::Busy(who) => bail!(
            "--out {} is being written by another summarize ({who}): give each shard its own --out (`data pairs join` takes them all)",
            out.display()
        ),
    })
}

/// `<out>.meta.json`: how the summaries were made, with the output's sha256.
pub fn sidecar(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(".meta.json");
    out.with_file_name(name)
}

/// The jobs of shard `i` of `k` (contiguous, in row order; `i` from 0).
pub fn shard<T: Clone>(items: &[T], i: usize, k: usize) -> Result<Vec<T>> {
    anyhow::ensure!(k >= 1 && i < k, "--shard {i}/{k}: give i/k with 0 <= i < k");
    let n = items.len();
    Ok(items[i * n / k..(i + 1) * n / k].to_vec())
}

/// A passage's sha256, as summaries and pairs record it.
pub fn passage_sha256(passage: &str) -> String {
    sha256_bytes(passage.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_strip_removes_characters_not_the_token() {
        assert_eq!(py_strip("often the end<|end_of_text|><|end_of_text|>", "<|end_of_text|>"), " the ");
        assert_eq!(PromptSet::Fineweb.prompt_text("Water is best"), "Water is bes");
        assert_eq!(PromptSet::Tinystories.prompt_text("the end"), "the end");
    }

    #[test]
    fn shards_cover_every_row_once() {
        let rows: Vec<usize> = (0..10).collect();
        let all: Vec<usize> = (0..3).flat_map(|i| shard(&rows, i, 3).unwrap()).collect();
        assert_eq!(all, rows);
        assert!(shard(&rows, 3, 3).is_err());
    }

    #[test]
    fn every_sampling_parameter_is_sent() {
        let s = Summarizer {
            endpoint: "http://x/v1".into(),
            model: "m".into(),
            api_key: None,
            prompts: PromptSet::Finemath,
            sampling: Sampling { seed: Some(3), ..Sampling::default() },
            concurrency: 1,
            rate: 0.0,
            timeout: Duration::from_secs(1),
            retries: 0,
            backoff: Duration::ZERO,
            progress: false,
        };
        let b = s.body("x");
        for (k, v) in [("temperature", 0.2), ("top_p", 0.95), ("min_p", 0.05), ("repeat_penalty", 1.0)] {
            assert_eq!(b[k].as_f64(), Some(v), "{k}");
        }
        assert_eq!(b["top_k"], 40);
        assert_eq!(b["seed"], 3);
        assert!(b.get("max_tokens").is_none());
        assert!(b["messages"][1]["content"].as_str().unwrap().starts_with("Give a brief few-word summary"));
    }
}
