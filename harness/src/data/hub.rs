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

/// File names for `patterns` (globs like `sample/10BT/*.parquet` match the repo's file list,
/// from the hub's listing, or offline from the cached snapshot), sorted; plain names pass through.
pub fn resolve(repo: &str, revision: &str, patterns: &[String]) -> Result<Vec<String>, DataError> {
    if !patterns.iter().any(|p| p.contains(['*', '?', '['])) {
        return Ok(patterns.to_vec());
    }
    let hub_err = |message: String| DataError::Hub { repo: repo.into(), file: patterns.join(", "), message };
    let listing: Vec<String> = if offline() {
        let folder = Cache::from_env().path().join(format!("datasets--{}", repo.replace('/', "--")));
        let commit = std::fs::read_to_string(folder.join("refs").join(revision)).map_err(|_| DataError::HubOfflineMiss {
            repo: repo.into(),
            revision: revision.into(),
            file: patterns.join(", "),
        })?;
        let root = folder.join("snapshots").join(commit.trim());
        let mut files = vec![];
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).map_err(|e| hub_err(e.to_string()))?.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if let Ok(rel) = p.strip_prefix(&root) {
                    files.push(rel.to_string_lossy().to_string());
                }
            }
        }
        files
    } else {
        let api = ApiBuilder::from_env().with_progress(false).build().map_err(|e| hub_err(e.to_string()))?;
        let handle = Repo::with_revision(repo.to_string(), RepoType::Dataset, revision.to_string());
        api.repo(handle).info().map_err(|e| hub_err(format!("listing files: {e}")))?.siblings.into_iter().map(|s| s.rfilename).collect()
    };
    let mut out = vec![];
    for p in patterns {
        let pat = glob::Pattern::new(p).map_err(|e| hub_err(format!("bad pattern `{p}`: {e}")))?;
        let opts = glob::MatchOptions { require_literal_separator: true, ..Default::default() };
        let mut hits: Vec<String> = listing.iter().filter(|f| pat.matches_with(f, opts)).cloned().collect();
        if hits.is_empty() {
            return Err(hub_err(format!("no file matches `{p}` at revision {revision}")));
        }
        hits.sort();
        out.extend(hits);
    }
    Ok(out)
}

/// Seconds the hub may stay silent before a fetch is abandoned (`HARNESS_HUB_TIMEOUT_S`, 60).
fn timeout() -> std::time::Duration {
    let s = std::env::var("HARNESS_HUB_TIMEOUT_S").ok().and_then(|v| v.parse::<f64>().ok()).unwrap_or(60.0);
    std::time::Duration::from_secs_f64(s.max(0.1))
}

/// `hf-hub`'s sync client sets no timeouts, so a hub that accepts and never answers would hang
/// the run: probe the file's URL first (the same `Range: bytes=0-0` request hf-hub makes) with
/// connect and read timeouts, and turn silence into an error naming the file.
fn probe(repo: &str, revision: &str, file: &str) -> Result<(), DataError> {
    let endpoint = std::env::var("HF_ENDPOINT").unwrap_or_else(|_| "https://huggingface.co".into());
    let url = format!("{}/datasets/{repo}/resolve/{}/{file}", endpoint.trim_end_matches('/'), revision.replace('/', "%2F"));
    let t = timeout();
    let agent = ureq::AgentBuilder::new().timeout_connect(t).timeout_read(t).redirects(0).build();
    let mut req = agent.get(&url).set("Range", "bytes=0-0");
    if let Ok(token) = std::env::var("HF_TOKEN") {
        req = req.set("Authorization", &format!("Bearer {token}"));
    }
    match req.call() {
        Ok(_) => Ok(()),
        Err(ureq::Error::Status(..)) => Ok(()), // hf-hub reports statuses (404, 401, ...) itself
        Err(ureq::Error::Transport(e)) => Err(DataError::Hub {
            repo: repo.into(),
            file: file.into(),
            message: format!("{url}: no answer within {:.0} s ({e}); raise HARNESS_HUB_TIMEOUT_S for a slow link", t.as_secs_f64()),
        }),
    }
}

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
    } else if let Some(cached) = Cache::from_env().repo(handle.clone()).get(file) {
        cached
    } else {
        probe(repo, revision, file)?;
        let api = ApiBuilder::from_env()
            .with_progress(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_retries(2)
            .build()
            .map_err(|e| DataError::Hub { repo: repo.into(), file: file.into(), message: e.to_string() })?;
        api.repo(handle).get(file).map_err(|e| DataError::Hub { repo: repo.into(), file: file.into(), message: e.to_string() })?
    };
    let got = sha256_file(&path).map_err(|e| DataError::Read { path: path.clone(), error: e })?;
    if let Some(want) = pins.get(file) {
        if want != &got {
            return Err(DataError::HashMismatch { path, expected: want.clone(), got });
        }
    }
    Ok((path, got))
}
