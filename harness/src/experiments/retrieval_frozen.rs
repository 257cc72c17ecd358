//! Frozen-embedding retrieval, PAPER.md F.1 (`train_retrieval.py`): a retrieval mixer over n
//! slots, slot 0 the query's embedding and slots 1..n-1 candidate passages (n - 2 drawn without
//! replacement from the split, the match at a random slot), re-drawn every epoch; CE over the
//! n - 1 candidate scores (chance: ln(n - 1)). Train CE per epoch; test CE and top-1 on fixed
//! draws of the test split, so epochs compare.
use super::embed::Embeddings;
use super::sampling::draw_many;
use super::{Experiment, RunContext, RunOutput};
use crate::suite::kind::{need_upstream, section_or_default};
use crate::suite::{DeviceChoice, ExperimentKind, FrozenConfig, Invalid, KindRules, Precision, RunConfig};
use crate::train::{with_precision, AdamW, Flow, Hooks, Schedule, Stepper, TrainLoop};
use anyhow::{ensure, Context, Result};
use mm_models::retrieval::{retrieval_loss, RetrievalConfig, RetrievalMixer};
use mm_models::ModelError;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use tch::{nn, Device, Kind, Tensor};

/// Draw streams: the test draws are fixed, each epoch's training draws its own.
const TEST_DRAWS: u64 = 1;
const TRAIN_DRAWS: u64 = 1 << 32;

#[derive(Debug, Clone, Serialize)]
pub struct EpochRow {
    pub epoch: u64,
    pub train_ce: f64,
    /// Percent of training queries of the epoch whose match scored highest (before each step).
    pub train_top1: f64,
    pub test_ce: f64,
    /// Percent of test queries whose match scored highest.
    pub test_top1: f64,
}

pub struct Outcome {
    pub epochs: Vec<EpochRow>,
    pub params: u64,
    pub steps: u64,
}

/// Slots for a batch: the queries' embeddings, then each query's candidates' passages.
/// `rows` `[B]`, `cand` `[B, k]` -> `[B, k + 1, d]`.
fn slots(queries: &Tensor, passages: &Tensor, rows: &Tensor, cand: &Tensor) -> Tensor {
    let (b, k) = cand.size2().expect("[B, k]");
    let d = passages.size()[1];
    let q = queries.index_select(0, rows).unsqueeze(1); // [B, 1, d]
    let c = passages.index_select(0, &cand.view([-1])).view([b, k, d]); // [B, k, d]
    Tensor::cat(&[q, c], 1)
}

/// Mean CE and top-1 (%) over fixed draws of a split.
#[allow(clippy::too_many_arguments)]
fn evaluate(model: &RetrievalMixer, q: &Tensor, p: &Tensor, cand: &Tensor, target: &Tensor, batch: i64, double_softmax: bool, precision: Precision) -> (f64, f64) {
    tch::no_grad(|| {
        let n = target.size()[0];
        let (mut ce, mut correct) = (0f64, 0i64);
        let mut start = 0;
        while start < n {
            let len = batch.min(n - start);
            let rows = Tensor::arange_start(start, start + len, (Kind::Int64, q.device()));
            let scores = with_precision(precision, || model.forward(&slots(q, p, &rows, &cand.narrow(0, start, len)))).to_kind(Kind::Float);
            let t = target.narrow(0, start, len);
            ce += retrieval_loss(&scores, &t, double_softmax).double_value(&[]) * len as f64;
            correct += scores.argmax(1, false).eq_tensor(&t).sum(Kind::Int64).int64_value(&[]);
            start += len;
        }
        (ce / n as f64, 100.0 * correct as f64 / n as f64)
    })
}

/// Trains a retrieval mixer on `emb`'s train split and scores its test split every epoch.
/// `events`: where the epochs' curves go for TensorBoard (the run folder; none in tests).
pub fn fit(emb: &Embeddings, fc: &FrozenConfig, seed: u64, device: Device, bar: &indicatif::ProgressBar, events: Option<&std::path::Path>) -> Result<Outcome> {
    let (tq, tp) = emb.train.as_ref().context(
        "the embeddings have no train split (a file with only test pairs can be evaluated, not trained on)",
    )?;
    let (eq, ep) = &emb.test;
    let (n_train, n_test) = (tq.size()[0], eq.size()[0]);
    let k = fc.n - 1; // candidates
    ensure!(
        k <= n_train && k <= n_test,
        "retrieval_frozen.n = {} needs {k} distinct passages per query, but the splits hold {n_train} train and {n_test} test pairs; \
         lower n or use more pairs",
        fc.n
    );
    let (tq, tp, eq, ep) = (tq.to_device(device), tp.to_device(device), eq.to_device(device), ep.to_device(device));
    tch::manual_seed(seed as i64);
    let vs = nn::VarStore::new(device);
    let cfg = RetrievalConfig { d_model: emb.dim(), depth: fc.depth, n_slots: fc.n };
    let params = cfg.num_params();
    let model = RetrievalMixer::new(&vs.root(), cfg);
    // The queries an epoch trains on and the test scores (the first of each order; all unset).
    let cap = |n: i64| fc.queries.map_or(n, |q| n.min(q as i64));
    let (epoch_queries, scored) = (cap(n_train), cap(n_test));
    let steps_per_epoch = (epoch_queries as u64).div_ceil(fc.batch_size as u64);
    let total = fc.epochs * steps_per_epoch;
    let mut stepper = Stepper::new(&vs, AdamW::default(), fc.grad_clip, fc.precision)?;

    let test_ids: Vec<usize> = (0..n_test as usize).collect();
    let (flat, targets) = draw_many(seed, TEST_DRAWS, &test_ids, n_test as usize, k as usize);
    let test_cand = Tensor::from_slice(&flat).view([n_test, k]).narrow(0, 0, scored).to_device(device);
    let test_target = Tensor::from_slice(&targets).narrow(0, 0, scored).to_device(device);

    let mut hooks = FrozenSteps {
        model: &model,
        fc,
        seed,
        device,
        train: (&tq, &tp),
        test: (&eq, &ep, &test_cand, &test_target),
        n_train: n_train as usize,
        epoch_queries: epoch_queries as usize,
        k: k as usize,
        steps_per_epoch,
        rng: ChaCha8Rng::seed_from_u64(seed ^ 0xf0_2e_4e),
        epoch: Vec::new(),
        draws: (Vec::new(), Vec::new()),
        sums: (0.0, 0, 0),
        batch: 0,
        rows: Vec::new(),
        bar,
        events: events.map(|d| crate::tensorboard::RunEvents::open(d, None)).unwrap_or_default(),
    };
    // No dropout in the retrieval mixer (no per-step seed) and runs short enough to need no
    // resumable state.
    let mut lp = TrainLoop { steps: total, schedule: Schedule { lr: fc.lr, warmup: fc.warmup_steps, total }, seed: None, resume: None };
    let done = lp.run(&mut hooks, &vs, &mut stepper)?;
    Ok(Outcome { epochs: hooks.rows, params, steps: done.applied })
}

/// The frozen-embedding retrieval model's training as hooks of the one training loop: an epoch
/// is every train query once in shuffled order, its candidates drawn anew; after each epoch,
/// the test split on its fixed draws.
struct FrozenSteps<'a> {
    model: &'a RetrievalMixer,
    fc: &'a FrozenConfig,
    seed: u64,
    device: Device,
    train: (&'a Tensor, &'a Tensor),
    test: (&'a Tensor, &'a Tensor, &'a Tensor, &'a Tensor),
    n_train: usize,
    /// Train queries an epoch visits (`queries`, else `n_train`).
    epoch_queries: usize,
    k: usize,
    steps_per_epoch: u64,
    rng: ChaCha8Rng,
    /// This epoch's order of the train queries, and its candidates and targets.
    epoch: Vec<usize>,
    draws: (Vec<i64>, Vec<i64>),
    /// This epoch's summed loss, queries and correct top-1.
    sums: (f64, i64, i64),
    /// The size of the step's batch (the last of an epoch may be smaller).
    batch: i64,
    rows: Vec<EpochRow>,
    bar: &'a indicatif::ProgressBar,
    /// The run folder's TensorBoard event file: one point per epoch.
    events: crate::tensorboard::RunEvents,
}

impl Hooks for FrozenSteps<'_> {
    type State = ();

    fn start(&mut self, _: Option<(u64, ())>) -> Result<(), ModelError> {
        Ok(())
    }

    fn forward_backward(&mut self, step: u64, stepper: &mut Stepper) -> Result<Tensor, ModelError> {
        let (b, bs) = ((step % self.steps_per_epoch) as usize, self.fc.batch_size as usize);
        if b == 0 {
            let number = step / self.steps_per_epoch + 1;
            self.epoch = (0..self.n_train).collect();
            self.epoch.shuffle(&mut self.rng);
            self.draws = draw_many(self.seed, TRAIN_DRAWS + number, &self.epoch, self.n_train, self.k);
            self.sums = (0.0, 0, 0);
        }
        let chunk = &self.epoch[b * bs..((b + 1) * bs).min(self.epoch_queries)];
        let (len, k, at) = (chunk.len() as i64, self.k as i64, b * bs);
        let ids: Vec<i64> = chunk.iter().map(|&i| i as i64).collect();
        let cand = Tensor::from_slice(&self.draws.0[at * self.k..(at + chunk.len()) * self.k]).view([len, k]).to_device(self.device);
        let target = Tensor::from_slice(&self.draws.1[at..at + chunk.len()]).to_device(self.device);
        let rows = Tensor::from_slice(&ids).to_device(self.device);
        let scores = with_precision(self.fc.precision, || self.model.forward(&slots(self.train.0, self.train.1, &rows, &cand))).to_kind(Kind::Float);
        let loss = retrieval_loss(&scores, &target, self.fc.double_softmax);
        stepper.backward(&loss);
        self.sums.1 += len;
        self.sums.2 += scores.argmax(1, false).eq_tensor(&target).sum(Kind::Int64).int64_value(&[]);
        self.batch = len;
        Ok(loss.detach())
    }

    fn after_step(&mut self, done: u64, loss: &Tensor, _norm: Option<&Tensor>, _lr: f64) -> Result<Flow, ModelError> {
        self.sums.0 += loss.double_value(&[]) * self.batch as f64;
        if done.is_multiple_of(self.steps_per_epoch) {
            let epoch = done / self.steps_per_epoch;
            let (eq, ep, cand, target) = self.test;
            let (test_ce, test_top1) = evaluate(self.model, eq, ep, cand, target, self.fc.batch_size, self.fc.double_softmax, self.fc.precision);
            let (sum, count, correct) = self.sums;
            let row = EpochRow { epoch, train_ce: sum / count as f64, train_top1: 100.0 * correct as f64 / count as f64, test_ce, test_top1 };
            self.events.log(done, &[("train/ce", row.train_ce), ("train/top1_percent", row.train_top1), ("eval/ce", row.test_ce), ("eval/top1_percent", row.test_top1)]);
            self.rows.push(row);
            self.bar.set_message(format!("train CE {:.3} test CE {test_ce:.3} top-1 {test_top1:.1}%", sum / count as f64));
            self.bar.inc(1);
        }
        Ok(Flow::Continue)
    }

    fn state(&self, _: u64) {}
}

pub struct RetrievalFrozen;

impl KindRules for RetrievalFrozen {
    fn kind(&self) -> ExperimentKind {
        ExperimentKind::RetrievalFrozen
    }

    fn sections(&self) -> &'static [&'static str] {
        &["retrieval_frozen", "device", "cpu_kernels"]
    }

    fn producers(&self) -> &'static [ExperimentKind] {
        &[ExperimentKind::Embed]
    }

    fn validate(&self, c: &mut RunConfig) -> Result<(), Invalid> {
        need_upstream(c)?;
        let r = section_or_default(&mut c.retrieval_frozen, "retrieval_frozen")?;
        if r.n < 3 {
            return Err(Invalid::new("retrieval_frozen.n", format!("needs the query slot and at least 2 candidates, got n = {}", r.n)));
        }
        if r.depth == 0 || r.epochs == 0 || r.batch_size < 1 || !(r.lr > 0.0 && r.lr.is_finite()) {
            return Err(Invalid::new("retrieval_frozen", "depth, epochs, batch_size and lr must be positive"));
        }
        if r.queries == Some(0) {
            return Err(Invalid::new("retrieval_frozen.queries", "0 trains on nothing: give a positive count, or leave it out for every query"));
        }
        if r.precision == Precision::Fp16Amp && c.device == DeviceChoice::Cpu {
            return Err(Invalid::new("retrieval_frozen.precision", "\"fp16-amp\" needs device = \"cuda\""));
        }
        Ok(())
    }

    /// One epoch of two batches, at the paper's slot count and depth: the splits hold at least
    /// n - 1 pairs each (the candidates), but the epoch trains on two batches of them and the
    /// test scores as many.
    fn at_shapes(&self, c: &mut RunConfig) {
        if let Some(f) = c.retrieval_frozen.as_mut() {
            f.epochs = 1;
            f.batch_size = (crate::suite::shapes::TRAIN_PAIRS / 2) as i64;
            f.queries = Some(crate::suite::shapes::TRAIN_PAIRS as u64);
            f.warmup_steps = 0;
            f.precision = crate::suite::Precision::Fp32;
        }
    }
}

impl Experiment for RetrievalFrozen {
    /// The retrieval mixer's training step: a flat mixer of the embeddings' width and the
    /// model's depth over n slots (the query and its n - 1 candidates), a batch of queries a
    /// step, with a one-wide head instead of a vocabulary. The default (the producer model's
    /// weights) was 2.7x under the shapes pass's peak at n = 128.
    fn memory_estimate(&self, c: &RunConfig) -> Option<(u64, String)> {
        let f = c.retrieval_frozen.as_ref()?;
        let d = c.model.as_ref()?.d_model();
        let twin = mm_models::ModelSpec::MaskedMixer(mm_models::MixerSpec::flat(d, f.depth));
        let step = mm_models::StepShape::clm(f.batch_size, f.n);
        Some(super::step_estimate(c, twin.training_memory(1, step), "a retrieval-model training step", step))
    }

    fn run(&self, ctx: &RunContext) -> Result<RunOutput> {
        run(ctx)
    }

    fn trains_in(&self) -> Option<&'static str> {
        Some("retrieval_frozen.precision")
    }

    fn report(&self) -> Option<&'static dyn crate::report::Section> {
        Some(&crate::report::retrieval::FrozenRetrieval)
    }
}


fn run(ctx: &RunContext) -> Result<RunOutput> {
    let cfg = &ctx.run.config;
    let fc = cfg.retrieval_frozen.as_ref().expect("validated: retrieval_frozen has its section");
    let mut out = RunOutput::default();
    let emb = super::embed::from_producer(ctx, &mut out)?;
    let bar = super::embed::progress(ctx, fc.epochs, "epochs {msg}");
    let o = fit(&emb, fc, cfg.seed, ctx.device, &bar, Some(&ctx.dir.path))?;
    bar.finish_and_clear();
    ctx.dir.write_json("metrics_epochs.json", &o.epochs)?;
    let last = o.epochs.last().expect("epochs >= 1");
    let best = o.epochs.iter().map(|r| r.test_ce).fold(f64::INFINITY, f64::min);
    let s = &mut out.summary;
    s.insert("retrieval_params".into(), o.params.into());
    s.insert("steps".into(), o.steps.into());
    s.insert("train_ce".into(), last.train_ce.into());
    s.insert("test_ce".into(), last.test_ce.into());
    s.insert("best_test_ce".into(), best.into());
    s.insert("test_top1".into(), last.test_top1.into());
    s.insert("train_top1".into(), last.train_top1.into());
    s.insert("chance_ce".into(), ((fc.n - 1) as f64).ln().into());
    out.execution.insert("device".into(), crate::device::describe(ctx.device));
    out.execution.insert("candidates".into(), super::retrieval_eval::SAMPLING.into());
    out.execution.insert(
        "retrieval_loss".into(),
        if fc.double_softmax { "softmax, then cross entropy (the v1 code, I.9)" } else { "cross entropy over the raw candidate scores" }.into(),
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(n: i64, epochs: u64) -> FrozenConfig {
        toml::from_str(&format!("n = {n}\ndepth = 2\nepochs = {epochs}\nlr = 3e-3\nwarmup_steps = 5\nbatch_size = 32")).unwrap()
    }

    #[test]
    fn uninformative_scores_give_chance_ce() {
        // Equal scores over n - 1 candidates: CE = ln(n - 1), the "no learning" values of F.1.
        for (n, want) in [(32i64, 3.434), (1024, 6.931)] {
            let scores = Tensor::zeros([4, n - 1], (Kind::Float, Device::Cpu));
            let t = Tensor::from_slice(&[0i64, 5, 9, 30]);
            let ce = retrieval_loss(&scores, &t, false).double_value(&[]);
            assert!((ce - want).abs() < 1e-3, "n = {n}: {ce}");
        }
    }

    #[test]
    fn learns_from_informative_embeddings_and_not_from_noise() {
        tch::manual_seed(0);
        let (n_train, n_test, d) = (256i64, 96, 16);
        let opts = (Kind::Float, Device::Cpu);
        let informative = |n: i64| {
            let p = Tensor::randn([n, d], opts);
            (&p + Tensor::randn([n, d], opts) * 0.3, p)
        };
        let good = Embeddings { train: Some(informative(n_train)), test: informative(n_test) };
        let noise = Embeddings {
            train: Some((Tensor::randn([n_train, d], opts), Tensor::randn([n_train, d], opts))),
            test: (Tensor::randn([n_test, d], opts), Tensor::randn([n_test, d], opts)),
        };
        let bar = indicatif::ProgressBar::hidden();
        let chance = 7f64.ln(); // n = 8
        let g = fit(&good, &cfg(8, 25), 0, Device::Cpu, &bar, None).unwrap();
        let last = g.epochs.last().unwrap();
        assert!(last.test_ce < 0.5 * chance && last.test_top1 > 60.0, "{:?}", last);
        let r = fit(&noise, &cfg(8, 25), 0, Device::Cpu, &bar, None).unwrap();
        let last = r.epochs.last().unwrap();
        assert!(last.test_ce > 0.9 * chance && last.test_top1 < 35.0, "noise cannot generalise: {:?}", last);
        // (Same seed, same curve is checked end to end in tests/retrieval.rs, one process per
        // run: threads of one test binary share libtorch's global RNG.)
    }

    #[test]
    fn queries_caps_the_epoch_and_the_test_not_the_candidates() {
        tch::manual_seed(0);
        let opts = (Kind::Float, Device::Cpu);
        let e = Embeddings {
            train: Some((Tensor::randn([200, 8], opts), Tensor::randn([200, 8], opts))),
            test: (Tensor::randn([150, 8], opts), Tensor::randn([150, 8], opts)),
        };
        let bar = indicatif::ProgressBar::hidden();
        // n = 128: 127 candidates from splits of 200 and 150; two batches of 32 an epoch.
        let mut fc = cfg(128, 3);
        fc.queries = Some(64);
        let capped = fit(&e, &fc, 0, Device::Cpu, &bar, None).unwrap();
        assert_eq!((capped.steps, capped.epochs.len()), (6, 3));
        // Top-1 is a share of the 64 scored test queries.
        for row in &capped.epochs {
            assert!((row.test_top1 * 64.0 / 100.0 - (row.test_top1 * 64.0 / 100.0).round()).abs() < 1e-9, "{row:?}");
        }
        fc.queries = None;
        assert_eq!(fit(&e, &fc, 0, Device::Cpu, &bar, None).unwrap().steps, 3 * 7);
    }

    #[test]
    fn too_few_pairs_is_an_error_that_says_what_to_change() {
        let opts = (Kind::Float, Device::Cpu);
        let e = Embeddings {
            train: Some((Tensor::randn([10, 4], opts), Tensor::randn([10, 4], opts))),
            test: (Tensor::randn([10, 4], opts), Tensor::randn([10, 4], opts)),
        };
        let err = fit(&e, &cfg(32, 1), 0, Device::Cpu, &indicatif::ProgressBar::hidden(), None).err().unwrap().to_string();
        assert!(err.contains("retrieval_frozen.n = 32") && err.contains("lower n"), "{err}");
    }
}
