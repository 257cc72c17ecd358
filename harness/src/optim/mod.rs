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
//! The element-wise operations are PyTorch's in the same order, with its roundings (lerp_ as one
//! fused multiply-add, mul_ then addcmul_, sqrt / bias correction then add_, addcdiv_ as
//! `p + (value * m) / denom`), so on CPU the update is PyTorch's to the bit; a test checks it
//! against torch itself, on tensors long enough to take ATen's vectorised paths. (Before
//! 2026-11-29 the last step was computed as `p + (m / denom) * value`, one ulp off torch in about
//! 8% of the elements; the 17-element test of then could not see it.)
//!
//! Parameters and moments are views of flat buffers; on the CPU the step is one sweep of a fused
//! kernel with MKL's square root inside (two passes around libtorch's own square root where MKL's
//! is not exported; see [`fused`]), elsewhere eleven libtorch kernels over the flat buffers.
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
/// one clip, and AdamW as eleven element-wise kernels over all parameters at once, instead of
/// about ten kernels (and their temporaries) per tensor. The element-wise operations are the
/// same, in the same order, so the update is still `torch.optim.AdamW`'s to the bit.
pub struct AdamWState {
    pub cfg: AdamW,
    pub names: Vec<String>,
    pub params: Vec<Tensor>,
    pub exp_avg: Vec<Tensor>,
    pub exp_avg_sq: Vec<Tensor>,
    /// Whether weight decay applies to each parameter (see [`AdamWState::grouped`]).
    pub decays: Vec<bool>,
    /// Steps taken per parameter (a parameter without a gradient is skipped, as PyTorch does).
    pub steps: Vec<i64>,
    flat: Option<Flat>,
    /// `clip` gathered (and clipped) this step's gradients into the flat buffer.
    gathered: bool,
    /// The clip factor `clip` formed but left for the fused CPU step to apply on its way through
    /// the gradients (saving a pass over them); [`Self::grads`] applies it when asked first.
    pending: Option<Tensor>,
    /// libtorch's optimizer over the same parameters, used only for `zero_grad`, which frees the
    /// gradients (`set_to_none`, as the Hugging Face Trainer does), so the next backward writes
    /// fresh ones instead of adding into zeroed buffers.
    clear: Option<tch::COptimizer>,
}

/// The Hugging Face Trainer's rule for parameters without weight decay: every name holding
/// "bias", and the weights of layer and RMS norms (`LayerNorm` / `LlamaRMSNorm` modules: here
/// the modules whose name holds "norm", and GPT-1's `ln_1` / `ln_2`).
pub fn hf_no_decay(name: &str) -> bool {
    let module = name.rsplit_once('.').map_or("", |(m, _)| m);
    let last = module.rsplit('.').next().unwrap_or("");
    name.contains("bias") || last.contains("norm") || (last.starts_with("ln_") && last[3..].chars().all(|c| c.is_ascii_alphanumeric()))
}

/// The scalars of one AdamW step, as `torch.optim.AdamW` forms them (in f64, from the step count).
#[derive(Debug, Clone, Copy)]
struct Coefs {
    /// `1 - lr * weight_decay`, or `None` without weight decay.
    decay: Option<f64>,
    one_minus_beta1: f64,
    beta2: f64,
    one_minus_beta2: f64,
    bias_correction2_sqrt: f64,
    eps: f64,
    /// `-lr / (1 - beta1^t)`.
    neg_step_size: f64,
}

impl Coefs {
    fn new(cfg: AdamW, lr: f64, t: f64) -> Self {
        Self {
            decay: (cfg.weight_decay != 0.0).then_some(1.0 - lr * cfg.weight_decay),
            one_minus_beta1: 1.0 - cfg.beta1,
            beta2: cfg.beta2,
            one_minus_beta2: 1.0 - cfg.beta2,
            bias_correction2_sqrt: (1.0 - cfg.beta2.powf(t)).sqrt(),
            eps: cfg.eps,
            neg_step_size: -(lr / (1.0 - cfg.beta1.powf(t))),
        }
    }
}

/// AdamW on the flat buffers as libtorch element-wise kernels, PyTorch's single-tensor update op
/// for op: `p *= decay; m.lerp_(g, 1-β1); v *= β2; v.addcmul_(g * (1-β2), g);
/// p += (-step_size * m) / (sqrt(v) / bc2 + ε)`. Clobbers the gathered gradients.
fn tensor_step(f: &Flat, c: &Coefs) {
    if let Some(decay) = c.decay {
        let _ = f.p.shallow_clone().g_mul_scalar_(decay);
    }
    let _ = f.m.shallow_clone().lerp_(&f.g, c.one_minus_beta1);
    let _ = f.v.shallow_clone().g_mul_scalar_(c.beta2);
    let _ = f.g.mul_scalar_out(&f.scratch, c.one_minus_beta2);
    let _ = f.v.shallow_clone().addcmul_(&f.scratch, &f.g);
    let _ = f.v.sqrt_out(&f.scratch);
    let _ = f.scratch.shallow_clone().g_div_scalar_(c.bias_correction2_sqrt);
    let _ = f.scratch.shallow_clone().g_add_scalar_(c.eps);
    // addcdiv_(m, denom, value): p + (value * m) / denom, in that order (ATen's kernel). The
    // gradient buffer is free by now and holds the quotient.
    let _ = f.m.mul_scalar_out(&f.g, c.neg_step_size);
    let _ = f.g.shallow_clone().g_div_(&f.scratch);
    let _ = f.p.shallow_clone().g_add_(&f.g);
}

// The fused CPU step (every `unsafe` of the optimizer is there).
mod fused;

pub use fused::{active as fused_cpu_step_active, sweeps as fused_cpu_step_sweeps};

/// The flat buffers: parameters, moments, the gathered gradients and one scratch.
struct Flat {
    p: Tensor,
    m: Tensor,
    v: Tensor,
    g: Tensor,
    scratch: Tensor,
}

impl AdamWState {
    /// The trainable variables of `vs`, in name order, with zero moments; weight decay (when
    /// set) on all of them, as `torch.optim.AdamW` over one parameter group.
    pub fn new(vs: &nn::VarStore, cfg: AdamW) -> Self {
        Self::grouped(vs, cfg, |_| false)
    }

    /// As [`Self::new`], in two groups as the Hugging Face Trainer builds them: the parameters
    /// `no_decay` names (biases and norm weights: [`hf_no_decay`]) take no weight decay.
    pub fn grouped(vs: &nn::VarStore, cfg: AdamW, no_decay: impl Fn(&str) -> bool) -> Self {
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
        let decays = names.iter().map(|n| !no_decay(n)).collect();
        Self { cfg, steps: vec![0; names.len()], names, params, exp_avg, exp_avg_sq, decays, flat, gathered: false, pending: None, clear }
    }

    /// The flat path applies when every parameter has a gradient and all have taken the same
    /// number of steps (their bias corrections are then one pair of scalars).
    fn flat_grads(&self) -> Option<Vec<Tensor>> {
        let f = self.flat.as_ref()?;
        // The parameters still live in the flat buffer (another optimizer built over the same
        // variables later would have moved them into its own).
        if self.params[0].data_ptr() != f.p.data_ptr() {
            return None;
        }
        let grads: Vec<Tensor> = self.params.iter().map(|p| p.grad()).collect();
        let same_steps = self.steps.iter().all(|&s| s == self.steps[0]);
        (same_steps && grads.iter().all(|g| g.defined() && g.kind() == tch::Kind::Float)).then_some(grads)
    }

    /// The gradients' global L2 norm as a device scalar; the gradients the next step uses are
    /// scaled by `min(1, max / (norm + 1e-6))` (PyTorch's `clip_grad_norm_`; `max` <= 0: no
    /// clipping): here (gathered into the flat buffer, or each in place), or, on the fused CPU
    /// path, inside the step's pass. No value is read back to the host. The norm is the square
    /// root of the sum of each tensor's sum of squares, in fp32, and the factor is formed in f64,
    /// as this trainer has always computed them, so runs keep their numbers to the bit.
    pub fn clip(&mut self, max: f64) -> Option<Tensor> {
        self.gathered = false;
        self.pending = None;
        let flat = self.flat_grads();
        // The fused CPU step folds the factor into its pass over the gradients (and its one-pass
        // sweep reads them where autograd left them, so they are not gathered either).
        let fold = flat.is_some() && self.flat.as_ref().is_some_and(|f| f.p.device() == tch::Device::Cpu) && fused::active();
        let grads = match flat {
            Some(grads) if fold && fused::sweeps() && grads.iter().all(|g| g.is_contiguous()) => grads,
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
                match &self.flat {
                    _ if fold => self.pending = Some(coef),
                    Some(f) if self.gathered => {
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
    pub fn grads(&mut self) -> Vec<Tensor> {
        if let Some(coef) = self.pending.take() {
            tch::no_grad(|| match (&self.flat, self.gathered) {
                (Some(f), true) => {
                    let _ = f.g.shallow_clone().g_mul_(&coef);
                }
                _ => {
                    for p in &self.params {
                        let _ = p.grad().g_mul_(&coef);
                    }
                }
            });
        }
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
        // With two groups, the decay (AdamW's first operation on a parameter, p *= 1 - lr λ) is
        // applied here to the decayed group only, and the update below runs without it.
        let grouped = weight_decay != 0.0 && !self.decays.iter().all(|&d| d);
        if grouped {
            tch::no_grad(|| {
                for (p, _) in self.params.iter().zip(&self.decays).filter(|(p, &d)| d && p.grad().defined()) {
                    let _ = p.shallow_clone().g_mul_scalar_(1.0 - lr * weight_decay);
                }
            });
        }
        let update = AdamW { weight_decay: if grouped { 0.0 } else { weight_decay }, ..self.cfg };
        if let Some(grads) = self.flat_grads() {
            let f = self.flat.as_mut().expect("flat path");
            let t = (self.steps[0] + 1) as f64;
            let c = Coefs::new(update, lr, t);
            let clip = self.pending.take();
            // A CPU scalar: reading it waits for nothing.
            let scale = clip.as_ref().map_or(1.0, |x| x.double_value(&[]) as f32);
            let cpu = f.p.device() == tch::Device::Cpu;
            // The fused CPU step on the gradients where autograd left them, else on the gathered
            // ones (gathered here when `clip` did not), else the element-wise kernels.
            let mut done = cpu && !self.gathered && fused::step(f, Some(&grads), &c, scale);
            if !done {
                if !self.gathered {
                    let flat: Vec<Tensor> = grads.iter().map(|g| g.reshape([-1])).collect();
                    let _ = tch::no_grad(|| Tensor::cat_out(&f.g, &flat, 0));
                }
                done = cpu && fused::step(f, None, &c, scale);
            }
            if !done {
                tch::no_grad(|| {
                    if let Some(x) = &clip {
                        let _ = f.g.shallow_clone().g_mul_(x);
                    }
                    tensor_step(f, &c)
                });
            }
            self.gathered = false;
            self.steps.iter_mut().for_each(|s| *s += 1);
            return;
        }
        self.gathered = false;
        // A factor `clip` left pending (it gathered on the flat path, which no longer applies).
        if let Some(x) = self.pending.take() {
            for p in &self.params {
                let mut g = p.grad();
                if g.defined() {
                    let _ = tch::no_grad(|| g.g_mul_(&x));
                }
            }
        }
        tch::no_grad(|| {
            for i in 0..self.params.len() {
                let g = self.params[i].grad();
                if !g.defined() {
                    continue;
                }
                let p = &mut self.params[i];
                if update.weight_decay != 0.0 {
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
                // addcdiv_(m, denom, value = -step_size): (value * m) / denom, then added.
                let _ = p.g_add_(&((&self.exp_avg[i] * -step_size) / &denom));
            }
        });
    }

    pub fn zero_grad(&mut self) {
        self.gathered = false;
        self.pending = None;
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
mod tests;
