//! The retrieval pipeline's sections (PAPER.md F): `pairs`, `embed`, `retrieval_frozen`,
//! `retrieval_infonce` and `retrieval_eval`.
use super::*;

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

pub(super) fn default_query_field() -> String {
    "query".into()
}
pub(super) fn default_passage_field() -> String {
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

pub(super) fn default_weights() -> WeightsSource {
    WeightsSource::Producer
}
pub(super) fn default_position() -> mm_models::retrieval::EmbedPosition {
    mm_models::retrieval::EmbedPosition::Penultimate
}
pub(super) fn default_embed_batch() -> i64 {
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
    /// The retrieval model's training precision (C.4: fp16); the embeddings are fp32 inputs.
    #[serde(default, skip_serializing_if = "is_default")]
    pub precision: Precision,
    /// Queries of each split an epoch trains on and the test scores: the first `queries` of the
    /// epoch's shuffled order and of the test split's fixed draws, their candidates still drawn
    /// from the whole split. Unset (the paper): every query. The `shapes` profile sets two
    /// batches' worth, so a run at n = 1024 costs two steps, not the split's 32.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queries: Option<u64>,
}

pub(super) fn default_n_slots() -> i64 {
    32
}
pub(super) fn default_frozen_depth() -> usize {
    8
}
pub(super) fn default_frozen_epochs() -> u64 {
    100
}
pub(super) fn default_retrieval_lr() -> f64 {
    1e-4
}
pub(super) fn default_frozen_batch() -> i64 {
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
    /// End after this many optimizer steps while the LR schedule keeps the length of `epochs`
    /// (as `train.stop_at`); the `shapes` profile's two steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_at: Option<u64>,
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

pub(super) fn default_group() -> i64 {
    32
}
pub(super) fn default_tau() -> f64 {
    0.02
}
pub(super) fn default_infonce_epochs() -> u64 {
    1
}
pub(super) fn default_groups_per_step() -> i64 {
    1
}
pub(super) fn default_infonce_eval_every() -> u64 {
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

pub(super) fn default_eval_ns() -> Vec<i64> {
    vec![32, 64, 128, 256, 512, 1024, 2048, 4096, 8192]
}
pub(super) fn default_eval_chunk() -> i64 {
    512
}
