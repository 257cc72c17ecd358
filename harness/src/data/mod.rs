//! Data: where stories come from (embedded corpus, local text), the BPE tokenizer, and the
//! tensors a model reads (PAPER.md B.1: one story = one sample, truncated then padded to n_ctx,
//! pad = EOS, pads excluded from the loss).
pub mod columnar;
pub mod corpus;
pub mod embedded;
pub mod hub;
pub mod pairs;
pub mod pairset;
pub mod rows;
pub mod shards;
pub mod summarize;
pub mod text;
pub mod tokenizer;

use crate::artifacts::{sha256_bytes, write_atomic};
use crate::suite::{DataConfig, Packing, PaddingSide, TokenizerKind};
pub use corpus::{Corpus, Docs, SplitInfo};
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer};

/// Special tokens in the paper's order: <unk> = 0, <s> = 1, </s> = 2; pad = EOS = </s>.
pub const SPECIALS: [&str; 3] = ["<unk>", "<s>", "</s>"];
pub const PAD: &str = "</s>";
/// The end-of-text tokens a tokenizer may pad with, in order of preference.
pub const PADS: [&str; 3] = [PAD, "<|endoftext|>", "<|end_of_text|>"];
/// The smallest vocabulary a trained byte-level BPE can have: 256 bytes + the specials.
pub use crate::suite::MIN_BPE_VOCAB;
const _: () = assert!(MIN_BPE_VOCAB == 256 + SPECIALS.len(), "suite::MIN_BPE_VOCAB must count every special token");
/// Ignored by the loss (PyTorch's and Hugging Face's convention).
pub const IGNORE: i64 = -100;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: cannot read: {error}")]
    Read { path: PathBuf, error: std::io::Error },
    /// An error about a file a setting names: the setting, so the fix is plain.
    #[error("{error}; check {key}")]
    Setting { key: &'static str, error: Box<DataError> },
    #[error("{path}: not valid UTF-8 (first bad byte at byte {offset}); convert the file to UTF-8")]
    NotUtf8 { path: PathBuf, offset: usize },
    #[error("{path}: the file is empty or holds no stories")]
    Empty { path: PathBuf },
    #[error("{path}: no story marker {marker:?} found; set data.marker to the separator the file uses")]
    NoMarker { path: PathBuf, marker: String },
    #[error("{what}: {n} stories is too few (need at least {need}); add data or lower data.eval_fraction")]
    TooFew { what: String, n: usize, need: usize },
    #[error("pairs: {n} pairs with {test} for test; need at least 2 of each split: raise pairs.n_pairs or change pairs.test_fraction / pairs.test_pairs")]
    TooFewPairs { n: usize, test: usize },
    #[error("tokenizer {path}: {message}")]
    Tokenizer { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Columnar { path: PathBuf, message: String },
    #[error("token shard {path}: {message}")]
    Shard { path: PathBuf, message: String },
    #[error("data order: {0}")]
    Order(String),
    #[error("hub dataset {repo}, file {file}: {message}; check data.repo / data.files / data.revision, HF_ENDPOINT and the network, or run with HF_HUB_OFFLINE=1 on a filled cache")]
    Hub { repo: String, file: String, message: String },
    #[error("offline (HF_HUB_OFFLINE): {file} of {repo} at revision {revision} is not in the cache ({cache}); run once online, or copy the file into the cache", cache = hf_hub::Cache::from_env().path().display())]
    HubOfflineMiss { repo: String, revision: String, file: String },
    #[error("{path}, line {line}: no text field `{field}`; name the fields of your pairs file")]
    PairField { path: PathBuf, line: usize, field: String },
    #[error("{path}: sha256 {got} differs from the pinned {expected} (data.sha256); the file changed upstream or is corrupt")]
    HashMismatch { path: PathBuf, expected: String, got: String },
    #[error("{path}: no column `{column}` (columns: {available:?}); set data.text_column")]
    MissingColumn { path: PathBuf, column: String, available: Vec<String> },
}

/// The documents of a file, by its extension (`.parquet`; `.jsonl` / `.json`; else text split on
/// `marker`), read as a stream in bounded memory.
pub fn stream_file(path: &Path, column: &str, marker: &str, drop_unterminated: bool) -> Result<Box<dyn Iterator<Item = Result<String, DataError>>>, DataError> {
    let name = path.to_string_lossy().to_lowercase();
    Ok(if name.ends_with(".parquet") {
        Box::new(columnar::Column::open(path, columnar::Format::Parquet, column)?)
    } else if name.ends_with(".jsonl") || name.ends_with(".json") {
        Box::new(columnar::Column::open(path, columnar::Format::Jsonl, column)?)
    } else {
        Box::new(text::Stories::open(path, marker, drop_unterminated)?)
    })
}

/// A streamed document reader: `fill` reads one piece of its file into the buffer, and sets the
/// done flag at the end.
trait Refill {
    fn buffer(&mut self) -> (&mut std::collections::VecDeque<String>, &mut bool);
    fn fill(&mut self) -> Result<(), DataError>;
}

/// The next document of a reader, reading on while its buffer is empty; after an error, none.
fn pull(r: &mut impl Refill) -> Option<Result<String, DataError>> {
    loop {
        let (ready, done) = r.buffer();
        if let Some(s) = ready.pop_front() {
            return Some(Ok(s));
        }
        if *done {
            return None;
        }
        if let Err(e) = r.fill() {
            let (ready, done) = r.buffer();
            *done = true;
            ready.clear();
            return Some(Err(e));
        }
    }
}

/// A tokenizer and the sha256 of its `tokenizer.json`.
pub struct Tok {
    pub tokenizer: Tokenizer,
    pub sha256: String,
    pub json: String,
    pub pad_id: i64,
}

impl Tok {
    pub fn vocab_size(&self) -> i64 {
        self.tokenizer.get_vocab_size(true) as i64
    }

    /// What a report says of it: kind (or the file it came from), vocabulary, sha256 prefix.
    pub fn label(&self, cfg: &DataConfig) -> String {
        let kind = match (&cfg.tokenizer_path, &cfg.tokenizer_base) {
            (Some(p), _) => format!("file {}", p.file_name().map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into_owned())),
            (None, Some(_)) => format!("{} (given base)", cfg.tokenizer.name()),
            (None, None) => cfg.tokenizer.name().to_string(),
        };
        format!("{kind} {} {}", self.vocab_size(), &self.sha256[..12])
    }

    pub fn from_json(json: String, origin: &Path) -> Result<Self, DataError> {
        let tokenizer: Tokenizer = json
            .parse()
            .map_err(|e: tokenizers::Error| DataError::Tokenizer { path: origin.into(), message: e.to_string() })?;
        // Pad = EOS (PAPER.md B.1, B.2): Llama's, GPT-2's or Llama 3's end-of-text token.
        let pad_id = PADS.iter().find_map(|t| tokenizer.token_to_id(t)).ok_or_else(|| DataError::Tokenizer {
            path: origin.into(),
            message: format!("has none of the end-of-text tokens {PADS:?} to pad with"),
        })? as i64;
        Ok(Self { sha256: sha256_bytes(json.as_bytes()), json, tokenizer, pad_id })
    }

    /// The suite's tokenizer: loaded from `data.tokenizer_path`, or a byte-level BPE trained on
    /// the training stories. BPE training is not guaranteed deterministic upstream, so a trained
    /// tokenizer is cached by (training text, vocab size) and reused: train once, hash, reuse.
    pub fn for_run(cfg: &DataConfig, corpus: &Corpus, cache: &Path) -> Result<Self, DataError> {
        if let Some(p) = &cfg.tokenizer_path {
            let setting = |e| DataError::Setting { key: "data.tokenizer_path", error: Box::new(e) };
            let json = crate::artifacts::read_regular_string(p).map_err(|e| setting(DataError::Read { path: p.clone(), error: e }))?;
            return Self::from_json(json, p).map_err(setting);
        }
        // Another preset's text trains it (B.3: FineMath reused FineWeb's tokenizer): that
        // preset's own tokenizer, from the same cache.
        if let Some(Ok(tcfg)) = cfg.tokenizer_text_config() {
            // (An invalid one was refused when the suite was read: `DataConfig::normalize`.)
            let corpus = Corpus::open(&tcfg).map_err(|e| DataError::Setting { key: "data.tokenizer_text", error: Box::new(e) })?;
            return Self::for_run(&tcfg, &corpus, cache);
        }
        let base = match &cfg.tokenizer_base {
            Some(p) => {
                let setting = |e| DataError::Setting { key: "data.tokenizer_base", error: Box::new(e) };
                let text = crate::artifacts::read_regular_string(p).map_err(|e| setting(DataError::Read { path: p.clone(), error: e }))?;
                let json: serde_json::Value = serde_json::from_str(&text)
                    .map_err(|e| setting(DataError::Tokenizer { path: p.clone(), message: format!("not JSON: {e}") }))?;
                Some((json, sha256_bytes(text.as_bytes())))
            }
            None => None,
        };
        use crate::suite::TokenizerLines as L;
        let whole_split = cfg.tokenizer == TokenizerKind::Llama3 && cfg.tokenizer_lines == L::Paper;
        let text_hash = match whole_split {
            true => format!("{}+{}", corpus.eval.text_sha256, corpus.train.text_sha256),
            false => corpus.train.text_sha256.clone(),
        };
        // The byte-level BPE keeps its original key, so caches written before other kinds existed stay valid.
        let what = match cfg.tokenizer {
            TokenizerKind::Bpe => "bpe-bytelevel-v1".to_string(),
            kind => format!("{kind:?}-retrain-v1|{}|{}", cfg.marker_in_text(), base.as_ref().map_or("built-in", |b| b.1.as_str())),
        };
        // Other text selections key their own files (the default keeps the keys written before).
        let what = match cfg.tokenizer_lines {
            L::All => what,
            lines => format!("{what}|{lines:?}"),
        };
        let key = sha256_bytes(format!("{what}|{}|{text_hash}", cfg.vocab_size).as_bytes());
        let path = cache.join("tokenizers").join(format!("{}.json", &key[..24]));
        // The cached file is trusted only when it still hashes to what was written beside it.
        let sidecar = path.with_extension("json.sha256");
        if let Ok(json) = std::fs::read_to_string(&path) {
            let recorded = std::fs::read_to_string(&sidecar).unwrap_or_default();
            if recorded.trim() == sha256_bytes(json.as_bytes()) {
                return Self::from_json(json, &path);
            }
            eprintln!("  the cached tokenizer {} does not match its recorded sha256 ({}); training it again", path.display(), sidecar.display());
        }
        let failed = std::sync::Mutex::new(None);
        let docs: Box<dyn Iterator<Item = String> + Send> = match whole_split {
            true => Box::new(until_error(corpus.eval_docs(), &failed).chain(until_error(corpus.train_docs(), &failed))),
            false => Box::new(until_error(corpus.train_docs(), &failed)),
        };
        let trained = train(cfg, base.map(|b| b.0), docs);
        if let Some(e) = failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
            return Err(e);
        }
        let json = trained.map_err(|m| match &cfg.tokenizer_base {
            Some(p) => DataError::Setting { key: "data.tokenizer_base", error: Box::new(DataError::Tokenizer { path: p.clone(), message: m }) },
            None => DataError::Tokenizer { path: path.clone(), message: m },
        })?;
        let io = |e| DataError::Read { path: path.clone(), error: e };
        write_atomic(&path, json.as_bytes()).map_err(io)?;
        write_atomic(&sidecar, sha256_bytes(json.as_bytes()).as_bytes()).map_err(io)?;
        Self::from_json(json, &path)
    }

    /// Truncates each story to n_ctx tokens and pads it to exactly n_ctx (no special tokens
    /// added, as the reference's `add_special_tokens=False`), as a training row is cut. Not
    /// cached: for prompts.
    pub fn encode(&self, stories: &[String], n_ctx: i64, side: PaddingSide) -> Result<Encoded, DataError> {
        let shard = std::sync::Arc::new(shards::encode_in_memory(self, stories)?);
        rows::all(&rows::TokenRows::new(shard, n_ctx, Packing::Truncate, side, self.pad_id))
    }
}

/// The documents of a stream up to its first error, which is left in `failed` (for consumers
/// such as the tokenizer trainer that take plain strings).
pub fn until_error<'a>(docs: Docs<'a>, failed: &'a std::sync::Mutex<Option<DataError>>) -> impl Iterator<Item = String> + Send + 'a {
    docs.map_while(move |d| match d {
        Ok(d) => Some(d),
        Err(e) => {
            *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
            None
        }
    })
}

/// Trains the tokenizer `data.tokenizer` names on the stories (the training split, or the whole
/// one where `data.tokenizer_lines` says so), streamed (the trainer keeps its word counts, not
/// the text).
pub fn train(cfg: &DataConfig, base: Option<serde_json::Value>, stories: impl Iterator<Item = String> + Send) -> Result<String, String> {
    use crate::suite::TokenizerLines as L;
    let seen = std::sync::atomic::AtomicUsize::new(0);
    let json = match cfg.tokenizer {
        TokenizerKind::Bpe => return train_bpe(stories, cfg.vocab_size),
        TokenizerKind::Llama => {
            let marker = cfg.marker_in_text().then_some(cfg.marker.as_str());
            let lines = tokenizer::reference_lines(stories, marker);
            let lines: Box<dyn Iterator<Item = String> + Send> = match cfg.tokenizer_lines {
                L::All => Box::new(lines),
                L::Paper => Box::new(tokenizer::paper_line_batches(lines, tokenizer::PAPER_LINES, tokenizer::PAPER_BATCH)),
                L::First2m => Box::new(lines.take(tokenizer::PAPER_LINES)),
            };
            let counted = lines.inspect(|_| {
                seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            });
            tokenizer::retrain(&base.unwrap_or_else(tokenizer::llama_base), counted, cfg.vocab_size, tokenizer::Alphabet::PaperEra)?
        }
        TokenizerKind::Llama3 => {
            let counted = stories.inspect(|_| {
                seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            });
            tokenizer::retrain(&base.unwrap_or_else(tokenizer::llama3_base), counted, cfg.vocab_size, tokenizer::Alphabet::PaperEra)?
        }
    };
    if seen.into_inner() == 0 {
        return Err(match cfg.tokenizer_lines {
            L::Paper => format!(
                "data.tokenizer_lines = \"paper\" selects no line of this text: the reference's batches (I.7) start at line {}; \
                 use \"all\" for a corpus this small",
                2 * tokenizer::PAPER_BATCH
            ),
            _ => "no training text to train the tokenizer on".into(),
        });
    }
    Ok(json)
}

fn train_bpe(stories: impl Iterator<Item = String> + Send, vocab_size: usize) -> Result<String, String> {
    let mut trainer = BpeTrainerBuilder::new()
        .vocab_size(vocab_size)
        .min_frequency(2)
        .show_progress(false)
        .special_tokens(SPECIALS.iter().map(|s| AddedToken::from(s.to_string(), true)).collect())
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    let mut tok = Tokenizer::new(BPE::default());
    tok.with_pre_tokenizer(Some(ByteLevel::default()));
    tok.with_decoder(Some(ByteLevel::default()));
    let mut wrapped: tokenizers::models::TrainerWrapper = std::mem::take(&mut trainer).into();
    tok.train(&mut wrapped, stories).map_err(|e| e.to_string())?;
    tok.to_string(false).map_err(|e| e.to_string())
}

/// Token ids and labels of a split. Labels are the ids with pads set to [`IGNORE`]; the
/// loss shifts them (A.1).
///
/// # Shapes
/// tokens, labels: `[n, n_ctx]` int64.
pub struct Encoded {
    pub tokens: Tensor,
    pub labels: Tensor,
}

impl Encoded {
    pub fn len(&self) -> i64 {
        self.tokens.size()[0]
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Non-pad tokens.
    pub fn real_tokens(&self) -> i64 {
        self.labels.ne(IGNORE).sum(Kind::Int64).int64_value(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> DataConfig {
        toml::from_str("source = \"embedded\"\nn_ctx = 16\nvocab_size = 300\nn_stories = 60").unwrap()
    }

    #[test]
    fn padding_and_labels() {
        let dir = tempfile::tempdir().unwrap();
        let corpus = Corpus::open(&cfg()).unwrap();
        assert_eq!((corpus.train.docs, corpus.eval.docs), (54, 6));
        let tok = Tok::for_run(&cfg(), &corpus, dir.path()).unwrap();
        assert_eq!(tok.pad_id, 2);
        let stories = vec!["Tom".to_string(), corpus.train_in_memory().unwrap()[0].clone()];
        let right = tok.encode(&stories, 16, PaddingSide::Right).unwrap();
        let left = tok.encode(&stories, 16, PaddingSide::Left).unwrap();
        let n_tom = tok.tokenizer.encode("Tom", false).unwrap().get_ids().len() as i64;
        // Right padding: text first, then pads that the loss ignores.
        assert_eq!(right.tokens.int64_value(&[0, n_tom]), 2);
        assert_eq!(right.labels.int64_value(&[0, n_tom]), IGNORE);
        assert_eq!(right.labels.int64_value(&[0, 0]), right.tokens.int64_value(&[0, 0]));
        // Left padding: the same text ends at the last position.
        assert_eq!(left.tokens.int64_value(&[0, 15]), right.tokens.int64_value(&[0, n_tom - 1]));
        assert_eq!(left.labels.int64_value(&[0, 0]), IGNORE);
        // A long story is truncated to exactly n_ctx real tokens.
        assert_eq!(right.labels.get(1).ne(IGNORE).sum(Kind::Int64).int64_value(&[]), 16);
    }

    #[test]
    fn tokenizer_is_cached_and_training_repeats() {
        let dir = tempfile::tempdir().unwrap();
        let corpus = Corpus::open(&cfg()).unwrap();
        let a = Tok::for_run(&cfg(), &corpus, dir.path()).unwrap();
        let b = Tok::for_run(&cfg(), &corpus, dir.path()).unwrap();
        assert_eq!(a.sha256, b.sha256);
        // A cached file edited by hand is not used: it is trained again.
        let cached = std::fs::read_dir(dir.path().join("tokenizers")).unwrap().map(|e| e.unwrap().path()).find(|p| p.extension().is_some_and(|x| x == "json")).unwrap();
        let original = std::fs::read_to_string(&cached).unwrap();
        std::fs::write(&cached, format!("{original}\n")).unwrap();
        assert_eq!(Tok::for_run(&cfg(), &corpus, dir.path()).unwrap().sha256, a.sha256);
        assert_eq!(std::fs::read_to_string(&cached).unwrap(), original, "retrained and rewritten");
        // Upstream does not promise deterministic BPE training; check it on this text.
        let again = train_bpe(corpus.train_in_memory().unwrap().into_iter(), 300).unwrap();
        assert_eq!(sha256_bytes(again.as_bytes()), a.sha256, "BPE training was not repeatable here");
    }
}
