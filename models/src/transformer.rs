//! The Llama-style transformer baseline, PAPER.md A.3: Hugging Face `LlamaForCausalLM` with
//! random init (N(0, 0.02)), RMSNorm (eps 1e-6), RoPE (θ = 10000, rotate-half layout), SwiGLU MLP
//! with I = 4d, no biases, untied head, final RMSNorm, causal SDPA. Pads are attended to, as in
//! the reference (its collator passes no attention mask).
//!
//! ```text
//! h   = x + Attn(RMSNorm_in(x))
//! out = h + down(silu(gate(z)) * up(z)),  z = RMSNorm_post(h)
//! ```
//! The hybrid "transfixer" (A.4) adds a flat masked token mixing of the attention output:
//! `h = x + a + MaskedConv(a)`, `a = Attn(RMSNorm_in(x))`; the parallel hybrid mixes the normed
//! input beside the attention instead: `h = x + Attn(z) + MaskedConv(z)`, `z = RMSNorm_in(x)`. Key names
//! (`model.layers.N.mixer_layer.conv.*`) are ours: the fork's were not recovered.
//!
//! The bidirectional transformer (PAPER.md H.19, the reference's
//! `mixer_lm/bidirectional_transformer.py`) runs two causal Llama stacks, one on the embeddings
//! and one on them reversed along the sequence, and predicts each token from both sides of it:
//! ```text
//! f = Layers_fwd(wte(x)),  r = flip(Layers_rev(flip(wte(x))))     (f[i] sees 0..=i, r[i] sees i..)
//! logits[i] = lm_head(f[i - 1] + r[i + 1])                         (a missing side is 0; label: token i)
//! ```
use crate::masked_mixer::MaskedConv;
use crate::{init, mask, precision, CausalLm, Objective};
use tch::{nn, nn::Module, Kind, Tensor};

/// Hugging Face `LlamaConfig.initializer_range`.
const INIT_STD: f64 = 0.02;

#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    pub vocab_size: i64,
    pub d_model: i64,
    pub n_layers: usize,
    pub n_heads: i64,
    pub intermediate_size: i64,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    /// Transfixer: the L of a masked token mixing applied to each attention output.
    pub mixer_n_ctx: Option<i64>,
    /// Transfixer: its mixing weight's masked-entry gradient (PAPER.md I.1).
    pub mixer_mask_grad: mask::MaskGrad,
    /// Transfixer: the mixing applied to the attention's normed input, in parallel with it.
    pub parallel_mixer: bool,
    /// false: layers without their two residual connections (A.2).
    pub residual: bool,
}

impl LlamaConfig {
    /// PAPER.md A.7: `2Vd + n (4d² + 3dI + 2d) + d` (+ L² + L per layer for the transfixer).
    pub fn num_params(&self) -> u64 {
        let (v, d, i) = (self.vocab_size, self.d_model, self.intermediate_size);
        let mixer = self.mixer_n_ctx.map_or(0, |l| l * l + l);
        let layer = 4 * d * d + 3 * d * i + 2 * d + mixer;
        (2 * v * d + layer * self.n_layers as i64 + d) as u64
    }
}

#[derive(Debug)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    pub fn new(p: nn::Path, d: i64, eps: f64) -> Self {
        Self { weight: p.var("weight", &[d], nn::Init::Const(1.0)), eps }
    }
}

impl Module for RmsNorm {
    /// `x * rsqrt(mean(x²) + eps) * w`, computed in fp32 like the reference.
    fn forward(&self, xs: &Tensor) -> Tensor {
        let kind = xs.kind();
        let x = xs.to_kind(Kind::Float);
        let var = x.pow_tensor_scalar(2).mean_dim(-1, true, Kind::Float);
        (x * (var + self.eps).rsqrt()).to_kind(kind) * &self.weight
    }
}

/// The kernel libtorch's `scaled_dot_product_attention` picks for causal attention of this shape,
/// dtype and device (`at::_fused_sdp_choice`): "math", "flash", "efficient", "cudnn", ...
pub fn sdpa_backend(batch: i64, heads: i64, t: i64, head_dim: i64, kind: Kind, device: tch::Device) -> String {
    let q = Tensor::zeros([batch, heads, t, head_dim], (kind, device));
    let choice = Tensor::internal_fused_sdp_choice::<Tensor>(&q, &q, &q, None, 0.0, true, None, false);
    match choice {
        0 => "math".into(),
        1 => "flash".into(),
        2 => "efficient".into(),
        3 => "cudnn".into(),
        4 => "overrideable".into(),
        other => format!("unknown ({other})"),
    }
}

/// RoPE tables for positions 0..t: `cos`, `sin` of shape `[t, head_dim]` (halves repeated, the
/// Hugging Face layout).
pub fn rope_tables(t: i64, head_dim: i64, theta: f64, device: tch::Device) -> (Tensor, Tensor) {
    let opts = (Kind::Float, device);
    let exponents = Tensor::arange_start_step(0, head_dim, 2, opts) / head_dim as f64;
    let inv_freq = Tensor::from(theta).to_device(device).pow(&exponents).reciprocal(); // [hd/2]
    let pos = Tensor::arange(t, opts); // [t]
    let freqs = pos.outer(&inv_freq); // [t, hd/2]
    let emb = Tensor::cat(&[&freqs, &freqs], -1); // [t, hd]
    (emb.cos(), emb.sin())
}

/// `x * cos + rotate_half(x) * sin`, `rotate_half([x1, x2]) = [-x2, x1]`. x: `[b, h, t, hd]`.
pub fn apply_rope(xs: &Tensor, cos: &Tensor, sin: &Tensor) -> Tensor {
    let hd = xs.size()[3];
    let x1 = xs.narrow(-1, 0, hd / 2);
    let x2 = xs.narrow(-1, hd / 2, hd / 2);
    let rotated = Tensor::cat(&[&x2.neg(), &x1], -1);
    xs * cos.to_kind(xs.kind()) + rotated * sin.to_kind(xs.kind())
}

#[derive(Debug)]
struct Attention {
    q_proj: nn::Linear,
    k_proj: nn::Linear,
    v_proj: nn::Linear,
    o_proj: nn::Linear,
    n_heads: i64,
}

impl Attention {
    fn new(p: nn::Path, d: i64, n_heads: i64) -> Self {
        Self {
            q_proj: init::linear_normal(&p / "q_proj", d, d, INIT_STD),
            k_proj: init::linear_normal(&p / "k_proj", d, d, INIT_STD),
            v_proj: init::linear_normal(&p / "v_proj", d, d, INIT_STD),
            o_proj: init::linear_normal(&p / "o_proj", d, d, INIT_STD),
            n_heads,
        }
    }

    /// Queries, keys (both rotated by the positions' `cos`, `sin`) and values: `[b, h, t, hd]`.
    fn project(&self, xs: &Tensor, cos: &Tensor, sin: &Tensor) -> (Tensor, Tensor, Tensor) {
        let (b, t, d) = xs.size3().expect("[b, t, d]");
        let hd = d / self.n_heads;
        let heads = |x: Tensor| x.view([b, t, self.n_heads, hd]).transpose(1, 2); // [b, h, t, hd]
        let q = apply_rope(&heads(precision::linear(xs, &self.q_proj)), cos, sin);
        let k = apply_rope(&heads(precision::linear(xs, &self.k_proj)), cos, sin);
        (q, k, heads(precision::linear(xs, &self.v_proj)))
    }

    /// The heads' outputs `[b, h, t, hd]` joined and projected: `[b, t, d]`.
    fn output(&self, y: &Tensor) -> Tensor {
        let (b, _, t, _) = y.size4().expect("[b, h, t, hd]");
        precision::linear(&y.transpose(1, 2).contiguous().view([b, t, -1]), &self.o_proj)
    }

    fn forward(&self, xs: &Tensor, cos: &Tensor, sin: &Tensor) -> Tensor {
        let (q, k, v) = self.project(xs, cos, sin);
        self.output(&Tensor::scaled_dot_product_attention::<Tensor>(&q, &k, &v, None, 0.0, true, None, false))
    }
}

#[derive(Debug)]
struct Mlp {
    gate_proj: nn::Linear,
    up_proj: nn::Linear,
    down_proj: nn::Linear,
}

impl Module for Mlp {
    fn forward(&self, xs: &Tensor) -> Tensor {
        let gate = precision::linear(xs, &self.gate_proj).silu();
        precision::linear(&(gate * precision::linear(xs, &self.up_proj)), &self.down_proj)
    }
}

#[derive(Debug)]
pub(crate) struct DecoderLayer {
    input_layernorm: RmsNorm,
    self_attn: Attention,
    post_attention_layernorm: RmsNorm,
    mlp: Mlp,
    mixer_layer: Option<MaskedConv>,
    parallel_mixer: bool,
    residual: bool,
}

impl DecoderLayer {
    pub(crate) fn new(p: nn::Path, cfg: &LlamaConfig) -> Self {
        let (d, i) = (cfg.d_model, cfg.intermediate_size);
        let mlp = &p / "mlp";
        Self {
            input_layernorm: RmsNorm::new(&p / "input_layernorm", d, cfg.rms_norm_eps),
            self_attn: Attention::new(&p / "self_attn", d, cfg.n_heads),
            post_attention_layernorm: RmsNorm::new(&p / "post_attention_layernorm", d, cfg.rms_norm_eps),
            mlp: Mlp {
                gate_proj: init::linear_normal(&mlp / "gate_proj", d, i, INIT_STD),
                up_proj: init::linear_normal(&mlp / "up_proj", d, i, INIT_STD),
                down_proj: init::linear_normal(&mlp / "down_proj", i, d, INIT_STD),
            },
            mixer_layer: cfg.mixer_n_ctx.map(|l| {
                MaskedConv::new(&p / "mixer_layer" / "conv", l, l, 1, mask::causal, cfg.mixer_mask_grad)
            }),
            parallel_mixer: cfg.parallel_mixer,
            residual: cfg.residual,
        }
    }

    pub(crate) fn forward(&self, xs: &Tensor, cos: &Tensor, sin: &Tensor) -> Tensor {
        let z = xs.apply(&self.input_layernorm);
        let a = self.self_attn.forward(&z, cos, sin);
        let mixed = match &self.mixer_layer {
            Some(conv) if self.parallel_mixer => a + conv.forward(&z),
            Some(conv) => conv.forward(&a) + a,
            None => a,
        };
        self.finish(xs, mixed)
    }

    /// The layer at positions `from..from + n` (`xs`: `[b, n, d]`; `cos`, `sin` of those
    /// positions), earlier positions read from the cache.
    fn step(&self, xs: &Tensor, cos: &Tensor, sin: &Tensor, cache: &mut LayerCache, from: i64) -> Tensor {
        let n = xs.size()[1];
        let z = xs.apply(&self.input_layernorm);
        let (q, k, v) = self.self_attn.project(&z, cos, sin);
        let (k, v) = (crate::decode::append(&mut cache.keys, &k, 2), crate::decode::append(&mut cache.values, &v, 2));
        let a = self.self_attn.output(&crate::decode::cached_attention(&q, &k, &v));
        let mixed = match &self.mixer_layer {
            Some(conv) if self.parallel_mixer => conv.rows(&crate::decode::append(&mut cache.mixer_inputs, &z, 1), from, n) + a,
            Some(conv) => conv.rows(&crate::decode::append(&mut cache.mixer_inputs, &a, 1), from, n) + a,
            None => a,
        };
        self.finish(xs, mixed)
    }

    /// Residual, post-attention norm and MLP.
    fn finish(&self, xs: &Tensor, mixed: Tensor) -> Tensor {
        let h = if self.residual { xs + mixed } else { mixed };
        let out = h.apply(&self.post_attention_layernorm).apply(&self.mlp);
        if self.residual {
            h + out
        } else {
            out
        }
    }
}

#[derive(Debug)]
pub struct Llama {
    pub cfg: LlamaConfig,
    embed_tokens: nn::Embedding,
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    lm_head: nn::Linear,
}

impl Llama {
    pub fn new(p: &nn::Path, cfg: LlamaConfig) -> Self {
        let m = p / "model";
        let embed_tokens = init::embedding(&m / "embed_tokens", cfg.vocab_size, cfg.d_model, INIT_STD);
        let layers = (0..cfg.n_layers).map(|i| DecoderLayer::new(&m / "layers" / i, &cfg)).collect();
        let norm = RmsNorm::new(&m / "norm", cfg.d_model, cfg.rms_norm_eps);
        let lm_head = init::linear_normal(p / "lm_head", cfg.d_model, cfg.vocab_size, INIT_STD);
        Self { cfg, embed_tokens, layers, norm, lm_head }
    }
}

/// One layer's decoding state: keys and values `[b, h, T, hd]`, and the transfixer's token
/// mixing inputs `[b, T, d]`.
#[derive(Debug, Default)]
struct LayerCache {
    keys: Option<Tensor>,
    values: Option<Tensor>,
    mixer_inputs: Option<Tensor>,
}

/// The Llama's (and transfixer's) KV-cache decoder.
struct LlamaDecoder<'a> {
    model: &'a Llama,
    caches: Vec<LayerCache>,
    len: i64,
}

impl crate::Decoder for LlamaDecoder<'_> {
    fn feed(&mut self, tokens: &Tensor) -> Tensor {
        let (from, n) = (self.len, tokens.size()[1]);
        if let Some(l) = self.capacity() {
            assert!(from + n <= l, "the transfixer's token mixing holds {l} positions; {} asked", from + n);
        }
        let cfg = &self.model.cfg;
        let (cos, sin) = rope_tables(from + n, cfg.d_model / cfg.n_heads, cfg.rope_theta, tokens.device());
        let (cos, sin) = (cos.narrow(0, from, n), sin.narrow(0, from, n));
        let xs = self.model.embed(tokens);
        let h = self.model.layers.iter().zip(&mut self.caches).fold(xs, |h, (l, c)| l.step(&h, &cos, &sin, c, from));
        self.len += n;
        self.model.head(&h)
    }

    fn len(&self) -> i64 {
        self.len
    }

    fn capacity(&self) -> Option<i64> {
        self.model.cfg.mixer_n_ctx
    }
}

impl CausalLm for Llama {
    fn decoder(&self) -> Option<Box<dyn crate::Decoder + '_>> {
        Some(Box::new(LlamaDecoder { model: self, caches: self.layers.iter().map(|_| LayerCache::default()).collect(), len: 0 }))
    }

    fn embed(&self, tokens: &Tensor) -> Tensor {
        tokens.apply(&self.embed_tokens)
    }

    fn blocks(&self, xs: &Tensor, depth: Option<usize>, _train: bool) -> Tensor {
        let (_b, t, _d) = xs.size3().expect("[b, t, d]");
        let hd = self.cfg.d_model / self.cfg.n_heads;
        let (cos, sin) = rope_tables(t, hd, self.cfg.rope_theta, xs.device());
        let n = depth.unwrap_or(self.layers.len()).min(self.layers.len());
        self.layers[..n].iter().fold(xs.shallow_clone(), |h, l| l.forward(&h, &cos, &sin))
    }

    fn head(&self, hidden: &Tensor) -> Tensor {
        precision::linear(&hidden.apply(&self.norm), &self.lm_head)
    }

    fn embedding_states(&self, tokens: &Tensor, train: bool) -> Tensor {
        self.blocks(&self.embed(tokens), None, train).apply(&self.norm)
    }

    fn embedding_weight(&self) -> Tensor {
        self.embed_tokens.ws.shallow_clone()
    }

    fn n_layers(&self) -> usize {
        self.layers.len()
    }

    fn remask(&self) {
        self.layers.iter().filter_map(|l| l.mixer_layer.as_ref()).for_each(MaskedConv::remask);
    }
}

/// The bidirectional transformer of the module docs, with the reference's key names
/// (`wte`, `forward_model.model.model.layers.N.*`, `reverse_model.model.model.layers.N.*`,
/// `lm_head`) and init (its own `nn.Embedding` and `nn.Linear` for `wte` and `lm_head`: PyTorch's
/// defaults; the layers as Hugging Face initialises Llama). Neither stack has a final norm. The
/// reference builds each stack from a whole `LlamaForCausalLM` and uses only its layers; the
/// unused embeddings, norms and heads of those two are not built here (nor counted).
#[derive(Debug)]
pub struct BidirectionalLlama {
    pub cfg: LlamaConfig,
    wte: nn::Embedding,
    forward_layers: Vec<DecoderLayer>,
    reverse_layers: Vec<DecoderLayer>,
    lm_head: nn::Linear,
}

impl BidirectionalLlama {
    pub fn new(p: &nn::Path, cfg: LlamaConfig) -> Self {
        let stack = |name: &str| (0..cfg.n_layers).map(|i| DecoderLayer::new(p / name / "model" / "model" / "layers" / i, &cfg)).collect();
        Self {
            wte: init::embedding(p / "wte", cfg.vocab_size, cfg.d_model, 1.0),
            forward_layers: stack("forward_model"),
            reverse_layers: stack("reverse_model"),
            lm_head: init::linear(p / "lm_head", cfg.d_model, cfg.vocab_size, false),
            cfg,
        }
    }

    /// `2Vd + 2n (4d² + 3dI + 2d)`: both stacks' layers, the embedding and the head.
    pub fn num_params(cfg: &LlamaConfig) -> u64 {
        let (v, d, i) = (cfg.vocab_size, cfg.d_model, cfg.intermediate_size);
        (2 * v * d + 2 * cfg.n_layers as i64 * (4 * d * d + 3 * d * i + 2 * d)) as u64
    }
}

impl CausalLm for BidirectionalLlama {
    fn embed(&self, tokens: &Tensor) -> Tensor {
        tokens.apply(&self.wte)
    }

    /// `f[i - 1] + r[i + 1]` (zero where i - 1 or i + 1 falls outside): what the head reads to
    /// predict token i.
    fn blocks(&self, xs: &Tensor, depth: Option<usize>, _train: bool) -> Tensor {
        let (b, t, d) = xs.size3().expect("[b, t, d]");
        let hd = self.cfg.d_model / self.cfg.n_heads;
        let (cos, sin) = rope_tables(t, hd, self.cfg.rope_theta, xs.device());
        let n = depth.unwrap_or(self.cfg.n_layers).min(self.cfg.n_layers);
        let run = |layers: &[DecoderLayer], x: Tensor| layers[..n].iter().fold(x, |h, l| l.forward(&h, &cos, &sin));
        let f = run(&self.forward_layers, xs.shallow_clone());
        let r = run(&self.reverse_layers, xs.flip([1])).flip([1]);
        let pad = Tensor::zeros([b, 1, d], (f.kind(), f.device()));
        Tensor::cat(&[&pad, &f.narrow(1, 0, t - 1)], 1) + Tensor::cat(&[&r.narrow(1, 1, t - 1), &pad], 1)
    }

    fn head(&self, hidden: &Tensor) -> Tensor {
        precision::linear(hidden, &self.lm_head)
    }

    fn embedding_weight(&self) -> Tensor {
        self.wte.ws.shallow_clone()
    }

    fn n_layers(&self) -> usize {
        self.cfg.n_layers
    }

    /// Token i from every other token (the reference's unshifted labels; its loss covers all
    /// positions, token 0 from the reverse stream alone and the last from the forward one).
    fn objective(&self) -> Objective {
        Objective::SamePosition { from: 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn rope_matches_complex_rotation() {
        // RoPE rotates each pair (x[k], x[k + hd/2]) by angle pos * θ^(-2k/hd).
        let (t, hd) = (5, 4);
        let (cos, sin) = rope_tables(t, hd, 10000.0, Device::Cpu);
        let x = Tensor::randn([1, 1, t, hd], (Kind::Float, Device::Cpu));
        let y = apply_rope(&x, &cos, &sin);
        for pos in 0..t {
            for k in 0..hd / 2 {
                let ang = pos as f64 * 10000f64.powf(-2.0 * k as f64 / hd as f64);
                let (a, b) = (x.double_value(&[0, 0, pos, k]), x.double_value(&[0, 0, pos, k + hd / 2]));
                let want0 = a * ang.cos() - b * ang.sin();
                let want1 = b * ang.cos() + a * ang.sin();
                assert!((y.double_value(&[0, 0, pos, k]) - want0).abs() < 1e-5);
                assert!((y.double_value(&[0, 0, pos, k + hd / 2]) - want1).abs() < 1e-5);
            }
        }
    }

    /// One Llama layer against A.3 computed independently: explicit RMSNorm, RoPE as a rotation
    /// of (x[k], x[k + hd/2]) pairs, masked softmax attention, SwiGLU.
    #[test]
    fn layer_matches_the_reference_equations() {
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = LlamaConfig {
            vocab_size: 30, d_model: 8, n_layers: 1, n_heads: 2, intermediate_size: 12,
            rms_norm_eps: 1e-6, rope_theta: 10000.0, mixer_n_ctx: None, mixer_mask_grad: mask::MaskGrad::Functional, parallel_mixer: false, residual: true,
        };
        let m = Llama::new(&vs.root(), cfg);
        let v = vs.variables();
        let k = |name: &str| v[&format!("model.layers.0.{name}")].shallow_clone();
        let (t, d, h, hd) = (5i64, 8i64, 2i64, 4i64);
        let x = Tensor::randn([1, t, d], (Kind::Float, Device::Cpu)) * 0.5;
        let rms = |x: &Tensor, w: &Tensor| x / (x.square().mean_dim(-1, true, Kind::Float) + 1e-6).sqrt() * w;
        let xn = rms(&x, &k("input_layernorm.weight"));
        let proj = |name: &str| xn.matmul(&k(&format!("self_attn.{name}.weight")).tr()).view([t, h, hd]);
        let rotate = |q: &Tensor| {
            let out = q.zeros_like();
            for pos in 0..t {
                for j in 0..hd / 2 {
                    let ang = pos as f64 * 10000f64.powf(-2.0 * j as f64 / hd as f64);
                    for head in 0..h {
                        let (a, b) = (q.double_value(&[pos, head, j]), q.double_value(&[pos, head, j + hd / 2]));
                        let _ = out.get(pos).get(head).get(j).fill_(a * ang.cos() - b * ang.sin());
                        let _ = out.get(pos).get(head).get(j + hd / 2).fill_(b * ang.cos() + a * ang.sin());
                    }
                }
            }
            out.transpose(0, 1) // [h, t, hd]
        };
        let (q, kk, vv) = (rotate(&proj("q_proj")), rotate(&proj("k_proj")), proj("v_proj").transpose(0, 1));
        let causal = Tensor::ones([t, t], (Kind::Bool, Device::Cpu)).tril(0);
        let scores = q.matmul(&kk.transpose(1, 2)) / (hd as f64).sqrt();
        let att = scores.masked_fill(&causal.logical_not(), f64::NEG_INFINITY).softmax(-1, Kind::Float);
        let a = att.matmul(&vv).transpose(0, 1).reshape([1, t, d]).matmul(&k("self_attn.o_proj.weight").tr());
        let hid = &x + a;
        let z = rms(&hid, &k("post_attention_layernorm.weight"));
        let mlp = |name: &str| z.matmul(&k(&format!("mlp.{name}.weight")).tr());
        let want = &hid + (mlp("gate_proj").silu() * mlp("up_proj")).matmul(&k("mlp.down_proj.weight").tr());
        let got = m.blocks(&x, None, false);
        assert!(got.allclose(&want, 1e-4, 1e-5, false), "max diff {}", (got - want).abs().max().double_value(&[]));
    }

    /// Without residuals (A.2) a layer is MLP(RMSNorm_post(Attn(RMSNorm_in(x)))): the same
    /// weights with and without, the difference being exactly the two skipped additions.
    #[test]
    fn a_layer_without_residuals_drops_both_additions() {
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = LlamaConfig {
            vocab_size: 30, d_model: 8, n_layers: 1, n_heads: 2, intermediate_size: 12,
            rms_norm_eps: 1e-6, rope_theta: 10000.0, mixer_n_ctx: None, mixer_mask_grad: mask::MaskGrad::Functional, parallel_mixer: false, residual: false,
        };
        let layer = DecoderLayer::new(vs.root() / "l", &cfg);
        let x = Tensor::randn([2, 5, 8], (Kind::Float, Device::Cpu));
        let (cos, sin) = rope_tables(5, 4, 10000.0, Device::Cpu);
        let a = layer.self_attn.forward(&x.apply(&layer.input_layernorm), &cos, &sin);
        let want = a.apply(&layer.post_attention_layernorm).apply(&layer.mlp);
        assert!(layer.forward(&x, &cos, &sin).allclose(&want, 1e-6, 1e-6, false));
        let with = DecoderLayer { residual: true, ..layer };
        let h = &x + &a;
        let want = &h + h.apply(&with.post_attention_layernorm).apply(&with.mlp);
        assert!(with.forward(&x, &cos, &sin).allclose(&want, 1e-6, 1e-6, false));
    }

    #[test]
    fn rms_norm_formula() {
        let vs = nn::VarStore::new(Device::Cpu);
        let n = RmsNorm::new(vs.root() / "n", 3, 1e-6);
        let x = Tensor::from_slice(&[1.0f32, 2.0, 2.0]).view([1, 3]);
        let rms = (9.0f64 / 3.0 + 1e-6).sqrt();
        let y = n.forward(&x);
        for (i, v) in [1.0, 2.0, 2.0].iter().enumerate() {
            assert!((y.double_value(&[0, i as i64]) - v / rms).abs() < 1e-6);
        }
    }

    #[test]
    fn the_parallel_hybrid_mixes_the_normed_input_beside_attention() {
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = LlamaConfig {
            vocab_size: 40, d_model: 16, n_layers: 1, n_heads: 4, intermediate_size: 64,
            rms_norm_eps: 1e-6, rope_theta: 10000.0, mixer_n_ctx: Some(6), mixer_mask_grad: mask::MaskGrad::Functional, parallel_mixer: true, residual: true,
        };
        let layer = DecoderLayer::new(vs.root() / "l", &cfg);
        let x = Tensor::randn([2, 6, 16], (Kind::Float, Device::Cpu));
        let (cos, sin) = rope_tables(6, 4, 10000.0, Device::Cpu);
        let z = x.apply(&layer.input_layernorm);
        let a = layer.self_attn.forward(&z, &cos, &sin);
        let conv = layer.mixer_layer.as_ref().unwrap();
        let h = &x + &a + conv.forward(&z);
        let want = &h + h.apply(&layer.post_attention_layernorm).apply(&layer.mlp);
        assert!(layer.forward(&x, &cos, &sin).allclose(&want, 1e-6, 1e-6, false));
        // The sequential hybrid (the same weights) mixes the attention output instead: not the same.
        let seq = DecoderLayer { parallel_mixer: false, ..layer };
        assert!(!seq.forward(&x, &cos, &sin).allclose(&want, 1e-4, 1e-4, false));
    }

    /// With the reverse stack given the forward stack's weights, the model is symmetric: reversed
    /// tokens give reversed logits. This holds only if the reverse stack reads the flipped
    /// sequence and the two streams meet with the ±1 shifts of the module docs.
    #[test]
    fn the_bidirectional_transformer_is_symmetric_with_tied_stacks() {
        tch::manual_seed(5);
        let mut vs = nn::VarStore::new(Device::Cpu);
        let cfg = LlamaConfig {
            vocab_size: 30, d_model: 16, n_layers: 2, n_heads: 2, intermediate_size: 32,
            rms_norm_eps: 1e-6, rope_theta: 10000.0, mixer_n_ctx: None, mixer_mask_grad: mask::MaskGrad::Functional, parallel_mixer: false, residual: true,
        };
        let m = BidirectionalLlama::new(&vs.root(), cfg.clone());
        let counted: i64 = vs.trainable_variables().iter().map(|t| t.numel() as i64).sum();
        assert_eq!(counted as u64, BidirectionalLlama::num_params(&cfg));
        let tokens = Tensor::randint(30, [2, 7], (Kind::Int64, Device::Cpu));
        let logits = |m: &BidirectionalLlama, x: &Tensor| m.forward_t(x, false);
        // Untied: not symmetric.
        let asym = (logits(&m, &tokens.flip([1])) - logits(&m, &tokens).flip([1])).abs().max().double_value(&[]);
        assert!(asym > 1e-3, "{asym}");
        let vars = vs.variables();
        tch::no_grad(|| {
            for (name, v) in vars.iter().filter(|(n, _)| n.starts_with("reverse_model.")) {
                v.shallow_clone().copy_(&vars[&name.replacen("reverse_model.", "forward_model.", 1)]);
            }
        });
        vs.freeze();
        let diff = (logits(&m, &tokens.flip([1])) - logits(&m, &tokens).flip([1])).abs().max().double_value(&[]);
        assert!(diff < 1e-5, "{diff}");
    }

    #[test]
    fn param_count_matches_varstore() {
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = LlamaConfig {
            vocab_size: 40, d_model: 16, n_layers: 2, n_heads: 4, intermediate_size: 64,
            rms_norm_eps: 1e-6, rope_theta: 10000.0, mixer_n_ctx: Some(6), mixer_mask_grad: mask::MaskGrad::Functional, parallel_mixer: false, residual: true,
        };
        let m = Llama::new(&vs.root(), cfg);
        let counted: i64 = vs.trainable_variables().iter().map(|t| t.numel() as i64).sum();
        assert_eq!(counted as u64, m.cfg.num_params());
    }
}
