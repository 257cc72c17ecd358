//! `train` (CLM and autoencoder training, PAPER.md C) and `representation` (the inversion
//! experiments, PAPER.md D).
use super::*;

/// PAPER.md C: AdamW (0.9, 0.999, 1e-8, wd 0), linear warm-up then linear decay to 0, clip 1.0.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Optimizer steps; or give `tokens` and the steps follow from batch_size * n_ctx.
    #[serde(default)]
    pub steps: Option<u64>,
    #[serde(default)]
    pub tokens: Option<u64>,
    pub batch_size: i64,
    #[serde(default = "default_lr")]
    pub lr: f64,
    #[serde(default = "default_warmup")]
    pub warmup_steps: u64,
    /// AdamW's decoupled weight decay (the paper's is 0). Biases and norm weights take none, as
    /// in the Hugging Face Trainer's two parameter groups (`optim::hf_no_decay`).
    #[serde(default)]
    pub weight_decay: f64,
    #[serde(default = "default_beta1")]
    pub beta1: f64,
    #[serde(default = "default_beta2")]
    pub beta2: f64,
    #[serde(default = "default_eps")]
    pub eps: f64,
    #[serde(default = "default_clip")]
    pub grad_clip: f64,
    /// Evaluate every this many steps (and at the end).
    #[serde(default = "default_eval_every")]
    pub eval_every: u64,
    /// Evaluation batches per evaluation; all of the eval set when absent.
    #[serde(default)]
    pub eval_batches: Option<u64>,
    /// Save a checkpoint every this many steps (the final one is always saved).
    #[serde(default)]
    pub checkpoint_every: Option<u64>,
    /// `"fp32"` (default) or `"fp16-amp"`; left out of the run id while it is the default.
    #[serde(default, skip_serializing_if = "is_default")]
    pub precision: Precision,
    /// Gradient accumulation: each optimizer step sums the gradients of `accumulate` batches of
    /// `batch_size`, normalised over the whole global batch's tokens, so it equals one batch of
    /// `accumulate * batch_size` (the paper's 4-GPU global batches on one GPU, C.1).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub accumulate: u64,
    /// How accumulated micro-batches are normalised: `"tokens"` (default: over the global
    /// batch's targets, one batch of `accumulate * batch_size`) or `"ddp"` (the mean of each
    /// micro-batch's mean, as DDP averages its devices' mean losses: a suite that stands in for
    /// `accumulate` GPUs; PAPER.md C, I.22). The two differ when padding differs between
    /// micro-batches.
    #[serde(default, skip_serializing_if = "is_default")]
    pub accumulation: Accumulation,
    /// Stop after this many minutes of the run's wall-clock time even if steps remain (the
    /// paper's 12 h / 2.25 h budgets, C.1); the LR schedule keeps its full length. A run stopped
    /// this way depends on the machine: its summary and the report say so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_minutes: Option<f64>,
    /// End the run after this many optimizer steps while the LR schedule keeps the length of
    /// `steps` / `tokens`: the paper's runs were stopped by a compute budget before their
    /// schedule (set by an epoch count) ended (PAPER.md C.2). At or beyond the schedule's end it
    /// changes nothing, so a profile that shortens `steps` needs no change here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_at: Option<u64>,
    /// A NaN or infinite loss: `"fail"` (default) fails the run; `"record"` finishes it as
    /// diverged (`diverged_at_step` in its summary), so its table cells read "diverged" and a
    /// claim that the other side trains better holds (PAPER.md A.2: runs that do not train are
    /// the point). Left out of the run id while it is the default.
    #[serde(default, skip_serializing_if = "is_default")]
    pub on_divergence: OnDivergence,
}

/// [`TrainConfig::on_divergence`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnDivergence {
    #[default]
    Fail,
    Record,
}

/// [`TrainConfig::accumulation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Accumulation {
    #[default]
    Tokens,
    Ddp,
}

pub(super) fn one() -> u64 {
    1
}
pub(super) fn is_one(v: &u64) -> bool {
    *v == 1
}

pub(super) fn default_lr() -> f64 {
    5e-4
}
pub(super) fn default_warmup() -> u64 {
    500
}
pub(super) fn default_beta1() -> f64 {
    0.9
}
pub(super) fn default_beta2() -> f64 {
    0.999
}
pub(super) fn default_eps() -> f64 {
    1e-8
}
pub(super) fn default_clip() -> f64 {
    1.0
}
pub(super) fn default_eval_every() -> u64 {
    4000
}

impl TrainConfig {
    /// Sequences per optimizer step: `batch_size * accumulate`.
    pub fn global_batch(&self) -> u64 {
        self.batch_size as u64 * self.accumulate
    }

    /// The LR schedule's length, from `steps` or from `tokens` (rounded up to whole steps).
    pub fn total_steps(&self, n_ctx: i64) -> u64 {
        match (self.steps, self.tokens) {
            (Some(s), _) => s,
            (None, Some(t)) => t.div_ceil(self.global_batch() * n_ctx as u64),
            (None, None) => 0,
        }
    }

    /// The steps the run trains: the schedule's length, or `stop_at` when that comes first.
    pub fn budget_steps(&self, n_ctx: i64) -> u64 {
        let total = self.total_steps(n_ctx);
        self.stop_at.map_or(total, |s| s.min(total))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RepresentationLoss {
    /// Σ |T - A(a)| (the reference's default).
    L1,
    /// 1 - |cos(T, A(a))| per position.
    Cosine,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelSource {
    /// A freshly initialised model (the run's seed is the init seed).
    Untrained,
    /// Every checkpoint of the CLM run named by `from = "<experiment>"` (the default then);
    /// step 0 is the same init.
    Trained,
    /// A safetensors file with the reference's key names (`representation.checkpoint`), e.g. a
    /// checkpoint trained by the author's PyTorch code.
    Checkpoint,
}

/// PAPER.md D: gradient descent on the input of the block stack, then pseudo-inverse decoding.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepresentationConfig {
    #[serde(default = "default_source")]
    pub source: ModelSource,
    /// The file for `source = "checkpoint"`.
    #[serde(default)]
    pub checkpoint: Option<PathBuf>,
    /// Blocks of A(·); all when absent.
    #[serde(default)]
    pub depth: Option<usize>,
    #[serde(default = "default_gd_steps")]
    pub steps: u64,
    #[serde(default = "default_lr0")]
    pub lr0: f64,
    #[serde(default = "default_loss")]
    pub loss: RepresentationLoss,
    #[serde(default = "default_top_k")]
    pub top_k: i64,
    /// Drop the first `skip` outputs from the target (the non-self variant, D.8).
    #[serde(default)]
    pub skip: i64,
    /// Prompts typed into the suite; without them the first `n_prompts` eval stories are used.
    #[serde(default)]
    pub prompts: Vec<String>,
    #[serde(default = "default_n_prompts")]
    pub n_prompts: usize,
}

pub(super) fn default_source() -> ModelSource {
    ModelSource::Untrained
}
pub(super) fn default_gd_steps() -> u64 {
    500
}
pub(super) fn default_lr0() -> f64 {
    0.02
}
pub(super) fn default_loss() -> RepresentationLoss {
    RepresentationLoss::L1
}
pub(super) fn default_top_k() -> i64 {
    5
}
pub(super) fn default_n_prompts() -> usize {
    10
}

impl TrainConfig {
    /// Checks the budget, the optimiser's settings and the precision for a run on `device`.
    pub fn check(&self, n_ctx: i64, device: DeviceChoice) -> Result<(), Invalid> {
        if self.steps.is_none() && self.tokens.is_none() {
            return Err(Invalid::new("train.steps", "give a budget: steps = N or tokens = N"));
        }
        if self.batch_size < 1 {
            return Err(Invalid::new("train.batch_size", format!("must be at least 1, got {}", self.batch_size)));
        }
        if self.accumulate < 1 {
            return Err(Invalid::new("train.accumulate", "must be at least 1 (1: no accumulation)"));
        }
        if self.total_steps(n_ctx) == 0 {
            return Err(Invalid::new("train.steps", "the budget is 0 steps"));
        }
        if self.max_minutes.is_some_and(|m| !(m > 0.0 && m.is_finite())) {
            return Err(Invalid::new("train.max_minutes", "must be a positive number of minutes"));
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(Invalid::new("train.lr", format!("must be a positive number, got {}", self.lr)));
        }
        if self.eval_every == 0 {
            return Err(Invalid::new("train.eval_every", "must be at least 1"));
        }
        if self.precision == Precision::Fp16Amp && device == DeviceChoice::Cpu {
            return Err(Invalid::new("train.precision", "\"fp16-amp\" uses CUDA autocast; use precision = \"fp32\" on CPU or device = \"cuda\""));
        }
        if !(self.grad_clip >= 0.0 && self.grad_clip.is_finite()) {
            return Err(Invalid::new("train.grad_clip", format!("must be >= 0 (0 turns clipping off), got {}", self.grad_clip)));
        }
        for (key, v) in [("train.beta1", self.beta1), ("train.beta2", self.beta2)] {
            if !(0.0..1.0).contains(&v) {
                return Err(Invalid::new(key, format!("must be in [0, 1) (AdamW's moment decay; the paper's are 0.9 and 0.999), got {v}")));
            }
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return Err(Invalid::new("train.weight_decay", format!("must be >= 0 (the paper's is 0), got {}", self.weight_decay)));
        }
        if !(self.eps >= 0.0 && self.eps.is_finite()) {
            return Err(Invalid::new("train.eps", format!("must be >= 0 (the paper's is 1e-8), got {}", self.eps)));
        }
        if self.checkpoint_every == Some(0) {
            return Err(Invalid::new("train.checkpoint_every", "must be at least 1 (steps between checkpoints); leave it out for none"));
        }
        if self.eval_batches == Some(0) {
            return Err(Invalid::new("train.eval_batches", "must be at least 1; leave it out to evaluate on the whole evaluation split"));
        }
        if self.stop_at == Some(0) {
            return Err(Invalid::new("train.stop_at", "must be at least 1 (the step to stop at); leave it out to train the whole schedule"));
        }
        Ok(())
    }
}
