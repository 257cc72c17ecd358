//! Incremental decoding: a [`Decoder`] holds per-layer state of the positions fed so far and
//! computes the logits of new positions from it, so generating token t costs one position's
//! work, not a forward pass over the prefix.
//!
//! - Llama, transfixer and GPT-1: the keys and values of every layer (a KV cache); the
//!   transfixer also keeps its token mixing's inputs.
//! - Masked mixer: position t of a masked token mixing reads row t of its weight and the mixing's
//!   inputs at positions 0..=t (the mask zeroes the rest), so each layer keeps those inputs (and,
//!   for the expanded and multi-head mixings, the inner rows) and computes only row t.
//!
//! Every decoder equals the model's full forward on the same tokens (tests in each model file);
//! a mixer and GPT-1 hold at most their n_ctx positions.
use tch::Tensor;

pub trait Decoder {
    /// Appends `tokens` (`[b, n]`, int64) at the next n positions and returns their logits
    /// `[b, n, V]`.
    fn feed(&mut self, tokens: &Tensor) -> Tensor;
    /// Positions fed so far.
    fn len(&self) -> i64;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The most positions the model holds: its n_ctx for a mixer (L x L mixing weights) and for
    /// GPT-1 (learned positions); `None` for RoPE models.
    fn capacity(&self) -> Option<i64>;
}

/// `cache` with `new` appended along `dim` (the first call starts it).
pub(crate) fn append(cache: &mut Option<Tensor>, new: &Tensor, dim: i64) -> Tensor {
    let all = match cache.take() {
        Some(c) => Tensor::cat(&[&c, new], dim),
        None => new.shallow_clone(),
    };
    *cache = Some(all.shallow_clone());
    all
}

/// Attention of `n` new queries at positions `from..from + n` over all `from + n` cached keys:
/// causal among the new ones, every cached one visible. q `[b, h, n, hd]`, k and v `[b, h, T, hd]`.
pub(crate) fn cached_attention(q: &Tensor, k: &Tensor, v: &Tensor) -> Tensor {
    let (n, t) = (q.size()[2], k.size()[2]);
    if n == t {
        return Tensor::scaled_dot_product_attention::<Tensor>(q, k, v, None, 0.0, true, None, false);
    }
    if n == 1 {
        return Tensor::scaled_dot_product_attention::<Tensor>(q, k, v, None, 0.0, false, None, false);
    }
    // Query i (position t - n + i) sees keys 0..=t - n + i.
    let opts = (tch::Kind::Int64, q.device());
    let rows = Tensor::arange(n, opts).view([n, 1]) + (t - n);
    let mask = Tensor::arange(t, opts).view([1, t]).le_tensor(&rows);
    Tensor::scaled_dot_product_attention(q, k, v, Some(mask), 0.0, false, None, false)
}
