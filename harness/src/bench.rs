//! `harness bench data`: tokenization throughput (MB/s of UTF-8 text) of this harness's
//! tokenizer path, and of the Python `tokenizers` package's `encode_batch` on the same
//! tokenizer.json and stories, in the same invocation, by thread count.
//!
//! `harness bench gather`: the rate at which the training loader delivers batches from a token
//! shard, in the random order training reads it, with the shard's pages first evicted from the
//! page cache (a shard larger than memory reads that way all along).
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
        let corpus = Corpus::in_memory(stories.clone(), vec![], "real");
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

/// Writes the table (csv, parquet, as `name`) and a README titled `title` beside it.
pub fn write(dir: &Path, title: &str, name: &str, table: &Table, notes: &[String]) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    table.write(dir, name)?;
    let prov = crate::artifacts::Provenance::collect();
    let mut md = format!("# {title}\n\n- harness {} at git `{}`\n", prov.harness_version, prov.git_sha);
    md.push_str(&format!("- machine: {} logical CPUs\n", std::thread::available_parallelism().map_or(1, |n| n.get())));
    for n in notes {
        md.push_str(&format!("- {n}\n"));
    }
    md.push('\n');
    md.push_str(&table.markdown());
    crate::artifacts::write_atomic(&dir.join("README.md"), md.as_bytes())?;
    Ok(())
}

/// `harness bench gather`: a synthetic token shard of `gib` GiB (random ids, document lengths of
/// 16 to 2,047 tokens; made once in `dir`), read by the training loader in shuffled order for
/// `batches` global batches of 65,536 tokens at each context length, first with the shard's
/// pages evicted from the page cache (cold), then again (second pass: what the first left cached).
pub struct GatherBench {
    pub dir: PathBuf,
    pub gib: f64,
    /// (n_ctx, packing) pairs.
    pub shapes: Vec<(i64, crate::suite::Packing)>,
    pub batches: u64,
}

/// Tokens per global batch: the paper's FineWeb step (C.3).
const GATHER_BATCH_TOKENS: usize = 65_536;

/// CPU seconds (user + system, the kernel's reads on its behalf included) of the loader's thread
/// (`harness-loader`), from `/proc/self/task/*/stat`; NaN where there is no /proc.
fn loader_cpu_seconds() -> f64 {
    // SAFETY: sysconf only reads its argument.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return f64::NAN;
    };
    let mut total = 0.0;
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() != "harness-loader" {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // Fields after the command's closing parenthesis: utime and stime are the 12th and 13th.
        let rest: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, r)| r).split_whitespace().collect();
        let field = |i: usize| rest.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        total += (field(11) + field(12)) / ticks;
    }
    total
}

fn meminfo(key: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u64 = s.lines().find(|l| l.starts_with(key))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn mem_total() -> Option<u64> {
    meminfo("MemTotal:")
}

fn mem_available() -> Option<u64> {
    meminfo("MemAvailable:")
}

impl GatherBench {
    /// The shard of the benchmark: made when missing (it is reused across invocations).
    fn shard(&self) -> Result<(crate::data::shards::Shard, f64)> {
        use rand::{Rng, SeedableRng};
        let tokens = (self.gib * (1u64 << 30) as f64 / 2.0) as u64;
        let key = crate::artifacts::sha256_bytes(format!("bench-gather-v1|{tokens}").as_bytes());
        if let Some(s) = crate::data::shards::Shard::open_in(&self.dir, &key) {
            return Ok((s?, 0.0));
        }
        eprintln!("writing a {:.1} GiB synthetic shard into {}", self.gib, self.dir.display());
        let started = Instant::now();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let mut w = crate::data::shards::ShardWriter::create(&self.dir, false)?;
        let (mut written, mut doc) = (0u64, Vec::with_capacity(2048));
        while written < tokens {
            let len = rng.random_range(16..2048u64).min(tokens - written) as usize;
            doc.clear();
            doc.extend((0..len).map(|_| rng.random_range(0..8000u32)));
            w.push(&doc)?;
            written += len as u64;
        }
        w.finish(&key, "synthetic", "synthetic", 0)?;
        let secs = started.elapsed().as_secs_f64();
        let s = crate::data::shards::Shard::open_in(&self.dir, &key).context("the shard just written")??;
        Ok((s, secs))
    }

    pub fn run(&self) -> Result<(Table, Vec<String>)> {
        use crate::data::rows::{Rows, TokenRows};
        use crate::train::loader::{Loader, Order};
        let opened = Instant::now();
        let (shard, made) = self.shard()?;
        let verify = opened.elapsed().as_secs_f64() - made;
        let shard = std::sync::Arc::new(shard);
        let mut notes = vec![format!(
            "shard: {} documents, {} tokens, {:.2} GiB on disk ({}); machine memory {}; written in {made:.0} s (0: reused), opened and verified in {verify:.0} s",
            shard.docs(),
            shard.tokens(),
            shard.bytes as f64 / (1u64 << 30) as f64,
            shard.path.display(),
            mem_total().map_or("unknown".into(), |m| format!("{:.1} GiB", m as f64 / (1u64 << 30) as f64)),
        )];
        notes.push(format!(
            "each pass: {} global batches of {GATHER_BATCH_TOKENS} tokens in shuffled order, gathered by the loader's one thread (the rows of the next 4,096 announced to the kernel ahead of their gather), timed from the first batch on (the epoch's shuffle, once an epoch, excluded); cold = the shard's pages evicted first (posix_fadvise DONTNEED); cached = the whole shard read into the page cache first (only when it fits in memory); loader CPU = the loader thread's CPU seconds (its system time, the kernel's reads, included) per second of the pass",
            self.batches
        ));
        let (mut shape, mut pass, mut rows_s, mut tok_s, mut real_s, mut cpu, mut wall) = (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
        for &(n_ctx, packing) in &self.shapes {
            let rows: std::sync::Arc<dyn Rows> = std::sync::Arc::new(TokenRows::new(shard.clone(), n_ctx, packing, crate::suite::PaddingSide::Right, 0));
            let global = (GATHER_BATCH_TOKENS / n_ctx as usize).max(1);
            // The cached pass: the whole shard read into the page cache first, when it fits.
            let fits = mem_available().is_some_and(|m| shard.bytes < m / 5 * 4);
            let passes: &[(&str, u64)] = if fits { &[("cold", 1), ("second pass", 2), ("cached", 3)] } else { &[("cold", 1), ("second pass", 2)] };
            for &(p, seed) in passes {
                match p {
                    "cold" => shard.evict(),
                    "cached" => shard.warm().context("reading the shard into the page cache")?,
                    _ => {}
                }
                // The clock starts at the first batch: the epoch's shuffle (a second or more for
                // tens of millions of rows, once an epoch) and the queue's filling are not the rate.
                // Two batches more than timed: the loader is still alive (blocked on its queue)
                // when its thread's CPU time is read.
                let mut loader = Loader::start(rows.clone(), Order::new(rows.len(), global, seed, true)?, self.batches + 3);
                loader.next_batch()?;
                let (t0, c0) = (Instant::now(), loader_cpu_seconds());
                let mut real = 0u64;
                for _ in 0..self.batches {
                    real += loader.next_batch()?.real_tokens;
                }
                let (secs, cpus) = (t0.elapsed().as_secs_f64(), loader_cpu_seconds() - c0);
                drop(loader);
                let n_rows = (self.batches as usize * global) as f64;
                shape.push(format!("n_ctx {n_ctx} {packing:?}").to_lowercase());
                pass.push(p.to_string());
                rows_s.push(Some(n_rows / secs));
                tok_s.push(Some(n_rows * n_ctx as f64 / secs));
                real_s.push(Some(real as f64 / secs));
                cpu.push(Some(cpus / secs));
                wall.push(Some(secs));
                eprintln!(
                    "  n_ctx {n_ctx} {packing:?} {p}: {:.1} M tokens/s ({:.0} rows/s), loader {:.2} CPU",
                    n_rows * n_ctx as f64 / secs / 1e6,
                    n_rows / secs,
                    cpus / secs
                );
            }
        }
        let mut t = Table::default();
        t.push("shape", Col::Str(shape));
        t.push("pass", Col::Str(pass));
        t.push("rows_per_s", Col::Num(rows_s));
        t.push("tokens_per_s", Col::Num(tok_s));
        t.push("real_tokens_per_s", Col::Num(real_s));
        t.push("loader_cpu_per_s", Col::Num(cpu));
        t.push("wall_s", Col::Num(wall));
        Ok((t, notes))
    }
}
