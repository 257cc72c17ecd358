//! The one artifact store: run folders under `results/<suite>/<run_id>/`, atomic writes, sha256
//! of every file, and the run manifest.
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

pub const MANIFEST_SCHEMA: u32 = 1;

pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The largest text file read whole into memory; corpora are streamed, never read so.
pub const MAX_WHOLE_TEXT: u64 = 2 << 30;

/// Refuses what is not a regular file: a folder gives a cryptic error, and a FIFO, socket or
/// device would block a reader forever (or never end).
pub fn ensure_regular(path: &Path) -> std::io::Result<()> {
    let m = std::fs::metadata(path)?;
    if m.is_file() {
        return Ok(());
    }
    let what = if m.is_dir() { "a folder" } else { "a FIFO, socket or device" };
    Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("is not a regular file ({what}); give a file")))
}

/// The run folder (one holding a `manifest.json` beside a `config.json`) that `out`, or the
/// nearest of its ancestors that exists, lies in. A command's output written there would become
/// a file of that run: the run would fail verification and be trained again.
pub fn run_folder_around(out: &Path) -> Option<PathBuf> {
    let abs = if out.is_absolute() { out.to_path_buf() } else { std::env::current_dir().ok()?.join(out) };
    let existing = abs.ancestors().find(|a| a.exists())?.canonicalize().ok()?;
    existing.ancestors().find(|a| a.join("manifest.json").is_file() && a.join("config.json").is_file()).map(Path::to_path_buf)
}

/// Refuses an output path inside a run folder ([`run_folder_around`]), naming the flag.
pub fn refuse_inside_run(out: &Path, flag: &str) -> std::io::Result<()> {
    match run_folder_around(out) {
        None => Ok(()),
        Some(run) => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "{flag} {} is inside the run folder {}: a file written there would make that run fail its verification (and be trained again); write elsewhere",
                out.display(),
                run.display()
            ),
        )),
    }
}

/// `std::fs::read` of a regular file only (see [`ensure_regular`]).
pub fn read_regular(path: &Path) -> std::io::Result<Vec<u8>> {
    ensure_regular(path)?;
    std::fs::read(path)
}

/// `std::fs::read_to_string` of a regular file only (see [`ensure_regular`]), of at most
/// [`MAX_WHOLE_TEXT`] bytes.
pub fn read_regular_string(path: &Path) -> std::io::Result<String> {
    ensure_regular(path)?;
    let size = std::fs::metadata(path)?.len();
    if size > MAX_WHOLE_TEXT {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "is {:.1} GiB; a file the harness reads whole (a suite, tokenizer, passages or summaries file) is at most {} GiB: is it the right file?",
                size as f64 / (1u64 << 30) as f64,
                MAX_WHOLE_TEXT >> 30
            ),
        ));
    }
    std::fs::read_to_string(path)
}

pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    ensure_regular(path)?;
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(hex::encode(h.finalize()));
        }
        h.update(&buf[..n]);
    }
}

/// Writes through a temporary file in the same folder and renames it into place, so a reader
/// never sees half a file and a crash never leaves one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{}.tmp{}", path.file_name().unwrap_or_default().to_string_lossy(), std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// Runs a writer against a temporary path and renames the result into place.
pub fn write_atomic_with<E>(path: &Path, write: impl FnOnce(&Path) -> Result<(), E>) -> Result<(), E>
where
    E: From<std::io::Error>,
{
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    // Keep the extension last: some writers (safetensors) pick the format from it.
    let tmp = dir.join(format!(".tmp{}-{name}", std::process::id()));
    write(&tmp)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Finished,
    Failed,
}

/// What a run was, where and with what it ran, and the sha256 of every file it wrote.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub schema_version: u32,
    pub run_id: String,
    pub suite: String,
    pub experiment: String,
    pub status: RunStatus,
    pub error: Option<String>,
    pub git_sha: String,
    pub git_dirty: bool,
    pub cargo_lock_sha256: Option<String>,
    pub harness_version: String,
    pub libtorch_version: String,
    pub device: String,
    pub seed: u64,
    /// Inputs: data files, tokenizer, checkpoints read.
    pub inputs: BTreeMap<String, String>,
    /// Facts about how the run executed (mask convention, attention path, threads, ...).
    pub execution: BTreeMap<String, String>,
    pub started_utc: String,
    pub finished_utc: Option<String>,
    pub wall_s: Option<f64>,
    /// Every file of the run folder but the manifest itself, with its sha256.
    pub files: BTreeMap<String, String>,
    /// The local files the run read (data, tokenizer, checkpoints), by path, with their sha256:
    /// re-hashed before the run is reused, so a changed input reruns it.
    #[serde(default)]
    pub input_files: BTreeMap<String, String>,
    /// sha256 of this manifest written with this field empty: an edited manifest is not trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_sha256: Option<String>,
}

impl Manifest {
    pub(crate) fn self_hash(&self) -> String {
        let bare = Manifest { manifest_sha256: None, ..self.clone() };
        sha256_bytes(serde_json::to_string_pretty(&bare).expect("manifest serializes").as_bytes())
    }

    /// Local inputs whose file now hashes differently (changed) or is gone (missing).
    pub fn stale_inputs(&self) -> (Vec<String>, Vec<String>) {
        let (mut changed, mut missing) = (Vec::new(), Vec::new());
        for (path, want) in &self.input_files {
            match sha256_file(Path::new(path)) {
                Ok(got) if &got == want => {}
                Ok(_) => changed.push(path.clone()),
                Err(_) => missing.push(path.clone()),
            }
        }
        (changed, missing)
    }
}

/// What a run read, each with its sha256: local files (re-hashed before a finished run is reused,
/// so a changed file reruns it) and named inputs that are no local file (a hub file, the
/// embedded corpus, a producer run's file, which its own manifest guards).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inputs {
    named: BTreeMap<String, String>,
    files: BTreeMap<String, String>,
}

impl Inputs {
    /// A local file the run read.
    pub fn file(&mut self, path: &Path, sha256: String) {
        self.files.insert(path.display().to_string(), sha256);
    }

    /// An input that is no local file.
    pub fn named(&mut self, name: impl Into<String>, sha256: String) {
        self.named.insert(name.into(), sha256);
    }

    pub fn extend(&mut self, other: &Inputs) {
        self.named.extend(other.named.clone());
        self.files.extend(other.files.clone());
    }

    /// Every input by name or path, as the manifest lists them.
    pub fn all(&self) -> BTreeMap<String, String> {
        let mut all = self.named.clone();
        all.extend(self.files.clone());
        all
    }

    /// The local files that are here now with the hash the run saw: what reuse re-verifies.
    pub fn files_here(&self) -> BTreeMap<String, String> {
        self.files.iter().filter(|(p, h)| sha256_file(Path::new(p)).is_ok_and(|now| &now == *h)).map(|(p, h)| (p.clone(), h.clone())).collect()
    }
}

/// Why a run folder does not hold a finished, intact run ([`RunDir::check_finished`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NotFinished {
    #[error("not run")]
    NotRun,
    #[error("its manifest.json is missing or unreadable")]
    NoManifest,
    #[error("it did not finish (status {})", format!("{_0:?}").to_lowercase())]
    Unfinished(RunStatus),
    #[error("its manifest.json was edited after the run finished")]
    ManifestEdited,
    #[error("its files cannot be read: {0}")]
    Unreadable(String),
    #[error("its files changed since it finished ({})", .0.join(", "))]
    FilesChanged(Vec<String>),
}

/// One run's place in the results folder, `results/<suite>/<run id>`, and the paths beside it
/// that the runner uses: `<id>.building` (the attempt in progress), `<id>.failed` (a failed
/// rerun of a finished run), `<id>.lock` (who holds it) and `resume/` inside a folder.
#[derive(Debug, Clone)]
pub struct RunDir {
    pub path: PathBuf,
}

impl RunDir {
    pub fn new(results: &Path, suite: &str, run_id: &str) -> Self {
        Self { path: results.join(suite).join(run_id) }
    }

    fn beside(&self, suffix: &str) -> PathBuf {
        let id = self.path.file_name().unwrap_or_default().to_string_lossy();
        self.path.with_file_name(format!("{id}.{suffix}"))
    }

    /// Where an attempt runs before it is moved into place.
    pub fn building(&self) -> RunDir {
        RunDir { path: self.beside("building") }
    }

    /// Where a failed rerun of a finished run is kept.
    pub fn failed(&self) -> RunDir {
        RunDir { path: self.beside("failed") }
    }

    /// The lock file of the run (`lock`).
    pub fn lock_path(&self) -> PathBuf {
        self.beside("lock")
    }

    /// The folder of the state a killed training resumes from (`train::resume`).
    pub fn resume_dir(&self) -> PathBuf {
        self.file("resume")
    }

    /// The commit point of that state.
    pub fn resume_state(&self) -> PathBuf {
        self.resume_dir().join("state.json")
    }

    /// The step of the resumable state this folder holds, if any.
    pub fn resume_step(&self) -> Option<u64> {
        let text = std::fs::read_to_string(self.resume_state()).ok()?;
        serde_json::from_str::<serde_json::Value>(&text).ok()?["state"]["step"].as_u64()
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    pub fn manifest_path(&self) -> PathBuf {
        self.file("manifest.json")
    }

    pub fn read_manifest(&self) -> Option<Manifest> {
        let text = std::fs::read_to_string(self.manifest_path()).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Writes the manifest with its own hash (see [`Manifest::manifest_sha256`]).
    pub fn write_manifest(&self, m: &Manifest) -> std::io::Result<()> {
        let m = Manifest { manifest_sha256: Some(m.self_hash()), ..m.clone() };
        write_atomic(&self.manifest_path(), serde_json::to_string_pretty(&m).expect("manifest serializes").as_bytes())
    }

    pub fn write_json<T: Serialize>(&self, name: &str, value: &T) -> std::io::Result<()> {
        write_atomic(&self.file(name), serde_json::to_string_pretty(value).expect("serializes").as_bytes())
    }

    /// sha256 of every file in the folder (recursively) but the manifest and temporaries.
    pub fn hash_files(&self) -> std::io::Result<BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        let mut stack = vec![self.path.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir)? {
                let p = entry?.path();
                let rel = p.strip_prefix(&self.path).expect("inside").to_string_lossy().to_string();
                if p.is_dir() {
                    stack.push(p);
                } else if rel != "manifest.json" && !rel.rsplit('/').next().unwrap_or("").starts_with('.') {
                    out.insert(rel, sha256_file(&p)?);
                }
            }
        }
        Ok(out)
    }

    /// A finished run whose files still hash to what its manifest says.
    pub fn verified_finished(&self) -> Option<Manifest> {
        self.check_finished().ok()
    }

    /// The run's manifest when it finished and nothing changed since, else why not.
    pub fn check_finished(&self) -> Result<Manifest, NotFinished> {
        if !self.path.exists() {
            return Err(NotFinished::NotRun);
        }
        let m = self.read_manifest().ok_or(NotFinished::NoManifest)?;
        if m.status != RunStatus::Finished {
            return Err(NotFinished::Unfinished(m.status));
        }
        // Manifests of schema 1 written before the self-hash have none.
        if m.manifest_sha256.as_ref().is_some_and(|h| *h != m.self_hash()) {
            return Err(NotFinished::ManifestEdited);
        }
        let now = self.hash_files().map_err(|e| NotFinished::Unreadable(e.to_string()))?;
        if now != m.files {
            let mut diff: Vec<String> = now.iter().filter(|(k, v)| m.files.get(*k) != Some(*v)).map(|(k, _)| k.clone()).collect();
            diff.extend(m.files.keys().filter(|k| !now.contains_key(*k)).cloned());
            return Err(NotFinished::FilesChanged(diff));
        }
        Ok(m)
    }
}

/// The environment facts every manifest and report carries.
#[derive(Debug, Clone, Serialize)]
pub struct Provenance {
    pub git_sha: String,
    pub git_dirty: bool,
    pub cargo_lock_sha256: Option<String>,
    pub harness_version: String,
    pub libtorch_version: String,
}

impl Provenance {
    pub fn collect() -> Self {
        let git = |args: &[&str]| {
            std::process::Command::new("git")
                .args(args)
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        };
        let git_sha = git(&["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".into());
        let git_dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
        Self {
            git_sha,
            git_dirty,
            cargo_lock_sha256: sha256_file(Path::new("Cargo.lock")).ok(),
            harness_version: env!("CARGO_PKG_VERSION").into(),
            libtorch_version: crate::device::libtorch_version().unwrap_or_else(|| "unknown".into()),
        }
    }

    pub fn short_sha(&self) -> &str {
        &self.git_sha[..self.git_sha.len().min(7)]
    }
}

pub fn utc_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_read_whole_is_a_regular_file_of_bounded_size() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.jsonl");
        std::fs::File::create(&big).unwrap().set_len(MAX_WHOLE_TEXT + 1).unwrap(); // sparse: no disk used
        let e = read_regular_string(&big).unwrap_err().to_string();
        assert!(e.contains("is 2.0 GiB") && e.contains("at most 2 GiB"), "{e}");
        let e = read_regular_string(dir.path()).unwrap_err().to_string();
        assert!(e.contains("not a regular file (a folder)"), "{e}");
        std::fs::write(dir.path().join("small.txt"), "ok").unwrap();
        assert_eq!(read_regular_string(&dir.path().join("small.txt")).unwrap(), "ok");
    }

    #[test]
    fn atomic_write_and_verification_catch_tampering() {
        let root = tempfile::tempdir().unwrap();
        let rd = RunDir::new(root.path(), "s", "abc");
        write_atomic(&rd.file("a.txt"), b"hello").unwrap();
        assert_eq!(sha256_file(&rd.file("a.txt")).unwrap(), sha256_bytes(b"hello"));
        let m = Manifest {
            schema_version: MANIFEST_SCHEMA,
            run_id: "abc".into(),
            suite: "s".into(),
            experiment: "e".into(),
            status: RunStatus::Finished,
            error: None,
            git_sha: "x".into(),
            git_dirty: false,
            cargo_lock_sha256: None,
            harness_version: "0".into(),
            libtorch_version: "0".into(),
            device: "cpu".into(),
            seed: 0,
            inputs: Default::default(),
            execution: Default::default(),
            started_utc: utc_now(),
            finished_utc: None,
            wall_s: None,
            files: rd.hash_files().unwrap(),
            input_files: Default::default(),
            manifest_sha256: None,
        };
        rd.write_manifest(&m).unwrap();
        assert!(rd.verified_finished().is_some());
        std::fs::write(rd.file("a.txt"), b"tampered").unwrap();
        assert_eq!(rd.check_finished().unwrap_err(), NotFinished::FilesChanged(vec!["a.txt".into()]), "a changed file means the run is redone");
        std::fs::write(rd.file("a.txt"), b"hello").unwrap();
        assert!(rd.verified_finished().is_some());
        // An edited manifest is not trusted either.
        let text = std::fs::read_to_string(rd.manifest_path()).unwrap().replace("\"device\": \"cpu\"", "\"device\": \"cuda:0 H100\"");
        std::fs::write(rd.manifest_path(), text).unwrap();
        assert_eq!(rd.check_finished().unwrap_err(), NotFinished::ManifestEdited);
        assert_eq!(NotFinished::ManifestEdited.to_string(), "its manifest.json was edited after the run finished");
    }

    #[test]
    fn the_paths_beside_a_run_are_named_by_its_id() {
        let rd = RunDir::new(Path::new("results"), "suite", "abc123");
        assert_eq!(rd.building().path, Path::new("results/suite/abc123.building"));
        assert_eq!(rd.failed().path, Path::new("results/suite/abc123.failed"));
        assert_eq!(rd.lock_path(), Path::new("results/suite/abc123.lock"));
        assert_eq!(rd.building().resume_state(), Path::new("results/suite/abc123.building/resume/state.json"));
        assert_eq!(RunDir::new(Path::new("/nonexistent"), "s", "x").check_finished().unwrap_err(), NotFinished::NotRun);
    }
}
