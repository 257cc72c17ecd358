//! The one training loop, shared by CLM and autoencoder training (`Trainer::fit`), InfoNCE
//! tuning and the frozen-embedding retrieval model: for each step, the dropout seed, the
//! learning rate of Hugging Face's linear schedule at the optimizer steps applied so far, the
//! hooks' forward and backward, the optimizer step (clip, AdamW; skipped under fp16-amp on
//! inf/nan), then the hooks' bookkeeping (logging, evaluation, checkpoints) and the resumable
//! state. What a trainer does differently comes in through [`Hooks`].
use super::resume::{seed_step, Resume};
use super::{lr_factor, Stepper};
use mm_models::ModelError;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::time::Instant;
use tch::{nn, Tensor};

/// Whether the loop goes on after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// This step is the last (a wall-clock budget ran out): its state is written as the last
    /// step's is, and the loop ends.
    Stop,
}

/// What a trainer does at each point of the loop.
pub trait Hooks {
    /// What the trainer carries between steps, written with the resumable state.
    type State: Serialize + DeserializeOwned;

    /// Before the first step: a fresh start (`None`: evaluate the untrained model, say) or the
    /// steps done and the state a killed run left.
    fn start(&mut self, resumed: Option<(u64, Self::State)>) -> Result<(), ModelError>;

    /// Forward and backward (`stepper.backward`) of step `step` (0-based); the loss comes back
    /// detached, as a device scalar.
    fn forward_backward(&mut self, step: u64, stepper: &mut Stepper) -> Result<Tensor, ModelError>;

    /// After the optimizer step: `done` steps are done, `norm` is the gradient norm before
    /// clipping (`None`: skipped under fp16-amp). Logging, evaluation, checkpoints; an error
    /// (divergence) fails the run.
    fn after_step(&mut self, done: u64, loss: &Tensor, norm: Option<&Tensor>, lr: f64) -> Result<Flow, ModelError>;

    /// The state to resume from after `done` steps.
    fn state(&self, done: u64) -> Self::State;

    /// Seconds the loop spent on something other than steps (writing the resumable state).
    fn overhead(&mut self, _seconds: f64) {}
}

/// Hugging Face `get_linear_schedule_with_warmup` over `total` optimizer steps at base `lr`.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub lr: f64,
    pub warmup: u64,
    pub total: u64,
}

/// The loop's own resumable state around the hooks'.
#[derive(Serialize, Deserialize)]
struct LoopState<S> {
    /// Steps done.
    step: u64,
    /// Optimizer steps applied (the schedule's position).
    applied: u64,
    /// The trainer's own.
    hooks: S,
}

/// One training run's loop: `steps` steps (the budget; the schedule may be longer).
pub struct TrainLoop {
    pub steps: u64,
    pub schedule: Schedule,
    /// Seed dropout per step from (seed, step), so a resumed run draws what an uninterrupted
    /// one does; `None` for a model without random layers.
    pub seed: Option<u64>,
    /// Where and how often the resumable state is written; `None`: never.
    pub resume: Option<Resume>,
}

/// What the loop did.
#[derive(Debug, Clone, Copy)]
pub struct Done {
    /// Steps done (fewer than the budget when a hook stopped the loop).
    pub steps: u64,
    /// Optimizer steps applied.
    pub applied: u64,
}

impl TrainLoop {
    pub fn run<H: Hooks>(&mut self, hooks: &mut H, vs: &nn::VarStore, stepper: &mut Stepper) -> Result<Done, ModelError> {
        let resumed = match &self.resume {
            Some(r) => r.load::<LoopState<H::State>>(vs, stepper)?,
            None => None,
        };
        let (start, mut applied) = resumed.as_ref().map_or((0, 0), |s| (s.step, s.applied));
        hooks.start(resumed.map(|s| (s.step, s.hooks)))?;
        let mut done = start;
        for step in start..self.steps {
            if let Some(seed) = self.seed {
                seed_step(seed, step);
            }
            let lr = self.schedule.lr * lr_factor(applied, self.schedule.warmup, self.schedule.total);
            let loss = hooks.forward_backward(step, stepper)?;
            let norm = stepper.apply(lr);
            if norm.is_some() {
                applied += 1;
            }
            done = step + 1;
            let flow = hooks.after_step(done, &loss, norm.as_ref(), lr)?;
            let last = done == self.steps || flow == Flow::Stop;
            if let Some(resume) = self.resume.as_mut().filter(|r| r.due(done, last)) {
                let saving = Instant::now();
                resume.save(done, LoopState { step: done, applied, hooks: hooks.state(done) }, vs, stepper)?;
                hooks.overhead(saving.elapsed().as_secs_f64());
            }
            if flow == Flow::Stop {
                break;
            }
        }
        Ok(Done { steps: done, applied })
    }

    /// A finished run keeps no resumable state: called once its final files are written.
    pub fn finish(&self) -> std::io::Result<()> {
        self.resume.as_ref().map_or(Ok(()), |r| r.clear())
    }
}
