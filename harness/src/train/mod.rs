//! The one trainer (PAPER.md C): AdamW (β 0.9/0.999, ε 1e-8, wd 0), Hugging Face's linear
//! schedule (warm-up from 0, then linear decay to 0 at the last step), global grad-norm clip,
//! periodic evaluation of the mean token CE over non-pad tokens (I.20). The loss is the model's
//! own objective: next token for language models, same position for autoencoders. Seeded: on CPU the same
//! seed gives the same weights, bit for bit.
use crate::artifacts::write_atomic_with;
use crate::data::rows::Rows;
use crate::data::IGNORE;
pub use crate::optim::AdamW;
use crate::optim::AdamWState;
use crate::suite::{Accumulation, Precision, TrainConfig};
use indicatif::{ProgressBar, ProgressStyle};
use mm_models::{checkpoint, lm_loss, objective_pairs, CausalLm, ModelError};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;
use tch::{nn, Device, Kind, Tensor};

/// JSON writes a NaN as null; read it back as NaN.
fn null_as_nan<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepMetric {
    pub step: u64,
    #[serde(deserialize_with = "null_as_nan")]
    pub loss: f64,
    pub lr: f64,
    #[serde(deserialize_with = "null_as_nan")]
    pub grad_norm: f64,
    pub tokens: u64,
    pub elapsed_s: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalMetric {
    pub step: u64,
    #[serde(deserialize_with = "null_as_nan")]
    pub eval_loss: f64,
    /// Mean training loss over the steps since the previous evaluation.
    #[serde(deserialize_with = "null_as_nan")]
    pub train_loss: f64,
}

mod clm_steps;
pub mod loader;
pub mod resume;
pub mod train_loop;
use clm_steps::ClmSteps;
pub use resume::ResumeEvery;
pub use train_loop::{Flow, Hooks, Schedule, TrainLoop};

/// What the CLM trainer carries between steps, as `resume/state.json` holds it (beside the
/// loop's step and applied-step counts).
#[derive(Debug, Serialize, Deserialize)]
struct ResumeState {
    /// Where the data order stands (its generator before the current epoch's shuffle, and the
    /// position in that epoch).
    order: loader::OrderState,
    tokens_seen: u64,
    #[serde(deserialize_with = "null_as_nan")]
    window_sum: f64,
    window_n: u64,
    #[serde(deserialize_with = "null_as_nan")]
    last_eval: f64,
    steps_metrics: Vec<StepMetric>,
    eval_metrics: Vec<EvalMetric>,
    checkpoints: Vec<(u64, String)>,
    elapsed_s: f64,
    overhead_s: f64,
    #[serde(default)]
    empty_batches: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrainOutcome {
    pub steps: u64,
    pub tokens: u64,
    pub train_loss: f64,
    pub eval_loss: f64,
    pub wall_s: f64,
    /// Seconds spent in evaluation and checkpoint writes (excluded from tokens_per_s).
    pub overhead_s: f64,
    /// Non-pad training tokens per second of optimizer steps alone.
    pub tokens_per_s: f64,
    pub steps_metrics: Vec<StepMetric>,
    pub eval_metrics: Vec<EvalMetric>,
    /// Checkpoints written, relative to the run folder, with their step.
    pub checkpoints: Vec<(u64, String)>,
    /// `max_minutes` ended the run before its step budget (the run is then not reproducible).
    pub wall_clock_stop: bool,
    /// fp16-amp: optimizer steps skipped for inf/nan gradients, and the final loss scale.
    pub amp_skipped_steps: u64,
    /// Steps whose global batch held no target (every position the objective scores a pad):
    /// no optimizer step was taken (a mean over nothing is 0/0; under fp16-amp the paper's
    /// GradScaler skipped such a step for its NaN).
    pub empty_batches: u64,
    pub amp_final_scale: Option<f64>,
    /// Where the training rows are read from and how batches reach the device.
    pub rows: String,
}

/// Dynamic loss scaling as `torch.cuda.amp.GradScaler` with its defaults.
struct GradScaler {
    scale: f64,
    clean_steps: u64,
}

impl GradScaler {
    const GROWTH_INTERVAL: u64 = 2000;

    fn new() -> Self {
        Self { scale: 65536.0, clean_steps: 0 }
    }

    /// Unscales the gradients in place; false (and the scale halved) when any is inf or nan.
    fn unscale(&mut self, params: &[Tensor]) -> bool {
        let finite = tch::no_grad(|| {
            let mut all = true;
            for p in params {
                let mut g = p.grad();
                if g.defined() {
                    let _ = g.g_mul_scalar_(1.0 / self.scale);
                    all &= g.isfinite().all().int64_value(&[]) == 1;
                }
            }
            all
        });
        if finite {
            self.clean_steps += 1;
            if self.clean_steps == Self::GROWTH_INTERVAL {
                self.scale *= 2.0;
                self.clean_steps = 0;
            }
        } else {
            self.scale *= 0.5;
            self.clean_steps = 0;
        }
        finite
    }
}

/// Runs `f` (a forward) under a precision: fp32, CUDA autocast to fp16, or bf16 compute.
pub fn with_precision<T>(precision: Precision, f: impl FnOnce() -> T) -> T {
    match precision {
        Precision::Fp32 => f(),
        Precision::Fp16Amp => tch::autocast(true, f),
        Precision::Bf16 => mm_models::precision::with_compute(Some(Kind::BFloat16), f),
    }
}

fn forward(model: &dyn CausalLm, tokens: &Tensor, train: bool, precision: Precision) -> Tensor {
    with_precision(precision, || model.forward_t(tokens, train))
}

/// One training step of a language model on a batch already on the device: forward, the
/// model's loss, backward, clip, AdamW at `lr`. The loss and the gradient norm come back as
/// device scalars (the norm `None` for a step skipped under fp16-amp); nothing waits for the
/// device, so the next step is queued while this one runs.
pub fn train_step(model: &dyn CausalLm, stepper: &mut Stepper, tokens: &Tensor, labels: &Tensor, lr: f64, precision: Precision) -> (Tensor, Option<Tensor>) {
    let loss = lm_loss(&forward(model, tokens, true, precision), labels, model.objective());
    stepper.backward(&loss);
    let norm = stepper.apply(lr);
    (loss.detach(), norm)
}

/// One optimizer step as every trainer here takes it (PAPER.md C): backward (scaled under
/// fp16-amp), global grad-norm clip, AdamW; under fp16-amp a step with inf/nan gradients is
/// skipped, as GradScaler does.
pub struct Stepper {
    pub opt: AdamWState,
    scaler: Option<GradScaler>,
    clip: f64,
    /// Steps skipped for inf/nan gradients (fp16-amp).
    pub skipped: u64,
    /// The next `apply` skips its step: its batch had nothing to learn from ([`Self::skip_next`]).
    skip_next: bool,
}

impl Stepper {
    pub fn new(vs: &nn::VarStore, adam: AdamW, clip: f64, precision: Precision) -> Result<Self, ModelError> {
        // Weight decay (when set) spares biases and norm weights, as the reference's Trainer.
        let opt = AdamWState::grouped(vs, adam, crate::optim::hf_no_decay);
        let scaler = (precision == Precision::Fp16Amp).then(GradScaler::new);
        Ok(Self { opt, scaler, clip, skipped: 0, skip_next: false })
    }

    /// Backward of `loss`, clip, step at `lr`. The gradient norm before clipping as a device
    /// scalar, or `None` when the step was skipped (then the caller's schedule does not advance
    /// either, as in Hugging Face's Trainer).
    pub fn step(&mut self, loss: &Tensor, lr: f64) -> Option<Tensor> {
        self.backward(loss);
        self.apply(lr)
    }

    /// Adds `loss`'s gradients (scaled under fp16-amp) to what earlier calls accumulated.
    pub fn backward(&mut self, loss: &Tensor) {
        match &self.scaler {
            None => loss.backward(),
            Some(scaler) => (loss * scaler.scale).backward(),
        }
    }

    /// The next [`Self::apply`] takes no optimizer step (and returns `None`, so the schedule does
    /// not advance either): for a batch without a single target, whose mean loss is 0/0.
    pub fn skip_next(&mut self) {
        self.skip_next = true;
    }

    /// One optimizer step on the accumulated gradients, which it then frees. Nothing is read
    /// back to the host (except under fp16-amp, whose skip decision needs it, as GradScaler's).
    pub fn apply(&mut self, lr: f64) -> Option<Tensor> {
        if std::mem::take(&mut self.skip_next) {
            self.opt.zero_grad();
            return None;
        }
        let finite = self.scaler.as_mut().is_none_or(|s| s.unscale(&self.opt.params));
        let out = if finite {
            let norm = self.opt.clip(self.clip);
            self.opt.step(lr);
            Some(norm.unwrap_or_else(|| Tensor::zeros([], (Kind::Float, Device::Cpu))))
        } else {
            self.skipped += 1;
            None
        };
        self.opt.zero_grad();
        out
    }

    /// The loss scale after training (fp16-amp).
    pub fn final_scale(&self) -> Option<f64> {
        self.scaler.as_ref().map(|s| s.scale)
    }

    /// fp16-amp's loss scale and clean-step count, for the resumable state.
    pub fn scale(&self) -> Option<(f64, u64)> {
        self.scaler.as_ref().map(|s| (s.scale, s.clean_steps))
    }

    /// Restores what [`Self::scale`] and `skipped` were when the state was written.
    pub fn restore_scale(&mut self, scale: Option<(f64, u64)>, skipped: u64) {
        if let (Some(s), Some((scale, clean))) = (self.scaler.as_mut(), scale) {
            (s.scale, s.clean_steps) = (scale, clean);
        }
        self.skipped = skipped;
    }
}

/// Hugging Face `get_linear_schedule_with_warmup`: the multiplier of the base lr at `step`.
pub fn lr_factor(step: u64, warmup: u64, total: u64) -> f64 {
    if step < warmup {
        step as f64 / warmup.max(1) as f64
    } else {
        (total.saturating_sub(step)) as f64 / total.saturating_sub(warmup).max(1) as f64
    }
}

/// Mean token CE over all non-pad targets of `data` (or its first `batches` batches), read in
/// order a batch at a time (the reads of the next batch announced while this one runs).
pub fn evaluate(model: &dyn CausalLm, data: &dyn Rows, batch: i64, batches: Option<u64>, device: Device, precision: Precision) -> Result<Evaluated, ModelError> {
    tch::no_grad(|| {
        let (mut sum, mut count) = (0f64, 0i64);
        let n = data.len() as i64;
        let limit = batches.map_or(n, |b| (b as i64 * batch).min(n));
        let span = |start: i64| (start..(start + batch).min(limit)).collect::<Vec<i64>>();
        let mut start = 0;
        while start < limit {
            let idx = span(start);
            data.will_need(&span(start + batch));
            let (tokens, labels) = data.gather(&idx).map_err(|e| ModelError::Data(e.to_string()))?;
            let (tokens, labels) = (tokens.to_device(device), labels.to_device(device));
            let logits = forward(model, &tokens, false, precision);
            let (pairs, targets) = objective_pairs(&logits, &labels, model.objective());
            let loss = pairs.cross_entropy_loss::<Tensor>(
                &targets,
                None,
                tch::Reduction::Sum,
                IGNORE,
                0.0,
            );
            sum += loss.double_value(&[]);
            count += targets.ne(IGNORE).sum(Kind::Int64).int64_value(&[]);
            start += idx.len() as i64;
        }
        let mean = if count == 0 {
            f64::NAN
        } else {
            sum / count as f64
        };
        Ok(Evaluated { mean, targets: count as u64 })
    })
}

/// What [`evaluate`] measured.
#[derive(Debug, Clone, Copy)]
pub struct Evaluated {
    /// Mean token CE (NaN with no target).
    pub mean: f64,
    /// Targets scored (non-pad positions the objective predicts).
    pub targets: u64,
}

pub struct Trainer<'a> {
    pub cfg: &'a TrainConfig,
    pub seed: u64,
    pub device: Device,
    pub run_dir: &'a crate::artifacts::RunDir,
    pub progress: bool,
    /// Write resumable state this often; `None`: never (tests, short runs).
    pub resume: Option<ResumeEvery>,
    /// Shuffle the rows each epoch (`data.shuffle`); `false`: rows in file order, epoch after epoch.
    pub shuffle: bool,
}

impl Trainer<'_> {
    /// Trains on `train`'s rows (shared with the loader's thread), evaluating on `eval`'s.
    pub fn fit(
        &self,
        model: &dyn CausalLm,
        vs: &nn::VarStore,
        train: std::sync::Arc<dyn Rows>,
        eval: &dyn Rows,
    ) -> Result<TrainOutcome, ModelError> {
        let cfg = self.cfg;
        let n_ctx = train.n_ctx();
        let total = cfg.budget_steps(n_ctx);
        let adam = AdamW { beta1: cfg.beta1, beta2: cfg.beta2, eps: cfg.eps, weight_decay: cfg.weight_decay };
        let mut stepper = Stepper::new(vs, adam, cfg.grad_clip, cfg.precision)?;
        let mut lp = TrainLoop {
            steps: total,
            schedule: Schedule { lr: cfg.lr, warmup: cfg.warmup_steps, total: cfg.total_steps(n_ctx) },
            seed: Some(self.seed),
            resume: Some(resume::Resume::new(self.run_dir, self.resume)),
        };
        let rows = train.len();
        let mut hooks = ClmSteps::new(self, model, vs, train, eval, total);
        // The data order, written with the run so a check outside the harness can take the
        // same batches (a rerun rewrites the same bytes).
        let order = clm_steps::data_order(rows, hooks.global_batch(), total, self.seed, self.shuffle).map_err(|e| ModelError::Data(e.to_string()))?;
        crate::artifacts::write_atomic(&self.run_dir.file("data_order.json"), serde_json::to_string(&order).expect("serializes").as_bytes())?;
        let done = lp.run(&mut hooks, vs, &mut stepper)?;
        hooks.bar.finish_and_clear();
        let ClmSteps { mut out, tokens_seen, last_eval, started, .. } = hooks;
        let saving = Instant::now();
        // Masked-away weights are stored as zeros, as the reference's in-place masking leaves
        // them (no forward reads them, whatever the gradient convention).
        model.remask();
        save_checkpoint(vs, &self.run_dir.file("model.safetensors"))?;
        // Finished: the resumable state is no artifact of the run.
        lp.finish()?;
        out.steps = done.steps;
        out.overhead_s += saving.elapsed().as_secs_f64();
        out.checkpoints.push((out.steps, "model.safetensors".into()));
        out.amp_final_scale = stepper.final_scale();
        out.amp_skipped_steps = stepper.skipped;
        out.tokens = tokens_seen;
        out.eval_loss = last_eval;
        out.wall_s = started.elapsed().as_secs_f64();
        out.tokens_per_s = tokens_seen as f64 / (out.wall_s - out.overhead_s).max(1e-9);
        Ok(out)
    }

    fn bar(&self, total: u64) -> ProgressBar {
        if !self.progress {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template("  {bar:30} {pos}/{len} steps {msg} [{elapsed_precise} < {eta_precise}]")
                .expect("valid template"),
        );
        bar
    }
}

pub fn save_checkpoint(vs: &nn::VarStore, path: &Path) -> Result<(), ModelError> {
    write_atomic_with(path, |tmp: &Path| checkpoint::save(vs, tmp))
}

#[cfg(test)]
mod tests;
