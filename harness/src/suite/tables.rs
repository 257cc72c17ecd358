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
}
