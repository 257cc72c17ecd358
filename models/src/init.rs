//! Initialisations that match PyTorch's, so runs start where the reference's start
//! (PAPER.md I.18, TECH-NOTES "Numerics": tch's own linear init differs).
use tch::nn::{self, Init};

/// PyTorch `nn.Linear` / `nn.Conv1d` default: kaiming_uniform(a = sqrt 5) gives U(±1/sqrt(fan_in))
/// for the weight and the same bound for the bias.
pub fn torch_default(fan_in: i64) -> Init {
    let bound = 1.0 / (fan_in as f64).sqrt();
    Init::Uniform { lo: -bound, up: bound }
}

/// `nn.Linear(in, out, bias)` with PyTorch's default init.
pub fn linear(p: nn::Path, in_dim: i64, out_dim: i64, bias: bool) -> nn::Linear {
    let cfg = nn::LinearConfig {
        ws_init: torch_default(in_dim),
        bs_init: bias.then(|| torch_default(in_dim)),
        bias,
    };
    nn::linear(p, in_dim, out_dim, cfg)
}

/// A Linear initialised as Hugging Face initialises Llama: N(0, std) weights, zero bias.
pub fn linear_normal(p: nn::Path, in_dim: i64, out_dim: i64, std: f64) -> nn::Linear {
    let cfg = nn::LinearConfig {
        ws_init: Init::Randn { mean: 0.0, stdev: std },
        bs_init: None,
        bias: false,
    };
    nn::linear(p, in_dim, out_dim, cfg)
}

/// `nn.Embedding(V, d)` with N(0, std) weights (PyTorch's default is std 1).
pub fn embedding(p: nn::Path, vocab: i64, dim: i64, std: f64) -> nn::Embedding {
    let cfg = nn::EmbeddingConfig { ws_init: Init::Randn { mean: 0.0, stdev: std }, ..Default::default() };
    nn::embedding(p, vocab, dim, cfg)
}
