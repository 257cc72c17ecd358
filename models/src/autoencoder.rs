//! Autoencoders and the one-step completion model, PAPER.md A.5; reference code
//! blbadger/maskedmixers `mixer_lm/mixer_autoencoder.py`, `transformer_autoencoder.py`,
//! `*completion_trainer_fineweb.py`.
//!
//! ```text
//! autoencoder:  e = encoder(wte(x));  z = e[:, -1, :] repeated L times;  logits = head(decoder(z))
//! completion:   e = encoder(wte(x));  e[:, i, :] = 0 for i >= L/2;       logits = head(decoder(e))
//! ```
//! Both stacks are causal (mixer blocks masked, Llama layers with causal attention) and the loss is
//! unshifted: the logit at i predicts token i (over all positions, or i >= L/2 for completion).
use crate::masked_mixer::{MixerBlock, MixerConfig};
use crate::transformer::{rope_tables, DecoderLayer, LlamaConfig};
use crate::{init, precision, CausalLm, Objective};
use tch::{nn, Kind, Tensor};

#[derive(Debug, Clone, PartialEq)]
pub enum Backbone {
    /// Flat masked mixer blocks: keys `encoderblocks.N`, `decoderblocks.N`.
    Mixer,
    /// Llama decoder layers: keys `encoder.model.model.layers.N`, `decoder.model.model.layers.N`
    /// (the reference wraps two `LlamaForCausalLM`s and uses only their layers).
    Llama { n_heads: i64 },
}

#[derive(Debug, Clone, PartialEq)]
pub struct AutoencoderConfig {
    pub vocab_size: i64,
    pub d_model: i64,
    pub encoder_layers: usize,
    pub decoder_layers: usize,
    pub n_ctx: i64,
    pub backbone: Backbone,
    /// The one-step completion model instead of the autoencoder.
    pub completion: bool,
    /// FF dropout of the mixer backbone (v1: 0.05); off in evaluation.
    pub dropout: f64,
    /// The mixer backbone's masked-weight gradient (PAPER.md I.1).
    pub mask_grad: crate::mask::MaskGrad,
}

impl AutoencoderConfig {
    /// Embedding, both stacks and the head (PAPER.md A.7: mixer AE d512 8+8 = 42,024,960).
    pub fn num_params(&self) -> u64 {
        let (v, d, l) = (self.vocab_size, self.d_model, self.n_ctx);
        let layer = match self.backbone {
            Backbone::Mixer => 8 * d * d + 9 * d + l * l + l,
            Backbone::Llama { .. } => 16 * d * d + 2 * d,
        };
        (2 * v * d + layer * (self.encoder_layers + self.decoder_layers) as i64) as u64
    }

    fn mixer_cfg(&self) -> MixerConfig {
        MixerConfig { ff_dropout: self.dropout, mask_grad: self.mask_grad, ..MixerConfig::flat(self.vocab_size, self.d_model, 1, self.n_ctx) }
    }

    fn llama_cfg(&self, n_heads: i64) -> LlamaConfig {
        LlamaConfig {
            vocab_size: self.vocab_size,
            d_model: self.d_model,
            n_layers: 1,
            n_heads,
            intermediate_size: 4 * self.d_model,
            rms_norm_eps: 1e-6,
            rope_theta: 10000.0,
            mixer_n_ctx: None,
            mixer_mask_grad: crate::mask::MaskGrad::Functional,
            parallel_mixer: false,
            residual: true,
        }
    }
}

#[derive(Debug)]
enum Stack {
    Mixer(Vec<MixerBlock>),
    Llama { layers: Vec<DecoderLayer>, n_heads: i64 },
}

impl Stack {
    fn forward(&self, xs: &Tensor, train: bool) -> Tensor {
        match self {
            Self::Mixer(blocks) => blocks.iter().fold(xs.shallow_clone(), |h, b| b.forward_t(&h, train)),
            Self::Llama { layers, n_heads } => {
                let (_b, t, d) = xs.size3().expect("[b, t, d]");
                let (cos, sin) = rope_tables(t, d / n_heads, 10000.0, xs.device());
                layers.iter().fold(xs.shallow_clone(), |h, l| l.forward(&h, &cos, &sin))
            }
        }
    }
}

#[derive(Debug)]
pub struct Autoencoder {
    pub cfg: AutoencoderConfig,
    wte: nn::Embedding,
    encoder: Stack,
    decoder: Stack,
    lm_head: nn::Linear,
}

impl Autoencoder {
    pub fn new(p: &nn::Path, cfg: AutoencoderConfig) -> Self {
        let (encoder, decoder) = match cfg.backbone {
            Backbone::Mixer => {
                let m = cfg.mixer_cfg();
                let stack = |name: &str, n: usize| Stack::Mixer((0..n).map(|i| MixerBlock::new(p / name / i, &m)).collect());
                (stack("encoderblocks", cfg.encoder_layers), stack("decoderblocks", cfg.decoder_layers))
            }
            Backbone::Llama { n_heads } => {
                let l = cfg.llama_cfg(n_heads);
                let stack = |name: &str, n: usize| Stack::Llama {
                    layers: (0..n).map(|i| DecoderLayer::new(p / name / "model" / "model" / "layers" / i, &l)).collect(),
                    n_heads,
                };
                (stack("encoder", cfg.encoder_layers), stack("decoder", cfg.decoder_layers))
            }
        };
        // The reference's `wte` is a plain nn.Embedding (N(0, 1)) for both backbones; the Llama
        // layers keep HF's N(0, 0.02).
        let wte = init::embedding(p / "wte", cfg.vocab_size, cfg.d_model, 1.0);
        let lm_head = init::linear(p / "lm_head", cfg.d_model, cfg.vocab_size, false);
        Self { cfg, wte, encoder, decoder, lm_head }
    }

    /// The encoder's last-position vector, the AE's embedding for retrieval (A.5, A.6): `[b, d]`.
    pub fn encode(&self, tokens: &Tensor) -> Tensor {
        self.encoder.forward(&self.embed(tokens), false).select(1, -1)
    }
}

impl CausalLm for Autoencoder {
    fn embed(&self, tokens: &Tensor) -> Tensor {
        tokens.apply(&self.wte)
    }

    /// Encoder, bottleneck, decoder (`depth` is ignored: the bottleneck needs the whole encoder).
    fn blocks(&self, xs: &Tensor, _depth: Option<usize>, train: bool) -> Tensor {
        let (_b, t, _d) = xs.size3().expect("[b, t, d]");
        let e = self.encoder.forward(xs, train);
        let z = if self.cfg.completion {
            let keep = Tensor::arange(t, (Kind::Int64, xs.device())).lt(t / 2).to_kind(e.kind()); // [t]
            e * keep.view([1, t, 1])
        } else {
            e.narrow(1, t - 1, 1).expand_as(xs) // [b, 1, d] -> [b, t, d]
        };
        self.decoder.forward(&z, train)
    }

    fn head(&self, hidden: &Tensor) -> Tensor {
        precision::linear(hidden, &self.lm_head)
    }

    /// The encoder's output; its last position is the AE's embedding (A.5, A.6: position -1).
    fn embedding_states(&self, tokens: &Tensor, train: bool) -> Tensor {
        self.encoder.forward(&self.embed(tokens), train)
    }

    fn embedding_weight(&self) -> Tensor {
        self.wte.ws.shallow_clone()
    }

    fn n_layers(&self) -> usize {
        self.cfg.encoder_layers + self.cfg.decoder_layers
    }

    fn remask(&self) {
        for stack in [&self.encoder, &self.decoder] {
            if let Stack::Mixer(blocks) = stack {
                blocks.iter().for_each(MixerBlock::remask);
            }
        }
    }

    fn objective(&self) -> Objective {
        Objective::SamePosition { from: if self.cfg.completion { self.cfg.n_ctx / 2 } else { 0 } }
    }
}
