//! AdamW as PyTorch's `torch.optim.AdamW` takes its step on single tensors (the Hugging Face
//! Trainer's `adamw_torch`, PAPER.md C), with its state in the open so a checkpoint can hold it
//! and a resumed run continues bit for bit.
//!
//! Per parameter p with gradient g, at step t (lr γ, betas β1 β2, ε, weight decay λ):
//! ```text
//! p ← p (1 - γ λ)                          (decoupled weight decay, when λ > 0)
//! m ← lerp(m, g, 1 - β1)
//! v ← β2 v + (1 - β2) g²
//! p ← p - γ / (1 - β1^t) · m / (√v / √(1 - β2^t) + ε)
//! ```
//! The element-wise operations are PyTorch's in the same order (lerp_, mul_ then addcmul_,
//! sqrt / bias correction then add_, addcdiv_), so on CPU the update is PyTorch's to the bit;
//! a test checks it against torch itself when the harness's torch is installed.
use std::collections::BTreeMap;
use tch::{nn, Tensor};

/// AdamW settings (Hugging Face's `adamw_torch` defaults: 0.9, 0.999, 1e-8, no weight decay).
#[derive(Debug, Clone, Copy)]
pub struct AdamW {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamW {
    fn default() -> Self {
        Self { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 }
    }
}

/// The parameters (by name, sorted) and their first and second moments.
///
/// When every parameter is an fp32 tensor on one device (always, for the models here), the
/// parameters and both moments are views of three flat buffers, and a step whose gradients are
/// all present runs on the flat buffers: one copy of the gradients into a flat buffer, one norm,
/// one clip, and AdamW as seven element-wise kernels over all parameters at once, instead of
/// about ten kernels (and their temporaries) per tensor. The element-wise operations are the
/// same, in the same order, so the update is still `torch.optim.AdamW`'s to the bit.
pub struct AdamWState {
    pub cfg: AdamW,
    pub names: Vec<String>,
    pub params: Vec<Tensor>,
    pub exp_avg: Vec<Tensor>,
    pub exp_avg_sq: Vec<Tensor>,
    /// Steps taken per parameter (a parameter without a gradient is skipped, as PyTorch does).
    pub steps: Vec<i64>,
    flat: Option<Flat>,
    /// `clip` gathered (and clipped) this step's gradients into the flat buffer.
    gathered: bool,
    /// libtorch's optimizer over the same parameters, used only for `zero_grad`, which frees the
    /// gradients (`set_to_none`, as the Hugging Face Trainer does), so the next backward writes
    /// fresh ones instead of adding into zeroed buffers.
    clear: Option<tch::COptimizer>,
}

/// The flat buffers: parameters, moments, the gathered gradients and one scratch.
struct Flat {
    p: Tensor,
    m: Tensor,
    v: Tensor,
    g: Tensor,
    scratch: Tensor,
}

impl AdamWState {
    /// The trainable variables of `vs`, in name order, with zero moments.
    pub fn new(vs: &nn::VarStore, cfg: AdamW) -> Self {
        let vars: BTreeMap<String, Tensor> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        let names: Vec<String> = vars.keys().cloned().collect();
        let mut params: Vec<Tensor> = vars.into_values().collect();
        let flat_ok = !params.is_empty()
            && params.iter().all(|p| p.kind() == tch::Kind::Float && p.device() == params[0].device() && p.is_contiguous());
        let (flat, exp_avg, exp_avg_sq) = if flat_ok {
            let total: i64 = params.iter().map(|p| p.numel() as i64).sum();
            let opts = (tch::Kind::Float, params[0].device());
            let flat = Flat {
                p: Tensor::empty([total], opts),
                m: Tensor::zeros([total], opts),
                v: Tensor::zeros([total], opts),
                g: Tensor::empty([total], opts),
                scratch: Tensor::empty([total], opts),
            };
            let (mut m, mut v) = (Vec::new(), Vec::new());
            let mut offset = 0;
            tch::no_grad(|| {
                for p in params.iter_mut() {
                    let n = p.numel() as i64;
                    let size = p.size();
                    let view = |t: &Tensor| t.narrow(0, offset, n).view(size.as_slice());
                    let pv = view(&flat.p);
                    pv.shallow_clone().copy_(p);
                    // Every holder of this variable (the var store, the modules) now reads and
                    // writes the flat buffer.
                    p.set_data(&pv);
                    m.push(view(&flat.m));
                    v.push(view(&flat.v));
                    offset += n;
                }
            });
            (Some(flat), m, v)
        } else {
            let zeros = |t: &Tensor| tch::no_grad(|| t.zeros_like());
            (None, params.iter().map(zeros).collect(), params.iter().map(zeros).collect())
        };
        let clear = tch::COptimizer::sgd(0.0, 0.0, 0.0, 0.0, false).ok().and_then(|mut o| {
            params.iter().try_for_each(|p| o.add_parameters(p, 0)).ok()?;
            Some(o)
        });
        Self { cfg, steps: vec![0; names.len()], names, params, exp_avg, exp_avg_sq, flat, gathered: false, clear }
    }

    /// The flat path applies when every parameter has a gradient and all have taken the same
    /// number of steps (their bias corrections are then one pair of scalars).
    fn flat_grads(&self) -> Option<Vec<Tensor>> {
        self.flat.as_ref()?;
        let grads: Vec<Tensor> = self.params.iter().map(|p| p.grad()).collect();
        let same_steps = self.steps.iter().all(|&s| s == self.steps[0]);
        (same_steps && grads.iter().all(|g| g.defined() && g.kind() == tch::Kind::Float)).then_some(grads)
    }

    /// Gathers the gradients (flat path) and returns their global L2 norm as a device scalar,
    /// after scaling them by `min(1, max / (norm + 1e-6))` (PyTorch's `clip_grad_norm_`; `max` <= 0:
    /// no clipping). No value is read back to the host. The norm is the square root of the sum
    /// of each tensor's sum of squares, in fp32, and the factor is formed in f64, as this
    /// trainer has always computed them, so runs keep their numbers to the bit.
    pub fn clip(&mut self, max: f64) -> Option<Tensor> {
        self.gathered = false;
        let grads = match self.flat_grads() {
            Some(grads) => {
                let f = self.flat.as_ref().expect("flat path");
                let views: Vec<Tensor> = grads.iter().map(|g| g.reshape([-1])).collect();
                let _ = tch::no_grad(|| Tensor::cat_out(&f.g, &views, 0));
                self.gathered = true;
                self.grads()
            }
            None => self.params.iter().map(|p| p.grad()).filter(|g| g.defined()).collect(),
        };
        if grads.is_empty() {
            return None;
        }
        tch::no_grad(|| {
            let sq: Vec<Tensor> = grads.iter().map(|g| g.to_kind(tch::Kind::Float).pow_tensor_scalar(2).sum(tch::Kind::Float)).collect();
            let norm = Tensor::stack(&sq, 0).sum(tch::Kind::Float).sqrt();
            if max > 0.0 {
                let coef = (max / (norm.to_kind(tch::Kind::Double) + 1e-6)).clamp_max(1.0);
                match (&self.flat, self.gathered) {
                    (Some(f), true) => {
                        let _ = f.g.shallow_clone().g_mul_(&coef);
                    }
                    _ => {
                        for mut g in grads {
                            let _ = g.g_mul_(&coef);
                        }
                    }
                }
            }
            Some(norm)
        })
    }

    /// The gradients the next [`Self::step`] uses, per parameter (after [`Self::clip`], the
    /// clipped ones).
    pub fn grads(&self) -> Vec<Tensor> {
        match (&self.flat, self.gathered) {
            (Some(f), true) => {
                let mut offset = 0;
                self.params
                    .iter()
                    .map(|p| {
                        let n = p.numel() as i64;
                        let g = f.g.narrow(0, offset, n).view(p.size().as_slice());
                        offset += n;
                        g
                    })
                    .collect()
            }
            _ => self.params.iter().map(|p| p.grad()).collect(),
        }
    }

    /// One AdamW step at learning rate `lr` on the current gradients (clipped by [`Self::clip`]
    /// when it was called first).
    pub fn step(&mut self, lr: f64) {
        let AdamW { beta1, beta2, eps, weight_decay } = self.cfg;
        if self.flat_grads().is_some() {
            let f = self.flat.as_mut().expect("flat path");
            // `clip` gathered the gradients; gather them here when it was not called.
            if !self.gathered {
                let grads: Vec<Tensor> = self.params.iter().map(|p| p.grad().reshape([-1])).collect();
                let _ = tch::no_grad(|| Tensor::cat_out(&f.g, &grads, 0));
            }
            self.gathered = false;
            let t = (self.steps[0] + 1) as f64;
            tch::no_grad(|| {
                if weight_decay != 0.0 {
                    let _ = f.p.g_mul_scalar_(1.0 - lr * weight_decay);
                }
                let _ = f.m.lerp_(&f.g, 1.0 - beta1);
                let _ = f.v.g_mul_scalar_(beta2);
                let _ = f.g.mul_scalar_out(&f.scratch, 1.0 - beta2);
                let _ = f.v.addcmul_(&f.scratch, &f.g);
                let bias_correction1 = 1.0 - beta1.powf(t);
                let bias_correction2_sqrt = (1.0 - beta2.powf(t)).sqrt();
                let step_size = lr / bias_correction1;
                let _ = f.v.sqrt_out(&f.scratch);
                let _ = f.scratch.g_div_scalar_(bias_correction2_sqrt);
                let _ = f.scratch.g_add_scalar_(eps);
                let _ = f.m.div_out(&f.scratch, &f.scratch.shallow_clone());
                let _ = f.scratch.g_mul_scalar_(-step_size);
                let _ = f.p.g_add_(&f.scratch);
            });
            self.steps.iter_mut().for_each(|s| *s += 1);
            return;
        }
        self.gathered = false;
        tch::no_grad(|| {
            for i in 0..self.params.len() {
                let g = self.params[i].grad();
                if !g.defined() {
                    continue;
                }
                let p = &mut self.params[i];
                if weight_decay != 0.0 {
                    let _ = p.g_mul_scalar_(1.0 - lr * weight_decay);
                }
                self.steps[i] += 1;
                let t = self.steps[i] as f64;
                let _ = self.exp_avg[i].lerp_(&g, 1.0 - beta1);
                // addcmul_(g, g, value = 1 - β2): (value * g) * g, then added.
                let _ = self.exp_avg_sq[i].g_mul_scalar_(beta2);
                let _ = self.exp_avg_sq[i].addcmul_(&(&g * (1.0 - beta2)), &g);
                let bias_correction1 = 1.0 - beta1.powf(t);
                let bias_correction2_sqrt = (1.0 - beta2.powf(t)).sqrt();
                let step_size = lr / bias_correction1;
                let denom = (self.exp_avg_sq[i].sqrt() / bias_correction2_sqrt) + eps;
                // addcdiv_(m, denom, value = -step_size): value * (m / denom), then added.
                let _ = p.g_add_(&(self.exp_avg[i].g_div(&denom) * -step_size));
            }
        });
    }

    pub fn zero_grad(&mut self) {
        self.gathered = false;
        if let Some(o) = &self.clear {
            if o.zero_grad().is_ok() {
                return;
            }
        }
        for p in &mut self.params {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.detach_();
                let _ = g.zero_();
            }
        }
    }

    /// The moments as named tensors (`adam.m.<name>`, `adam.v.<name>`) for a checkpoint.
    pub fn named_moments(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for (i, n) in self.names.iter().enumerate() {
            out.push((format!("adam.m.{n}"), self.exp_avg[i].shallow_clone()));
            out.push((format!("adam.v.{n}"), self.exp_avg_sq[i].shallow_clone()));
        }
        out
    }

    /// Restores the moments and step counts written by [`Self::named_moments`].
    pub fn restore(&mut self, file: &BTreeMap<String, Tensor>, steps: &[i64]) -> Result<(), String> {
        if steps.len() != self.names.len() {
            return Err(format!("{} step counts for {} parameters", steps.len(), self.names.len()));
        }
        tch::no_grad(|| {
            for (i, n) in self.names.iter().enumerate() {
                for (key, dst) in [(format!("adam.m.{n}"), &mut self.exp_avg[i]), (format!("adam.v.{n}"), &mut self.exp_avg_sq[i])] {
                    let src = file.get(&key).ok_or_else(|| format!("no `{key}`"))?;
                    if src.size() != dst.size() {
                        return Err(format!("`{key}` has shape {:?}, the parameter {:?}", src.size(), dst.size()));
                    }
                    dst.copy_(src);
                }
            }
            Ok(())
        })?;
        self.steps = steps.to_vec();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    /// A parameter set and gradients that do not depend on any RNG.
    fn fixture() -> (nn::VarStore, Vec<Tensor>) {
        let vs = nn::VarStore::new(Device::Cpu);
        let a = vs.root().var_copy("a", &(Tensor::arange(12, (Kind::Float, Device::Cpu)).view([3, 4]) * 0.37).sin());
        let b = vs.root().var_copy("b", &(Tensor::arange(5, (Kind::Float, Device::Cpu)) * 1.3).cos());
        let grads = |k: f64| vec![(a.detach() * k).cos() * 0.5, (b.detach() * k).sin() * 2.0];
        (vs, (1..=4).flat_map(|k| grads(k as f64)).collect())
    }

    fn run(vs: &nn::VarStore, grads: &[Tensor], cfg: AdamW, lr: f64) -> Vec<Tensor> {
        let mut opt = AdamWState::new(vs, cfg);
        for step in grads.chunks(2) {
            for (p, g) in opt.params.iter().zip(step) {
                let mut pg = p.grad();
                if !pg.defined() {
                    (p * 0.0).sum(Kind::Float).backward();
                    pg = p.grad();
                }
                tch::no_grad(|| pg.copy_(g));
            }
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
            for (t, step) in grads.chunks(2).enumerate() {
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
        // torch.optim.AdamW (single-tensor path, as on CPU) on the same tensors, when the torch
        // the build installs is there (it is wherever the harness builds).
        let Some(python) = crate::device::torch_python() else {
            eprintln!("no torch python found: skipping the bitwise comparison");
            return;
        };
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
for k in range(0, len(grads), 2):
    for p, g in zip(ps, grads[k:k+2]):
        p.grad = torch.tensor(g, dtype=torch.float32)
    opt.step()
print(json.dumps([p.detach().view(torch.int32).tolist() for p in ps]))
"#
        );
        let out = std::process::Command::new(python).args(["-c", &script]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let want: Vec<Vec<i32>> = serde_json::from_slice(&out.stdout).unwrap();
        for (i, p) in got.iter().enumerate() {
            let bits: Vec<i32> = Vec::<f32>::try_from(p.flatten(0, -1)).unwrap().iter().map(|x| x.to_bits() as i32).collect();
            assert_eq!(bits, want[i], "parameter {i} differs from torch.optim.AdamW");
        }
    }

    #[test]
    fn moments_round_trip() {
        let (vs, grads) = fixture();
        let cfg = AdamW::default();
        let mut a = AdamWState::new(&vs, cfg);
        let _ = run(&vs, &grads, cfg, 1e-3);
        a.exp_avg[0] = a.exp_avg[0].ones_like();
        a.steps = vec![3, 3];
        let file: BTreeMap<String, Tensor> = a.named_moments().into_iter().collect();
        let mut b = AdamWState::new(&vs, cfg);
        b.restore(&file, &a.steps).unwrap();
        assert_eq!(b.steps, vec![3, 3]);
        assert_eq!(b.exp_avg[0].sum(Kind::Float).double_value(&[]), 12.0);
        let mut wrong: BTreeMap<String, Tensor> = file.iter().map(|(k, v)| (k.clone(), v.shallow_clone())).collect();
        wrong.remove("adam.v.b");
        assert_eq!(b.restore(&wrong, &a.steps).unwrap_err(), "no `adam.v.b`");
    }
}
