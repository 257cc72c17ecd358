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
//! Parameters and moments are views of flat buffers; on the CPU the step is two passes of a
//! fused kernel around libtorch's own square root (see [`fused`]), elsewhere a handful of
//! libtorch kernels over the flat buffers.
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
    /// The clip factor `clip` formed but left for the fused CPU step to apply on its way through
    /// the gradients (saving a pass over them); [`Self::grads`] applies it when asked first.
    pending: Option<Tensor>,
    /// libtorch's optimizer over the same parameters, used only for `zero_grad`, which frees the
    /// gradients (`set_to_none`, as the Hugging Face Trainer does), so the next backward writes
    /// fresh ones instead of adding into zeroed buffers.
    clear: Option<tch::COptimizer>,
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
            decay: (cfg.weight_decay != 0.0).then(|| 1.0 - lr * cfg.weight_decay),
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

/// On the CPU, the same update as one pass over memory instead of eleven: what an fp32 training
/// step at the CI sizes spends most of its optimizer time on is reading and writing the buffers.
/// It is used only after it has reproduced [`tensor_step`] bit for bit on this machine and this
/// libtorch (a calibration on a few thousand random elements, once per process); otherwise the
/// kernels above run.
mod fused {
    use super::{tensor_step, Coefs, Flat};
    use rayon::prelude::*;
    use std::sync::OnceLock;
    use tch::{Kind, Tensor};

    /// How libtorch rounds `v + t * g` in `addcmul_`: one fused multiply-add or two roundings.
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Addcmul {
        Fma,
        Separate,
    }

    /// Decay, first and second moments: everything before the square root.
    #[inline(always)]
    fn moments(p: &mut f32, m: &mut f32, v: &mut f32, g: f32, k: &[f32; 8], decay: bool, addcmul: Addcmul) {
        let [dec, w, beta2, omb2, _, _, _, w_minus_1] = *k;
        if decay {
            *p *= dec;
        }
        // torch.lerp: start + w (end - start) for |w| < 0.5, else end + (w - 1)(end - start),
        // each one fused multiply-add (ATen's lerp_vec).
        let diff = g - *m;
        *m = if w.abs() < 0.5 { w.mul_add(diff, *m) } else { w_minus_1.mul_add(diff, g) };
        let vi = *v * beta2;
        let t = g * omb2;
        *v = match addcmul {
            Addcmul::Fma => t.mul_add(g, vi),
            Addcmul::Separate => vi + t * g,
        };
    }

    /// The update from `root` = sqrt(v) (libtorch's own sqrt, which may come from MKL's vector
    /// math library and is then not the correctly rounded one).
    #[inline(always)]
    fn update(p: &mut f32, m: f32, root: f32, k: &[f32; 8]) {
        let [_, _, _, _, bc2, eps, neg, _] = *k;
        *p += (neg * m) / (root / bc2 + eps);
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn run_moments(p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32], k: &[f32; 8], decay: bool, addcmul: Addcmul) {
        for (((p, m), v), g) in p.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g) {
            moments(p, m, v, *g, k, decay, addcmul);
        }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn run_update(p: &mut [f32], m: &[f32], root: &[f32], k: &[f32; 8]) {
        for ((p, m), r) in p.iter_mut().zip(m).zip(root) {
            update(p, *m, *r, k);
        }
    }

    fn slice(t: &Tensor, n: usize) -> Option<&mut [f32]> {
        let ok = t.kind() == Kind::Float && t.is_contiguous() && t.numel() == n && t.device() == tch::Device::Cpu;
        // SAFETY: a contiguous f32 CPU buffer of `n` elements that this optimizer owns
        // (allocated in `AdamWState::new`, distinct from the others); nothing else reads or
        // writes it during the step (autograd is idle between backward and the next forward).
        ok.then(|| unsafe { std::slice::from_raw_parts_mut(t.data_ptr() as *mut f32, n) })
    }

    /// MKL's `vmsSqrt`, the routine libtorch's CPU `sqrt` calls for f32 (ATen's `vml.h`), when
    /// the loaded libtorch exports it. Its HA mode is not the correctly rounded square root
    /// (about 0.6% of random floats differ by an ulp), so the sweep below calls it rather than
    /// `f32::sqrt`, with ATen's mode.
    type VmsSqrt = unsafe extern "C" fn(n: i64, a: *const f32, r: *mut f32, mode: i64);
    /// VML_HA | VML_FTZDAZ_OFF | VML_ERRMODE_IGNORE, as ATen passes it.
    const VML_MODE: i64 = 0x2 | 0x14_0000 | 0x100;

    fn vml_sqrt() -> Option<VmsSqrt> {
        static F: OnceLock<Option<VmsSqrt>> = OnceLock::new();
        *F.get_or_init(|| {
            unsafe extern "C" {
                fn dlsym(handle: *mut std::ffi::c_void, symbol: *const std::ffi::c_char) -> *mut std::ffi::c_void;
            }
            // SAFETY: RTLD_DEFAULT (null) searches the objects loaded at start-up, libtorch_cpu
            // among them; the symbol, when present, is MKL's C entry point with this signature
            // (MKL_INT n: passing an i64 below 2^31 is right for both the LP64 and ILP64 ABIs).
            let f = unsafe { dlsym(std::ptr::null_mut(), c"vmsSqrt".as_ptr()) };
            (!f.is_null()).then(|| unsafe { std::mem::transmute::<*mut std::ffi::c_void, VmsSqrt>(f) })
        })
    }

    /// Elements per sub-chunk of the sweep: the moments, their square roots and the update of
    /// 4096 elements stay in L1/L2 between the three steps.
    const SWEEP: usize = 4096;

    /// One pass over memory: moments, square root (MKL's), update, per sub-chunk.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn run_sweep(p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32], scale: f32, k: &[f32; 8], decay: bool, addcmul: Addcmul, sqrt: VmsSqrt) {
        let mut root = [0f32; SWEEP];
        for start in (0..p.len()).step_by(SWEEP) {
            let end = (start + SWEEP).min(p.len());
            let (p, m, v, g) = (&mut p[start..end], &mut m[start..end], &mut v[start..end], &g[start..end]);
            for (((p, m), v), g) in p.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g) {
                moments(p, m, v, *g * scale, k, decay, addcmul);
            }
            let root = &mut root[..end - start];
            // SAFETY: `v` and `root` hold `root.len()` elements; MKL reads one and writes the other.
            unsafe { sqrt(root.len() as i64, v.as_ptr(), root.as_mut_ptr(), VML_MODE) };
            for ((p, m), r) in p.iter_mut().zip(m.iter()).zip(root.iter()) {
                update(p, *m, *r, k);
            }
        }
    }

    /// The step on `f`, its gradients times `scale` first (the clip factor, 1 without clipping;
    /// `g * scale` in f32 is what `g.mul_(factor)` computes). The gradients are `grads` (one
    /// contiguous f32 tensor per parameter, in the flat buffer's order: read where autograd left
    /// them) or, without, the gathered `f.g`. `sweep`: one pass with MKL's square root; else two
    /// passes around libtorch's, which need the gathered `f.g` (and scale it in place).
    fn apply(f: &Flat, grads: Option<&[Tensor]>, c: &Coefs, scale: f32, addcmul: Addcmul, sweep: Option<VmsSqrt>) -> bool {
        let n = f.p.numel();
        let (Some(p), Some(m), Some(v), Some(flat_g), Some(_)) = (slice(&f.p, n), slice(&f.m, n), slice(&f.v, n), slice(&f.g, n), slice(&f.scratch, n)) else {
            return false;
        };
        let w = c.one_minus_beta1 as f32;
        let k = [
            c.decay.unwrap_or(1.0) as f32,
            w,
            c.beta2 as f32,
            c.one_minus_beta2 as f32,
            c.bias_correction2_sqrt as f32,
            c.eps as f32,
            c.neg_step_size as f32,
            w - 1.0,
        ];
        let decay = c.decay.is_some();
        const CHUNK: usize = 1 << 16;
        // SAFETY (all passes): `calibrated` only selects this path where the CPU has AVX2 and FMA.
        if let Some(sqrt) = sweep {
            // The gradient pieces: each parameter's own tensor, or the flat buffer.
            let pieces: Vec<&[f32]> = match grads {
                Some(gs) => {
                    let Some(pieces) = gs.iter().map(|g| slice(g, g.numel()).map(|s| &*s)).collect::<Option<Vec<&[f32]>>>() else {
                        return false;
                    };
                    if pieces.iter().map(|s| s.len()).sum::<usize>() != n {
                        return false;
                    }
                    pieces
                }
                None => vec![&*flat_g],
            };
            // Work items of at most CHUNK elements: (p, m, v, g) slices, disjoint.
            let (mut p, mut m, mut v) = (p, m, v);
            let mut work = Vec::new();
            for g in pieces {
                for g in g.chunks(CHUNK) {
                    let (ph, pt) = std::mem::take(&mut p).split_at_mut(g.len());
                    let (mh, mt) = std::mem::take(&mut m).split_at_mut(g.len());
                    let (vh, vt) = std::mem::take(&mut v).split_at_mut(g.len());
                    work.push((ph, mh, vh, g));
                    (p, m, v) = (pt, mt, vt);
                }
            }
            work.into_par_iter().for_each(|(p, m, v, g)| unsafe { run_sweep(p, m, v, g, scale, &k, decay, addcmul, sqrt) });
            return true;
        }
        if grads.is_some() {
            return false;
        }
        if scale != 1.0 {
            let _ = tch::no_grad(|| f.g.shallow_clone().g_mul_scalar_(scale as f64));
        }
        p.par_chunks_mut(CHUNK).zip(m.par_chunks_mut(CHUNK)).zip(v.par_chunks_mut(CHUNK)).zip(flat_g.par_chunks(CHUNK)).for_each(|(((p, m), v), g)| unsafe {
            run_moments(p, m, v, g, &k, decay, addcmul)
        });
        let _ = tch::no_grad(|| f.v.sqrt_out(&f.scratch));
        let root = slice(&f.scratch, n).expect("checked above");
        p.par_chunks_mut(CHUNK).zip(m.par_chunks(CHUNK)).zip(root.par_chunks(CHUNK)).for_each(|((p, m), r)| unsafe { run_update(p, m, r, &k) });
        true
    }

    /// How the fused step reproduces libtorch here: the rounding of `addcmul_` (one fused
    /// multiply-add or two roundings) and the square root (MKL's in one sweep, or libtorch's
    /// between two passes), the first pair that matches; None if neither does.
    fn calibrated() -> Option<(Addcmul, Option<VmsSqrt>)> {
        static MODE: OnceLock<Option<(Addcmul, Option<VmsSqrt>)>> = OnceLock::new();
        *MODE.get_or_init(|| {
            if !(std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")) || std::env::var("HARNESS_FUSED_ADAMW").is_ok_and(|v| v == "0") {
                return None;
            }
            // Odd length: vector bodies and scalar tails (and a short last sweep chunk); values
            // over several magnitudes.
            let n = 4133;
            let make = |seed: f64, scale: f64| {
                let x = Tensor::arange(n, (Kind::Double, tch::Device::Cpu)) * seed;
                (x.sin() * x.cos().exp() * scale).to_kind(Kind::Float)
            };
            let flat = || Flat {
                p: make(0.37, 1.0),
                m: make(1.3, 1e-2),
                v: make(2.1, 1e-3).abs(),
                g: make(0.71, 0.5),
                scratch: Tensor::zeros([n], (Kind::Float, tch::Device::Cpu)),
            };
            // (coefficients, clip factor as `clip` forms it: an f64 scalar tensor, or no clip).
            let cases = [
                (Coefs::new(super::AdamW { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 }, 3e-3, 1.0), Some(0.123_456_789_012_345)),
                (Coefs::new(super::AdamW { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 }, 5e-4, 137.0), None),
                (Coefs::new(super::AdamW { beta1: 0.3, beta2: 0.95, eps: 1e-6, weight_decay: 0.1 }, 1e-2, 3.0), Some(0.999_999_9)),
            ];
            let bits = |t: &Tensor| -> Option<Vec<u32>> { Some(Vec::<f32>::try_from(t).ok()?.iter().map(|x| x.to_bits()).collect()) };
            let sweeps: Vec<Option<VmsSqrt>> = vml_sqrt().map(Some).into_iter().chain([None]).collect();
            sweeps.into_iter().flat_map(|s| [(Addcmul::Fma, s), (Addcmul::Separate, s)]).find(|&(mode, sweep)| {
                cases.iter().all(|(c, clip)| {
                    let (a, b) = (flat(), flat());
                    tch::no_grad(|| {
                        if let Some(x) = clip {
                            let _ = a.g.shallow_clone().g_mul_(&Tensor::scalar_tensor(*x, (Kind::Double, tch::Device::Cpu)));
                        }
                        tensor_step(&a, c)
                    });
                    let same = |b: &Flat| {
                        [(&a.p, &b.p), (&a.m, &b.m), (&a.v, &b.v)].iter().all(|(x, y)| {
                            let (x, y) = (bits(x), bits(y));
                            x.is_some() && x == y
                        })
                    };
                    let scale = clip.map_or(1.0, |x| x as f32);
                    // Per-parameter gradients too (the sweep reads them in place): pieces of
                    // several sizes, so MKL sees short and ragged calls.
                    let per_parameter = sweep.is_none() || {
                        let c2 = flat();
                        let pieces: Vec<Tensor> = [1, 63, 2048, 2021].iter().scan(0, |at, &len| {
                            let t = b.g.narrow(0, *at, len).copy();
                            *at += len;
                            Some(t)
                        }).collect();
                        apply(&c2, Some(&pieces), c, scale, mode, sweep) && same(&c2)
                    };
                    apply(&b, None, c, scale, mode, sweep) && same(&b) && per_parameter
                })
            })
        })
    }

    /// The fused step with the gradients scaled by `scale` first, when it reproduces libtorch's
    /// here; false (nothing done) otherwise.
    pub(super) fn step(f: &Flat, grads: Option<&[Tensor]>, c: &Coefs, scale: f32) -> bool {
        match calibrated() {
            Some((mode, sweep)) => apply(f, grads, c, scale, mode, sweep),
            None => false,
        }
    }

    /// Whether the loaded libtorch exports MKL's `vmsSqrt`.
    #[cfg(test)]
    pub(super) fn vml_available() -> bool {
        vml_sqrt().is_some()
    }

    /// Whether the one-pass sweep (MKL's square root) is the fused step in use.
    pub fn sweeps() -> bool {
        calibrated().is_some_and(|(_, s)| s.is_some())
    }

    /// Whether the fused CPU step is in use in this process (after calibration).
    pub fn active() -> bool {
        calibrated().is_some()
    }
}

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
        Self { cfg, steps: vec![0; names.len()], names, params, exp_avg, exp_avg_sq, flat, gathered: false, pending: None, clear }
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
        if let Some(grads) = self.flat_grads() {
            let f = self.flat.as_mut().expect("flat path");
            let t = (self.steps[0] + 1) as f64;
            let c = Coefs::new(self.cfg, lr, t);
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
mod tests {
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
                let _ = want.g.shallow_clone().copy_(&flat(step));
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
}
