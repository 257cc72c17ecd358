//! The GPT-1 style transformer baseline ("early CLM transformer"), PAPER.md A.3: Hugging Face
//! `OpenAIGPTLMHeadModel`: learned absolute positions, post-LN blocks, GELU (HF's "gelu" for this
//! model is the tanh approximation), dropout 0.1 on embeddings, attention and residuals, head tied
//! to the token embedding, init N(0, 0.02).
//!
//! ```text
//! n = LayerNorm_1(x + Attn(x))
//! h = LayerNorm_2(n + MLP(n)),   MLP = c_proj(gelu(c_fc(n)))
//! ```
//! HF's `Conv1D` stores weights as `[in, out]` (`y = x W + b`); so do we, under the same names.
use crate::{precision, CausalLm};
use tch::{nn, nn::Init, Kind, Tensor};

const INIT_STD: f64 = 0.02;

#[derive(Debug, Clone, PartialEq)]
pub struct GptConfig {
    pub vocab_size: i64,
    pub d_model: i64,
    pub n_layers: usize,
    pub n_heads: i64,
    /// Learned positions (512 in the paper); at least n_ctx.
    pub n_positions: i64,
    pub dropout: f64,
}

impl GptConfig {
    /// PAPER.md A.7: `Vd + Pd + n (12d² + 13d)` (head tied).
    pub fn num_params(&self) -> u64 {
        let (v, d, p) = (self.vocab_size, self.d_model, self.n_positions);
        (v * d + p * d + self.n_layers as i64 * (12 * d * d + 13 * d)) as u64
    }
}

/// HF `Conv1D(nf, nx)`: weight `[nx, nf]`, bias `[nf]`.
#[derive(Debug)]
struct Conv1D {
    weight: Tensor,
    bias: Tensor,
}

impl Conv1D {
    fn new(p: nn::Path, d_in: i64, d_out: i64) -> Self {
        Self {
            weight: p.var("weight", &[d_in, d_out], Init::Randn { mean: 0.0, stdev: INIT_STD }),
            bias: p.var("bias", &[d_out], Init::Const(0.0)),
        }
    }
    fn forward(&self, xs: &Tensor) -> Tensor {
        precision::matmul(xs, &self.weight) + &self.bias
    }
}

#[derive(Debug)]
struct Block {
    c_attn: Conv1D,
    attn_proj: Conv1D,
    ln_1: nn::LayerNorm,
    c_fc: Conv1D,
    mlp_proj: Conv1D,
    ln_2: nn::LayerNorm,
    n_heads: i64,
    dropout: f64,
}

impl Block {
    fn new(p: nn::Path, cfg: &GptConfig) -> Self {
        let d = cfg.d_model;
        let ln = |q: nn::Path| nn::layer_norm(q, vec![d], nn::LayerNormConfig { eps: 1e-5, ..Default::default() });
        Self {
            c_attn: Conv1D::new(&p / "attn" / "c_attn", d, 3 * d),
            attn_proj: Conv1D::new(&p / "attn" / "c_proj", d, d),
            ln_1: ln(&p / "ln_1"),
            c_fc: Conv1D::new(&p / "mlp" / "c_fc", d, 4 * d),
            mlp_proj: Conv1D::new(&p / "mlp" / "c_proj", 4 * d, d),
            ln_2: ln(&p / "ln_2"),
            n_heads: cfg.n_heads,
            dropout: cfg.dropout,
        }
    }

    /// Queries, keys and values `[b, h, t, hd]`.
    fn project(&self, xs: &Tensor) -> (Tensor, Tensor, Tensor) {
        let (b, t, d) = xs.size3().expect("[b, t, d]");
        let qkv = self.c_attn.forward(xs).split(d, -1); // 3 x [b, t, d]
        let heads = |x: &Tensor| x.view([b, t, self.n_heads, d / self.n_heads]).transpose(1, 2); // [b, h, t, hd]
        (heads(&qkv[0]), heads(&qkv[1]), heads(&qkv[2]))
    }

    fn forward(&self, xs: &Tensor, train: bool) -> Tensor {
        let (q, k, v) = self.project(xs);
        let p = if train { self.dropout } else { 0.0 };
        let y = Tensor::scaled_dot_product_attention::<Tensor>(&q, &k, &v, None, p, true, None, false);
        self.finish(xs, &y, train)
    }

    /// The positions of `xs` (`[b, n, d]`), earlier positions' keys and values from the cache.
    fn step(&self, xs: &Tensor, keys: &mut Option<Tensor>, values: &mut Option<Tensor>) -> Tensor {
        let (q, k, v) = self.project(xs);
        let (k, v) = (crate::decode::append(keys, &k, 2), crate::decode::append(values, &v, 2));
        self.finish(xs, &crate::decode::cached_attention(&q, &k, &v), false)
    }

    /// Output projection, residual, post-norms and MLP from the heads' outputs `y`.
    fn finish(&self, xs: &Tensor, y: &Tensor, train: bool) -> Tensor {
        let (b, t, d) = xs.size3().expect("[b, t, d]");
        let a = self.attn_proj.forward(&y.transpose(1, 2).contiguous().view([b, t, d])).dropout(self.dropout, train);
        let n = precision::full(&(xs + a)).apply(&self.ln_1);
        let m = self.mlp_proj.forward(&self.c_fc.forward(&n).gelu("tanh")).dropout(self.dropout, train);
        precision::full(&(n + m)).apply(&self.ln_2)
    }
}

#[derive(Debug)]
pub struct Gpt {
    pub cfg: GptConfig,
    tokens_embed: nn::Embedding,
    positions_embed: nn::Embedding,
    blocks: Vec<Block>,
}

impl Gpt {
    pub fn new(p: &nn::Path, cfg: GptConfig) -> Self {
        let t = p / "transformer";
        let emb = |q: nn::Path, n: i64| {
            nn::embedding(q, n, cfg.d_model, nn::EmbeddingConfig { ws_init: Init::Randn { mean: 0.0, stdev: INIT_STD }, ..Default::default() })
        };
        let tokens_embed = emb(&t / "tokens_embed", cfg.vocab_size);
        let positions_embed = emb(&t / "positions_embed", cfg.n_positions);
        let blocks = (0..cfg.n_layers).map(|i| Block::new(&t / "h" / i, &cfg)).collect();
        Self { cfg, tokens_embed, positions_embed, blocks }
    }
}

/// GPT-1's KV-cache decoder; positions are learned, so it holds at most `n_positions`.
struct GptDecoder<'a> {
    model: &'a Gpt,
    caches: Vec<(Option<Tensor>, Option<Tensor>)>,
    len: i64,
}

impl crate::Decoder for GptDecoder<'_> {
    fn feed(&mut self, tokens: &Tensor) -> Tensor {
        let (from, n) = (self.len, tokens.size()[1]);
        assert!(from + n <= self.model.cfg.n_positions, "GPT-1 has {} learned positions; {} asked", self.model.cfg.n_positions, from + n);
        let pos = Tensor::arange_start(from, from + n, (Kind::Int64, tokens.device()));
        let xs = tokens.apply(&self.model.tokens_embed) + pos.apply(&self.model.positions_embed);
        let h = self.model.blocks.iter().zip(&mut self.caches).fold(xs, |h, (b, (k, v))| b.step(&h, k, v));
        self.len += n;
        self.model.head(&h)
    }

    fn len(&self) -> i64 {
        self.len
    }

    fn capacity(&self) -> Option<i64> {
        Some(self.model.cfg.n_positions)
    }
}

impl CausalLm for Gpt {
    fn decoder(&self) -> Option<Box<dyn crate::Decoder + '_>> {
        Some(Box::new(GptDecoder { model: self, caches: self.blocks.iter().map(|_| (None, None)).collect(), len: 0 }))
    }

    /// Token plus position embeddings (the input of the first block).
    fn embed(&self, tokens: &Tensor) -> Tensor {
        let t = tokens.size()[1];
        let pos = Tensor::arange(t, (Kind::Int64, tokens.device()));
        tokens.apply(&self.tokens_embed) + pos.apply(&self.positions_embed)
    }

    fn blocks(&self, xs: &Tensor, depth: Option<usize>, train: bool) -> Tensor {
        let n = depth.unwrap_or(self.blocks.len()).min(self.blocks.len());
        let h = xs.dropout(self.cfg.dropout, train);
        self.blocks[..n].iter().fold(h, |h, b| b.forward(&h, train))
    }

    /// Tied head: logits = h · Eᵀ.
    fn head(&self, hidden: &Tensor) -> Tensor {
        precision::matmul(hidden, &self.tokens_embed.ws.tr())
    }

    fn embedding_weight(&self) -> Tensor {
        self.tokens_embed.ws.shallow_clone()
    }

    fn n_layers(&self) -> usize {
        self.blocks.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    /// One GPT-1 block against A.3 computed independently: Conv1D as x·W + b, causal softmax
    /// attention over 2 heads, post-LN (LayerNorm after each residual add, eps 1e-5), and the
    /// tanh-approximated GELU written out. Every weight, bias and LayerNorm affine is random, so
    /// a swapped term or a pre-LN ordering shows.
    #[test]
    fn block_matches_the_reference_equations() {
        tch::manual_seed(5);
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = GptConfig { vocab_size: 20, d_model: 8, n_layers: 1, n_heads: 2, n_positions: 6, dropout: 0.1 };
        let m = Gpt::new(&vs.root(), cfg);
        tch::no_grad(|| {
            for (_, mut v) in vs.variables() {
                let r = Tensor::randn_like(&v) * 0.5;
                v.copy_(&r);
            }
        });
        let v = vs.variables();
        let k = |name: &str| v[&format!("transformer.h.0.{name}")].shallow_clone();
        let (t, d, h, hd) = (5i64, 8i64, 2i64, 4i64);
        let x = Tensor::randn([1, t, d], (Kind::Float, Device::Cpu));
        let conv = |x: &Tensor, name: &str| x.matmul(&k(&format!("{name}.weight"))) + k(&format!("{name}.bias"));
        let ln = |x: &Tensor, name: &str| {
            let mu = x.mean_dim(-1, true, Kind::Float);
            let var = (x - &mu).square().mean_dim(-1, true, Kind::Float);
            (x - mu) / (var + 1e-5).sqrt() * k(&format!("{name}.weight")) + k(&format!("{name}.bias"))
        };
        let gelu = |x: &Tensor| x * 0.5 * ((x + x.pow_tensor_scalar(3) * 0.044715) * (2.0 / std::f64::consts::PI).sqrt()).tanh().g_add_scalar(1.0);
        let qkv = conv(&x, "attn.c_attn"); // [1, t, 3d]
        let head = |i: i64| qkv.narrow(-1, i * d, d).view([t, h, hd]).transpose(0, 1); // [h, t, hd]
        let causal = Tensor::ones([t, t], (Kind::Bool, Device::Cpu)).tril(0);
        let scores = head(0).matmul(&head(1).transpose(1, 2)) / (hd as f64).sqrt();
        let att = scores.masked_fill(&causal.logical_not(), f64::NEG_INFINITY).softmax(-1, Kind::Float);
        let a = conv(&att.matmul(&head(2)).transpose(0, 1).reshape([1, t, d]), "attn.c_proj");
        let n = ln(&(&x + a), "ln_1");
        let want = ln(&(&n + conv(&gelu(&conv(&n, "mlp.c_fc")), "mlp.c_proj")), "ln_2");
        let got = m.blocks(&x, None, false); // eval: no dropout
        assert!(got.allclose(&want, 1e-4, 1e-5, false), "max diff {}", (&got - &want).abs().max().double_value(&[]));
        // Training mode drops out: the same input gives another output.
        tch::manual_seed(0);
        assert!(!m.blocks(&x, None, true).allclose(&want, 1e-4, 1e-5, false));
    }
}
