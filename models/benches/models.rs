//! Forward + backward of each family at a CI size (CPU): `cargo bench -p mm-models`.
use criterion::{criterion_group, criterion_main, Criterion};
use mm_models::{causal_lm_loss, GptSpec, LlamaSpec, MixerSpec, ModelSpec};
use tch::{nn::VarStore, Device, Kind, Tensor};

fn fwd_bwd(c: &mut Criterion) {
    let (v, l, b, d, n) = (4096, 128, 8, 128, 4);
    let flat = MixerSpec::flat(d, n);
    let llama = LlamaSpec { d_model: d, n_layers: n, n_heads: 4, ..LlamaSpec::tinystories_d512() };
    let specs = [
        ("flat mixer", ModelSpec::MaskedMixer(flat.clone())),
        ("expanded mixer e2", ModelSpec::MaskedMixer(MixerSpec { expansion: Some(2), ..flat.clone() })),
        ("kernel-4 mixer", ModelSpec::MaskedMixer(MixerSpec { kernel: 4, ..flat.clone() })),
        ("bidirectional mixer", ModelSpec::MaskedMixer(MixerSpec { bidirectional: true, ..flat })),
        ("llama h4", ModelSpec::Llama(llama.clone())),
        ("transfixer h4", ModelSpec::Transfixer(llama)),
        ("gpt h4", ModelSpec::Gpt(GptSpec { d_model: d, n_layers: n, n_heads: 4, n_positions: None, dropout: 0.1 })),
    ];
    for (name, spec) in specs {
        tch::manual_seed(0);
        let vs = VarStore::new(Device::Cpu);
        let m = spec.build(&vs.root(), v, l).unwrap();
        let tokens = Tensor::randint(v, [b, l], (Kind::Int64, Device::Cpu));
        c.bench_function(&format!("{name} d{d} n{n} L{l} b{b} fwd+bwd"), |bench| {
            bench.iter(|| {
                let loss = causal_lm_loss(&m.forward_t(&tokens, true), &tokens);
                loss.backward();
                for t in vs.trainable_variables() {
                    let _ = t.grad().zero_();
                }
            })
        });
    }
}

criterion_group! { name = benches; config = Criterion::default().sample_size(10); targets = fwd_bwd }
criterion_main!(benches);
