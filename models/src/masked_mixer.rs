//! The flat masked mixer (`LanguageMixer`), PAPER.md A.1; reference code
//! blbadger/maskedmixers `mixer_lm/mixer_trainer_tinystories.py`.
//!
//! ```text
//! h = x + TokenMix(LayerNorm_seq(x))      TokenMix(z)[i] = Σ_{j<=i} W[i, j] z[j] + b[i]
//! y = h + FF(LayerNorm_patch(h))          FF = Linear(d, 4d) -> GELU(erf) -> Linear(4d, d)
//! ```
//! No positional encoding, no final norm, untied head. The token mixing is the reference's
//! `Conv1d(L, L, 1)` (tokens as channels), computed here as one batched matmul with the causal
//! mask applied functionally ([`crate::mask::causal`]).
use crate::{init, mask, CausalLm};
use tch::{nn, nn::Module, Tensor};

#[derive(Debug, Clone, PartialEq)]
pub struct MixerConfig {
    pub vocab_size: i64,
    pub d_model: i64,
    pub n_layers: usize,
    /// L: fixed per model, the token-mixing matrix is L x L.
    pub n_ctx: i64,
    /// FF expansion factor (4 in every reported run).
    pub ff_mult: i64,
    pub tie_weights: bool,
}

impl MixerConfig {
    /// Parameters including embedding and (untied) head; PAPER.md A.7:
    /// `2Vd + n (8d² + 9d + L² + L)` for ff_mult 4.
    pub fn num_params(&self) -> u64 {
        let (v, d, l, f) = (self.vocab_size, self.d_model, self.n_ctx, self.ff_mult);
        let block = 2 * d * f * d + f * d + d // FF weights and biases
            + 4 * d // two LayerNorms
            + l * l + l; // token mixing weight and bias
        let head = if self.tie_weights { 0 } else { v * d };
        (v * d + head + block * self.n_layers as i64) as u64
    }
}

/// Masked token mixing: the reference's `Conv1d(L, L, kernel_size=1)` with weight `[L, L, 1]`
/// and bias `[L]`, stored under the same names.
#[derive(Debug)]
pub struct TokenMixing {
    pub weight: Tensor,
    pub bias: Tensor,
}

impl TokenMixing {
    pub fn new(p: nn::Path, n_ctx: i64) -> Self {
        // Conv1d default init: fan_in = in_channels * kernel = L.
        let weight = p.var("weight", &[n_ctx, n_ctx, 1], init::torch_default(n_ctx));
        let bias = p.var("bias", &[n_ctx], init::torch_default(n_ctx));
        Self { weight, bias }
    }
}

impl Module for TokenMixing {
    /// `[b, L, d]` -> `[b, L, d]`: out[b, i, :] = Σ_j (W ⊙ tril)[i, j] x[b, j, :] + bias[i].
    fn forward(&self, xs: &Tensor) -> Tensor {
        let w = mask::causal(&self.weight.squeeze_dim(-1)); // [L, L]
        w.matmul(xs) + self.bias.unsqueeze(-1) // [b, L, d]
    }
}

#[derive(Debug)]
struct MixerBlock {
    seq_layernorm: nn::LayerNorm,
    conv: TokenMixing,
    patch_layernorm: nn::LayerNorm,
    ff_in: nn::Linear,
    ff_out: nn::Linear,
}

fn layer_norm(p: nn::Path, d: i64) -> nn::LayerNorm {
    nn::layer_norm(p, vec![d], nn::LayerNormConfig { eps: 1e-5, ..Default::default() })
}

impl MixerBlock {
    fn new(p: nn::Path, cfg: &MixerConfig) -> Self {
        let (d, f) = (cfg.d_model, cfg.ff_mult);
        // `patch_ff` is nn.Sequential(Linear, GELU, Linear): indices 0 and 2 hold weights.
        let ff = &p / "patch_ff";
        Self {
            seq_layernorm: layer_norm(&p / "seq_layernorm", d),
            conv: TokenMixing::new(&p / "conv", cfg.n_ctx),
            patch_layernorm: layer_norm(&p / "patch_layernorm", d),
            ff_in: init::linear(&ff / 0, d, f * d, true),
            ff_out: init::linear(&ff / 2, f * d, d, true),
        }
    }
}

impl Module for MixerBlock {
    fn forward(&self, xs: &Tensor) -> Tensor {
        let h = xs + xs.apply(&self.seq_layernorm).apply(&self.conv);
        let ff = h.apply(&self.patch_layernorm).apply(&self.ff_in).gelu("none").apply(&self.ff_out);
        h + ff
    }
}

#[derive(Debug)]
pub struct MaskedMixer {
    pub cfg: MixerConfig,
    wte: nn::Embedding,
    blocks: Vec<MixerBlock>,
    lm_head: Option<nn::Linear>,
}

impl MaskedMixer {
    pub fn new(p: &nn::Path, cfg: MixerConfig) -> Self {
        let wte = init::embedding(p / "wte", cfg.vocab_size, cfg.d_model, 1.0);
        let blocks = (0..cfg.n_layers).map(|i| MixerBlock::new(p / "mixerblocks" / i, &cfg)).collect();
        let lm_head = (!cfg.tie_weights)
            .then(|| init::linear(p / "lm_head", cfg.d_model, cfg.vocab_size, false));
        Self { cfg, wte, blocks, lm_head }
    }
}

impl CausalLm for MaskedMixer {
    fn embed(&self, tokens: &Tensor) -> Tensor {
        tokens.apply(&self.wte)
    }

    fn blocks(&self, xs: &Tensor, depth: Option<usize>, _train: bool) -> Tensor {
        let n = depth.unwrap_or(self.blocks.len()).min(self.blocks.len());
        self.blocks[..n].iter().fold(xs.shallow_clone(), |h, b| b.forward(&h))
    }

    fn head(&self, hidden: &Tensor) -> Tensor {
        match &self.lm_head {
            Some(head) => hidden.apply(head),
            None => hidden.matmul(&self.wte.ws.tr()),
        }
    }

    fn embedding_weight(&self) -> Tensor {
        self.wte.ws.shallow_clone()
    }

    fn n_layers(&self) -> usize {
        self.blocks.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn tiny() -> (nn::VarStore, MaskedMixer) {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = MixerConfig { vocab_size: 50, d_model: 8, n_layers: 2, n_ctx: 6, ff_mult: 4, tie_weights: false };
        let m = MaskedMixer::new(&vs.root(), cfg);
        (vs, m)
    }

    #[test]
    fn token_mixing_matches_dense_conv_formula() {
        let (_vs, m) = tiny();
        let conv = &m.blocks[0].conv;
        let x = Tensor::randn([3, 6, 8], (Kind::Float, Device::Cpu));
        let got = conv.forward(&x);
        // Independent formula: the reference's Conv1d(L, L, 1) on the masked weight.
        let w = conv.weight.tril(0); // tril on [out, in] per tap, as the reference writes it
        let want = x.conv1d(&w, Some(&conv.bias), [1], [0], [1], 1);
        assert!(got.allclose(&want, 1e-5, 1e-6, false));
    }

    #[test]
    fn masked_entries_get_no_gradient() {
        let (_vs, m) = tiny();
        let conv = &m.blocks[0].conv;
        let x = Tensor::randn([2, 6, 8], (Kind::Float, Device::Cpu));
        conv.forward(&x).sum(Kind::Float).backward();
        let g = conv.weight.grad().squeeze_dim(-1);
        let upper = g.triu(1).abs().sum(Kind::Float).double_value(&[]);
        let lower = g.tril(0).abs().sum(Kind::Float).double_value(&[]);
        assert_eq!(upper, 0.0);
        assert!(lower > 0.0);
        // dL/dW[i, j] = Σ_b Σ_k x[b, j, k] for j <= i (d of a sum), a closed form to compare.
        let col = x.sum_dim_intlist([0i64, 2].as_slice(), false, Kind::Float); // [L]
        let want = col.unsqueeze(0).expand([6, 6], false).tril(0);
        assert!(g.allclose(&want, 1e-4, 1e-5, false));
    }

    #[test]
    fn param_count_matches_varstore() {
        let (vs, m) = tiny();
        let counted: i64 = vs.trainable_variables().iter().map(|t| t.numel() as i64).sum();
        assert_eq!(counted as u64, m.cfg.num_params());
    }
}
