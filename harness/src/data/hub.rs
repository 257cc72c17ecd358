//! The `hf` source: files of a Hugging Face dataset repo at a pinned revision, downloaded with
//! the `hf-hub` crate into the standard cache (`HF_HOME`; `HF_ENDPOINT` moves the hub).
//! `HF_HUB_OFFLINE=1` (or `harness --offline`) reads the cache only and fails clearly on a miss.
//! Every file's sha256 goes into the manifest; a suite may pin them (`data.sha256`).
use super::DataError;
use crate::artifacts::sha256_file;
use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Cache, Repo, RepoType};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Named presets for the paper's data (PAPER.md B.1): (repo, train files, eval files).
pub fn preset(name: &str) -> Option<(&'static str, &'static [&'static str], &'static [&'static str])> {
    match name {
        // Raw text with <|endoftext|> markers; the paper trains on the first ~2M stories
        // (data.n_stories = 2000896) and evaluates on the validation split.
        "tinystories" => Some(("roneneldan/TinyStories", &["TinyStories-train.txt"], &["TinyStories-valid.txt"])),
        _ => None,
    }
}

pub const PRESETS: &[&str] = &["tinystories"];

fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| !v.is_empty() && v != "0" && v.to_lowercase() != "false")
}

/// The local path of `file` from `repo` at `revision`, downloaded if needed, with its sha256
/// checked against `pins` when the suite pins it.
pub fn fetch(repo: &str, revision: &str, file: &str, pins: &BTreeMap<String, String>) -> Result<(PathBuf, String), DataError> {
    let handle = Repo::with_revision(repo.to_string(), RepoType::Dataset, revision.to_string());
    let path = if offline() {
        Cache::from_env().repo(handle).get(file).ok_or_else(|| DataError::HubOfflineMiss {
            repo: repo.into(),
            revision: revision.into(),
            file: file.into(),
        })?
    } else {
        let api = ApiBuilder::from_env()
            .with_progress(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_retries(2)
            .build()
            .map_err(|e| DataError::Hub { repo: repo.into(), file: file.into(), message: e.to_string() })?;
        api.repo(handle).get(file).map_err(|e| DataError::Hub { repo: repo.into(), file: file.into(), message: e.to_string() })?
    };
    let got = sha256_file(&path).map_err(|e| DataError::Read { path: path.clone(), source: e })?;
    if let Some(want) = pins.get(file) {
        if want != &got {
            return Err(DataError::HashMismatch { path, expected: want.clone(), got });
        }
    }
    Ok((path, got))
}
