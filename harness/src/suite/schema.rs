//! The suite file as written: its top-level keys, experiments and paper values (serde).
use super::*;

/// The sections of a run config a suite sets (in `[defaults]`, an experiment, a profile or with
/// `--set`), in the order of `ExperimentDef::settings`; a new section goes here, into
/// `ExperimentDef` and into `RunConfig`.
pub(super) const SECTIONS: &[&str] = &[
    "model",
    "data",
    "train",
    "representation",
    "device",
    "cpu_kernels",
    "init_from",
    "pairs",
    "embed",
    "retrieval_frozen",
    "retrieval_infonce",
    "retrieval_eval",
    "throughput",
];

/// Top-level keys a `[defaults]` table (or a profile, or `--set`) may hold: the sections and the
/// seeds.
pub(super) fn default_keys() -> Vec<&'static str> {
    let mut keys = SECTIONS.to_vec();
    keys.insert(6, "seeds");
    keys
}

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
    /// How close a cell must come to the paper's number to match it, per kind of metric.
    #[serde(default)]
    pub tolerance: Tolerances,
    /// Named scales of the same grid (`harness run --profile ci`): each holds overrides applied
    /// to every run as `--set` does (`seeds`, `device`, `[profile.ci.data]`, ...), an optional
    /// `description`, `[profile.ci.sweep]` to replace the values of sweep axes, and `skip`, the
    /// experiments left out at that scale.
    #[serde(default)]
    pub profile: BTreeMap<String, Table>,
    /// Resources of each task when the sweep runs as a Slurm job array (`harness plan --emit
    /// slurm`): partition, account, qos, gpus, cpus, mem, time, throttle, setup, sbatch.
    #[serde(default)]
    pub slurm: Option<SlurmConfig>,
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

impl ExperimentDef {
    /// The sections this experiment sets itself, by name ([`SECTIONS`] order).
    pub(super) fn settings(&self) -> [(&'static str, Option<Value>); 13] {
        let table = |t: &Option<Table>| t.clone().map(Value::Table);
        [
            ("model", table(&self.model)),
            ("data", table(&self.data)),
            ("train", table(&self.train)),
            ("representation", table(&self.representation)),
            ("device", self.device.clone()),
            ("cpu_kernels", self.cpu_kernels.clone()),
            ("init_from", self.init_from.clone()),
            ("pairs", table(&self.pairs)),
            ("embed", table(&self.embed)),
            ("retrieval_frozen", table(&self.retrieval_frozen)),
            ("retrieval_infonce", table(&self.retrieval_infonce)),
            ("retrieval_eval", table(&self.retrieval_eval)),
            ("throughput", table(&self.throughput)),
        ]
    }
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

/// Resources of every task (the suite's `[slurm]` table; command-line flags override it).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmConfig {
    pub partition: Option<String>,
    pub account: Option<String>,
    pub qos: Option<String>,
    /// GPUs per task (`--gres=gpu:N`).
    pub gpus: Option<u32>,
    pub cpus: Option<u32>,
    /// Memory per task, as sbatch takes it (`"32G"`).
    pub mem: Option<String>,
    /// Time limit per task (`"12:00:00"`).
    pub time: Option<String>,
    /// Tasks of an array running at once (`--array=0-N%T`).
    pub throttle: Option<u32>,
    /// Shell lines run before the harness in each task (`module load cuda/12.4`, `source env.sh`).
    #[serde(default)]
    pub setup: Vec<String>,
    /// Further `#SBATCH` options, verbatim (`"--constraint=h100"`).
    #[serde(default)]
    pub sbatch: Vec<String>,
}

impl SlurmConfig {
    /// `other`'s fields where it has them, else these.
    pub fn overridden_by(&self, other: &SlurmConfig) -> SlurmConfig {
        let pick = |a: &Option<String>, b: &Option<String>| b.clone().or_else(|| a.clone());
        SlurmConfig {
            partition: pick(&self.partition, &other.partition),
            account: pick(&self.account, &other.account),
            qos: pick(&self.qos, &other.qos),
            gpus: other.gpus.or(self.gpus),
            cpus: other.cpus.or(self.cpus),
            mem: pick(&self.mem, &other.mem),
            time: pick(&self.time, &other.time),
            throttle: other.throttle.or(self.throttle),
            setup: if other.setup.is_empty() { self.setup.clone() } else { other.setup.clone() },
            sbatch: [self.sbatch.clone(), other.sbatch.clone()].concat(),
        }
    }
}
