//! Incremental decoding equals the full forward: the logits of every position, fed as a prompt
//! and then one token at a time, match the model's forward over the whole sequence, for every
//! family and token-mixing variant that generates left to right.
use mm_models::ModelSpec;
use tch::{nn, Device, Kind, Tensor};

const VOCAB: i64 = 40;
const L: i64 = 12;

fn spec(toml_text: &str) -> ModelSpec {
    toml::from_str(toml_text).unwrap_or_else(|e| panic!("{toml_text}: {e}"))
}

/// Feeds `tokens` (`[b, L]`) as a prompt of `prompt` tokens, then one at a time, and returns
/// the largest difference to the full forward's logits.
fn incremental_vs_full(s: &ModelSpec, prompt: i64) -> f64 {
    tch::manual_seed(3);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = s.build(&vs.root(), VOCAB, L).unwrap();
    let tokens = Tensor::randint(VOCAB, [2, L], (Kind::Int64, Device::Cpu));
    tch::no_grad(|| {
        let full = model.forward_t(&tokens, false);
        let mut dec = model.decoder().expect("a causal model decodes");
        let mut parts = vec![dec.feed(&tokens.narrow(1, 0, prompt))];
        for t in prompt..L {
            parts.push(dec.feed(&tokens.narrow(1, t, 1)));
        }
        assert_eq!(dec.len(), L);
        let inc = Tensor::cat(&parts, 1);
        assert_eq!(inc.size(), full.size());
        (inc - full).abs().max().double_value(&[])
    })
}

#[test]
fn every_causal_model_decodes_incrementally_as_its_full_forward() {
    let cases = [
        "kind = \"masked_mixer\"\nd_model = 16\nn_layers = 2",
        "kind = \"masked_mixer\"\nd_model = 16\nn_layers = 2\nexpansion = 2",
        "kind = \"masked_mixer\"\nd_model = 16\nn_layers = 2\nkernel = 3",
        "kind = \"masked_mixer\"\nd_model = 16\nn_layers = 2\nparallel = 2",
        "kind = \"masked_mixer\"\nd_model = 16\nn_layers = 2\nheads = 2\nhead_dim = 8",
        "kind = \"masked_mixer\"\nd_model = 16\nn_layers = 2\nposition_channel = \"every_block\"",
        "kind = \"masked_mixer\"\nd_model = 16\nn_layers = 2\nposition_channel = \"input\"",
        "kind = \"masked_mixer\"\nd_model = 16\nn_layers = 2\nresidual = false\nlayer_norm = false\nembed_linear = true",
        "kind = \"masked_mixer\"\nd_model = 16\nn_layers = 2\ntie_weights = true",
        "kind = \"llama\"\nd_model = 16\nn_layers = 2\nn_heads = 2",
        "kind = \"transfixer\"\nd_model = 16\nn_layers = 2\nn_heads = 2",
        "kind = \"transfixer\"\nd_model = 16\nn_layers = 2\nn_heads = 2\nparallel_mixer = true",
        "kind = \"gpt\"\nd_model = 16\nn_layers = 2\nn_heads = 2\nn_positions = 12",
    ];
    for text in cases {
        let s = spec(text);
        for prompt in [1, 5] {
            let diff = incremental_vs_full(&s, prompt);
            assert!(diff < 1e-4, "{text} (prompt {prompt}): incremental logits differ from the full forward by {diff}");
        }
    }
}

#[test]
fn models_that_see_both_sides_have_no_decoder() {
    for text in [
        "kind = \"masked_mixer\"\nd_model = 16\nn_layers = 1\nbidirectional = true",
        "kind = \"llama\"\nd_model = 16\nn_layers = 1\nn_heads = 2\nbidirectional = true",
    ] {
        let vs = nn::VarStore::new(Device::Cpu);
        let model = spec(text).build(&vs.root(), VOCAB, L).unwrap();
        assert!(model.decoder().is_none(), "{text}");
    }
}

/// A mixer holds L positions (its mixing weights are L x L); GPT-1 its learned positions.
#[test]
fn capacities_are_the_models_positions() {
    let vs = nn::VarStore::new(Device::Cpu);
    let m = spec("kind = \"masked_mixer\"\nd_model = 8\nn_layers = 1").build(&vs.root(), VOCAB, L).unwrap();
    assert_eq!(m.decoder().unwrap().capacity(), Some(L));
    let vs = nn::VarStore::new(Device::Cpu);
    let m = spec("kind = \"llama\"\nd_model = 8\nn_layers = 1\nn_heads = 2").build(&vs.root(), VOCAB, L).unwrap();
    assert_eq!(m.decoder().unwrap().capacity(), None);
}
