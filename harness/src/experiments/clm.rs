//! Causal language modelling (PAPER.md C, E): train one model on one data configuration and
//! record its train and eval loss curves and a checkpoint.
use super::{build_model, execution_facts, prepare, Experiment, RunContext, RunOutput};
use crate::data::rows::Rows;
use crate::suite::kind::need_model_data;
use crate::suite::{ExperimentKind, Invalid, KindRules, RunConfig};
use crate::train::Trainer;
use anyhow::{Context, Result};

pub struct Clm;

impl KindRules for Clm {
    fn kind(&self) -> ExperimentKind {
        ExperimentKind::Clm
    }

    fn sections(&self) -> &'static [&'static str] {
        &["model", "data", "train", "device", "init_from", "cpu_kernels"]
    }

    fn validate(&self, c: &mut RunConfig) -> Result<(), Invalid> {
        need_model_data(c)?;
        let Some(t) = &c.train else {
            return Err(Invalid::new("train", "this experiment trains a model: add a [train] section with batch_size and steps or tokens"));
        };
        t.check(c.data().n_ctx, c.device)
    }

    /// Two steps at micro-batch 1, evaluated after each, a checkpoint after the first. A one-step
    /// completion model learns positions n_ctx/2.. from the rest: its rows are full windows of the
    /// data at hand (FineWeb's slice is short paragraphs, so a padded row of one would often hold
    /// no target, and the step would be skipped with nothing trained or measured).
    fn at_shapes(&self, c: &mut RunConfig) {
        if let Some(t) = c.train.as_mut() {
            crate::suite::shapes::train_at_shapes(t);
        }
        use mm_models::ModelSpec::{LlamaAutoencoder, MixerAutoencoder};
        if matches!(&c.model, Some(MixerAutoencoder(s) | LlamaAutoencoder(s)) if s.completion) {
            if let Some(d) = c.data.as_mut() {
                d.packing = crate::suite::Packing::Windows;
            }
        }
    }
}

impl Experiment for Clm {
    fn run(&self, ctx: &RunContext) -> Result<RunOutput> {
        run(ctx)
    }

    fn trains_in(&self) -> Option<&'static str> {
        Some("train.precision")
    }

    /// fp32 weights, their gradients and AdamW's two moments, and the logits of one batch with
    /// their gradient.
    fn memory_lower_bound(&self, c: &RunConfig) -> Option<(u64, String)> {
        super::training_memory(c, c.train.as_ref()?.batch_size as u64)
    }

    fn memory_estimate(&self, c: &RunConfig) -> Option<(u64, String)> {
        super::training_estimate(c, mm_models::StepShape::clm(c.train.as_ref()?.batch_size, c.data.as_ref()?.n_ctx))
    }

    /// What the models write (greedy and sampled continuations of fixed openings).
    fn report(&self) -> Option<&'static dyn crate::report::Section> {
        Some(&crate::report::samples::Samples)
    }
}

fn run(ctx: &RunContext) -> Result<RunOutput> {
    let cfg = &ctx.run.config;
    let train_cfg = cfg.train.as_ref().expect("validated: clm has [train]");
    let mut out = RunOutput::default();
    let data = prepare(ctx, &mut out)?;
    let vocab = super::model_vocab(cfg, &data.tok)?;
    let (vs, model) = build_model(cfg, vocab, cfg.seed, ctx.device)?;
    if let Some(path) = &cfg.init_from {
        let hash = crate::artifacts::sha256_file(path).with_context(|| format!("init_from: reading {}", path.display()))?;
        mm_models::checkpoint::load(&vs, path).context("init_from")?;
        model.remask(); // reference checkpoints hold non-zero masked entries (PAPER.md I.1)
        out.inputs.file(path, hash);
    }
    out.execution.extend(execution_facts(cfg, ctx.device));
    if data.eval.is_empty() {
        let d = cfg.data();
        let total = data.corpus.train.docs + data.corpus.eval.docs;
        anyhow::bail!(
            "the evaluation split is empty: {} of {total} stories held out (data.eval_fraction = {}); raise data.eval_fraction or \
             data.n_stories, or give data.eval_path",
            data.corpus.eval.docs,
            d.eval_fraction
        );
    }
    let trainer = Trainer { cfg: train_cfg, seed: cfg.seed, device: ctx.device, run_dir: ctx.dir, progress: ctx.progress, resume: Some(ctx.resume), shuffle: cfg.data().shuffle };
    let outcome = match trainer.fit(model.as_ref(), &vs, data.train.clone(), data.eval.as_ref()) {
        Ok(o) => o,
        // `train.on_divergence = "record"`: a run that does not train is a result (A.2), not a
        // failure: it finishes with where it diverged and no losses.
        Err(mm_models::ModelError::Diverged { step, message }) if train_cfg.on_divergence == crate::suite::OnDivergence::Record => {
            let s = &mut out.summary;
            s.insert("params".into(), cfg.model().num_params(vocab, cfg.data().n_ctx).into());
            s.insert("schedule_steps".into(), train_cfg.total_steps(cfg.data().n_ctx).into());
            s.insert("diverged_at_step".into(), step.into());
            s.insert("diverged".into(), message.clone().into());
            out.execution.insert("diverged".into(), format!("{message} (train.on_divergence = \"record\": the run is finished as diverged)"));
            return Ok(out);
        }
        Err(e) => return Err(anyhow::Error::new(e).context("training")),
    };
    ctx.dir.write_json("metrics_steps.json", &outcome.steps_metrics)?;
    ctx.dir.write_json("metrics_eval.json", &outcome.eval_metrics)?;
    let s = &mut out.summary;
    s.insert("params".into(), cfg.model().num_params(vocab, cfg.data().n_ctx).into());
    s.insert("steps".into(), outcome.steps.into());
    // The LR schedule's length; longer than `steps` when `stop_at` ended the run first.
    s.insert("schedule_steps".into(), train_cfg.total_steps(cfg.data().n_ctx).into());
    if outcome.wall_clock_stop {
        // Where a wall-clock budget ends depends on the machine: not reproducible bit for bit.
        s.insert("wall_clock_stop".into(), true.into());
        out.execution.insert(
            "wall_clock_stop".into(),
            format!("train.max_minutes ended the run at step {} of {}: not reproducible", outcome.steps, train_cfg.budget_steps(cfg.data().n_ctx)),
        );
    }
    out.execution.insert("training_rows".into(), outcome.rows.clone());
    s.insert("tokens".into(), outcome.tokens.into());
    s.insert("train_loss".into(), outcome.train_loss.into());
    s.insert("eval_loss".into(), outcome.eval_loss.into());
    s.insert("tokens_per_s".into(), outcome.tokens_per_s.into());
    s.insert("train_wall_s".into(), outcome.wall_s.into());
    s.insert("eval_and_checkpoint_s".into(), outcome.overhead_s.into());
    if outcome.empty_batches > 0 {
        s.insert("empty_batches".into(), outcome.empty_batches.into());
        out.execution.insert(
            "empty_batches".into(),
            format!("{} step(s) whose global batch held no target were skipped (no optimizer step; the schedule did not advance)", outcome.empty_batches),
        );
    }
    if let Some(scale) = outcome.amp_final_scale {
        s.insert("amp_skipped_steps".into(), outcome.amp_skipped_steps.into());
        s.insert("amp_final_scale".into(), scale.into());
        out.execution.insert("amp_skipped_steps".into(), outcome.amp_skipped_steps.to_string());
    }
    s.insert(
        "checkpoints".into(),
        serde_json::to_value(&outcome.checkpoints).expect("serializes"),
    );
    Ok(out)
}
