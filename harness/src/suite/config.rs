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
    /// Frozen embeddings of a pairs set's queries and passages (PAPER.md A.6), cached as
    /// safetensors for every consumer.
    Embed,
    /// The frozen-embedding retrieval model over n slots (PAPER.md F.1, T11, T14).
    RetrievalFrozen,
    /// InfoNCE tuning of the embedding model itself (PAPER.md F.2, T1, T12, T13).
    RetrievalInfonce,
    /// Top-1 retrieval accuracy vs n over cached embeddings (the F.2 protocol).
    RetrievalEval,
    /// Step time, tokens/s, MFU and peak memory of a model, against the PyTorch peer (C.5, T6, T7).
    Throughput,
}

impl ExperimentKind {
    /// The sections of a run config this kind reads; defaults contribute only these, so the run
    /// id of a kind does not move with settings it never uses.
    pub fn sections(self) -> &'static [&'static str] {
        match self {
            Self::Clm => &["model", "data", "train", "device", "init_from", "cpu_kernels"],
            Self::Representation => &["model", "data", "representation", "device", "cpu_kernels"],
            Self::Embed => &["model", "data", "pairs", "embed", "device", "cpu_kernels"],
            Self::RetrievalFrozen => &["retrieval_frozen", "device", "cpu_kernels"],
            Self::RetrievalInfonce => &["model", "data", "pairs", "retrieval_infonce", "device", "cpu_kernels"],
            Self::RetrievalEval => &["retrieval_eval", "device", "cpu_kernels"],
            Self::Throughput => &["model", "throughput", "device", "cpu_kernels"],
        }
    }

    /// The kinds whose runs this kind may consume (`from = "<experiment>"`).
    pub fn producers(self) -> &'static [ExperimentKind] {
        match self {
            Self::Clm => &[],
            Self::Representation => &[Self::Clm],
            Self::Embed => &[Self::Clm, Self::RetrievalInfonce],
            Self::RetrievalFrozen | Self::RetrievalEval => &[Self::Embed],
            Self::RetrievalInfonce => &[Self::Clm],
            Self::Throughput => &[],
        }
    }

    /// The suite's spelling (`kind = "..."`).
    pub fn name(self) -> String {
        serde_json::to_value(self).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
    }
}

/// The run another run consumes: its experiment and run id. Part of the consumer's config, so a
/// changed producer changes the consumer's run id (PAPER.md F: CLM -> embed -> retrieval).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    pub experiment: String,
    pub kind: ExperimentKind,
    pub run: String,
}

pub use crate::device::DeviceChoice;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    pub kind: ExperimentKind,
    /// Absent only for runs that need no model (retrieval over embeddings from a file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<DataConfig>,
    /// CLM training; for `representation`, the training of the checkpoint it inverts.
    #[serde(default)]
    pub train: Option<TrainConfig>,
    #[serde(default)]
    pub representation: Option<RepresentationConfig>,
    #[serde(default = "default_seed")]
    pub seed: u64,
    #[serde(default = "default_device")]
    pub device: DeviceChoice,
    /// The CPU kernel path (`native`, or `portable`: the same bits on every CPU with AVX2; see
    /// `kernels`). Process-wide, so one value for every run of a suite; `native` is left out of
    /// the config, so the ids of native runs are what they were before the key existed.
    #[serde(default, skip_serializing_if = "crate::kernels::CpuKernels::is_native")]
    pub cpu_kernels: crate::kernels::CpuKernels,
    /// Start from this safetensors checkpoint (reference key names) instead of a fresh init.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_from: Option<PathBuf>,
    /// The run this one consumes (`from = "<experiment>"` in the suite).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<Upstream>,
    /// The suite profile this run was expanded at (`--profile`); part of the run id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pairs: Option<PairsConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embed: Option<EmbedConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retrieval_frozen: Option<FrozenConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retrieval_infonce: Option<InfonceConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retrieval_eval: Option<EvalConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput: Option<ThroughputConfig>,
}

impl RunConfig {
    /// The precision the run computes in: its training's, its InfoNCE tuning's or its
    /// throughput measurement's (fp32 for the kinds that take none).
    pub fn precision(&self) -> Precision {
        self.train
            .as_ref()
            .map(|t| t.precision)
            .or(self.retrieval_infonce.as_ref().map(|r| r.precision))
            .or(self.throughput.as_ref().map(|t| t.precision))
            .unwrap_or_default()
    }

    /// The model; present for every kind that builds one (checked when the suite is read).
    pub fn model(&self) -> &ModelSpec {
        self.model.as_ref().expect("validated: this kind has a model")
    }

    /// The data settings; present for every kind that tokenizes (checked when the suite is read).
    pub fn data(&self) -> &DataConfig {
        self.data.as_ref().expect("validated: this kind has data settings")
    }
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
    /// Gradient accumulation: each optimizer step sums the gradients of `accumulate` batches of
    /// `batch_size`, normalised over the whole global batch's tokens, so it equals one batch of
    /// `accumulate * batch_size` (the paper's 4-GPU global batches on one GPU, C.1).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub accumulate: u64,
    /// Stop after this many minutes of the run's wall-clock time even if steps remain (the
    /// paper's 12 h / 2.25 h budgets, C.1); the LR schedule keeps its full length. A run stopped
    /// this way depends on the machine: its summary and the report say so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_minutes: Option<f64>,
    /// End the run after this many optimizer steps while the LR schedule keeps the length of
    /// `steps` / `tokens`: the paper's runs were stopped by a compute budget before their
    /// schedule (set by an epoch count) ended (PAPER.md C.2). At or beyond the schedule's end it
    /// changes nothing, so a profile that shortens `steps` needs no change here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_at: Option<u64>,
}

fn one() -> u64 {
    1
}
fn is_one(v: &u64) -> bool {
    *v == 1
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
    /// Sequences per optimizer step: `batch_size * accumulate`.
    pub fn global_batch(&self) -> u64 {
        self.batch_size as u64 * self.accumulate
    }

    /// The LR schedule's length, from `steps` or from `tokens` (rounded up to whole steps).
    pub fn total_steps(&self, n_ctx: i64) -> u64 {
        match (self.steps, self.tokens) {
            (Some(s), _) => s,
            (None, Some(t)) => t.div_ceil(self.global_batch() * n_ctx as u64),
            (None, None) => 0,
        }
    }

    /// The steps the run trains: the schedule's length, or `stop_at` when that comes first.
    pub fn budget_steps(&self, n_ctx: i64) -> u64 {
        let total = self.total_steps(n_ctx);
        self.stop_at.map_or(total, |s| s.min(total))
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
    /// Every checkpoint of the CLM run named by `from = "<experiment>"` (the default then);
    /// step 0 is the same init.
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

/// Where query/passage pairs come from (PAPER.md B.1, B.3, F). The last `test_fraction` (or
/// `test_pairs`) of them is the test split, as the paper's 180k/20k.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairsConfig {
    pub source: PairsSource,
    /// `file`: JSON lines or parquet pairs; `derived`: marker-separated stories.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// `file`: the fields holding the query (summary) and the passage.
    #[serde(default = "default_query_field")]
    pub query_field: String,
    #[serde(default = "default_passage_field")]
    pub passage_field: String,
    /// `derived`: the story separator.
    #[serde(default = "default_marker")]
    pub marker: String,
    /// At most this many pairs (the first ones); `embedded`: how many stories to generate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_pairs: Option<usize>,
    #[serde(default = "default_eval_fraction")]
    pub test_fraction: f64,
    /// The last N pairs are the test split (replaces test_fraction).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_pairs: Option<usize>,
    /// `embedded`: the generator's seed (the CLM corpus's, so passages were seen in
    /// pretraining as in the paper, I.15); `derived`: which sentence becomes the query.
    #[serde(default)]
    pub seed: u64,
}

fn default_query_field() -> String {
    "query".into()
}
fn default_passage_field() -> String {
    "passage".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PairsSource {
    /// The embedded corpus's stories and their one-sentence summaries (synthetic).
    Embedded,
    /// One sentence of each story as the query, the rest as the passage (labelled derived).
    Derived,
    /// A pairs file (e.g. `harness data summarize` output joined with its stories).
    File,
}

/// Where an embedding model's weights come from when no producer run is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightsSource {
    /// The producer run's `model.safetensors` (`from = "<experiment>"`).
    Producer,
    /// A fresh init from the run's seed (the paper's untrained baseline).
    Untrained,
    /// A safetensors file with the reference's key names (`checkpoint`).
    Checkpoint,
    /// Embeddings computed elsewhere (`file`), e.g. e5-mistral's: no model runs.
    File,
}

/// PAPER.md A.6: one hidden vector per text, frozen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbedConfig {
    #[serde(default = "default_weights")]
    pub source: WeightsSource,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<PathBuf>,
    /// `source = "file"`: safetensors with `train_query`, `train_passage`, `test_query`,
    /// `test_passage` (or only the test pair, `query` and `passage`), row i of each a pair.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// `source = "file"`: the name shown in tables (e.g. "e5-mistral-7b-instruct").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default = "default_position")]
    pub position: mm_models::retrieval::EmbedPosition,
    /// Padding side of the embedded texts; the model's training padding when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub padding: Option<PaddingSide>,
    #[serde(default = "default_embed_batch")]
    pub batch_size: i64,
}

fn default_weights() -> WeightsSource {
    WeightsSource::Producer
}
fn default_position() -> mm_models::retrieval::EmbedPosition {
    mm_models::retrieval::EmbedPosition::Penultimate
}
fn default_embed_batch() -> i64 {
    64
}

/// PAPER.md F.1, C.4: a retrieval mixer over n slots trained on frozen embeddings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrozenConfig {
    /// Slots: the query plus n - 1 candidates (chance CE ln(n - 1)).
    #[serde(default = "default_n_slots")]
    pub n: i64,
    #[serde(default = "default_frozen_depth")]
    pub depth: usize,
    #[serde(default = "default_frozen_epochs")]
    pub epochs: u64,
    #[serde(default = "default_retrieval_lr")]
    pub lr: f64,
    #[serde(default = "default_warmup")]
    pub warmup_steps: u64,
    #[serde(default = "default_frozen_batch")]
    pub batch_size: i64,
    /// The v1 code's softmax before the cross entropy (PAPER.md I.9); off by default.
    #[serde(default)]
    pub double_softmax: bool,
    #[serde(default = "default_clip")]
    pub grad_clip: f64,
}

fn default_n_slots() -> i64 {
    32
}
fn default_frozen_depth() -> usize {
    8
}
fn default_frozen_epochs() -> u64 {
    100
}
fn default_retrieval_lr() -> f64 {
    1e-4
}
fn default_frozen_batch() -> i64 {
    128
}

/// PAPER.md F.2, C.4: InfoNCE on groups of 1 query + (group - 1) passages, one matching.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InfonceConfig {
    /// Sequences per group: the query and group - 1 passages.
    #[serde(default = "default_group")]
    pub group: i64,
    /// Temperature (0.02 in the code; the text says none, I.13).
    #[serde(default = "default_tau")]
    pub tau: f64,
    #[serde(default = "default_retrieval_lr")]
    pub lr: f64,
    #[serde(default = "default_warmup")]
    pub warmup_steps: u64,
    #[serde(default = "default_infonce_epochs")]
    pub epochs: u64,
    /// Groups per optimizer step (the paper's DDP over 4 GPUs: 4 independent groups).
    #[serde(default = "default_groups_per_step")]
    pub groups_per_step: i64,
    #[serde(default = "default_clip")]
    pub grad_clip: f64,
    #[serde(default, skip_serializing_if = "is_default")]
    pub precision: Precision,
    #[serde(default = "default_position")]
    pub position: mm_models::retrieval::EmbedPosition,
    /// Padding side of the texts; the model's training padding when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub padding: Option<PaddingSide>,
    /// The InfoNCE loss on the test pairs every this many steps (and at the end).
    #[serde(default = "default_infonce_eval_every")]
    pub eval_every: u64,
    /// Without `from`: start from this safetensors checkpoint (reference key names) instead of
    /// a fresh init.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<PathBuf>,
}

fn default_group() -> i64 {
    32
}
fn default_tau() -> f64 {
    0.02
}
fn default_infonce_epochs() -> u64 {
    1
}
fn default_groups_per_step() -> i64 {
    1
}
fn default_infonce_eval_every() -> u64 {
    10_000
}

/// The F.2 evaluation: for each test query, n - 1 random test passages plus its own, top-1 by
/// the dot product of L2-normalised embeddings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    /// Samples per comparison, the query slot included (candidates = n - 1), as in T1.
    #[serde(default = "default_eval_ns")]
    pub n: Vec<i64>,
    /// Queries scored per matrix product.
    #[serde(default = "default_eval_chunk")]
    pub chunk: i64,
}

fn default_eval_ns() -> Vec<i64> {
    vec![32, 64, 128, 256, 512, 1024, 2048, 4096, 8192]
}
fn default_eval_chunk() -> i64 {
    512
}

/// Which implementations a `throughput` run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sides {
    /// This harness alone.
    Harness,
    /// The PyTorch peer alone (`bench/pytorch/peer.py`).
    Pytorch,
    /// Both, alternating round by round in fresh processes, with the speed-up.
    #[default]
    Both,
}

/// The peer Llama's attention kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Attention {
    /// `scaled_dot_product_attention` (Hugging Face's default; the harness's only path).
    #[default]
    Sdpa,
    /// Materialised L x L scores (`attn_implementation = "eager"`): the 2023 conditions of T7.
    Eager,
}

/// How the PyTorch peer's process allocates host memory (glibc malloc). CPU steps are sensitive
/// to it: with glibc's defaults every large temporary is a fresh `mmap`, faulted in and zeroed
/// on each step, and glibc's adaptive threshold makes the peer's step time bimodal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerMalloc {
    /// glibc's defaults: the reference as its users run it.
    #[default]
    Glibc,
    /// The harness's own setting (`MALLOC_MMAP_MAX_=0`, no trimming): the same allocator on both
    /// sides, so the speed-up is the implementations' alone.
    Harness,
}

/// `throughput`: speed and memory of one model configuration (PAPER.md C.5, T6, T7), on random
/// tokens (what is computed does not depend on them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThroughputConfig {
    /// `train` (forward, loss, backward, clip, AdamW), `infer` (forward to logits, no
    /// gradients) or `memory` (forward + backward of the blocks without the LM head, T6/T7).
    #[serde(default)]
    pub mode: Mode,
    #[serde(default = "sixteen")]
    pub batch_size: i64,
    #[serde(default = "default_tp_ctx")]
    pub n_ctx: i64,
    #[serde(default = "default_tp_vocab")]
    pub vocab_size: i64,
    #[serde(default)]
    pub precision: Precision,
    /// Steps left out before timing starts.
    #[serde(default = "three")]
    pub warmup: usize,
    /// Timed steps per round.
    #[serde(default = "ten")]
    pub steps: usize,
    /// Rounds per side; each round is a fresh process, the sides alternate.
    #[serde(default = "three")]
    pub rounds: usize,
    #[serde(default)]
    pub sides: Sides,
    #[serde(default, skip_serializing_if = "is_default")]
    pub attention: Attention,
    /// The peer's host allocator: `glibc` (its defaults) or `harness` (the harness's setting).
    #[serde(default, skip_serializing_if = "is_default")]
    pub peer_malloc: PeerMalloc,
    /// Report a peak above this as "OOM (> x GiB)", as T6/T7 did for a 12 GB RTX 3060.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit_gib: Option<f64>,
}

fn sixteen() -> i64 {
    16
}
fn default_tp_ctx() -> i64 {
    512
}
fn default_tp_vocab() -> i64 {
    4096
}
fn three() -> usize {
    3
}
fn ten() -> usize {
    10
}

/// What a `throughput` run measures: a training step, a forward pass, or peak memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Train,
    Infer,
    Memory,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Infer => "infer",
            Self::Memory => "memory",
        }
    }
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
