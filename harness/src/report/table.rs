//! Result tables: one row per run, and a seed-aggregated view (mean ± sd), as polars frames
//! written to parquet and csv and rendered to markdown.
use polars::prelude::*;
use std::path::Path;

/// A column of a result table.
#[derive(Debug, Clone)]
pub enum Col {
    Str(Vec<String>),
    Num(Vec<Option<f64>>),
    Int(Vec<Option<i64>>),
}

#[derive(Debug, Clone, Default)]
pub struct Table {
    pub names: Vec<String>,
    pub cols: Vec<Col>,
}

impl Table {
    pub fn push(&mut self, name: &str, col: Col) {
        self.names.push(name.into());
        self.cols.push(col);
    }

    pub fn height(&self) -> usize {
        self.cols.first().map_or(0, |c| match c {
            Col::Str(v) => v.len(),
            Col::Num(v) => v.len(),
            Col::Int(v) => v.len(),
        })
    }

    pub fn to_frame(&self) -> PolarsResult<DataFrame> {
        let cols = self
            .names
            .iter()
            .zip(&self.cols)
            .map(|(n, c)| match c {
                Col::Str(v) => Column::new(n.as_str().into(), v),
                Col::Num(v) => Column::new(n.as_str().into(), v),
                Col::Int(v) => Column::new(n.as_str().into(), v),
            })
            .collect();
        DataFrame::new(self.height(), cols)
    }

    /// `<stem>.parquet` and `<stem>.csv` in `dir`.
    pub fn write(&self, dir: &Path, stem: &str) -> PolarsResult<()> {
        let mut df = self.to_frame()?;
        ParquetWriter::new(std::fs::File::create(dir.join(format!("{stem}.parquet")))?).finish(&mut df)?;
        CsvWriter::new(std::fs::File::create(dir.join(format!("{stem}.csv")))?).finish(&mut df)?;
        Ok(())
    }

    /// The table without its columns that hold no value in any row (all "—" or missing): what a
    /// page shows, while the data files keep every column.
    pub fn without_empty_columns(&self) -> Table {
        let empty = |c: &Col| match c {
            Col::Str(v) => v.iter().all(|x| x.is_empty() || x == "—"),
            Col::Num(v) => v.iter().all(Option::is_none),
            Col::Int(v) => v.iter().all(Option::is_none),
        };
        let mut t = Table::default();
        for (n, c) in self.names.iter().zip(&self.cols) {
            if !empty(c) {
                t.push(n, c.clone());
            }
        }
        t
    }

    pub fn markdown(&self) -> String {
        let mut s = format!("| {} |\n|{}\n", self.names.join(" | "), "---|".repeat(self.names.len()));
        for r in 0..self.height() {
            let cells: Vec<String> = self
                .cols
                .iter()
                .map(|c| match c {
                    Col::Str(v) => v[r].replace('|', "\\|"),
                    Col::Num(v) => v[r].map_or("—".into(), fmt_num),
                    Col::Int(v) => v[r].map_or("—".into(), |x| x.to_string()),
                })
                .collect();
            s.push_str(&format!("| {} |\n", cells.join(" | ")));
        }
        s
    }
}

pub fn fmt_num(x: f64) -> String {
    if x.is_nan() {
        "NaN".into()
    } else if x.abs() >= 1000.0 {
        format!("{x:.0}")
    } else if x.abs() >= 100.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.4}")
    }
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_files_and_markdown_agree() {
        let mut t = Table::default();
        t.push("model", Col::Str(vec!["mixer".into(), "llama".into()]));
        t.push("loss", Col::Num(vec![Some(1.5), None]));
        let dir = tempfile::tempdir().unwrap();
        t.write(dir.path(), "runs").unwrap();
        let csv = std::fs::read_to_string(dir.path().join("runs.csv")).unwrap();
        assert_eq!(csv, "model,loss\nmixer,1.5\nllama,\n");
        assert!(t.markdown().contains("| llama | — |"));
    }
}
