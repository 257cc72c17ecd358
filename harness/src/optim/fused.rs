//! On the CPU, the same update as one pass over memory instead of eleven: what an fp32 training
//! step at the CI sizes spends most of its optimizer time on is reading and writing the buffers.
//! It is used only after it has reproduced [`tensor_step`] bit for bit on this machine and this
//! libtorch (a calibration on a few thousand random elements, once per process); otherwise
//! [`tensor_step`]'s libtorch kernels run. Every `unsafe` of the optimizer is in this file.
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

/// Whether `t` is a contiguous f32 CPU buffer of `n` elements, which [`slice_mut`] and [`slice`]
/// may view.
fn fits(t: &Tensor, n: usize) -> bool {
    t.kind() == Kind::Float && t.is_contiguous() && t.numel() == n && t.device() == tch::Device::Cpu
}

/// The elements of `t` to write in place.
///
/// # Safety
/// `fits(t, t.numel())`, and for the slice's life nothing else reads or writes the buffer: no
/// other slice of it, no libtorch call on it. The optimizer's buffers are its own (allocated in
/// `AdamWState::new`, distinct from one another), and autograd is idle between backward and the
/// next forward.
#[allow(clippy::mut_from_ref)] // libtorch's buffer behind tch's shared handle: the contract above is the exclusivity
unsafe fn slice_mut(t: &Tensor) -> &mut [f32] {
    if t.numel() == 0 {
        return &mut []; // an empty tensor's data pointer may be null
    }
    // SAFETY: the caller's contract above.
    unsafe { std::slice::from_raw_parts_mut(t.data_ptr() as *mut f32, t.numel()) }
}

/// The elements of `t` to read.
///
/// # Safety
/// `fits(t, t.numel())`, and for the slice's life nothing writes the buffer.
unsafe fn slice(t: &Tensor) -> &[f32] {
    if t.numel() == 0 {
        return &[];
    }
    // SAFETY: the caller's contract above.
    unsafe { std::slice::from_raw_parts(t.data_ptr() as *const f32, t.numel()) }
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
    if ![&f.p, &f.m, &f.v, &f.g, &f.scratch].into_iter().all(|t| fits(t, n)) {
        return false;
    }
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
        let gs: Vec<&Tensor> = match grads {
            Some(gs) => gs.iter().collect(),
            None => vec![&f.g],
        };
        if !gs.iter().all(|g| fits(g, g.numel())) || gs.iter().map(|g| g.numel()).sum::<usize>() != n {
            return false;
        }
        // SAFETY: all fit (checked above); p, m and v are the optimizer's own distinct buffers,
        // written only through these slices until the sweep ends; the gradients are only read.
        let (mut p, mut m, mut v) = unsafe { (slice_mut(&f.p), slice_mut(&f.m), slice_mut(&f.v)) };
        let pieces: Vec<&[f32]> = gs.into_iter().map(|g| unsafe { slice(g) }).collect();
        // Work items of at most CHUNK elements: (p, m, v, g) slices, disjoint.
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
    // libtorch writes f.g (the clip) and f.scratch (the square root) in place: the slices of
    // each pass are taken after the libtorch call before it and end before the one after it.
    if scale != 1.0 {
        let _ = tch::no_grad(|| f.g.shallow_clone().g_mul_scalar_(scale as f64));
    }
    {
        // SAFETY: all fit (checked above), distinct buffers; no libtorch call in this block.
        let (p, m, v, g) = unsafe { (slice_mut(&f.p), slice_mut(&f.m), slice_mut(&f.v), slice(&f.g)) };
        p.par_chunks_mut(CHUNK).zip(m.par_chunks_mut(CHUNK)).zip(v.par_chunks_mut(CHUNK)).zip(g.par_chunks(CHUNK)).for_each(|(((p, m), v), g)| unsafe {
            run_moments(p, m, v, g, &k, decay, addcmul)
        });
    }
    let _ = tch::no_grad(|| f.v.sqrt_out(&f.scratch));
    // SAFETY: as above; sqrt_out has returned.
    let (p, m, root) = unsafe { (slice_mut(&f.p), slice(&f.m), slice(&f.scratch)) };
    p.par_chunks_mut(CHUNK).zip(m.par_chunks(CHUNK)).zip(root.par_chunks(CHUNK)).for_each(|((p, m), r)| unsafe { run_update(p, m, r, &k) });
    true
}

/// How the fused step reproduces libtorch here: the rounding of `addcmul_` (one fused
/// multiply-add or two roundings) and the square root (MKL's in one sweep, or libtorch's
/// between two passes), the first pair that matches; None if neither does.
fn calibrated() -> Option<(Addcmul, Option<VmsSqrt>)> {
    static MODE: OnceLock<Option<(Addcmul, Option<VmsSqrt>)>> = OnceLock::new();
    *MODE.get_or_init(|| {
        if !has_fma() || std::env::var("HARNESS_FUSED_ADAMW").is_ok_and(|v| v == "0") {
            return None;
        }
        let sweeps: Vec<Option<VmsSqrt>> = vml_sqrt().map(Some).into_iter().chain([None]).collect();
        sweeps.into_iter().flat_map(|s| [(Addcmul::Fma, s), (Addcmul::Separate, s)]).find(|&(mode, sweep)| reproduces(mode, sweep))
    })
}

/// Whether the CPU has the AVX2 and FMA instructions the fused passes are compiled for.
fn has_fma() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
}

/// Whether [`apply`] in this mode reproduces [`tensor_step`] to the bit on a few thousand random
/// elements, with and without a clip and weight decay (callers check [`has_fma`] first).
fn reproduces(mode: Addcmul, sweep: Option<VmsSqrt>) -> bool {
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

/// Whether the two passes around libtorch's own square root (the fused step of a libtorch
/// without MKL) reproduce libtorch with the rounding of `addcmul_` that calibration found: they
/// differ from the sweep in the square root only, and theirs is libtorch's by construction.
#[cfg(test)]
pub(super) fn two_passes_reproduce() -> bool {
    calibrated().is_some_and(|(mode, _)| reproduces(mode, None))
}

/// Whether the one-pass sweep (MKL's square root) is the fused step in use.
pub fn sweeps() -> bool {
    calibrated().is_some_and(|(_, s)| s.is_some())
}

/// Whether the fused CPU step is in use in this process (after calibration).
pub fn active() -> bool {
    calibrated().is_some()
}
