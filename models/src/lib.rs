//! Models of Badger, "Masked Mixers for Language Generation and Retrieval" (arXiv 2409.01482),
//! on libtorch through `tch`.
//!
//! One file per family: [`masked_mixer`] (PAPER.md A.1, A.2: flat, expanded, kernel k, parallel,
//! multi-head, bidirectional), [`transformer`] (A.3 Llama-style; A.4 transfixer), [`gpt`] (A.3 GPT-1),
//! [`autoencoder`] (A.5 autoencoders, one-step completion), [`retrieval`] (A.6 embeddings, retrieval mixer).
//! Variable paths equal the reference PyTorch state-dict keys (`wte.weight`,
//! `mixerblocks.0.conv.weight`, `model.layers.0.self_attn.q_proj.weight`, ...), so checkpoints
//! move between the two without a renaming table.

pub mod autoencoder;
pub mod checkpoint;
pub mod decode;
pub mod error;
pub mod gpt;
pub mod init;
pub mod mask;
pub mod masked_mixer;
pub mod precision;
pub mod retrieval;
pub mod spec;
pub mod transformer;

pub use decode::Decoder;
pub use error::ModelError;
pub use spec::{AutoencoderSpec, GptSpec, LlamaSpec, MixerSpec, ModelSpec, StepMemory, StepShape};

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

    /// Writes the masks into the stored token-mixing weights (zeroing what forward never uses):
    /// for checkpoints from the reference code or `mask_grad = "reference"`, before any weight
    /// analysis (PAPER.md I.1 (c)). Forward is unaffected either way.
    fn remask(&self) {}

    /// What the logits are compared with.
    fn objective(&self) -> Objective {
        Objective::NextToken
    }

    fn forward_t(&self, tokens: &Tensor, train: bool) -> Tensor {
        self.head(&self.blocks(&self.embed(tokens), None, train))
    }

    /// The last hidden layer that a retrieval embedding reads (PAPER.md A.6): the block stack's
    /// output, after the final norm where the architecture has one (HF `LlamaModel`'s
    /// `last_hidden_state`); an autoencoder's encoder output. `[b, t]` -> `[b, t, d]`.
    fn embedding_states(&self, tokens: &Tensor, train: bool) -> Tensor {
        self.blocks(&self.embed(tokens), None, train)
    }

    /// Incremental decoding: each new position computed from cached state of the earlier ones,
    /// never recomputing the prefix (see [`decode`]). `None` for models that do not generate
    /// left to right (bidirectional ones, autoencoders).
    fn decoder(&self) -> Option<Box<dyn Decoder + '_>> {
        None
    }
}

/// What a model's logits predict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Objective {
    /// The logit at i predicts the label at i + 1 (causal LM, PAPER.md A.1 step 5).
    NextToken,
    /// The logit at i predicts the label at i itself, for positions >= `from` (autoencoders:
    /// from 0; the one-step completion model: from L/2; PAPER.md A.5).
    SamePosition { from: i64 },
}

/// The (logits, targets) pairs an objective compares: `[N, V]` and `[N]`, ignored targets -100.
///
/// # Shapes
/// logits `[b, t, V]`, labels `[b, t]`.
pub fn objective_pairs(logits: &Tensor, labels: &Tensor, objective: Objective) -> (Tensor, Tensor) {
    let (_b, t, v) = logits.size3().expect("logits are [b, t, V]");
    let l = match objective {
        Objective::NextToken => logits.narrow(1, 0, t - 1),
        Objective::SamePosition { from } => logits.narrow(1, from, t - from),
    };
    (l.reshape([-1, v]).to_kind(tch::Kind::Float), objective_targets(labels, objective))
}

/// The targets an objective compares, without the logits: `[b, t]` labels -> `[N]` (ignored
/// ones -100). Counting the non-ignored ones gives a batch's loss denominator on the host.
pub fn objective_targets(labels: &Tensor, objective: Objective) -> Tensor {
    let (_b, t) = labels.size2().expect("labels are [b, t]");
    match objective {
        Objective::NextToken => labels.narrow(1, 1, t - 1),
        Objective::SamePosition { from } => labels.narrow(1, from, t - from),
    }
    .reshape([-1])
}

/// Mean cross entropy of an objective over its non-ignored targets (`nn.CrossEntropyLoss()`).
pub fn lm_loss(logits: &Tensor, labels: &Tensor, objective: Objective) -> Tensor {
    let (l, y) = objective_pairs(logits, labels, objective);
    l.cross_entropy_loss::<Tensor>(&y, None, tch::Reduction::Mean, -100, 0.0)
}

/// Causal LM loss as the reference computes it: logits at position i predict the label at
/// i + 1, labels of -100 (pads) are ignored, mean over the rest.
pub fn causal_lm_loss(logits: &Tensor, labels: &Tensor) -> Tensor {
    lm_loss(logits, labels, Objective::NextToken)
}
