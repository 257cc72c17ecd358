//! PAPER.md D on untrained models, with fixed seeds. What the paper and [BR] report: a 1-block
//! flat mixer with d >= 32 gives its input back perfectly, and untrained Llama stacks give almost
//! nothing back (Hamming ≈ 1 at n = 8). Measured here at d = 64 (see the note in the issue): the
//! mixer is exact at 1 and 8 blocks; the Llama loses some tokens at 1 block and about half at 8,
//! clearly worse but not ≈ 1 at this width. The assertions state what holds, not the paper's value.
use harness::experiments::representation::invert;
use harness::suite::RepresentationConfig;
use mm_models::{LlamaSpec, MixerSpec, ModelSpec};
use tch::{nn::VarStore, Device, Kind, Tensor};

fn hamming(spec: &ModelSpec, seed: u64) -> f64 {
    let (v, l) = (256, 16);
    tch::manual_seed(seed as i64);
    let mut vs = VarStore::new(Device::Cpu);
    let model = spec.build(&vs.root(), v, l).unwrap();
    vs.freeze();
    // A short "prompt": 12 real tokens, then 4 pads (id 2) that the metric ignores.
    let tokens = Tensor::randint_low(3, v, [1, l], (Kind::Int64, Device::Cpu));
    let _ = tokens.narrow(1, 12, 4).fill_(2);
    let mask = Tensor::arange(l, (Kind::Int64, Device::Cpu)).lt(12).unsqueeze(0);
    let cfg: RepresentationConfig = toml::from_str("").unwrap(); // the paper's defaults: 500 steps, lr 0.02, L1, top-5
    let inv = invert(model.as_ref(), &tokens, &mask, &cfg, seed);
    inv.hamming[0]
}

fn mixer(n_layers: usize) -> ModelSpec {
    ModelSpec::MaskedMixer(MixerSpec::flat(64, n_layers))
}
fn llama(n_layers: usize) -> ModelSpec {
    ModelSpec::Llama(LlamaSpec { d_model: 64, n_layers, n_heads: 4, ..LlamaSpec::tinystories_d512() })
}

#[test]
fn untrained_mixer_recovers_its_input_exactly_and_llama_loses_it_with_depth() {
    for seed in [0, 1] {
        let (m1, t1) = (hamming(&mixer(1), seed), hamming(&llama(1), seed));
        let (m8, t8) = (hamming(&mixer(8), seed), hamming(&llama(8), seed));
        eprintln!("seed {seed}: 1 block mixer {m1:.3} llama {t1:.3}; 8 blocks mixer {m8:.3} llama {t8:.3}");
        assert_eq!((m1, m8), (0.0, 0.0), "the mixer's input should come back exactly (PAPER.md D, [BR])");
        assert!(t1 > 0.0, "one Llama block already loses tokens");
        assert!(t8 > t1 && t8 >= 0.3, "eight Llama blocks lose far more: {t1} -> {t8}");
    }
}
