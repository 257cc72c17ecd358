//! Using trained models: load a run's model and tokenizer ([`Loaded`]), generate text from it
//! ([`generate`]) and score it on any text ([`eval`]).
pub mod eval;
pub mod export;
pub mod generate;

use crate::data::Tok;
use crate::suite::RunConfig;
use anyhow::{bail, Context, Result};
use mm_models::CausalLm;
use std::path::{Path, PathBuf};
use tch::{nn, Device};

/// A run's model with its tokenizer and settings, ready for inference.
pub struct Loaded {
    pub config: RunConfig,
    pub tok: Tok,
    pub model: Box<dyn CausalLm>,
    _vs: nn::VarStore,
    /// The run folder whose config and tokenizer were used.
    pub run_dir: PathBuf,
    pub checkpoint: PathBuf,
    pub checkpoint_sha256: String,
    pub device: Device,
}

impl Loaded {
    /// The run's id as its folder names it (first 12 characters).
    pub fn short_id(&self) -> String {
        self.run_dir.file_name().map(|n| n.to_string_lossy().chars().take(12).collect()).unwrap_or_default()
    }

    /// `masked_mixer d64 n2 (run 1a2b3c4d5e6f)`.
    pub fn label(&self) -> String {
        format!("{} (run {})", self.config.model().label(), self.short_id())
    }

    pub fn n_ctx(&self) -> i64 {
        self.config.data().n_ctx
    }
}

/// A run given on the command line: a run folder, a checkpoint file (its folder gives the config
/// and tokenizer, or `model_of` does), or a run id (6+ characters) under `results`.
pub fn resolve(target: &str, results: &Path, model_of: Option<&str>) -> Result<(PathBuf, PathBuf)> {
    let path = Path::new(target);
    let (run_dir, checkpoint) = if path.is_dir() {
        (path.to_path_buf(), path.join("model.safetensors"))
    } else if path.is_file() {
        let dir = match model_of {
            Some(m) => resolve(m, results, None).context("--model-of")?.0,
            // A run's own checkpoint: `<run>/model.safetensors` or `<run>/checkpoints/step-*.safetensors`.
            None => {
                let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
                match parent.file_name() {
                    Some(n) if n == "checkpoints" => parent.parent().map(Path::to_path_buf).unwrap_or_default(),
                    _ => parent,
                }
            }
        };
        (dir, path.to_path_buf())
    } else if target.len() >= 6 && target.chars().all(|c| c.is_ascii_hexdigit()) {
        let mut found = Vec::new();
        for suite in std::fs::read_dir(results).with_context(|| format!("listing {} to find run {target} (--results)", results.display()))?.flatten() {
            for run in std::fs::read_dir(suite.path()).into_iter().flatten().flatten() {
                let name = run.file_name().to_string_lossy().to_string();
                if name.starts_with(target) && !name.contains('.') && run.path().is_dir() {
                    found.push(run.path());
                }
            }
        }
        match found.len() {
            1 => {
                let dir = found.pop().expect("one");
                (dir.clone(), dir.join("model.safetensors"))
            }
            0 => bail!("`{target}`: no run folder under {} starts with it; give a run folder, a checkpoint or a run id from `harness plan`", results.display()),
            n => bail!("`{target}` matches {n} runs under {}; give more characters of the id", results.display()),
        }
    } else {
        bail!("`{target}`: no such file or folder, and not a run id (6+ hex characters); give a run folder, its model.safetensors or a run id");
    };
    if let Some(m) = model_of.filter(|_| !path.is_file()) {
        bail!("--model-of {m} is for a checkpoint file outside a run folder; `{target}` is a run");
    }
    Ok((run_dir, checkpoint))
}

/// A finished run's files that a command is about to use, checked against its manifest: each
/// must be one the manifest records, with the hash it records. A changed file is named, not used
/// (a flipped bit in the weights, an edited tokenizer). A run that has not finished records no
/// files yet: its files are used as they are (a checkpoint written mid-run, say).
fn verify_run_files(run_dir: &Path, files: &[&Path]) -> Result<()> {
    let dir = crate::artifacts::RunDir { path: run_dir.to_path_buf() };
    let Some(m) = dir.read_manifest() else { return Ok(()) };
    if m.status != crate::artifacts::RunStatus::Finished {
        return Ok(());
    }
    if m.manifest_sha256.as_ref().is_some_and(|h| *h != m.self_hash()) {
        bail!("{}: the manifest was edited after the run finished (its self-hash does not match); run the suite again to rebuild the run", run_dir.join("manifest.json").display());
    }
    for f in files {
        let Ok(rel) = f.strip_prefix(run_dir) else { continue };
        let rel = rel.to_string_lossy().replace('\\', "/");
        let Some(recorded) = m.files.get(&rel) else {
            bail!("{}: not a file this run wrote (its manifest lists {} files, not this one); give one of them, or a checkpoint outside the run with --model-of", f.display(), m.files.len());
        };
        let now = crate::artifacts::sha256_file(f).with_context(|| format!("reading {}", f.display()))?;
        if &now != recorded {
            bail!(
                "{}: changed since the run finished (sha256 {}..., its manifest records {}...): it is not the run's {rel}; restore it, or run the suite again to rebuild the run",
                f.display(),
                &now[..12],
                &recorded[..recorded.len().min(12)]
            );
        }
    }
    Ok(())
}

/// Loads a run's model (from `checkpoint`, its `model.safetensors` by default) and tokenizer,
/// each checked against the run's manifest first.
pub fn load(run_dir: &Path, checkpoint: &Path, device: Device) -> Result<Loaded> {
    let config_path = run_dir.join("config.json");
    let text = crate::artifacts::read_regular_string(&config_path)
        .with_context(|| format!("{}: not a run folder (no config.json); give a run folder, or --model-of a run with this checkpoint's architecture", run_dir.display()))?;
    let config: RunConfig = serde_json::from_str(&text).with_context(|| format!("{}: not a run config of this harness", config_path.display()))?;
    let (Some(spec), Some(data)) = (&config.model, &config.data) else {
        bail!("{}: this run ({} kind) has no model trained on text", run_dir.display(), config.kind.name());
    };
    let tok_path = run_dir.join("tokenizer.json");
    let json = crate::artifacts::read_regular_string(&tok_path).with_context(|| format!("{}: the run's tokenizer is missing", tok_path.display()))?;
    if !checkpoint.exists() {
        bail!("{}: no checkpoint (the run has not finished, or its kind saves none)", checkpoint.display());
    }
    verify_run_files(run_dir, &[&config_path, &tok_path, checkpoint])?;
    let tok = Tok::from_json(json, &tok_path)?;
    if tok.vocab_size() > data.vocab_size as i64 {
        bail!(
            "{}: the tokenizer has {} tokens but the model embeds {} (data.vocab_size): its ids would index past the embedding; use the run's own tokenizer",
            tok_path.display(),
            tok.vocab_size(),
            data.vocab_size
        );
    }
    let vs = nn::VarStore::new(device);
    let model = spec.build(&vs.root(), data.vocab_size as i64, data.n_ctx).with_context(|| format!("{}: building its model", config_path.display()))?;
    let checkpoint_sha256 = crate::artifacts::sha256_file(checkpoint).with_context(|| format!("reading {}", checkpoint.display()))?;
    mm_models::checkpoint::load(&vs, checkpoint).with_context(|| format!("loading {}", checkpoint.display()))?;
    model.remask();
    Ok(Loaded { config, tok, model, _vs: vs, run_dir: run_dir.into(), checkpoint: checkpoint.into(), checkpoint_sha256, device })
}
