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
pub mod tables;

pub use config::*;
pub use tables::{Claim, Layout, Metric, PaperTable};

use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use toml::{Table, Value};

/// Top-level keys a `[defaults]` table may hold.
const DEFAULT_KEYS: &[&str] = &[
    "model",
    "data",
    "train",
    "representation",
    "device",
    "cpu_kernels",
    "seeds",
    "init_from",
    "pairs",
    "embed",
    "retrieval_frozen",
    "retrieval_infonce",
    "retrieval_eval",
    "throughput",
];

/// What the paper reports for a sweep point: free text, or numbers keyed by metric (for
/// `retrieval_eval`, by n: `{ "32" = 98.2, "64" = 97.2 }`), shown beside ours with the difference.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum PaperValue {
    Text(String),
    Cells(BTreeMap<String, f64>),
}

impl PaperValue {
    pub fn text(&self) -> String {
        match self {
            Self::Text(t) => t.clone(),
            Self::Cells(c) => c.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join(", "),
        }
    }

    pub fn cell(&self, key: &str) -> Option<f64> {
        match self {
            Self::Text(_) => None,
            Self::Cells(c) => c.get(key).copied(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    #[error("{file}: cannot read: {error}")]
    Read { file: PathBuf, error: std::io::Error },
    #[error("{file}:{line}:{col}: {message}")]
    Parse { file: PathBuf, line: usize, col: usize, message: String },
    #[error("{file}{at}: key `{key}`: {message}", at = line.map(|l| format!(":{l}")).unwrap_or_default())]
    Invalid { file: PathBuf, line: Option<usize>, key: String, message: String },
    #[error("--set {arg}: {message}")]
    Override { arg: String, message: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteFile {
    /// Format version; 1 is the only one so far.
    pub schema: u32,
    pub name: String,
    pub description: String,
    /// Paper tables and figures this suite reproduces (PAPER.md numbering: "T3", "F10").
    #[serde(default)]
    pub reproduces: Vec<String>,
    #[serde(default)]
    pub defaults: Table,
    #[serde(rename = "experiment")]
    pub experiments: Vec<ExperimentDef>,
    /// The paper tables this suite fills, in the paper's layout with its numbers ([`tables`]).
    #[serde(default, rename = "table")]
    pub tables: Vec<PaperTable>,
    /// Directions the paper claims between cells of those tables, tested over seeds.
    #[serde(default, rename = "claim")]
    pub claims: Vec<Claim>,
    /// Named scales of the same grid (`harness run --profile ci`): each holds overrides applied
    /// to every run as `--set` does (`seeds`, `device`, `[profile.ci.data]`, ...), an optional
    /// `description`, `[profile.ci.sweep]` to replace the values of sweep axes, and `skip`, the
    /// experiments left out at that scale.
    #[serde(default)]
    pub profile: BTreeMap<String, Table>,
    /// Resources of each task when the sweep runs as a Slurm job array (`harness plan --emit
    /// slurm`): partition, account, qos, gpus, cpus, mem, time, throttle, setup, sbatch.
    #[serde(default)]
    pub slurm: Option<crate::slurm::SlurmConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentDef {
    pub name: String,
    pub kind: ExperimentKind,
    #[serde(default)]
    pub seeds: Option<Vec<u64>>,
    /// Axes: a dotted key (`"data.n_ctx"`, or `"model"` for whole models) and its values.
    #[serde(default)]
    pub sweep: BTreeMap<String, Vec<Value>>,
    /// What the paper reports, by model label (`"llama d512 n16 h4"`, as `harness plan` prints
    /// it), model kind (`"masked_mixer"`), embeddings label, an upstream experiment's name, or
    /// `"<label or kind> @ <upstream experiment>"`; the most specific key wins.
    #[serde(default)]
    pub paper: BTreeMap<String, PaperValue>,
    /// The paper-table entries this experiment's sweep points fill: table id -> one entry name
    /// per sweep point in plan order (`"-"`: that point is in no entry of the table).
    #[serde(default)]
    pub cells: BTreeMap<String, Vec<String>>,
    /// This experiment at a named profile of the suite (`[experiment.profile.ci]`): `sweep`
    /// replaces its axes, section tables (`train = {...}`) override its settings after the
    /// suite's `[profile.ci]` and before `--set`.
    #[serde(default)]
    pub profile: BTreeMap<String, Table>,
    /// The earlier experiment(s) whose runs this one consumes (one run per producer run).
    #[serde(default)]
    pub from: Option<OneOrMany>,
    /// Consume only the producer runs whose resolved config has these values (dotted keys).
    #[serde(default, rename = "where")]
    pub where_: Option<BTreeMap<String, Value>>,
    #[serde(default)]
    pub model: Option<Table>,
    #[serde(default)]
    pub data: Option<Table>,
    #[serde(default)]
    pub train: Option<Table>,
    #[serde(default)]
    pub representation: Option<Table>,
    #[serde(default)]
    pub device: Option<Value>,
    #[serde(default)]
    pub cpu_kernels: Option<Value>,
    #[serde(default)]
    pub init_from: Option<Value>,
    #[serde(default)]
    pub pairs: Option<Table>,
    #[serde(default)]
    pub embed: Option<Table>,
    #[serde(default)]
    pub retrieval_frozen: Option<Table>,
    #[serde(default)]
    pub retrieval_infonce: Option<Table>,
    #[serde(default)]
    pub retrieval_eval: Option<Table>,
    #[serde(default)]
    pub throughput: Option<Table>,
}

/// `from = "clm"` or `from = ["embed", "embed_tuned"]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn names(&self) -> Vec<&str> {
        match self {
            Self::One(s) => vec![s.as_str()],
            Self::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

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

impl Suite {
    pub fn load(path: &Path, overrides: &[(String, Value)], cuda_available: bool) -> Result<Self, SuiteError> {
        Self::load_profile(path, None, overrides, cuda_available)
    }

    /// The suite at one of its profiles (`None`: the paper's own scale).
    pub fn load_profile(path: &Path, profile: Option<&str>, overrides: &[(String, Value)], cuda_available: bool) -> Result<Self, SuiteError> {
        let source = crate::artifacts::read_regular_string(path).map_err(|source| SuiteError::Read { file: path.into(), error: source })?;
        Self::parse_profile(path, source, profile, overrides, cuda_available)
    }

    pub fn parse(path: &Path, source: String, overrides: &[(String, Value)], cuda_available: bool) -> Result<Self, SuiteError> {
        Self::parse_profile(path, source, None, overrides, cuda_available)
    }

    pub fn parse_profile(
        path: &Path,
        source: String,
        profile: Option<&str>,
        overrides: &[(String, Value)],
        cuda_available: bool,
    ) -> Result<Self, SuiteError> {
        let file: SuiteFile = toml::from_str(&source).map_err(|e| {
            let (line, col) = e.span().map(|s| line_col(&source, s.start)).unwrap_or((0, 0));
            SuiteError::Parse { file: path.into(), line, col, message: e.message().trim().to_string() }
        })?;
        let ctx = Ctx { path, source: &source, cli: overrides };
        ctx.check_header(&file)?;
        // A profile's settings apply first, then the command line's.
        let (from_profile, axes, mut skipped) = match profile {
            Some(name) => ctx.profile(&file, name)?,
            None => (Vec::new(), BTreeMap::new(), std::collections::BTreeSet::new()),
        };
        ctx.check_experiment_profiles(&file)?;
        let profiled = Profiled { name: profile, axes: &axes, overrides: &from_profile };
        for (key, _) in from_profile.iter().chain(overrides) {
            let head = key.split('.').next().unwrap_or_default();
            if !DEFAULT_KEYS.contains(&head) && head != "seed" {
                return Err(SuiteError::Override {
                    arg: overrides.iter().find(|(k, _)| k == key).map_or(key.clone(), |(k, v)| format!("{k}={v}")),
                    message: format!("unknown section `{head}`; allowed: {}, seed", DEFAULT_KEYS.join(", ")),
                });
            }
        }
        let mut runs: Vec<Run> = Vec::new();
        let mut by_experiment: BTreeMap<String, (ExperimentKind, Vec<Run>)> = BTreeMap::new();
        for exp in &file.experiments {
            // Left out by the profile, or every producer it names was.
            let all_skipped = exp.from.as_ref().is_some_and(|f| f.names().iter().all(|n| skipped.contains(*n)));
            if skipped.contains(&exp.name) || all_skipped {
                skipped.insert(exp.name.clone());
                continue;
            }
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
}

impl Ctx<'_> {
    /// `cpu_kernels` pins the process's math libraries, so every run of one invocation takes
    /// the same path.
    fn check_one_kernel_path(&self, runs: &[Run]) -> Result<(), SuiteError> {
        let mut paths = runs.iter().map(|r| (r.config.cpu_kernels, &r.experiment));
        let Some((first, first_exp)) = paths.next() else { return Ok(()) };
        match paths.find(|(k, _)| *k != first) {
            None => Ok(()),
            Some((other, exp)) => Err(self.invalid(
                "cpu_kernels",
                format!(
                    "experiment `{first_exp}` runs on cpu_kernels = {:?} and `{exp}` on {:?}; the kernel path is \
                     process-wide, so set it once in [defaults] (or a profile) for the whole suite",
                    format!("{first:?}").to_lowercase(),
                    format!("{other:?}").to_lowercase()
                ),
            )),
        }
    }

    fn invalid(&self, key: &str, message: impl Into<String>) -> SuiteError {
        let message = message.into();
        // The last `--set` that set this key, a table above it, or (naming it in the message) a
        // key inside it.
        let leaf = |k: &str| k.rsplit('.').next().unwrap_or(k).to_string();
        let set_here = self.cli.iter().rev().find(|(k, _)| {
            k == key
                || key.starts_with(&format!("{k}."))
                || (k.starts_with(&format!("{key}.")) && message.contains(&format!("`{}`", leaf(k))))
        });
        if let Some((k, v)) = set_here {
            return SuiteError::Override { arg: format!("{k}={v}"), message: format!("key `{key}`: {message}") };
        }
        let line = locate_value(self.source, key, &message).or_else(|| locate(self.source, key));
        SuiteError::Invalid { file: self.path.into(), line, key: key.into(), message }
    }

    fn check_header(&self, file: &SuiteFile) -> Result<(), SuiteError> {
        if file.schema != 1 {
            return Err(self.invalid("schema", format!("unsupported schema {}; this harness reads schema = 1", file.schema)));
        }
        if file.name.is_empty() || !file.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(self.invalid("name", "use letters, digits, '_' and '-' (it names the results folder)"));
        }
        for key in file.defaults.keys() {
            if !DEFAULT_KEYS.contains(&key.as_str()) {
                return Err(self.invalid(key, format!("unknown key in [defaults]; allowed: {}", DEFAULT_KEYS.join(", "))));
            }
        }
        if file.experiments.is_empty() {
            return Err(self.invalid("experiment", "a suite needs at least one [[experiment]]"));
        }
        let mut seen = std::collections::BTreeSet::new();
        for e in &file.experiments {
            if !seen.insert(&e.name) {
                return Err(self.invalid("name", format!("experiment name `{}` is used twice", e.name)));
            }
        }
        Ok(())
    }

    /// `[experiment.profile.X]` sections name profiles of the suite and hold `sweep` or the
    /// sections the experiment reads.
    fn check_experiment_profiles(&self, file: &SuiteFile) -> Result<(), SuiteError> {
        for exp in &file.experiments {
            for (name, t) in &exp.profile {
                let key = format!("profile.{name}");
                if !file.profile.contains_key(name) {
                    return Err(self.invalid(&key, format!("experiment `{}` has a section for profile `{name}`, but the suite has no [profile.{name}]", exp.name)));
                }
                let sections = exp.kind.sections();
                for (k, v) in t {
                    match k.as_str() {
                        "sweep" => {
                            let Some(axes) = v.as_table() else {
                                return Err(self.invalid(&format!("{key}.sweep"), "expected a table of axis = [values]"));
                            };
                            for (axis, values) in axes {
                                if !exp.sweep.contains_key(axis) {
                                    return Err(self.invalid(axis, format!("profile `{name}` replaces axis `{axis}`, which experiment `{}` does not sweep", exp.name)));
                                }
                                if !values.is_array() {
                                    return Err(self.invalid(axis, format!("profile `{name}`: a sweep axis takes a list of values")));
                                }
                            }
                        }
                        k if sections.contains(&k) || k == "seeds" => {}
                        other => {
                            return Err(self.invalid(
                                &format!("{key}.{other}"),
                                format!("experiment `{}` (kind {}) reads sweep, seeds, {}", exp.name, exp.kind.name(), sections.join(", ")),
                            ))
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Each table is well formed, and each of its entries is filled by one sweep point at most.
    fn check_tables(&self, file: &SuiteFile, runs: &[Run]) -> Result<(), SuiteError> {
        let mut ids = std::collections::BTreeSet::new();
        for t in &file.tables {
            t.check().map_err(|(k, m)| self.invalid(&k, m))?;
            if !ids.insert(&t.id) {
                return Err(self.invalid("table.id", format!("table {} is defined twice", t.id)));
            }
            for e in &t.entries {
                let cell = t.cell(e);
                let mut fillers: Vec<(&str, String)> =
                    runs.iter().filter(|r| r.cells.contains(&cell)).map(|r| (r.experiment.as_str(), setting_key(r))).collect();
                fillers.sort();
                fillers.dedup();
                if fillers.len() > 1 {
                    let who: Vec<String> = fillers.iter().map(|(e, s)| format!("{e} [{s}]")).collect();
                    return Err(self.invalid(&format!("cells.{}", t.id), format!("{cell} is filled by more than one sweep point: {}", who.join("; "))));
                }
            }
        }
        for c in &file.claims {
            c.check(&file.tables).map_err(|m| self.invalid("claim", m))?;
        }
        Ok(())
    }

    /// The producers named by `from`, their runs filtered by `where`; checked against the kinds
    /// this experiment can consume.
    fn producers<'a>(
        &self,
        exp: &ExperimentDef,
        earlier: &'a BTreeMap<String, (ExperimentKind, Vec<Run>)>,
        skipped: &std::collections::BTreeSet<String>,
    ) -> Result<Vec<Producer<'a>>, SuiteError> {
        let Some(from) = &exp.from else {
            if exp.where_.is_some() {
                return Err(self.invalid("where", format!("`where` filters the runs of `from`; experiment `{}` has no `from`", exp.name)));
            }
            return Ok(vec![]);
        };
        let allowed = exp.kind.producers();
        let mut out = Vec::new();
        for name in from.names().into_iter().filter(|n| !skipped.contains(*n)) {
            let Some((key, (kind, runs))) = earlier.get_key_value(name) else {
                let later = self.source.contains(&format!("name = \"{name}\""));
                let fix = if later { "move it before this one" } else { "name an experiment of this suite" };
                return Err(self.invalid("from", format!("experiment `{}`: `{name}` is not an earlier experiment; {fix}", exp.name)));
            };
            if !allowed.contains(kind) {
                let names: Vec<String> = allowed.iter().map(|k| k.name()).collect();
                let what = if names.is_empty() { "nothing".to_string() } else { names.join(" or ") };
                return Err(self.invalid(
                    "from",
                    format!("experiment `{}` ({}) cannot consume `{name}` ({}); it reads {what}", exp.name, exp.kind.name(), kind.name()),
                ));
            }
            let mut selected: Vec<&Run> = runs.iter().collect();
            for (key, want) in exp.where_.iter().flatten() {
                let want = serde_json::to_value(want).expect("toml values convert");
                selected.retain(|r| json_at(&r.config, key).is_some_and(|v| json_eq(&v, &want)));
                if selected.is_empty() {
                    return Err(self.invalid(
                        &format!("where.{key}"),
                        format!("no run of `{name}` has {key} = {want} (experiment `{}`)", exp.name),
                    ));
                }
            }
            out.push(Producer { name: key.as_str(), kind: *kind, runs: selected });
        }
        Ok(out)
    }

    fn expand(
        &self,
        file: &SuiteFile,
        exp: &ExperimentDef,
        producers: &[Producer],
        profiled: &Profiled,
        overrides: &[(String, Value)],
        cuda_available: bool,
    ) -> Result<Vec<Run>, SuiteError> {
        let sections = exp.kind.sections();
        // Settings in force: the suite profile's, this experiment's profile section, `--set`.
        let own_profile = profiled.name.and_then(|n| exp.profile.get(n));
        let mut all: Vec<(String, Value)> = profiled.overrides.to_vec();
        if let Some(t) = own_profile {
            all.extend(t.iter().filter(|(k, _)| k.as_str() != "sweep").map(|(k, v)| (k.clone(), v.clone())));
        }
        let from_profiles = all.len();
        all.extend(overrides.iter().cloned());
        let overrides = &all;
        let own_axes: Option<&Table> = own_profile.and_then(|t| t.get("sweep")).and_then(Value::as_table);
        // A consumer's model, data and seed are its producer's: it may not set them.
        let consumer = !producers.is_empty();
        let inherited: &[&str] = if consumer { &["model", "data"] } else { &[] };
        let mut base = Table::new();
        for s in sections.iter().filter(|s| !inherited.contains(s)) {
            if let Some(v) = file.defaults.get(*s) {
                base.insert(s.to_string(), v.clone());
            }
        }
        let own: [(&str, Option<Value>); 13] = [
            ("model", exp.model.clone().map(Value::Table)),
            ("data", exp.data.clone().map(Value::Table)),
            ("train", exp.train.clone().map(Value::Table)),
            ("representation", exp.representation.clone().map(Value::Table)),
            ("device", exp.device.clone()),
            ("cpu_kernels", exp.cpu_kernels.clone()),
            ("init_from", exp.init_from.clone()),
            ("pairs", exp.pairs.clone().map(Value::Table)),
            ("embed", exp.embed.clone().map(Value::Table)),
            ("retrieval_frozen", exp.retrieval_frozen.clone().map(Value::Table)),
            ("retrieval_infonce", exp.retrieval_infonce.clone().map(Value::Table)),
            ("retrieval_eval", exp.retrieval_eval.clone().map(Value::Table)),
            ("throughput", exp.throughput.clone().map(Value::Table)),
        ];
        for (k, v) in own {
            if let Some(v) = v {
                if !sections.contains(&k) {
                    return Err(self.invalid(k, format!("a `{}` experiment does not read [{k}]", exp.kind.name())));
                }
                if inherited.contains(&k) {
                    return Err(self.inherited(exp, k));
                }
                merge(&mut base, k, v);
            }
        }
        if consumer {
            if exp.seeds.is_some() {
                return Err(self.inherited(exp, "seeds"));
            }
            for key in exp.sweep.keys() {
                let head = key.split('.').next().unwrap_or_default();
                if inherited.contains(&head) {
                    return Err(self.inherited(exp, key));
                }
            }
        }
        // `--set seeds=[...]` replaces every experiment's seeds.
        let seeds_override = overrides.iter().rev().find(|(k, _)| k == "seeds").map(|(_, v)| v.clone());
        let as_seeds = |v: Value, key: &str| {
            v.try_into::<Vec<u64>>()
                .map_err(|_| self.invalid(key, "expected a list of non-negative integers, e.g. seeds = [0, 1, 2]"))
        };
        let seeds = match (seeds_override, &exp.seeds, file.defaults.get("seeds")) {
            (Some(v), _, _) => as_seeds(v, "seeds")
                .map_err(|_| SuiteError::Override { arg: "seeds".into(), message: "expected a list of seeds, e.g. --set seeds=[0]".into() })?,
            (None, Some(s), _) => s.clone(),
            (None, None, Some(v)) => as_seeds(v.clone(), "seeds")?,
            (None, None, None) => vec![0],
        };
        if seeds.is_empty() {
            return Err(self.invalid("seeds", "needs at least one seed, e.g. seeds = [0]"));
        }
        if let Some(s) = seeds.iter().enumerate().find_map(|(i, s)| seeds[..i].contains(s).then_some(s)) {
            return Err(self.invalid("seeds", format!("seed {s} is listed twice; each seed is one run")));
        }
        let mut axes: Vec<(String, Vec<Value>)> = Vec::new();
        for (key, values) in &exp.sweep {
            let head = key.split('.').next().unwrap_or_default();
            if !sections.contains(&head) && key != POINT {
                return Err(self.invalid(
                    key,
                    format!("sweep axis must start with one of: {} (or be `{POINT}`, tables of settings varied together)", sections.join(", ")),
                ));
            }
            let replaced = own_axes.and_then(|t| t.get(key)).and_then(Value::as_array);
            let values = replaced.or(profiled.axes.get(key)).unwrap_or(values);
            if key == POINT {
                for v in values {
                    let Some(t) = v.as_table() else {
                        return Err(self.invalid(key, "each value of `point` is a table of settings, e.g. { model = {...}, train = { stop_at = 1000 } }"));
                    };
                    for k in t.keys() {
                        let head = k.split('.').next().unwrap_or_default();
                        if !sections.contains(&head) {
                            return Err(self.invalid(k, format!("`point` sets `{k}`; it may set: {}", sections.join(", "))));
                        }
                    }
                }
            }
            if values.is_empty() {
                return Err(self.invalid(key, "sweep axis has no values"));
            }
            axes.push((key.clone(), values.clone()));
        }
        if !consumer {
            axes.push(("seed".into(), seeds.iter().map(|s| Value::Integer(*s as i64)).collect()));
        }
        // A consumer runs once per producer run; the producer's axes describe it in tables.
        let upstream: Vec<Option<(&Producer, &Run)>> = if consumer {
            producers.iter().flat_map(|p| p.runs.iter().map(move |r| Some((p, *r)))).collect()
        } else {
            vec![None]
        };

        let points = cartesian(&axes);
        // Sweep points without the seed axis (the last one): what table cells are filled by. A
        // consumer's points are its producers' points (seeds aside) times its own sweep.
        let per_point = if consumer { 1 } else { seeds.len() };
        let mut up_points: Vec<(String, usize)> = Vec::new();
        for (p, r) in upstream.iter().flatten() {
            let k = (p.name.to_string(), r.point);
            if !up_points.contains(&k) {
                up_points.push(k);
            }
        }
        let point_of = |up: Option<(&Producer, &Run)>, i: usize| -> usize {
            match up {
                None => i / per_point,
                Some((p, r)) => up_points.iter().position(|k| k.0 == p.name && k.1 == r.point).unwrap_or(0) * points.len() + i,
            }
        };
        let n_points = if consumer { up_points.len() * points.len() } else { points.len() / per_point };
        let mut cells_of: Vec<Vec<String>> = vec![Vec::new(); n_points];
        for (table, entries) in &exp.cells {
            let key = format!("cells.{table}");
            let Some(t) = file.tables.iter().find(|t| &t.id == table) else {
                return Err(self.invalid(&key, format!("no [[table]] with id = \"{table}\" in this suite (experiment `{}`)", exp.name)));
            };
            if entries.len() != n_points {
                let at = profiled.name.map(|p| format!(" at profile `{p}`")).unwrap_or_default();
                return Err(self.invalid(
                    &key,
                    format!(
                        "experiment `{}` has {n_points} sweep point(s){at} but names {} entries of {table}; give one per point in plan order (\"-\" for none)",
                        exp.name,
                        entries.len()
                    ),
                ));
            }
            for (i, e) in entries.iter().enumerate().filter(|(_, e)| e.as_str() != "-") {
                if !t.entries.contains(e) {
                    return Err(self.invalid(&key, format!("`{e}` is not an entry of {table} ({})", t.entries.join(", "))));
                }
                cells_of[i].push(t.cell(e));
            }
        }

        let mut runs = Vec::new();
        for up in upstream {
            for (i, point) in points.iter().enumerate() {
                let mut t = base.clone();
                t.insert("kind".into(), Value::String(exp.kind.name()));
                // Most specific wins: the sweep point, the profiles' settings, then the point's
                // axes that this experiment's own profile section replaced (written for that
                // scale), then `--set`.
                let own_axis = |k: &str| own_axes.is_some_and(|a| a.contains_key(k));
                let point_values = |own: bool| point.iter().filter(move |(k, _)| own_axis(k) == own).flat_map(|(k, v)| flatten_point(k, v));
                for (k, v) in point_values(false) {
                    set_dotted(&mut t, &k, v);
                }
                let settable = |k: &str| {
                    let head = k.split('.').next().unwrap_or_default();
                    (sections.contains(&head) && !inherited.contains(&head)) || (head == "seed" && up.is_none())
                };
                for (k, v) in overrides[..from_profiles].iter().filter(|(k, _)| settable(k)) {
                    set_dotted(&mut t, k, v.clone());
                }
                for (k, v) in point_values(true) {
                    set_dotted(&mut t, &k, v);
                }
                for (k, v) in overrides[from_profiles..].iter().filter(|(k, _)| settable(k)) {
                    set_dotted(&mut t, k, v.clone());
                }
                let mut config: RunConfig = serde_path_to_error::deserialize(Value::Table(t)).map_err(|e| {
                    let key = e.path().to_string();
                    let msg = e.inner().message().trim().to_string();
                    let hint = match profiled.name {
                        Some(p) if msg.starts_with("missing field") => format!(
                            "; at profile `{p}`, a table of another `source` or `kind` replaces the suite's whole table: give the missing key there"
                        ),
                        _ => String::new(),
                    };
                    self.invalid(&key, format!("{msg} (experiment `{}`){hint}", exp.name))
                })?;
                config.profile = profiled.name.map(String::from);
                let mut axes_desc: Vec<(String, String)> = Vec::new();
                let mut lineage = Vec::new();
                if let Some((p, up)) = up {
                    config.model = up.config.model.clone();
                    config.data = up.config.data.clone();
                    config.seed = up.config.seed;
                    config.upstream = Some(Upstream { experiment: p.name.to_string(), kind: p.kind, run: up.id.clone() });
                    axes_desc.extend(up.axes.iter().cloned());
                    lineage = up.lineage.clone();
                    lineage.push(p.name.to_string());
                }
                self.validate(&mut config, &exp.name, cuda_available)?;
                axes_desc.extend(point.iter().flat_map(|(k, v)| flatten_point(k, v)).map(|(k, v)| (k, describe(&v))));
                let label = run_label(&config, up.map(|(_, r)| r));
                let paper = paper_for(&exp.paper, &label, &config, &lineage);
                runs.push(Run {
                    id: run_id(&config),
                    suite: file.name.clone(),
                    experiment: exp.name.clone(),
                    paper,
                    label,
                    lineage,
                    config,
                    axes: axes_desc,
                    cells: cells_of[point_of(up, i)].clone(),
                    point: point_of(up, i),
                });
            }
        }
        Ok(runs)
    }

    /// A profile's overrides (as `--set` pairs), its sweep-axis replacements, and the experiments
    /// it leaves out (`skip`: inputs that do not exist at its scale, e5's embeddings file say).
    #[allow(clippy::type_complexity)]
    fn profile(
        &self,
        file: &SuiteFile,
        name: &str,
    ) -> Result<(Vec<(String, Value)>, BTreeMap<String, Vec<Value>>, std::collections::BTreeSet<String>), SuiteError> {
        let Some(table) = file.profile.get(name) else {
            let known: Vec<&str> = file.profile.keys().map(String::as_str).collect();
            let have = if known.is_empty() { "this suite has none".to_string() } else { format!("this suite has: {}", known.join(", ")) };
            return Err(SuiteError::Invalid { file: self.path.into(), line: None, key: "--profile".into(), message: format!("no profile `{name}`; {have}") });
        };
        let (mut overrides, mut axes, mut skip) = (Vec::new(), BTreeMap::new(), std::collections::BTreeSet::new());
        for (key, value) in table {
            match key.as_str() {
                "description" => {}
                "skip" => {
                    let names: Vec<String> = value
                        .clone()
                        .try_into()
                        .map_err(|_| self.invalid(&format!("profile.{name}.skip"), "expected a list of experiment names"))?;
                    for n in names {
                        if !file.experiments.iter().any(|e| e.name == n) {
                            return Err(self.invalid(&format!("profile.{name}.skip"), format!("no experiment `{n}` to leave out")));
                        }
                        skip.insert(n);
                    }
                }
                "sweep" => {
                    let Value::Table(t) = value else {
                        return Err(self.invalid(&format!("profile.{name}.sweep"), "expected a table of axis = [values]"));
                    };
                    for (axis, values) in t {
                        let Value::Array(values) = values else {
                            return Err(self.invalid(axis, format!("profile `{name}`: a sweep axis takes a list of values")));
                        };
                        if !file.experiments.iter().any(|e| e.sweep.contains_key(axis)) {
                            return Err(self.invalid(axis, format!("profile `{name}` replaces axis `{axis}`, but no experiment sweeps it")));
                        }
                        axes.insert(axis.clone(), values.clone());
                    }
                }
                k if DEFAULT_KEYS.contains(&k) => overrides.push((k.to_string(), value.clone())),
                other => {
                    return Err(self.invalid(
                        &format!("profile.{name}.{other}"),
                        format!("unknown key in a profile; allowed: description, sweep, skip, {}", DEFAULT_KEYS.join(", ")),
                    ))
                }
            }
        }
        Ok((overrides, axes, skip))
    }

    fn inherited(&self, exp: &ExperimentDef, key: &str) -> SuiteError {
        self.invalid(
            key,
            format!(
                "experiment `{}` takes its model, data and seed from `{}` (from = ...); remove `{key}` here and set it on the producer",
                exp.name,
                exp.from.as_ref().map(|f| f.names().join(", ")).unwrap_or_default()
            ),
        )
    }

    fn validate(&self, c: &mut RunConfig, exp: &str, cuda_available: bool) -> Result<(), SuiteError> {
        let bad = |key: &str, msg: String| self.invalid(key, format!("{msg} (experiment `{exp}`)"));
        self.validate_sections(c, &bad)?;
        if let Some(model) = &c.model {
            model.validate().map_err(|e| match e {
                mm_models::ModelError::InvalidConfig { field, reason } => bad(&format!("model.{field}"), reason),
                other => bad("model", other.to_string()),
            })?;
        }
        if let Some(d) = c.data.as_mut() {
            if d.source == DataSource::Hf {
                if let Some(name) = d.preset.clone() {
                    let p = crate::data::hub::preset(&name).ok_or_else(|| {
                        bad("data.preset", format!("unknown preset `{name}`; known: {}", crate::data::hub::PRESETS.join(", ")))
                    })?;
                    d.repo.get_or_insert_with(|| p.repo.to_string());
                    if d.files.is_empty() {
                        d.files = p.files.iter().map(|f| f.to_string()).collect();
                    }
                    if d.eval_files.is_empty() && d.eval_rows.is_none() {
                        d.eval_files = p.eval_files.iter().map(|f| f.to_string()).collect();
                        d.eval_rows = p.eval_rows;
                    }
                }
                if d.repo.is_none() || d.files.is_empty() {
                    return Err(bad("data.repo", "source = \"hf\" needs repo = \"owner/name\" and files = [...], or a preset".into()));
                }
            } else if d.preset.is_some() || d.repo.is_some() || !d.files.is_empty() {
                return Err(bad("data.repo", "preset / repo / files belong to source = \"hf\"".into()));
            }
            if d.n_ctx < 2 {
                return Err(bad("data.n_ctx", format!("must be at least 2 (a model sees n_ctx tokens), got {}", d.n_ctx)));
            }
            let min_vocab = if d.tokenizer_path.is_some() { 16 } else { crate::data::MIN_BPE_VOCAB };
            if !(min_vocab..=65536).contains(&d.vocab_size) {
                let why = if d.tokenizer_path.is_some() { "" } else { " (a trained byte-level BPE holds 256 bytes + 3 specials)" };
                return Err(bad("data.vocab_size", format!("must be in {min_vocab}..=65536{why}, got {}", d.vocab_size)));
            }
            if !(0.0..1.0).contains(&d.eval_fraction) {
                return Err(bad("data.eval_fraction", format!("must be in [0, 1), got {}", d.eval_fraction)));
            }
            match d.source {
                DataSource::Text | DataSource::Jsonl | DataSource::Parquet if d.path.is_none() => {
                    return Err(bad("data.path", format!("source = \"{:?}\" needs path = \"<file>\"", d.source).to_lowercase()))
                }
                DataSource::Embedded if d.path.is_some() || d.eval_path.is_some() => {
                    return Err(bad("data.path", "source = \"embedded\" reads no files; remove path/eval_path or use source = \"text\"".into()))
                }
                DataSource::Hf if d.path.is_some() || d.eval_path.is_some() => {
                    return Err(bad("data.path", "source = \"hf\" downloads its files; use files / eval_files, not path".into()))
                }
                DataSource::Embedded | DataSource::Text if d.text_column.is_some() => {
                    return Err(bad("data.text_column", "only jsonl and parquet sources have columns".into()))
                }
                _ => {}
            }
            if d.eval_rows.is_some() && (d.eval_path.is_some() || !d.eval_files.is_empty()) {
                return Err(bad("data.eval_rows", "give either an evaluation file or eval_rows, not both".into()));
            }
            if d.marker.is_empty() {
                return Err(bad("data.marker", "must not be empty".into()));
            }
        }
        let needs_train = c.kind == ExperimentKind::Clm;
        match (&c.train, needs_train) {
            (None, true) => return Err(bad("train", "this experiment trains a model: add a [train] section with batch_size and steps or tokens".into())),
            (Some(_), false) => c.train = None, // an untrained model does not depend on training settings
            _ => {}
        }
        if let Some(t) = &c.train {
            if t.steps.is_none() && t.tokens.is_none() {
                return Err(bad("train.steps", "give a budget: steps = N or tokens = N".into()));
            }
            if t.total_steps(c.data().n_ctx) == 0 {
                return Err(bad("train.steps", "the budget is 0 steps".into()));
            }
            if t.batch_size < 1 {
                return Err(bad("train.batch_size", format!("must be at least 1, got {}", t.batch_size)));
            }
            if t.accumulate < 1 {
                return Err(bad("train.accumulate", "must be at least 1 (1: no accumulation)".into()));
            }
            if t.max_minutes.is_some_and(|m| !(m > 0.0 && m.is_finite())) {
                return Err(bad("train.max_minutes", "must be a positive number of minutes".into()));
            }
            if !(t.lr > 0.0 && t.lr.is_finite()) {
                return Err(bad("train.lr", format!("must be a positive number, got {}", t.lr)));
            }
            if t.eval_every == 0 {
                return Err(bad("train.eval_every", "must be at least 1".into()));
            }
            if t.precision == Precision::Fp16Amp && c.device == DeviceChoice::Cpu {
                return Err(bad("train.precision", "\"fp16-amp\" uses CUDA autocast; use precision = \"fp32\" on CPU or device = \"cuda\"".into()));
            }
            if !(t.grad_clip >= 0.0 && t.grad_clip.is_finite()) {
                return Err(bad("train.grad_clip", format!("must be >= 0 (0 turns clipping off), got {}", t.grad_clip)));
            }
            for (key, v) in [("train.beta1", t.beta1), ("train.beta2", t.beta2)] {
                if !(0.0..1.0).contains(&v) {
                    return Err(bad(key, format!("must be in [0, 1) (AdamW's moment decay; the paper's are 0.9 and 0.999), got {v}")));
                }
            }
            if !(t.weight_decay >= 0.0 && t.weight_decay.is_finite()) {
                return Err(bad("train.weight_decay", format!("must be >= 0 (the paper's is 0), got {}", t.weight_decay)));
            }
            if !(t.eps >= 0.0 && t.eps.is_finite()) {
                return Err(bad("train.eps", format!("must be >= 0 (the paper's is 1e-8), got {}", t.eps)));
            }
            if t.checkpoint_every == Some(0) {
                return Err(bad("train.checkpoint_every", "must be at least 1 (steps between checkpoints); leave it out for none".into()));
            }
            if t.eval_batches == Some(0) {
                return Err(bad("train.eval_batches", "must be at least 1; leave it out to evaluate on the whole evaluation split".into()));
            }
            if t.stop_at == Some(0) {
                return Err(bad("train.stop_at", "must be at least 1 (the step to stop at); leave it out to train the whole schedule".into()));
            }
        }
        if c.kind == ExperimentKind::Representation {
            let r = c.representation.get_or_insert_with(|| toml::from_str("").expect("all fields default"));
            if r.steps == 0 {
                return Err(bad("representation.steps", "must be at least 1".into()));
            }
            if !(r.lr0 > 0.0 && r.lr0.is_finite()) {
                return Err(bad("representation.lr0", format!("must be a positive number, got {}", r.lr0)));
            }
            let vocab = c.data.as_ref().map_or(0, |d| d.vocab_size as i64);
            if r.top_k < 1 || r.top_k > vocab {
                return Err(bad("representation.top_k", format!("must be in 1..={vocab} (the vocabulary, data.vocab_size), got {}", r.top_k)));
            }
            let blocks = c.model.as_ref().map_or(0, |m| m.n_layers());
            if r.depth.is_some_and(|d| d == 0 || d > blocks) {
                let s = if blocks == 1 { "" } else { "s" };
                return Err(bad(
                    "representation.depth",
                    format!("must be in 1..={blocks}: the model has {blocks} block{s}; leave it out for all of them, got {}", r.depth.unwrap_or(0)),
                ));
            }
            let n_ctx = c.data.as_ref().map_or(0, |d| d.n_ctx);
            if r.skip < 0 || r.skip >= n_ctx {
                return Err(bad("representation.skip", format!("must be in 0..n_ctx ({n_ctx}), got {}", r.skip)));
            }
            if c.upstream.is_some() && r.source == ModelSource::Untrained {
                r.source = ModelSource::Trained; // `from` means: every checkpoint of that run
            }
            if (r.source == ModelSource::Trained) != c.upstream.is_some() {
                return Err(bad(
                    "representation.source",
                    "the checkpoints of a CLM run come through `from = \"<clm experiment>\"` (then source is \"trained\"); \
                     without `from`, use \"untrained\" or \"checkpoint\""
                        .into(),
                ));
            }
            if (r.source == ModelSource::Checkpoint) != r.checkpoint.is_some() {
                return Err(bad(
                    "representation.checkpoint",
                    "give checkpoint = \"<file>.safetensors\" exactly when source = \"checkpoint\"".into(),
                ));
            }
            if r.prompts.is_empty() && r.n_prompts == 0 {
                return Err(bad("representation.n_prompts", "needs prompts or n_prompts >= 1".into()));
            }
        } else {
            c.representation = None;
        }
        c.device = match c.device {
            DeviceChoice::Auto if cuda_available => DeviceChoice::Cuda,
            DeviceChoice::Auto => DeviceChoice::Cpu,
            other => other,
        };
        Ok(())
    }
}

impl Ctx<'_> {
    /// Which sections a kind needs, filled with their defaults, and the retrieval kinds' checks.
    fn validate_sections(&self, c: &mut RunConfig, bad: &dyn Fn(&str, String) -> SuiteError) -> Result<(), SuiteError> {
        use ExperimentKind as K;
        let deflt = |_: ()| toml::from_str::<Table>("").expect("empty table");
        macro_rules! section {
            ($field:ident) => {
                if c.$field.is_none() {
                    c.$field = Some(Table::try_into(deflt(())).map_err(|e| bad(stringify!($field), e.to_string()))?);
                }
            };
        }
        // Sections a kind does not read are dropped, so they never move its run id.
        if !matches!(c.kind, K::Embed | K::RetrievalInfonce) {
            c.pairs = None;
        }
        if c.kind != K::Embed {
            c.embed = None;
        }
        if c.kind != K::RetrievalFrozen {
            c.retrieval_frozen = None;
        }
        if c.kind != K::RetrievalInfonce {
            c.retrieval_infonce = None;
        }
        if c.kind != K::RetrievalEval {
            c.retrieval_eval = None;
        }
        if c.kind != K::Throughput {
            c.throughput = None;
        }
        match c.kind {
            K::Embed => {
                section!(embed);
                let e = c.embed.as_mut().expect("set");
                match (e.source, c.upstream.is_some()) {
                    (WeightsSource::Producer, false) => {
                        return Err(bad(
                            "embed.source",
                            "embeds with the weights of `from = \"<clm or retrieval_infonce experiment>\"`; without `from`, \
                             set source = \"untrained\", \"checkpoint\" or \"file\""
                                .into(),
                        ))
                    }
                    (WeightsSource::Producer, true) => {}
                    (_, true) => return Err(bad("embed.source", "with `from`, the producer's weights are used; remove source or from".into())),
                    _ => {}
                }
                if (e.source == WeightsSource::Checkpoint) != e.checkpoint.is_some() {
                    return Err(bad("embed.checkpoint", "give checkpoint = \"<file>.safetensors\" exactly when source = \"checkpoint\"".into()));
                }
                if (e.source == WeightsSource::File) != e.file.is_some() {
                    return Err(bad("embed.file", "give file = \"<embeddings>.safetensors\" exactly when source = \"file\"".into()));
                }
                if e.label.is_some() && e.source != WeightsSource::File {
                    return Err(bad("embed.label", "names embeddings from a file; a model's runs are named by their model".into()));
                }
                if e.batch_size < 1 {
                    return Err(bad("embed.batch_size", format!("must be at least 1, got {}", e.batch_size)));
                }
                if e.source == WeightsSource::File {
                    // Embeddings computed elsewhere: no model, data or pairs take part.
                    c.model = None;
                    c.data = None;
                    c.pairs = None;
                    c.embed.as_mut().expect("set").padding = None;
                } else {
                    self.need_model_data(c, bad)?;
                    self.check_pairs(c, bad)?;
                }
            }
            K::RetrievalInfonce => {
                section!(retrieval_infonce);
                self.need_model_data(c, bad)?;
                self.check_pairs(c, bad)?;
                let r = c.retrieval_infonce.as_ref().expect("set");
                if r.group < 3 {
                    return Err(bad("retrieval_infonce.group", format!("needs a query and at least 2 passages, got {}", r.group)));
                }
                if !(r.tau > 0.0 && r.tau.is_finite()) || !(r.lr > 0.0 && r.lr.is_finite()) {
                    return Err(bad("retrieval_infonce", "tau and lr must be positive numbers".into()));
                }
                if r.epochs == 0 || r.groups_per_step < 1 || r.eval_every == 0 {
                    return Err(bad("retrieval_infonce", "epochs, groups_per_step and eval_every must be at least 1".into()));
                }
                if r.precision == Precision::Fp16Amp && c.device == DeviceChoice::Cpu {
                    return Err(bad("retrieval_infonce.precision", "\"fp16-amp\" needs device = \"cuda\"".into()));
                }
                if r.checkpoint.is_some() && c.upstream.is_some() {
                    return Err(bad("retrieval_infonce.checkpoint", "starts from the producer's weights with `from`; give one of the two".into()));
                }
            }
            K::RetrievalFrozen => {
                section!(retrieval_frozen);
                self.need_upstream(c, bad)?;
                let r = c.retrieval_frozen.as_ref().expect("set");
                if r.n < 3 {
                    return Err(bad("retrieval_frozen.n", format!("needs the query slot and at least 2 candidates, got n = {}", r.n)));
                }
                if r.depth == 0 || r.epochs == 0 || r.batch_size < 1 || !(r.lr > 0.0 && r.lr.is_finite()) {
                    return Err(bad("retrieval_frozen", "depth, epochs, batch_size and lr must be positive".into()));
                }
            }
            K::RetrievalEval => {
                section!(retrieval_eval);
                self.need_upstream(c, bad)?;
                let r = c.retrieval_eval.as_mut().expect("set");
                if r.n.is_empty() || r.n.iter().any(|n| *n < 2) {
                    return Err(bad("retrieval_eval.n", format!("needs values >= 2 (the query slot plus candidates), got {:?}", r.n)));
                }
                r.n.sort_unstable();
                r.n.dedup();
                if r.chunk < 1 {
                    return Err(bad("retrieval_eval.chunk", "must be at least 1".into()));
                }
            }
            K::Throughput => {
                section!(throughput);
                if c.model.is_none() {
                    return Err(bad("model", "a throughput run measures a model: add a [model] table (or [defaults.model])".into()));
                }
                let t = c.throughput.as_ref().expect("set");
                if t.batch_size < 1 || t.n_ctx < 2 || t.vocab_size < 2 {
                    return Err(bad("throughput", format!(
                        "batch_size must be at least 1, n_ctx and vocab_size at least 2 (got {}, {}, {})",
                        t.batch_size, t.n_ctx, t.vocab_size
                    )));
                }
                if t.steps < 1 || t.rounds < 1 {
                    return Err(bad("throughput", "steps and rounds must be at least 1".into()));
                }
                if t.precision == Precision::Fp16Amp && c.device == DeviceChoice::Cpu {
                    return Err(bad("throughput.precision", "\"fp16-amp\" needs device = \"cuda\"".into()));
                }
                if t.memory_limit_gib.is_some_and(|g| !(g > 0.0 && g.is_finite())) {
                    return Err(bad("throughput.memory_limit_gib", "must be a positive number of GiB".into()));
                }
                if t.attention == Attention::Eager && t.sides != Sides::Pytorch {
                    return Err(bad(
                        "throughput.attention",
                        "\"eager\" selects the PyTorch peer's attention; the harness's Llama uses SDPA only: set sides = \"pytorch\"".into(),
                    ));
                }
                if t.sides != Sides::Harness {
                    let peer_ok = match c.model.as_ref().expect("checked") {
                        mm_models::ModelSpec::MaskedMixer(s) => *s == mm_models::MixerSpec::flat(s.d_model, s.n_layers),
                        mm_models::ModelSpec::Llama(_) => true,
                        _ => false,
                    };
                    if !peer_ok {
                        return Err(bad(
                            "throughput.sides",
                            "the PyTorch peer has the flat masked mixer and Llama only (the reference's models): set sides = \"harness\" for this model".into(),
                        ));
                    }
                }
            }
            K::Clm | K::Representation => self.need_model_data(c, bad)?,
        }
        Ok(())
    }

    fn need_model_data(&self, c: &RunConfig, bad: &dyn Fn(&str, String) -> SuiteError) -> Result<(), SuiteError> {
        if c.model.is_none() {
            return Err(bad("model", "this experiment builds a model: add a [model] table (or [defaults.model])".into()));
        }
        if c.data.is_none() {
            return Err(bad("data", "this experiment tokenizes text: add a [data] table (or [defaults.data])".into()));
        }
        Ok(())
    }

    fn need_upstream(&self, c: &RunConfig, bad: &dyn Fn(&str, String) -> SuiteError) -> Result<(), SuiteError> {
        if c.upstream.is_none() {
            return Err(bad("from", format!("a `{}` experiment reads embeddings: set from = \"<embed experiment>\"", c.kind.name())));
        }
        Ok(())
    }

    fn check_pairs(&self, c: &mut RunConfig, bad: &dyn Fn(&str, String) -> SuiteError) -> Result<(), SuiteError> {
        let Some(p) = &c.pairs else {
            return Err(bad("pairs", "needs query/passage pairs: add [pairs] with source = \"embedded\", \"derived\" or \"file\"".into()));
        };
        match (p.source, &p.path) {
            (PairsSource::File | PairsSource::Derived, None) => {
                return Err(bad("pairs.path", format!("source = \"{}\" needs path = \"<file>\"", serde_json::to_value(p.source).unwrap().as_str().unwrap())))
            }
            (PairsSource::Embedded, Some(_)) => return Err(bad("pairs.path", "source = \"embedded\" reads no file".into())),
            _ => {}
        }
        if !(0.0..1.0).contains(&p.test_fraction) {
            return Err(bad("pairs.test_fraction", format!("must be in [0, 1), got {}", p.test_fraction)));
        }
        Ok(())
    }
}

/// The resolved value at a dotted key of a config, as JSON.
fn json_at(config: &RunConfig, key: &str) -> Option<serde_json::Value> {
    let mut v = serde_json::to_value(config).ok()?;
    for part in key.split('.') {
        v = v.get(part)?.clone();
    }
    Some(v)
}

/// JSON equality with numbers compared as numbers (a TOML 64 and a resolved 64.0 agree).
fn json_eq(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => match (a, b) {
            (serde_json::Value::Object(x), serde_json::Value::Object(y)) => y.iter().all(|(k, v)| x.get(k).is_some_and(|w| json_eq(w, v))),
            _ => a == b,
        },
    }
}

/// The paper value for a run, most specific key first: "<label> @ <experiment>" and
/// "<kind> @ <experiment>" for each experiment the run's inputs came through (nearest first),
/// then the label, the model kind, and the experiment names alone. Rows of a paper table that
/// share a model but differ by pipeline (T13's pretraining data, T12's 200k vs 400k pairs) are
/// told apart by the experiment.
fn paper_for(paper: &BTreeMap<String, PaperValue>, label: &str, c: &RunConfig, lineage: &[String]) -> Option<PaperValue> {
    let kind = c.model.as_ref().map(|m| m.kind().to_string());
    let mut keys: Vec<String> = Vec::new();
    for e in lineage.iter().rev() {
        keys.push(format!("{label} @ {e}"));
        if let Some(k) = &kind {
            keys.push(format!("{k} @ {e}"));
        }
    }
    keys.push(label.to_string());
    keys.extend(kind);
    keys.extend(lineage.iter().rev().cloned());
    keys.into_iter().find_map(|k| paper.get(&k).cloned())
}

/// What a run's model is called in tables: the model label, or for embeddings from a file the
/// suite's `embed.label` (inherited by the runs that consume them).
/// The sweep axis whose values are tables of settings varied together (a model and its budget).
const POINT: &str = "point";

/// A sweep value as (dotted key, value) pairs: a `point` table gives one pair per setting
/// (`train.stop_at`), a model whole (its label names it in tables).
fn flatten_point(key: &str, value: &Value) -> Vec<(String, Value)> {
    fn walk(prefix: &str, v: &Value, out: &mut Vec<(String, Value)>) {
        match v {
            Value::Table(t) if prefix != "model" => t.iter().for_each(|(k, v)| walk(&format!("{prefix}.{k}"), v, out)),
            _ => out.push((prefix.to_string(), v.clone())),
        }
    }
    match (key, value) {
        (POINT, Value::Table(t)) => {
            let mut out = Vec::new();
            t.iter().for_each(|(k, v)| walk(k, v, &mut out));
            out
        }
        _ => vec![(key.to_string(), value.clone())],
    }
}

/// A run's sweep point: its axes without the seed.
fn setting_key(r: &Run) -> String {
    r.axes.iter().filter(|(k, _)| k != "seed").map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
}

fn run_label(c: &RunConfig, up: Option<&Run>) -> String {
    match (&c.model, c.embed.as_ref().and_then(|e| e.label.clone()), up) {
        (Some(m), _, _) => crate::report::model_label_of(m),
        (None, Some(l), _) => l,
        (None, None, Some(u)) => u.label.clone(),
        (None, None, None) => "embeddings (file)".into(),
    }
}

/// sha256 of the canonical JSON of a resolved config (serde_json sorts object keys).
pub fn run_id(config: &RunConfig) -> String {
    let canonical = serde_json::to_value(config).expect("config serializes").to_string();
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

fn describe(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Table(t) => t.iter().map(|(k, v)| format!("{k}={}", describe(v))).collect::<Vec<_>>().join(" "),
        other => other.to_string(),
    }
}

/// Deep merge: tables merge key by key, anything else replaces. A table with a different `kind`
/// (another model family) or `source` (another data or pairs source) replaces the whole table:
/// its fields would not fit the old one.
fn merge(t: &mut Table, key: &str, value: Value) {
    let same = |dst: &Table, src: &Table, field: &str| src.get(field).is_none_or(|k| dst.get(field).is_none_or(|d| d == k));
    match (t.get_mut(key), value) {
        (Some(Value::Table(dst)), Value::Table(src)) if same(dst, &src, "kind") && same(dst, &src, "source") => {
            for (k, v) in src {
                merge(dst, &k, v);
            }
        }
        (_, v) => {
            t.insert(key.to_string(), v);
        }
    }
}

/// Sets `a.b.c = value`, creating tables on the way; a table value merges into what is there.
fn set_dotted(t: &mut Table, key: &str, value: Value) {
    match key.split_once('.') {
        None => merge(t, key, value),
        Some((head, rest)) => {
            let entry = t.entry(head.to_string()).or_insert_with(|| Value::Table(Table::new()));
            if !entry.is_table() {
                *entry = Value::Table(Table::new());
            }
            set_dotted(entry.as_table_mut().expect("table"), rest, value);
        }
    }
}

fn cartesian(axes: &[(String, Vec<Value>)]) -> Vec<Vec<(String, Value)>> {
    axes.iter().fold(vec![vec![]], |acc, (k, values)| {
        acc.into_iter()
            .flat_map(|prefix| {
                values.iter().map(move |v| {
                    let mut p = prefix.clone();
                    p.push((k.clone(), v.clone()));
                    p
                })
            })
            .collect()
    })
}

fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let before = &src[..offset.min(src.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The line that holds both the key's last segment and the offending value that serde quotes in
/// its message ("unknown variant `mamba`", "invalid type: string \"two\"").
fn locate_value(src: &str, key: &str, message: &str) -> Option<usize> {
    let last = key.rsplit('.').next().unwrap_or(key);
    let quoted = |open: char, close: char| {
        let start = message.find(open)? + 1;
        let len = message[start..].find(close)?;
        Some(message[start..start + len].to_string())
    };
    let value = quoted('`', '`').or_else(|| quoted('"', '"')).filter(|v| !v.is_empty() && v != last)?;
    src.lines().position(|l| l.contains(last) && l.contains(&value)).map(|i| i + 1)
}

/// The 1-based line where a dotted key is written in the suite, best effort: the full key in
/// quotes (a sweep axis), else the last segment as `segment =`, else a `[...segment]` header.
pub fn locate(src: &str, key: &str) -> Option<usize> {
    let last = key.rsplit('.').next().unwrap_or(key);
    let lines: Vec<&str> = src.lines().collect();
    let find = |pred: &dyn Fn(&str) -> bool| lines.iter().position(|l| pred(l.trim())).map(|i| i + 1);
    find(&|l| l.starts_with(&format!("\"{key}\"")))
        .or_else(|| {
            find(&|l| {
                l.strip_prefix(last)
                    .or_else(|| l.strip_prefix(&format!("\"{last}\"")))
                    .is_some_and(|r| r.trim_start().starts_with('='))
            })
        })
        .or_else(|| find(&|l| l.starts_with('[') && l.trim_end_matches(']').ends_with(last)))
        .or_else(|| find(&|l| l.contains(&format!("{last} ="))))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
schema = 1
name = "t"
description = "test suite"
reproduces = ["T3"]

[defaults]
seeds = [0, 1]
[defaults.data]
source = "embedded"
n_ctx = 16
vocab_size = 300
[defaults.train]
steps = 5
batch_size = 2

[[experiment]]
name = "clm"
kind = "clm"
[experiment.sweep]
model = [{ kind = "masked_mixer", d_model = 8, n_layers = 1 }, { kind = "llama", d_model = 8, n_layers = 1, n_heads = 2 }]
"data.n_ctx" = [16, 32]
"#;

    fn parse(src: &str) -> Result<Suite, SuiteError> {
        Suite::parse(Path::new("suites/t.toml"), src.to_string(), &[], false)
    }

    #[test]
    fn sweep_expands_to_the_cartesian_product() {
        let s = parse(GOOD).unwrap();
        assert_eq!(s.runs.len(), 2 * 2 * 2);
        let ids: std::collections::BTreeSet<_> = s.runs.iter().map(|r| r.id.clone()).collect();
        assert_eq!(ids.len(), 8, "every run has its own id");
        // Axes are sorted by key (data.n_ctx, model, seed), the first varying slowest.
        assert_eq!(s.runs[0].config.model().kind(), "masked_mixer");
        assert_eq!((s.runs[1].config.model().kind(), s.runs[1].config.seed), ("masked_mixer", 1));
        assert_eq!(s.runs[2].config.model().kind(), "llama");
        assert!(s.runs.iter().any(|r| r.config.data().n_ctx == 32 && r.config.seed == 1));
    }

    #[test]
    fn run_id_is_stable_and_sensitive() {
        let a = parse(GOOD).unwrap();
        let b = parse(&GOOD.replace("description = \"test suite\"", "description = \"renamed\"")).unwrap();
        assert_eq!(a.runs[0].id, b.runs[0].id, "descriptions do not change what a run computes");
        let c = parse(&GOOD.replace("steps = 5", "steps = 6")).unwrap();
        assert_ne!(a.runs[0].id, c.runs[0].id);
        // Pinned: a change here means every stored result is orphaned; change it deliberately.
        assert_eq!(a.runs[0].id.len(), 64);
        assert_eq!(a.runs[0].id, run_id(&a.runs[0].config));
    }

    #[test]
    fn overrides_apply_to_every_run() {
        let ov = [parse_override("train.steps=9").unwrap(), parse_override("data.padding=left").unwrap()];
        let s = Suite::parse(Path::new("t.toml"), GOOD.into(), &ov, false).unwrap();
        assert!(s.runs.iter().all(|r| r.config.train.as_ref().unwrap().steps == Some(9)));
        // Pinning a swept key collapses the sweep points that became identical.
        let pinned = Suite::parse(Path::new("t.toml"), GOOD.into(), &[parse_override("data.n_ctx=16").unwrap()], false).unwrap();
        assert_eq!(pinned.runs.len(), 4);
        assert!(s.runs.iter().all(|r| r.config.data().padding == PaddingSide::Left));
        let one_seed = Suite::parse(Path::new("t.toml"), GOOD.into(), &[parse_override("seeds=[7]").unwrap()], false).unwrap();
        assert!(one_seed.runs.len() == 4 && one_seed.runs.iter().all(|r| r.config.seed == 7), "--set seeds replaces the suite's seeds");
        let err = Suite::parse(Path::new("t.toml"), GOOD.into(), &[parse_override("trian.steps=1").unwrap()], false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown section `trian`"), "{err}");
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let src = GOOD.replace("batch_size = 2", "batch_size = 2\nlearning_rate = 0.1");
        let err = parse(&src).unwrap_err().to_string();
        assert!(err.starts_with("suites/t.toml:16: key `train.learning_rate`"), "{err}");
        assert!(err.contains("unknown field `learning_rate`, expected one of"), "{err}");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let src = GOOD.replace("batch_size = 2", "batch_size = \"two\"");
        let err = parse(&src).unwrap_err().to_string();
        assert!(err.contains("suites/t.toml:15: key `train.batch_size`"), "{err}");
        assert!(err.contains("invalid type: string \"two\", expected i64"), "{err}");
    }

    #[test]
    fn zero_context_is_rejected_with_the_fix() {
        let src = GOOD.replace("\"data.n_ctx\" = [16, 32]", "\"data.n_ctx\" = [0]");
        let err = parse(&src).unwrap_err().to_string();
        assert!(err.contains("key `data.n_ctx`: must be at least 2"), "{err}");
        assert!(err.contains("got 0"), "{err}");
        assert!(err.starts_with("suites/t.toml:22:"), "{err}");
    }

    #[test]
    fn a_model_of_another_kind_replaces_the_default_model() {
        let ov = [parse_override("model={kind=\"masked_mixer\", d_model=4, n_layers=1}").unwrap()];
        let s = Suite::parse(Path::new("t.toml"), GOOD.into(), &ov, false).unwrap();
        assert!(s.runs.iter().all(|r| r.config.model().kind() == "masked_mixer" && r.config.model().d_model() == 4));
        let ov = [parse_override("model.d_model=12").unwrap()];
        let s = Suite::parse(Path::new("t.toml"), GOOD.into(), &ov, false).unwrap();
        assert!(s.runs.iter().all(|r| r.config.model().d_model() == 12), "same kind: fields merge");
        // Data of another source replaces the data table (an hf preset's fields would not fit).
        let hf = GOOD.replace("source = \"embedded\"", "source = \"hf\"\npreset = \"tinystories\"");
        let ov = [parse_override("data={source=\"embedded\", n_ctx=16, vocab_size=300}").unwrap()];
        let s = Suite::parse(Path::new("t.toml"), hf, &ov, false).unwrap();
        assert!(s.runs.iter().all(|r| r.config.data().preset.is_none()), "another source replaces the data table");
    }

    #[test]
    fn fp16_amp_needs_cuda() {
        let err = parse(&GOOD.replace("batch_size = 2", "batch_size = 2\nprecision = \"fp16-amp\"")).unwrap_err().to_string();
        assert!(err.contains("key `train.precision`: \"fp16-amp\" uses CUDA autocast"), "{err}");
        let ok = Suite::parse(Path::new("t.toml"), GOOD.replace("batch_size = 2", "batch_size = 2\nprecision = \"fp16-amp\""), &[parse_override("device=\"cuda\"").unwrap()], true);
        assert!(ok.is_ok());
    }

    #[test]
    fn small_bpe_vocab_is_rejected_before_running() {
        let err = parse(&GOOD.replace("vocab_size = 300", "vocab_size = 200")).unwrap_err().to_string();
        assert!(err.contains("key `data.vocab_size`: must be in 259..=65536"), "{err}");
    }

    #[test]
    fn syntax_errors_carry_line_and_column() {
        let err = parse("schema = 1\nname = \n").unwrap_err().to_string();
        assert!(err.starts_with("suites/t.toml:2:"), "{err}");
    }

    #[test]
    fn unknown_model_kind_lists_the_allowed_ones() {
        let src = GOOD.replace("kind = \"llama\"", "kind = \"mamba\"");
        let err = parse(&src).unwrap_err().to_string();
        assert!(err.starts_with("suites/t.toml:21: key `model.kind`"), "{err}");
        assert!(err.contains("unknown variant `mamba`, expected one of `masked_mixer`, `llama`, `transfixer`, `gpt`, `mixer_autoencoder`, `llama_autoencoder`"), "{err}");
    }

    #[test]
    fn unknown_top_level_key_is_rejected() {
        let err = parse(&format!("foo = 1\n{GOOD}")).unwrap_err().to_string();
        assert!(err.contains("unknown field `foo`"), "{err}");
    }

    const PIPE: &str = r#"
schema = 1
name = "p"
description = "pipeline"
[defaults]
seeds = [0, 1]
[defaults.data]
source = "embedded"
n_ctx = 16
vocab_size = 300
[defaults.train]
steps = 5
batch_size = 2
[defaults.pairs]
source = "embedded"
n_pairs = 40

[[experiment]]
name = "clm"
kind = "clm"
[experiment.sweep]
model = [{ kind = "masked_mixer", d_model = 8, n_layers = 1 }, { kind = "llama", d_model = 8, n_layers = 1, n_heads = 2 }]
"data.n_ctx" = [16, 32]

[[experiment]]
name = "embed"
kind = "embed"
from = "clm"
where = { "data.n_ctx" = 16 }

[[experiment]]
name = "frozen"
kind = "retrieval_frozen"
from = "embed"
[experiment.sweep]
"retrieval_frozen.n" = [4, 8]

[[experiment]]
name = "eval"
kind = "retrieval_eval"
from = ["embed"]
"#;

    #[test]
    fn consumers_expand_per_producer_run_and_inherit_model_data_seed() {
        let s = parse(PIPE).unwrap();
        let of = |e: &str| s.runs.iter().filter(|r| r.experiment == e).collect::<Vec<_>>();
        assert_eq!(of("clm").len(), 8);
        assert_eq!(of("embed").len(), 4, "where keeps the n_ctx = 16 producers: 2 models x 2 seeds");
        assert_eq!(of("frozen").len(), 8, "one per embed run and sweep point");
        assert_eq!(of("eval").len(), 4);
        for r in of("frozen") {
            let up = s.runs.iter().find(|p| Some(p.id.as_str()) == r.upstream()).expect("the producer is in the suite");
            assert_eq!(up.experiment, "embed");
            assert_eq!((r.config.seed, r.config.model.as_ref(), r.config.data().n_ctx), (up.config.seed, up.config.model.as_ref(), 16));
            assert_eq!(r.lineage, vec!["clm".to_string(), "embed".to_string()]);
        }
        // Producers come before their consumers.
        let pos = |id: &str| s.runs.iter().position(|r| r.id == id).unwrap();
        assert!(s.runs.iter().all(|r| r.upstream().is_none_or(|u| pos(u) < pos(&r.id))));
    }

    #[test]
    fn a_changed_producer_changes_every_consumer_id() {
        let a = parse(PIPE).unwrap();
        let b = parse(&PIPE.replace("steps = 5", "steps = 6")).unwrap();
        let ids = |s: &Suite, e: &str| s.runs.iter().filter(|r| r.experiment == e).map(|r| r.id.clone()).collect::<Vec<_>>();
        for e in ["clm", "embed", "frozen", "eval"] {
            assert!(ids(&a, e).iter().all(|id| !ids(&b, e).contains(id)), "{e}: a retrained CLM must move downstream ids");
        }
        // A change only the consumer reads moves only the consumer.
        let c = parse(&PIPE.replace("\"retrieval_frozen.n\" = [4, 8]", "\"retrieval_frozen.n\" = [4, 9]")).unwrap();
        assert_eq!(ids(&a, "embed"), ids(&c, "embed"));
        assert_eq!(ids(&a, "frozen")[0], ids(&c, "frozen")[0]);
        assert_ne!(ids(&a, "frozen")[1], ids(&c, "frozen")[1]);
    }

    #[test]
    fn select_adds_the_producers_of_what_it_runs() {
        let s = parse(PIPE).unwrap();
        let sel = s.select(&["eval".to_string()], &[]).unwrap();
        let count = |e: &str| sel.iter().filter(|r| r.experiment == e).count();
        assert_eq!((count("eval"), count("embed"), count("clm"), count("frozen")), (4, 4, 4, 0));
        let err = s.select(&["nope".to_string()], &[]).unwrap_err().to_string();
        assert!(err.contains("`nope` is no experiment or run id") && err.contains("clm, embed, frozen, eval"), "{err}");
        // A run id (or its first characters) and `failed` select runs, with their producers.
        let eval = s.runs.iter().find(|r| r.experiment == "eval").unwrap();
        let by_id = s.select(&[eval.id[..8].to_string()], &[]).unwrap();
        assert_eq!(by_id.iter().map(|r| r.experiment.as_str()).collect::<Vec<_>>(), ["clm", "embed", "eval"]);
        let clm = s.runs.iter().find(|r| r.experiment == "clm").unwrap();
        let failed = s.select(&["failed".to_string()], std::slice::from_ref(&clm.id)).unwrap();
        assert_eq!(failed.len(), 1);
        assert!(s.select(&["failed".to_string()], &[]).unwrap().is_empty(), "nothing failed, nothing to run");
    }

    #[test]
    fn bad_edges_are_errors_that_say_what_to_do() {
        let e = |src: &str| parse(src).unwrap_err().to_string();
        let later = e(&PIPE.replace("from = \"clm\"\nwhere", "from = \"frozen\"\nwhere"));
        assert!(later.contains("`frozen` is not an earlier experiment; move it before this one"), "{later}");
        let wrong = e(&PIPE.replace("from = \"embed\"\n[experiment.sweep]", "from = \"clm\"\n[experiment.sweep]"));
        assert!(wrong.contains("cannot consume `clm` (clm); it reads embed"), "{wrong}");
        let own = e(&PIPE.replace("from = [\"embed\"]", "from = [\"embed\"]\nseeds = [3]"));
        assert!(own.contains("key `seeds`") && own.contains("takes its model, data and seed from `embed`"), "{own}");
        let swept = e(&PIPE.replace("\"retrieval_frozen.n\" = [4, 8]", "\"model.d_model\" = [4, 8]"));
        assert!(swept.contains("key `model.d_model`") && swept.contains("set it on the producer"), "{swept}");
        let none = e(&PIPE.replace("where = { \"data.n_ctx\" = 16 }", "where = { \"data.n_ctx\" = 17 }"));
        assert!(none.contains("key `where.data.n_ctx`: no run of `clm` has data.n_ctx = 17"), "{none}");
        let orphan = e(&PIPE.replace("from = [\"embed\"]", ""));
        assert!(orphan.contains("key `from`") && orphan.contains("set from = \"<embed experiment>\""), "{orphan}");
        let trained = e(&GOOD.replace("[[experiment]]", "[defaults.representation]\nsource = \"trained\"\n[[experiment]]")
            .replace("kind = \"clm\"\n[experiment.sweep]", "kind = \"representation\"\n[experiment.sweep]"));
        assert!(trained.contains("come through `from = \"<clm experiment>\"`"), "{trained}");
    }

    #[test]
    fn paper_cells_attach_by_label_then_kind() {
        let src = PIPE.replace(
            "from = [\"embed\"]",
            "from = [\"embed\"]\npaper = { masked_mixer = { \"32\" = 98.2 }, \"llama d8 n1 h2\" = { \"32\" = 95.0 }, llama = \"text\" }",
        );
        let s = parse(&src).unwrap();
        for r in s.runs.iter().filter(|r| r.experiment == "eval") {
            let want = if r.config.model().kind() == "llama" { 95.0 } else { 98.2 };
            assert_eq!(r.paper.as_ref().and_then(|p| p.cell("32")), Some(want), "{}", r.label);
        }
        let by_pipeline = PIPE.replace("from = [\"embed\"]", "from = [\"embed\"]\npaper = { \"masked_mixer @ clm\" = { \"32\" = 1.0 }, embed = { \"32\" = 2.0 } }");
        let s = parse(&by_pipeline).unwrap();
        for r in s.runs.iter().filter(|r| r.experiment == "eval") {
            let want = if r.config.model().kind() == "llama" { 2.0 } else { 1.0 };
            assert_eq!(r.paper.as_ref().and_then(|p| p.cell("32")), Some(want), "{}", r.label);
        }
    }

    #[test]
    fn profiles_override_replace_axes_skip_and_move_run_ids() {
        let src = format!(
            "{PIPE}\n[[experiment]]\nname = \"file\"\nkind = \"embed\"\nembed = {{ source = \"file\", file = \"e5.safetensors\" }}\n\
             [[experiment]]\nname = \"eval_file\"\nkind = \"retrieval_eval\"\nfrom = \"file\"\n\
             [profile.ci]\ndescription = \"small\"\nseeds = [5]\ntrain = {{ steps = 2 }}\nskip = [\"file\"]\n\
             [profile.ci.sweep]\n\"retrieval_frozen.n\" = [3]\n"
        );
        let full = parse(&src).unwrap();
        let ci = Suite::parse_profile(Path::new("suites/t.toml"), src.clone(), Some("ci"), &[], false).unwrap();
        let of = |s: &Suite, e: &str| s.runs.iter().filter(|r| r.experiment == e).cloned().collect::<Vec<_>>();
        assert_eq!(of(&ci, "clm").len(), 4, "one seed instead of two");
        assert!(ci.runs.iter().all(|r| r.config.seed == 5 && r.config.profile.as_deref() == Some("ci")));
        assert!(of(&ci, "clm").iter().all(|r| r.config.train.as_ref().unwrap().steps == Some(2)));
        assert!(of(&ci, "frozen").iter().all(|r| r.config.retrieval_frozen.as_ref().unwrap().n == 3), "the axis is replaced");
        assert_eq!(of(&ci, "frozen").len(), 2);
        assert!(of(&ci, "file").is_empty() && of(&ci, "eval_file").is_empty(), "skipped, with its only consumer");
        assert_eq!(of(&full, "eval_file").len(), 2, "one per seed of the file producer");
        // The profile is part of the id even where it changes nothing else.
        let noop = src.replace("seeds = [5]\ntrain = { steps = 2 }\n", "").replace("\"retrieval_frozen.n\" = [3]", "\"retrieval_frozen.n\" = [4, 8]");
        let same = Suite::parse_profile(Path::new("t.toml"), noop, Some("ci"), &[], false).unwrap();
        assert!(of(&same, "clm").iter().all(|r| !full.runs.iter().any(|f| f.id == r.id)));
        // Errors name the profile and the fix.
        let e = |name: &str, text: &str| Suite::parse_profile(Path::new("t.toml"), text.into(), Some(name), &[], false).unwrap_err().to_string();
        assert!(e("gpu", &src).contains("no profile `gpu`; this suite has: ci"), "{}", e("gpu", &src));
        let bad_key = e("ci", &src.replace("description = \"small\"", "descripton = \"small\""));
        assert!(bad_key.contains("key `profile.ci.descripton`: unknown key in a profile"), "{bad_key}");
        let bad_axis = e("ci", &src.replace("\"retrieval_frozen.n\" = [3]", "\"retrieval_frozen.depth\" = [3]"));
        assert!(bad_axis.contains("replaces axis `retrieval_frozen.depth`, but no experiment sweeps it"), "{bad_axis}");
        let bad_skip = e("ci", &src.replace("skip = [\"file\"]", "skip = [\"nope\"]"));
        assert!(bad_skip.contains("no experiment `nope` to leave out"), "{bad_skip}");
    }
}
