use super::*;
use std::path::Path;

fn suite(name: &str, body: &str) -> Suite {
    let src = format!("schema = 1\nname = \"{name}\"\ndescription = \"d\"\n{body}");
    Suite::parse(Path::new("t.toml"), src, &[], false).unwrap()
}

const CLM: &str = r#"
[defaults]
seeds = [0]
device = "cuda"
[defaults.data]
source = "embedded"
n_ctx = 512
vocab_size = 4096
[defaults.train]
steps = 1000
batch_size = 16
eval_every = 500
eval_batches = 2
precision = "fp16-amp"
[[experiment]]
name = "clm"
kind = "clm"
[experiment.sweep]
model = [{ kind = "masked_mixer", d_model = 256, n_layers = 8 }, { kind = "llama", d_model = 256, n_layers = 8, n_heads = 4 }]
"#;

#[test]
fn model_flops_are_the_throughput_formula_for_the_flat_mixer_and_llama() {
    // Written out: 8 blocks of (2 d 4d + L d) or (4 d^2 + 3 d 4d + 2 L d), and the head d V.
    let mixer = ModelSpec::MaskedMixer(mm_models::MixerSpec::flat(256, 8));
    assert_eq!(mixer.forward_macs_per_token(4096, 512, true), 8.0 * (2.0 * 256.0 * 1024.0 + 512.0 * 256.0) + 256.0 * 4096.0);
    let llama = ModelSpec::Llama(mm_models::LlamaSpec { d_model: 256, n_layers: 8, n_heads: 4, ..mm_models::LlamaSpec::tinystories_d512() });
    assert_eq!(llama.forward_macs_per_token(4096, 512, false), 8.0 * (4.0 * 256.0 * 256.0 + 3.0 * 256.0 * 1024.0 + 2.0 * 512.0 * 256.0));
    assert!(llama.uses_attention() && !mixer.uses_attention());
}

#[test]
fn a_clm_run_costs_its_steps_and_evaluations() {
    let s = suite("a", CLM);
    let by_id = BTreeMap::new();
    let mixer = &s.runs[0];
    let c = run_cost(mixer, &by_id);
    let macs = mixer.config.model().forward_macs_per_token(4096, 512, true);
    let step = 6.0 * macs * 16.0 * 512.0;
    // 3 evaluations (steps 0, 500, 1000) of 2 batches of 16 rows, forward only.
    let eval = 2.0 * macs * (3 * 2 * 16 * 512) as f64;
    assert_eq!((c.step_flops, c.steps, c.tokens), (Some(step), Some(1000), 1000 * 16 * 512));
    assert!((c.flops - (1000.0 * step + eval)).abs() <= 1e-9 * c.flops, "{} vs {}", c.flops, 1000.0 * step + eval);
    assert!(c.half && !c.attention && c.memory.unwrap() > 0 && c.note.is_none());
    // Time: FLOPs over the 16-bit peak at the family's utilisation, or the per-step floor of 8
    // blocks when that is longer, as it is for this small model on a V100.
    let v100 = card("V100").unwrap();
    let (compute, floor) = (c.flops / (125e12 * v100.mfu_mixer), 1000.0 * 8.0 * v100.floor_s_per_block);
    assert!(floor > compute && c.seconds(&v100) == floor, "{} {compute} {floor}", c.seconds(&v100));
    let no_floor = Card { floor_s_per_block: 0.0, ..v100.clone() };
    assert_eq!(c.seconds(&no_floor), compute);
    let llama = run_cost(&s.runs[1], &by_id);
    assert!(llama.attention && llama.seconds(&no_floor) == llama.flops / (125e12 * v100.mfu_attention));
}

#[test]
fn the_paper_runs_the_v100_utilisation_comes_from_take_their_time_again() {
    // PAPER.md C.3: the mixer d1024 n16, 200k steps of 128 x 512 tokens (V 8000) in about 22 h on
    // 4x V100, fp16: 88 V100-hours.
    let s = suite(
        "f",
        r#"
[defaults]
device = "cuda"
[defaults.data]
source = "embedded"
n_ctx = 512
vocab_size = 8000
[defaults.train]
steps = 200000
batch_size = 128
eval_every = 200000
eval_batches = 1
precision = "fp16-amp"
[[experiment]]
name = "clm"
kind = "clm"
model = { kind = "masked_mixer", d_model = 1024, n_layers = 16 }
"#,
    );
    let hours = run_cost(&s.runs[0], &BTreeMap::new()).seconds(&card("v100").unwrap()) / 3600.0;
    assert!((hours - 88.0).abs() < 1.0, "{hours}");
}

#[test]
fn cards_by_name_and_by_device() {
    let e = card("h300").unwrap_err();
    assert!(e.contains("--card h300") && e.contains("h100, h100-pcie, h200") && e.contains("cpu"), "{e}");
    let of = |n: &str| card_of_device(n).map(|c| c.id);
    assert_eq!(of("NVIDIA H100 PCIe"), Some("h100-pcie"));
    assert_eq!(of("NVIDIA H100 80GB HBM3"), Some("h100"));
    assert_eq!(of("Tesla V100-SXM2-16GB"), Some("v100"));
    assert_eq!(of("NVIDIA H200"), Some("h200"));
    assert_eq!(of("cpu"), None);
    assert_eq!(crate::throughput::peak_tflops("NVIDIA A100-SXM4-80GB", Precision::Bf16), Some(312.0));
    assert_eq!(crate::throughput::peak_tflops("NVIDIA A100-SXM4-80GB", Precision::Fp32), Some(19.5));
}

#[test]
fn the_estimate_counts_a_run_two_suites_share_once_and_marks_memory_over_the_card() {
    let (a, b) = (suite("a", CLM), suite("b", CLM));
    assert_eq!(a.runs[0].id, b.runs[0].id, "the same configuration is the same run id in any suite");
    let text = estimate_text(&[a, b], &card("v100").unwrap());
    assert!(text.contains("whole: 2 suites, 4 runs, 2 distinct"), "{text}");
    let big = suite("big", &CLM.replace("batch_size = 16", "batch_size = 512"));
    let text = estimate_text(&[big], &card("rtx3060").unwrap());
    assert!(text.lines().filter(|l| l.contains(" over ")).count() == 2, "a batch of 512 x 512 tokens does not fit 12 GB: {text}");
}
