//! JSON-lines and parquet sources, read with polars: one document per row, text in a column.
use super::DataError;
use polars::prelude::*;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy)]
pub enum Format {
    Jsonl,
    Parquet,
}

/// Rows read per parquet slice.
const SLICE_ROWS: usize = 8192;

/// The non-empty strings of `column`, in file order.
pub fn read_column(path: &Path, format: Format, column: &str) -> Result<Vec<String>, DataError> {
    Column::open(path, format, column)?.collect()
}

/// Every row of the named text columns of a parquet file, aligned: row i holds each column's
/// cell i (trimmed; None where it is null). For files whose rows must stay paired (query and
/// passage), where [`read_column`]'s skipping of empty cells would shift one column against another.
pub fn read_columns(path: &Path, columns: &[&str]) -> Result<Vec<Vec<Option<String>>>, DataError> {
    let read_err = |e| DataError::Read { path: path.into(), error: e };
    crate::artifacts::ensure_regular(path).map_err(read_err)?;
    let file = std::fs::File::open(path).map_err(read_err)?;
    let bad = |e: PolarsError| DataError::Columnar { path: path.into(), message: format!("not a readable parquet file ({e})") };
    let mut reader = ParquetReader::new(file);
    let schema = reader.schema().map_err(bad)?;
    for c in columns {
        let Some(field) = schema.get(c) else {
            return Err(DataError::MissingColumn { path: path.into(), column: c.to_string(), available: schema.iter_names().map(|n| n.to_string()).collect() });
        };
        let dtype = DataType::from_arrow_field(field);
        if !matches!(dtype, DataType::String) {
            return Err(DataError::Columnar { path: path.into(), message: format!("column `{c}` holds {dtype}, not text") });
        }
    }
    let df = reader.with_columns(Some(columns.iter().map(|c| c.to_string()).collect())).finish().map_err(bad)?;
    let cols: Vec<&StringChunked> = columns.iter().map(|c| df.column(c).and_then(|x| x.str()).map_err(bad)).collect::<Result<_, _>>()?;
    Ok((0..df.height()).map(|i| cols.iter().map(|c| c.get(i).map(|s| s.trim().to_string())).collect()).collect())
}

/// The non-empty strings of one column, in file order, read as a stream: JSON lines one line at
/// a time, parquet a slice of rows at a time and only that column, so a file larger than memory
/// can be read.
pub struct Column {
    path: PathBuf,
    column: String,
    source: Source,
    ready: VecDeque<String>,
    any: bool,
    done: bool,
    /// Rows read, and those without the column (absent or null): the first few by number.
    rows: usize,
    lacking: usize,
    first_lacking: Vec<usize>,
}

/// The share of rows that may lack the text column (absent or null) before the file is
/// refused: a few gaps are a dataset's, more are a wrong column name or a mixed file.
pub const MAX_LACKING_SHARE: f64 = 0.01;

enum Source {
    Jsonl { reader: BufReader<std::fs::File>, line: usize, first_keys: Option<Vec<String>>, seen_column: bool },
    Parquet { next: usize, total: usize },
}

impl Column {
    pub fn open(path: &Path, format: Format, column: &str) -> Result<Self, DataError> {
        let read_err = |e| DataError::Read { path: path.into(), error: e };
        crate::artifacts::ensure_regular(path).map_err(read_err)?;
        let file = std::fs::File::open(path).map_err(read_err)?;
        let source = match format {
            Format::Jsonl => Source::Jsonl { reader: BufReader::new(file), line: 0, first_keys: None, seen_column: false },
            Format::Parquet => {
                let bad = |e: PolarsError| DataError::Columnar { path: path.into(), message: format!("not a readable parquet file ({e})") };
                let mut reader = ParquetReader::new(file);
                let schema = reader.schema().map_err(bad)?;
                let Some(field) = schema.get(column) else {
                    return Err(DataError::MissingColumn {
                        path: path.into(),
                        column: column.into(),
                        available: schema.iter_names().map(|n| n.to_string()).collect(),
                    });
                };
                let dtype = DataType::from_arrow_field(field);
                if !matches!(dtype, DataType::String) {
                    return Err(DataError::Columnar { path: path.into(), message: format!("column `{column}` holds {dtype}, not text") });
                }
                Source::Parquet { next: 0, total: reader.num_rows().map_err(bad)? }
            }
        };
        Ok(Self { path: path.into(), column: column.into(), source, ready: VecDeque::new(), any: false, done: false, rows: 0, lacking: 0, first_lacking: Vec::new() })
    }

    fn lack(&mut self, row: usize) {
        self.lacking += 1;
        if self.first_lacking.len() < 5 {
            self.first_lacking.push(row);
        }
    }

    /// At the end of the file: refused when more than [`MAX_LACKING_SHARE`] of its rows lack
    /// the column.
    fn check_lacking(&self, unit: &str) -> Result<(), DataError> {
        if self.lacking == 0 || (self.lacking as f64) <= MAX_LACKING_SHARE * self.rows as f64 {
            return Ok(());
        }
        let first: Vec<String> = self.first_lacking.iter().map(|r| r.to_string()).collect();
        let more = if self.lacking > first.len() { ", ..." } else { "" };
        Err(DataError::Columnar {
            path: self.path.clone(),
            message: format!(
                "column `{}` is absent or null in {} of {} rows ({unit} {}{more}); more than {}% is refused, as it reads as a wrong column name \
                 or a mixed file: name the column that holds the text, or drop those rows",
                self.column,
                self.lacking,
                self.rows,
                first.join(", "),
                MAX_LACKING_SHARE * 100.0
            ),
        })
    }

    fn push(&mut self, text: &str) {
        let t = text.trim();
        if !t.is_empty() {
            self.any = true;
            self.ready.push_back(t.to_string());
        }
    }

    /// Reads the next line or slice; at the end, the file-level checks.
    fn fill(&mut self) -> Result<(), DataError> {
        let columnar = |path: &Path, message: String| DataError::Columnar { path: path.into(), message };
        match &mut self.source {
            Source::Jsonl { reader, line, first_keys, seen_column } => {
                let mut text = String::new();
                let n = reader.read_line(&mut text).map_err(|e| match e.kind() {
                    std::io::ErrorKind::InvalidData => columnar(&self.path, format!("line {}: not valid UTF-8; convert the file to UTF-8", *line + 1)),
                    _ => DataError::Read { path: self.path.clone(), error: e },
                })?;
                *line += 1;
                if n == 0 {
                    self.done = true;
                    if !*seen_column && first_keys.is_some() {
                        return Err(DataError::MissingColumn { path: self.path.clone(), column: self.column.clone(), available: first_keys.take().unwrap_or_default() });
                    }
                    self.check_lacking("lines")?;
                    return if self.any { Ok(()) } else { Err(DataError::Empty { path: self.path.clone() }) };
                }
                if text.trim().is_empty() {
                    return Ok(());
                }
                let value: serde_json::Value =
                    serde_json::from_str(&text).map_err(|e| columnar(&self.path, format!("line {line}: not valid JSON ({e})")))?;
                let serde_json::Value::Object(map) = value else {
                    return Err(columnar(&self.path, format!("line {line}: not a JSON object; each line holds one {{\"text\": ...}} record")));
                };
                if first_keys.is_none() {
                    *first_keys = Some(map.keys().cloned().collect());
                }
                self.rows += 1;
                match map.get(&self.column) {
                    None | Some(serde_json::Value::Null) => {
                        let at = *line;
                        self.lack(at);
                        Ok(())
                    }
                    Some(serde_json::Value::String(s)) => {
                        *seen_column = true;
                        let s = s.clone();
                        self.push(&s);
                        Ok(())
                    }
                    Some(other) => {
                        let what = match other {
                            serde_json::Value::Bool(_) => "booleans",
                            serde_json::Value::Number(_) => "numbers",
                            serde_json::Value::Array(_) => "lists",
                            _ => "objects",
                        };
                        Err(columnar(&self.path, format!("line {line}: column `{}` holds {what}, not text", self.column)))
                    }
                }
            }
            Source::Parquet { next, total } => {
                if *next >= *total {
                    self.done = true;
                    self.check_lacking("rows")?;
                    return if self.any { Ok(()) } else { Err(DataError::Empty { path: self.path.clone() }) };
                }
                let file = std::fs::File::open(&self.path).map_err(|e| DataError::Read { path: self.path.clone(), error: e })?;
                let df = ParquetReader::new(file)
                    .with_columns(Some(vec![self.column.clone()]))
                    .with_slice(Some((*next, SLICE_ROWS)))
                    .finish()
                    .map_err(|e| columnar(&self.path, format!("rows {next}..: not a readable parquet file ({e})")))?;
                let first = *next;
                *next += SLICE_ROWS;
                let col = df.column(&self.column).map_err(|e| columnar(&self.path, e.to_string()))?;
                let strings = col.str().map_err(|_| columnar(&self.path, format!("column `{}` holds {}, not text", self.column, col.dtype())))?;
                self.rows += strings.len();
                for (i, t) in strings.iter().enumerate() {
                    let Some(t) = t else {
                        self.lack(first + i + 1);
                        continue;
                    };
                    let t = t.trim();
                    if !t.is_empty() {
                        self.any = true;
                        self.ready.push_back(t.to_string());
                    }
                }
                Ok(())
            }
        }
    }
}

impl super::Refill for Column {
    fn buffer(&mut self) -> (&mut VecDeque<String>, &mut bool) {
        (&mut self.ready, &mut self.done)
    }

    fn fill(&mut self) -> Result<(), DataError> {
        Column::fill(self)
    }
}

impl Iterator for Column {
    type Item = Result<String, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        super::pull(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_jsonl_and_parquet_and_names_missing_columns() {
        let dir = tempfile::tempdir().unwrap();
        let jl = dir.path().join("d.jsonl");
        std::fs::write(&jl, "{\"text\": \"one story\", \"id\": 1}\n{\"text\": \"  \", \"id\": 2}\n{\"text\": \"two\", \"id\": 3}\n").unwrap();
        assert_eq!(read_column(&jl, Format::Jsonl, "text").unwrap(), vec!["one story", "two"]);
        let e = read_column(&jl, Format::Jsonl, "story").unwrap_err().to_string();
        assert!(e.contains("d.jsonl") && e.contains("no column `story`") && e.contains("text"), "{e}");
        let e = read_column(&jl, Format::Jsonl, "id").unwrap_err().to_string();
        assert!(e.contains("not text"), "{e}");

        let pq = dir.path().join("d.parquet");
        let mut df = df!("text" => ["a tale", "another"], "n" => [1i64, 2]).unwrap();
        ParquetWriter::new(std::fs::File::create(&pq).unwrap()).finish(&mut df).unwrap();
        assert_eq!(read_column(&pq, Format::Parquet, "text").unwrap(), vec!["a tale", "another"]);
        // A parquet file of several slices reads in order, nulls (under 1% of rows) and blanks
        // dropped, only `text`; with a seventh of its rows null it is refused, naming them.
        let write = |null_every: usize| {
            let texts: Vec<Option<String>> =
                (0..20_000).map(|i| (i % null_every != 3).then(|| if i % 11 == 0 { " ".into() } else { format!("doc {i}") })).collect();
            let cols = vec![polars::prelude::Column::new("id".into(), (0..20_000i64).collect::<Vec<_>>()), polars::prelude::Column::new("text".into(), texts.clone())];
            let mut df = DataFrame::new_infer_height(cols).unwrap();
            ParquetWriter::new(std::fs::File::create(&pq).unwrap()).with_row_group_size(Some(3000)).finish(&mut df).unwrap();
            texts.into_iter().flatten().filter(|t| !t.trim().is_empty()).collect::<Vec<String>>()
        };
        let want = write(150);
        assert_eq!(read_column(&pq, Format::Parquet, "text").unwrap(), want);
        write(7);
        let e = read_column(&pq, Format::Parquet, "text").unwrap_err().to_string();
        assert!(e.contains("d.parquet") && e.contains("absent or null in 2857 of 20000 rows (rows 4, 11, 18, 25, 32, ...)"), "{e}");
        let e = read_column(&pq, Format::Parquet, "id").unwrap_err().to_string();
        assert!(e.contains("not text"), "{e}");
        let e = read_column(&jl, Format::Parquet, "text").unwrap_err().to_string();
        assert!(e.contains("d.jsonl"), "a jsonl file read as parquet names the file: {e}");
    }
}
