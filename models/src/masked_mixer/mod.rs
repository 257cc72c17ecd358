//! The masked mixer (`LanguageMixer`), PAPER.md A.1, and its token-mixing variants, A.2;
//! reference code blbadger/maskedmixers (`pc/mixer_trainer.py`, `server/mixer_multiconv.py`,
//! `mixer_lm/bidirectional_mixer.py`).
//!
//! ```text
//! h = x + TokenMix(LayerNorm_seq(x))      flat: TokenMix(z)[i] = Σ_{j<=i} W[i, j] z[j] + b[i]
//! y = h + FF(LayerNorm_patch(h))          FF = Linear(d, 4d) -> GELU(erf) -> Linear(4d, d)
//! ```
//! No positional encoding, no final norm, untied head. The token mixing is the reference's
//! `Conv1d(L, L, k)` with tokens as channels; for k = 1 it is one batched matmul. Every mask goes
//! through [`crate::mask`].
use crate::mask::{self, MaskGrad};
use crate::{init, precision, CausalLm};
use tch::{nn, nn::Module, Tensor};

/// E.1's positional-encoding test (the reference's `mixer_lm/mixer_posencoding.py`): one channel
/// holding the integer position `-L/2 .. L/2 - 1` is put in front of the embedding, the blocks run
/// at width d + 1, and the head reads the other d channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PositionChannel {
    /// No positional information (the paper's mixer).
    #[default]
    None,
    /// Written once, at the input (E.1: "no change").
    Input,
    /// Written at the input and again after every block (the reference's file; E.1: worse,
    /// 1.94 train / 2.10 eval).
    EveryBlock,
}

/// The token-mixing layer of a block (PAPER.md A.2).
#[derive(Debug, Clone, PartialEq)]
pub enum Mixing {
    /// One masked `Conv1d(L, L, 1)`: the paper's default ("flat").
    Flat,
    /// `Conv1d(L, eL, 1) -> GELU -> Conv1d(eL, L, 1)`, both masked (e = 2 in v1, 1 later).
    Expanded { expansion: i64 },
    /// `Conv1d(L, L, k, padding='same')`, each tap masked; the kernel slides over the feature axis.
    Kernel { kernel: i64 },
    /// n independent flat masked convs on the same input, summed.
    Parallel { n: i64 },
    /// As the paper DESCRIBES it (not the code, I.10): per head Linear(d -> d_h) and its own masked
    /// L x L conv, heads concatenated, Linear(n_heads * d_h -> d).
    MultiHead { heads: i64, head_dim: i64 },
}

#[derive(Debug, Clone, PartialEq)]
pub struct MixerConfig {
    pub vocab_size: i64,
    pub d_model: i64,
    pub n_layers: usize,
    /// L: fixed per model, the token-mixing matrix is L x L.
    pub n_ctx: i64,
    /// FF expansion factor (4 in every reported run).
    pub ff_mult: i64,
    /// Dropout inside the FF, after its first Linear (the v1 mixer autoencoder's 0.05, whose
    /// `nn.Sequential(Linear, Dropout, GELU, Linear)` puts the second Linear at index 3). 0: the
    /// usual `Sequential(Linear, GELU, Linear)`.
    pub ff_dropout: f64,
    pub tie_weights: bool,
    pub mixing: Mixing,
    /// The layer-norm-free variant (B2) when false.
    pub layer_norm: bool,
    /// false: no residual connections (A.2's "removing residuals breaks training").
    pub residual: bool,
    /// An extra Linear(d, d) after the embedding (`wte_second`, E.2).
    pub embed_linear: bool,
    /// Forward (tril) and reverse (triu, +2) streams, summed before the head (A.2).
    pub bidirectional: bool,
    pub mask_grad: MaskGrad,
    /// E.1's positional channel: blocks of width d + 1.
    pub position_channel: PositionChannel,
}

impl MixerConfig {
    /// The flat mixer of A.1 with the paper's defaults.
    pub fn flat(vocab_size: i64, d_model: i64, n_layers: usize, n_ctx: i64) -> Self {
        Self {
            vocab_size,
            d_model,
            n_layers,
            n_ctx,
            ff_mult: 4,
            ff_dropout: 0.0,
            tie_weights: false,
            mixing: Mixing::Flat,
            layer_norm: true,
            residual: true,
            embed_linear: false,
            bidirectional: false,
            mask_grad: MaskGrad::Functional,
            position_channel: PositionChannel::None,
        }
    }

    /// The width the blocks run at: d, or d + 1 with a positional channel.
    pub fn block_width(&self) -> i64 {
        self.d_model + i64::from(self.position_channel != PositionChannel::None)
    }

    /// The token-mixing parameters of one block (its L x L weights, biases and, multi-headed,
    /// projections).
    pub fn mixing_params(&self) -> i64 {
        let (l, d) = (self.n_ctx, self.block_width());
        match self.mixing {
            Mixing::Flat => l * l + l,
            Mixing::Expanded { expansion: e } => 2 * e * l * l + e * l + l,
            Mixing::Kernel { kernel: k } => k * l * l + l,
            Mixing::Parallel { n } => n * (l * l + l),
            Mixing::MultiHead { heads, head_dim } => heads * (d * head_dim + head_dim + l * l + l) + heads * head_dim * d + d,
        }
    }

    /// Parameters including embedding and (untied) head; PAPER.md A.7:
    /// `2Vd + n (8d² + 9d + L² + L)` for the flat mixer with ff_mult 4.
    pub fn num_params(&self) -> u64 {
        let (v, d, f, w) = (self.vocab_size, self.d_model, self.ff_mult, self.block_width());
        let ff = 2 * w * f * w + f * w + w;
        let norms = if self.layer_norm { 4 * w } else { 0 }; // seq and patch: weight + bias each
        let block = if self.bidirectional {
            ff + 3 * norms / 2 + 2 * self.mixing_params() // two seq norms, one shared patch norm
        } else {
            ff + norms + self.mixing_params()
        };
        let head = if self.tie_weights { 0 } else { v * d };
        let embed_linear = if self.embed_linear { d * d + d } else { 0 };
        (v * d + head + embed_linear + block * self.n_layers as i64) as u64
    }
}

/// One masked `Conv1d(L_in -> L_out, k)` with tokens as channels, weight `[L_out, L_in, k]`.
#[derive(Debug)]
pub struct MaskedConv {
    pub weight: Tensor,
    pub bias: Tensor,
    mask: fn(&Tensor) -> Tensor,
    grad: MaskGrad,
}

impl MaskedConv {
    pub fn new(p: nn::Path, l_in: i64, l_out: i64, kernel: i64, mask: fn(&Tensor) -> Tensor, grad: MaskGrad) -> Self {
        // Conv1d default init: fan_in = in_channels * kernel.
        let weight = p.var("weight", &[l_out, l_in, kernel], init::torch_default(l_in * kernel));
        let bias = p.var("bias", &[l_out], init::torch_default(l_in * kernel));
        Self { weight, bias, mask, grad }
    }

    /// Stores the masked weight in place (see [`crate::CausalLm::remask`]).
    pub fn remask(&self) {
        tch::no_grad(|| {
            let masked = self.masked_weight().detach();
            self.weight.shallow_clone().copy_(&masked);
        });
    }

    /// Output rows `from..from + n` of forward, from the inputs at rows `0..T` (`[b, T, d]`): the
    /// mask zeroes every input row after an output row, so rows beyond T are never read.
    pub fn rows(&self, inputs: &Tensor, from: i64, n: i64) -> Tensor {
        let t = inputs.size()[1];
        let w = self.masked_weight().narrow(0, from, n).narrow(1, 0, t); // [n, T, k]
        let bias = self.bias.narrow(0, from, n);
        let k = w.size()[2];
        if k == 1 {
            let w = precision::cast(&w.squeeze_dim(-1));
            precision::cast(&bias).view([1, n, 1]) + w.matmul(&precision::cast(inputs))
        } else {
            let left = (k - 1) / 2;
            let padded = inputs.constant_pad_nd([left, k - 1 - left]);
            precision::cast(&padded).conv1d(&precision::cast(&w), Some(&precision::cast(&bias)), [1], [0], [1], 1)
        }
    }

    /// The weight as forward uses it: each tap masked over `[out, in]`.
    pub fn masked_weight(&self) -> Tensor {
        let w = self.weight.permute([2, 0, 1]); // [k, out, in]
        mask::apply(&w, self.mask, self.grad).permute([1, 2, 0]) // [out, in, k]
    }
}

impl Module for MaskedConv {
    /// `[b, L_in, d]` -> `[b, L_out, d]`.
    fn forward(&self, xs: &Tensor) -> Tensor {
        let k = self.weight.size()[2];
        let w = self.masked_weight();
        if k == 1 {
            // out[b, i, :] = bias[i] + Σ_j W[i, j] x[b, j, :]: one batched GEMM with the bias
            // as its addend (`baddbmm` over the weight and bias broadcast to the batch). Exact, and
            // about twice as fast as `matmul` of [L, L] by [b, L, d] (which copies x into a
            // transposed layout and back) or the reference's Conv1d, forward and backward.
            let (b, _, d) = xs.size3().expect("[b, L, d]");
            let w = precision::cast(&w.squeeze_dim(-1));
            let (l_out, l_in) = (w.size()[0], w.size()[1]);
            let bias = precision::cast(&self.bias).view([1, l_out, 1]).expand([b, l_out, d], false);
            bias.baddbmm(&w.expand([b, l_out, l_in], false), &precision::cast(xs), 1, 1)
        } else {
            // PyTorch 'same' padding along the feature axis: (k-1)/2 left, the rest right.
            let left = (k - 1) / 2;
            let padded = xs.constant_pad_nd([left, k - 1 - left]); // [b, L, d + k - 1]
            precision::cast(&padded).conv1d(&precision::cast(&w), Some(&precision::cast(&self.bias)), [1], [0], [1], 1)
        }
    }
}

#[derive(Debug)]
enum TokenMixing {
    Conv(MaskedConv),
    Expanded { up: MaskedConv, down: MaskedConv },
    Parallel(Vec<MaskedConv>),
    MultiHead { proj: Vec<nn::Linear>, convs: Vec<MaskedConv>, out: nn::Linear },
}

impl TokenMixing {
    fn new(p: &nn::Path, cfg: &MixerConfig, name: &str, mask: fn(&Tensor) -> Tensor) -> Self {
        let (l, d, g) = (cfg.n_ctx, cfg.d_model, cfg.mask_grad);
        match cfg.mixing {
            Mixing::Flat => Self::Conv(MaskedConv::new(p / name, l, l, 1, mask, g)),
            Mixing::Kernel { kernel } => Self::Conv(MaskedConv::new(p / name, l, l, kernel, mask, g)),
            // `conv` is nn.Sequential(Conv1d, GELU, Conv1d): indices 0 and 2.
            Mixing::Expanded { expansion: e } => Self::Expanded {
                up: MaskedConv::new(p / name / 0, l, e * l, 1, mask, g),
                down: MaskedConv::new(p / name / 2, e * l, l, 1, mask, g),
            },
            Mixing::Parallel { n } => Self::Parallel((0..n).map(|i| MaskedConv::new(p / "convs" / i, l, l, 1, mask, g)).collect()),
            Mixing::MultiHead { heads, head_dim } => {
                let m = p / "mixerhead";
                Self::MultiHead {
                    proj: (0..heads).map(|h| init::linear(&m / "proj_head" / h, d, head_dim, true)).collect(),
                    convs: (0..heads).map(|h| MaskedConv::new(&m / "convs" / h, l, l, 1, mask, g)).collect(),
                    out: init::linear(&m / "out_proj", heads * head_dim, d, true),
                }
            }
        }
    }
}

impl TokenMixing {
    fn remask(&self) {
        match self {
            Self::Conv(c) => c.remask(),
            Self::Expanded { up, down } => {
                up.remask();
                down.remask();
            }
            Self::Parallel(convs) | Self::MultiHead { convs, .. } => convs.iter().for_each(MaskedConv::remask),
        }
    }
}

/// What a token mixing keeps of earlier positions while decoding: its inputs, and the inner
/// rows of the expanded (the first conv's GELU output) and multi-head (each head's projection)
/// mixings.
#[derive(Debug, Default)]
struct MixState {
    inputs: Option<Tensor>,
    inner: Vec<Option<Tensor>>,
}

impl TokenMixing {
    /// Rows `from..from + n` of forward for new inputs `z` (`[b, n, d]`) at those rows.
    fn rows(&self, st: &mut MixState, z: &Tensor, from: i64) -> Tensor {
        let n = z.size()[1];
        if st.inner.is_empty() {
            let inner = match self {
                Self::Expanded { .. } => 1,
                Self::MultiHead { proj, .. } => proj.len(),
                _ => 0,
            };
            st.inner = (0..inner).map(|_| None).collect();
        }
        match self {
            Self::Conv(c) => c.rows(&crate::decode::append(&mut st.inputs, z, 1), from, n),
            Self::Expanded { up, down } => {
                let inputs = crate::decode::append(&mut st.inputs, z, 1);
                let u = up.rows(&inputs, from, n).gelu("none");
                down.rows(&crate::decode::append(&mut st.inner[0], &u, 1), from, n)
            }
            Self::Parallel(convs) => {
                let inputs = crate::decode::append(&mut st.inputs, z, 1);
                convs.iter().map(|c| c.rows(&inputs, from, n)).reduce(|a, b| a + b).expect("n >= 1")
            }
            Self::MultiHead { proj, convs, out } => {
                let heads: Vec<Tensor> = proj
                    .iter()
                    .zip(convs)
                    .zip(st.inner.iter_mut())
                    .map(|((p, c), cache)| c.rows(&crate::decode::append(cache, &precision::linear(z, p), 1), from, n))
                    .collect();
                precision::linear(&Tensor::cat(&heads, -1), out)
            }
        }
    }
}

impl Module for TokenMixing {
    fn forward(&self, xs: &Tensor) -> Tensor {
        match self {
            Self::Conv(c) => c.forward(xs),
            Self::Expanded { up, down } => down.forward(&up.forward(xs).gelu("none")), // [b, eL, d] inside
            Self::Parallel(convs) => convs.iter().map(|c| c.forward(xs)).reduce(|a, b| a + b).expect("n >= 1"),
            Self::MultiHead { proj, convs, out } => {
                let heads: Vec<Tensor> = proj.iter().zip(convs).map(|(p, c)| c.forward(&precision::linear(xs, p))).collect(); // [b, L, d_h] each
                precision::linear(&Tensor::cat(&heads, -1), out) // [b, L, d]
            }
        }
    }
}

fn layer_norm(p: nn::Path, d: i64, on: bool) -> Option<nn::LayerNorm> {
    on.then(|| nn::layer_norm(p, vec![d], nn::LayerNormConfig { eps: 1e-5, ..Default::default() }))
}

fn norm(xs: &Tensor, ln: &Option<nn::LayerNorm>) -> Tensor {
    match ln {
        Some(ln) => precision::full(xs).apply(ln),
        None => xs.shallow_clone(),
    }
}

/// `patch_ff`: nn.Sequential(Linear, GELU, Linear), weights at indices 0 and 2; with dropout,
/// the v1 autoencoder's nn.Sequential(Linear, Dropout, GELU, Linear), weights at 0 and 3.
#[derive(Debug)]
struct FeedForward {
    ff_in: nn::Linear,
    ff_out: nn::Linear,
    dropout: f64,
}

impl FeedForward {
    fn new(p: nn::Path, d: i64, f: i64, dropout: f64) -> Self {
        let out = if dropout > 0.0 { 3 } else { 2 };
        Self { ff_in: init::linear(&p / 0, d, f * d, true), ff_out: init::linear(&p / out, f * d, d, true), dropout }
    }

    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let h = precision::linear(xs, &self.ff_in).dropout(self.dropout, train && self.dropout > 0.0);
        precision::linear(&h.gelu("none"), &self.ff_out)
    }
}

impl Module for FeedForward {
    fn forward(&self, xs: &Tensor) -> Tensor {
        self.forward_t(xs, false)
    }
}

#[derive(Debug)]
pub(crate) struct MixerBlock {
    seq_layernorm: Option<nn::LayerNorm>,
    conv: TokenMixing,
    patch_layernorm: Option<nn::LayerNorm>,
    patch_ff: FeedForward,
    residual: bool,
}

impl MixerBlock {
    pub(crate) fn remask(&self) {
        self.conv.remask();
    }

    pub(crate) fn new(p: nn::Path, cfg: &MixerConfig) -> Self {
        Self::with_mask(p, cfg, mask::causal)
    }

    /// A block whose token mixing uses `mask` (the retrieval mixer's is unmasked).
    pub(crate) fn with_mask(p: nn::Path, cfg: &MixerConfig, mask: fn(&Tensor) -> Tensor) -> Self {
        let d = cfg.d_model;
        Self {
            seq_layernorm: layer_norm(&p / "seq_layernorm", d, cfg.layer_norm),
            conv: TokenMixing::new(&p, cfg, "conv", mask),
            patch_layernorm: layer_norm(&p / "patch_layernorm", d, cfg.layer_norm),
            patch_ff: FeedForward::new(&p / "patch_ff", d, cfg.ff_mult, cfg.ff_dropout),
            residual: cfg.residual,
        }
    }

    /// The block with dropout active when `train` (only where the FF has dropout).
    pub(crate) fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mixed = norm(xs, &self.seq_layernorm).apply(&self.conv);
        let h = if self.residual { xs + mixed } else { mixed };
        let ff = self.patch_ff.forward_t(&norm(&h, &self.patch_layernorm), train);
        if self.residual {
            h + ff
        } else {
            ff
        }
    }
}

impl MixerBlock {
    /// The block at rows `from..from + n` (`xs`: `[b, n, d]`), earlier rows read from `st`.
    fn step(&self, xs: &Tensor, st: &mut MixState, from: i64) -> Tensor {
        let mixed = self.conv.rows(st, &norm(xs, &self.seq_layernorm), from);
        let h = if self.residual { xs + mixed } else { mixed };
        let ff = self.patch_ff.forward_t(&norm(&h, &self.patch_layernorm), false);
        if self.residual {
            h + ff
        } else {
            ff
        }
    }
}

impl Module for MixerBlock {
    fn forward(&self, xs: &Tensor) -> Tensor {
        self.forward_t(xs, false)
    }
}

/// `DoubleMixerBlock`: a forward (tril) and a reverse (triu, +2) stream with their own seq norms
/// and token mixing, sharing the patch norm and FF.
#[derive(Debug)]
struct BidirectionalBlock {
    seq_layernormf: Option<nn::LayerNorm>,
    seq_layernormr: Option<nn::LayerNorm>,
    convf: TokenMixing,
    convr: TokenMixing,
    patch_layernorm: Option<nn::LayerNorm>,
    patch_ff: FeedForward,
}

impl BidirectionalBlock {
    fn new(p: nn::Path, cfg: &MixerConfig) -> Self {
        let d = cfg.d_model;
        Self {
            seq_layernormf: layer_norm(&p / "seq_layernormf", d, cfg.layer_norm),
            seq_layernormr: layer_norm(&p / "seq_layernormr", d, cfg.layer_norm),
            convf: TokenMixing::new(&p, cfg, "convf", mask::causal),
            convr: TokenMixing::new(&p, cfg, "convr", mask::reverse),
            patch_layernorm: layer_norm(&p / "patch_layernorm", d, cfg.layer_norm),
            patch_ff: FeedForward::new(&p / "patch_ff", d, cfg.ff_mult, cfg.ff_dropout),
        }
    }

    fn forward(&self, x: &Tensor, y: &Tensor) -> (Tensor, Tensor) {
        let x = x + norm(x, &self.seq_layernormf).apply(&self.convf);
        let y = y + norm(y, &self.seq_layernormr).apply(&self.convr);
        let fx = norm(&x, &self.patch_layernorm).apply(&self.patch_ff);
        let fy = norm(&y, &self.patch_layernorm).apply(&self.patch_ff);
        (x + fx, y + fy)
    }
}

#[derive(Debug)]
enum Blocks {
    Causal(Vec<MixerBlock>),
    Bidirectional(Vec<BidirectionalBlock>),
}

#[derive(Debug)]
pub struct MaskedMixer {
    pub cfg: MixerConfig,
    wte: nn::Embedding,
    wte_second: Option<nn::Linear>,
    blocks: Blocks,
    lm_head: Option<nn::Linear>,
}

impl MaskedMixer {
    pub fn new(p: &nn::Path, cfg: MixerConfig) -> Self {
        let wte = init::embedding(p / "wte", cfg.vocab_size, cfg.d_model, 1.0);
        let wte_second = cfg.embed_linear.then(|| init::linear(p / "wte_second", cfg.d_model, cfg.d_model, true));
        let wide = MixerConfig { d_model: cfg.block_width(), ..cfg.clone() };
        let blocks = if cfg.bidirectional {
            Blocks::Bidirectional((0..cfg.n_layers).map(|i| BidirectionalBlock::new(p / "mixerblocks" / i, &wide)).collect())
        } else {
            Blocks::Causal((0..cfg.n_layers).map(|i| MixerBlock::new(p / "mixerblocks" / i, &wide)).collect())
        };
        let lm_head = (!cfg.tie_weights).then(|| init::linear(p / "lm_head", cfg.d_model, cfg.vocab_size, false));
        Self { cfg, wte, wte_second, blocks, lm_head }
    }
}

impl MaskedMixer {
    /// The positional channel's values at rows `from..from + n` of an L-row input:
    /// `torch.arange(-L//2, L//2)` (Python's floor division) from row `from`. `[b, n, 1]`.
    fn positions(&self, l: i64, from: i64, n: i64, like: &Tensor) -> Tensor {
        let (batch, _, _) = like.size3().expect("[b, t, d]");
        let start = (-l).div_euclid(2) + from;
        Tensor::arange_start(start, start + n, (like.kind(), like.device())).view([1, n, 1]).expand([batch, n, 1], false)
    }
}

/// A causal mixer's incremental decoder (module docs of [`crate::decode`]).
struct MixerDecoder<'a> {
    model: &'a MaskedMixer,
    blocks: &'a [MixerBlock],
    states: Vec<MixState>,
    len: i64,
}

impl crate::Decoder for MixerDecoder<'_> {
    fn feed(&mut self, tokens: &Tensor) -> Tensor {
        let (from, n) = (self.len, tokens.size()[1]);
        let l = self.model.cfg.n_ctx;
        assert!(from + n <= l, "a mixer holds {l} positions; {} asked", from + n);
        let xs = self.model.embed(tokens);
        let h = match self.model.cfg.position_channel {
            PositionChannel::None => self.blocks.iter().zip(&mut self.states).fold(xs, |h, (b, st)| b.step(&h, st, from)),
            channel => {
                let pos = self.model.positions(l, from, n, &xs);
                let with_pos = |h: &Tensor| Tensor::cat(&[&pos, h], 2);
                let h = self.blocks.iter().zip(&mut self.states).fold(with_pos(&xs), |h, (b, st)| {
                    let out = b.step(&h, st, from);
                    if channel == PositionChannel::EveryBlock { with_pos(&out.narrow(2, 1, out.size()[2] - 1)) } else { out }
                });
                h.narrow(2, 1, h.size()[2] - 1)
            }
        };
        self.len += n;
        self.model.head(&h)
    }

    fn len(&self) -> i64 {
        self.len
    }

    fn capacity(&self) -> Option<i64> {
        Some(self.model.cfg.n_ctx)
    }
}

impl CausalLm for MaskedMixer {
    fn decoder(&self) -> Option<Box<dyn crate::Decoder + '_>> {
        match &self.blocks {
            Blocks::Causal(b) => Some(Box::new(MixerDecoder { model: self, blocks: b, states: b.iter().map(|_| MixState::default()).collect(), len: 0 })),
            Blocks::Bidirectional(_) => None,
        }
    }

    fn embed(&self, tokens: &Tensor) -> Tensor {
        let e = tokens.apply(&self.wte);
        match &self.wte_second {
            Some(lin) => precision::linear(&e, lin),
            None => e,
        }
    }

    /// For the bidirectional mixer the hidden state is the sum of the two streams (what the head
    /// reads); with a positional channel, the d channels beside it (what the head reads).
    fn blocks(&self, xs: &Tensor, depth: Option<usize>, _train: bool) -> Tensor {
        let n = depth.unwrap_or(self.cfg.n_layers).min(self.cfg.n_layers);
        match &self.blocks {
            Blocks::Causal(b) if self.cfg.position_channel != PositionChannel::None => {
                let t = xs.size()[1];
                let pos = self.positions(t, 0, t, xs);
                let with_pos = |h: &Tensor| Tensor::cat(&[&pos, h], 2);
                let every = self.cfg.position_channel == PositionChannel::EveryBlock;
                let h = b[..n].iter().fold(with_pos(xs), |h, blk| {
                    let out = blk.forward(&h);
                    // The reference's `x[..., 0] = positions`: channel 0 written anew, its
                    // gradient path cut.
                    if every { with_pos(&out.narrow(2, 1, out.size()[2] - 1)) } else { out }
                });
                h.narrow(2, 1, h.size()[2] - 1)
            }
            Blocks::Causal(b) => b[..n].iter().fold(xs.shallow_clone(), |h, blk| blk.forward(&h)),
            Blocks::Bidirectional(b) => {
                let (x, y) = b[..n].iter().fold((xs.shallow_clone(), xs.shallow_clone()), |(x, y), blk| blk.forward(&x, &y));
                x + y
            }
        }
    }

    fn head(&self, hidden: &Tensor) -> Tensor {
        match &self.lm_head {
            Some(head) => precision::linear(hidden, head),
            None => precision::matmul(hidden, &self.wte.ws.tr()),
        }
    }

    fn embedding_weight(&self) -> Tensor {
        self.wte.ws.shallow_clone()
    }

    fn n_layers(&self) -> usize {
        self.cfg.n_layers
    }

    fn remask(&self) {
        match &self.blocks {
            Blocks::Causal(b) => b.iter().for_each(MixerBlock::remask),
            Blocks::Bidirectional(b) => b.iter().for_each(|blk| {
                blk.convf.remask();
                blk.convr.remask();
            }),
        }
    }
}

#[cfg(test)]
mod tests;
