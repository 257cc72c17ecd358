//! Suite format v1: a declarative TOML file whose experiments expand, through sweep axes and
//! seeds, into runs with content-addressed ids.
//!
//! ```toml
//! schema = 1
//! name = "quickstart"
//! description = "..."
//! reproduces = ["T3"]
//! [defaults]            # model / data / train / representation / device / seeds
//! [[experiment]]
//! name = "clm"
//! kind = "clm"
//! seeds = [0, 1]
//! [experiment.sweep]    # the cartesian product of these axes
//! "data.n_ctx" = [32, 64]
//! ```
//! A run's id is the sha256 of its canonical resolved config (JSON, keys sorted), so a rerun
//! finds finished runs and skips them.
//!
//! Runs that consume runs: an experiment with `from = "<earlier experiment>"` gets one run per
//! run of that producer (optionally filtered by `where = { "data.n_ctx" = 64 }`) times its own
//! sweep. It inherits the producer's model, data and seed, and its config names the producer's
//! run id (`upstream`), so a changed producer changes every consumer's id. `harness plan` shows
//! the edges; the runner builds a missing producer before its consumers.
pub mod config;
mod errors;
mod expand;
mod graph;
pub mod kind;
mod profile;
mod schema;
pub mod shapes;
pub mod tables;
#[cfg(test)]
mod tests;
mod validate;

pub use config::*;
pub use errors::{locate, SuiteError};
pub use expand::run_id;
pub use kind::{KindRules, Kinds};
pub use schema::{ExperimentDef, OneOrMany, PaperValue, SlurmConfig, SuiteFile};
pub use tables::{CellMatch, Claim, Layout, Metric, MetricKind, PaperTable, Tolerance, Tolerances};

use errors::*;
use expand::*;
use schema::*;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use toml::{Table, Value};


/// One point of an experiment's sweep: a fully resolved config and its id.
#[derive(Debug, Clone)]
pub struct Run {
    pub id: String,
    pub suite: String,
    pub experiment: String,
    pub config: RunConfig,
    /// The sweep values that distinguish this run within its experiment, for tables.
    pub axes: Vec<(String, String)>,
    pub paper: Option<PaperValue>,
    /// The model's label ("masked_mixer d64 n2"), or the embeddings' for a file.
    pub label: String,
    /// The experiments this run's inputs came through, oldest first (`["clm", "embed"]`).
    pub lineage: Vec<String>,
    /// The paper-table cells this run fills ("T2 d128"), from its experiment's `cells`.
    pub cells: Vec<String>,
    /// Its sweep point within the experiment (seeds aside), in plan order.
    pub point: usize,
}

impl Run {
    pub fn short_id(&self) -> &str {
        &self.id[..12]
    }

    /// The producer run's id, for consumers.
    pub fn upstream(&self) -> Option<&str> {
        self.config.upstream.as_ref().map(|u| u.run.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct Suite {
    pub path: PathBuf,
    pub source: String,
    pub file: SuiteFile,
    pub runs: Vec<Run>,
}

/// `key=value` with a TOML value (`train.steps=10`, `data.padding="left"`; a bare word is a string).
pub fn parse_override(arg: &str) -> Result<(String, Value), SuiteError> {
    let (k, v) = arg.split_once('=').ok_or_else(|| SuiteError::Override {
        arg: arg.into(),
        message: "expected key=value, e.g. --set train.steps=10".into(),
    })?;
    let value = toml::from_str::<Table>(&format!("v = {v}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| Value::String(v.to_string()));
    Ok((k.trim().to_string(), value))
}

/// `Suite::load`, `load_profile`, `parse` and `parse_profile` read a suite with every registered
/// kind; they are in `experiments`, which holds the registry. These take the kinds explicitly.
impl Suite {
    /// The suite file at `path`, at one of its profiles (`None`: the paper's own scale).
    pub fn load_with(kinds: Kinds, path: &Path, profile: Option<&str>, overrides: &[(String, Value)], cuda_available: bool) -> Result<Self, SuiteError> {
        let source = crate::artifacts::read_regular_string(path).map_err(|source| SuiteError::Read { file: path.into(), error: source })?;
        Self::parse_with(kinds, path, source, profile, overrides, cuda_available)
    }

    /// A suite from its text (`path` names it in errors).
    pub fn parse_with(
        kinds: Kinds,
        path: &Path,
        source: String,
        profile: Option<&str>,
        overrides: &[(String, Value)],
        cuda_available: bool,
    ) -> Result<Self, SuiteError> {
        let suite = Self::parse_at(kinds, path, source.clone(), profile, overrides, cuda_available, 0)?;
        // At shapes, a frozen retrieval run at the paper's n needs n - 1 distinct passages in each
        // split: the suite's pairs are drawn again with that many.
        let need = suite.runs.iter().filter_map(|r| r.config.retrieval_frozen.as_ref()).map(|f| (f.n - 1).max(0) as usize).max().unwrap_or(0);
        let at_shapes = profile == Some(shapes::SHAPES) && !suite.file.profile.contains_key(shapes::SHAPES);
        if at_shapes && need > shapes::TEST_PAIRS.min(shapes::TRAIN_PAIRS) {
            return Self::parse_at(kinds, path, source, profile, overrides, cuda_available, need);
        }
        Ok(suite)
    }

    /// `parse_with`, with at least `pairs_per_split` query/passage pairs in each split at shapes.
    fn parse_at(
        kinds: Kinds,
        path: &Path,
        source: String,
        profile: Option<&str>,
        overrides: &[(String, Value)],
        cuda_available: bool,
        pairs_per_split: usize,
    ) -> Result<Self, SuiteError> {
        let file: SuiteFile = toml::from_str(&source).map_err(|e| {
            let (line, col) = e.span().map(|s| line_col(&source, s.start)).unwrap_or((0, 0));
            SuiteError::Parse { file: path.into(), line, col, message: e.message().trim().to_string() }
        })?;
        let ctx = Ctx { path, source: &source, cli: overrides, kinds, focus: Default::default() };
        ctx.check_header(&file)?;
        // A profile's settings apply first, then the command line's. `shapes` is built in, unless
        // the suite declares a profile of that name.
        let at_shapes = profile == Some(shapes::SHAPES) && !file.profile.contains_key(shapes::SHAPES);
        let (from_profile, axes, mut skipped) = match profile {
            Some(_) if at_shapes => (Vec::new(), BTreeMap::new(), shapes::skipped(&file)),
            Some(name) => ctx.profile(&file, name)?,
            None => (Vec::new(), BTreeMap::new(), std::collections::BTreeSet::new()),
        };
        ctx.check_experiment_profiles(&file)?;
        let profiled = Profiled { name: profile, axes: &axes, overrides: &from_profile, at_shapes, pairs_per_split };
        for (key, _) in from_profile.iter().chain(overrides) {
            let head = key.split('.').next().unwrap_or_default();
            if !default_keys().contains(&head) && head != "seed" {
                return Err(SuiteError::Override {
                    arg: overrides.iter().find(|(k, _)| k == key).map_or(key.clone(), |(k, v)| format!("{k}={v}")),
                    message: format!("unknown section `{head}`; allowed: {}, seed", default_keys().join(", ")),
                });
            }
        }
        let mut runs: Vec<Run> = Vec::new();
        let mut by_experiment: BTreeMap<String, (ExperimentKind, Vec<Run>)> = BTreeMap::new();
        for exp in &file.experiments {
            if exp.from.as_ref().is_some_and(|f| f.names().is_empty()) {
                return Err(SuiteError::Invalid {
                    file: path.into(),
                    line: None,
                    key: format!("experiment `{}`: from", exp.name),
                    message: "`from = []` names no producer: name the experiment(s) whose runs this one consumes, or remove `from`".into(),
                });
            }
            // Left out by the profile, or every producer it names was.
            let all_skipped = exp.from.as_ref().is_some_and(|f| f.names().iter().all(|n| skipped.contains(*n)));
            if skipped.contains(&exp.name) || all_skipped {
                skipped.insert(exp.name.clone());
                continue;
            }
            ctx.focus_on(exp, &profiled);
            let producers = ctx.producers(exp, &by_experiment, &skipped)?;
            let expanded = ctx.expand(&file, exp, &producers, &profiled, overrides, cuda_available)?;
            for run in &expanded {
                // Two sweep points that resolve to the same config are one run, filling the
                // table cells of both.
                match runs.iter_mut().find(|r| r.id == run.id) {
                    Some(r) => r.cells.extend(run.cells.iter().filter(|c| !r.cells.contains(c)).cloned().collect::<Vec<_>>()),
                    None => runs.push(run.clone()),
                }
            }
            by_experiment.insert(exp.name.clone(), (exp.kind, expanded));
        }
        ctx.focus.take();
        if runs.is_empty() {
            return Err(SuiteError::Invalid {
                file: path.into(),
                line: None,
                key: profile.map_or("experiment".into(), |p| format!("profile.{p}.skip")),
                message: "the suite expands to no run (every experiment is skipped, or consumes only skipped ones): nothing would be measured".into(),
            });
        }
        ctx.check_tables(&file, &runs)?;
        ctx.check_one_kernel_path(&runs)?;
        Ok(Self { path: path.into(), source, file, runs })
    }

    /// What `harness run --only` executes: the runs each selector names (an experiment's name, a
    /// run id or its first 6+ characters, or `failed`: the runs `failed` holds) and,
    /// transitively, the runs they consume, in suite order (producers first).
    pub fn select(&self, selectors: &[String], failed: &[String]) -> Result<Vec<Run>, SuiteError> {
        let mut keep: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
        for sel in selectors {
            let before = keep.len();
            if sel == "failed" {
                keep.extend(failed.iter().cloned());
                continue;
            }
            let short_id = sel.len() < 6 && !sel.is_empty() && sel.chars().all(|c| c.is_ascii_hexdigit());
            if sel.trim().is_empty() || (short_id && !self.file.experiments.iter().any(|e| &e.name == sel)) {
                return Err(SuiteError::Invalid {
                    file: self.path.clone(),
                    line: None,
                    key: "--only".into(),
                    message: format!(
                        "`{sel}` selects nothing for sure: give an experiment name, a run id of at least 6 characters (`harness plan` lists them) or `failed`"
                    ),
                });
            }
            if self.file.experiments.iter().any(|e| &e.name == sel) {
                keep.extend(self.runs.iter().filter(|r| &r.experiment == sel).map(|r| r.id.clone()));
            } else if sel.len() >= 6 && sel.chars().all(|c| c.is_ascii_hexdigit()) {
                keep.extend(self.runs.iter().filter(|r| r.id.starts_with(sel.as_str())).map(|r| r.id.clone()));
            }
            if keep.len() == before && !self.runs.iter().any(|r| &r.experiment == sel || r.id.starts_with(sel.as_str())) {
                let known: Vec<&str> = self.file.experiments.iter().map(|e| e.name.as_str()).collect();
                return Err(SuiteError::Invalid {
                    file: self.path.clone(),
                    line: None,
                    key: "--only".into(),
                    message: format!(
                        "`{sel}` is no experiment or run id of this suite; give an experiment ({}), a run id from `harness plan` (6+ characters) or `failed`",
                        known.join(", ")
                    ),
                });
            }
        }
        // Producers come before consumers, so one pass from the end collects the closure.
        for r in self.runs.iter().rev() {
            if keep.contains(&r.id) {
                if let Some(up) = r.upstream() {
                    keep.insert(up.to_string());
                }
            }
        }
        Ok(self.runs.iter().filter(|r| keep.contains(&r.id)).cloned().collect())
    }
}

/// The profile a suite is expanded at: its name (recorded in every run's config) and the sweep
/// axes it replaces.
struct Profiled<'a> {
    name: Option<&'a str>,
    axes: &'a BTreeMap<String, Vec<Value>>,
    /// The profile's settings, applied before the experiment's own profile section and `--set`.
    overrides: &'a [(String, Value)],
    /// The built-in `shapes` profile: each run's config is rewritten after it is resolved.
    at_shapes: bool,
    /// At shapes, the least number of pairs in each split (the suite's largest frozen n - 1).
    pairs_per_split: usize,
}

/// A producer experiment as a consumer sees it.
struct Producer<'a> {
    name: &'a str,
    kind: ExperimentKind,
    runs: Vec<&'a Run>,
}

struct Ctx<'a> {
    path: &'a Path,
    source: &'a str,
    /// `--set` pairs: an error about a key one of them set is the command line's, not the file's.
    cli: &'a [(String, Value)],
    kinds: Kinds,
    /// The experiment being expanded and the profile in force: an error points at the key's
    /// line in that experiment's block, or in the profile's section when the profile set it.
    focus: std::cell::RefCell<errors::Focus>,
}
