//! Input-representation ("invertibility") test, PAPER.md D: how much of the input survives in
//! the last hidden layer, measured by recovering the input from the output by gradient descent.
//!
//! 1. `e = wte(tokens)`, target `T = A(e)` with A the block stack (no final norm, no head).
//! 2. `a₀ ~ N(0, 1)`; plain gradient descent on `Σ|T − A(a)|` for N steps, lr linear from lr₀
//!    to lr₀/10 (all prompts in one batch: the loss is a sum over prompts, so each prompt's
//!    gradient is the one it would get alone).
//! 3. Decode `a · pinv(W_wte)`, top-k ids per position.
//! 4. Modified Hamming metric: share of non-pad positions whose true token is not in the top-k.
use super::{build_model, Experiment, RunContext, RunOutput};
use crate::data::IGNORE;
use crate::suite::kind::{need_model_data, section_or_default};
use crate::suite::{ExperimentKind, Invalid, KindRules, ModelSource, RepresentationConfig, RepresentationLoss, RunConfig};
use anyhow::{bail, Context, Result};
use mm_models::CausalLm;
use serde::Serialize;
use tch::{Kind, Tensor};

#[derive(Debug, Clone, Serialize)]
pub struct Inversion {
    /// Modified Hamming metric per prompt (0 = recovered, 1 = nothing recovered).
    pub hamming: Vec<f64>,
    /// ‖A(e + 0.05 N) − A(e)‖₁ per prompt, the reference's noise baseline.
    pub noise_l1: Vec<f64>,
    /// ‖T − A(a_N)‖₁ per prompt after the descent.
    pub final_l1: Vec<f64>,
}

/// Share of non-pad positions (mask true) whose id is not among the top-k decoded ids.
/// `topk` `[p, t, k]`, `tokens` `[p, t]`, `mask` `[p, t]` bool -> `[p]`.
pub fn modified_hamming(topk: &Tensor, tokens: &Tensor, mask: &Tensor) -> Vec<f64> {
    let hit = topk.eq_tensor(&tokens.unsqueeze(-1)).any_dim(-1, false); // [p, t]
    let miss = hit.logical_not().logical_and(mask).sum_dim_intlist([-1i64].as_slice(), false, Kind::Double);
    let count = mask.sum_dim_intlist([-1i64].as_slice(), false, Kind::Double).clamp_min(1.0);
    Vec::<f64>::try_from(&(miss / count)).expect("1-d")
}

/// Top-k token ids of `a · pinv(W)`. `a` `[p, t, d]`, `w` `[V, d]` -> `[p, t, k]`.
pub fn decode_topk(a: &Tensor, w: &Tensor, k: i64) -> Tensor {
    let pinv = w.to_kind(Kind::Float).linalg_pinv(1e-15, false); // [d, V]
    a.to_kind(Kind::Float).matmul(&pinv).topk(k, -1, true, true).1
}

pub fn invert(model: &dyn CausalLm, tokens: &Tensor, mask: &Tensor, cfg: &RepresentationConfig, seed: u64) -> Inversion {
    let depth = cfg.depth;
    let (_p, t) = tokens.size2().expect("[p, t]");
    let stack = |x: &Tensor| model.blocks(x, depth, false).narrow(1, cfg.skip, t - cfg.skip);
    let per_prompt = |x: Tensor| Vec::<f64>::try_from(&x.to_kind(Kind::Double)).expect("1-d");
    let l1 = |a: &Tensor, b: &Tensor| (a - b).abs().sum_dim_intlist([1i64, 2].as_slice(), false, Kind::Float);

    let (e, target, noise_l1) = tch::no_grad(|| {
        let e = model.embed(tokens);
        let target = stack(&e);
        tch::manual_seed(seed as i64 ^ 0x0005_0a15e);
        let noisy = &e + Tensor::randn_like(&e) * 0.05;
        let noise_l1 = per_prompt(l1(&stack(&noisy), &target));
        (e, target, noise_l1)
    });
    tch::manual_seed(seed as i64 ^ 0x1a7e_0001);
    let mut a = Tensor::randn_like(&e).set_requires_grad(true);
    let n = cfg.steps;
    for i in 0..n {
        let frac = if n > 1 { i as f64 / (n - 1) as f64 } else { 0.0 };
        let lr = cfg.lr0 + (cfg.lr0 / 10.0 - cfg.lr0) * frac;
        let out = stack(&a);
        let loss = match cfg.loss {
            RepresentationLoss::L1 => (&target - &out).abs().sum(Kind::Float),
            RepresentationLoss::Cosine => {
                let cos = Tensor::cosine_similarity(&target, &out, -1, 1e-8); // [p, t']
                (cos.abs().neg() + 1.0).sum(Kind::Float)
            }
        };
        a.zero_grad();
        loss.backward();
        tch::no_grad(|| {
            let g = a.grad();
            let _ = a.g_sub_(&(g * lr));
        });
    }
    tch::no_grad(|| {
        let final_l1 = per_prompt(l1(&stack(&a), &target));
        let topk = decode_topk(&a, &model.embedding_weight(), cfg.top_k);
        let hamming = modified_hamming(&topk, tokens, mask);
        Inversion { hamming, noise_l1, final_l1 }
    })
}

#[derive(Debug, Serialize)]
struct CheckpointRow {
    step: u64,
    hamming_mean: f64,
    hamming_sd: f64,
    hamming: Vec<f64>,
    noise_l1_mean: f64,
    final_l1_mean: f64,
}

pub struct Representation;

impl KindRules for Representation {
    fn kind(&self) -> ExperimentKind {
        ExperimentKind::Representation
    }

    fn sections(&self) -> &'static [&'static str] {
        &["model", "data", "representation", "device", "cpu_kernels"]
    }

    fn producers(&self) -> &'static [ExperimentKind] {
        &[ExperimentKind::Clm]
    }

    fn validate(&self, c: &mut RunConfig) -> Result<(), Invalid> {
        need_model_data(c)?;
        let (vocab, n_ctx, blocks) = (c.data().vocab_size as i64, c.data().n_ctx, c.model().n_layers());
        let has_upstream = c.upstream.is_some();
        let r = section_or_default(&mut c.representation, "representation")?;
        if r.steps == 0 {
            return Err(Invalid::new("representation.steps", "must be at least 1"));
        }
        if !(r.lr0 > 0.0 && r.lr0.is_finite()) {
            return Err(Invalid::new("representation.lr0", format!("must be a positive number, got {}", r.lr0)));
        }
        if r.top_k < 1 || r.top_k > vocab {
            return Err(Invalid::new("representation.top_k", format!("must be in 1..={vocab} (the vocabulary, data.vocab_size), got {}", r.top_k)));
        }
        if r.depth.is_some_and(|d| d == 0 || d > blocks) {
            let s = if blocks == 1 { "" } else { "s" };
            return Err(Invalid::new(
                "representation.depth",
                format!("must be in 1..={blocks}: the model has {blocks} block{s}; leave it out for all of them, got {}", r.depth.unwrap_or(0)),
            ));
        }
        if r.skip < 0 || r.skip >= n_ctx {
            return Err(Invalid::new("representation.skip", format!("must be in 0..n_ctx ({n_ctx}), got {}", r.skip)));
        }
        if has_upstream && r.source == ModelSource::Untrained {
            r.source = ModelSource::Trained; // `from` means: every checkpoint of that run
        }
        if (r.source == ModelSource::Trained) != has_upstream {
            return Err(Invalid::new(
                "representation.source",
                "the checkpoints of a CLM run come through `from = \"<clm experiment>\"` (then source is \"trained\"); \
                 without `from`, use \"untrained\" or \"checkpoint\"",
            ));
        }
        if (r.source == ModelSource::Checkpoint) != r.checkpoint.is_some() {
            return Err(Invalid::new(
                "representation.checkpoint",
                "give checkpoint = \"<file>.safetensors\" exactly when source = \"checkpoint\"",
            ));
        }
        if r.prompts.is_empty() && r.n_prompts == 0 {
            return Err(Invalid::new("representation.n_prompts", "needs prompts or n_prompts >= 1"));
        }
        Ok(())
    }

    /// Two prompts, two gradient-descent steps each (the trained source's checkpoints are its
    /// producer's, at shapes two of them).
    fn at_shapes(&self, c: &mut RunConfig) {
        if let Some(r) = c.representation.as_mut() {
            r.steps = 2;
            r.n_prompts = r.n_prompts.min(2);
            r.prompts.truncate(2);
        }
    }
}

impl Experiment for Representation {
    fn run(&self, ctx: &RunContext) -> Result<RunOutput> {
        run(ctx)
    }

    /// The frozen model's weights, the activations of the blocks the gradient goes back through
    /// for every prompt at once, and the decoding's [prompts, n_ctx, V] scores.
    fn memory_estimate(&self, c: &RunConfig) -> Option<(u64, String)> {
        let (r, data, model) = (c.representation.as_ref()?, c.data.as_ref()?, c.model.as_ref()?);
        let prompts = if r.prompts.is_empty() { r.n_prompts } else { r.prompts.len() };
        let step = mm_models::StepShape { batch: prompts.max(1) as i64, n_ctx: data.n_ctx, head: true, scores: false, optimizer: false };
        super::forward_estimate(c, data.vocab_size as i64, step, Some(r.depth.unwrap_or(model.n_layers())), "an inversion")
    }
}


fn run(ctx: &RunContext) -> Result<RunOutput> {
    let cfg = &ctx.run.config;
    let rcfg = cfg.representation.as_ref().expect("validated: representation has its section");
    let mut out = RunOutput::default();
    // The prompts are a few evaluation documents: the splits are scanned, not encoded.
    let (corpus, tok) = super::prepare_text(ctx, &mut out)?;
    let prompts: Vec<String> = if rcfg.prompts.is_empty() { corpus.eval_head(rcfg.n_prompts)? } else {
        rcfg.prompts.clone()
    };
    if prompts.is_empty() {
        bail!("no prompts: the evaluation split is empty; give representation.prompts or more data");
    }
    let enc = tok.encode(&prompts, cfg.data().n_ctx, cfg.data().padding)?;
    let tokens = enc.tokens.to_device(ctx.device);
    let mask = enc.labels.ne(IGNORE).to_device(ctx.device);
    let vocab = super::model_vocab(cfg, &tok)?;
    let (mut vs, model) = build_model(cfg, vocab, cfg.seed, ctx.device)?;
    vs.freeze(); // gradients flow to the input only
    out.execution.extend(super::execution_facts(cfg, ctx.device));

    // Step 0 is the untrained model of this seed; a trained source adds the CLM run's checkpoints.
    let mut checkpoints: Vec<(u64, Option<std::path::PathBuf>)> = vec![(0, None)];
    if rcfg.source == ModelSource::Trained {
        // The producer (`from`): every checkpoint of that CLM run, in step order.
        let summary_path = ctx.producer_file("summary.json", &mut out)?;
        let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(summary_path)?)?;
        let listed: Vec<(u64, String)> = serde_json::from_value(summary["checkpoints"].clone()).context("reading the CLM run's checkpoints")?;
        for (step, rel) in listed {
            checkpoints.push((step, Some(ctx.producer_file(&rel, &mut out)?)));
        }
    }
    if let (ModelSource::Checkpoint, Some(path)) = (rcfg.source, &rcfg.checkpoint) {
        // The imported weights replace the init: no step-0 row.
        let hash = crate::artifacts::sha256_file(path).with_context(|| format!("reading {}", path.display()))?;
        out.inputs.file(path, hash);
        checkpoints = vec![(0, Some(path.clone()))];
    }
    let mut rows = Vec::new();
    for (step, path) in &checkpoints {
        if let Some(p) = path {
            mm_models::checkpoint::load(&vs, p)?;
            model.remask(); // reference checkpoints hold non-zero masked entries (I.1)
        }
        let inv = invert(model.as_ref(), &tokens, &mask, rcfg, cfg.seed);
        let (m, sd) = crate::stats::mean_sd(&inv.hamming);
        rows.push(CheckpointRow {
            step: *step,
            hamming_mean: m,
            hamming_sd: sd,
            noise_l1_mean: crate::stats::mean_sd(&inv.noise_l1).0,
            final_l1_mean: crate::stats::mean_sd(&inv.final_l1).0,
            hamming: inv.hamming,
        });
    }
    ctx.dir.write_json("representation.json", &rows)?;
    let last = rows.last().expect("at least step 0");
    let s = &mut out.summary;
    s.insert("params".into(), cfg.model().num_params(vocab, cfg.data().n_ctx).into());
    s.insert("source".into(), format!("{:?}", rcfg.source).to_lowercase().into());
    s.insert("step".into(), last.step.into());
    s.insert("hamming".into(), last.hamming_mean.into());
    s.insert("hamming_sd_prompts".into(), last.hamming_sd.into());
    if rcfg.source != ModelSource::Checkpoint {
        s.insert("hamming_untrained".into(), rows[0].hamming_mean.into());
    }
    s.insert("noise_l1".into(), last.noise_l1_mean.into());
    s.insert("final_l1".into(), last.final_l1_mean.into());
    s.insert("prompts".into(), prompts.len().into());
    s.insert(
        "curve".into(),
        serde_json::to_value(rows.iter().map(|r| (r.step, r.hamming_mean)).collect::<Vec<_>>()).expect("serializes"),
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_the_embedding_itself_gives_hamming_zero() {
        tch::manual_seed(0);
        let w = Tensor::randn([50, 16], (Kind::Float, tch::Device::Cpu));
        let tokens = Tensor::randint(50, [3, 7], (Kind::Int64, tch::Device::Cpu));
        let e = w.index_select(0, &tokens.view([-1])).view([3, 7, 16]);
        let mask = tokens.ones_like().to_kind(Kind::Bool);
        let top1 = decode_topk(&e, &w, 1);
        assert_eq!(modified_hamming(&top1, &tokens, &mask), vec![0.0, 0.0, 0.0]);
        // Random vectors decode to the right token only by chance.
        let noise = Tensor::randn([3, 7, 16], (Kind::Float, tch::Device::Cpu));
        let h = modified_hamming(&decode_topk(&noise, &w, 1), &tokens, &mask);
        assert!(h.iter().all(|x| *x > 0.5), "{h:?}");
    }

    #[test]
    fn hamming_counts_only_unmasked_positions() {
        let tokens = Tensor::from_slice(&[1i64, 2, 3, 4]).view([1, 4]);
        let topk = Tensor::from_slice(&[1i64, 0, 9, 9, 3, 0, 9, 9]).view([1, 4, 2]);
        let mask = Tensor::from_slice(&[true, true, true, false]).view([1, 4]);
        // positions 0 and 2 hit; 1 misses; 3 is a pad
        assert_eq!(modified_hamming(&topk, &tokens, &mask), vec![1.0 / 3.0]);
    }
}
