//! `data`: where the text comes from, how it is tokenised and packed (PAPER.md B), and the
//! Hugging Face presets the `hf` source names.
use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataSource {
    /// The synthetic corpus compiled into the binary (labelled "synthetic" in reports).
    Embedded,
    /// Local text files, stories separated by `marker`.
    Text,
    /// JSON lines, one document per line, text in `text_column` (read with polars).
    Jsonl,
    /// Parquet, text in `text_column` (read with polars), e.g. the Hugging Face TinyStories files.
    Parquet,
    /// Files of a Hugging Face dataset repo (`repo`, `revision`, `files`, `eval_files`), or a
    /// `preset`; downloaded into the standard cache, hashed, optionally pinned.
    Hf,
}

/// How documents become rows of n_ctx tokens (PAPER.md B.1, B.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Packing {
    /// One document = one row: its first n_ctx tokens, padded (TinyStories; FineWeb n_ctx >= 512).
    #[default]
    Truncate,
    /// Each document cut into floor(len / n_ctx) windows of n_ctx tokens, the remainder dropped,
    /// windows never crossing documents (FineWeb n_ctx < 512). No padding.
    Windows,
}

/// The tokenizer trained on a run's training text (PAPER.md B.1, B.2; `data::tokenizer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenizerKind {
    /// The harness's byte-level BPE (GPT-2-style pre-tokenizer), trained from scratch.
    #[default]
    Bpe,
    /// The paper's TinyStories tokenizer: `open_llama_3b`'s SentencePiece-style Llama BPE
    /// (`LlamaTokenizerFast`) retrained on the training stories' lines (4096 in the paper).
    Llama,
    /// The paper's FineWeb-edu / FineMath tokenizer: `Meta-Llama-3-8B`'s byte-level BPE
    /// (`PreTrainedTokenizerFast`) retrained on the training documents (8000 in the paper).
    Llama3,
}

/// Which text a trained tokenizer learns from (PAPER.md B.1, B.2, I.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenizerLines {
    /// Every training document (the harness's own reading; the default).
    #[default]
    All,
    /// As the paper's scripts read it. `llama`: the first 2,000,000 lines of the TinyStories
    /// text in the batches of `tinystories_tokenizer_trainer.py`, whose `lines[i*1024 :
    /// i*(1024+1)]` gives batch i only i lines from line 1024 i (I.7: lines skipped, and
    /// repeated where batches overlap past i = 1024). `llama3`: the whole split, the held-out
    /// evaluation documents included (`fineweb_tokenizer_trainer.py` iterates all of it).
    Paper,
    /// `llama` only: the first 2,000,000 lines once each, what the I.7 loop meant to read.
    #[serde(rename = "first_2m")]
    First2m,
}

impl TokenizerKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Bpe => "bpe",
            Self::Llama => "llama",
            Self::Llama3 => "llama3",
        }
    }

    /// The smallest vocabulary a trained tokenizer of this kind can have.
    pub fn min_vocab(self) -> usize {
        match self {
            // 256 bytes + <unk>, <s>, </s>.
            Self::Bpe => MIN_BPE_VOCAB,
            // The three specials and a handful of characters.
            Self::Llama => 64,
            // 256 special tokens + 256 bytes.
            Self::Llama3 => 512,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaddingSide {
    Left,
    Right,
}

/// Where stories come from, how they are tokenized and cut to n_ctx (PAPER.md B.1).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    pub source: DataSource,
    /// L: every story is truncated, then padded, to exactly n_ctx tokens.
    pub n_ctx: i64,
    #[serde(default = "default_padding")]
    pub padding: PaddingSide,
    /// BPE vocabulary trained on the training stories (4096 for TinyStories in the paper).
    #[serde(default = "default_vocab")]
    pub vocab_size: usize,
    /// A `tokenizer.json` to use instead of training one.
    #[serde(default)]
    pub tokenizer_path: Option<PathBuf>,
    /// Which tokenizer to train on the training text: "bpe" (default), or the paper's "llama"
    /// (TinyStories) / "llama3" (FineWeb-edu, FineMath).
    #[serde(default, skip_serializing_if = "is_default")]
    pub tokenizer: TokenizerKind,
    /// A base `tokenizer.json` (a BPE model) that `tokenizer` = "llama" / "llama3" retrains in
    /// place of the built-in copy of that base's pipeline, e.g. the real open_llama_3b file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenizer_base: Option<PathBuf>,
    /// The text the tokenizer is trained on: "all" training documents (default), "paper" (the
    /// paper scripts' selection, I.7) or "first_2m" (the corrected reading of I.7; `llama`).
    #[serde(default, skip_serializing_if = "is_default")]
    pub tokenizer_lines: TokenizerLines,
    /// A preset whose text trains the tokenizer instead of this run's own ("own", the default):
    /// the paper's FineMath runs reused the tokenizer trained on FineWeb-edu (B.3). The file is
    /// that preset's runs' own (one cache key: kind, text, vocabulary, lines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenizer_text: Option<String>,
    /// `text`: training file.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// `text`: evaluation file; without it the last `eval_fraction` of `path` is held out.
    #[serde(default)]
    pub eval_path: Option<PathBuf>,
    #[serde(default = "default_marker")]
    pub marker: String,
    /// `text`: drop a trailing piece that has no marker after it (a file cut mid-story).
    #[serde(default = "yes")]
    pub drop_unterminated: bool,
    /// `embedded`: how many stories to generate; `text`: at most this many training stories.
    #[serde(default)]
    pub n_stories: Option<usize>,
    /// At most this many evaluation stories.
    #[serde(default)]
    pub eval_stories: Option<usize>,
    #[serde(default = "default_eval_fraction")]
    pub eval_fraction: f64,
    /// Without an evaluation file: the first N documents are the evaluation split and the rest
    /// train (the paper's FineWeb / FineMath rule); replaces `eval_fraction`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_rows: Option<usize>,
    /// Shuffle the training rows each epoch (the Trainer's default); `false`: rows in order, so
    /// another implementation can take the same batches. Each run writes `data_order.json`.
    #[serde(default = "yes", skip_serializing_if = "is_yes")]
    pub shuffle: bool,
    /// `embedded`: the generator's seed.
    #[serde(default)]
    pub corpus_seed: u64,
    /// `embedded`: generated stories joined (by newlines) into one document, so documents are
    /// long enough for windows of a few hundred tokens (FineWeb's packing, B.2) or for a long
    /// n_ctx; 1 (the default): a story is a document.
    #[serde(default = "one_story", skip_serializing_if = "is_one_story")]
    pub stories_per_doc: usize,
    /// `jsonl` / `parquet`: the column holding the text ("text" when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_column: Option<String>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub packing: Packing,
    /// `hf`: a named preset that fills repo and files (see [`PRESETS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
    /// `hf`: the dataset repo, e.g. "roneneldan/TinyStories".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    /// `hf`: a commit sha (recommended) or branch; "main" when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// `hf`: training files in the repo (parquet, jsonl or marker-separated text, by extension).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
    /// `hf`: evaluation files; without them `eval_fraction` of the training files is held out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub eval_files: Vec<String>,
    /// `hf`: expected sha256 per file name; a mismatch stops the run.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub sha256: std::collections::BTreeMap<String, String>,
}

pub(super) fn default_padding() -> PaddingSide {
    PaddingSide::Right
}
pub(super) fn default_vocab() -> usize {
    4096
}
pub(super) fn default_marker() -> String {
    "<|endoftext|>".into()
}
pub(super) fn yes() -> bool {
    true
}
fn one_story() -> usize {
    1
}
fn is_one_story(n: &usize) -> bool {
    *n == 1
}
fn is_yes(b: &bool) -> bool {
    *b
}
pub(super) fn default_eval_fraction() -> f64 {
    0.1
}

/// A named data set of the paper: where it lives and its split rule (PAPER.md B.1-B.3).
pub struct Preset {
    pub repo: &'static str,
    /// File names or glob patterns, resolved against the repo's file list.
    pub files: &'static [&'static str],
    pub eval_files: &'static [&'static str],
    /// "test = the first N rows, train = the rest".
    pub eval_rows: Option<usize>,
}

pub fn preset(name: &str) -> Option<Preset> {
    Some(match name {
        // B.1: raw text with <|endoftext|> markers; the paper trains on the first ~2M stories
        // (data.n_stories = 2000896) and evaluates on the validation split.
        "tinystories" => Preset {
            repo: "roneneldan/TinyStories",
            files: &["TinyStories-train.txt"],
            eval_files: &["TinyStories-valid.txt"],
            eval_rows: None,
        },
        // B.2: name "sample-10BT"; test = first 50,000 rows, train = the rest.
        "fineweb-edu-10bt" => Preset { repo: "HuggingFaceFW/fineweb-edu", files: &["sample/10BT/*.parquet"], eval_files: &[], eval_rows: Some(50_000) },
        // B.3: config "finemath-4plus"; test = first 50,000 rows, train = the rest.
        "finemath-4plus" => Preset { repo: "HuggingFaceTB/finemath", files: &["finemath-4plus/*.parquet"], eval_files: &[], eval_rows: Some(50_000) },
        _ => return None,
    })
}

pub const PRESETS: &[&str] = &["tinystories", "fineweb-edu-10bt", "finemath-4plus"];

/// The smallest vocabulary a trained byte-level BPE can have: 256 bytes and the specials
/// (`data::SPECIALS`, which checks this at compile time).
pub const MIN_BPE_VOCAB: usize = 259;

impl DataConfig {
    /// One local file as a whole training split (no evaluation split), its format by its
    /// extension: `.parquet`, `.jsonl` / `.json` (text in `column`), else text split on
    /// `marker`. For the commands that read a file of documents (`data tokenizer`, `eval`).
    pub fn for_file(path: &Path, column: Option<&str>, marker: &str, drop_unterminated: bool) -> Self {
        let name = path.to_string_lossy().to_lowercase();
        let source = if name.ends_with(".parquet") {
            DataSource::Parquet
        } else if name.ends_with(".jsonl") || name.ends_with(".json") {
            DataSource::Jsonl
        } else {
            DataSource::Text
        };
        let mut cfg: DataConfig = toml::from_str("source = \"text\"\nn_ctx = 512").expect("a valid table");
        cfg.source = source;
        cfg.path = Some(path.to_path_buf());
        cfg.marker = marker.to_string();
        cfg.drop_unterminated = drop_unterminated;
        cfg.text_column = column.filter(|_| source != DataSource::Text).map(String::from);
        cfg.eval_fraction = 0.0;
        cfg
    }

    /// Whether the stories were separated by `marker` in the files read (so the Llama tokenizer
    /// trains on the marker lines too, as on `TinyStories-train.txt`).
    pub fn marker_in_text(&self) -> bool {
        match self.source {
            DataSource::Text => true,
            DataSource::Hf => !self.files.iter().any(|f| f.ends_with(".parquet") || f.ends_with(".jsonl") || f.ends_with(".json")),
            _ => false,
        }
    }

    /// The data a `tokenizer_text` preset names, read as this run's would be (its tokenizer
    /// settings, the preset's files and split), normalized.
    pub fn tokenizer_text_config(&self) -> Option<Result<DataConfig, Invalid>> {
        let name = self.tokenizer_text.as_ref()?;
        let mut t = self.clone();
        t.forget_source();
        t.source = DataSource::Hf;
        t.preset = Some(name.clone());
        Some(t.normalize().map(|_| t))
    }

    /// Clears every setting that names where the text comes from (preset, repo, revision, files
    /// and their pins, split sizes, column, paths, another preset's tokenizer text), so a caller
    /// can point the rest of the settings (n_ctx, vocabulary, tokenizer, padding) at other text.
    pub fn forget_source(&mut self) {
        self.tokenizer_text = None;
        self.preset = None;
        self.repo = None;
        self.revision = None;
        self.files.clear();
        self.eval_files.clear();
        self.sha256.clear();
        self.eval_rows = None;
        self.n_stories = None;
        self.eval_stories = None;
        self.text_column = None;
        self.path = None;
        self.eval_path = None;
    }

    /// Fills a Hugging Face preset's repo and files, and checks every setting against the others.
    pub fn normalize(&mut self) -> Result<(), Invalid> {
        if self.tokenizer_text.as_deref() == Some("own") {
            self.tokenizer_text = None;
        }
        if let Some(name) = &self.tokenizer_text {
            if preset(name).is_none() {
                return Err(Invalid::new("data.tokenizer_text", format!("`{name}` is not a preset; known: {}, or \"own\"", PRESETS.join(", "))));
            }
            if self.tokenizer_path.is_some() {
                return Err(Invalid::new("data.tokenizer_text", "names the text a tokenizer is trained on; with tokenizer_path none is trained: remove one"));
            }
            if let Some(Err(e)) = self.tokenizer_text_config() {
                return Err(Invalid::new("data.tokenizer_text", format!("the preset's data as this run reads it: {} ({})", e.message, e.key)));
            }
        }
        if self.source == DataSource::Hf {
            if let Some(name) = self.preset.clone() {
                let p = preset(&name).ok_or_else(|| {
                    Invalid::new("data.preset", format!("unknown preset `{name}`; known: {}", PRESETS.join(", ")))
                })?;
                self.repo.get_or_insert_with(|| p.repo.to_string());
                if self.files.is_empty() {
                    self.files = p.files.iter().map(|f| f.to_string()).collect();
                }
                if self.eval_files.is_empty() && self.eval_rows.is_none() {
                    self.eval_files = p.eval_files.iter().map(|f| f.to_string()).collect();
                    self.eval_rows = p.eval_rows;
                }
            }
            if self.repo.is_none() || self.files.is_empty() {
                return Err(Invalid::new("data.repo", "source = \"hf\" needs repo = \"owner/name\" and files = [...], or a preset"));
            }
        } else if self.preset.is_some() || self.repo.is_some() || !self.files.is_empty() {
            return Err(Invalid::new("data.repo", "preset / repo / files belong to source = \"hf\""));
        }
        if self.n_ctx < 2 {
            return Err(Invalid::new("data.n_ctx", format!("must be at least 2 (a model sees n_ctx tokens), got {}", self.n_ctx)));
        }
        if self.tokenizer_path.is_some() && (self.tokenizer != TokenizerKind::Bpe || self.tokenizer_base.is_some()) {
            return Err(Invalid::new(
                "data.tokenizer_path",
                "a finished tokenizer is used as is; remove data.tokenizer / data.tokenizer_base, or remove tokenizer_path to train one",
            ));
        }
        match (self.tokenizer_lines, self.tokenizer) {
            (TokenizerLines::All, _) => {}
            _ if self.tokenizer_path.is_some() => {
                return Err(Invalid::new("data.tokenizer_lines", "selects the text a tokenizer is trained on; with tokenizer_path none is trained: remove one"))
            }
            (_, TokenizerKind::Bpe) => {
                return Err(Invalid::new("data.tokenizer_lines", "reads the paper's tokenizer scripts; set tokenizer = \"llama\" or \"llama3\", or leave it \"all\""))
            }
            (TokenizerLines::First2m, TokenizerKind::Llama3) => {
                return Err(Invalid::new(
                    "data.tokenizer_lines",
                    "\"first_2m\" is the TinyStories script's line reading (tokenizer = \"llama\"); FineWeb's script reads the whole split (\"paper\")",
                ))
            }
            _ => {}
        }
        if self.tokenizer_base.is_some() && self.tokenizer == TokenizerKind::Bpe {
            return Err(Invalid::new(
                "data.tokenizer_base",
                "a base is retrained by tokenizer = \"llama\" or \"llama3\" (which also says how its text is read); set one",
            ));
        }
        let min_vocab = if self.tokenizer_path.is_some() { 16 } else { self.tokenizer.min_vocab() };
        if !(min_vocab..=65536).contains(&self.vocab_size) {
            let why = match (self.tokenizer_path.is_some(), self.tokenizer) {
                (true, _) => "",
                (false, TokenizerKind::Bpe) => " (a trained byte-level BPE holds 256 bytes + 3 specials)",
                (false, TokenizerKind::Llama) => " (the Llama tokenizer's 3 specials and the text's characters)",
                (false, TokenizerKind::Llama3) => " (the Llama 3 tokenizer holds 256 special tokens + 256 bytes)",
            };
            return Err(Invalid::new("data.vocab_size", format!("must be in {min_vocab}..=65536{why}, got {}", self.vocab_size)));
        }
        if !(0.0..1.0).contains(&self.eval_fraction) {
            return Err(Invalid::new("data.eval_fraction", format!("must be in [0, 1), got {}", self.eval_fraction)));
        }
        match self.source {
            DataSource::Text | DataSource::Jsonl | DataSource::Parquet if self.path.is_none() => {
                return Err(Invalid::new("data.path", format!("source = \"{:?}\" needs path = \"<file>\"", self.source).to_lowercase()))
            }
            DataSource::Embedded if self.path.is_some() || self.eval_path.is_some() => {
                return Err(Invalid::new("data.path", "source = \"embedded\" reads no files; remove path/eval_path or use source = \"text\""))
            }
            DataSource::Hf if self.path.is_some() || self.eval_path.is_some() => {
                return Err(Invalid::new("data.path", "source = \"hf\" downloads its files; use files / eval_files, not path"))
            }
            DataSource::Embedded | DataSource::Text if self.text_column.is_some() => {
                return Err(Invalid::new("data.text_column", "only jsonl and parquet sources have columns"))
            }
            _ => {}
        }
        if self.stories_per_doc == 0 {
            return Err(Invalid::new("data.stories_per_doc", "must be at least 1 (generated stories per document)"));
        }
        if self.stories_per_doc > 1 && self.source != DataSource::Embedded {
            return Err(Invalid::new("data.stories_per_doc", "joins the embedded generator's stories; other sources' documents are their files'"));
        }
        if self.eval_rows.is_some() && (self.eval_path.is_some() || !self.eval_files.is_empty()) {
            return Err(Invalid::new("data.eval_rows", "give either an evaluation file or eval_rows, not both"));
        }
        if self.marker.is_empty() {
            return Err(Invalid::new("data.marker", "must not be empty"));
        }
        Ok(())
    }
}
