//! What runs cost before they run (`harness plan SUITE|FOLDER --estimate [--card NAME]`): per run
//! the model FLOPs of an optimizer step from the model's own formulas
//! (`ModelSpec::forward_macs_per_token`), the device memory a step needs at the run's micro-batch
//! and context (`ModelSpec::training_memory`, fp32: an upper bound under mixed precision), the
//! tokens it trains on, and hours on a card; totals per suite and for several suites together,
//! each distinct run counted once (the same configuration in two suites is one run id).
//!
//! Hours = FLOPs / (the card's dense peak at the run's precision x a model-FLOPs utilisation of
//! the run's family, mixer or attention). The utilisations come from recorded runs, named per
//! card ([`Card::mfu_source`]); `cpu` measures this machine instead (a few training steps of a
//! mixer and a Llama, [`measure_cpu`]). What a kind's estimate leaves out is said in its row.
pub use crate::cards::{card, card_of_device, Card, CARDS};
use crate::suite::{DeviceChoice, ExperimentKind, ModelSource, Precision, Run, RunConfig, Suite};
use crate::throughput::{flops_per_step, Job};
use mm_models::{ModelSpec, StepShape};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// This machine's CPU as a card: the model FLOP/s a few fp32 training steps of a flat mixer and
/// of a Llama reach (d256 n4, n_ctx 256, batch 8, vocabulary 4096), taken as the peak with a
/// utilisation of 1. Small models reach less of it per FLOP than the paper's; say so beside a
/// figure from it.
pub fn measure_cpu() -> anyhow::Result<Card> {
    let rate = |model: ModelSpec| -> anyhow::Result<f64> {
        let job = Job {
            model,
            mode: crate::suite::Mode::Train,
            batch: 8,
            n_ctx: 256,
            vocab: 4096,
            precision: Precision::Fp32,
            warmup: 1,
            steps: 3,
            seed: 0,
            device: "cpu".into(),
            attention: "sdpa".into(),
            peer_malloc: Default::default(),
        };
        let m = crate::throughput::measure_here(&job)?;
        let step = m.median_s().ok_or_else(|| anyhow::anyhow!("the CPU probe measured no step"))?;
        Ok(flops_per_step(&job) / step / 1e12)
    };
    let mixer = rate(ModelSpec::MaskedMixer(mm_models::MixerSpec::flat(256, 4)))?;
    let llama = rate(ModelSpec::Llama(mm_models::LlamaSpec { n_layers: 4, d_model: 256, n_heads: 4, ..mm_models::LlamaSpec::tinystories_d512() }))?;
    let memory_gib = crate::device::memory_bytes(DeviceChoice::Cpu).map_or(0.0, |b| b as f64 / (1u64 << 30) as f64);
    Ok(Card {
        id: "cpu",
        names: &[],
        label: "this machine's CPU",
        memory_gib,
        fp32_tflops: mixer.max(llama),
        half_tflops: mixer.max(llama),
        mfu_mixer: mixer / mixer.max(llama),
        mfu_attention: llama / mixer.max(llama),
        mfu_source: Cow::Owned(format!(
                "measured now: fp32 training steps of a mixer d256 n4 ({:.1} GFLOP/s) and a Llama d256 n4 h4 ({:.1} GFLOP/s) at n_ctx 256, \
                 batch 8; larger models reach more of the machine per FLOP",
                mixer * 1e3,
            llama * 1e3
        )),
        floor_s_per_block: 0.0,
    })
}

/// One run's cost.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunCost {
    /// Model FLOPs of the whole run (training, its evaluations, the forward passes it makes).
    pub flops: f64,
    /// FLOPs of one optimizer step, for the kinds that train.
    pub step_flops: Option<f64>,
    pub steps: Option<u64>,
    /// Tokens the run trains on (or, for the kinds that only read, reads).
    pub tokens: u64,
    /// Device memory of its largest step (fp32), bytes.
    pub memory: Option<u64>,
    /// Attention's utilisation applies (else the mixer's).
    pub attention: bool,
    /// The run computes in 16 bits (fp16 AMP, bf16).
    pub half: bool,
    /// Optimizer steps of a model's weights, and the blocks each runs through: what the per-step
    /// floor counts (a representation run's steps on its input are not floored: measured at
    /// under a millisecond each on the H200).
    pub weight_steps: u64,
    pub blocks: usize,
    /// What the estimate leaves out, when anything.
    pub note: Option<String>,
}

impl RunCost {
    /// Seconds on `card`: the FLOPs at the card's rate for the family and precision, or the
    /// steps at the card's per-step floor when that is longer (small models).
    pub fn seconds(&self, card: &Card) -> f64 {
        let peak = if self.half { card.half_tflops } else { card.fp32_tflops };
        let mfu = if self.attention { card.mfu_attention } else { card.mfu_mixer };
        let floor = self.weight_steps as f64 * self.blocks as f64 * card.floor_s_per_block;
        (self.flops / (peak * 1e12 * mfu)).max(floor)
    }
}

/// Training rows of a pairs set: `n_pairs` less its test part.
fn train_pairs(c: &RunConfig) -> Option<u64> {
    let p = c.pairs.as_ref()?;
    let n = p.n_pairs? as u64;
    Some(match p.test_pairs {
        Some(t) => n.saturating_sub(t as u64),
        None => (n as f64 * (1.0 - p.test_fraction)).round() as u64,
    })
}

/// The cost of `run`; `producers` are the suite's runs by id (a representation run reads its
/// producer's checkpoints).
pub fn run_cost(run: &Run, producers: &BTreeMap<&str, &Run>) -> RunCost {
    let c = &run.config;
    let model = c.model.as_ref();
    let attention = model.is_some_and(ModelSpec::uses_attention);
    let blocks = model.map_or(0, ModelSpec::n_layers);
    let mut cost = RunCost { attention, blocks, ..Default::default() };
    match c.kind {
        ExperimentKind::Clm => {
            let (Some(m), Some(d), Some(t)) = (model, c.data.as_ref(), c.train.as_ref()) else { return cost };
            let (l, v) = (d.n_ctx, d.vocab_size as i64);
            let steps = t.budget_steps(l);
            let tokens_per_step = t.global_batch() * l as u64;
            let step_flops = 6.0 * m.forward_macs_per_token(v, l, true) * tokens_per_step as f64;
            let evals = steps / t.eval_every.max(1) + 1;
            let eval_rows = match t.eval_batches {
                Some(b) => Some(b * t.batch_size as u64),
                None => d.eval_rows.or(d.eval_stories).map(|r| r as u64),
            };
            let eval_flops = eval_rows.map_or(0.0, |r| 2.0 * m.forward_macs_per_token(v, l, true) * (r * l as u64 * evals) as f64);
            if eval_rows.is_none() {
                cost.note = Some("evaluation over the whole eval split (its size unknown before the data is read) not counted".into());
            }
            cost.flops = step_flops * steps as f64 + eval_flops;
            cost.step_flops = Some(step_flops);
            cost.steps = Some(steps);
            cost.weight_steps = steps;
            cost.tokens = tokens_per_step * steps;
            cost.memory = Some(m.training_bytes(v, StepShape::clm(t.batch_size, l)));
            cost.half = t.precision != Precision::Fp32;
        }
        ExperimentKind::Representation => {
            let (Some(m), Some(d), Some(r)) = (model, c.data.as_ref(), c.representation.as_ref()) else { return cost };
            let l = d.n_ctx;
            let prompts = if r.prompts.is_empty() { r.n_prompts } else { r.prompts.len() } as u64;
            // Step 0 (the init), and with a trained source every checkpoint of its producer.
            let checkpoints = match (r.source, c.upstream.as_ref().and_then(|u| producers.get(u.run.as_str()))) {
                (ModelSource::Trained, Some(p)) => {
                    let t = p.config.train.as_ref();
                    let steps = t.map_or(0, |t| t.budget_steps(l));
                    1 + t.and_then(|t| t.checkpoint_every).map_or(1, |k| steps / k.max(1) + u64::from(steps % k.max(1) != 0))
                }
                _ => 1,
            };
            let iterations = prompts * r.steps * checkpoints;
            let per = 6.0 * m.forward_macs_per_token(d.vocab_size as i64, l, false) * l as f64;
            cost.flops = per * iterations as f64;
            cost.steps = Some(iterations);
            cost.tokens = iterations * l as u64;
            cost.memory = Some(m.training_bytes(d.vocab_size as i64, StepShape { batch: 1, n_ctx: l, head: false, scores: false, optimizer: false }));
        }
        ExperimentKind::Embed => {
            let (Some(m), Some(d)) = (model, c.data.as_ref()) else {
                cost.note = Some("embeddings from a file: nothing computed".into());
                return cost;
            };
            match c.pairs.as_ref().and_then(|p| p.n_pairs) {
                Some(n) => {
                    let sequences = 2 * n as u64;
                    cost.flops = 2.0 * m.forward_macs_per_token(d.vocab_size as i64, d.n_ctx, false) * (sequences * d.n_ctx as u64) as f64;
                    cost.tokens = sequences * d.n_ctx as u64;
                }
                None => cost.note = Some("every pair of the set (its size unknown before it is read): not counted".into()),
            }
        }
        ExperimentKind::RetrievalFrozen => {
            let (Some(f), Some(m)) = (c.retrieval_frozen.as_ref(), model) else { return cost };
            let (d, n) = (m.d_model() as f64, f.n as f64);
            // The retrieval mixer over n slots of width d: each block's 4d FF and its n x n mixing.
            let per_sample = 6.0 * n * f.depth as f64 * (8.0 * d * d + n * d);
            match train_pairs(c) {
                Some(pairs) => {
                    cost.flops = per_sample * (pairs * f.epochs) as f64;
                    cost.steps = Some((pairs * f.epochs).div_ceil(f.batch_size.max(1) as u64));
                    cost.weight_steps = cost.steps.unwrap_or(0);
                }
                None => cost.note = Some("every pair of the set (its size unknown before it is read): not counted".into()),
            }
            cost.attention = false;
            cost.blocks = f.depth;
            cost.half = f.precision != Precision::Fp32;
        }
        ExperimentKind::RetrievalInfonce => {
            let (Some(m), Some(d), Some(r)) = (model, c.data.as_ref(), c.retrieval_infonce.as_ref()) else { return cost };
            let l = d.n_ctx;
            let sequences_per_step = (r.group * r.groups_per_step) as u64;
            let step_flops = 6.0 * m.forward_macs_per_token(d.vocab_size as i64, l, false) * (sequences_per_step * l as u64) as f64;
            match train_pairs(c) {
                Some(pairs) => {
                    let steps = (pairs * r.epochs).div_ceil(r.groups_per_step.max(1) as u64);
                    cost.flops = step_flops * steps as f64;
                    cost.steps = Some(steps);
                    cost.weight_steps = steps;
                    cost.tokens = steps * sequences_per_step * l as u64;
                }
                None => cost.note = Some("every pair of the set (its size unknown before it is read): not counted".into()),
            }
            cost.step_flops = Some(step_flops);
            cost.memory = Some(m.training_bytes(d.vocab_size as i64, StepShape { batch: r.group, n_ctx: l, head: false, scores: false, optimizer: true }));
            cost.half = r.precision != Precision::Fp32;
        }
        ExperimentKind::RetrievalEval => cost.note = Some("dot products of cached embeddings: negligible".into()),
        ExperimentKind::Throughput => {
            let (Some(m), Some(t), Some(job)) = (model, c.throughput.as_ref(), Job::of(c, "cuda")) else { return cost };
            let sides = if t.sides == crate::suite::Sides::Both { 2 } else { 1 };
            let steps = ((t.warmup + t.steps) * t.rounds * sides) as u64;
            cost.step_flops = Some(flops_per_step(&job));
            cost.flops = flops_per_step(&job) * steps as f64;
            cost.steps = Some(steps);
            cost.weight_steps = if t.mode == crate::suite::Mode::Train { steps } else { 0 };
            cost.tokens = steps * (t.batch_size * t.n_ctx) as u64;
            let head = t.mode != crate::suite::Mode::Memory;
            cost.memory = Some(m.training_bytes(t.vocab_size, StepShape { batch: t.batch_size, n_ctx: t.n_ctx, head, scores: false, optimizer: true }));
            cost.half = t.precision != Precision::Fp32;
        }
    }
    cost
}

fn hours(s: f64) -> String {
    match s / 3600.0 {
        h if h >= 100.0 => format!("{h:.0}"),
        h if h >= 1.0 => format!("{h:.1}"),
        h => format!("{h:.2}"),
    }
}

/// A run's time: seconds, minutes or hours.
fn duration(s: f64) -> String {
    match s {
        s if s < 60.0 => format!("{s:.1} s"),
        s if s < 3600.0 => format!("{:.1} min", s / 60.0),
        s => format!("{} h", hours(s)),
    }
}

/// TFLOP/s with three figures at most (a CPU's are hundredths).
fn rate(t: f64) -> String {
    match t {
        t if t >= 100.0 => format!("{t:.0}"),
        t if t >= 1.0 => format!("{t:.1}"),
        t => format!("{t:.3}"),
    }
}

fn si(x: f64) -> String {
    const UNITS: &[(f64, &str)] = &[(1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")];
    UNITS.iter().find(|(f, _)| x >= *f).map_or(format!("{x:.0}"), |(f, u)| format!("{:.1} {u}", x / f))
}

/// The estimate of several suites on `card`: one table per suite (what an estimate leaves out
/// as numbered notes under it), then the whole, each distinct run (id) counted once.
pub fn estimate_text(suites: &[Suite], card: &Card) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "estimate on {} ({:.0} GiB; dense peaks {} TFLOP/s fp32, {} TFLOP/s 16-bit; model-FLOPs utilisation: mixer {:.2}, attention {:.2}, from {}; \
         a step takes at least {:.1} ms a block)",
        card.label,
        card.memory_gib,
        rate(card.fp32_tflops),
        rate(card.half_tflops),
        card.mfu_mixer,
        card.mfu_attention,
        card.mfu_source,
        card.floor_s_per_block * 1e3
    );
    let _ = writeln!(
        text,
        "FLOPs are model FLOPs (2 per multiply-add of the dense products; a training step 3 forwards); memory is an fp32 step at the run's \
         micro-batch (`over`: more than the card has)"
    );
    let mut seen: BTreeMap<String, f64> = BTreeMap::new();
    let mut all_runs = 0;
    for suite in suites {
        let producers: BTreeMap<&str, &Run> = suite.runs.iter().map(|r| (r.id.as_str(), r)).collect();
        let _ = writeln!(text, "\nsuite {} ({} runs)", suite.file.name, suite.runs.len());
        let _ = writeln!(
            text,
            "{:<12}  {:<16} {:<17} {:<44} {:>8} {:>9} {:>9} {:>11} {:>9}  note",
            "run", "experiment", "kind", "model", "steps", "tokens", "FLOP/step", "memory GiB", "time"
        );
        let (mut total, mut notes) = (0.0, Vec::<String>::new());
        for r in &suite.runs {
            all_runs += 1;
            let cost = run_cost(r, &producers);
            let secs = cost.seconds(card);
            total += secs;
            seen.insert(r.id.clone(), secs);
            let mem = match cost.memory.map(|b| b as f64 / (1u64 << 30) as f64) {
                Some(g) if card.memory_gib > 0.0 && g > card.memory_gib => format!("{g:.1} over"),
                Some(g) => format!("{g:.1}"),
                None => "—".into(),
            };
            let note = cost.note.map(|n| match notes.iter().position(|m| *m == n) {
                Some(i) => format!("({})", i + 1),
                None => {
                    notes.push(n);
                    format!("({})", notes.len())
                }
            });
            let _ = writeln!(
                text,
                "{:<12}  {:<16} {:<17} {:<44} {:>8} {:>9} {:>9} {:>11} {:>9}  {}",
                r.short_id(),
                r.experiment,
                r.config.kind.name(),
                crate::report::model_label(r),
                cost.steps.map_or("—".into(), |s| s.to_string()),
                si(cost.tokens as f64),
                cost.step_flops.map_or("—".into(), si),
                mem,
                duration(secs),
                note.unwrap_or_default()
            );
        }
        for (i, n) in notes.iter().enumerate() {
            let _ = writeln!(text, "  ({}) {n}", i + 1);
        }
        let _ = writeln!(text, "total {}: {} runs, {} hours on one {} ({:.1} days)", suite.file.name, suite.runs.len(), hours(total), card.id, total / 86400.0);
    }
    if suites.len() > 1 {
        let whole: f64 = seen.values().sum();
        let _ = writeln!(
            text,
            "\nwhole: {} suites, {all_runs} runs, {} distinct (a run two suites share is one run id, computed once): {} hours on one {} ({:.1} days)",
            suites.len(),
            seen.len(),
            hours(whole),
            card.id,
            whole / 86400.0
        );
    }
    text
}

#[cfg(test)]
mod tests;
