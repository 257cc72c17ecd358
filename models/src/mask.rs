//! The masks of the token-mixing layers (PAPER.md A.1, A.2, I.1, I.2): one place for each.
//!
//! Masks are applied functionally in forward (`W ⊙ M`), so outputs are causal whatever the stored
//! weights hold. Output position i sees input positions 0..=i (diagonal included); the
//! bidirectional mixer's reverse stream sees only j >= i + 2.
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// How masked-away weights are treated by the gradient (PAPER.md I.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaskGrad {
    /// `W ⊙ M`: masked entries get zero gradient.
    #[default]
    Functional,
    /// As the reference, which overwrites the weights in place each forward: masked entries get
    /// the gradient they would have unmasked, so it counts in the clip norm (and Adam updates
    /// them, though no forward ever uses them). The kept entries follow the same trajectory.
    Reference,
}

/// Keeps `in <= out` over the last two axes `[.., out, in]`.
pub fn causal(w: &Tensor) -> Tensor {
    w.tril(0)
}

/// Keeps `in >= out + 2` over the last two axes: the reverse stream of the bidirectional mixer,
/// which must not see the token it predicts (i + 1).
pub fn reverse(w: &Tensor) -> Tensor {
    w.triu(2)
}

/// No mask: the retrieval mixer mixes its slots in both directions (PAPER.md A.6).
pub fn none(w: &Tensor) -> Tensor {
    w.shallow_clone()
}

/// The masked weight as forward uses it, with the gradient convention `grad`.
///
/// `Reference`: `W − stopgrad(W − mask(W))` equals `mask(W)` exactly in value, while
/// `∂/∂W` is the full, unmasked gradient, as the in-place reference produces.
pub fn apply(w: &Tensor, mask: fn(&Tensor) -> Tensor, grad: MaskGrad) -> Tensor {
    match grad {
        MaskGrad::Functional => mask(w),
        MaskGrad::Reference => w - (w - mask(w)).detach(),
    }
}
