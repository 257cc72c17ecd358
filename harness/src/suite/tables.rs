//! The paper's tables as data (PAPER.md G): a suite's `[[table]]` gives a table's layout and the
//! paper's numbers; its experiments' `cells` say which entry each sweep point fills.
//!
//! ```toml
//! [[table]]
//! id = "T2"
//! caption = "TinyStories Llama CLM by width (n8, h16), 12 h RTX 3060"
//! entries = ["d128", "d256", "d512", "d1024 (b=8)"]   # the paper's columns (layout = "columns")
//! metrics = ["train", "test"]                          # its rows: "name" or "name=summary_key"
//! paper = { train = [2.38, 1.99, 1.87, 2.31], test = [2.40, 2.02, 1.91, 2.32] }
//!
//! [[experiment]]
//! name = "llama_width"
//! cells = { T2 = ["d128", "d256", "d512"] }           # one per sweep point, in plan order; "-": none
//! ```
//! An entry is filled by the runs (all seeds) of one sweep point; a table may gather entries from
//! several experiments, and one sweep point may fill entries of several tables.
use serde::Deserialize;
use std::collections::BTreeMap;

/// Whether the entries are the paper table's columns (T2-T8: rows are metrics) or its rows
/// (T9, T10: columns are metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    #[default]
    Columns,
    Rows,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaperTable {
    /// PAPER.md's number ("T2").
    pub id: String,
    pub caption: String,
    /// The table's entries in the paper's order.
    pub entries: Vec<String>,
    /// What each entry shows, in the paper's order: `"train"`, `"test"`, `"eval"`, `"val"` (CE
    /// losses) or `"name=summary_key"` for anything a run's summary holds; `train_loss@epoch1` /
    /// `eval_loss@epoch1` read the loss curves at the end of the first epoch (T5).
    pub metrics: Vec<String>,
    #[serde(default)]
    pub layout: Layout,
    /// The paper's values by metric name, one per entry (`nan` where the paper has none).
    #[serde(default)]
    pub paper: BTreeMap<String, Vec<f64>>,
    /// Where the numbers come from and which reading of PAPER.md the suite takes.
    #[serde(default)]
    pub note: Option<String>,
}

/// How close one cell must come to the paper's number to match it: `abs` in the metric's own
/// unit, and why that much.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tolerance {
    pub abs: f64,
    /// The seed-to-seed sd the suite expects for the metric at its scale (the metric's unit):
    /// what a claim's seed plan uses while no side has 2 seeds to measure it.
    #[serde(default)]
    pub seed_sd: Option<f64>,
    pub why: String,
}

/// A suite's `[tolerance]`: one band per kind of metric, since a nat of CE, a point of top-1
/// accuracy and a Hamming fraction are not comparable.
///
/// ```toml
/// [tolerance]
/// ce = { abs = 0.05, seed_sd = 0.026, why = "seed sd 0.026 nats (pooled) at ci scale; the tokenizer is retrained" }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tolerances {
    /// Cross-entropy losses (nats).
    #[serde(default)]
    pub ce: Option<Tolerance>,
    /// Top-1 retrieval accuracy (percentage points).
    #[serde(default)]
    pub top1: Option<Tolerance>,
    /// The modified Hamming metric (a fraction of tokens).
    #[serde(default)]
    pub hamming: Option<Tolerance>,
    /// Peak training memory on a card (MiB; T6, T7).
    #[serde(default)]
    pub memory: Option<Tolerance>,
}

/// The kinds of metric a tolerance is stated for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Ce,
    Top1,
    Hamming,
    Memory,
}

impl MetricKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Ce => "ce",
            Self::Top1 => "top1",
            Self::Hamming => "hamming",
            Self::Memory => "memory",
        }
    }
}

impl Tolerances {
    pub fn of(&self, kind: MetricKind) -> Option<&Tolerance> {
        match kind {
            MetricKind::Ce => self.ce.as_ref(),
            MetricKind::Top1 => self.top1.as_ref(),
            MetricKind::Hamming => self.hamming.as_ref(),
            MetricKind::Memory => self.memory.as_ref(),
        }
    }

    /// Each band stated is a positive finite number with a reason, as (key, message).
    pub fn check(&self) -> Result<(), (String, String)> {
        for kind in [MetricKind::Ce, MetricKind::Top1, MetricKind::Hamming, MetricKind::Memory] {
            if let Some(t) = self.of(kind) {
                let key = format!("tolerance.{}", kind.name());
                if !(t.abs.is_finite() && t.abs > 0.0) {
                    return Err((key, format!("abs = {} is no band: give a positive number in the metric's unit", t.abs)));
                }
                if t.seed_sd.is_some_and(|s| !(s.is_finite() && s > 0.0)) {
                    return Err((key, format!("seed_sd = {} is no spread: give a positive number in the metric's unit, or leave it out", t.seed_sd.unwrap_or_default())));
                }
                if t.why.trim().is_empty() {
                    return Err((key, "why is empty: say what the band is made of (seed spread, a reading, a retrained tokenizer)".into()));
                }
            }
        }
        Ok(())
    }
}

/// Whether one cell matches the paper's number within the suite's band.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CellMatch {
    Matches,
    /// Ours minus the paper's, outside the band.
    Differs(f64),
}

impl CellMatch {
    pub fn of(ours: f64, paper: f64, band: &Tolerance) -> Self {
        let d = ours - paper;
        if d.abs() <= band.abs { Self::Matches } else { Self::Differs(d) }
    }

    pub fn text(self) -> String {
        match self {
            Self::Matches => "matches".into(),
            Self::Differs(d) => format!("differs by {d:+.2}"),
        }
    }
}

/// One metric of a table: its printed name and the run-summary key it reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub name: String,
    pub key: String,
}

impl Metric {
    /// Lower is better for losses (the CE metrics) and the Hamming metric, higher for everything
    /// else (accuracy).
    pub fn lower_is_better(&self) -> bool {
        let key = self.key.split('@').next().unwrap_or_default();
        key.ends_with("loss") || key.ends_with("_ce") || key.starts_with("hamming")
    }

    /// Which band of `[tolerance]` the metric's cells are matched with, if any.
    pub fn kind(&self) -> Option<MetricKind> {
        let key = self.key.split('@').next().unwrap_or_default();
        if key.ends_with("loss") || key.ends_with("_ce") {
            Some(MetricKind::Ce)
        } else if key.starts_with("hamming") {
            Some(MetricKind::Hamming)
        } else if key.contains("top1") {
            Some(MetricKind::Top1)
        } else {
            None
        }
    }
}

pub fn parse_metric(spec: &str) -> Result<Metric, String> {
    if let Some((name, key)) = spec.split_once('=') {
        let (name, key) = (name.trim(), key.trim());
        if name.is_empty() || key.is_empty() {
            return Err(format!("`{spec}`: expected name=summary_key, e.g. \"test=eval_loss\""));
        }
        return Ok(Metric { name: name.into(), key: key.into() });
    }
    let key = match spec {
        "train" => "train_loss",
        "test" | "eval" | "val" => "eval_loss",
        other => return Err(format!("`{other}` is not a known metric; use train, test, eval, val or name=summary_key")),
    };
    Ok(Metric { name: spec.into(), key: key.into() })
}

impl PaperTable {
    pub fn metrics(&self) -> Vec<Metric> {
        self.metrics.iter().map(|m| parse_metric(m).expect("validated when the suite loaded")).collect()
    }

    /// The paper's value of one cell.
    pub fn paper(&self, entry: &str, metric: &str) -> Option<f64> {
        let i = self.entries.iter().position(|e| e == entry)?;
        self.paper.get(metric).and_then(|v| v.get(i)).copied().filter(|v| v.is_finite())
    }

    /// The cell's full name as plans and reports print it: "T2 d128".
    pub fn cell(&self, entry: &str) -> String {
        format!("{} {entry}", self.id)
    }

    /// Problems with the table itself, as (key, message).
    pub fn check(&self) -> Result<(), (String, String)> {
        let key = |k: &str| format!("table.{}", k);
        if self.entries.is_empty() {
            return Err((key("entries"), format!("table {} lists no entries", self.id)));
        }
        let mut seen = std::collections::BTreeSet::new();
        for e in &self.entries {
            if e == "-" || !seen.insert(e) {
                return Err((key("entries"), format!("table {}: entry `{e}` is reserved or listed twice", self.id)));
            }
        }
        let mut names = Vec::new();
        for m in &self.metrics {
            names.push(parse_metric(m).map_err(|e| (key("metrics"), format!("table {}: {e}", self.id)))?.name);
        }
        if names.is_empty() {
            return Err((key("metrics"), format!("table {} lists no metrics", self.id)));
        }
        for (metric, values) in &self.paper {
            if !names.contains(metric) {
                return Err((key("paper"), format!("table {}: `{metric}` is not one of its metrics ({})", self.id, names.join(", "))));
            }
            if values.len() != self.entries.len() {
                return Err((
                    key("paper"),
                    format!("table {}: `{metric}` has {} values for {} entries (use nan where the paper has none)", self.id, values.len(), self.entries.len()),
                ));
            }
        }
        Ok(())
    }
}

/// A direction the paper claims between two table cells ("flat beats expanded"), tested over
/// seeds by the report in two views: the runs' final values (as budgeted) and at equal
/// wall-clock on the machine that ran them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claim {
    pub text: String,
    /// The cell that should come out better ("T5 flat").
    pub better: String,
    /// The cell it is compared with ("T5 expanded").
    pub than: String,
    /// A metric name of both cells' tables; lower is better for losses.
    #[serde(default = "test_metric")]
    pub metric: String,
}

fn test_metric() -> String {
    "test".into()
}

/// The table and entry a full cell name ("T2 d128") refers to.
pub fn find_cell<'a>(tables: &'a [PaperTable], cell: &str) -> Option<(&'a PaperTable, &'a str)> {
    tables.iter().find_map(|t| t.entries.iter().find(|e| t.cell(e) == cell).map(|e| (t, e.as_str())))
}

impl Claim {
    /// The claim names cells of this suite's tables and a metric both tables show.
    pub fn check(&self, tables: &[PaperTable]) -> Result<Metric, String> {
        if self.better == self.than {
            return Err(format!("claim \"{}\": `better` and `than` are the same cell `{}`; a claim compares two cells", self.text, self.better));
        }
        let mut metric = None;
        for cell in [&self.better, &self.than] {
            let Some((t, _)) = find_cell(tables, cell) else {
                let known: Vec<String> = tables.iter().flat_map(|t| t.entries.iter().map(|e| t.cell(e))).collect();
                return Err(format!("claim \"{}\": no table cell `{cell}`; cells are {}", self.text, known.join(", ")));
            };
            let m = t.metrics().into_iter().find(|m| m.name == self.metric).ok_or_else(|| {
                format!("claim \"{}\": table {} has no metric `{}` ({})", self.text, t.id, self.metric, t.metrics.join(", "))
            })?;
            metric = Some(m);
        }
        Ok(metric.expect("two cells"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_default_to_the_ce_losses_and_take_explicit_keys() {
        assert_eq!(parse_metric("test").unwrap().key, "eval_loss");
        assert_eq!(parse_metric("top-1=infonce_top1").unwrap(), Metric { name: "top-1".into(), key: "infonce_top1".into() });
        assert!(parse_metric("accuracy").unwrap_err().contains("name=summary_key"));
        assert!(parse_metric("test=eval_loss").unwrap().lower_is_better());
        assert!(!parse_metric("top1=infonce_top1").unwrap().lower_is_better());
    }

    #[test]
    fn paper_values_must_fit_the_entries() {
        let t: PaperTable = toml::from_str(
            "id = \"T5\"\ncaption = \"c\"\nentries = [\"expanded\", \"flat\"]\nmetrics = [\"train\", \"test\"]\npaper = { train = [2.159], test = [2.183, 2.111] }",
        )
        .unwrap();
        let (key, msg) = t.check().unwrap_err();
        assert_eq!(key, "table.paper");
        assert!(msg.contains("1 values for 2 entries"), "{msg}");
        let ok = PaperTable { paper: BTreeMap::from([("train".into(), vec![2.159, f64::NAN])]), ..t };
        ok.check().unwrap();
        assert_eq!(ok.paper("expanded", "train"), Some(2.159));
        assert_eq!(ok.paper("flat", "train"), None, "nan is no value");
    }

    #[test]
    fn a_cell_matches_within_its_kinds_band_and_says_by_how_much_it_differs() {
        let t: Tolerances = toml::from_str("ce = { abs = 0.05, why = \"seed spread\" }\nhamming = { abs = 0.1, why = \"h\" }").unwrap();
        t.check().unwrap();
        let metric = |spec: &str| parse_metric(spec).unwrap();
        assert_eq!(metric("test").kind(), Some(MetricKind::Ce));
        assert_eq!(metric("train=train_loss@epoch1").kind(), Some(MetricKind::Ce));
        assert_eq!(metric("trained=hamming").kind(), Some(MetricKind::Hamming));
        assert_eq!(metric("top-1=infonce_top1").kind(), Some(MetricKind::Top1));
        assert_eq!(metric("speed=tokens_per_s").kind(), None);
        let ce = t.of(MetricKind::Ce).unwrap();
        assert_eq!(CellMatch::of(2.14, 2.183, ce), CellMatch::Matches);
        assert_eq!(CellMatch::of(2.133, 2.183, ce), CellMatch::Matches, "the band's edge matches");
        let off = CellMatch::of(2.30, 2.183, ce);
        assert!(matches!(off, CellMatch::Differs(d) if (d - 0.117).abs() < 1e-12));
        assert_eq!(off.text(), "differs by +0.12");
        assert_eq!(CellMatch::of(1.9, 2.183, ce).text(), "differs by -0.28");
        assert!(t.of(MetricKind::Top1).is_none());
        // A band of nothing, or without its reason, is refused with the key to fix.
        let bad: Tolerances = toml::from_str("top1 = { abs = 0.0, why = \"x\" }").unwrap();
        assert_eq!(bad.check().unwrap_err().0, "tolerance.top1");
        let bare: Tolerances = toml::from_str("ce = { abs = 0.05, why = \" \" }").unwrap();
        assert!(bare.check().unwrap_err().1.contains("why is empty"));
        assert!(toml::from_str::<Tolerances>("cross_entropy = { abs = 0.05, why = \"x\" }").is_err(), "unknown kinds are refused");
    }
}
