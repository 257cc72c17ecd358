//! The causal mask of the token-mixing layers (PAPER.md A.1, I.1, I.2): one function used by
//! every masked layer.
//!
//! The mask is applied functionally in forward (`W ⊙ tril`), diagonal included: output position
//! i sees input positions 0..=i. Masked entries therefore get zero gradient. The reference code
//! instead overwrites the weights in place each forward, so its masked entries receive gradients
//! that count in the clip norm (I.1); that effect is a trainer option, not a different mask.
use tch::Tensor;

/// `W ⊙ tril(1)` over the last two axes `[.., out, in]`: keeps in <= out.
pub fn causal(w: &Tensor) -> Tensor {
    w.tril(0)
}
