use super::*;
use tch::{Device, Kind};

/// A parameter set and gradients that do not depend on any RNG.
fn fixture() -> (nn::VarStore, Vec<Tensor>) {
    let vs = nn::VarStore::new(Device::Cpu);
    let a = vs.root().var_copy("a", &(Tensor::arange(12, (Kind::Float, Device::Cpu)).view([3, 4]) * 0.37).sin());
    let b = vs.root().var_copy("b", &(Tensor::arange(5, (Kind::Float, Device::Cpu)) * 1.3).cos());
    // Long and of odd length: vectorised bodies and scalar tails of the kernels, and of the
    // fused CPU step.
    let c = vs.root().var_copy("c", &((Tensor::arange(2085, (Kind::Float, Device::Cpu)) * 0.011).sin() * 3.0));
    let grads = |k: f64| vec![(a.detach() * k).cos() * 0.5, (b.detach() * k).sin() * 2.0, (c.detach() * k).cos() * 1e-3];
    (vs, (1..=4).flat_map(|k| grads(k as f64)).collect())
}

/// Makes `grads` the parameters' gradients, as a backward would leave them.
fn set_grads(opt: &AdamWState, grads: &[Tensor]) {
    for (p, g) in opt.params.iter().zip(grads) {
        let mut pg = p.grad();
        if !pg.defined() {
            (p * 0.0).sum(Kind::Float).backward();
            pg = p.grad();
        }
        tch::no_grad(|| pg.copy_(g));
    }
}

fn run(vs: &nn::VarStore, grads: &[Tensor], cfg: AdamW, lr: f64) -> Vec<Tensor> {
    let mut opt = AdamWState::new(vs, cfg);
    for step in grads.chunks(3) {
        set_grads(&opt, step);
        opt.step(lr);
    }
    opt.params.iter().map(|p| p.detach().copy()).collect()
}

#[test]
fn adamw_is_the_formula_in_f64() {
    let cfg = AdamW { beta1: 0.9, beta2: 0.99, eps: 1e-8, weight_decay: 0.1 };
    let (vs, grads) = fixture();
    let start: Vec<Tensor> = AdamWState::new(&vs, cfg).params.iter().map(|p| p.detach().to_kind(Kind::Double)).collect();
    let got = run(&vs, &grads, cfg, 1e-2);
    for (i, p0) in start.iter().enumerate() {
        let (mut p, mut m, mut v) = (p0.copy(), p0.zeros_like(), p0.zeros_like());
        for (t, step) in grads.chunks(3).enumerate() {
            let g = step[i].to_kind(Kind::Double);
            let t = (t + 1) as f64;
            p = &p * (1.0 - 1e-2 * 0.1);
            m = &m * 0.9 + &g * 0.1;
            v = &v * 0.99 + &g * &g * 0.01;
            let mh = &m / (1.0 - 0.9f64.powf(t));
            let vh = &v / (1.0 - 0.99f64.powf(t));
            p = &p - mh / (vh.sqrt() + 1e-8) * 1e-2;
        }
        let diff = (got[i].to_kind(Kind::Double) - p).abs().max().double_value(&[]);
        assert!(diff < 1e-6, "parameter {i}: {diff}");
    }
}

#[test]
fn adamw_matches_torch_bit_for_bit() {
    // torch.optim.AdamW (single-tensor path, as on CPU) on the same tensors. The torch python
    // is wherever the README's commands build (ci/env.sh installs it): its absence fails.
    let python = crate::device::torch_python()
        .expect("no torch python beside libtorch: build with `source ci/env.sh` (it installs torch into the per-user cache)");
    let (vs, grads) = fixture();
    let cfg = AdamW { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 };
    let start: Vec<Vec<f32>> = AdamWState::new(&vs, cfg).params.iter().map(|p| Vec::<f32>::try_from(p.detach().flatten(0, -1)).unwrap()).collect();
    let gl: Vec<Vec<f32>> = grads.iter().map(|g| Vec::<f32>::try_from(g.flatten(0, -1)).unwrap()).collect();
    let got = run(&vs, &grads, cfg, 3e-3);
    let script = format!(
        r#"
import torch, json
start = {start:?}
grads = {gl:?}
ps = [torch.nn.Parameter(torch.tensor(s, dtype=torch.float32)) for s in start]
opt = torch.optim.AdamW(ps, lr=3e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01, foreach=False)
for k in range(0, len(grads), 3):
    for p, g in zip(ps, grads[k:k+3]):
        p.grad = torch.tensor(g, dtype=torch.float32)
    opt.step()
print(json.dumps([p.detach().view(torch.int32).tolist() for p in ps]))
"#
    );
    // The script (with its data) goes through stdin: it is longer than an argument may be.
    let mut child = std::process::Command::new(python)
        .arg("-")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), script.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let want: Vec<Vec<i32>> = serde_json::from_slice(&out.stdout).unwrap();
    for (i, p) in got.iter().enumerate() {
        let bits: Vec<i32> = Vec::<f32>::try_from(p.flatten(0, -1)).unwrap().iter().map(|x| x.to_bits() as i32).collect();
        assert_eq!(bits, want[i], "parameter {i} differs from torch.optim.AdamW");
    }
}

#[test]
fn the_fused_cpu_step_is_calibrated_and_in_use_where_the_cpu_has_fma() {
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        assert!(fused_cpu_step_active(), "the fused AdamW step did not reproduce libtorch's kernels bit for bit here");
        // Where libtorch carries MKL (x86 builds from PyPI do), the one-pass sweep is the one.
        if fused::vml_available() {
            assert!(fused_cpu_step_sweeps(), "MKL's vmsSqrt is there, but the one-pass sweep did not reproduce libtorch");
        }
        assert!(fused::two_passes_reproduce(), "the two-pass fused step (libtorch's square root) did not reproduce libtorch");
    }
}

/// clip then step with the factor folded into the fused step (CPU) gives the bits of the
/// plain sequence: gather, multiply by the factor tensor, the element-wise kernels.
#[test]
fn a_clipped_step_is_the_clip_then_the_kernels_to_the_bit() {
    let (vs, grads) = fixture();
    let cfg = AdamW { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 };
    let mut opt = AdamWState::new(&vs, cfg);
    let flat = |ts: &[Tensor]| Tensor::cat(&ts.iter().map(|t| t.detach().reshape([-1])).collect::<Vec<_>>(), 0);
    let want = Flat {
        p: flat(&opt.params),
        m: flat(&opt.params).zeros_like(),
        v: flat(&opt.params).zeros_like(),
        g: flat(&opt.params).zeros_like(),
        scratch: flat(&opt.params).zeros_like(),
    };
    for (t, step) in grads.chunks(3).enumerate() {
        set_grads(&opt, step);
        // A small max so that every step clips.
        let norm = opt.clip(0.05).unwrap();
        opt.step(1e-2);
        tch::no_grad(|| {
            let coef = (norm.to_kind(Kind::Double) + 1e-6).reciprocal().g_mul_scalar(0.05).clamp_max(1.0);
            assert!(coef.double_value(&[]) < 1.0);
            want.g.shallow_clone().copy_(&flat(step));
            let _ = want.g.shallow_clone().g_mul_(&coef);
            tensor_step(&want, &Coefs::new(cfg, 1e-2, (t + 1) as f64));
        });
        let bits = |t: &Tensor| Vec::<f32>::try_from(t).unwrap().iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&flat(&opt.params)), bits(&want.p), "step {}", t + 1);
    }
}

#[test]
fn a_second_optimizer_over_the_same_variables_does_not_strand_the_first() {
    let (vs, grads) = fixture();
    let cfg = AdamW::default();
    let mut first = AdamWState::new(&vs, cfg);
    let _second = AdamWState::new(&vs, cfg);
    for (p, g) in first.params.iter().zip(&grads[..3]) {
        (p * 0.0).sum(Kind::Float).backward();
        tch::no_grad(|| p.grad().copy_(g));
    }
    let before: Vec<Tensor> = first.params.iter().map(|p| p.detach().copy()).collect();
    first.step(1e-2);
    // The variables (as the model reads them) moved.
    for (p, b) in first.params.iter().zip(&before) {
        assert!((p - b).abs().max().double_value(&[]) > 0.0);
    }
}

#[test]
fn moments_round_trip() {
    let (vs, grads) = fixture();
    let cfg = AdamW::default();
    let mut a = AdamWState::new(&vs, cfg);
    let _ = run(&vs, &grads, cfg, 1e-3);
    a.exp_avg[0] = a.exp_avg[0].ones_like();
    a.steps = vec![3, 3, 3];
    let file: BTreeMap<String, Tensor> = a.named_moments().into_iter().collect();
    let mut b = AdamWState::new(&vs, cfg);
    b.restore(&file, &a.steps).unwrap();
    assert_eq!(b.steps, vec![3, 3, 3]);
    assert_eq!(b.exp_avg[0].sum(Kind::Float).double_value(&[]), 12.0);
    let mut wrong: BTreeMap<String, Tensor> = file.iter().map(|(k, v)| (k.clone(), v.shallow_clone())).collect();
    wrong.remove("adam.v.b");
    assert_eq!(b.restore(&wrong, &a.steps).unwrap_err(), "no `adam.v.b`");
}

#[test]
fn the_trainer_groups_spare_biases_and_norm_weights_from_decay() {
    for (name, spared) in [
        ("model.layers.3.input_layernorm.weight", true),
        ("model.norm.weight", true),
        ("mixerblocks.0.seq_layernormf.weight", true),
        ("mixerblocks.0.seq_layernormf.bias", true),
        ("h.2.ln_1.weight", true),
        ("mixerblocks.0.conv.bias", true),
        ("model.layers.3.self_attn.q_proj.weight", false),
        ("mixerblocks.0.conv.weight", false),
        ("model.embed_tokens.weight", false),
        ("lm_head.weight", false),
    ] {
        assert_eq!(hf_no_decay(name), spared, "{name}");
    }
    // Two groups: the spared parameter moves exactly as without decay, the others as with it.
    let cfg = AdamW { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.1 };
    let (vs, grads) = fixture();
    let with = run(&vs, &grads, cfg, 3e-3);
    let (vs, _) = fixture();
    let without = run(&vs, &grads, AdamW { weight_decay: 0.0, ..cfg }, 3e-3);
    let (vs, _) = fixture();
    let mut opt = AdamWState::grouped(&vs, cfg, |n| n == "b");
    assert_eq!(opt.decays, vec![true, false, true]);
    for step in grads.chunks(3) {
        set_grads(&opt, step);
        opt.step(3e-3);
    }
    for (i, p) in opt.params.iter().enumerate() {
        let want = if i == 1 { &without[i] } else { &with[i] };
        assert!(p.equal(want), "parameter {} differs", opt.names[i]);
    }
    assert!(!with[1].equal(&without[1]), "the decay moved the parameter at all");
}
