//! `harness data`: the summary-set pipeline (`pairs`), a suite's tokenizer trained on a file
//! (`tokenizer`), and a file of any size encoded into a token shard (`encode`).
use anyhow::{Context, Result};
use harness::data::tokenizer;
use harness::suite::{DataConfig, TokenizerKind, TokenizerLines};
use std::path::{Path, PathBuf};

#[derive(clap::Subcommand)]
pub enum Data {
    /// The paper's summary -> passage sets (PAPER.md B.1-B.3): export the passages, summarise
    /// them through an OpenAI-compatible chat endpoint (one shard per server), join into the
    /// pairs file `[pairs] source = "file"` reads. See docs/summary-sets.md.
    Pairs {
        #[command(subcommand)]
        what: super::pairs::Pairs,
    },
    /// Trains a tokenizer as a suite's `data.tokenizer` does (the paper's `llama` / `llama3`,
    /// or the harness's `bpe`) on a file, writes its tokenizer.json and prints tokens per
    /// character and the share of <unk> on that file.
    Tokenizer(Tokenizer),
    /// Tokenizes a file of any size into a token shard (the format and key a run's cache uses:
    /// whole documents, so one shard serves every n_ctx, padding and packing) in bounded memory:
    /// documents stream in, 4,096 at a time, and the ids stream out. Prints documents, tokens,
    /// time and the process's peak RSS.
    Encode(Encode),
}

impl Data {
    pub fn run(self) -> Result<()> {
        match self {
            Data::Pairs { what } => what.run(),
            Data::Tokenizer(t) => t.run(),
            Data::Encode(e) => e.run(),
        }
    }
}

#[derive(clap::Args)]
pub struct Tokenizer {
    #[arg(long, value_enum)]
    kind: TokenizerArg,
    /// Stories: marker-separated text, or .jsonl / .parquet with --text-column.
    #[arg(long, required_unless_present = "base_only")]
    input: Option<PathBuf>,
    #[arg(long, default_value = "<|endoftext|>")]
    marker: String,
    #[arg(long)]
    text_column: Option<String>,
    #[arg(long, default_value_t = 4096)]
    vocab: usize,
    /// Only the first N stories.
    #[arg(long)]
    limit: Option<usize>,
    /// A base tokenizer.json to retrain instead of the built-in pipeline (`data.tokenizer_base`).
    #[arg(long)]
    base: Option<PathBuf>,
    /// The trained tokenizer.json.
    #[arg(long)]
    out: PathBuf,
    /// Write the untrained base (the pipeline `--kind` retrains) to --out instead of training.
    #[arg(long)]
    base_only: bool,
    /// Which text to train on (`data.tokenizer_lines`): every story, the paper script's
    /// selection (I.7: the first 2,000,000 lines in its overlapping batches), or the first
    /// 2,000,000 lines once each.
    #[arg(long, value_enum, default_value = "all")]
    lines: LinesArg,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LinesArg {
    All,
    Paper,
    #[value(name = "first-2m")]
    First2m,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum TokenizerArg {
    Bpe,
    Llama,
    Llama3,
}

impl Tokenizer {
    /// The suite's tokenizer training on one file, with its statistics.
    pub fn run(self) -> Result<()> {
        harness::artifacts::refuse_inside_run(&self.out, "--out")?;
        let kind = match self.kind {
            TokenizerArg::Bpe => TokenizerKind::Bpe,
            TokenizerArg::Llama => TokenizerKind::Llama,
            TokenizerArg::Llama3 => TokenizerKind::Llama3,
        };
        let out = &self.out;
        if self.base_only {
            let json = match kind {
                TokenizerKind::Bpe => anyhow::bail!("--base-only: the byte-level BPE is trained from scratch and has no base; use --kind llama or llama3"),
                TokenizerKind::Llama => tokenizer::llama_base(),
                TokenizerKind::Llama3 => tokenizer::llama3_base(),
            };
            harness::artifacts::write_atomic(out, serde_json::to_string_pretty(&json)?.as_bytes()).with_context(|| format!("writing {}", out.display()))?;
            println!("the untrained {} base in {}", kind.name(), out.display());
            return Ok(());
        }
        let input = self.input.as_deref().context("--input is required to train")?;
        let cfg = self.config(kind, input)?;
        let corpus = harness::data::Corpus::open(&cfg).with_context(|| format!("reading {}", input.display()))?;
        let started = std::time::Instant::now();
        let base_json = match &cfg.tokenizer_base {
            Some(p) => Some(serde_json::from_str(&harness::artifacts::read_regular_string(p).with_context(|| format!("--base {}", p.display()))?).with_context(|| format!("--base {}: not JSON", p.display()))?),
            None => None,
        };
        let failed = std::sync::Mutex::new(None);
        let trained = harness::data::train(&cfg, base_json, harness::data::until_error(corpus.train_docs(), &failed));
        reading_failed(failed, input)?;
        let json = trained.map_err(|m| anyhow::anyhow!("training the {} tokenizer: {m}", kind.name()))?;
        let seconds = started.elapsed().as_secs_f64();
        harness::artifacts::write_atomic(out, json.as_bytes()).with_context(|| format!("writing {}", out.display()))?;
        let tok = harness::data::Tok::from_json(json, out)?;
        let failed = std::sync::Mutex::new(None);
        let stats = tokenizer::stats(&tok.tokenizer, harness::data::until_error(corpus.train_docs(), &failed));
        reading_failed(failed, input)?;
        let s = stats.map_err(|m| anyhow::anyhow!("encoding {}: {m}", input.display()))?;
        println!(
            "{}: {} stories, {} characters -> {} tokens ({:.4} tokens per character, {:.2} characters per token), <unk> {:.3}% of tokens; \
             vocab {}, trained in {seconds:.1} s, sha256 {} in {}",
            kind.name(),
            corpus.train.docs,
            s.chars,
            s.tokens,
            s.tokens as f64 / s.chars.max(1) as f64,
            s.chars as f64 / s.tokens.max(1) as f64,
            100.0 * s.unk as f64 / s.tokens.max(1) as f64,
            tok.vocab_size(),
            tok.sha256,
            out.display()
        );
        Ok(())
    }

    /// The data section a suite would give for this file and these options.
    fn config(&self, kind: TokenizerKind, input: &Path) -> Result<DataConfig> {
        let mut cfg = DataConfig::for_file(input, self.text_column.as_deref(), &self.marker, true);
        cfg.vocab_size = self.vocab;
        cfg.n_stories = self.limit;
        cfg.tokenizer = kind;
        cfg.tokenizer_base = self.base.clone();
        cfg.tokenizer_lines = match self.lines {
            LinesArg::All => TokenizerLines::All,
            LinesArg::Paper => TokenizerLines::Paper,
            LinesArg::First2m => TokenizerLines::First2m,
        };
        cfg.normalize().map_err(|e| anyhow::anyhow!("{} ({}): check the matching option (--vocab, --input, --text-column, --lines)", e.message, e.key))?;
        Ok(cfg)
    }
}

/// The read error a document stream stopped on, if any.
fn reading_failed<E: std::error::Error + Send + Sync + 'static>(failed: std::sync::Mutex<Option<E>>, input: &Path) -> Result<()> {
    match failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(anyhow::Error::new(e).context(format!("reading {}", input.display()))),
        None => Ok(()),
    }
}

#[derive(clap::Args)]
pub struct Encode {
    /// Documents: marker-separated text, or .jsonl / .parquet (the column --text-column).
    #[arg(long)]
    input: PathBuf,
    /// The tokenizer.json to encode with (a run folder's, or `harness data tokenizer`'s).
    #[arg(long)]
    tokenizer: PathBuf,
    #[arg(long, default_value = "<|endoftext|>")]
    marker: String,
    #[arg(long, default_value = "text")]
    text_column: String,
    /// Keep a last text piece with no marker after it (a file cut mid-story is dropped by default).
    #[arg(long)]
    keep_unterminated: bool,
    /// Only the first N documents.
    #[arg(long)]
    limit: Option<usize>,
    /// Folder for the shard (<key>.bin and its <key>.json header).
    #[arg(long)]
    out: PathBuf,
}

impl Encode {
    pub fn run(self) -> Result<()> {
        let Encode { input, tokenizer, marker, text_column, keep_unterminated, limit, out } = self;
        harness::artifacts::refuse_inside_run(&out, "--out")?;
        let json = harness::artifacts::read_regular_string(&tokenizer).with_context(|| format!("--tokenizer {}", tokenizer.display()))?;
        let tok = harness::data::Tok::from_json(json, &tokenizer).with_context(|| format!("--tokenizer {}", tokenizer.display()))?;
        let started = std::time::Instant::now();
        let docs = harness::data::stream_file(&input, &text_column, &marker, !keep_unterminated)?.take(limit.unwrap_or(usize::MAX));
        let w = harness::data::shards::write_stream(&tok, docs, &out)?;
        let secs = started.elapsed().as_secs_f64();
        let input_bytes = std::fs::metadata(&input).map(|m| m.len()).unwrap_or(0);
        let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
        println!(
            "{}: {} documents -> {} tokens in {secs:.1} s ({:.1} MiB/s of text)\nshard {} ({:.1} MiB), header {}\nkey {}, text sha256 {}, tokenizer sha256 {}\npeak RSS {} (input file {:.1} MiB)",
            input.display(),
            w.docs,
            w.tokens,
            mib(w.text_bytes) / secs.max(1e-9),
            w.shard.display(),
            mib(w.bytes),
            w.header.display(),
            w.key,
            w.text_sha256,
            tok.sha256,
            harness::throughput::peak_rss().map_or("unknown (no /proc/self/status)".to_string(), |b| format!("{:.1} MiB", mib(b))),
            mib(input_bytes),
        );
        Ok(())
    }
}
