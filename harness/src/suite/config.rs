//! The resolved configuration of one run: what a suite's defaults, experiment, sweep point and
//! `--set` overrides add up to. Every struct denies unknown fields; defaults are the paper's.
use mm_models::ModelSpec;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `kind` of an experiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExperimentKind {
    /// Causal language modelling: train, evaluate, checkpoint (PAPER.md C, E).
    Clm,
    /// Input-representation (invertibility) test (PAPER.md D).
    Representation,
}

impl ExperimentKind {
    /// The sections of a run config this kind reads; defaults contribute only these, so the run
    /// id of a kind does not move with settings it never uses.
    pub fn sections(self) -> &'static [&'static str] {
        match self {
            Self::Clm => &["model", "data", "train", "device", "init_from"],
            Self::Representation => &["model", "data", "train", "representation", "device"],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceChoice {
    Cpu,
    Cuda,
    /// CUDA when available, else CPU (resolved before the run id is computed).
    Auto,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    pub kind: ExperimentKind,
    pub model: ModelSpec,
    pub data: DataConfig,
    /// CLM training; for `representation`, the training of the checkpoint it inverts.
    #[serde(default)]
    pub train: Option<TrainConfig>,
    #[serde(default)]
    pub representation: Option<RepresentationConfig>,
    #[serde(default = "default_seed")]
    pub seed: u64,
    #[serde(default = "default_device")]
    pub device: DeviceChoice,
    /// Start from this safetensors checkpoint (reference key names) instead of a fresh init.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_from: Option<PathBuf>,
}

fn default_seed() -> u64 {
    0
}
fn default_device() -> DeviceChoice {
    DeviceChoice::Cpu
}

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
    /// `embedded`: the generator's seed.
    #[serde(default)]
    pub corpus_seed: u64,
    /// `jsonl` / `parquet`: the column holding the text ("text" when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_column: Option<String>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub packing: Packing,
    /// `hf`: a named preset that fills repo and files (see `harness::data::hub::PRESETS`).
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

fn default_padding() -> PaddingSide {
    PaddingSide::Right
}
fn default_vocab() -> usize {
    4096
}
fn default_marker() -> String {
    "<|endoftext|>".into()
}
fn yes() -> bool {
    true
}
fn default_eval_fraction() -> f64 {
    0.1
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Precision {
    #[default]
    Fp32,
    /// The paper's setting (HF `fp16=True`): CUDA autocast to fp16, fp32 master weights, dynamic
    /// loss scaling (scale 2^16, halved on inf/nan with the step skipped, doubled every 2000
    /// clean steps). CUDA only.
    Fp16Amp,
    /// Manual mixed precision: fp32 master weights, bf16 matrix products, fp32 norms and loss
    /// (`mm_models::precision`). No loss scaling. CPU or CUDA.
    Bf16,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// PAPER.md C: AdamW (0.9, 0.999, 1e-8, wd 0), linear warm-up then linear decay to 0, clip 1.0.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Optimizer steps; or give `tokens` and the steps follow from batch_size * n_ctx.
    #[serde(default)]
    pub steps: Option<u64>,
    #[serde(default)]
    pub tokens: Option<u64>,
    pub batch_size: i64,
    #[serde(default = "default_lr")]
    pub lr: f64,
    #[serde(default = "default_warmup")]
    pub warmup_steps: u64,
    #[serde(default)]
    pub weight_decay: f64,
    #[serde(default = "default_beta1")]
    pub beta1: f64,
    #[serde(default = "default_beta2")]
    pub beta2: f64,
    #[serde(default = "default_eps")]
    pub eps: f64,
    #[serde(default = "default_clip")]
    pub grad_clip: f64,
    /// Evaluate every this many steps (and at the end).
    #[serde(default = "default_eval_every")]
    pub eval_every: u64,
    /// Evaluation batches per evaluation; all of the eval set when absent.
    #[serde(default)]
    pub eval_batches: Option<u64>,
    /// Save a checkpoint every this many steps (the final one is always saved).
    #[serde(default)]
    pub checkpoint_every: Option<u64>,
    /// `"fp32"` (default) or `"fp16-amp"`; left out of the run id while it is the default.
    #[serde(default, skip_serializing_if = "is_default")]
    pub precision: Precision,
}

fn default_lr() -> f64 {
    5e-4
}
fn default_warmup() -> u64 {
    500
}
fn default_beta1() -> f64 {
    0.9
}
fn default_beta2() -> f64 {
    0.999
}
fn default_eps() -> f64 {
    1e-8
}
fn default_clip() -> f64 {
    1.0
}
fn default_eval_every() -> u64 {
    4000
}

impl TrainConfig {
    /// The step budget, from `steps` or from `tokens` (rounded up to whole steps).
    pub fn total_steps(&self, n_ctx: i64) -> u64 {
        match (self.steps, self.tokens) {
            (Some(s), _) => s,
            (None, Some(t)) => t.div_ceil((self.batch_size * n_ctx) as u64),
            (None, None) => 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RepresentationLoss {
    /// Σ |T - A(a)| (the reference's default).
    L1,
    /// 1 - |cos(T, A(a))| per position.
    Cosine,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelSource {
    /// A freshly initialised model (the run's seed is the init seed).
    Untrained,
    /// Every checkpoint of the CLM run with this run's model, data, train and seed (it must come
    /// earlier in the suite); step 0 is the same init.
    Trained,
    /// A safetensors file with the reference's key names (`representation.checkpoint`), e.g. a
    /// checkpoint trained by the author's PyTorch code.
    Checkpoint,
}

/// PAPER.md D: gradient descent on the input of the block stack, then pseudo-inverse decoding.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepresentationConfig {
    #[serde(default = "default_source")]
    pub source: ModelSource,
    /// The file for `source = "checkpoint"`.
    #[serde(default)]
    pub checkpoint: Option<PathBuf>,
    /// Blocks of A(·); all when absent.
    #[serde(default)]
    pub depth: Option<usize>,
    #[serde(default = "default_gd_steps")]
    pub steps: u64,
    #[serde(default = "default_lr0")]
    pub lr0: f64,
    #[serde(default = "default_loss")]
    pub loss: RepresentationLoss,
    #[serde(default = "default_top_k")]
    pub top_k: i64,
    /// Drop the first `skip` outputs from the target (the non-self variant, D.8).
    #[serde(default)]
    pub skip: i64,
    /// Prompts typed into the suite; without them the first `n_prompts` eval stories are used.
    #[serde(default)]
    pub prompts: Vec<String>,
    #[serde(default = "default_n_prompts")]
    pub n_prompts: usize,
}

fn default_source() -> ModelSource {
    ModelSource::Untrained
}
fn default_gd_steps() -> u64 {
    500
}
fn default_lr0() -> f64 {
    0.02
}
fn default_loss() -> RepresentationLoss {
    RepresentationLoss::L1
}
fn default_top_k() -> i64 {
    5
}
fn default_n_prompts() -> usize {
    10
}
