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
use crate::data::{Corpus, Encoded, Tok};
use crate::suite::{ExperimentKind, KindRules, Run, RunConfig, Suite, SuiteError};
use anyhow::{Context, Result};
use mm_models::CausalLm;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
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

/// Tokenized data of a run; the tokenizer is saved into the run folder.
pub struct Prepared {
    pub corpus: Corpus,
    pub tok: Tok,
    pub train: Encoded,
    pub eval: Encoded,
}

pub fn prepare(ctx: &RunContext, out: &mut RunOutput) -> Result<Prepared> {
    let cfg = ctx.run.config.data();
    let corpus = Corpus::load(cfg).context("loading data")?;
    let tok = Tok::for_run(cfg, &corpus, ctx.cache).context("preparing the tokenizer")?;
    crate::artifacts::write_atomic(&ctx.dir.file("tokenizer.json"), tok.json.as_bytes())?;
    let shards = ctx.cache.join("tokens");
    let mut encode = |name: &str, stories: &[String]| -> Result<Encoded> {
        let (enc, how) = crate::data::shards::encode_cached(&tok, stories, cfg.n_ctx, cfg.padding, cfg.packing, &shards)?;
        let what = match (&how.rebuilt, how.hit) {
            (_, true) => "cache hit".to_string(),
            (Some(why), false) => format!("tokenized (cached shard rejected: {why})"),
            (None, false) => "tokenized".to_string(),
        };
        out.execution.insert(
            format!("tokens_{name}"),
            format!("{what} in {:.3} s: {} rows, {} bytes, key {}", how.seconds, enc.len(), how.bytes, &how.key[..12]),
        );
        anyhow::ensure!(
            name != "train" || !enc.is_empty(),
            "the training split has no rows of {} tokens; lower data.n_ctx or add data",
            cfg.n_ctx
        );
        Ok(enc)
    };
    let train = encode("train", &corpus.train)?;
    let eval = encode("eval", &corpus.eval)?;
    out.inputs.extend(&corpus.inputs);
    out.inputs.named("tokenizer.json", tok.sha256.clone());
    if let Some(p) = &cfg.tokenizer_path {
        out.inputs.file(p, tok.sha256.clone());
    }
    out.summary.insert("data".into(), corpus.label.into());
    out.summary.insert("vocab_size".into(), tok.vocab_size().into());
    out.summary.insert("tokenizer".into(), tok.label(cfg).into());
    out.summary.insert("train_stories".into(), corpus.train.len().into());
    // Rows of n_ctx tokens: what an epoch passes over (windows can make several per story).
    out.summary.insert("train_rows".into(), train.len().into());
    out.summary.insert("eval_stories".into(), corpus.eval.len().into());
    Ok(Prepared { corpus, tok, train, eval })
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
        mm_models::ModelSpec::Llama(s) | mm_models::ModelSpec::Transfixer(s) => {
            attention_fact(&mut m, config, s.n_heads, s.d_model / s.n_heads, precision, device);
        }
        mm_models::ModelSpec::Gpt(s) => attention_fact(&mut m, config, s.n_heads, s.d_model / s.n_heads, precision, device),
        mm_models::ModelSpec::LlamaAutoencoder(s) => {
            let h = s.n_heads.unwrap_or(1);
            attention_fact(&mut m, config, h, s.d_model / h, precision, device);
        }
        mm_models::ModelSpec::MixerAutoencoder(_) => {
            m.insert("token_mixing".into(), "Flat: batched matmul, mask applied in forward".into());
        }
    }
    m
}

/// The memory lower bound of a kind that trains with batches of `batch` rows: fp32 weights,
/// their gradients and AdamW's two moments, and the logits of a batch with their gradient.
pub fn training_memory(config: &RunConfig, batch: u64) -> Option<(u64, String)> {
    let (model, data) = (config.model.as_ref()?, config.data.as_ref()?);
    let params = model.num_params(data.vocab_size as i64, data.n_ctx);
    let logits = 2 * 4 * batch * data.n_ctx as u64 * data.vocab_size as u64;
    Some((16 * params + logits, format!("{params} parameters with their gradients and AdamW moments in fp32, and the logits of a batch of {batch}")))
}
