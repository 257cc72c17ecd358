//! Causality, checkpoint round trips and shapes for every model family built in this crate.
use mm_models::mask::MaskGrad;
use mm_models::masked_mixer::PositionChannel;
use mm_models::{checkpoint, AutoencoderSpec, CausalLm, GptSpec, LlamaSpec, MixerSpec, ModelSpec, Objective};
use tch::{nn::VarStore, Device, Kind, Tensor};

const V: i64 = 64;
const L: i64 = 12;

/// Every causal family and token-mixing variant, at tiny sizes.
fn specs() -> Vec<ModelSpec> {
    let flat = MixerSpec::flat(16, 2);
    let llama = LlamaSpec { d_model: 16, n_layers: 2, n_heads: 2, ..LlamaSpec::tinystories_d512() };
    vec![
        ModelSpec::MaskedMixer(flat.clone()),
        ModelSpec::MaskedMixer(MixerSpec { expansion: Some(2), ..flat.clone() }),
        ModelSpec::MaskedMixer(MixerSpec { kernel: 4, ..flat.clone() }),
        ModelSpec::MaskedMixer(MixerSpec { parallel: 2, ..flat.clone() }),
        ModelSpec::MaskedMixer(MixerSpec { heads: 2, ..flat.clone() }),
        ModelSpec::MaskedMixer(MixerSpec { position_channel: PositionChannel::EveryBlock, ..flat.clone() }),
        ModelSpec::MaskedMixer(MixerSpec { layer_norm: false, embed_linear: true, mask_grad: MaskGrad::Reference, ..flat }),
        ModelSpec::Llama(llama.clone()),
        ModelSpec::Transfixer(LlamaSpec { parallel_mixer: true, ..llama.clone() }),
        ModelSpec::Transfixer(llama),
        ModelSpec::Gpt(GptSpec { d_model: 16, n_layers: 2, n_heads: 2, n_positions: None, dropout: 0.1 }),
    ]
}

fn build(spec: &ModelSpec, seed: i64) -> (VarStore, Box<dyn CausalLm>) {
    tch::manual_seed(seed);
    let vs = VarStore::new(Device::Cpu);
    let m = spec.build(&vs.root(), V, L).unwrap();
    (vs, m)
}

/// Perturbing token t leaves every output before t unchanged, and changes some output at >= t.
#[test]
fn outputs_before_a_perturbed_token_are_unchanged() {
    for spec in specs() {
        let (_vs, m) = build(&spec, 1);
        let tokens = Tensor::randint(V, [3, L], (Kind::Int64, Device::Cpu));
        let base = m.forward_t(&tokens, false);
        for t in [0, 5, L - 1] {
            let perturbed = tokens.copy();
            let new_id = (tokens.int64_value(&[0, t]) + 7) % V;
            let _ = perturbed.narrow(1, t, 1).fill_(new_id);
            let out = m.forward_t(&perturbed, false);
            if t > 0 {
                let before = (out.narrow(1, 0, t) - base.narrow(1, 0, t)).abs().max().double_value(&[]);
                assert!(before < 1e-6, "{spec:?}: position < {t} moved by {before}");
            }
            let after = (out.narrow(1, t, L - t) - base.narrow(1, t, L - t)).abs().max().double_value(&[]);
            assert!(after > 1e-4, "{}: perturbing {t} changed nothing at or after it", spec.kind());
        }
    }
}

/// The bidirectional mixer: the logit at i (which predicts token i + 1) never depends on token
/// i + 1, and does depend on tokens after it (the reverse stream, j >= i + 2).
#[test]
fn bidirectional_mixer_never_sees_the_token_it_predicts() {
    let spec = ModelSpec::MaskedMixer(MixerSpec { bidirectional: true, ..MixerSpec::flat(16, 2) });
    let (vs, m) = build(&spec, 4);
    let counted: i64 = vs.trainable_variables().iter().map(|t| t.numel() as i64).sum();
    assert_eq!(counted as u64, spec.num_params(V, L));
    let tokens = Tensor::randint(V, [2, L], (Kind::Int64, Device::Cpu));
    let base = m.forward_t(&tokens, false);
    for t in [1, 6, L - 1] {
        let perturbed = tokens.copy();
        let _ = perturbed.narrow(1, t, 1).fill_((tokens.int64_value(&[0, t]) + 5) % V);
        let out = m.forward_t(&perturbed, false);
        let at_prev = (out.narrow(1, t - 1, 1) - base.narrow(1, t - 1, 1)).abs().max().double_value(&[]);
        assert!(at_prev < 1e-6, "the logit at {} saw token {t}: {at_prev}", t - 1);
        if t >= 2 {
            let earlier = (out.narrow(1, 0, t - 1) - base.narrow(1, 0, t - 1)).abs().max().double_value(&[]);
            assert!(earlier > 1e-4, "the reverse stream should carry token {t} back to positions < {}", t - 1);
        }
    }
}

/// The bidirectional transformer: the logit at i predicts token i itself, never depends on it,
/// and depends on the tokens on both sides of it.
#[test]
fn bidirectional_transformer_never_sees_the_token_it_predicts() {
    let spec = ModelSpec::Llama(LlamaSpec { d_model: 16, n_layers: 2, n_heads: 2, bidirectional: true, ..LlamaSpec::tinystories_d512() });
    let (vs, m) = build(&spec, 4);
    let counted: i64 = vs.trainable_variables().iter().map(|t| t.numel() as i64).sum();
    assert_eq!(counted as u64, spec.num_params(V, L));
    assert_eq!(m.objective(), Objective::SamePosition { from: 0 });
    let tokens = Tensor::randint(V, [2, L], (Kind::Int64, Device::Cpu));
    let base = m.forward_t(&tokens, false);
    for t in [0, 6, L - 1] {
        let perturbed = tokens.copy();
        let _ = perturbed.narrow(1, t, 1).fill_((tokens.int64_value(&[0, t]) + 5) % V);
        let out = m.forward_t(&perturbed, false);
        let moved = |i: i64| (out.narrow(1, i, 1) - base.narrow(1, i, 1)).abs().max().double_value(&[]);
        assert!(moved(t) < 1e-6, "the logit at {t} saw token {t}: {}", moved(t));
        if t > 0 {
            assert!(moved(t - 1) > 1e-4, "the reverse stream should carry token {t} to position {}", t - 1);
        }
        if t < L - 1 {
            assert!(moved(t + 1) > 1e-4, "the forward stream should carry token {t} to position {}", t + 1);
        }
    }
}

fn autoencoders(completion: bool) -> Vec<ModelSpec> {
    let ae = AutoencoderSpec { d_model: 16, encoder_layers: 2, decoder_layers: 2, n_heads: None, completion, dropout: 0.0, mask_grad: Default::default() };
    vec![
        ModelSpec::MixerAutoencoder(ae.clone()),
        ModelSpec::LlamaAutoencoder(AutoencoderSpec { n_heads: Some(2), ..ae }),
    ]
}

/// The completion model sees only the first half: no logit depends on a token at or after L/2,
/// and the loss covers positions L/2.. unshifted.
#[test]
fn completion_model_never_sees_the_second_half() {
    for spec in autoencoders(true) {
        let (_vs, m) = build(&spec, 5);
        assert_eq!(m.objective(), Objective::SamePosition { from: L / 2 });
        let tokens = Tensor::randint(V, [2, L], (Kind::Int64, Device::Cpu));
        let base = m.forward_t(&tokens, false);
        let perturbed = tokens.copy();
        let _ = perturbed.narrow(1, L / 2, L / 2).fill_(1);
        let moved = (m.forward_t(&perturbed, false) - &base).abs().max().double_value(&[]);
        assert!(moved < 1e-6, "{spec:?}: the second half leaked ({moved})");
        let _ = perturbed.narrow(1, L / 2 - 1, 1).fill_((tokens.int64_value(&[0, L / 2 - 1]) + 3) % V);
        assert!((m.forward_t(&perturbed, false) - &base).abs().max().double_value(&[]) > 1e-4);
    }
}

/// The autoencoder's decoder reads one vector: the encoder's last position, which (causal
/// encoder) sees every token. Changing the first token changes every output.
#[test]
fn autoencoder_reconstructs_from_the_last_position() {
    for spec in autoencoders(false) {
        let (_vs, m) = build(&spec, 6);
        assert_eq!(m.objective(), Objective::SamePosition { from: 0 });
        let tokens = Tensor::randint(V, [2, L], (Kind::Int64, Device::Cpu));
        let base = m.forward_t(&tokens, false);
        let perturbed = tokens.copy();
        let _ = perturbed.narrow(1, 0, 1).fill_((tokens.int64_value(&[0, 0]) + 3) % V);
        let diff = (m.forward_t(&perturbed, false) - &base).abs().amax([2i64].as_slice(), false); // [b, t]
        assert!(diff.get(0).min().double_value(&[]) > 1e-6, "{spec:?}: every position depends on token 0");
    }
}

/// bf16 compute tracks fp32 (relative error of the logits ~1e-2), and the gradients land on
/// the fp32 master weights.
#[test]
fn bf16_compute_tracks_fp32_and_keeps_fp32_masters() {
    for spec in specs().into_iter().chain(autoencoders(false)) {
        let (vs, m) = build(&spec, 8);
        let tokens = Tensor::randint(V, [2, L], (Kind::Int64, Device::Cpu));
        let full = m.forward_t(&tokens, false);
        let half = mm_models::precision::with_compute(Some(Kind::BFloat16), || m.forward_t(&tokens, false));
        assert_eq!(mm_models::precision::compute(), None, "the switch is restored");
        let rel = ((half.to_kind(Kind::Float) - &full).norm().double_value(&[])) / full.norm().double_value(&[]);
        assert!(rel < 3e-2 && rel > 0.0, "{spec:?}: bf16 vs fp32 rel. error {rel}");
        let loss = mm_models::precision::with_compute(Some(Kind::BFloat16), || {
            mm_models::lm_loss(&m.forward_t(&tokens, true), &tokens, m.objective())
        });
        loss.backward();
        for (name, v) in vs.variables() {
            assert_eq!(v.kind(), Kind::Float, "{name}");
            let g = v.grad();
            assert!(!g.defined() || g.kind() == Kind::Float, "{name}: grad {:?}", g.kind());
        }
    }
}

#[test]
fn remask_zeroes_what_forward_never_uses() {
    let spec = ModelSpec::MaskedMixer(MixerSpec { expansion: Some(2), ..MixerSpec::flat(8, 1) });
    let (vs, m) = build(&spec, 7);
    let tokens = Tensor::randint(V, [1, L], (Kind::Int64, Device::Cpu));
    let before = m.forward_t(&tokens, false);
    let up = vs.variables()["mixerblocks.0.conv.0.weight"].squeeze_dim(-1); // [2L, L]
    assert!(up.triu(1).abs().sum(Kind::Float).double_value(&[]) > 0.0, "stored weights are dense");
    m.remask();
    let up = vs.variables()["mixerblocks.0.conv.0.weight"].squeeze_dim(-1);
    assert_eq!(up.triu(1).abs().sum(Kind::Float).double_value(&[]), 0.0);
    assert!(m.forward_t(&tokens, false).equal(&before), "forward was already masked");
}

#[test]
fn shapes_and_param_counts() {
    for spec in specs().into_iter().chain(autoencoders(false)).chain(autoencoders(true)) {
        let (vs, m) = build(&spec, 2);
        let tokens = Tensor::randint(V, [2, L], (Kind::Int64, Device::Cpu));
        assert_eq!(m.forward_t(&tokens, false).size(), vec![2, L, V]);
        assert_eq!(m.embed(&tokens).size(), vec![2, L, 16]);
        assert_eq!(m.embedding_weight().size(), vec![V, 16]);
        let counted: i64 = vs.trainable_variables().iter().map(|t| t.numel() as i64).sum();
        assert_eq!(counted as u64, spec.num_params(V, L), "{spec:?}");
    }
}

#[test]
fn checkpoint_round_trip_gives_identical_outputs() {
    let dir = std::env::temp_dir().join(format!("mm-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for spec in specs() {
        let (vs, m) = build(&spec, 3);
        let path = dir.join("model.safetensors");
        checkpoint::save(&vs, &path).unwrap();
        let (vs2, m2) = build(&spec, 99);
        checkpoint::load(&vs2, &path).unwrap();
        let tokens = Tensor::randint(V, [2, L], (Kind::Int64, Device::Cpu));
        assert!(m.forward_t(&tokens, false).equal(&m2.forward_t(&tokens, false)), "{spec:?}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn reference_named_checkpoint_loads_and_mismatches_are_listed() {
    let dir = std::env::temp_dir().join(format!("mm-ref-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Hand-built file with the reference's state-dict keys for a 1-block flat mixer.
    let (d, f) = (4i64, 16i64);
    let t = |s: &[i64]| Tensor::randn(s, (Kind::Float, Device::Cpu));
    let tensors = vec![
        ("wte.weight", t(&[V, d])),
        ("mixerblocks.0.seq_layernorm.weight", t(&[d])),
        ("mixerblocks.0.seq_layernorm.bias", t(&[d])),
        ("mixerblocks.0.conv.weight", t(&[L, L, 1])),
        ("mixerblocks.0.conv.bias", t(&[L])),
        ("mixerblocks.0.patch_layernorm.weight", t(&[d])),
        ("mixerblocks.0.patch_layernorm.bias", t(&[d])),
        ("mixerblocks.0.patch_ff.0.weight", t(&[f, d])),
        ("mixerblocks.0.patch_ff.0.bias", t(&[f])),
        ("mixerblocks.0.patch_ff.2.weight", t(&[d, f])),
        ("mixerblocks.0.patch_ff.2.bias", t(&[d])),
        ("lm_head.weight", t(&[V, d])),
    ];
    let path = dir.join("ref.safetensors");
    let named: Vec<(&str, &Tensor)> = tensors.iter().map(|(k, v)| (*k, v)).collect();
    Tensor::write_safetensors(&named, &path).unwrap();
    let spec = ModelSpec::MaskedMixer(MixerSpec::flat(d, 1));
    let (vs, _m) = build(&spec, 0);
    checkpoint::load(&vs, &path).unwrap();
    assert!(vs.variables()["wte.weight"].equal(&tensors[0].1));

    // A two-block model misses block 1's keys; a wider one mismatches shapes.
    let spec2 = ModelSpec::MaskedMixer(MixerSpec::flat(d, 2));
    let (vs2, _m2) = build(&spec2, 0);
    let err = checkpoint::load(&vs2, &path).unwrap_err().to_string();
    assert!(err.contains("mixerblocks.1.conv.weight"), "{err}");
    let spec3 = ModelSpec::MaskedMixer(MixerSpec::flat(8, 1));
    let (vs3, _m3) = build(&spec3, 0);
    let err = checkpoint::load(&vs3, &path).unwrap_err().to_string();
    assert!(err.contains("wte.weight: file [64, 4] vs model [64, 8]"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

/// The v1 mixer autoencoder's FF dropout (E.4: 0.05): the reference's
/// `Sequential(Linear, Dropout, GELU, Linear)` puts the second Linear at key index 3; dropout acts
/// in training only; parameter counts do not change; the Llama AE refuses it.
#[test]
fn mixer_autoencoder_dropout_is_v1_shaped_and_off_in_eval() {
    let plain = AutoencoderSpec { d_model: 16, encoder_layers: 1, decoder_layers: 1, n_heads: None, completion: false, dropout: 0.0, mask_grad: Default::default() };
    let v1 = ModelSpec::MixerAutoencoder(AutoencoderSpec { dropout: 0.05, ..plain.clone() });
    let (vs, m) = build(&v1, 7);
    let keys = vs.variables();
    assert!(keys.contains_key("encoderblocks.0.patch_ff.3.weight") && !keys.contains_key("encoderblocks.0.patch_ff.2.weight"));
    let (vs0, _) = build(&ModelSpec::MixerAutoencoder(plain.clone()), 7);
    assert!(vs0.variables().contains_key("decoderblocks.0.patch_ff.2.weight"));
    assert_eq!(v1.num_params(V, L), ModelSpec::MixerAutoencoder(plain.clone()).num_params(V, L));
    let tokens = Tensor::randint(V, [2, L], (Kind::Int64, Device::Cpu));
    let eval = m.forward_t(&tokens, false);
    assert!(eval.equal(&m.forward_t(&tokens, false)), "no dropout in evaluation");
    assert!(!eval.allclose(&m.forward_t(&tokens, true), 1e-6, 1e-6, false), "dropout in training");
    let llama = ModelSpec::LlamaAutoencoder(AutoencoderSpec { n_heads: Some(2), dropout: 0.05, ..plain });
    assert!(llama.validate().unwrap_err().to_string().contains("the Llama autoencoder has none"));
}

#[test]
fn the_training_memory_estimate_adds_up() {
    use mm_models::StepShape;
    for spec in specs() {
        let per_token = spec.training_floats_per_token(L, false);
        assert!(per_token > 0, "{}", spec.label());
        let at = |batch: i64| spec.training_bytes(V, StepShape::clm(batch, L));
        // Linear in the batch: each row adds its activations and its logits (with their
        // log-softmax and gradient).
        assert_eq!(at(2) - at(1), 4 * L as u64 * per_token + 12 * (L * V) as u64, "{}", spec.label());
        assert_eq!(at(3) - at(2), at(2) - at(1));
        // Without AdamW, 16 bytes a parameter less; without the head, no logits.
        let params = spec.num_params(V, L);
        let bare = spec.training_bytes(V, StepShape { optimizer: false, head: false, ..StepShape::clm(1, L) });
        assert_eq!(at(1) - bare, 16 * params + 12 * (L * V) as u64, "{}", spec.label());
    }
    // Eager attention keeps each head's L x L probabilities (and scores): per token, 2 h L floats
    // per layer more.
    let llama = ModelSpec::Llama(LlamaSpec { n_heads: 4, ..LlamaSpec::tinystories_d512() });
    let n_layers = llama.n_layers() as u64;
    assert_eq!(llama.training_floats_per_token(512, true) - llama.training_floats_per_token(512, false), n_layers * 2 * 4 * (512 - 1));
    // Whatever the batch, a masked mixer keeps each block's masked L x L weight (and bias) for
    // the backward; attention keeps none.
    let mixer = ModelSpec::MaskedMixer(MixerSpec::flat(64, 3));
    let step = mixer.training_memory(V, StepShape::clm(1, L));
    assert_eq!(step.activations - 4 * L as u64 * mixer.training_floats_per_token(L, false), 4 * 3 * (L * L + L) as u64);
    assert_eq!(llama.masked_mixing_floats(L), 0);
}

/// `mask_grad = "reference"` on every model with a masked mixing (I.1): the same forward, bit for
/// bit, and a gradient on the masked-away entries (functional: none); the models without one
/// refuse it.
#[test]
fn reference_mask_grad_reaches_the_autoencoders_and_the_transfixer() {
    let ae = AutoencoderSpec { d_model: 16, encoder_layers: 1, decoder_layers: 1, n_heads: None, completion: false, dropout: 0.0, mask_grad: MaskGrad::Functional };
    let tf = LlamaSpec { d_model: 16, n_layers: 1, n_heads: 2, ..LlamaSpec::tinystories_d512() };
    let cases = [
        (ModelSpec::MixerAutoencoder(ae.clone()), ModelSpec::MixerAutoencoder(AutoencoderSpec { mask_grad: MaskGrad::Reference, ..ae.clone() }), "decoderblocks.0.conv.weight"),
        (
            ModelSpec::MixerAutoencoder(AutoencoderSpec { completion: true, ..ae.clone() }),
            ModelSpec::MixerAutoencoder(AutoencoderSpec { completion: true, mask_grad: MaskGrad::Reference, ..ae.clone() }),
            "encoderblocks.0.conv.weight",
        ),
        (ModelSpec::Transfixer(tf.clone()), ModelSpec::Transfixer(LlamaSpec { mask_grad: MaskGrad::Reference, ..tf.clone() }), "model.layers.0.mixer_layer.conv.weight"),
    ];
    let tokens = Tensor::randint(V, [2, L], (Kind::Int64, Device::Cpu));
    for (functional, reference, key) in cases {
        let (vs_f, f) = build(&functional, 5);
        // The same weights by copy, not by reseeding: tests share libtorch's global RNG across
        // threads, so two seeded inits can interleave with another test's draws.
        let (mut vs_r, r) = build(&reference, 5);
        vs_r.copy(&vs_f).unwrap();
        let (yf, yr) = (f.forward_t(&tokens, false), r.forward_t(&tokens, false));
        assert!(yf.equal(&yr), "{reference:?}: same forward");
        yf.square().sum(Kind::Float).backward();
        yr.square().sum(Kind::Float).backward();
        // The masked-away entries of the mixing weight [out, in]: above the diagonal. (The
        // autoencoder's one encoder block reaches the loss through its last row only, which
        // masks nothing; the completion model's reaches it through every row.)
        let above = |vs: &VarStore| vs.variables()[key].grad().squeeze_dim(-1).triu(1).abs().sum(Kind::Float).double_value(&[]);
        assert_eq!(above(&vs_f), 0.0, "{functional:?}: the functional mask gives masked entries no gradient");
        assert!(above(&vs_r) > 0.0, "{reference:?}: the reference mask passes them the full gradient");
    }
    let refused = [
        ModelSpec::Llama(LlamaSpec { mask_grad: MaskGrad::Reference, ..tf.clone() }),
        ModelSpec::LlamaAutoencoder(AutoencoderSpec { n_heads: Some(2), mask_grad: MaskGrad::Reference, ..ae }),
    ];
    for spec in refused {
        let err = spec.validate().unwrap_err().to_string();
        assert!(err.contains("mask_grad"), "{err}");
    }
}
