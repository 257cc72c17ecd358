//! `throughput`: what a speed or memory measurement runs, on which side, in which mode.
use super::*;

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

pub(super) fn sixteen() -> i64 {
    16
}
pub(super) fn default_tp_ctx() -> i64 {
    512
}
pub(super) fn default_tp_vocab() -> i64 {
    4096
}
pub(super) fn three() -> usize {
    3
}
pub(super) fn ten() -> usize {
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
