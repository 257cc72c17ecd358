//! Frozen embeddings, PAPER.md A.6: one last-layer hidden vector per query and per passage of a
//! pairs set, from a producer run's model (`from` a CLM or InfoNCE run), a fresh init, a
//! reference checkpoint, or a file computed elsewhere (e5-mistral's, say). Written once to
//! `embeddings.safetensors` and read by every consumer.
use super::{build_model, model_vocab, Experiment, RunContext, RunOutput};
use crate::data::pairs::{self, PairSplit};
use crate::data::{Corpus, Tok};
use crate::suite::kind::{check_pairs, need_model_data, section_or_default};
use crate::suite::{EmbedConfig, ExperimentKind, Invalid, KindRules, PaddingSide, RunConfig, WeightsSource};
use anyhow::{bail, ensure, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use mm_models::retrieval::{embedding_at, EmbedPosition};
use mm_models::CausalLm;
use std::collections::BTreeMap;
use std::path::Path;
use tch::{nn, Device, Kind, Tensor};

/// The file an embed run writes.
pub const FILE: &str = "embeddings.safetensors";

/// A pairs set's embeddings: row i of a split's queries matches row i of its passages.
///
/// # Shapes
/// each `[n, d]`, float32, on the CPU.
pub struct Embeddings {
    pub train: Option<(Tensor, Tensor)>,
    pub test: (Tensor, Tensor),
}

impl Embeddings {
    pub fn dim(&self) -> i64 {
        self.test.0.size()[1]
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let mut named: Vec<(&str, &Tensor)> = vec![("test_query", &self.test.0), ("test_passage", &self.test.1)];
        if let Some((q, p)) = &self.train {
            named.extend([("train_query", q), ("train_passage", p)]);
        }
        named.sort_by_key(|(k, _)| *k);
        crate::artifacts::write_atomic_with(path, |tmp: &Path| Tensor::write_safetensors(&named, tmp))
            .with_context(|| format!("writing {}", path.display()))
    }

    /// Reads an embed run's file, or a file made elsewhere: `train_query`, `train_passage`,
    /// `test_query`, `test_passage` (the train pair optional), or just `query` and `passage`
    /// (the test pair). Checks that the shapes pair up.
    pub fn load(path: &Path) -> Result<Self> {
        let read = Tensor::read_safetensors(path).with_context(|| format!("{}: not a readable safetensors file", path.display()))?;
        let mut t: BTreeMap<String, Tensor> = read.into_iter().collect();
        let names: Vec<String> = t.keys().cloned().collect();
        let mut take = |k: &str| t.remove(k);
        let test = match (take("test_query"), take("test_passage"), take("query"), take("passage")) {
            (Some(q), Some(p), None, None) | (None, None, Some(q), Some(p)) => (q, p),
            _ => bail!(
                "{}: expected tensors test_query and test_passage (and optionally train_query, train_passage), \
                 or query and passage; found {names:?}",
                path.display()
            ),
        };
        let train = match (take("train_query"), take("train_passage")) {
            (Some(q), Some(p)) => Some((q, p)),
            (None, None) => None,
            _ => bail!("{}: train_query and train_passage come together; found {names:?}", path.display()),
        };
        let e = Self { train, test };
        let d = e.dim();
        for (split, (q, p)) in [("test", Some(&e.test)), ("train", e.train.as_ref())].into_iter().filter_map(|(s, x)| Some((s, x?))) {
            ensure!(
                q.dim() == 2 && p.dim() == 2 && q.size() == p.size() && q.size()[1] == d,
                "{}: {split} queries {:?} and passages {:?} must be [n, d] with the same n and d = {d}",
                path.display(),
                q.size(),
                p.size()
            );
            ensure!(q.size()[0] >= 2, "{}: {split} holds {} pairs; retrieval needs at least 2", path.display(), q.size()[0]);
            ensure!(d >= 1, "{}: {split} embeddings have width 0", path.display());
            for (what, x) in [("queries", q), ("passages", p)] {
                let bad = x.to_kind(Kind::Double).isfinite().logical_not().any_dim(1, false).sum(Kind::Int64).int64_value(&[]);
                ensure!(
                    bad == 0,
                    "{}: {bad} of the {} {split} {what} hold NaN or infinite values: the file cannot be scored; remake it",
                    path.display(),
                    x.size()[0]
                );
            }
        }
        let f = |x: Tensor| x.to_kind(Kind::Float).to_device(Device::Cpu);
        Ok(Self { train: e.train.map(|(q, p)| (f(q), f(p))), test: (f(e.test.0), f(e.test.1)) })
    }
}

/// The producer run's embeddings (`from` an embed experiment), recorded among the inputs, with
/// the pairs' provenance label ("synthetic", "derived", "file") copied into `out`'s summary.
pub fn from_producer(ctx: &RunContext, out: &mut RunOutput) -> Result<Embeddings> {
    let path = ctx.producer_file(FILE, out)?;
    let emb = Embeddings::load(&path).context("reading the producer's embeddings")?;
    if let Some(label) = ctx.producer_summary()?.get("data") {
        out.summary.insert("data".into(), label.clone());
    }
    Ok(emb)
}

/// A model that turns texts into vectors: tokenized to n_ctx with the given padding, the
/// hidden state at `position`.
pub struct Embedder<'a> {
    pub model: &'a dyn CausalLm,
    pub tok: &'a Tok,
    pub n_ctx: i64,
    pub padding: PaddingSide,
    pub position: EmbedPosition,
    pub device: Device,
}

impl<'a> Embedder<'a> {
    /// The embedder of a run: its data's n_ctx, the given padding (the model's training side
    /// when absent) and position, on the run's device.
    pub fn for_run(
        ctx: &RunContext,
        model: &'a dyn CausalLm,
        tok: &'a Tok,
        padding: Option<PaddingSide>,
        position: EmbedPosition,
    ) -> Self {
        let data = ctx.run.config.data();
        Self { model, tok, n_ctx: data.n_ctx, padding: padding.unwrap_or(data.padding), position, device: ctx.device }
    }

    /// Token ids of texts, `[n, n_ctx]` on the CPU.
    pub fn tokens(&self, texts: &[String]) -> Result<Tensor> {
        Ok(self.tok.encode(texts, self.n_ctx, self.padding)?.tokens)
    }

    /// Embeddings of token rows, with gradients when the caller wants them: `[b, t]` -> `[b, d]`.
    pub fn forward(&self, tokens: &Tensor, train: bool) -> Tensor {
        let tokens = tokens.to_device(self.device);
        let hidden = self.model.embedding_states(&tokens, train);
        embedding_at(&hidden, &tokens, self.tok.pad_id, self.position)
    }

    /// Frozen embeddings of texts in batches: `[n, d]` float32 on the CPU.
    pub fn embed(&self, texts: &[String], batch: i64, bar: &ProgressBar) -> Result<Tensor> {
        let tokens = self.tokens(texts)?;
        let n = tokens.size()[0];
        // One output allocated once: a small tensor kept per batch would sit between the
        // batches' freed temporaries, and a heap that keeps freed memory
        // (`device::keep_freed_memory`) would grow by a batch's forward every few batches.
        let mut out: Option<Tensor> = None;
        tch::no_grad(|| {
            let mut start = 0;
            while start < n {
                let len = batch.min(n - start);
                let e = self.forward(&tokens.narrow(0, start, len), false).to_kind(Kind::Float).to_device(Device::Cpu);
                let all = out.get_or_insert_with(|| Tensor::zeros([n, e.size()[1]], (Kind::Float, Device::Cpu)));
                all.narrow(0, start, len).copy_(&e);
                bar.inc(len as u64);
                start += len;
            }
        });
        out.ok_or_else(|| anyhow::anyhow!("no texts to embed"))
    }
}

/// The weights and tokenizer a run embeds with: its producer's (`from`), else a fresh init
/// from the run's seed (optionally overwritten by a reference checkpoint) with the tokenizer of
/// the run's data. The tokenizer is saved into the run folder.
pub fn load_model(
    ctx: &RunContext,
    checkpoint: Option<&Path>,
    out: &mut RunOutput,
) -> Result<(nn::VarStore, Box<dyn CausalLm>, Tok)> {
    let cfg = &ctx.run.config;
    let tok = if cfg.upstream.is_some() {
        let path = ctx.producer_file("tokenizer.json", out)?;
        let json = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        Tok::from_json(json, &path)?
    } else {
        let corpus = Corpus::open(cfg.data()).context("loading the data the tokenizer is trained on")?;
        out.inputs.extend(&corpus.inputs);
        Tok::for_run(cfg.data(), &corpus, ctx.cache).context("preparing the tokenizer")?
    };
    crate::artifacts::write_atomic(&ctx.dir.file("tokenizer.json"), tok.json.as_bytes())?;
    out.inputs.named("tokenizer.json", tok.sha256.clone());
    let vocab = model_vocab(cfg, &tok)?;
    let (vs, model) = build_model(cfg, vocab, cfg.seed, ctx.device)?;
    let weights = match (cfg.upstream.is_some(), checkpoint) {
        (true, _) => Some(ctx.producer_file("model.safetensors", out)?),
        (false, Some(p)) => {
            let hash = crate::artifacts::sha256_file(p).with_context(|| format!("reading {}", p.display()))?;
            out.inputs.file(p, hash);
            Some(p.to_path_buf())
        }
        (false, None) => None,
    };
    if let Some(p) = weights {
        mm_models::checkpoint::load(&vs, &p).with_context(|| format!("loading {}", p.display()))?;
        model.remask(); // reference checkpoints hold non-zero masked entries (PAPER.md I.1)
    }
    Ok((vs, model, tok))
}

pub fn progress(ctx: &RunContext, total: u64, what: &str) -> ProgressBar {
    if !ctx.progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    let template = format!("  {{bar:30}} {{pos}}/{{len}} {what} [{{elapsed_precise}} < {{eta_precise}}]");
    bar.set_style(ProgressStyle::with_template(&template).expect("valid template"));
    bar
}

fn pairs_facts(split: &PairSplit, out: &mut RunOutput) {
    out.inputs.extend(&split.inputs);
    out.summary.insert("data".into(), split.label.into());
    out.summary.insert("train_pairs".into(), split.train.len().into());
    if let Some((duplicates, in_train)) = split.defects {
        out.summary.insert("duplicate_pairs".into(), duplicates.into());
        out.summary.insert("test_pairs_in_train".into(), in_train.into());
    }
    out.summary.insert("test_pairs".into(), split.test.len().into());
}

pub struct Embed;

impl KindRules for Embed {
    fn kind(&self) -> ExperimentKind {
        ExperimentKind::Embed
    }

    fn sections(&self) -> &'static [&'static str] {
        &["model", "data", "pairs", "embed", "device", "cpu_kernels"]
    }

    fn producers(&self) -> &'static [ExperimentKind] {
        &[ExperimentKind::Clm, ExperimentKind::RetrievalInfonce]
    }

    fn validate(&self, c: &mut RunConfig) -> Result<(), Invalid> {
        let has_upstream = c.upstream.is_some();
        let e = section_or_default(&mut c.embed, "embed")?;
        match (e.source, has_upstream) {
            (WeightsSource::Producer, false) => {
                return Err(Invalid::new(
                    "embed.source",
                    "embeds with the weights of `from = \"<clm or retrieval_infonce experiment>\"`; without `from`, \
                     set source = \"untrained\", \"checkpoint\" or \"file\"",
                ))
            }
            (WeightsSource::Producer, true) => {}
            (_, true) => return Err(Invalid::new("embed.source", "with `from`, the producer's weights are used; remove source or from")),
            _ => {}
        }
        if (e.source == WeightsSource::Checkpoint) != e.checkpoint.is_some() {
            return Err(Invalid::new("embed.checkpoint", "give checkpoint = \"<file>.safetensors\" exactly when source = \"checkpoint\""));
        }
        if (e.source == WeightsSource::File) != e.file.is_some() {
            return Err(Invalid::new("embed.file", "give file = \"<embeddings>.safetensors\" exactly when source = \"file\""));
        }
        if e.label.is_some() && e.source != WeightsSource::File {
            return Err(Invalid::new("embed.label", "names embeddings from a file; a model's runs are named by their model"));
        }
        if e.batch_size < 1 {
            return Err(Invalid::new("embed.batch_size", format!("must be at least 1, got {}", e.batch_size)));
        }
        if e.source == WeightsSource::File {
            // Embeddings computed elsewhere: no model, data or pairs take part.
            c.model = None;
            c.data = None;
            c.pairs = None;
            if let Some(e) = c.embed.as_mut() {
        e.padding = None;
        }
        } else {
            need_model_data(c)?;
            check_pairs(c)?;
        }
        Ok(())
    }

    /// One text at a time.
    fn at_shapes(&self, c: &mut RunConfig) {
        if let Some(e) = c.embed.as_mut() {
            e.batch_size = e.batch_size.min(16);
        }
    }
}

impl Experiment for Embed {
    fn run(&self, ctx: &RunContext) -> Result<RunOutput> {
        run(ctx)
    }

    /// The model's weights and one batch's forward without gradients (the hidden states only).
    fn memory_estimate(&self, c: &RunConfig) -> Option<(u64, String)> {
        let (e, data) = (c.embed.as_ref()?, c.data.as_ref()?);
        let step = mm_models::StepShape { batch: e.batch_size, n_ctx: data.n_ctx, head: false, scores: false, optimizer: false };
        super::forward_estimate(c, data.vocab_size as i64, step, None, "an embedding forward")
    }
}


fn run(ctx: &RunContext) -> Result<RunOutput> {
    let cfg = &ctx.run.config;
    let e: &EmbedConfig = cfg.embed.as_ref().expect("validated: embed has its section");
    let mut out = RunOutput::default();
    out.execution.extend(super::execution_facts(cfg, ctx.device));
    if e.source == WeightsSource::File {
        let path = e.file.as_deref().expect("validated: source = file has a file");
        let hash = crate::artifacts::sha256_file(path).with_context(|| format!("embed.file: reading {}", path.display()))?;
        out.inputs.file(path, hash);
        let emb = Embeddings::load(path).context("embed.file")?;
        emb.save(&ctx.dir.file(FILE))?;
        let s = &mut out.summary;
        s.insert("data".into(), "file".into());
        s.insert("embed_dim".into(), emb.dim().into());
        s.insert("test_pairs".into(), emb.test.0.size()[0].into());
        s.insert("train_pairs".into(), emb.train.as_ref().map_or(0, |t| t.0.size()[0]).into());
        return Ok(out);
    }
    let split = pairs::load(cfg.pairs.as_ref().expect("validated: embed has pairs")).context("loading pairs")?;
    pairs_facts(&split, &mut out);
    let (_vs, model, tok) = load_model(ctx, e.checkpoint.as_deref(), &mut out)?;
    let embedder = Embedder::for_run(ctx, model.as_ref(), &tok, e.padding, e.position);
    let total = 2 * (split.train.len() + split.test.len()) as u64;
    let bar = progress(ctx, total, "texts embedded");
    let texts = |pairs: &[crate::data::pairs::Pair], query: bool| -> Vec<String> {
        pairs.iter().map(|p| if query { p.query.clone() } else { p.passage.clone() }).collect()
    };
    let embed = |v: Vec<String>| embedder.embed(&v, e.batch_size, &bar);
    let emb = Embeddings {
        train: Some((embed(texts(&split.train, true))?, embed(texts(&split.train, false))?)),
        test: (embed(texts(&split.test, true))?, embed(texts(&split.test, false))?),
    };
    bar.finish_and_clear();
    emb.save(&ctx.dir.file(FILE))?;
    let s = &mut out.summary;
    s.insert("embed_dim".into(), emb.dim().into());
    s.insert("position".into(), serde_json::to_value(e.position)?);
    s.insert("padding".into(), serde_json::to_value(embedder.padding)?);
    s.insert("params".into(), cfg.model().num_params(cfg.data().vocab_size as i64, cfg.data().n_ctx).into());
    out.execution.insert(
        "embedding".into(),
        format!(
            "last hidden layer ({}) at {:?}, {:?}-padded to {} tokens, fp32, no_grad",
            match cfg.model() {
                mm_models::ModelSpec::Llama(_) | mm_models::ModelSpec::Transfixer(_) => "after the final RMSNorm",
                mm_models::ModelSpec::MixerAutoencoder(_) | mm_models::ModelSpec::LlamaAutoencoder(_) => "encoder output",
                _ => "block stack output",
            },
            e.position,
            embedder.padding,
            cfg.data().n_ctx
        )
        .to_lowercase(),
    );
    Ok(out)
}
