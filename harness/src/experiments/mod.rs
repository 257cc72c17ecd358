//! Experiment kinds, one file each, each an [`Experiment`]: the sections it reads, what it
//! consumes, how it checks its settings, its memory lower bound, how it runs and its report
//! section. An experiment says what to compute; the runner ([`crate::runner`]) owns folders,
//! manifests and hashes, the report writer owns the common tables.
//!
//! Adding a kind: a file here with a unit struct implementing [`KindRules`] and [`Experiment`],
//! its name in [`ExperimentKind`] and its arm in [`of`] (the compiler finds a missing arm); a
//! new settings section also goes into `RunConfig` and `suite::schema::SECTIONS`
//! (`docs/kinds.md` walks through it on `retrieval_eval`).
pub mod clm;
pub mod embed;
pub mod representation;
pub mod retrieval_eval;
pub mod retrieval_frozen;
pub mod retrieval_infonce;
pub mod sampling;
pub mod throughput;

use crate::artifacts::RunDir;
use crate::data::rows::{Rows, TokenRows};
use crate::data::{Corpus, Tok};
use crate::suite::{ExperimentKind, KindRules, Run, RunConfig, Suite, SuiteError};
use anyhow::{Context, Result};
use mm_models::CausalLm;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use tch::{nn, Device};

/// An experiment kind: its suite-facing rules ([`KindRules`]) and how it runs.
pub trait Experiment: KindRules {
    /// Runs one run of this kind; the runner has made its folder and writes its manifest.
    fn run(&self, ctx: &RunContext) -> Result<RunOutput>;

    /// The settings key of the precision this kind trains in, named when bf16 is refused on a
    /// CPU without bf16 matrix units (`kernels::check_bf16`); `None` for a kind that only
    /// measures.
    fn trains_in(&self) -> Option<&'static str> {
        None
    }

    /// A lower bound on the memory a run needs, with what it counts; a run whose bound exceeds
    /// its device is refused before it allocates. By default: the model's fp32 weights.
    fn memory_lower_bound(&self, config: &RunConfig) -> Option<(u64, String)> {
        let (model, data) = (config.model.as_ref()?, config.data.as_ref()?);
        let params = model.num_params(data.vocab_size as i64, data.n_ctx);
        Some((4 * params, format!("{params} parameters in fp32")))
    }

    /// An estimate of the memory a run needs at its peak, activations included, with what it
    /// counts. A CPU run whose estimate exceeds the host's memory is refused before it starts:
    /// on a CPU, running out of memory is the kernel killing the process (and maybe others), not
    /// an error a run can report. By default: the lower bound.
    fn memory_estimate(&self, config: &RunConfig) -> Option<(u64, String)> {
        self.memory_lower_bound(config)
    }

    /// This kind's section of the report, when it has one of its own.
    fn report(&self) -> Option<&'static dyn crate::report::Section> {
        None
    }
}

/// The registry: every kind's implementation.
pub fn of(kind: ExperimentKind) -> &'static dyn Experiment {
    use ExperimentKind as K;
    match kind {
        K::Clm => &clm::Clm,
        K::Representation => &representation::Representation,
        K::Embed => &embed::Embed,
        K::RetrievalFrozen => &retrieval_frozen::RetrievalFrozen,
        K::RetrievalInfonce => &retrieval_infonce::RetrievalInfonce,
        K::RetrievalEval => &retrieval_eval::RetrievalEval,
        K::Throughput => &throughput::Throughput,
    }
}

/// The registry as the suite loader takes it ([`crate::suite::Kinds`]).
pub fn rules(kind: ExperimentKind) -> &'static dyn KindRules {
    of(kind)
}

/// The report sections of the kinds a suite runs, in registry order.
pub fn report_sections(suite: &Suite) -> Vec<&'static dyn crate::report::Section> {
    let kinds: std::collections::BTreeSet<ExperimentKind> = suite.runs.iter().map(|r| r.config.kind).collect();
    kinds.into_iter().filter_map(|k| of(k).report()).collect()
}

/// Reading a suite with every registered kind.
impl Suite {
    pub fn load(path: &Path, overrides: &[(String, toml::Value)], cuda_available: bool) -> Result<Self, SuiteError> {
        Self::load_with(rules, path, None, overrides, cuda_available)
    }

    /// The suite at one of its profiles (`None`: the paper's own scale).
    pub fn load_profile(path: &Path, profile: Option<&str>, overrides: &[(String, toml::Value)], cuda_available: bool) -> Result<Self, SuiteError> {
        Self::load_with(rules, path, profile, overrides, cuda_available)
    }

    pub fn parse(path: &Path, source: String, overrides: &[(String, toml::Value)], cuda_available: bool) -> Result<Self, SuiteError> {
        Self::parse_with(rules, path, source, None, overrides, cuda_available)
    }

    pub fn parse_profile(
        path: &Path,
        source: String,
        profile: Option<&str>,
        overrides: &[(String, toml::Value)],
        cuda_available: bool,
    ) -> Result<Self, SuiteError> {
        Self::parse_with(rules, path, source, profile, overrides, cuda_available)
    }
}

/// What the runner hands an experiment.
pub struct RunContext<'a> {
    pub run: &'a Run,
    pub dir: &'a RunDir,
    pub device: Device,
    /// `results/`: where other runs of the suite live (a representation run reads a CLM one).
    pub results: &'a Path,
    /// Shared caches (tokenizers) under `results/.cache`.
    pub cache: &'a Path,
    pub progress: bool,
    /// How often training writes the state a killed run resumes from.
    pub resume: crate::train::ResumeEvery,
}

impl RunContext<'_> {
    /// The finished run this one consumes (`from`), with its manifest; an error that names it
    /// when it is missing, unfinished or changed since it finished.
    pub fn producer(&self) -> Result<(RunDir, crate::artifacts::Manifest)> {
        let up = self.run.config.upstream.as_ref().context("this run names no producer (from = ...)")?;
        let dir = RunDir::new(self.results, &self.run.suite, &up.run);
        let manifest = dir.check_finished().map_err(|why| {
            anyhow::anyhow!(
                "needs the finished `{}` run {} in {}, but {why} (run the suite again to rebuild it)",
                up.experiment,
                &up.run[..12],
                dir.path.display()
            )
        })?;
        Ok((dir, manifest))
    }

    /// The producer run's `summary.json`.
    pub fn producer_summary(&self) -> Result<serde_json::Map<String, Value>> {
        let (dir, _) = self.producer()?;
        let text = std::fs::read_to_string(dir.file("summary.json")).with_context(|| format!("reading {}/summary.json", dir.path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{}/summary.json is not JSON", dir.path.display()))
    }

    /// A file of the producer run, recorded with its sha256 among this run's inputs.
    pub fn producer_file(&self, name: &str, out: &mut RunOutput) -> Result<std::path::PathBuf> {
        let (dir, manifest) = self.producer()?;
        let hash = manifest.files.get(name).with_context(|| format!("the producer run {} has no {name}", dir.path.display()))?;
        out.inputs.named(format!("{}/{name}", &manifest.run_id[..12]), hash.clone());
        Ok(dir.file(name))
    }
}

/// What an experiment hands back: the numbers for the report, and facts for the manifest.
#[derive(Default)]
pub struct RunOutput {
    pub summary: BTreeMap<String, Value>,
    pub inputs: crate::artifacts::Inputs,
    pub execution: BTreeMap<String, String>,
}

/// Tokenized data of a run; the tokenizer is saved into the run folder. The splits are rows
/// read from their token shards, never held whole.
pub struct Prepared {
    pub corpus: Corpus,
    pub tok: Tok,
    pub train: Arc<TokenRows>,
    pub eval: Arc<TokenRows>,
}

/// A run's corpus (scanned, not held) and tokenizer, saved into the run folder and recorded:
/// what a kind that reads a few documents needs (the representation test's prompts).
pub fn prepare_text(ctx: &RunContext, out: &mut RunOutput) -> Result<(Corpus, Tok)> {
    let cfg = ctx.run.config.data();
    let corpus = Corpus::open(cfg).context("loading data")?;
    let tok = Tok::for_run(cfg, &corpus, ctx.cache).context("preparing the tokenizer")?;
    crate::artifacts::write_atomic(&ctx.dir.file("tokenizer.json"), tok.json.as_bytes())?;
    out.inputs.extend(&corpus.inputs);
    out.inputs.named("tokenizer.json", tok.sha256.clone());
    if let Some(p) = &cfg.tokenizer_path {
        out.inputs.file(p, tok.sha256.clone());
    }
    out.summary.insert("data".into(), corpus.label.into());
    out.summary.insert("vocab_size".into(), tok.vocab_size().into());
    out.summary.insert("tokenizer".into(), tok.label(cfg).into());
    out.summary.insert("train_stories".into(), corpus.train.docs.into());
    out.summary.insert("eval_stories".into(), corpus.eval.docs.into());
    Ok((corpus, tok))
}

/// [`prepare_text`] and both splits encoded (or found in the token cache), as rows of the run's
/// n_ctx, packing and padding.
pub fn prepare(ctx: &RunContext, out: &mut RunOutput) -> Result<Prepared> {
    let cfg = ctx.run.config.data();
    let (corpus, tok) = prepare_text(ctx, out)?;
    let shards = ctx.cache.join("tokens");
    let train = encode_split(&tok, cfg, &shards, "train", &corpus.train, || corpus.train_docs(), out)?;
    let eval = encode_split(&tok, cfg, &shards, "eval", &corpus.eval, || corpus.eval_docs(), out)?;
    // Rows of n_ctx tokens: what an epoch passes over (windows can make several per story).
    out.summary.insert("train_rows".into(), train.len().into());
    Ok(Prepared { corpus, tok, train, eval })
}

/// One split's rows: its shard from the cache (or encoded into it from `docs`), seen at the
/// run's n_ctx, packing and padding; what the cache did goes into the manifest.
fn encode_split<'a>(
    tok: &Tok,
    cfg: &crate::suite::DataConfig,
    shards: &Path,
    name: &str,
    split: &crate::data::SplitInfo,
    docs: impl FnOnce() -> crate::data::Docs<'a>,
    out: &mut RunOutput,
) -> Result<Arc<TokenRows>> {
    let (shard, how) = crate::data::shards::encode_cached(tok, &split.text_sha256, docs, shards)?;
    let what = match (&how.rebuilt, how.hit) {
        (_, true) => "cache hit".to_string(),
        (Some(why), false) => format!("tokenized (cached shard rejected: {why})"),
        (None, false) => "tokenized".to_string(),
    };
    let rows = TokenRows::new(Arc::new(shard), cfg.n_ctx, cfg.packing, cfg.padding, tok.pad_id);
    out.execution.insert(
        format!("tokens_{name}"),
        format!(
            "{what} in {:.3} s: {} documents, {} tokens, {} rows of {}, {} bytes, key {}",
            how.seconds,
            rows.shard().docs(),
            rows.shard().tokens(),
            rows.len(),
            cfg.n_ctx,
            how.bytes,
            &how.key[..12]
        ),
    );
    anyhow::ensure!(name != "train" || !rows.is_empty(), "the training split has no rows of {} tokens; lower data.n_ctx or add data", cfg.n_ctx);
    Ok(Arc::new(rows))
}

/// The model's vocabulary is `data.vocab_size` (the paper fixes vocab_size in its configs), so
/// `harness plan` counts parameters exactly; the tokenizer's ids must fit in it.
pub fn model_vocab(config: &RunConfig, tok: &crate::data::Tok) -> Result<i64> {
    let v = config.data().vocab_size as i64;
    anyhow::ensure!(
        tok.vocab_size() <= v,
        "the tokenizer has {} tokens but data.vocab_size is {v}; set data.vocab_size >= {}",
        tok.vocab_size(),
        tok.vocab_size()
    );
    Ok(v)
}

/// The model of a run, initialised from `seed` (so the same seed gives the same init).
pub fn build_model(config: &RunConfig, vocab: i64, seed: u64, device: Device) -> Result<(nn::VarStore, Box<dyn CausalLm>)> {
    tch::manual_seed(seed as i64);
    let vs = nn::VarStore::new(device);
    let model = config.model().build(&vs.root(), vocab, config.data().n_ctx)?;
    Ok((vs, model))
}

fn attention_fact(
    m: &mut BTreeMap<String, String>,
    config: &RunConfig,
    heads: i64,
    head_dim: i64,
    precision: crate::suite::Precision,
    device: Device,
) {
    let batch = config.train.as_ref().map_or(1, |t| t.batch_size);
    let kind = match precision {
        crate::suite::Precision::Fp16Amp => tch::Kind::Half,
        crate::suite::Precision::Bf16 => tch::Kind::BFloat16,
        crate::suite::Precision::Fp32 => tch::Kind::Float,
    };
    let backend = mm_models::transformer::sdpa_backend(batch, heads, config.data().n_ctx, head_dim, kind, device);
    m.insert("attention".into(), format!("scaled_dot_product_attention(is_causal=true): libtorch picks `{backend}`"));
}

/// Facts about how the models compute, for the manifest (STYLE.md 7: the path actually taken).
pub fn execution_facts(config: &RunConfig, device: Device) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    let precision = config
        .train
        .as_ref()
        .map(|t| t.precision)
        .or(config.retrieval_infonce.as_ref().map(|r| r.precision))
        .unwrap_or_default();
    m.insert("precision".into(), format!("{precision:?}").to_lowercase());
    m.insert("threads".into(), tch::get_num_threads().to_string());
    m.insert("device".into(), crate::device::describe(device));
    let Some(model) = &config.model else { return m };
    match model {
        mm_models::ModelSpec::MaskedMixer(s) => {
            let how = if s.kernel > 1 { "conv1d over the feature axis ('same' padding)" } else { "batched matmul" };
            m.insert("token_mixing".into(), format!("{:?}: {how}, mask applied in forward (diagonal included)", s.mixing()));
            m.insert("mask_grad".into(), format!("{:?}", s.mask_grad).to_lowercase());
        }
        mm_models::ModelSpec::Llama(s) => attention_fact(&mut m, config, s.n_heads, s.d_model / s.n_heads, precision, device),
        mm_models::ModelSpec::Transfixer(s) => {
            attention_fact(&mut m, config, s.n_heads, s.d_model / s.n_heads, precision, device);
            m.insert("mask_grad".into(), format!("{:?}", s.mask_grad).to_lowercase());
        }
        mm_models::ModelSpec::Gpt(s) => attention_fact(&mut m, config, s.n_heads, s.d_model / s.n_heads, precision, device),
        mm_models::ModelSpec::LlamaAutoencoder(s) => {
            let h = s.n_heads.unwrap_or(1);
            attention_fact(&mut m, config, h, s.d_model / h, precision, device);
        }
        mm_models::ModelSpec::MixerAutoencoder(s) => {
            m.insert("token_mixing".into(), "Flat: batched matmul, mask applied in forward".into());
            m.insert("mask_grad".into(), format!("{:?}", s.mask_grad).to_lowercase());
        }
    }
    m
}

/// The memory estimate of a kind that trains with batches of `batch` rows
/// ([`mm_models::ModelSpec::training_bytes`]): weights, gradients, AdamW's moments and its flat
/// gradient buffer and scratch, the activations a step saves, and the logits with their
/// log-softmax and gradient.
pub fn training_estimate(config: &RunConfig, step: mm_models::StepShape) -> Option<(u64, String)> {
    let (model, data) = (config.model.as_ref()?, config.data.as_ref()?);
    Some(step_estimate(config, model.training_memory(data.vocab_size as i64, step), "a training step", step))
}

/// `m`, a step of `what` at `step`'s shape, in bytes and words. On the CPU, where the harness's
/// allocator keeps what a step frees for the next one (`device::keep_freed_memory`), the heap
/// also holds freed temporaries that no later block of a different size reuses: counted as the
/// activations once more and the logits twice more. Measured (docs/data.md, "Memory"): a
/// logits-heavy step (32 x 512 tokens, vocabulary 8000, d64; estimate 5.2 GiB) peaked at 3.5-4.5
/// GiB with freed blocks kept and at 2.1 GiB, its live memory, without; a d1024 n4 mixer's
/// memory step at 8192 tokens (estimate 8.2 GiB) at 7.3 GiB.
pub fn step_estimate(config: &RunConfig, m: mm_models::StepMemory, what: &str, step: mm_models::StepShape) -> (u64, String) {
    let state = if step.optimizer { "weights, gradients and optimizer state" } else { "weights and gradients" };
    estimate_words(config, m, what, step, state)
}

/// A forward of a model that is not trained (its weights frozen, a checkpoint read into them one
/// tensor at a time, `mm_models::checkpoint::TensorFile`): its fp32 weights; the activations of
/// the blocks a gradient to the input goes back through (`grad_blocks` = `Some(k)`), or without
/// gradients one and a half blocks' in flight (a block's intermediates, its input and the
/// layout copies the token mixing makes; each block's are freed before the next); with the head
/// (or a decoding as wide as the vocabulary) its scores, 4 bytes per token and entry. Against
/// measured peaks on the CPU (docs/data.md, "Memory"): an embedding forward of 16 x 512 tokens
/// through a d512 n8 mixer peaked at 1.16 GiB (estimate 1.3), an infer step of 16 x 512 through
/// a d1024 n8 mixer at 1.6 GiB (2.5), an inversion of 2 x 512 tokens through a d1024 n16 mixer
/// at 1.8 GiB (3.0).
pub fn forward_estimate(config: &RunConfig, vocab_size: i64, step: mm_models::StepShape, grad_blocks: Option<usize>, what: &str) -> Option<(u64, String)> {
    let model = config.model.as_ref()?;
    let step = mm_models::StepShape { optimizer: false, ..step };
    let m = model.training_memory(vocab_size, step);
    let blocks = model.n_layers().max(1) as u64;
    let activations = match grad_blocks {
        Some(k) => m.activations / blocks * (k as u64).min(blocks),
        None => 3 * m.activations.div_ceil(2 * blocks),
    };
    let m = mm_models::StepMemory { state: m.state / 2, activations, logits: m.logits / 3 };
    Some(estimate_words(config, m, what, step, "weights"))
}

fn estimate_words(config: &RunConfig, m: mm_models::StepMemory, what: &str, step: mm_models::StepShape, state: &str) -> (u64, String) {
    let gib = crate::device::gib;
    let kept = if config.device == crate::suite::DeviceChoice::Cpu && crate::device::freed_memory_kept() { m.activations + 2 * m.logits } else { 0 };
    let kept_words = if kept > 0 { format!(", {} of freed temporaries the allocator keeps", gib(kept)) } else { String::new() };
    (
        m.total() + kept,
        format!(
            "{what} of {} x {} tokens: {} of {state}, {} of activations, {} of logits{kept_words}",
            step.batch,
            step.n_ctx,
            gib(m.state),
            gib(m.activations),
            gib(m.logits)
        ),
    )
}

/// The memory lower bound of a kind that trains with batches of `batch` rows: fp32 weights,
/// their gradients and AdamW's two moments, and the logits of a batch with their gradient.
pub fn training_memory(config: &RunConfig, batch: u64) -> Option<(u64, String)> {
    let (model, data) = (config.model.as_ref()?, config.data.as_ref()?);
    let params = model.num_params(data.vocab_size as i64, data.n_ctx);
    let logits = 2 * 4 * batch * data.n_ctx as u64 * data.vocab_size as u64;
    Some((16 * params + logits, format!("{params} parameters with their gradients and AdamW moments in fp32, and the logits of a batch of {batch}")))
}

#[cfg(test)]
mod tests {
    use crate::suite::{shapes, ExperimentKind, Suite};

    /// The forward estimates, and the retrieval model's training step, against peaks the shapes
    /// pass measured on the CPU (VmHWM of a process that ran the run alone, the process's own
    /// 0.5 GiB included): each an upper bound, and not so loose that a run which fits is refused.
    #[test]
    fn forward_estimates_bound_the_measured_peaks_within_a_factor_of_two() {
        // As the binary runs: freed blocks kept (the peaks were measured so).
        if !crate::device::keep_freed_memory() {
            eprintln!("skipped: this allocator does not keep freed memory (HARNESS_KEEP_FREED_MEMORY=0?)");
            return;
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../suites/paper");
        // (The retrieval model's cases: its step at n = 32 and n = 128 slots.)
        let cases = [
            ("retrieval_frozen_tinystories", ExperimentKind::Embed, "masked_mixer d512 n8", None, 1183.0),
            ("retrieval_frozen_fineweb", ExperimentKind::Embed, "masked_mixer d512 n16", None, 1029.0),
            ("retrieval_frozen_fineweb", ExperimentKind::RetrievalFrozen, "masked_mixer d512 n16", Some(32), 939.0),
            ("retrieval_frozen_fineweb", ExperimentKind::RetrievalFrozen, "masked_mixer d512 n16", Some(128), 1907.0),
            ("throughput", ExperimentKind::Throughput, "masked_mixer d1024 n8", None, 1650.0),
            ("representation_fineweb", ExperimentKind::Representation, "masked_mixer d1024 n16", None, 1783.0),
        ];
        for (suite, kind, model, slots, peak_mib) in cases {
            let s = Suite::load_profile(&root.join(format!("{suite}.toml")), Some(shapes::SHAPES), &[], false).unwrap();
            let run = s
                .runs
                .iter()
                .find(|r| {
                    r.config.kind == kind
                        && r.config.model.as_ref().is_some_and(|m| m.label() == model)
                        && r.config.throughput.as_ref().is_none_or(|t| t.mode == crate::suite::config::Mode::Infer)
                        && slots.is_none_or(|n| r.config.retrieval_frozen.as_ref().is_some_and(|f| f.n == n))
                })
                .unwrap_or_else(|| panic!("{suite}: no {kind:?} run of {model}"));
            let (bytes, what) = super::of(kind).memory_estimate(&run.config).unwrap();
            let est_mib = (bytes + (512 << 20)) as f64 / (1 << 20) as f64;
            eprintln!("{suite} {model}: estimate {est_mib:.0} MiB, peak {peak_mib} MiB");
            assert!(est_mib >= peak_mib && est_mib <= 2.0 * peak_mib, "{suite} {model}: estimate {est_mib:.0} MiB ({what}) vs peak {peak_mib} MiB");
        }
    }
}
