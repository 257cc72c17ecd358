//! Manual mixed precision: fp32 master weights, matrix products in a reduced compute kind
//! (bf16), norms, softmax-free residual adds and the loss in fp32. tch's autocast only does fp16,
//! so the layers ask this module: one thread-local switch, off by default (then every helper is
//! the plain fp32 op, bit for bit).
use std::cell::Cell;
use tch::{nn, Kind, Tensor};

thread_local! {
    static COMPUTE: Cell<Option<Kind>> = const { Cell::new(None) };
}

/// Restores the previous compute kind when dropped (also on a panic).
struct Restore(Option<Kind>);

impl Drop for Restore {
    fn drop(&mut self) {
        COMPUTE.with(|c| c.set(self.0));
    }
}

/// Runs `f` with matrix products in `kind` (None: fp32).
pub fn with_compute<T>(kind: Option<Kind>, f: impl FnOnce() -> T) -> T {
    let _restore = Restore(COMPUTE.with(|c| c.replace(kind)));
    f()
}

pub fn compute() -> Option<Kind> {
    COMPUTE.with(|c| c.get())
}

/// `t` in the compute kind (a differentiable cast: gradients reach the fp32 master).
pub fn cast(t: &Tensor) -> Tensor {
    match compute() {
        Some(k) if t.kind() != k => t.to_kind(k),
        _ => t.shallow_clone(),
    }
}

/// The input of a norm: fp32 when mixed.
pub fn full(xs: &Tensor) -> Tensor {
    match compute() {
        Some(_) if xs.kind() != Kind::Float => xs.to_kind(Kind::Float),
        _ => xs.shallow_clone(),
    }
}

/// `x Wᵀ + b` in the compute kind.
pub fn linear(xs: &Tensor, l: &nn::Linear) -> Tensor {
    if compute().is_none() {
        return xs.apply(l);
    }
    cast(xs).linear(&cast(&l.ws), l.bs.as_ref().map(cast))
}

/// `a b` in the compute kind.
pub fn matmul(a: &Tensor, b: &Tensor) -> Tensor {
    cast(a).matmul(&cast(b))
}
