//! Models of Badger, "Masked Mixers for Language Generation and Retrieval" (arXiv 2409.01482),
//! on libtorch through `tch`.
//!
//! One file per family: [`masked_mixer`] (PAPER.md A.1, A.2: flat, expanded, kernel k, parallel,
//! multi-head, bidirectional), [`transformer`] (A.3 Llama-style; A.4 transfixer), [`gpt`] (A.3 GPT-1).
//! Variable paths equal the reference PyTorch state-dict keys (`wte.weight`,
//! `mixerblocks.0.conv.weight`, `model.layers.0.self_attn.q_proj.weight`, ...), so checkpoints
//! move between the two without a renaming table.

pub mod checkpoint;
pub mod error;
pub mod gpt;
pub mod init;
pub mod mask;
pub mod masked_mixer;
pub mod spec;
pub mod transformer;

pub use error::ModelError;
pub use spec::{GptSpec, LlamaSpec, MixerSpec, ModelSpec};

use tch::Tensor;

/// A causal language model split into the pieces the experiments need: the embedding, the stack
/// of blocks (the representation test inverts it), and the head.
///
/// # Shapes
/// tokens `[b, t]` (int64) -> embeddings `[b, t, d]` -> hidden `[b, t, d]` -> logits `[b, t, V]`.
pub trait CausalLm {
    /// `wte(tokens)`: `[b, t]` -> `[b, t, d]`.
    fn embed(&self, tokens: &Tensor) -> Tensor;
    /// The first `depth` blocks (all when `None`) on embeddings; no final norm, no head.
    fn blocks(&self, xs: &Tensor, depth: Option<usize>, train: bool) -> Tensor;
    /// Final norm (where the architecture has one) and the LM head: `[b, t, d]` -> `[b, t, V]`.
    fn head(&self, hidden: &Tensor) -> Tensor;
    /// The `[V, d]` token embedding matrix.
    fn embedding_weight(&self) -> Tensor;
    fn n_layers(&self) -> usize;

    fn forward_t(&self, tokens: &Tensor, train: bool) -> Tensor {
        self.head(&self.blocks(&self.embed(tokens), None, train))
    }
}

/// Causal LM loss as the reference computes it (PAPER.md A.1 step 5): logits at position i
/// predict the label at i + 1, labels of -100 (pads) are ignored, mean over the rest.
///
/// # Shapes
/// logits `[b, t, V]`, labels `[b, t]`.
pub fn causal_lm_loss(logits: &Tensor, labels: &Tensor) -> Tensor {
    let (_b, t, v) = logits.size3().expect("logits are [b, t, V]");
    let shifted = logits.narrow(1, 0, t - 1).reshape([-1, v]); // [b*(t-1), V]
    let targets = labels.narrow(1, 1, t - 1).reshape([-1]); // [b*(t-1)]
    shifted.to_kind(tch::Kind::Float).cross_entropy_loss::<Tensor>(
        &targets,
        None,
        tch::Reduction::Mean,
        -100,
        0.0,
    )
}
