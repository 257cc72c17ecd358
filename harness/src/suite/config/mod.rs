//! The resolved configuration of one run: what a suite's defaults, experiment, sweep point and
//! `--set` overrides add up to. Every struct denies unknown fields; defaults are the paper's.
use mm_models::ModelSpec;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

mod data;
mod retrieval;
mod throughput;
mod train;
pub use data::*;
pub use retrieval::*;
pub use throughput::*;
pub use train::*;

/// `kind` of an experiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExperimentKind {
    /// Causal language modelling: train, evaluate, checkpoint (PAPER.md C, E).
    Clm,
    /// Input-representation (invertibility) test (PAPER.md D).
    Representation,
    /// Frozen embeddings of a pairs set's queries and passages (PAPER.md A.6), cached as
    /// safetensors for every consumer.
    Embed,
    /// The frozen-embedding retrieval model over n slots (PAPER.md F.1, T11, T14).
    RetrievalFrozen,
    /// InfoNCE tuning of the embedding model itself (PAPER.md F.2, T1, T12, T13).
    RetrievalInfonce,
    /// Top-1 retrieval accuracy vs n over cached embeddings (the F.2 protocol).
    RetrievalEval,
    /// Step time, tokens/s, MFU and peak memory of a model, against the PyTorch peer (C.5, T6, T7).
    Throughput,
}

impl ExperimentKind {
    /// The suite's spelling (`kind = "..."`).
    pub fn name(self) -> String {
        serde_json::to_value(self).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
    }
}

/// A setting that fails its check: the dotted key it is at and what to write instead. The suite
/// loader turns it into an error that names the file and line (or the `--set`).
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    pub key: String,
    pub message: String,
}

impl Invalid {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self { key: key.into(), message: message.into() }
    }
}

/// The run another run consumes: its experiment and run id. Part of the consumer's config, so a
/// changed producer changes the consumer's run id (PAPER.md F: CLM -> embed -> retrieval).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    pub experiment: String,
    pub kind: ExperimentKind,
    pub run: String,
}

pub use crate::device::DeviceChoice;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    pub kind: ExperimentKind,
    /// Absent only for runs that need no model (retrieval over embeddings from a file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<DataConfig>,
    /// CLM training; for `representation`, the training of the checkpoint it inverts.
    #[serde(default)]
    pub train: Option<TrainConfig>,
    #[serde(default)]
    pub representation: Option<RepresentationConfig>,
    #[serde(default = "default_seed")]
    pub seed: u64,
    #[serde(default = "default_device")]
    pub device: DeviceChoice,
    /// The CPU kernel path (`native`, or `portable`: the same bits on every CPU with AVX2; see
    /// `kernels`). Process-wide, so one value for every run of a suite; `native` is left out of
    /// the config, so the ids of native runs are what they were before the key existed.
    #[serde(default, skip_serializing_if = "crate::kernels::CpuKernels::is_native")]
    pub cpu_kernels: crate::kernels::CpuKernels,
    /// Start from this safetensors checkpoint (reference key names) instead of a fresh init.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_from: Option<PathBuf>,
    /// The run this one consumes (`from = "<experiment>"` in the suite).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<Upstream>,
    /// The suite profile this run was expanded at (`--profile`); part of the run id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pairs: Option<PairsConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embed: Option<EmbedConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retrieval_frozen: Option<FrozenConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retrieval_infonce: Option<InfonceConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retrieval_eval: Option<EvalConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput: Option<ThroughputConfig>,
}

impl RunConfig {
    /// Drops the sections that one kind reads and another does not, where `reads` (the run's
    /// kind's sections) does not list them: a setting a run never uses cannot move its id.
    pub fn drop_unread(&mut self, reads: &[&str]) {
        let unread = |s: &str| !reads.contains(&s);
        if unread("train") {
            self.train = None;
        }
        if unread("representation") {
            self.representation = None;
        }
        if unread("pairs") {
            self.pairs = None;
        }
        if unread("embed") {
            self.embed = None;
        }
        if unread("retrieval_frozen") {
            self.retrieval_frozen = None;
        }
        if unread("retrieval_infonce") {
            self.retrieval_infonce = None;
        }
        if unread("retrieval_eval") {
            self.retrieval_eval = None;
        }
        if unread("throughput") {
            self.throughput = None;
        }
    }

    /// The precision the run computes in: its training's, its InfoNCE tuning's, its retrieval
    /// model's or its throughput measurement's (fp32 for the kinds that take none).
    pub fn precision(&self) -> Precision {
        self.train
            .as_ref()
            .map(|t| t.precision)
            .or(self.retrieval_infonce.as_ref().map(|r| r.precision))
            .or(self.retrieval_frozen.as_ref().map(|r| r.precision))
            .or(self.throughput.as_ref().map(|t| t.precision))
            .unwrap_or_default()
    }

    /// The model; present for every kind that builds one (checked when the suite is read).
    pub fn model(&self) -> &ModelSpec {
        self.model.as_ref().expect("validated: this kind has a model")
    }

    /// The data settings; present for every kind that tokenizes (checked when the suite is read).
    pub fn data(&self) -> &DataConfig {
        self.data.as_ref().expect("validated: this kind has data settings")
    }
}

fn default_seed() -> u64 {
    0
}
fn default_device() -> DeviceChoice {
    DeviceChoice::Cpu
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Precision {
    #[default]
    Fp32,
    /// The paper's setting (HF `fp16=True`): CUDA autocast to fp16, fp32 master weights, dynamic
    /// loss scaling (scale 2^16, halved on inf/nan with the step skipped, doubled every 2000
    /// clean steps). CUDA only.
    Fp16Amp,
    /// Manual mixed precision: fp32 master weights, bf16 matrix products, fp32 norms and loss
    /// (`mm_models::precision`). No loss scaling. CPU or CUDA.
    Bf16,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}
