//! Model specifications as a suite writes them (`[model]` with a `kind`), with the paper's
//! defaults, named presets, exact parameter counts and construction.
//!
//! The vocabulary size and the context length come from the run's data (tokenizer and n_ctx), so
//! a spec holds only what is architectural.
use crate::masked_mixer::{MaskedMixer, MixerConfig};
use crate::transformer::{Llama, LlamaConfig};
use crate::{CausalLm, ModelError};
use serde::{Deserialize, Serialize};
use tch::nn;

/// `model.kind` and its fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModelSpec {
    /// Flat masked mixer, PAPER.md A.1.
    MaskedMixer(MixerSpec),
    /// Llama-style transformer, PAPER.md A.3.
    Llama(LlamaSpec),
}

fn four() -> i64 {
    4
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
}

impl MixerSpec {
    /// Flat mixer d1024 n8, the TinyStories row of PAPER.md T3.
    pub fn tinystories_d1024() -> Self {
        Self { d_model: 1024, n_layers: 8, ff_mult: 4, tie_weights: false }
    }
    pub fn config(&self, vocab_size: i64, n_ctx: i64) -> MixerConfig {
        MixerConfig {
            vocab_size,
            d_model: self.d_model,
            n_layers: self.n_layers,
            n_ctx,
            ff_mult: self.ff_mult,
            tie_weights: self.tie_weights,
        }
    }
}

impl LlamaSpec {
    /// Llama d512 n8 h4, the best TinyStories transformer (PAPER.md A.3, T8).
    pub fn tinystories_d512() -> Self {
        Self { d_model: 512, n_layers: 8, n_heads: 4, intermediate_size: None, rms_norm_eps: 1e-6, rope_theta: 10000.0 }
    }
    pub fn config(&self, vocab_size: i64) -> LlamaConfig {
        LlamaConfig {
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
        }
    }

    pub fn d_model(&self) -> i64 {
        match self {
            Self::MaskedMixer(s) => s.d_model,
            Self::Llama(s) => s.d_model,
        }
    }

    /// Checks what serde cannot: positive sizes, heads dividing the width, even head dims.
    pub fn validate(&self) -> Result<(), ModelError> {
        match self {
            Self::MaskedMixer(s) => {
                positive("d_model", s.d_model)?;
                positive("n_layers", s.n_layers as i64)?;
                positive("ff_mult", s.ff_mult)
            }
            Self::Llama(s) => {
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
            Self::Llama(s) => s.config(vocab_size).num_params(),
        }
    }

    /// Builds the model under `p` with the reference's variable names.
    pub fn build(&self, p: &nn::Path, vocab_size: i64, n_ctx: i64) -> Result<Box<dyn CausalLm>, ModelError> {
        self.validate()?;
        Ok(match self {
            Self::MaskedMixer(s) => Box::new(MaskedMixer::new(p, s.config(vocab_size, n_ctx))),
            Self::Llama(s) => Box::new(Llama::new(p, s.config(vocab_size))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mixer(d: i64, n: usize) -> ModelSpec {
        ModelSpec::MaskedMixer(MixerSpec { d_model: d, n_layers: n, ff_mult: 4, tie_weights: false })
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
            (llama(128, 8), 4096, 512, 3_147_904),
            (llama(256, 8), 4096, 512, 10_490_112),
            (llama(512, 8), 4096, 512, 37_757_440),
            (llama(1024, 8), 4096, 512, 142_623_744),
            (llama(512, 16), 8000, 512, 75_317_760),
            (llama(512, 8), 8000, 512, 41_755_136),
        ];
        for (spec, v, l, want) in rows {
            assert_eq!(spec.num_params(*v, *l), *want, "{spec:?} V{v} L{l}");
        }
    }

    #[test]
    fn unknown_field_is_rejected() {
        let err = toml::from_str::<ModelSpec>("kind = \"masked_mixer\"\nd_model = 8\nn_layers = 1\nheads = 2\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `heads`"), "{err}");
    }

    #[test]
    fn heads_must_divide_width() {
        let spec = ModelSpec::Llama(LlamaSpec { n_heads: 3, ..LlamaSpec::tinystories_d512() });
        let err = spec.validate().unwrap_err().to_string();
        assert!(err.contains("n_heads"), "{err}");
    }
}
