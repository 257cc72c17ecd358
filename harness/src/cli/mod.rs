//! The binary's commands, one module each: its clap arguments and what it does. `main.rs` only
//! parses and dispatches; what the commands share (a suite's arguments and loading, `--card`,
//! `--device`, writing to a stdout that may be closed) is here.
pub mod bench;
pub mod check;
pub mod compare;
pub mod coverage;
pub mod data;
pub mod doctor;
pub mod eval;
pub mod export;
pub mod generate;
pub mod pairs;
pub mod plan;
pub mod report;
pub mod run;
pub mod status;

use anyhow::{Context, Result};
use harness::device;
use harness::suite::{parse_override, Suite};
use std::path::{Path, PathBuf};

/// What every suite command takes: the suite (or a folder of suites), overrides, the results
/// folder and a profile.
#[derive(clap::Args, Clone)]
pub struct SuiteArgs {
    /// The suite file (TOML, format v1); `plan` also takes a folder of suites.
    pub suite: PathBuf,
    /// Override a key for every run without editing the file, e.g. --set train.steps=10
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Where run folders go.
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
    /// Run the suite at one of its named profiles (`[profile.<name>]`), e.g. --profile ci.
    #[arg(long)]
    pub profile: Option<String>,
}

impl SuiteArgs {
    /// The suite these arguments name.
    pub fn load(&self) -> Result<Suite> {
        writable_folder("--results", &self.results)?;
        let overrides = self.set.iter().map(|s| parse_override(s)).collect::<Result<Vec<_>, _>>()?;
        Ok(Suite::load_profile(&self.suite, self.profile.as_deref(), &overrides, tch::Cuda::is_available())?)
    }

    /// The suite these arguments name, or every suite (`*.toml`) of the folder they name, in
    /// name order.
    pub fn load_all(&self) -> Result<Vec<Suite>> {
        if !self.suite.is_dir() {
            return Ok(vec![self.load()?]);
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.suite)
            .with_context(|| format!("reading the folder {}", self.suite.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
            .collect();
        files.sort();
        anyhow::ensure!(!files.is_empty(), "{}: a folder with no suite (*.toml) in it", self.suite.display());
        files.iter().map(|f| SuiteArgs { suite: f.clone(), ..self.clone() }.load().with_context(|| format!("{}", f.display()))).collect()
    }

    /// ` --profile NAME` when one was given, for the command lines a command prints.
    pub fn profile_flag(&self) -> String {
        self.profile.as_ref().map(|p| format!(" --profile {p}")).unwrap_or_default()
    }
}

/// A folder the harness writes into: absent (it is made) or a folder, never a file.
pub fn writable_folder(flag: &str, path: &Path) -> Result<()> {
    anyhow::ensure!(!path.exists() || path.is_dir(), "{flag} {}: is not a folder; give a folder (it is made when missing)", path.display());
    harness::artifacts::refuse_inside_run(path, flag)?;
    Ok(())
}

/// The card `--card` names (h100 when none), or this machine's CPU measured now.
pub fn resolve_card(name: Option<&str>) -> Result<harness::estimate::Card> {
    match name.unwrap_or("h100").to_ascii_lowercase().as_str() {
        "cpu" => harness::estimate::measure_cpu().context("--card cpu: measuring this machine"),
        other => harness::estimate::card(other).map_err(anyhow::Error::msg),
    }
}

/// `--device auto|cpu|cuda`.
pub fn device_arg(name: &str) -> Result<tch::Device> {
    let choice = match name {
        "auto" => device::DeviceChoice::Auto,
        "cpu" => device::DeviceChoice::Cpu,
        "cuda" => device::DeviceChoice::Cuda,
        other => anyhow::bail!("--device {other}: use auto, cpu or cuda"),
    };
    Ok(device::resolve(choice)?)
}

/// Writes to stdout; a closed pipe (`harness plan ... | head`) is not an error worth a panic.
/// False when the text could not be written.
pub fn print(text: &str) -> bool {
    use std::io::Write as _;
    std::io::stdout().lock().write_all(text.as_bytes()).is_ok()
}

/// The default output folder of a command: `reports/<what>/<UTC time>`.
pub fn timestamped(what: &str) -> PathBuf {
    PathBuf::from("reports").join(what).join(chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string())
}
