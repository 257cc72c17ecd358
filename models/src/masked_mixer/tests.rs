use super::*;
use tch::{Device, Kind};

fn conv(k: i64, grad: MaskGrad) -> MaskedConv {
    tch::manual_seed(0);
    let vs = nn::VarStore::new(Device::Cpu);
    MaskedConv::new(vs.root() / "c", 6, 6, k, mask::causal, grad)
}

#[test]
fn token_mixing_matches_dense_conv_formula() {
    let c = conv(1, MaskGrad::Functional);
    let x = Tensor::randn([3, 6, 8], (Kind::Float, Device::Cpu));
    // Independent formula: the reference's Conv1d(L, L, 1) on the tril-masked weight.
    let want = x.conv1d(&c.weight.squeeze_dim(-1).tril(0).unsqueeze(-1), Some(&c.bias), [1], [0], [1], 1);
    assert!(c.forward(&x).allclose(&want, 1e-5, 1e-6, false));
}

#[test]
fn kernel_four_pads_one_left_two_right() {
    let c = conv(4, MaskGrad::Functional);
    let x = Tensor::randn([2, 6, 8], (Kind::Float, Device::Cpu));
    let y = c.forward(&x);
    assert_eq!(y.size(), vec![2, 6, 8]);
    // Element by element: out[b, i, f] = Σ_{j<=i} Σ_t W[i, j, t] x[b, j, f + t - 1] + bias[i].
    let w = c.weight.copy();
    for (b, i, f) in [(0, 0, 0), (1, 5, 7), (0, 3, 4), (1, 2, 6)] {
        let mut acc = c.bias.double_value(&[i]);
        for j in 0..=i {
            for t in 0..4 {
                let pos = f + t - 1;
                if (0..8).contains(&pos) {
                    acc += w.double_value(&[i, j, t]) * x.double_value(&[b, j, pos]);
                }
            }
        }
        assert!((y.double_value(&[b, i, f]) - acc).abs() < 1e-5, "({b},{i},{f})");
    }
}

#[test]
fn functional_mask_gives_no_gradient_to_masked_entries() {
    let c = conv(1, MaskGrad::Functional);
    let x = Tensor::randn([2, 6, 8], (Kind::Float, Device::Cpu));
    c.forward(&x).sum(Kind::Float).backward();
    let g = c.weight.grad().squeeze_dim(-1);
    assert_eq!(g.triu(1).abs().sum(Kind::Float).double_value(&[]), 0.0);
    // dL/dW[i, j] = Σ_b Σ_k x[b, j, k] for j <= i: a closed form to compare against.
    let col = x.sum_dim_intlist([0i64, 2].as_slice(), false, Kind::Float);
    let want = col.unsqueeze(0).expand([6, 6], false).tril(0);
    assert!(g.allclose(&want, 1e-4, 1e-5, false));
}

#[test]
fn reference_mask_grad_is_causal_but_passes_the_full_gradient() {
    let f = conv(1, MaskGrad::Functional);
    let r = conv(1, MaskGrad::Reference);
    // The same weights by copy, not by reseeding: tests share libtorch's global RNG across
    // threads, so two seeded inits can interleave with another test's draws.
    tch::no_grad(|| {
        let (mut rw, mut rb) = (r.weight.shallow_clone(), r.bias.shallow_clone());
        rw.copy_(&f.weight);
        rb.copy_(&f.bias);
    });
    let x = Tensor::randn([2, 6, 8], (Kind::Float, Device::Cpu));
    let (yf, yr) = (f.forward(&x), r.forward(&x));
    assert!(yf.equal(&yr), "same forward, bit for bit");
    yr.sum(Kind::Float).backward();
    let g = r.weight.grad().squeeze_dim(-1);
    let col = x.sum_dim_intlist([0i64, 2].as_slice(), false, Kind::Float);
    let want = col.unsqueeze(0).expand([6, 6], false); // unmasked: every (i, j)
    assert!(g.allclose(&want, 1e-4, 1e-5, false));
}

fn model(cfg: MixerConfig) -> (nn::VarStore, MaskedMixer) {
    tch::manual_seed(0);
    let vs = nn::VarStore::new(Device::Cpu);
    let m = MaskedMixer::new(&vs.root(), cfg);
    (vs, m)
}

#[test]
fn every_variant_counts_its_parameters_exactly() {
    let base = MixerConfig::flat(50, 8, 2, 6);
    let variants = [
        base.clone(),
        MixerConfig { mixing: Mixing::Expanded { expansion: 2 }, ..base.clone() },
        MixerConfig { mixing: Mixing::Kernel { kernel: 4 }, ..base.clone() },
        MixerConfig { mixing: Mixing::Parallel { n: 2 }, ..base.clone() },
        MixerConfig { mixing: Mixing::MultiHead { heads: 2, head_dim: 4 }, ..base.clone() },
        MixerConfig { bidirectional: true, ..base.clone() },
        MixerConfig { layer_norm: false, embed_linear: true, tie_weights: true, ..base.clone() },
        MixerConfig { position_channel: PositionChannel::EveryBlock, ..base.clone() },
    ];
    for cfg in variants {
        let (vs, m) = model(cfg);
        let counted: i64 = vs.trainable_variables().iter().map(|t| t.numel() as i64).sum();
        assert_eq!(counted as u64, m.cfg.num_params(), "{:?}", m.cfg);
    }
}

// Independent formulas for the golden tests below: explicit LayerNorm, erf GELU, Linear and
// masked L x L products written out, reading the stored weights by their reference key names.
fn ln(x: &Tensor, w: &Tensor, b: &Tensor) -> Tensor {
    let mu = x.mean_dim(-1, true, Kind::Float);
    let var = (x - &mu).square().mean_dim(-1, true, Kind::Float);
    (x - mu) / (var + 1e-5).sqrt() * w + b
}
fn gelu(x: &Tensor) -> Tensor {
    x * 0.5 * ((x / 2f64.sqrt()).erf() + 1.0)
}
fn lin(x: &Tensor, w: &Tensor, b: &Tensor) -> Tensor {
    x.matmul(&w.tr()) + b
}
/// `Σ_j (W ⊙ M)[i, j] x[j] + b[i]` with M = tril (j <= i) or the reverse mask (j >= i + 2).
fn masked(x: &Tensor, w: &Tensor, b: &Tensor, reverse: bool) -> Tensor {
    let (o, i) = (w.size()[0], w.size()[1]);
    let ones = Tensor::ones([o, i], (Kind::Float, Device::Cpu));
    let m = if reverse { ones.triu(2) } else { ones.tril(0) };
    (w.squeeze_dim(-1) * m).matmul(x) + b.unsqueeze(-1)
}
fn ff(z: &Tensor, k: &dyn Fn(&str) -> Tensor) -> Tensor {
    lin(&gelu(&lin(z, &k("patch_ff.0.weight"), &k("patch_ff.0.bias"))), &k("patch_ff.2.weight"), &k("patch_ff.2.bias"))
}
fn close(got: &Tensor, want: &Tensor) {
    assert!(got.allclose(want, 1e-4, 1e-5, false), "max diff {}", (got - want).abs().max().double_value(&[]));
}

/// One block of `cfg` (one layer), its weights by key, and an input.
fn one_block(cfg: MixerConfig) -> (MaskedMixer, impl Fn(&str) -> Tensor, Tensor) {
    let (vs, m) = model(cfg);
    let v = vs.variables();
    let k = move |name: &str| v[&format!("mixerblocks.0.{name}")].shallow_clone();
    let x = Tensor::randn([2, 6, 8], (Kind::Float, Device::Cpu));
    (m, k, x)
}

/// A whole flat block against the equations of A.1, computed from its stored weights with
/// independent formulas (explicit LayerNorm and erf GELU, no shared code path).
#[test]
fn block_matches_the_paper_equations() {
    let (m, k, x) = one_block(MixerConfig::flat(50, 8, 1, 6));
    let h = &x + masked(&ln(&x, &k("seq_layernorm.weight"), &k("seq_layernorm.bias")), &k("conv.weight"), &k("conv.bias"), false);
    let want = &h + ff(&ln(&h, &k("patch_layernorm.weight"), &k("patch_layernorm.bias")), &k);
    close(&m.blocks(&x, None, false), &want);
}

/// E.1's positional channel (`mixer_posencoding.py`): the literal positions -3..=2 of L = 6 in
/// channel 0 in front of the embedding, blocks of width d + 1 by A.1's equations, and the head's
/// d channels out; "every block" writes channel 0 again after each block.
#[test]
fn the_position_channel_matches_its_equations() {
    let pos = Tensor::from_slice(&[-3.0f32, -2.0, -1.0, 0.0, 1.0, 2.0]).view([1, 6, 1]).expand([2, 6, 1], false);
    for every in [false, true] {
        let channel = if every { PositionChannel::EveryBlock } else { PositionChannel::Input };
        let (vs, m) = model(MixerConfig { position_channel: channel, ..MixerConfig::flat(50, 8, 2, 6) });
        let v = vs.variables();
        let x = Tensor::randn([2, 6, 8], (Kind::Float, Device::Cpu));
        let block = |x: &Tensor, i: usize| {
            let k = |name: &str| v[&format!("mixerblocks.{i}.{name}")].shallow_clone();
            assert_eq!(k("seq_layernorm.weight").size(), [9]);
            let h = x + masked(&ln(x, &k("seq_layernorm.weight"), &k("seq_layernorm.bias")), &k("conv.weight"), &k("conv.bias"), false);
            &h + ff(&ln(&h, &k("patch_layernorm.weight"), &k("patch_layernorm.bias")), &k)
        };
        let tail = |h: &Tensor| h.narrow(2, 1, 8);
        let h0 = block(&Tensor::cat(&[&pos, &x], 2), 0);
        let h1 = if every { block(&Tensor::cat(&[&pos, &tail(&h0)], 2), 1) } else { block(&h0, 1) };
        close(&m.blocks(&x, None, false), &tail(&h1));
        // The two differ: what block 0 writes into channel 0 reaches block 1 only without rewriting.
        let other = if every { block(&h0, 1) } else { block(&Tensor::cat(&[&pos, &tail(&h0)], 2), 1) };
        assert!(!tail(&other).allclose(&tail(&h1), 1e-4, 1e-5, false));
    }
}

/// Without residuals (A.2): y = FF(LN_patch(h)), h = TokenMix(LN_seq(x)).
#[test]
fn block_without_residuals_matches_its_equations() {
    let (m, k, x) = one_block(MixerConfig { residual: false, ..MixerConfig::flat(50, 8, 1, 6) });
    let h = masked(&ln(&x, &k("seq_layernorm.weight"), &k("seq_layernorm.bias")), &k("conv.weight"), &k("conv.bias"), false);
    close(&m.blocks(&x, None, false), &ff(&ln(&h, &k("patch_layernorm.weight"), &k("patch_layernorm.bias")), &k));
}

/// Expanded (A.2, e = 2): Conv1d(L, 2L) -> GELU -> Conv1d(2L, L), both tril-masked on [out, in].
#[test]
fn expanded_block_matches_its_equations() {
    let (m, k, x) = one_block(MixerConfig { mixing: Mixing::Expanded { expansion: 2 }, ..MixerConfig::flat(50, 8, 1, 6) });
    assert_eq!(k("conv.0.weight").size(), vec![12, 6, 1]);
    let z = ln(&x, &k("seq_layernorm.weight"), &k("seq_layernorm.bias"));
    let up = gelu(&masked(&z, &k("conv.0.weight"), &k("conv.0.bias"), false));
    let h = &x + masked(&up, &k("conv.2.weight"), &k("conv.2.bias"), false);
    let want = &h + ff(&ln(&h, &k("patch_layernorm.weight"), &k("patch_layernorm.bias")), &k);
    close(&m.blocks(&x, None, false), &want);
}

/// Multi-head as the paper describes it (I.10): per head Linear(d -> d_h), its own masked
/// conv, heads concatenated, then Linear(heads * d_h -> d).
#[test]
fn multi_head_block_matches_its_equations() {
    let (m, k, x) = one_block(MixerConfig { mixing: Mixing::MultiHead { heads: 2, head_dim: 3 }, ..MixerConfig::flat(50, 8, 1, 6) });
    let z = ln(&x, &k("seq_layernorm.weight"), &k("seq_layernorm.bias"));
    let heads: Vec<Tensor> = (0..2)
        .map(|h| {
            let p = lin(&z, &k(&format!("mixerhead.proj_head.{h}.weight")), &k(&format!("mixerhead.proj_head.{h}.bias")));
            masked(&p, &k(&format!("mixerhead.convs.{h}.weight")), &k(&format!("mixerhead.convs.{h}.bias")), false)
        })
        .collect();
    let h = &x + lin(&Tensor::cat(&heads, -1), &k("mixerhead.out_proj.weight"), &k("mixerhead.out_proj.bias"));
    let want = &h + ff(&ln(&h, &k("patch_layernorm.weight"), &k("patch_layernorm.bias")), &k);
    close(&m.blocks(&x, None, false), &want);
}

/// Bidirectional (A.2): forward stream tril, reverse stream triu(+2), own seq norms, shared
/// patch norm and FF, streams summed only at the end.
#[test]
fn bidirectional_block_matches_its_equations() {
    let (m, k, x) = one_block(MixerConfig { bidirectional: true, ..MixerConfig::flat(50, 8, 1, 6) });
    let stream = |s: &str, reverse: bool| {
        let z = ln(&x, &k(&format!("seq_layernorm{s}.weight")), &k(&format!("seq_layernorm{s}.bias")));
        let h = &x + masked(&z, &k(&format!("conv{s}.weight")), &k(&format!("conv{s}.bias")), reverse);
        &h + ff(&ln(&h, &k("patch_layernorm.weight"), &k("patch_layernorm.bias")), &k)
    };
    let want = stream("f", false) + stream("r", true);
    close(&m.blocks(&x, None, false), &want);
}

#[test]
fn reverse_stream_sees_only_two_or_more_ahead() {
    let vs = nn::VarStore::new(Device::Cpu);
    let c = MaskedConv::new(vs.root() / "r", 6, 6, 1, mask::reverse, MaskGrad::Functional);
    let w = c.masked_weight().squeeze_dim(-1);
    for i in 0..6 {
        for j in 0..6 {
            assert_eq!(w.double_value(&[i, j]) != 0.0, j >= i + 2, "({i}, {j})");
        }
    }
}
