//! `harness bench data`: tokenization throughput (MB/s of UTF-8 text) of this harness's
//! tokenizer path, and of the Python `tokenizers` package's `encode_batch` on the same
//! tokenizer.json and stories, in the same invocation, by thread count.
use crate::data::{text, Corpus, Tok};
use crate::report::table::{Col, Table};
use crate::suite::DataConfig;
use anyhow::{Context, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub struct DataBench {
    pub file: PathBuf,
    pub marker: String,
    pub vocab_size: usize,
    pub repeats: usize,
    pub python: Option<PathBuf>,
    pub cache: PathBuf,
}

#[derive(Debug, Clone)]
pub struct Row {
    pub implementation: String,
    pub threads: usize,
    pub median_s: f64,
    pub mb_per_s: f64,
    pub tokens: u64,
}

const PY: &str = r#"
import json, sys, time
from tokenizers import Tokenizer
tok = Tokenizer.from_file(sys.argv[1])
stories = json.load(open(sys.argv[2], encoding="utf-8"))
repeats = int(sys.argv[3])
tok.encode_batch(stories[:64], add_special_tokens=False)
times = []
for _ in range(repeats):
    t = time.perf_counter()
    enc = tok.encode_batch(stories, add_special_tokens=False)
    times.append(time.perf_counter() - t)
import tokenizers
print(json.dumps({"times": times, "tokens": sum(len(e.ids) for e in enc), "version": tokenizers.__version__}))
"#;

#[derive(Deserialize)]
struct PyOut {
    times: Vec<f64>,
    tokens: u64,
    version: String,
}

impl DataBench {
    pub fn run(&self) -> Result<(Table, Vec<String>)> {
        let stories = text::read_stories(&self.file, &self.marker, true)?;
        let bytes: usize = stories.iter().map(String::len).sum();
        let mb = bytes as f64 / 1e6;
        let cfg: DataConfig = toml::from_str(&format!("source = \"embedded\"\nn_ctx = 512\nvocab_size = {}", self.vocab_size))?;
        let corpus = Corpus { train: stories.clone(), eval: vec![], label: "real", inputs: Default::default() };
        let tok = Tok::for_run(&cfg, &corpus, &self.cache).context("training the tokenizer")?;
        let max_threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads: Vec<usize> = std::iter::successors(Some(1usize), |t| (t * 2 <= max_threads).then_some(t * 2)).collect();
        let mut rows = Vec::new();
        let mut notes = vec![format!(
            "{} stories, {:.2} MB of UTF-8 text from {}; byte-level BPE, vocab {} (tokenizer sha256 {}); median of {} repeats",
            stories.len(),
            mb,
            self.file.display(),
            tok.vocab_size(),
            &tok.sha256[..12],
            self.repeats
        )];
        for &n in &threads {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(n).build()?;
            let mut times = vec![];
            let mut tokens = 0u64;
            pool.install(|| -> Result<()> {
                tok.tokenizer.encode_batch(stories[..64.min(stories.len())].to_vec(), false).map_err(anyhow::Error::msg)?;
                for _ in 0..self.repeats {
                    let t = Instant::now();
                    let enc = tok.tokenizer.encode_batch(stories.clone(), false).map_err(anyhow::Error::msg)?;
                    times.push(t.elapsed().as_secs_f64());
                    tokens = enc.iter().map(|e| e.get_ids().len() as u64).sum();
                }
                Ok(())
            })?;
            let m = crate::stats::median(times).context("no timings (repeats must be at least 1)")?;
            rows.push(Row { implementation: "rust (tokenizers crate, this harness)".into(), threads: n, median_s: m, mb_per_s: mb / m, tokens });
        }
        match self.python_rows(&tok, &stories, &threads, mb) {
            Ok((py, version)) => {
                notes.push(format!("python: tokenizers {version}, `Tokenizer.encode_batch`, threads set with RAYON_NUM_THREADS"));
                rows.extend(py);
            }
            Err(e) => notes.push(format!("python side not measured: {e:#}")),
        }
        let mut t = Table::default();
        t.push("implementation", Col::Str(rows.iter().map(|r| r.implementation.clone()).collect()));
        t.push("threads", Col::Int(rows.iter().map(|r| Some(r.threads as i64)).collect()));
        t.push("median_s", Col::Num(rows.iter().map(|r| Some(r.median_s)).collect()));
        t.push("MB_per_s", Col::Num(rows.iter().map(|r| Some(r.mb_per_s)).collect()));
        t.push("tokens", Col::Int(rows.iter().map(|r| Some(r.tokens as i64)).collect()));
        let ratio = |r: &Row| {
            rows.iter()
                .find(|p| p.implementation.starts_with("python") && p.threads == r.threads)
                .map(|p| r.mb_per_s / p.mb_per_s)
        };
        t.push("rust_over_python", Col::Num(rows.iter().map(|r| if r.implementation.starts_with("rust") { ratio(r) } else { None }).collect()));
        Ok((t, notes))
    }

    fn python_rows(&self, tok: &Tok, stories: &[String], threads: &[usize], mb: f64) -> Result<(Vec<Row>, String)> {
        let python = self.python.clone().unwrap_or_else(|| PathBuf::from("python3"));
        let dir = tempfile_dir()?;
        let tok_path = dir.join("tokenizer.json");
        let stories_path = dir.join("stories.json");
        std::fs::write(&tok_path, &tok.json)?;
        std::fs::write(&stories_path, serde_json::to_string(stories)?)?;
        let mut rows = vec![];
        let mut version = String::new();
        for &n in threads {
            let out = std::process::Command::new(&python)
                .args(["-c", PY])
                .arg(&tok_path)
                .arg(&stories_path)
                .arg(self.repeats.to_string())
                .env("RAYON_NUM_THREADS", n.to_string())
                .env("TOKENIZERS_PARALLELISM", "true")
                .output()
                .with_context(|| format!("running {}", python.display()))?;
            anyhow::ensure!(
                out.status.success(),
                "{} failed (is `tokenizers` installed there? `{} -m pip install tokenizers`): {}",
                python.display(),
                python.display(),
                String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or_default()
            );
            let parsed: PyOut = serde_json::from_slice(&out.stdout).context("reading the python timings")?;
            let m = crate::stats::median(parsed.times).context("the python side returned no timings")?;
            version = parsed.version;
            rows.push(Row { implementation: "python (tokenizers package)".into(), threads: n, median_s: m, mb_per_s: mb / m, tokens: parsed.tokens });
        }
        std::fs::remove_dir_all(&dir).ok();
        Ok((rows, version))
    }
}

fn tempfile_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("harness-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Writes the table (csv, parquet) and a README beside it.
pub fn write(dir: &Path, table: &Table, notes: &[String]) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    table.write(dir, "tokenize")?;
    let prov = crate::artifacts::Provenance::collect();
    let mut md = format!("# Tokenization throughput\n\n- harness {} at git `{}`\n", prov.harness_version, prov.git_sha);
    md.push_str(&format!("- machine: {} logical CPUs\n", std::thread::available_parallelism().map_or(1, |n| n.get())));
    for n in notes {
        md.push_str(&format!("- {n}\n"));
    }
    md.push('\n');
    md.push_str(&table.markdown());
    crate::artifacts::write_atomic(&dir.join("README.md"), md.as_bytes())?;
    Ok(())
}
