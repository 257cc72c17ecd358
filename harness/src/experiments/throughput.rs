//! `throughput`: one model configuration's step time, tokens/s, MFU and peak memory (PAPER.md C.5,
//! T6, T7), on this harness and on the PyTorch peer, alternating round by round so drifts of
//! the machine fall on both sides alike. Each round is a fresh process per side
//! ([`crate::throughput::run_job`]); `rounds.json` keeps every timed step.
use super::{Experiment, RunContext, RunOutput};
use crate::suite::kind::section_or_default;
use crate::suite::{Attention, DeviceChoice, ExperimentKind, Invalid, KindRules, Mode, Precision, RunConfig, Sides};
use crate::throughput::{flops_per_step, median, peak_tflops, run_job, Job, Measured, Side};
use anyhow::{Context, Result};
use serde_json::json;
use tch::Device;

pub struct Throughput;

impl KindRules for Throughput {
    fn kind(&self) -> ExperimentKind {
        ExperimentKind::Throughput
    }

    fn sections(&self) -> &'static [&'static str] {
        &["model", "throughput", "device", "cpu_kernels"]
    }

    fn validate(&self, c: &mut RunConfig) -> Result<(), Invalid> {
        if c.model.is_none() {
            return Err(Invalid::new("model", "a throughput run measures a model: add a [model] table (or [defaults.model])"));
        }
        let t = section_or_default(&mut c.throughput, "throughput")?;
        if t.batch_size < 1 || t.n_ctx < 2 || t.vocab_size < 2 {
            return Err(Invalid::new("throughput", format!(
                "batch_size must be at least 1, n_ctx and vocab_size at least 2 (got {}, {}, {})",
                t.batch_size, t.n_ctx, t.vocab_size
            )));
        }
        if t.steps < 1 || t.rounds < 1 {
            return Err(Invalid::new("throughput", "steps and rounds must be at least 1"));
        }
        if t.precision == Precision::Fp16Amp && c.device == DeviceChoice::Cpu {
            return Err(Invalid::new("throughput.precision", "\"fp16-amp\" needs device = \"cuda\""));
        }
        if t.memory_limit_gib.is_some_and(|g| !(g > 0.0 && g.is_finite())) {
            return Err(Invalid::new("throughput.memory_limit_gib", "must be a positive number of GiB"));
        }
        if t.attention == Attention::Eager && t.sides != Sides::Pytorch {
            return Err(Invalid::new(
                "throughput.attention",
                "\"eager\" selects the PyTorch peer's attention; the harness's Llama uses SDPA only: set sides = \"pytorch\"",
            ));
        }
        if t.sides != Sides::Harness {
            let peer_ok = match c.model.as_ref().expect("checked") {
                mm_models::ModelSpec::MaskedMixer(s) => *s == mm_models::MixerSpec::flat(s.d_model, s.n_layers),
                mm_models::ModelSpec::Llama(s) => !s.bidirectional,
                _ => false,
            };
            if !peer_ok {
                return Err(Invalid::new(
                    "throughput.sides",
                    "the PyTorch peer has the flat masked mixer and Llama only (the reference's models): set sides = \"harness\" for this model",
                ));
            }
        }
        Ok(())
    }

    /// This harness's side only, one round of one timed step after one warm-up step, fp32, at
    /// the paper's batch, context and vocabulary.
    fn at_shapes(&self, c: &mut RunConfig) {
        if let Some(t) = c.throughput.as_mut() {
            t.sides = crate::suite::config::Sides::Harness;
            t.attention = Default::default();
            t.rounds = 1;
            t.steps = 1;
            t.warmup = 1;
            t.precision = crate::suite::Precision::Fp32;
        }
    }
}

impl Experiment for Throughput {
    /// One job's step at its batch and context: training (memory mode: without the head) or a
    /// forward (activations not kept).
    fn memory_estimate(&self, c: &RunConfig) -> Option<(u64, String)> {
        let (model, t) = (c.model.as_ref()?, c.throughput.as_ref()?);
        match t.mode {
            Mode::Infer => {
                let step = mm_models::StepShape { batch: t.batch_size, n_ctx: t.n_ctx, head: true, scores: false, optimizer: false };
                super::forward_estimate(c, t.vocab_size, step, None, "an infer step")
            }
            // Memory mode: forward and backward without the head and without an optimizer (T6/T7).
            mode => {
                let memory = mode == Mode::Memory;
                let step = mm_models::StepShape { batch: t.batch_size, n_ctx: t.n_ctx, head: !memory, scores: false, optimizer: !memory };
                let m = model.training_memory(t.vocab_size, step);
                Some(super::step_estimate(c, m, &format!("a {} step", t.mode.name()), step))
            }
        }
    }

    fn run(&self, ctx: &RunContext) -> Result<RunOutput> {
        run(ctx)
    }

    fn report(&self) -> Option<&'static dyn crate::report::Section> {
        Some(&crate::report::throughput::Throughput)
    }

    /// What a job allocates before its timed steps: the fp32 weights and its four token batches.
    /// An out-of-memory error inside a step is a result (an "OOM" cell, as T6/T7 print), so the
    /// steps' own memory is not counted here; a model that cannot even be built is refused.
    fn memory_lower_bound(&self, c: &RunConfig) -> Option<(u64, String)> {
        let (model, t) = (c.model.as_ref()?, c.throughput.as_ref()?);
        let params = model.num_params(t.vocab_size, t.n_ctx);
        let batches = 4u64.saturating_mul(t.batch_size as u64).saturating_mul(t.n_ctx as u64).saturating_mul(8);
        Some((
            params.saturating_mul(4).saturating_add(batches),
            format!(
                "{params} parameters in fp32 and 4 token batches, before any step; throughput.batch_size = {}, throughput.n_ctx = {}, \
                 throughput.vocab_size = {}",
                t.batch_size, t.n_ctx, t.vocab_size
            ),
        ))
    }
}


fn run(ctx: &RunContext) -> Result<RunOutput> {
    let c = &ctx.run.config;
    let t = c.throughput.as_ref().context("a throughput run without [throughput]")?;
    let job = Job::of(c, if matches!(ctx.device, Device::Cuda(_)) { "cuda" } else { "cpu" }).context("a throughput run without [model]")?;
    let sides: Vec<Side> = match t.sides {
        Sides::Harness => vec![Side::Harness],
        Sides::Pytorch => vec![Side::PyTorch],
        Sides::Both => vec![Side::Harness, Side::PyTorch],
    };
    let scratch = ctx.dir.path.join(".peer");
    let mut rounds: Vec<(usize, Side, Measured)> = Vec::new();
    for round in 0..t.rounds {
        // Alternate which side goes first, so neither always runs on a warmer machine.
        let order: Vec<Side> = if round % 2 == 0 { sides.clone() } else { sides.iter().rev().copied().collect() };
        for side in order {
            let m = run_job(&job, side, &scratch).with_context(|| format!("round {} of {}", round + 1, t.rounds))?;
            if ctx.progress {
                eprintln!(
                    "  round {}/{} {side:?}: {}",
                    round + 1,
                    t.rounds,
                    m.median_s().map_or("no finished step".into(), |s| format!("{:.2} ms/step", s * 1e3))
                );
            }
            rounds.push((round, side, m));
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    let mut out = RunOutput::default();
    if sides.contains(&Side::PyTorch) {
        out.inputs.file(std::path::Path::new("bench/pytorch/peer.py"), crate::throughput::peer_sha256());
    }
    let tokens = (t.batch_size * t.n_ctx) as f64;
    let flops = flops_per_step(&job);
    out.summary.insert("flops_per_step".into(), flops.into());
    let limit = t.memory_limit_gib.map(|g| g * (1u64 << 30) as f64);
    for side in &sides {
        let prefix = if *side == Side::Harness { "" } else { "peer_" };
        let of_side: Vec<&Measured> = rounds.iter().filter(|(_, s, _)| s == side).map(|(_, _, m)| m).collect();
        let first = of_side[0];
        out.summary.insert(format!("{prefix}params"), first.params.into());
        let oom = of_side.iter().any(|m| m.oom);
        out.summary.insert(format!("{prefix}oom"), oom.into());
        if let Some(step) = median(of_side.iter().filter_map(|m| m.median_s()).collect()).filter(|_| !oom) {
            out.summary.insert(format!("{prefix}step_s"), step.into());
            out.summary.insert(format!("{prefix}tokens_per_s"), (tokens / step).into());
            if let Some(peak) = peak_tflops(&first.device_name, t.precision) {
                out.summary.insert(format!("{prefix}mfu"), (flops / step / (peak * 1e12)).into());
            }
            // How long the host took to issue a step, on a device that runs it asynchronously.
            if matches!(ctx.device, Device::Cuda(_)) {
                if let Some(issue) = median(of_side.iter().filter_map(|m| m.median_issue_s()).collect()) {
                    out.summary.insert(format!("{prefix}issue_s"), issue.into());
                }
            }
        }
        if let Some(peak) = of_side.iter().filter_map(|m| m.peak_bytes).max() {
            out.summary.insert(format!("{prefix}peak_mib"), (peak as f64 / (1u64 << 20) as f64).into());
            if let Some(l) = limit {
                out.summary.insert(format!("{prefix}over_limit"), (peak as f64 > l).into());
            }
        }
        let who = if *side == Side::Harness { "harness" } else { "pytorch" };
        out.execution.insert(format!("{who}_device"), first.device_name.clone());
        out.execution.insert(format!("{who}_threads"), first.threads.to_string());
        let versions = match &first.transformers {
            Some(tf) => format!("torch {}, transformers {tf}", first.torch),
            None => first.torch.clone(),
        };
        out.execution.insert(format!("{who}_versions"), versions);
        // The host allocator each side ran with: part of what a CPU figure means.
        if let Some(m) = &first.malloc {
            out.summary.insert(format!("{prefix}malloc"), m.clone().into());
        }
    }
    if sides.len() == 2 {
        // Per round: the peer's median step over the harness's; the run's speed-up is their median.
        let ratios: Vec<f64> = (0..t.rounds)
            .filter_map(|r| {
                let med = |side: Side| rounds.iter().find(|(rr, s, _)| *rr == r && *s == side).and_then(|(_, _, m)| m.median_s());
                Some(med(Side::PyTorch)? / med(Side::Harness)?)
            })
            .collect();
        if let Some(s) = median(ratios.clone()) {
            out.summary.insert("speedup".into(), s.into());
            out.summary.insert("speedup_min".into(), ratios.iter().copied().fold(f64::INFINITY, f64::min).into());
        }
    }
    if matches!(ctx.device, Device::Cuda(_)) {
        if let Some(v) = crate::device::driver_version() {
            out.execution.insert("driver".into(), v);
        }
    }
    out.summary.insert("tokens_per_step".into(), tokens.into());
    out.summary.insert("rounds".into(), t.rounds.into());
    let raw: Vec<serde_json::Value> = rounds
        .iter()
        .map(|(r, s, m)| json!({"round": r, "side": format!("{s:?}"), "measured": m}))
        .collect();
    ctx.dir.write_json("rounds.json", &raw)?;
    out.execution.insert(
        "timing".into(),
        format!(
            "median of {} timed steps after {} warm-up steps per round, synchronised; {} rounds per side in fresh processes, \
             alternating; the run's figure is the median of the rounds' medians",
            t.steps, t.warmup, t.rounds
        ),
    );
    out.execution.insert(
        "mfu".into(),
        "model FLOPs per step (2 per multiply-add of the weight matrices, the token mixing or attention scores, and the \
         head; training = 3x forward) / step time / the device's dense peak for the precision"
            .into(),
    );
    Ok(out)
}
