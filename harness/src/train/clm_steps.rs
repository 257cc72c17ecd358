//! CLM and autoencoder training (`Trainer::fit`) as hooks of the one training loop.
use super::loader::{Loader, Order, OrderState};
use super::train_loop::{Flow, Hooks};
use super::*;
use std::sync::Arc;

/// CLM and autoencoder training as hooks of the one loop: the data order (epochs of shuffled
/// rows, drawn a global batch at a time), gradient accumulation, the loss window, divergence,
/// logging, evaluation and checkpoints.
pub(super) struct ClmSteps<'a> {
    trainer: &'a Trainer<'a>,
    model: &'a dyn CausalLm,
    vs: &'a nn::VarStore,
    train: Arc<dyn Rows>,
    eval: &'a dyn Rows,
    /// Started with the first step (a resumed run's order is known then).
    loader: Option<Loader>,
    /// The data order after the steps done.
    order: OrderState,
    micro: usize,
    global: usize,
    total: u64,
    log_every: u64,
    /// This step's batch had no target: its step is skipped and its loss counts nowhere.
    empty_step: bool,
    pub(super) tokens_seen: u64,
    /// The window's losses add up on the device (in f64, as a host sum would); the host reads
    /// a loss only where it logs one, and the window at evaluations.
    window_sum: Tensor,
    window_n: u64,
    pub(super) last_eval: f64,
    pub(super) started: Instant,
    pub(super) bar: ProgressBar,
    pub(super) out: TrainOutcome,
    /// The run folder's TensorBoard event file.
    events: crate::tensorboard::RunEvents,
}

impl<'a> ClmSteps<'a> {
    pub(super) fn new(trainer: &'a Trainer<'a>, model: &'a dyn CausalLm, vs: &'a nn::VarStore, train: Arc<dyn Rows>, eval: &'a dyn Rows, total: u64) -> Self {
        let cfg = trainer.cfg;
        let micro = (cfg.batch_size as u64).min(train.len()) as usize;
        let how = match trainer.device {
            Device::Cuda(_) => "gathered a global batch at a time by a loader thread, staged in pinned host memory and copied to the device without blocking",
            _ => "gathered a global batch at a time by a loader thread",
        };
        let rows = format!("{}; {how}", train.describe());
        let global = micro * cfg.accumulate as usize;
        ClmSteps {
            trainer,
            model,
            vs,
            train,
            eval,
            loader: None,
            order: OrderState::default(),
            micro,
            global,
            total,
            log_every: (total / 500).max(1),
            empty_step: false,
            tokens_seen: 0,
            window_sum: Tensor::from(0f64).to_device(trainer.device),
            window_n: 0,
            last_eval: f64::NAN,
            started: Instant::now(),
            bar: trainer.bar(total),
            out: TrainOutcome {
                steps: total,
                tokens: 0,
                train_loss: f64::NAN,
                eval_loss: f64::NAN,
                wall_s: 0.0,
                overhead_s: 0.0,
                tokens_per_s: 0.0,
                steps_metrics: vec![],
                eval_metrics: vec![],
                checkpoints: vec![],
                amp_skipped_steps: 0,
                empty_batches: 0,
                amp_final_scale: None,
                wall_clock_stop: false,
                rows,
            },
            events: Default::default(),
        }
    }

    pub(super) fn global_batch(&self) -> usize {
        self.global
    }

    fn evaluate(&self) -> Result<f64, ModelError> {
        let cfg = self.trainer.cfg;
        Ok(evaluate(self.model, self.eval, cfg.batch_size, cfg.eval_batches, self.trainer.device, cfg.precision)?.mean)
    }

    /// A host batch on the device: on a GPU staged in pinned memory (libtorch's caching host
    /// allocator, which keeps a block until its copy is done) and copied without blocking.
    fn on_device(&self, t: &Tensor) -> Tensor {
        match self.trainer.device {
            Device::Cuda(_) => t.pin_memory(self.trainer.device).to_device_(self.trainer.device, Kind::Int64, true, false),
            _ => t.shallow_clone(),
        }
    }
}

impl Hooks for ClmSteps<'_> {
    type State = ResumeState;

    fn start(&mut self, resumed: Option<(u64, ResumeState)>) -> Result<(), ModelError> {
        let first = resumed.as_ref().map_or(0, |(step, _)| *step);
        let resumed_order = resumed.as_ref().map(|(_, s)| s.order);
        match resumed {
            Some((step, s)) => {
                self.order = s.order;
                (self.tokens_seen, self.window_n, self.last_eval) = (s.tokens_seen, s.window_n, s.last_eval);
                self.window_sum = Tensor::from(s.window_sum).to_device(self.trainer.device);
                (self.out.steps_metrics, self.out.eval_metrics, self.out.checkpoints, self.out.overhead_s) =
                    (s.steps_metrics, s.eval_metrics, s.checkpoints, s.overhead_s);
                self.out.empty_batches = s.empty_batches;
                self.started = Instant::now().checked_sub(std::time::Duration::from_secs_f64(s.elapsed_s)).unwrap_or(self.started);
                self.bar.set_position(step);
                eprintln!("  resuming at step {step} of {}", self.total);
                self.events = crate::tensorboard::RunEvents::open(&self.trainer.run_dir.path, Some(step));
            }
            None => {
                // Step 0: the untrained model, so every curve starts where training started.
                let initial = self.evaluate()?;
                self.out.eval_metrics.push(EvalMetric { step: 0, eval_loss: initial, train_loss: f64::NAN });
                self.out.overhead_s += self.started.elapsed().as_secs_f64();
                self.events = crate::tensorboard::RunEvents::open(&self.trainer.run_dir.path, None);
                self.events.log(0, &[("eval/loss", initial)]);
            }
        }
        let (n, seed, shuffle) = (self.train.len(), self.trainer.seed, self.trainer.shuffle);
        let order = match resumed_order {
            Some(state) => Order::resume(n, self.global, seed, shuffle, state),
            None => Order::new(n, self.global, seed, shuffle),
        }
        .map_err(|e| ModelError::Data(e.to_string()))?;
        self.order = order.state();
        self.loader = Some(Loader::start(self.train.clone(), order, self.total.saturating_sub(first)));
        Ok(())
    }

    fn forward_backward(&mut self, _step: u64, stepper: &mut Stepper) -> Result<Tensor, ModelError> {
        let (cfg, model) = (self.trainer.cfg, self.model);
        let batch = self.loader.as_mut().expect("started").next_batch().map_err(|e| ModelError::Data(e.to_string()))?;
        self.tokens_seen += batch.real_tokens;
        self.order = batch.state;
        // The targets of the global batch, counted on the host: none (short documents under an
        // objective that scores their second half, say) and the step is skipped, not NaN.
        let count = mm_models::objective_targets(&batch.labels, model.objective()).ne(IGNORE).sum(Kind::Int64).int64_value(&[]);
        if count == 0 {
            self.empty_step = true;
            self.out.empty_batches += 1;
            stepper.skip_next();
            return Ok(Tensor::from(f64::NAN));
        }
        if cfg.accumulate == 1 {
            let (tokens, labels) = (self.on_device(&batch.tokens), self.on_device(&batch.labels));
            let loss = lm_loss(&forward(model, &tokens, true, cfg.precision), &labels, model.objective());
            stepper.backward(&loss);
            return Ok(loss.detach());
        }
        // `tokens`: the global batch's mean, each micro-batch's summed CE over the global count.
        // `ddp`: the mean of the micro-batches' means, each over its own count (a micro-batch
        // without a target adds nothing and still counts as a device, as a device's zero
        // gradient counts in DDP's average).
        let mut total_loss = Tensor::zeros([], (Kind::Float, self.trainer.device));
        for start in (0..batch.idx.len()).step_by(self.micro) {
            let len = self.micro.min(batch.idx.len() - start) as i64;
            let part = |t: &Tensor| self.on_device(&t.narrow(0, start as i64, len));
            let (tokens, labels) = (part(&batch.tokens), part(&batch.labels));
            let divisor = match cfg.accumulation {
                Accumulation::Tokens => count as f64,
                Accumulation::Ddp => {
                    let own = mm_models::objective_targets(&batch.labels.narrow(0, start as i64, len), model.objective())
                        .ne(IGNORE)
                        .sum(Kind::Int64)
                        .int64_value(&[]);
                    if own == 0 {
                        continue;
                    }
                    (own as u64 * cfg.accumulate) as f64
                }
            };
            let (l, y) = objective_pairs(&forward(model, &tokens, true, cfg.precision), &labels, model.objective());
            let sum = l.cross_entropy_loss::<Tensor>(&y, None, tch::Reduction::Sum, IGNORE, 0.0) / divisor;
            stepper.backward(&sum);
            total_loss += sum.detach();
        }
        Ok(total_loss)
    }

    fn after_step(&mut self, done: u64, loss: &Tensor, norm: Option<&Tensor>, lr: f64) -> Result<Flow, ModelError> {
        let cfg = self.trainer.cfg;
        let empty = std::mem::take(&mut self.empty_step);
        if !empty {
            self.window_sum += loss.to_kind(Kind::Double);
            self.window_n += 1;
        }
        let total = self.total;
        // The paper's framing: a wall-clock budget (all of the run's time) on top of the steps.
        let out_of_time = cfg.max_minutes.is_some_and(|m| self.started.elapsed().as_secs_f64() >= m * 60.0) && done < total;
        let last = done == total || out_of_time;
        let logged = (done - 1).is_multiple_of(self.log_every) || last;
        let eval_due = done.is_multiple_of(cfg.eval_every) || last;
        let mut loss_v = f64::NAN;
        if (logged || eval_due) && !empty {
            loss_v = loss.double_value(&[]);
            // A NaN or infinite loss fails the run (under fp16-amp, overflowing gradients skip a
            // step instead, as GradScaler does; that is no failure). Losses between logged steps
            // show up in the window's sum.
            let window = self.window_sum.double_value(&[]);
            if !loss_v.is_finite() || !window.is_finite() {
                let last = self.out.steps_metrics.iter().rev().find(|m| m.loss.is_finite());
                let log_every = self.log_every;
                let (what, at, step) = if loss_v.is_finite() {
                    let first = done + 1 - self.window_n;
                    (window, format!("at step {first}..{done} (losses are read every {log_every} steps)"), first)
                } else {
                    (loss_v, format!("at step {done}"), done)
                };
                return Err(ModelError::Diverged {
                    step,
                    message: format!(
                        "training diverged: the loss is {what} {at}; the last finite loss logged was {}; lower train.lr, raise \
                         train.warmup_steps or keep train.grad_clip",
                        last.map_or("none".to_string(), |m| format!("{:.4} at step {}", m.loss, m.step))
                    ),
                });
            }
        }
        if logged {
            let m = StepMetric {
                step: done,
                loss: loss_v,
                lr,
                grad_norm: norm.map_or(f64::NAN, |n| n.double_value(&[])), // NaN: skipped (fp16-amp)
                tokens: self.tokens_seen,
                elapsed_s: self.started.elapsed().as_secs_f64(),
            };
            let rate = self.tokens_seen as f64 / (m.elapsed_s - self.out.overhead_s).max(1e-9);
            self.events.log(done, &[("train/loss", m.loss), ("train/lr", m.lr), ("train/grad_norm", m.grad_norm), ("train/tokens_per_s", rate)]);
            self.out.steps_metrics.push(m);
        }
        let overhead = Instant::now();
        if eval_due {
            self.last_eval = self.evaluate()?;
            let window_sum = self.window_sum.double_value(&[]);
            let mean = window_sum / self.window_n as f64;
            self.out.eval_metrics.push(EvalMetric { step: done, eval_loss: self.last_eval, train_loss: mean });
            self.events.log(done, &[("eval/loss", self.last_eval), ("train/loss_since_last_eval", mean)]);
            self.out.train_loss = mean;
            self.window_sum = Tensor::zeros([], (Kind::Double, self.trainer.device));
            self.window_n = 0;
        }
        if cfg.checkpoint_every.is_some_and(|k| done.is_multiple_of(k) && !last) {
            let name = format!("checkpoints/step-{done:08}.safetensors");
            self.model.remask();
            save_checkpoint(self.vs, &self.trainer.run_dir.file(&name))?;
            self.out.checkpoints.push((done, name));
        }
        self.out.overhead_s += overhead.elapsed().as_secs_f64();
        let secs = (self.started.elapsed().as_secs_f64() - self.out.overhead_s).max(1e-9);
        if logged {
            self.bar.set_message(format!("loss {loss_v:.3} eval {:.3} {:.0} tok/s", self.last_eval, self.tokens_seen as f64 / secs));
        }
        self.bar.inc(1);
        if out_of_time {
            self.out.wall_clock_stop = true;
            return Ok(Flow::Stop);
        }
        Ok(Flow::Continue)
    }

    fn state(&self, _done: u64) -> ResumeState {
        ResumeState {
            order: self.order,
            tokens_seen: self.tokens_seen,
            window_sum: self.window_sum.double_value(&[]),
            window_n: self.window_n,
            last_eval: self.last_eval,
            steps_metrics: self.out.steps_metrics.clone(),
            eval_metrics: self.out.eval_metrics.clone(),
            checkpoints: self.out.checkpoints.clone(),
            elapsed_s: self.started.elapsed().as_secs_f64(),
            overhead_s: self.out.overhead_s,
            empty_batches: self.out.empty_batches,
        }
    }

    fn overhead(&mut self, seconds: f64) {
        self.out.overhead_s += seconds;
    }
}

/// What `data_order.json` records of a run: the rule, the generator's seed, and the row ids of
/// every step when they number at most [`ORDER_IDS_MAX`] (else the rule and seed say them).
pub(super) fn data_order(n: u64, global: usize, steps: u64, seed: u64, shuffle: bool) -> Result<serde_json::Value, crate::data::DataError> {
    let ids = steps.saturating_mul(global as u64) <= ORDER_IDS_MAX;
    let rows: Option<Vec<Vec<i64>>> = match ids {
        true => {
            let mut order = Order::new(n, global, seed, shuffle)?;
            Some((0..steps).map(|_| order.next_batch()).collect())
        }
        false => None,
    };
    Ok(serde_json::json!({
        "rule": if shuffle {
            "epochs of all training rows, each shuffled by rand 0.9's SliceRandom::shuffle (Fisher-Yates) with a ChaCha8Rng \
             (rand_chacha 0.9) from seed_from_u64(generator_seed), drawn one global batch at a time; a batch may span two epochs"
        } else {
            "data.shuffle = false: the training rows in order (row i = the i-th training document or window), epoch after \
             epoch, one global batch at a time; a batch may span two epochs"
        },
        "shuffle": shuffle,
        "generator_seed": seed ^ super::loader::ORDER_SEED_XOR,
        "rows": n,
        "global_batch": global,
        "steps": steps,
        "row_ids_per_step": rows,
    }))
}

/// Row ids are written per step up to this many (2 MB of JSON or so).
pub(super) const ORDER_IDS_MAX: u64 = 250_000;
