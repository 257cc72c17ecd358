//! Experiment kinds, one file each. An experiment says what to compute; the runner
//! ([`crate::runner`]) owns folders, manifests and hashes, the report writer owns tables.
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
use crate::suite::{Run, RunConfig};
use anyhow::{Context, Result};
use mm_models::CausalLm;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use tch::{nn, Device};

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
        let manifest = dir.verified_finished().with_context(|| {
            format!(
                "needs the finished `{}` run {} in {}; it is missing, failed, or its files changed since it finished \
                 (run the suite again to rebuild it)",
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
        Ok(serde_json::from_str(&text).with_context(|| format!("{}/summary.json is not JSON", dir.path.display()))?)
    }

    /// A file of the producer run, recorded with its sha256 among this run's inputs.
    pub fn producer_file(&self, name: &str, out: &mut RunOutput) -> Result<std::path::PathBuf> {
        let (dir, manifest) = self.producer()?;
        let hash = manifest.files.get(name).with_context(|| format!("the producer run {} has no {name}", dir.path.display()))?;
        out.inputs.insert(format!("{}/{name}", &manifest.run_id[..12]), hash.clone());
        Ok(dir.file(name))
    }
}

/// What an experiment hands back: the numbers for the report, and facts for the manifest.
#[derive(Default)]
pub struct RunOutput {
    pub summary: BTreeMap<String, Value>,
    pub inputs: BTreeMap<String, String>,
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
    out.inputs.extend(corpus.inputs.clone());
    out.inputs.insert("tokenizer.json".into(), tok.sha256.clone());
    if let Some(p) = &cfg.tokenizer_path {
        out.inputs.insert(p.display().to_string(), tok.sha256.clone());
    }
    out.summary.insert("data".into(), corpus.label.into());
    out.summary.insert("vocab_size".into(), tok.vocab_size().into());
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

/// A lower bound on the memory a run needs, with what it counts: fp32 weights, and for the
/// kinds that train, their gradients and AdamW's two moments plus the logits of one batch and
/// their gradient. A run whose lower bound exceeds the device is refused before it allocates.
pub fn memory_lower_bound(config: &crate::suite::RunConfig) -> Option<(u64, String)> {
    use crate::suite::ExperimentKind as K;
    let (model, data) = (config.model.as_ref()?, config.data.as_ref()?);
    let params = model.num_params(data.vocab_size as i64, data.n_ctx);
    let batch = match config.kind {
        K::Clm => config.train.as_ref().map(|t| t.batch_size as u64),
        K::RetrievalInfonce => config.retrieval_infonce.as_ref().map(|r| r.group as u64),
        _ => None,
    };
    Some(match batch {
        Some(b) => {
            let logits = 2 * 4 * b * data.n_ctx as u64 * data.vocab_size as u64;
            (16 * params + logits, format!("{params} parameters with their gradients and AdamW moments in fp32, and the logits of a batch of {b}"))
        }
        None => (4 * params, format!("{params} parameters in fp32")),
    })
}
