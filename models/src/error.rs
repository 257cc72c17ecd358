//! Errors of model construction and checkpoint loading.
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model.{field}: {reason}")]
    InvalidConfig { field: &'static str, reason: String },
    #[error(
        "checkpoint {path} does not fit the model:\n  missing keys: {missing:?}\n  unexpected keys: {unexpected:?}\n  shape mismatches: {mismatched:?}"
    )]
    CheckpointMismatch {
        path: PathBuf,
        missing: Vec<String>,
        unexpected: Vec<String>,
        mismatched: Vec<String>,
    },
    #[error("checkpoint {path}: {reason}")]
    CheckpointInvalid { path: PathBuf, reason: String },
    #[error("checkpoint {path}: {source}")]
    CheckpointRead { path: PathBuf, source: tch::TchError },
    /// Training stopped for a numerical fault (a NaN or infinite loss) at `step` (the first
    /// step of the window it was seen in).
    #[error("{message}")]
    Diverged { step: u64, message: String },
    #[error("checkpoint file: {0}")]
    Io(#[from] std::io::Error),
    /// The rows a trainer reads could not be read (an I/O error on the token shard, say).
    #[error("training data: {0}")]
    Data(String),
    #[error(transparent)]
    Tch(#[from] tch::TchError),
}
