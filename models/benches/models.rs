//! Forward + backward of each family at the CI sizes (CPU): `cargo bench -p mm-models`.
use criterion::{criterion_group, criterion_main, Criterion};
use mm_models::{causal_lm_loss, LlamaSpec, MixerSpec, ModelSpec};
use tch::{nn::VarStore, Device, Kind, Tensor};

fn fwd_bwd(c: &mut Criterion) {
    let (v, l, b) = (4096, 128, 8);
    let specs = [
        ModelSpec::MaskedMixer(MixerSpec { d_model: 128, n_layers: 4, ff_mult: 4, tie_weights: false }),
        ModelSpec::Llama(LlamaSpec { d_model: 128, n_layers: 4, n_heads: 4, ..LlamaSpec::tinystories_d512() }),
    ];
    for spec in specs {
        tch::manual_seed(0);
        let vs = VarStore::new(Device::Cpu);
        let m = spec.build(&vs.root(), v, l).unwrap();
        let tokens = Tensor::randint(v, [b, l], (Kind::Int64, Device::Cpu));
        c.bench_function(&format!("{} d128 n4 L{l} b{b} fwd+bwd", spec.kind()), |bench| {
            bench.iter(|| {
                let loss = causal_lm_loss(&m.forward_t(&tokens, true), &tokens);
                loss.backward();
                for mut t in vs.trainable_variables() {
                    let _ = t.grad().zero_();
                }
            })
        });
    }
}

criterion_group! { name = benches; config = Criterion::default().sample_size(10); targets = fwd_bwd }
criterion_main!(benches);
