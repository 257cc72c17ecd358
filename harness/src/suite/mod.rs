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
pub mod config;

pub use config::*;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use toml::{Table, Value};

/// Top-level keys a `[defaults]` table may hold.
const DEFAULT_KEYS: &[&str] = &["model", "data", "train", "representation", "device", "seeds", "init_from"];

#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    #[error("{file}: cannot read: {source}")]
    Read { file: PathBuf, source: std::io::Error },
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
    /// What the paper reports for this experiment, by model kind; shown beside our numbers.
    #[serde(default)]
    pub paper: BTreeMap<String, String>,
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
    pub init_from: Option<Value>,
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
    pub paper: Option<String>,
}

impl Run {
    pub fn short_id(&self) -> &str {
        &self.id[..12]
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
        let source = std::fs::read_to_string(path).map_err(|source| SuiteError::Read { file: path.into(), source })?;
        Self::parse(path, source, overrides, cuda_available)
    }

    pub fn parse(
        path: &Path,
        source: String,
        overrides: &[(String, Value)],
        cuda_available: bool,
    ) -> Result<Self, SuiteError> {
        let file: SuiteFile = toml::from_str(&source).map_err(|e| {
            let (line, col) = e.span().map(|s| line_col(&source, s.start)).unwrap_or((0, 0));
            SuiteError::Parse { file: path.into(), line, col, message: e.message().trim().to_string() }
        })?;
        let ctx = Ctx { path, source: &source };
        ctx.check_header(&file)?;
        for (key, _) in overrides {
            let head = key.split('.').next().unwrap_or_default();
            if !DEFAULT_KEYS.contains(&head) && head != "seed" {
                return Err(SuiteError::Override {
                    arg: key.clone(),
                    message: format!("unknown section `{head}`; allowed: {}, seed", DEFAULT_KEYS.join(", ")),
                });
            }
        }
        let mut runs: Vec<Run> = Vec::new();
        for exp in &file.experiments {
            for run in ctx.expand(&file, exp, overrides, cuda_available)? {
                // Two sweep points that resolve to the same config are one run.
                if !runs.iter().any(|r| r.id == run.id) {
                    runs.push(run);
                }
            }
        }
        Ok(Self { path: path.into(), source, file, runs })
    }
}

struct Ctx<'a> {
    path: &'a Path,
    source: &'a str,
}

impl Ctx<'_> {
    fn invalid(&self, key: &str, message: impl Into<String>) -> SuiteError {
        let message = message.into();
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

    fn expand(
        &self,
        file: &SuiteFile,
        exp: &ExperimentDef,
        overrides: &[(String, Value)],
        cuda_available: bool,
    ) -> Result<Vec<Run>, SuiteError> {
        let sections = exp.kind.sections();
        let mut base = Table::new();
        for s in sections {
            if let Some(v) = file.defaults.get(*s) {
                base.insert(s.to_string(), v.clone());
            }
        }
        let own: [(&str, Option<Value>); 6] = [
            ("model", exp.model.clone().map(Value::Table)),
            ("data", exp.data.clone().map(Value::Table)),
            ("train", exp.train.clone().map(Value::Table)),
            ("representation", exp.representation.clone().map(Value::Table)),
            ("device", exp.device.clone()),
            ("init_from", exp.init_from.clone()),
        ];
        for (k, v) in own {
            if let Some(v) = v {
                if !sections.contains(&k) {
                    return Err(self.invalid(k, format!("a `{:?}` experiment does not read [{k}]", exp.kind).to_lowercase()));
                }
                merge(&mut base, k, v);
            }
        }
        let seeds = match (&exp.seeds, file.defaults.get("seeds")) {
            (Some(s), _) => s.clone(),
            (None, Some(v)) => v
                .clone()
                .try_into::<Vec<u64>>()
                .map_err(|_| self.invalid("seeds", "expected a list of non-negative integers, e.g. seeds = [0, 1, 2]"))?,
            (None, None) => vec![0],
        };
        if seeds.is_empty() {
            return Err(self.invalid("seeds", "needs at least one seed"));
        }
        let mut axes: Vec<(String, Vec<Value>)> = Vec::new();
        for (key, values) in &exp.sweep {
            let head = key.split('.').next().unwrap_or_default();
            if !sections.contains(&head) {
                return Err(self.invalid(key, format!("sweep axis must start with one of: {}", sections.join(", "))));
            }
            if values.is_empty() {
                return Err(self.invalid(key, "sweep axis has no values"));
            }
            axes.push((key.clone(), values.clone()));
        }
        axes.push(("seed".into(), seeds.iter().map(|s| Value::Integer(*s as i64)).collect()));

        let mut runs = Vec::new();
        for point in cartesian(&axes) {
            let mut t = base.clone();
            t.insert("kind".into(), Value::String(format!("{:?}", exp.kind).to_lowercase()));
            for (k, v) in &point {
                set_dotted(&mut t, k, v.clone());
            }
            for (k, v) in overrides {
                let head = k.split('.').next().unwrap_or_default();
                if sections.contains(&head) || head == "seed" {
                    set_dotted(&mut t, k, v.clone());
                }
            }
            let mut config: RunConfig = serde_path_to_error::deserialize(Value::Table(t)).map_err(|e| {
                let key = e.path().to_string();
                let msg = e.inner().message().trim().to_string();
                self.invalid(&key, format!("{msg} (experiment `{}`)", exp.name))
            })?;
            self.validate(&mut config, &exp.name, cuda_available)?;
            let axes_desc = point
                .iter()
                .map(|(k, v)| (k.clone(), describe(v)))
                .collect();
            runs.push(Run {
                id: run_id(&config),
                suite: file.name.clone(),
                experiment: exp.name.clone(),
                paper: exp.paper.get(config.model.kind()).cloned(),
                config,
                axes: axes_desc,
            });
        }
        Ok(runs)
    }

    fn validate(&self, c: &mut RunConfig, exp: &str, cuda_available: bool) -> Result<(), SuiteError> {
        let bad = |key: &str, msg: String| self.invalid(key, format!("{msg} (experiment `{exp}`)"));
        c.model.validate().map_err(|e| match e {
            mm_models::ModelError::InvalidConfig { field, reason } => bad(&format!("model.{field}"), reason),
            other => bad("model", other.to_string()),
        })?;
        if c.data.source == DataSource::Hf {
            if let Some(name) = c.data.preset.clone() {
                let p = crate::data::hub::preset(&name).ok_or_else(|| {
                    bad("data.preset", format!("unknown preset `{name}`; known: {}", crate::data::hub::PRESETS.join(", ")))
                })?;
                let d = &mut c.data;
                d.repo.get_or_insert_with(|| p.repo.to_string());
                if d.files.is_empty() {
                    d.files = p.files.iter().map(|f| f.to_string()).collect();
                }
                if d.eval_files.is_empty() && d.eval_rows.is_none() {
                    d.eval_files = p.eval_files.iter().map(|f| f.to_string()).collect();
                    d.eval_rows = p.eval_rows;
                }
            }
            if c.data.repo.is_none() || c.data.files.is_empty() {
                return Err(bad("data.repo", "source = \"hf\" needs repo = \"owner/name\" and files = [...], or a preset".into()));
            }
        } else if c.data.preset.is_some() || c.data.repo.is_some() || !c.data.files.is_empty() {
            return Err(bad("data.repo", "preset / repo / files belong to source = \"hf\"".into()));
        }
        let d = &c.data;
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
        let needs_train = c.kind == ExperimentKind::Clm
            || c.representation.as_ref().is_some_and(|r| r.source == ModelSource::Trained);
        match (&c.train, needs_train) {
            (None, true) => return Err(bad("train", "this experiment trains a model: add a [train] section with batch_size and steps or tokens".into())),
            (Some(_), false) => c.train = None, // an untrained model does not depend on training settings
            _ => {}
        }
        if let Some(t) = &c.train {
            if t.steps.is_none() && t.tokens.is_none() {
                return Err(bad("train.steps", "give a budget: steps = N or tokens = N".into()));
            }
            if t.total_steps(d.n_ctx) == 0 {
                return Err(bad("train.steps", "the budget is 0 steps".into()));
            }
            if t.batch_size < 1 {
                return Err(bad("train.batch_size", format!("must be at least 1, got {}", t.batch_size)));
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
            if t.grad_clip < 0.0 {
                return Err(bad("train.grad_clip", "must be >= 0 (0 turns clipping off)".into()));
            }
        }
        if c.kind == ExperimentKind::Representation {
            let r = c.representation.get_or_insert_with(|| toml::from_str("").expect("all fields default"));
            if r.steps == 0 || r.top_k < 1 || r.lr0 <= 0.0 {
                return Err(bad("representation", "steps, top_k and lr0 must be positive".into()));
            }
            if r.skip < 0 || r.skip >= d.n_ctx {
                return Err(bad("representation.skip", format!("must be in 0..n_ctx ({}), got {}", d.n_ctx, r.skip)));
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
/// (another model family) replaces the whole table: its fields would not fit the old one.
fn merge(t: &mut Table, key: &str, value: Value) {
    match (t.get_mut(key), value) {
        (Some(Value::Table(dst)), Value::Table(src))
            if src.get("kind").is_none_or(|k| dst.get("kind").is_none_or(|d| d == k)) =>
        {
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
        assert_eq!(s.runs[0].config.model.kind(), "masked_mixer");
        assert_eq!((s.runs[1].config.model.kind(), s.runs[1].config.seed), ("masked_mixer", 1));
        assert_eq!(s.runs[2].config.model.kind(), "llama");
        assert!(s.runs.iter().any(|r| r.config.data.n_ctx == 32 && r.config.seed == 1));
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
        assert!(s.runs.iter().all(|r| r.config.data.padding == PaddingSide::Left));
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
        assert!(s.runs.iter().all(|r| r.config.model.kind() == "masked_mixer" && r.config.model.d_model() == 4));
        let ov = [parse_override("model.d_model=12").unwrap()];
        let s = Suite::parse(Path::new("t.toml"), GOOD.into(), &ov, false).unwrap();
        assert!(s.runs.iter().all(|r| r.config.model.d_model() == 12), "same kind: fields merge");
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
}
