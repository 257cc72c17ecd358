//! Model specifications as a suite writes them (`[model]` with a `kind`), with the paper's
//! defaults, named presets, exact parameter counts and construction.
//!
//! The vocabulary size and the context length come from the run's data (tokenizer and n_ctx), so
//! a spec holds only what is architectural.
use crate::autoencoder::{Autoencoder, AutoencoderConfig, Backbone};
use crate::gpt::{Gpt, GptConfig};
use crate::mask::MaskGrad;
use crate::masked_mixer::{MaskedMixer, MixerConfig, Mixing, PositionChannel};
use crate::transformer::{BidirectionalLlama, Llama, LlamaConfig};
use crate::{CausalLm, ModelError};
use serde::{Deserialize, Serialize};
use tch::nn;

/// What a training step computes, for [`ModelSpec::training_bytes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepShape {
    pub batch: i64,
    pub n_ctx: i64,
    /// The LM head's logits are computed (a CLM step; not an embedding's or T6/T7's step).
    pub head: bool,
    /// Attention keeps its L x L probabilities (eager or math attention).
    pub scores: bool,
    /// AdamW steps the weights (its state is held).
    pub optimizer: bool,
}

impl StepShape {
    /// A CLM training step with AdamW and fused attention.
    pub fn clm(batch: i64, n_ctx: i64) -> Self {
        Self { batch, n_ctx, head: true, scores: false, optimizer: true }
    }
}

/// The memory of one fp32 training step, by part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepMemory {
    /// Weights and gradients (8 bytes a parameter); with the harness's AdamW also its two
    /// moments, the flat buffer its step gathers the gradients into and that buffer's scratch (24).
    pub state: u64,
    /// The activations the forward keeps for the backward ([`ModelSpec::training_floats_per_token`])
    /// and the masked copies of the token-mixing weights ([`ModelSpec::masked_mixing_floats`]).
    pub activations: u64,
    /// With the LM head: the logits, their log-softmax and gradient (12 bytes per token and
    /// vocabulary entry).
    pub logits: u64,
}

impl StepMemory {
    pub fn total(&self) -> u64 {
        self.state + self.activations + self.logits
    }
}

/// `model.kind` and its fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModelSpec {
    /// Flat masked mixer, PAPER.md A.1.
    MaskedMixer(MixerSpec),
    /// Llama-style transformer, PAPER.md A.3.
    Llama(LlamaSpec),
    /// Llama with a masked token mixing of each attention output ("transfixer"), PAPER.md A.4.
    Transfixer(LlamaSpec),
    /// GPT-1 style transformer (`OpenAIGPTLMHeadModel`), PAPER.md A.3.
    Gpt(GptSpec),
    /// Masked-mixer autoencoder or one-step completion model, PAPER.md A.5.
    MixerAutoencoder(AutoencoderSpec),
    /// Llama autoencoder or one-step completion model, PAPER.md A.5.
    LlamaAutoencoder(AutoencoderSpec),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoencoderSpec {
    pub d_model: i64,
    /// "n_l = 8" in the paper means 8 encoder + 8 decoder layers.
    pub encoder_layers: usize,
    pub decoder_layers: usize,
    /// Attention heads (Llama backbone only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_heads: Option<i64>,
    /// The one-step completion model: predict tokens L/2.. from 0..L/2 in one pass.
    #[serde(default, skip_serializing_if = "is_default")]
    pub completion: bool,
    /// FF dropout of the mixer autoencoder (v1 code: 0.05, after the FF's first Linear; E.4);
    /// off in evaluation. Mixer backbone only.
    #[serde(default, skip_serializing_if = "is_default")]
    pub dropout: f64,
    /// Mixer backbone only: `"functional"` (default) or `"reference"`, as a masked mixer's
    /// (PAPER.md I.1, I.11).
    #[serde(default, skip_serializing_if = "is_default")]
    pub mask_grad: MaskGrad,
}

impl AutoencoderSpec {
    pub fn config(&self, vocab_size: i64, n_ctx: i64, llama: bool) -> AutoencoderConfig {
        AutoencoderConfig {
            vocab_size,
            d_model: self.d_model,
            encoder_layers: self.encoder_layers,
            decoder_layers: self.decoder_layers,
            n_ctx,
            backbone: if llama { Backbone::Llama { n_heads: self.n_heads.unwrap_or(1) } } else { Backbone::Mixer },
            completion: self.completion,
            dropout: self.dropout,
            mask_grad: self.mask_grad,
        }
    }

    fn validate(&self, llama: bool) -> Result<(), ModelError> {
        positive("d_model", self.d_model)?;
        positive("encoder_layers", self.encoder_layers as i64)?;
        positive("decoder_layers", self.decoder_layers as i64)?;
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(ModelError::InvalidConfig { field: "dropout", reason: format!("must be in [0, 1), got {}", self.dropout) });
        }
        if llama && self.mask_grad != MaskGrad::Functional {
            return Err(ModelError::InvalidConfig {
                field: "mask_grad",
                reason: "is the gradient of a masked token mixing; the Llama autoencoder has none (a mixer_autoencoder's setting)".into(),
            });
        }
        if llama && self.dropout > 0.0 {
            return Err(ModelError::InvalidConfig {
                field: "dropout",
                reason: "is the mixer autoencoder's FF dropout (v1 code); the Llama autoencoder has none".into(),
            });
        }
        match (llama, self.n_heads) {
            (true, None) => Err(ModelError::InvalidConfig { field: "n_heads", reason: "llama_autoencoder needs n_heads".into() }),
            (true, Some(h)) if h < 1 || self.d_model % h != 0 || (self.d_model / h) % 2 != 0 => Err(ModelError::InvalidConfig {
                field: "n_heads",
                reason: format!("d_model {} must split into {h} heads of an even size", self.d_model),
            }),
            (false, Some(_)) => Err(ModelError::InvalidConfig { field: "n_heads", reason: "a mixer_autoencoder has no attention heads".into() }),
            _ => Ok(()),
        }
    }
}

fn tenth() -> f64 {
    0.1
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GptSpec {
    pub d_model: i64,
    pub n_layers: usize,
    pub n_heads: i64,
    /// Learned positions; n_ctx when absent (512 in the paper).
    #[serde(default)]
    pub n_positions: Option<i64>,
    /// Embedding, attention and residual dropout (0.1, the HF default).
    #[serde(default = "tenth")]
    pub dropout: f64,
}

impl GptSpec {
    /// GPT-1 d512 n8 h4, the TinyStories row of PAPER.md A.3 / A.7.
    pub fn tinystories_d512() -> Self {
        Self { d_model: 512, n_layers: 8, n_heads: 4, n_positions: None, dropout: 0.1 }
    }
    pub fn config(&self, vocab_size: i64, n_ctx: i64) -> GptConfig {
        GptConfig {
            vocab_size,
            d_model: self.d_model,
            n_layers: self.n_layers,
            n_heads: self.n_heads,
            n_positions: self.n_positions.unwrap_or(n_ctx),
            dropout: self.dropout,
        }
    }
}

fn four() -> i64 {
    4
}
fn one() -> i64 {
    1
}
fn yes() -> bool {
    true
}
fn is_one(v: &i64) -> bool {
    *v == 1
}
fn is_true(v: &bool) -> bool {
    *v
}
fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MixerSpec {
    pub d_model: i64,
    pub n_layers: usize,
    /// FF expansion factor; 4 in the paper.
    #[serde(default = "four")]
    pub ff_mult: i64,
    #[serde(default)]
    pub tie_weights: bool,
    // Variants (PAPER.md A.2). Each is left out of the canonical config while it holds its
    // default, so adding a variant never changes the run ids of existing flat-mixer runs.
    /// Expanded token mixing Conv1d(L, eL) -> GELU -> Conv1d(eL, L), both masked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expansion: Option<i64>,
    /// Conv kernel along the feature axis ('same' padding), 1 = flat.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub kernel: i64,
    /// Parallel masked convs, summed.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub parallel: i64,
    /// Mixer heads (the described multi-headed mixer), each with its own projection and conv.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub heads: i64,
    /// Width of each head's projection; d_model / heads when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_dim: Option<i64>,
    /// false: the layer-norm-free mixer.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub layer_norm: bool,
    /// false: blocks without their two residual connections (A.2).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub residual: bool,
    /// An extra Linear(d, d) after the embedding (`wte_second`).
    #[serde(default, skip_serializing_if = "is_default")]
    pub embed_linear: bool,
    /// Forward + reverse streams (A.2, bidirectional mixer).
    #[serde(default, skip_serializing_if = "is_default")]
    pub bidirectional: bool,
    /// `"functional"` (default) or `"reference"`: masked weights' gradients count in the clip
    /// norm as in the author's in-place masking (PAPER.md I.1).
    #[serde(default, skip_serializing_if = "is_default")]
    pub mask_grad: MaskGrad,
    /// E.1's positional channel: `"input"` (written once) or `"every_block"` (rewritten after
    /// each block, the reference's `mixer_posencoding.py`); flat mixing only.
    #[serde(default, skip_serializing_if = "is_default")]
    pub position_channel: PositionChannel,
}

fn rms_eps() -> f64 {
    1e-6
}
fn rope_theta() -> f64 {
    10000.0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlamaSpec {
    pub d_model: i64,
    pub n_layers: usize,
    /// Attention heads; 4 is the paper's best TinyStories setting (T8).
    pub n_heads: i64,
    /// SwiGLU width; the paper uses 4 d (the default when absent).
    #[serde(default)]
    pub intermediate_size: Option<i64>,
    #[serde(default = "rms_eps")]
    pub rms_norm_eps: f64,
    #[serde(default = "rope_theta")]
    pub rope_theta: f64,
    /// Transfixer only: the masked token mixing in parallel with attention, on the normed input,
    /// instead of on the attention's output (PAPER.md A.4's second hybrid; E.2's "parallel
    /// hybrid").
    #[serde(default, skip_serializing_if = "is_default")]
    pub parallel_mixer: bool,
    /// Llama only: the bidirectional transformer (PAPER.md H.19, E.3): a forward and a reverse
    /// stack, each token predicted from both sides of it.
    #[serde(default, skip_serializing_if = "is_default")]
    pub bidirectional: bool,
    /// false: layers without their two residual connections (A.2: "removing residuals breaks
    /// training (both architectures)").
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub residual: bool,
    /// Transfixer only: `"functional"` (default) or `"reference"`, as a masked mixer's
    /// (PAPER.md I.1: the reference re-masks the mixing weight in place, so the masked entries'
    /// gradients count in the clip norm).
    #[serde(default, skip_serializing_if = "is_default")]
    pub mask_grad: MaskGrad,
}

impl MixerSpec {
    /// Flat mixer d1024 n8, the TinyStories row of PAPER.md T3.
    pub fn tinystories_d1024() -> Self {
        Self::flat(1024, 8)
    }

    /// The flat mixer of PAPER.md A.1.
    pub fn flat(d_model: i64, n_layers: usize) -> Self {
        Self {
            d_model,
            n_layers,
            ff_mult: 4,
            tie_weights: false,
            expansion: None,
            kernel: 1,
            parallel: 1,
            heads: 1,
            head_dim: None,
            layer_norm: true,
            residual: true,
            embed_linear: false,
            bidirectional: false,
            mask_grad: MaskGrad::Functional,
            position_channel: PositionChannel::None,
        }
    }

    pub fn mixing(&self) -> Mixing {
        match (self.expansion, self.kernel, self.parallel, self.heads) {
            (Some(e), ..) => Mixing::Expanded { expansion: e },
            (None, k, ..) if k > 1 => Mixing::Kernel { kernel: k },
            (None, _, n, _) if n > 1 => Mixing::Parallel { n },
            (None, _, _, h) if h > 1 => Mixing::MultiHead { heads: h, head_dim: self.head_dim.unwrap_or(self.d_model / h) },
            _ => Mixing::Flat,
        }
    }

    pub fn config(&self, vocab_size: i64, n_ctx: i64) -> MixerConfig {
        MixerConfig {
            vocab_size,
            d_model: self.d_model,
            n_layers: self.n_layers,
            n_ctx,
            ff_mult: self.ff_mult,
            ff_dropout: 0.0,
            tie_weights: self.tie_weights,
            mixing: self.mixing(),
            layer_norm: self.layer_norm,
            residual: self.residual,
            embed_linear: self.embed_linear,
            bidirectional: self.bidirectional,
            mask_grad: self.mask_grad,
            position_channel: self.position_channel,
        }
    }

    fn validate(&self) -> Result<(), ModelError> {
        positive("d_model", self.d_model)?;
        positive("n_layers", self.n_layers as i64)?;
        positive("ff_mult", self.ff_mult)?;
        positive("kernel", self.kernel)?;
        positive("parallel", self.parallel)?;
        positive("heads", self.heads)?;
        if let Some(e) = self.expansion {
            positive("expansion", e)?;
        }
        let chosen = [self.expansion.is_some(), self.kernel > 1, self.parallel > 1, self.heads > 1];
        if self.position_channel != PositionChannel::None && (chosen.iter().any(|c| *c) || self.bidirectional) {
            return Err(ModelError::InvalidConfig {
                field: "position_channel",
                reason: "E.1's positional channel is the flat causal mixer's (mixer_posencoding.py): drop expansion, kernel, parallel, heads and bidirectional".into(),
            });
        }
        if chosen.iter().filter(|c| **c).count() > 1 {
            return Err(ModelError::InvalidConfig {
                field: "expansion",
                reason: "choose one token-mixing variant: expansion, kernel > 1, parallel > 1 or heads > 1".into(),
            });
        }
        match self.head_dim {
            Some(h) => positive("head_dim", h)?,
            None if self.d_model % self.heads != 0 => {
                return Err(ModelError::InvalidConfig {
                    field: "heads",
                    reason: format!("d_model {} is not divisible by {} heads; give head_dim", self.d_model, self.heads),
                })
            }
            None => {}
        }
        Ok(())
    }
}

impl LlamaSpec {
    /// Llama d512 n8 h4, the best TinyStories transformer (PAPER.md A.3, T8).
    pub fn tinystories_d512() -> Self {
        Self { d_model: 512, n_layers: 8, n_heads: 4, intermediate_size: None, rms_norm_eps: 1e-6, rope_theta: 10000.0, parallel_mixer: false, bidirectional: false, residual: true, mask_grad: MaskGrad::Functional }
    }
    pub fn config(&self, vocab_size: i64) -> LlamaConfig {
        self.config_with_mixer(vocab_size, None)
    }

    pub fn config_with_mixer(&self, vocab_size: i64, mixer_n_ctx: Option<i64>) -> LlamaConfig {
        LlamaConfig {
            mixer_n_ctx,
            mixer_mask_grad: self.mask_grad,
            parallel_mixer: self.parallel_mixer,
            residual: self.residual,
            vocab_size,
            d_model: self.d_model,
            n_layers: self.n_layers,
            n_heads: self.n_heads,
            intermediate_size: self.intermediate_size.unwrap_or(4 * self.d_model),
            rms_norm_eps: self.rms_norm_eps,
            rope_theta: self.rope_theta,
        }
    }
}

fn positive(field: &'static str, v: i64) -> Result<(), ModelError> {
    if v > 0 {
        Ok(())
    } else {
        Err(ModelError::InvalidConfig { field, reason: format!("must be a positive integer, got {v}") })
    }
}

impl ModelSpec {
    /// The suite's name for this family (`model.kind`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::MaskedMixer(_) => "masked_mixer",
            Self::Llama(_) => "llama",
            Self::Transfixer(_) => "transfixer",
            Self::Gpt(_) => "gpt",
            Self::MixerAutoencoder(_) => "mixer_autoencoder",
            Self::LlamaAutoencoder(_) => "llama_autoencoder",
        }
    }

    /// The name tables and reports give this model: "masked_mixer d64 n2", "llama d64 n2 h4",
    /// "masked_mixer d64 n2 expanded e2", "mixer_autoencoder d64 2+2".
    pub fn label(&self) -> String {
        match self {
            Self::MaskedMixer(s) => {
                let v = match s.mixing() {
                    Mixing::Flat => String::new(),
                    Mixing::Expanded { expansion } => format!(" expanded e{expansion}"),
                    Mixing::Kernel { kernel } => format!(" kernel k{kernel}"),
                    Mixing::Parallel { n } => format!(" parallel x{n}"),
                    Mixing::MultiHead { heads, head_dim } => format!(" heads {heads}x{head_dim}"),
                };
                let bi = if s.bidirectional { " bidirectional" } else { "" };
                let bi = match s.position_channel {
                    PositionChannel::None => bi.to_string(),
                    PositionChannel::Input => format!("{bi} +position (input)"),
                    PositionChannel::EveryBlock => format!("{bi} +position (every block)"),
                };
                let extra = format!(
                    "{}{}{}",
                    if s.embed_linear { " +wte_linear" } else { "" },
                    if s.layer_norm { "" } else { " no-norm" },
                    if s.residual { "" } else { " no-residual" }
                );
                format!("masked_mixer d{} n{}{v}{bi}{extra}", s.d_model, s.n_layers)
            }
            Self::Llama(s) => format!(
                "llama d{} n{} h{}{}{}",
                s.d_model,
                s.n_layers,
                s.n_heads,
                if s.bidirectional { " bidirectional" } else { "" },
                if s.residual { "" } else { " no-residual" }
            ),
            Self::Transfixer(s) => format!(
                "transfixer d{} n{} h{}{}{}",
                s.d_model,
                s.n_layers,
                s.n_heads,
                if s.parallel_mixer { " parallel" } else { "" },
                if s.residual { "" } else { " no-residual" }
            ),
            Self::Gpt(s) => format!("gpt d{} n{} h{}", s.d_model, s.n_layers, s.n_heads),
            Self::MixerAutoencoder(s) | Self::LlamaAutoencoder(s) => format!(
                "{}{} d{} {}+{}",
                self.kind(),
                if s.completion { " (completion)" } else { "" },
                s.d_model,
                s.encoder_layers,
                s.decoder_layers
            ),
        }
    }

    /// Blocks of the stack (an autoencoder's encoder and decoder together).
    pub fn n_layers(&self) -> usize {
        match self {
            Self::MaskedMixer(s) => s.n_layers,
            Self::Llama(s) | Self::Transfixer(s) => s.n_layers,
            Self::Gpt(s) => s.n_layers,
            Self::MixerAutoencoder(s) | Self::LlamaAutoencoder(s) => s.encoder_layers + s.decoder_layers,
        }
    }

    pub fn d_model(&self) -> i64 {
        match self {
            Self::MaskedMixer(s) => s.d_model,
            Self::Llama(s) | Self::Transfixer(s) => s.d_model,
            Self::Gpt(s) => s.d_model,
            Self::MixerAutoencoder(s) | Self::LlamaAutoencoder(s) => s.d_model,
        }
    }

    /// Checks what serde cannot: positive sizes, heads dividing the width, even head dims.
    pub fn validate(&self) -> Result<(), ModelError> {
        match self {
            Self::MaskedMixer(s) => s.validate(),
            Self::Gpt(s) => {
                positive("d_model", s.d_model)?;
                positive("n_layers", s.n_layers as i64)?;
                positive("n_heads", s.n_heads)?;
                if s.d_model % s.n_heads != 0 {
                    return Err(ModelError::InvalidConfig {
                        field: "n_heads",
                        reason: format!("d_model {} is not divisible by {} heads", s.d_model, s.n_heads),
                    });
                }
                if !(0.0..1.0).contains(&s.dropout) {
                    return Err(ModelError::InvalidConfig { field: "dropout", reason: format!("must be in [0, 1), got {}", s.dropout) });
                }
                Ok(())
            }
            Self::MixerAutoencoder(s) => s.validate(false),
            Self::LlamaAutoencoder(s) => s.validate(true),
            Self::Llama(s) | Self::Transfixer(s) => {
                if s.parallel_mixer && matches!(self, Self::Llama(_)) {
                    return Err(ModelError::InvalidConfig {
                        field: "parallel_mixer",
                        reason: "places a transfixer's token mixing beside its attention; a Llama has none (use kind = \"transfixer\")".into(),
                    });
                }
                if s.mask_grad != MaskGrad::Functional && matches!(self, Self::Llama(_)) {
                    return Err(ModelError::InvalidConfig {
                        field: "mask_grad",
                        reason: "is the gradient of a masked token mixing; a Llama has none (a transfixer's or a mixer's setting)".into(),
                    });
                }
                if s.bidirectional && matches!(self, Self::Transfixer(_)) {
                    return Err(ModelError::InvalidConfig {
                        field: "bidirectional",
                        reason: "the bidirectional transformer is a Llama's (PAPER.md H.19); a transfixer has no reverse stack (use kind = \"llama\")".into(),
                    });
                }
                positive("d_model", s.d_model)?;
                positive("n_layers", s.n_layers as i64)?;
                positive("n_heads", s.n_heads)?;
                if let Some(i) = s.intermediate_size {
                    positive("intermediate_size", i)?;
                }
                if s.d_model % s.n_heads != 0 || (s.d_model / s.n_heads) % 2 != 0 {
                    return Err(ModelError::InvalidConfig {
                        field: "n_heads",
                        reason: format!(
                            "d_model {} must split into {} heads of an even size (RoPE rotates pairs)",
                            s.d_model, s.n_heads
                        ),
                    });
                }
                Ok(())
            }
        }
    }

    /// Exact parameter count (embedding and head included), PAPER.md A.7.
    pub fn num_params(&self, vocab_size: i64, n_ctx: i64) -> u64 {
        match self {
            Self::MaskedMixer(s) => s.config(vocab_size, n_ctx).num_params(),
            Self::Llama(s) if s.bidirectional => BidirectionalLlama::num_params(&s.config(vocab_size)),
            Self::Llama(s) => s.config(vocab_size).num_params(),
            Self::Transfixer(s) => s.config_with_mixer(vocab_size, Some(n_ctx)).num_params(),
            Self::Gpt(s) => s.config(vocab_size, n_ctx).num_params(),
            Self::MixerAutoencoder(s) => s.config(vocab_size, n_ctx, false).num_params(),
            Self::LlamaAutoencoder(s) => s.config(vocab_size, n_ctx, true).num_params(),
        }
    }

    /// Floats a training step keeps per token of its batch for the backward pass, every layer
    /// counted, the LM head's logits excluded (see [`Self::training_bytes`]): the tensors the
    /// forward saves, read off each block's forward. Attention is taken as a fused kernel that
    /// keeps O(L) per token (SDPA's flash and efficient paths, which libtorch picks on the CPU in
    /// fp32 and on a GPU in fp16); `scores` adds the L x L probabilities of each head that an
    /// eager (math) attention keeps.
    pub fn training_floats_per_token(&self, n_ctx: i64, scores: bool) -> u64 {
        let l = n_ctx as u64;
        let attn = |heads: i64| {
            if scores {
                2 * heads.max(1) as u64 * l
            } else {
                2 * heads.max(1) as u64
            }
        };
        // A mixer block: its input, both norms' outputs, the mixing's output, the residual sum,
        // the FF's two wide tensors (and a dropout mask), the FF's output, the block's output.
        let mixer_block = |d: u64, ff: u64, mixing: u64, dropout: bool| 6 * d + mixing + (2 + dropout as u64) * ff * d;
        // A Llama block: input, two RMS norms (input, statistics, output), q k v and their
        // rotations, attention output, projection, residual; SwiGLU's gate, up, activation and
        // product; down projection and output.
        let llama_block = |d: u64, i: u64, heads: i64| 15 * d + 4 * i + attn(heads);
        match self {
            Self::MaskedMixer(s) => {
                let d = (s.d_model + (s.position_channel != Default::default()) as i64) as u64;
                let mixing = match (s.expansion, s.kernel, s.parallel, s.heads) {
                    (Some(e), ..) => 2 * e.max(1) as u64 * d,
                    (None, k, _, _) if k > 1 => 2 * d + k as u64,
                    (None, _, p, _) if p > 1 => p as u64 * d,
                    (None, _, _, h) if h > 1 => 3 * h as u64 * s.head_dim.unwrap_or(s.d_model / h) as u64 + d,
                    _ => 0,
                };
                let streams = 1 + s.bidirectional as u64;
                streams * s.n_layers as u64 * mixer_block(d, s.ff_mult as u64, mixing, false) + 2 * d
            }
            Self::Llama(s) | Self::Transfixer(s) => {
                let d = s.d_model as u64;
                let i = s.intermediate_size.unwrap_or(4 * s.d_model) as u64;
                let hybrid = if matches!(self, Self::Transfixer(_)) { 2 * d } else { 0 };
                let streams = 1 + s.bidirectional as u64;
                streams * s.n_layers as u64 * (llama_block(d, i, s.n_heads) + hybrid) + 2 * d
            }
            Self::Gpt(s) => {
                // LayerNorms, q k v, attention, projection with dropout masks, the 4d FF.
                let d = s.d_model as u64;
                s.n_layers as u64 * (14 * d + 3 * 4 * d + attn(s.n_heads)) + 3 * d
            }
            Self::MixerAutoencoder(s) => {
                let d = s.d_model as u64;
                (s.encoder_layers + s.decoder_layers) as u64 * mixer_block(d, 4, 0, s.dropout > 0.0) + 4 * d
            }
            Self::LlamaAutoencoder(s) => {
                let d = s.d_model as u64;
                (s.encoder_layers + s.decoder_layers) as u64 * llama_block(d, 4 * d, s.n_heads.unwrap_or(1)) + 4 * d
            }
        }
    }

    /// Floats of the masked token-mixing weights a forward builds and keeps for its backward: each
    /// block applies its mask functionally (`W ⊙ M`, crate `mask`), a new tensor the size of the
    /// block's mixing weights, and the matmul saves it. Not per token: at a long context (8192:
    /// 64 M floats a block) it is a large part of a small batch's step.
    pub fn masked_mixing_floats(&self, n_ctx: i64) -> u64 {
        match self {
            Self::MaskedMixer(s) => {
                let blocks = s.n_layers as u64 * (1 + s.bidirectional as u64);
                blocks * s.config(2, n_ctx).mixing_params().max(0) as u64
            }
            // One mixing of the attention output a layer: L x L and its bias.
            Self::Transfixer(s) => s.n_layers as u64 * (n_ctx * n_ctx + n_ctx) as u64,
            Self::MixerAutoencoder(s) => (s.encoder_layers + s.decoder_layers) as u64 * (n_ctx * n_ctx + n_ctx) as u64,
            Self::Llama(_) | Self::Gpt(_) | Self::LlamaAutoencoder(_) => 0,
        }
    }

    /// Multiply-adds of one forward per token of a sequence of `n_ctx`, as dense matrix products
    /// count them: the blocks' weight matrices, the token mixing (the masked L x L matrix is
    /// multiplied whole: L d per token and mixing; k L d for a kernel of k, 2 e L d expanded) or
    /// attention (Q K^T and A V, 2 L d per token), and with `head` the LM head (d V). Norms,
    /// activations and the softmax are left out. A training step is about 3 forwards
    /// (the backward is 2).
    pub fn forward_macs_per_token(&self, vocab_size: i64, n_ctx: i64, head: bool) -> f64 {
        let (l, v) = (n_ctx as f64, vocab_size as f64);
        let attention_layer = |d: f64, ff: f64| 4.0 * d * d + 3.0 * d * ff + 2.0 * l * d;
        let (blocks, d) = match self {
            Self::MaskedMixer(s) => {
                let d = (s.d_model + (s.position_channel != PositionChannel::None) as i64) as f64;
                let mixing = match s.mixing() {
                    Mixing::Flat => l * d,
                    Mixing::Kernel { kernel } => kernel as f64 * l * d,
                    Mixing::Expanded { expansion } => 2.0 * expansion as f64 * l * d,
                    Mixing::Parallel { n } => n as f64 * l * d,
                    Mixing::MultiHead { heads, head_dim } => {
                        let width = (heads * head_dim) as f64;
                        2.0 * d * width + l * width
                    }
                };
                let streams = 1.0 + s.bidirectional as u8 as f64;
                let block = 2.0 * d * (s.ff_mult as f64 * d) + mixing;
                let embed = if s.embed_linear { d * d } else { 0.0 };
                (streams * s.n_layers as f64 * block + embed, s.d_model as f64)
            }
            Self::Llama(s) | Self::Transfixer(s) => {
                let d = s.d_model as f64;
                let ff = s.intermediate_size.unwrap_or(4 * s.d_model) as f64;
                let mixing = if matches!(self, Self::Transfixer(_)) { l * d } else { 0.0 };
                let streams = 1.0 + s.bidirectional as u8 as f64;
                (streams * s.n_layers as f64 * (attention_layer(d, ff) + mixing), d)
            }
            Self::Gpt(s) => {
                // Its FF has two matrices of d x 4d (no gate): 8 d^2 where SwiGLU's three give 12.
                let d = s.d_model as f64;
                (s.n_layers as f64 * (4.0 * d * d + 8.0 * d * d + 2.0 * l * d), d)
            }
            Self::MixerAutoencoder(s) => {
                let d = s.d_model as f64;
                ((s.encoder_layers + s.decoder_layers) as f64 * (8.0 * d * d + l * d), d)
            }
            Self::LlamaAutoencoder(s) => {
                let d = s.d_model as f64;
                ((s.encoder_layers + s.decoder_layers) as f64 * attention_layer(d, 4.0 * d), d)
            }
        };
        blocks + if head { d * v } else { 0.0 }
    }

    /// Whether the model's token mixing is attention (its speed is attention's on a card), as
    /// opposed to the masked mixer's matrix products.
    pub fn uses_attention(&self) -> bool {
        matches!(self, Self::Llama(_) | Self::Transfixer(_) | Self::Gpt(_) | Self::LlamaAutoencoder(_))
    }

    /// An estimate of the memory one fp32 training step of `step` needs, by part (see
    /// [`StepMemory`]).
    pub fn training_memory(&self, vocab_size: i64, step: StepShape) -> StepMemory {
        let tokens = (step.batch.max(1) * step.n_ctx) as u64;
        let per_param = if step.optimizer { 24 } else { 8 };
        StepMemory {
            state: per_param * self.num_params(vocab_size, step.n_ctx),
            activations: 4 * (tokens * self.training_floats_per_token(step.n_ctx, step.scores) + self.masked_mixing_floats(step.n_ctx)),
            logits: if step.head { 12 * tokens * vocab_size as u64 } else { 0 },
        }
    }

    /// [`Self::training_memory`] in all.
    pub fn training_bytes(&self, vocab_size: i64, step: StepShape) -> u64 {
        self.training_memory(vocab_size, step).total()
    }

    /// Builds the model under `p` with the reference's variable names.
    pub fn build(&self, p: &nn::Path, vocab_size: i64, n_ctx: i64) -> Result<Box<dyn CausalLm>, ModelError> {
        self.validate()?;
        Ok(match self {
            Self::MaskedMixer(s) => Box::new(MaskedMixer::new(p, s.config(vocab_size, n_ctx))),
            Self::Llama(s) if s.bidirectional => Box::new(BidirectionalLlama::new(p, s.config(vocab_size))),
            Self::Llama(s) => Box::new(Llama::new(p, s.config(vocab_size))),
            Self::Transfixer(s) => Box::new(Llama::new(p, s.config_with_mixer(vocab_size, Some(n_ctx)))),
            Self::Gpt(s) => {
                let cfg = s.config(vocab_size, n_ctx);
                if cfg.n_positions < n_ctx {
                    return Err(ModelError::InvalidConfig {
                        field: "n_positions",
                        reason: format!("{} learned positions cannot cover n_ctx = {n_ctx}", cfg.n_positions),
                    });
                }
                Box::new(Gpt::new(p, cfg))
            }
            Self::MixerAutoencoder(s) => Box::new(Autoencoder::new(p, s.config(vocab_size, n_ctx, false))),
            Self::LlamaAutoencoder(s) => Box::new(Autoencoder::new(p, s.config(vocab_size, n_ctx, true))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mixer(d: i64, n: usize) -> ModelSpec {
        ModelSpec::MaskedMixer(MixerSpec::flat(d, n))
    }
    fn ae(d: i64) -> ModelSpec {
        ModelSpec::MixerAutoencoder(AutoencoderSpec { d_model: d, encoder_layers: 8, decoder_layers: 8, n_heads: None, completion: false, dropout: 0.0, mask_grad: MaskGrad::Functional })
    }
    fn expanded(d: i64) -> ModelSpec {
        ModelSpec::MaskedMixer(MixerSpec { expansion: Some(2), ..MixerSpec::flat(d, 8) })
    }
    fn llama(d: i64, n: usize) -> ModelSpec {
        ModelSpec::Llama(LlamaSpec { d_model: d, n_layers: n, ..LlamaSpec::tinystories_d512() })
    }

    /// Every row of PAPER.md A.7 for the families built here, as exact integers.
    #[test]
    fn param_counts_equal_paper_a7() {
        let rows: &[(ModelSpec, i64, i64, u64)] = &[
            (mixer(256, 8), 4096, 512, 8_411_136),
            (mixer(512, 8), 4096, 512, 23_109_632),
            (mixer(1024, 8), 4096, 512, 77_672_448),
            (mixer(1024, 4), 4096, 512, 43_030_528),
            (mixer(2048, 8), 4096, 512, 287_461_376),
            (mixer(64, 8), 4096, 512, 2_892_288),
            (mixer(1024, 16), 8000, 512, 154_951_680),
            (mixer(512, 16), 8000, 512, 46_022_656),
            (mixer(512, 32), 8000, 512, 83_853_312),
            (mixer(1024, 16), 8000, 128, 151_013_376),
            (mixer(1024, 16), 8000, 32, 150_766_080),
            (mixer(1024, 18), 8000, 32, 167_563_840),
            (mixer(1024, 8), 8000, 1024, 91_963_392),
            (expanded(256), 4096, 512, 14_710_784),
            (expanded(512), 4096, 512, 29_409_280),
            (expanded(1024), 4096, 512, 83_972_096),
            (ModelSpec::MaskedMixer(MixerSpec { kernel: 4, ..MixerSpec::flat(1024, 8) }), 4096, 512, 83_963_904),
            // Not in A.7: E.1's positional channel, blocks of width 1025 (`mixer_posencoding.py`):
            // 2 * 4096 * 1024 + 8 * (8 * 1025² + 9 * 1025 + 512² + 512).
            (ModelSpec::MaskedMixer(MixerSpec { position_channel: PositionChannel::EveryBlock, ..MixerSpec::flat(1024, 8) }), 4096, 512, 77_803_656),
            (llama(128, 8), 4096, 512, 3_147_904),
            (llama(256, 8), 4096, 512, 10_490_112),
            (llama(512, 8), 4096, 512, 37_757_440),
            (llama(1024, 8), 4096, 512, 142_623_744),
            (llama(512, 16), 8000, 512, 75_317_760),
            (llama(512, 8), 8000, 512, 41_755_136),
            (ModelSpec::Gpt(GptSpec::tinystories_d512()), 4096, 512, 27_578_368),
            (ae(512), 4096, 512, 42_024_960),
            (ae(1024), 4096, 512, 146_956_288),
            (ModelSpec::Gpt(GptSpec { n_layers: 16, ..GptSpec::tinystories_d512() }), 8000, 512, 54_796_288),
            // Not in A.7: the bidirectional transformer d512 n8 h4 of `bidirectional_transformer.py`
            // at V 8000: 2 * 8000 * 512 + 2 * 8 * (4 * 512² + 3 * 512 * 2048 + 2 * 512).
            (ModelSpec::Llama(LlamaSpec { bidirectional: true, ..LlamaSpec::tinystories_d512() }), 8000, 512, 75_317_248),
        ];
        for (spec, v, l, want) in rows {
            assert_eq!(spec.num_params(*v, *l), *want, "{spec:?} V{v} L{l}");
        }
    }

    #[test]
    fn unknown_field_is_rejected() {
        let err = toml::from_str::<ModelSpec>("kind = \"masked_mixer\"\nd_model = 8\nn_layers = 1\nn_heads = 2\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `n_heads`"), "{err}");
    }

    #[test]
    fn defaults_stay_out_of_the_canonical_config() {
        let flat = serde_json::to_string(&mixer(8, 1)).unwrap();
        assert_eq!(flat, r#"{"kind":"masked_mixer","d_model":8,"n_layers":1,"ff_mult":4,"tie_weights":false}"#);
        let k4 = serde_json::to_string(&ModelSpec::MaskedMixer(MixerSpec { kernel: 4, ..MixerSpec::flat(8, 1) })).unwrap();
        assert!(k4.contains(r#""kernel":4"#), "{k4}");
    }

    #[test]
    fn one_mixing_variant_at_a_time() {
        let spec = ModelSpec::MaskedMixer(MixerSpec { kernel: 4, parallel: 2, ..MixerSpec::flat(8, 1) });
        assert!(spec.validate().unwrap_err().to_string().contains("choose one token-mixing variant"));
    }

    #[test]
    fn heads_must_divide_width() {
        let spec = ModelSpec::Llama(LlamaSpec { n_heads: 3, ..LlamaSpec::tinystories_d512() });
        let err = spec.validate().unwrap_err().to_string();
        assert!(err.contains("n_heads"), "{err}");
    }
}
