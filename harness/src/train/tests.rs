use super::*;
use crate::data::rows::MemoryRows;
use crate::data::Encoded;
use tch::Device;

#[test]
fn schedule_matches_hugging_face_linear() {
    assert_eq!(lr_factor(0, 10, 100), 0.0);
    assert_eq!(lr_factor(5, 10, 100), 0.5);
    assert_eq!(lr_factor(10, 10, 100), 1.0);
    assert_eq!(lr_factor(55, 10, 100), 0.5);
    assert_eq!(lr_factor(100, 10, 100), 0.0);
    assert_eq!(lr_factor(3, 0, 4), 0.25);
}

#[test]
fn clipping_matches_the_formula() {
    // grads: a -> 3, b -> [4, 0]; norm 5. With every gradient present the flat path clips;
    // with an unused parameter (no gradient) the per-tensor one does.
    for unused in [false, true] {
        let vs = nn::VarStore::new(Device::Cpu);
        let a = vs.root().var_copy("a", &Tensor::from_slice(&[3.0f32]));
        let b = vs.root().var_copy("b", &Tensor::from_slice(&[0.0f32, 0.0]));
        if unused {
            let _ = vs.root().var_copy("c", &Tensor::from_slice(&[1.0f32]));
        }
        let mut opt = AdamWState::new(&vs, AdamW::default());
        (&a * 3.0 + (&b * Tensor::from_slice(&[4.0f32, 0.0])).sum(Kind::Float)).sum(Kind::Float).backward();
        let norm = opt.clip(1.0).unwrap().double_value(&[]);
        assert!((norm - 5.0).abs() < 1e-6);
        let g = opt.grads();
        assert!((g[0].double_value(&[0]) - 3.0 / (5.0 + 1e-6)).abs() < 1e-6, "unused = {unused}");
        assert!((g[1].double_value(&[0]) - 4.0 / (5.0 + 1e-6)).abs() < 1e-6, "unused = {unused}");
        // Below the threshold nothing changes.
        opt.zero_grad();
        (&a * 3.0).sum(Kind::Float).backward();
        let _ = opt.clip(10.0);
        assert_eq!(opt.grads()[0].double_value(&[0]), 3.0);
    }
}

#[test]
fn accumulation_equals_a_larger_batch() {
    // Rows with different numbers of pads: a mean of micro-batch means would differ from the
    // global token mean, so this checks the normalisation too.
    tch::manual_seed(3);
    let (n, t, v) = (24i64, 12i64, 50i64);
    let tokens = Tensor::randint_low(3, v, [n, t], (Kind::Int64, Device::Cpu));
    let lens = Tensor::randint_low(3, t + 1, [n, 1], (Kind::Int64, Device::Cpu));
    let pad = Tensor::arange(t, (Kind::Int64, Device::Cpu)).unsqueeze(0).ge_tensor(&lens);
    let tokens = tokens.masked_fill(&pad, 2);
    let data: std::sync::Arc<dyn Rows> = std::sync::Arc::new(MemoryRows::from(&Encoded { labels: tokens.masked_fill(&pad, IGNORE), tokens }));
    let spec = mm_models::ModelSpec::MaskedMixer(mm_models::MixerSpec::flat(8, 1));
    // One initial state, copied into every run: tests share libtorch's global RNG across
    // threads, so reseeding would not promise the same init here.
    let init = nn::VarStore::new(Device::Cpu);
    let _ = spec.build(&init.root(), v, t).unwrap();
    let train = |batch: i64, accumulate: u64| {
        let dir = tempfile::tempdir().unwrap();
        let mut vs = nn::VarStore::new(Device::Cpu);
        let model = spec.build(&vs.root(), v, t).unwrap();
        vs.copy(&init).unwrap();
        let cfg: TrainConfig =
            toml::from_str(&format!("steps = 4\nbatch_size = {batch}\naccumulate = {accumulate}\nlr = 1e-2\nwarmup_steps = 1")).unwrap();
        let trainer = Trainer { cfg: &cfg, seed: 1, device: Device::Cpu, run_dir: &crate::artifacts::RunDir { path: dir.path().into() }, progress: false, resume: None, shuffle: true };
        let out = trainer.fit(model.as_ref(), &vs, data.clone(), data.as_ref()).unwrap();
        let w = vs.variables().into_iter().map(|(k, v)| (k, v.copy())).collect::<std::collections::BTreeMap<_, _>>();
        (out, w)
    };
    let (big, wb) = train(12, 1);
    let (acc, wa) = train(4, 3);
    assert_eq!(big.tokens, acc.tokens, "the same rows each step");
    for (a, b) in big.steps_metrics.iter().zip(&acc.steps_metrics) {
        assert!((a.loss - b.loss).abs() < 1e-5 && (a.grad_norm - b.grad_norm).abs() < 1e-5, "{a:?} vs {b:?}");
    }
    for (k, b) in &wb {
        let diff = (b - &wa[k]).abs().max().double_value(&[]);
        assert!(diff < 1e-5, "{k}: {diff}");
    }
    // And it is not a no-op: a plain batch of 4 trains differently.
    let (_, w4) = train(4, 1);
    assert!(wb.iter().any(|(k, b)| (b - &w4[k]).abs().max().double_value(&[]) > 1e-4));
}

/// `accumulation = "ddp"`: a step's loss (and so its gradient) is the mean of the micro-batches'
/// mean losses, as DDP averages its devices' means, not the global token mean; without padding
/// the two are one.
#[test]
fn ddp_accumulation_averages_the_micro_batches_means() {
    tch::manual_seed(4);
    let (n, t, v) = (12i64, 12i64, 50i64);
    let tokens = Tensor::randint_low(3, v, [n, t], (Kind::Int64, Device::Cpu));
    // Rows 0-3 are short (3 targets or fewer), rows 4-11 full: the micro-batches' counts differ.
    let lens = Tensor::from_slice(&[2i64, 3, 4, 3, 12, 12, 12, 12, 12, 12, 12, 12]).view([n, 1]);
    let pad = Tensor::arange(t, (Kind::Int64, Device::Cpu)).unsqueeze(0).ge_tensor(&lens);
    let padded = Encoded { labels: tokens.masked_fill(&pad, IGNORE), tokens: tokens.masked_fill(&pad, 2) };
    let full = Encoded { labels: tokens.shallow_clone(), tokens: tokens.shallow_clone() };
    let spec = mm_models::ModelSpec::MaskedMixer(mm_models::MixerSpec::flat(8, 1));
    let init = nn::VarStore::new(Device::Cpu);
    let init_model = spec.build(&init.root(), v, t).unwrap();
    let first_loss = |data: &Encoded, accumulation: &str| {
        let data: std::sync::Arc<dyn Rows> = std::sync::Arc::new(MemoryRows::from(data));
        let dir = tempfile::tempdir().unwrap();
        let mut vs = nn::VarStore::new(Device::Cpu);
        let model = spec.build(&vs.root(), v, t).unwrap();
        vs.copy(&init).unwrap();
        let cfg: TrainConfig = toml::from_str(&format!(
            "steps = 1\nbatch_size = 4\naccumulate = 3\naccumulation = \"{accumulation}\"\nlr = 1e-2\nwarmup_steps = 0"
        ))
        .unwrap();
        let trainer = Trainer { cfg: &cfg, seed: 1, device: Device::Cpu, run_dir: &crate::artifacts::RunDir { path: dir.path().into() }, progress: false, resume: None, shuffle: false };
        trainer.fit(model.as_ref(), &vs, data.clone(), data.as_ref()).unwrap().steps_metrics[0].loss
    };
    // The reference values from the initial weights: rows in order, three micro-batches of 4.
    let mean_loss = |data: &Encoded, rows: std::ops::Range<i64>| {
        let (x, y) = (data.tokens.narrow(0, rows.start, rows.end - rows.start), data.labels.narrow(0, rows.start, rows.end - rows.start));
        tch::no_grad(|| lm_loss(&init_model.forward_t(&x, false), &y, init_model.objective()).double_value(&[]))
    };
    let ddp_want = [0..4, 4..8, 8..12].into_iter().map(|r| mean_loss(&padded, r)).sum::<f64>() / 3.0;
    let tokens_want = mean_loss(&padded, 0..12);
    assert!((ddp_want - tokens_want).abs() > 1e-3, "the padding must make the two differ: {ddp_want} vs {tokens_want}");
    let (ddp, tok) = (first_loss(&padded, "ddp"), first_loss(&padded, "tokens"));
    assert!((ddp - ddp_want).abs() < 1e-5, "ddp: {ddp} vs the mean of means {ddp_want}");
    assert!((tok - tokens_want).abs() < 1e-5, "tokens: {tok} vs the token mean {tokens_want}");
    let (ddp_full, tok_full) = (first_loss(&full, "ddp"), first_loss(&full, "tokens"));
    assert!((ddp_full - tok_full).abs() < 1e-5, "no padding: {ddp_full} vs {tok_full}");
}

#[test]
fn stop_at_cuts_the_run_but_keeps_the_schedule() {
    let (n, t, v) = (16i64, 8i64, 40i64);
    let tokens = Tensor::arange(n * t, (Kind::Int64, Device::Cpu)).remainder(v - 3).view([n, t]) + 3;
    let data: std::sync::Arc<dyn Rows> = std::sync::Arc::new(MemoryRows::from(&Encoded { labels: tokens.copy(), tokens }));
    let spec = mm_models::ModelSpec::MaskedMixer(mm_models::MixerSpec::flat(8, 1));
    let init = nn::VarStore::new(Device::Cpu);
    let _ = spec.build(&init.root(), v, t).unwrap();
    let train = |extra: &str| {
        let dir = tempfile::tempdir().unwrap();
        let mut vs = nn::VarStore::new(Device::Cpu);
        let model = spec.build(&vs.root(), v, t).unwrap();
        vs.copy(&init).unwrap();
        let cfg: TrainConfig = toml::from_str(&format!("steps = 12\nbatch_size = 4\nlr = 1e-2\nwarmup_steps = 2\neval_every = 100\n{extra}")).unwrap();
        Trainer { cfg: &cfg, seed: 0, device: Device::Cpu, run_dir: &crate::artifacts::RunDir { path: dir.path().into() }, progress: false, resume: None, shuffle: true }.fit(model.as_ref(), &vs, data.clone(), data.as_ref()).unwrap()
    };
    let (full, cut) = (train(""), train("stop_at = 5"));
    assert_eq!((full.steps, cut.steps), (12, 5));
    // The first five steps of the 12-step schedule, bit for bit: same lr at every step.
    for (a, b) in full.steps_metrics.iter().zip(&cut.steps_metrics) {
        assert_eq!((a.step, a.loss, a.lr), (b.step, b.loss, b.lr));
    }
    assert_eq!(cut.steps_metrics.len(), full.steps_metrics.iter().filter(|m| m.step <= 5).count());
    assert!(cut.steps_metrics.last().unwrap().lr > 0.0, "the schedule had not ended at the stop");
    assert_eq!(train("stop_at = 99").steps, 12, "beyond the schedule's end it changes nothing");
}

#[test]
fn a_wall_clock_budget_stops_early_and_says_so() {
    tch::manual_seed(0);
    let (n, t, v) = (16i64, 8i64, 40i64);
    let tokens = Tensor::randint_low(3, v, [n, t], (Kind::Int64, Device::Cpu));
    let data: std::sync::Arc<dyn Rows> = std::sync::Arc::new(MemoryRows::from(&Encoded { labels: tokens.copy(), tokens }));
    let vs = nn::VarStore::new(Device::Cpu);
    let model = mm_models::ModelSpec::MaskedMixer(mm_models::MixerSpec::flat(8, 1)).build(&vs.root(), v, t).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A budget of 0.06 ms: over after the first step.
    let cfg: TrainConfig = toml::from_str("steps = 50\nbatch_size = 4\nmax_minutes = 1e-6\neval_every = 1000").unwrap();
    let out = Trainer { cfg: &cfg, seed: 0, device: Device::Cpu, run_dir: &crate::artifacts::RunDir { path: dir.path().into() }, progress: false, resume: None, shuffle: true }
        .fit(model.as_ref(), &vs, data.clone(), data.as_ref())
        .unwrap();
    assert!(out.wall_clock_stop);
    assert_eq!(out.steps, 1);
    assert_eq!(out.checkpoints.last().unwrap(), &(1, "model.safetensors".to_string()));
    assert_eq!(out.eval_metrics.last().unwrap().step, 1, "the stopped run is evaluated where it stopped");
    assert!(out.eval_loss.is_finite());
    // Without the budget the same run trains its 50 steps.
    let full: TrainConfig = toml::from_str("steps = 50\nbatch_size = 4\neval_every = 1000").unwrap();
    let out = Trainer { cfg: &full, seed: 0, device: Device::Cpu, run_dir: &crate::artifacts::RunDir { path: dir.path().into() }, progress: false, resume: None, shuffle: true }
        .fit(model.as_ref(), &vs, data.clone(), data.as_ref())
        .unwrap();
    assert!(!out.wall_clock_stop && out.steps == 50);
}

/// Hooks of a one-parameter problem that record what the loop hands them.
struct Probe {
    w: Tensor,
    started: Option<Option<(u64, u64)>>,
    seen: Vec<(u64, f64)>,
    stop_at: Option<u64>,
}

impl Hooks for Probe {
    type State = u64;

    fn start(&mut self, resumed: Option<(u64, u64)>) -> Result<(), ModelError> {
        self.started = Some(resumed);
        Ok(())
    }

    fn forward_backward(&mut self, _step: u64, stepper: &mut Stepper) -> Result<Tensor, ModelError> {
        let loss = (&self.w * &self.w).sum(Kind::Float);
        stepper.backward(&loss);
        Ok(loss.detach())
    }

    fn after_step(&mut self, done: u64, _loss: &Tensor, norm: Option<&Tensor>, lr: f64) -> Result<Flow, ModelError> {
        assert!(norm.is_some(), "fp32 never skips a step");
        self.seen.push((done, lr));
        Ok(if self.stop_at == Some(done) { Flow::Stop } else { Flow::Continue })
    }

    fn state(&self, done: u64) -> u64 {
        done * 10
    }
}

#[test]
fn the_loop_follows_the_schedule_stops_when_a_hook_says_and_resumes_from_its_state() {
    let dir = tempfile::tempdir().unwrap();
    let run = crate::artifacts::RunDir { path: dir.path().into() };
    let every = ResumeEvery { secs: f64::INFINITY, steps: Some(2) };
    let schedule = Schedule { lr: 0.1, warmup: 2, total: 8 };
    let new = |stop_at| {
        let vs = nn::VarStore::new(Device::Cpu);
        let w = vs.root().var_copy("w", &Tensor::from_slice(&[1.0f32]));
        (vs, Probe { w, started: None, seen: vec![], stop_at })
    };
    // A budget shorter than the schedule (stop_at-like), stopped by its hook after step 5.
    let (vs, mut probe) = new(Some(5));
    let mut stepper = Stepper::new(&vs, AdamW::default(), 1.0, Precision::Fp32).unwrap();
    let mut lp = TrainLoop { steps: 6, schedule, seed: Some(0), resume: Some(resume::Resume::new(&run, Some(every))) };
    let done = lp.run(&mut probe, &vs, &mut stepper).unwrap();
    assert_eq!((done.steps, done.applied), (5, 5));
    assert_eq!(probe.started, Some(None));
    let lrs: Vec<f64> = probe.seen.iter().map(|(_, lr)| *lr).collect();
    let want: Vec<f64> = (0..5).map(|a| 0.1 * lr_factor(a, 2, 8)).collect();
    assert_eq!(lrs, want, "the lr of step s is the schedule's at the optimizer steps applied before it");
    // The state of step 4 was written (every 2 steps; step 5 was the last, which never is).
    assert_eq!(run.resume_step(), Some(4));
    let w_at_5 = probe.w.double_value(&[0]);

    // A new process resumes at step 4 with the hooks' state, and the same weights follow.
    let (vs, mut probe) = new(Some(5));
    let mut stepper = Stepper::new(&vs, AdamW::default(), 1.0, Precision::Fp32).unwrap();
    let mut lp = TrainLoop { steps: 6, schedule, seed: Some(0), resume: Some(resume::Resume::new(&run, Some(every))) };
    let done = lp.run(&mut probe, &vs, &mut stepper).unwrap();
    assert_eq!(probe.started, Some(Some((4, 40))));
    assert_eq!((done.steps, probe.seen.first().map(|s| s.0)), (5, Some(5)));
    assert_eq!(probe.w.double_value(&[0]), w_at_5, "resumed bit for bit");
    lp.finish().unwrap();
    assert_eq!(run.resume_step(), None, "a finished run keeps no resumable state");
}

#[test]
fn the_data_order_is_recorded_and_unshuffled_on_request() {
    let ids = |v: serde_json::Value| -> Vec<Vec<i64>> { serde_json::from_value(v["row_ids_per_step"].clone()).unwrap() };
    // In order, epoch after epoch; a batch spans the epoch boundary.
    assert_eq!(ids(super::clm_steps::data_order(5, 2, 4, 7, false).unwrap()), vec![vec![0, 1], vec![2, 3], vec![4, 0], vec![1, 2]]);
    // Shuffled: every epoch is a permutation, the same for the same seed, another for another seed.
    let a = ids(super::clm_steps::data_order(6, 3, 4, 7, true).unwrap());
    let mut first: Vec<i64> = a[..2].concat();
    first.sort();
    assert_eq!(first, (0..6).collect::<Vec<_>>());
    assert_eq!(a, ids(super::clm_steps::data_order(6, 3, 4, 7, true).unwrap()));
    assert_ne!(a, ids(super::clm_steps::data_order(6, 3, 4, 8, true).unwrap()));
    // Past the cap only the rule and seed are written.
    assert!(super::clm_steps::data_order(10, 1000, 1000, 0, true).unwrap()["row_ids_per_step"].is_null());
}

#[test]
fn a_batch_without_a_target_skips_its_step_instead_of_diverging() {
    // Rows whose every label is a pad (a short story under an objective that scores only its
    // second half, at batch 1): the mean loss would be 0/0.
    let (n, t, v) = (4i64, 8i64, 30i64);
    let tokens = Tensor::randint_low(3, v, [n, t], (Kind::Int64, Device::Cpu));
    let empty = Tensor::from_slice(&[false, true, false, true]).view([n, 1]).expand([n, t], false);
    let labels = tokens.masked_fill(&empty, IGNORE);
    let data: std::sync::Arc<dyn Rows> = std::sync::Arc::new(MemoryRows::from(&Encoded { labels, tokens: tokens.shallow_clone() }));
    let spec = mm_models::ModelSpec::MaskedMixer(mm_models::MixerSpec::flat(8, 1));
    let run = |data: std::sync::Arc<dyn Rows>| {
        let dir = tempfile::tempdir().unwrap();
        let vs = nn::VarStore::new(Device::Cpu);
        let model = spec.build(&vs.root(), v, t).unwrap();
        // The saved model is re-masked (masked-away weights zero), so compare with that.
        model.remask();
        let before: Vec<Tensor> = vs.trainable_variables().iter().map(|w| w.copy()).collect();
        let cfg: TrainConfig = toml::from_str("steps = 4\nbatch_size = 1\nlr = 1e-2\nwarmup_steps = 0\neval_every = 2").unwrap();
        let trainer = Trainer {
            cfg: &cfg,
            seed: 1,
            device: Device::Cpu,
            run_dir: &crate::artifacts::RunDir { path: dir.path().into() },
            progress: false,
            resume: None,
            shuffle: false,
        };
        let out = trainer.fit(model.as_ref(), &vs, data.clone(), data.as_ref()).unwrap();
        let moved = vs.trainable_variables().iter().zip(&before).any(|(w, b)| !w.equal(b));
        (out, moved)
    };
    // Rows 1 and 3 are empty: two steps skipped, two taken, every loss counted is finite.
    let (out, moved) = run(data);
    assert_eq!(out.empty_batches, 2);
    assert!(moved && out.train_loss.is_finite() && out.eval_loss.is_finite(), "{out:?}");
    // Only empty rows: no optimizer step at all, the weights are the init's.
    let none = Encoded { labels: tokens.full_like(IGNORE), tokens: tokens.shallow_clone() };
    let (out, moved) = run(std::sync::Arc::new(MemoryRows::from(&none)));
    assert_eq!(out.empty_batches, 4);
    assert!(!moved, "a skipped step leaves the weights alone");
}
