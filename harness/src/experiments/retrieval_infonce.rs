//! InfoNCE tuning of the embedding model itself, PAPER.md F.2 (`infonce_retrieval.py`): each
//! group is one query and group - 1 passages of the train split, the match at a random slot and
//! the rest drawn without replacement; the loss is the cross entropy of cos(q, c) / tau over the
//! candidates. One group per train pair per epoch, `groups_per_step` groups per optimizer step
//! (the paper's 4 GPUs gave 4), AdamW with warm-up and linear decay, the CLM trainer's precision
//! modes. Starts from a CLM run (`from`), or from a fresh init (the paper's random-init
//! baseline). Writes `model.safetensors` and `tokenizer.json`, so `embed` can consume it.
use super::embed::{load_model, progress, Embedder};
use super::sampling::draw_many;
use super::{Experiment, RunContext, RunOutput};
use crate::data::pairs;
use crate::suite::kind::{check_pairs, need_model_data, section_or_default};
use crate::suite::{DeviceChoice, ExperimentKind, InfonceConfig, Invalid, KindRules, Precision, RunConfig};
use crate::train::{save_checkpoint, with_precision, AdamW, Flow, Hooks, Schedule, Stepper, TrainLoop};
use anyhow::{ensure, Context, Result};
use indicatif::ProgressBar;
use mm_models::retrieval::info_nce_loss;
use mm_models::ModelError;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

const TEST_DRAWS: u64 = 2;
const TRAIN_DRAWS: u64 = 2 << 32;
/// Test groups scored per evaluation (the first ones; every one when there are fewer).
const EVAL_GROUPS: usize = 256;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepRow {
    pub step: u64,
    pub loss: f64,
    pub lr: f64,
}

/// What the InfoNCE loop carries between steps, as its resumable state holds it (beside the
/// loop's step and applied-step counts).
#[derive(Serialize, Deserialize)]
struct InfonceState {
    /// The epoch of the last step done, and where the data-order RNG stood before its shuffle:
    /// a resumed run redraws that epoch's order and goes on from there.
    epoch: u64,
    rng_epoch_pos: u128,
    window: (f64, u64),
    steps: Vec<StepRow>,
    evals: Vec<EvalRow>,
    elapsed_s: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalRow {
    pub step: u64,
    /// Mean InfoNCE loss over fixed test groups.
    pub test_loss: f64,
    /// Percent of those groups whose match had the highest cosine.
    pub test_top1: f64,
}

/// One group per query: `[G * group, n_ctx]` token rows, each query followed by its candidates.
fn groups(q_tokens: &Tensor, p_tokens: &Tensor, queries: &[usize], cand: &[i64], group: i64) -> Tensor {
    let k = (group - 1) as usize;
    let mut rows = Vec::with_capacity(queries.len() * group as usize);
    for (g, &i) in queries.iter().enumerate() {
        rows.push(q_tokens.get(i as i64).unsqueeze(0));
        rows.push(p_tokens.index_select(0, &Tensor::from_slice(&cand[g * k..(g + 1) * k])));
    }
    Tensor::cat(&rows, 0)
}

/// One epoch's data: every train query once, in shuffled order, with its drawn candidates.
struct Epoch {
    number: u64,
    /// Where the data-order RNG stood before this epoch's shuffle.
    rng_pos: u128,
    order: Vec<usize>,
    cand: Vec<i64>,
    targets: Vec<i64>,
}

/// InfoNCE tuning as hooks of the one training loop (`train::TrainLoop`).
struct InfonceSteps<'a, L: Fn(&Tensor, &[i64], bool) -> Tensor, E: Fn(u64) -> EvalRow> {
    group_loss: L,
    evaluate: &'a E,
    tq: &'a Tensor,
    tp: &'a Tensor,
    n_train: usize,
    k: usize,
    per_step: usize,
    steps_per_epoch: u64,
    total: u64,
    group: i64,
    eval_every: u64,
    seed: u64,
    rng: ChaCha8Rng,
    epoch: Option<Epoch>,
    steps: Vec<StepRow>,
    evals: Vec<EvalRow>,
    window: (f64, u64),
    started: std::time::Instant,
    bar: ProgressBar,
    /// The run folder, and its TensorBoard event file.
    dir: &'a std::path::Path,
    events: crate::tensorboard::RunEvents,
}

impl<L: Fn(&Tensor, &[i64], bool) -> Tensor, E: Fn(u64) -> EvalRow> InfonceSteps<'_, L, E> {
    fn log_eval(&mut self, row: &EvalRow) {
        self.events.log(row.step, &[("eval/infonce_loss", row.test_loss), ("eval/top1_percent", row.test_top1)]);
    }

    /// Epoch `number`'s shuffle (from the RNG where it stands) and its candidate draws.
    fn shuffle(&mut self, number: u64) {
        let rng_pos = self.rng.get_word_pos();
        let mut order: Vec<usize> = (0..self.n_train).collect();
        order.shuffle(&mut self.rng);
        let (cand, targets) = draw_many(self.seed, TRAIN_DRAWS + number, &order, self.n_train, self.k);
        self.epoch = Some(Epoch { number, rng_pos, order, cand, targets });
    }
}

impl<L: Fn(&Tensor, &[i64], bool) -> Tensor, E: Fn(u64) -> EvalRow> Hooks for InfonceSteps<'_, L, E> {
    type State = InfonceState;

    fn start(&mut self, resumed: Option<(u64, InfonceState)>) -> Result<(), ModelError> {
        match resumed {
            Some((step, s)) => {
                self.rng.set_word_pos(s.rng_epoch_pos);
                self.shuffle(s.epoch);
                (self.steps, self.evals, self.window) = (s.steps, s.evals, s.window);
                self.started = self.started.checked_sub(std::time::Duration::from_secs_f64(s.elapsed_s)).unwrap_or(self.started);
                self.bar.set_position(step);
                self.events = crate::tensorboard::RunEvents::open(self.dir, Some(step));
            }
            None => {
                let first = (self.evaluate)(0);
                self.events = crate::tensorboard::RunEvents::open(self.dir, None);
                self.log_eval(&first);
                self.evals = vec![first];
            }
        }
        Ok(())
    }

    fn forward_backward(&mut self, step: u64, stepper: &mut Stepper) -> Result<Tensor, ModelError> {
        let number = step / self.steps_per_epoch + 1;
        if self.epoch.as_ref().is_none_or(|e| e.number != number) {
            self.shuffle(number);
        }
        let e = self.epoch.as_ref().expect("shuffled");
        let c = (step % self.steps_per_epoch) as usize;
        let at = c * self.per_step;
        let chunk = &e.order[at..(at + self.per_step).min(self.n_train)];
        let tokens = groups(self.tq, self.tp, chunk, &e.cand[at * self.k..(at + chunk.len()) * self.k], self.group);
        let loss = (self.group_loss)(&tokens, &e.targets[at..at + chunk.len()], true);
        stepper.backward(&loss);
        Ok(loss.detach())
    }

    fn after_step(&mut self, done: u64, loss: &Tensor, norm: Option<&Tensor>, lr: f64) -> Result<Flow, ModelError> {
        let v = loss.double_value(&[]);
        self.window = (self.window.0 + v, self.window.1 + 1);
        if done.is_multiple_of((self.total / 200).max(1)) || done == self.total {
            self.steps.push(StepRow { step: done, loss: v, lr });
            let grad_norm = norm.map_or(f64::NAN, |n| n.double_value(&[]));
            self.events.log(done, &[("train/loss", v), ("train/lr", lr), ("train/grad_norm", grad_norm)]);
        }
        if done.is_multiple_of(self.eval_every) && done != self.total {
            let row = (self.evaluate)(done);
            self.log_eval(&row);
            self.evals.push(row);
        }
        self.bar.set_message(format!("loss {v:.3}"));
        self.bar.inc(1);
        Ok(Flow::Continue)
    }

    fn state(&self, _done: u64) -> InfonceState {
        let e = self.epoch.as_ref().expect("a step was done");
        InfonceState {
            epoch: e.number,
            rng_epoch_pos: e.rng_pos,
            window: self.window,
            steps: self.steps.clone(),
            evals: self.evals.clone(),
            elapsed_s: self.started.elapsed().as_secs_f64(),
        }
    }
}

pub struct RetrievalInfonce;

impl KindRules for RetrievalInfonce {
    fn kind(&self) -> ExperimentKind {
        ExperimentKind::RetrievalInfonce
    }

    fn sections(&self) -> &'static [&'static str] {
        &["model", "data", "pairs", "retrieval_infonce", "device", "cpu_kernels"]
    }

    fn producers(&self) -> &'static [ExperimentKind] {
        &[ExperimentKind::Clm]
    }

    fn validate(&self, c: &mut RunConfig) -> Result<(), Invalid> {
        need_model_data(c)?;
        check_pairs(c)?;
        let r = section_or_default(&mut c.retrieval_infonce, "retrieval_infonce")?;
        if r.group < 3 {
            return Err(Invalid::new("retrieval_infonce.group", format!("needs a query and at least 2 passages, got {}", r.group)));
        }
        if !(r.tau > 0.0 && r.tau.is_finite()) || !(r.lr > 0.0 && r.lr.is_finite()) {
            return Err(Invalid::new("retrieval_infonce", "tau and lr must be positive numbers"));
        }
        if r.epochs == 0 || r.groups_per_step < 1 || r.eval_every == 0 || r.stop_at == Some(0) {
            return Err(Invalid::new("retrieval_infonce", "epochs, groups_per_step, eval_every and stop_at must be at least 1"));
        }
        if r.precision == Precision::Fp16Amp && c.device == DeviceChoice::Cpu {
            return Err(Invalid::new("retrieval_infonce.precision", "\"fp16-amp\" needs device = \"cuda\""));
        }
        if r.checkpoint.is_some() && c.upstream.is_some() {
            return Err(Invalid::new("retrieval_infonce.checkpoint", "starts from the producer's weights with `from`; give one of the two"));
        }
        Ok(())
    }

    /// Two steps of one group (of the paper's size) each, within one epoch's schedule (a group a
    /// training pair: an epoch of the shapes pairs is 64 steps, hours on a CPU), evaluated once,
    /// at the end.
    fn at_shapes(&self, c: &mut RunConfig) {
        if let Some(r) = c.retrieval_infonce.as_mut() {
            r.epochs = 1;
            r.stop_at = Some(crate::suite::shapes::STEPS);
            r.groups_per_step = 1;
            r.warmup_steps = 0;
            r.eval_every = crate::suite::shapes::STEPS;
            r.precision = crate::suite::Precision::Fp32;
        }
    }
}

impl Experiment for RetrievalInfonce {
    fn run(&self, ctx: &RunContext) -> Result<RunOutput> {
        run(ctx)
    }

    fn trains_in(&self) -> Option<&'static str> {
        Some("retrieval_infonce.precision")
    }

    /// fp32 weights, gradients and AdamW moments, and the logits of one group.
    fn memory_lower_bound(&self, c: &RunConfig) -> Option<(u64, String)> {
        super::training_memory(c, c.retrieval_infonce.as_ref()?.group as u64)
    }

    /// A training step over one group (its sequences are one batch, no LM head).
    fn memory_estimate(&self, c: &RunConfig) -> Option<(u64, String)> {
        let step = mm_models::StepShape { head: false, ..mm_models::StepShape::clm(c.retrieval_infonce.as_ref()?.group, c.data.as_ref()?.n_ctx) };
        super::training_estimate(c, step)
    }
}


/// The test split's fixed groups (the first `EVAL_GROUPS` queries, their candidates drawn once).
struct TestGroups<'a> {
    q: &'a Tensor,
    p: &'a Tensor,
    ids: Vec<usize>,
    /// Each group's candidates (`group - 1` a query) and the match's place among them.
    cand: Vec<i64>,
    target: Vec<i64>,
    /// Where the scores are (the model's device).
    device: tch::Device,
}

impl TestGroups<'_> {
    /// Mean InfoNCE loss and top-1 (%) of the groups, `groups_per_step` groups a batch.
    fn evaluate(&self, embedder: &Embedder, ic: &InfonceConfig, step: u64) -> EvalRow {
        let k = (ic.group - 1) as usize;
        tch::no_grad(|| {
            let (mut loss, mut correct) = (0f64, 0usize);
            for (c, chunk) in self.ids.chunks(ic.groups_per_step.max(1) as usize).enumerate() {
                let at = c * ic.groups_per_step.max(1) as usize;
                let tokens = groups(self.q, self.p, chunk, &self.cand[at * k..(at + chunk.len()) * k], ic.group);
                let target = &self.target[at..at + chunk.len()];
                let e = with_precision(ic.precision, || embedder.forward(&tokens, false)).to_kind(Kind::Float);
                let g = e.view([chunk.len() as i64, ic.group, -1]);
                let cos = Tensor::cosine_similarity(&g.narrow(1, 0, 1), &g.narrow(1, 1, ic.group - 1), -1, 1e-8);
                let t = Tensor::from_slice(target).to_device(self.device);
                loss += (&cos / ic.tau).cross_entropy_for_logits(&t).double_value(&[]) * chunk.len() as f64;
                correct += cos.argmax(1, false).eq_tensor(&t).sum(Kind::Int64).int64_value(&[]) as usize;
            }
            let n = self.ids.len() as f64;
            EvalRow { step, test_loss: loss / n, test_top1: 100.0 * correct as f64 / n }
        })
    }
}

fn run(ctx: &RunContext) -> Result<RunOutput> {
    let cfg = &ctx.run.config;
    let ic: &InfonceConfig = cfg.retrieval_infonce.as_ref().expect("validated: retrieval_infonce has its section");
    let mut out = RunOutput::default();
    out.execution.extend(super::execution_facts(cfg, ctx.device));
    let split = pairs::load(cfg.pairs.as_ref().expect("validated: infonce has pairs")).context("loading pairs")?;
    out.inputs.extend(&split.inputs);
    let (n_train, n_test) = (split.train.len(), split.test.len());
    let k = (ic.group - 1) as usize;
    ensure!(
        k <= n_train && k <= n_test,
        "retrieval_infonce.group = {} needs {k} distinct passages per group, but the splits hold {n_train} train and {n_test} test \
         pairs; lower group or use more pairs",
        ic.group
    );
    let (vs, model, tok) = load_model(ctx, ic.checkpoint.as_deref(), &mut out)?;
    let embedder = Embedder::for_run(ctx, model.as_ref(), &tok, ic.padding, ic.position);
    let texts = |ps: &[pairs::Pair], query: bool| -> Vec<String> {
        ps.iter().map(|p| if query { p.query.clone() } else { p.passage.clone() }).collect()
    };
    let (tq, tp) = (embedder.tokens(&texts(&split.train, true))?, embedder.tokens(&texts(&split.train, false))?);
    let (eq, ep) = (embedder.tokens(&texts(&split.test, true))?, embedder.tokens(&texts(&split.test, false))?);

    // Every group's loss, through the model, under the run's precision: `[G * group, t]` -> scalar.
    let group_loss = |tokens: &Tensor, cand_index: &[i64], train: bool| -> Tensor {
        let e = with_precision(ic.precision, || embedder.forward(tokens, train)).to_kind(Kind::Float); // [G * group, d]
        let d = e.size()[1];
        let target = Tensor::from_slice(cand_index).to_device(ctx.device);
        info_nce_loss(&e.view([-1, ic.group, d]), &target, ic.tau)
    };
    let eval_ids: Vec<usize> = (0..n_test.min(EVAL_GROUPS)).collect();
    let (cand, target) = draw_many(cfg.seed, TEST_DRAWS, &eval_ids, n_test, k);
    let test = TestGroups { q: &eq, p: &ep, ids: eval_ids, cand, target, device: ctx.device };
    let evaluate = |step: u64| test.evaluate(&embedder, ic, step);

    let per_step = ic.groups_per_step as usize;
    let steps_per_epoch = (n_train as u64).div_ceil(per_step as u64);
    let total = ic.epochs * steps_per_epoch;
    let mut stepper = Stepper::new(&vs, AdamW::default(), ic.grad_clip, ic.precision)?;
    let mut hooks = InfonceSteps {
        group_loss,
        evaluate: &evaluate,
        tq: &tq,
        tp: &tp,
        n_train,
        k,
        per_step,
        steps_per_epoch,
        total,
        group: ic.group,
        eval_every: ic.eval_every,
        seed: cfg.seed,
        rng: ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x1ace),
        epoch: None,
        steps: Vec::new(),
        evals: Vec::new(),
        window: (0.0, 0),
        started: std::time::Instant::now(),
        bar: progress(ctx, total, "steps {msg}"),
        dir: &ctx.dir.path,
        events: Default::default(),
    };
    // A killed run continues where its last resumable state left it, bit for bit.
    let mut lp = TrainLoop {
        steps: ic.stop_at.map_or(total, |s| s.min(total)),
        schedule: Schedule { lr: ic.lr, warmup: ic.warmup_steps, total },
        seed: Some(cfg.seed),
        resume: Some(crate::train::resume::Resume::new(ctx.dir, Some(ctx.resume))),
    };
    let step = lp.run(&mut hooks, &vs, &mut stepper)?.steps;
    hooks.bar.finish_and_clear();
    let InfonceSteps { mut evals, steps, window, started, mut events, .. } = hooks;
    let wall = started.elapsed().as_secs_f64();
    let last = evaluate(step);
    events.log(last.step, &[("eval/infonce_loss", last.test_loss), ("eval/top1_percent", last.test_top1)]);
    evals.push(last.clone());
    save_checkpoint(&vs, &ctx.dir.file("model.safetensors"))?;
    lp.finish()?;
    ctx.dir.write_json("metrics_steps.json", &steps)?;
    ctx.dir.write_json("metrics_infonce_eval.json", &evals)?;
    let s = &mut out.summary;
    s.insert("data".into(), split.label.into());
    s.insert("train_pairs".into(), n_train.into());
    s.insert("test_pairs".into(), n_test.into());
    s.insert("params".into(), cfg.model().num_params(cfg.data().vocab_size as i64, cfg.data().n_ctx).into());
    s.insert("steps".into(), step.into());
    s.insert("train_loss".into(), (window.0 / window.1.max(1) as f64).into());
    s.insert("infonce_test_loss".into(), last.test_loss.into());
    s.insert("infonce_test_loss_before".into(), evals[0].test_loss.into());
    s.insert("infonce_top1".into(), last.test_top1.into());
    s.insert("sequences_per_s".into(), ((step as usize * per_step * ic.group as usize) as f64 / wall.max(1e-9)).into());
    let start = match (&cfg.upstream, &ic.checkpoint) {
        (Some(_), _) => "clm",
        (None, Some(_)) => "checkpoint",
        (None, None) => "random init",
    };
    s.insert("start".into(), start.into());
    if stepper.skipped > 0 {
        out.execution.insert("amp_skipped_steps".into(), stepper.skipped.to_string());
    }
    out.execution.insert("candidates".into(), super::retrieval_eval::SAMPLING.replace("n - 2", "group - 2"));
    out.execution.insert(
        "infonce".into(),
        format!(
            "groups of {} (1 query + {k} passages), cosine / tau = {}, {} group(s) per step, {:?} at {:?}",
            ic.group,
            ic.tau,
            per_step,
            embedder.padding,
            ic.position
        )
        .to_lowercase(),
    );
    Ok(out)
}
