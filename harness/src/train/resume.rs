//! The resumable state of a training loop (`<run>/resume/`): the loop's own state (JSON) with the
//! weights, AdamW moments and step counts and the fp16 loss scale (safetensors beside it). Written
//! tensors first, then `state.json` atomically (the commit point), then earlier tensors removed,
//! so a process killed at any instant leaves either the previous state or the new one.
use crate::artifacts::{write_atomic, write_atomic_with};
use crate::train::Stepper;
use mm_models::ModelError;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{nn, Tensor};

/// How often a training loop writes its resumable state.
#[derive(Debug, Clone, Copy)]
pub struct ResumeEvery {
    /// Every this many seconds of the run (the default: 10 minutes).
    pub secs: f64,
    /// And every this many steps, when given.
    pub steps: Option<u64>,
}

impl Default for ResumeEvery {
    fn default() -> Self {
        Self { secs: 600.0, steps: None }
    }
}

#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    /// The safetensors file beside it: weights (`w.<name>`) and moments (`adam.*`).
    tensors: String,
    adam_steps: Vec<i64>,
    amp_scale: Option<(f64, u64)>,
    amp_skipped: u64,
    state: T,
}

/// A training loop's resume folder and when it last wrote to it.
pub struct Resume {
    pub dir: PathBuf,
    every: Option<ResumeEvery>,
    last: Instant,
}

impl Resume {
    pub fn new(run_dir: &crate::artifacts::RunDir, every: Option<ResumeEvery>) -> Self {
        Self { dir: run_dir.resume_dir(), every, last: Instant::now() }
    }

    /// Whether the state is due after step `done` (never after the last step).
    pub fn due(&self, done: u64, last: bool) -> bool {
        !last && self.every.is_some_and(|r| r.steps.is_some_and(|k| done.is_multiple_of(k)) || self.last.elapsed().as_secs_f64() >= r.secs)
    }

    pub fn save<T: Serialize>(&mut self, step: u64, state: T, vs: &nn::VarStore, stepper: &Stepper) -> Result<(), ModelError> {
        let env = Envelope {
            tensors: format!("state-{step:08}.safetensors"),
            adam_steps: stepper.opt.steps.clone(),
            amp_scale: stepper.scale(),
            amp_skipped: stepper.skipped,
            state,
        };
        let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().map(|(k, v)| (format!("w.{k}"), v)).collect();
        named.extend(stepper.opt.named_moments());
        named.sort_by(|a, b| a.0.cmp(&b.0));
        write_atomic_with(&self.dir.join(&env.tensors), |tmp: &Path| {
            Tensor::write_safetensors(&named, tmp).map_err(|source| ModelError::CheckpointRead { path: tmp.into(), source })
        })?;
        write_atomic(&self.dir.join("state.json"), serde_json::to_string(&env).expect("state serializes").as_bytes())?;
        for e in std::fs::read_dir(&self.dir)? {
            let p = e?.path();
            let name = p.file_name().unwrap_or_default().to_string_lossy().to_string();
            if name.starts_with("state-") && name != env.tensors {
                std::fs::remove_file(&p)?;
            }
        }
        self.last = Instant::now();
        Ok(())
    }

    /// The state a killed run left, loaded into `vs` and `stepper`; `None` when there is none.
    pub fn load<T: DeserializeOwned>(&self, vs: &nn::VarStore, stepper: &mut Stepper) -> Result<Option<T>, ModelError> {
        let path = self.dir.join("state.json");
        let Ok(text) = std::fs::read_to_string(&path) else { return Ok(None) };
        let bad = |reason: String| ModelError::CheckpointInvalid { path: path.clone(), reason };
        let env: Envelope<T> =
            serde_json::from_str(&text).map_err(|e| bad(format!("unreadable resume state ({e}); delete the folder to start over")))?;
        let file = self.dir.join(&env.tensors);
        let tensors: BTreeMap<String, Tensor> = Tensor::read_safetensors(&file)
            .map_err(|source| ModelError::CheckpointRead { path: file.clone(), source })?
            .into_iter()
            .collect();
        tch::no_grad(|| -> Result<(), ModelError> {
            for (name, mut var) in vs.variables() {
                let src = tensors.get(&format!("w.{name}")).ok_or_else(|| bad(format!("no weights for `{name}`")))?;
                var.copy_(src);
            }
            Ok(())
        })?;
        stepper.opt.restore(&tensors, &env.adam_steps).map_err(bad)?;
        stepper.restore_scale(env.amp_scale, env.amp_skipped);
        eprintln!("  resuming from {}", self.dir.display());
        Ok(Some(env.state))
    }

    /// A finished run keeps no resumable state.
    pub fn clear(&self) -> std::io::Result<()> {
        if self.dir.exists() {
            std::fs::remove_dir_all(&self.dir)?;
        }
        Ok(())
    }
}

/// Dropout's RNG seeded from (seed, step), so a resumed run draws what an uninterrupted one does.
pub fn seed_step(seed: u64, step: u64) {
    tch::manual_seed((seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ step) as i64);
}
