//! JSON-lines and parquet sources, read with polars: one document per row, text in a column.
use super::DataError;
use polars::prelude::*;
use std::path::Path;

#[derive(Debug, Clone, Copy)]
pub enum Format {
    Jsonl,
    Parquet,
}

/// The non-empty strings of `column`, in file order.
pub fn read_column(path: &Path, format: Format, column: &str) -> Result<Vec<String>, DataError> {
    crate::artifacts::ensure_regular(path).map_err(|e| DataError::Read { path: path.into(), error: e })?;
    let file = std::fs::File::open(path).map_err(|e| DataError::Read { path: path.into(), error: e })?;
    let df = match format {
        Format::Jsonl => JsonReader::new(file).with_json_format(JsonFormat::JsonLines).finish(),
        Format::Parquet => ParquetReader::new(file).finish(),
    }
    .map_err(|e| DataError::Columnar {
        path: path.into(),
        message: match format {
            // polars does not say where; the first line that is not JSON does.
            Format::Jsonl => first_bad_json_line(path).unwrap_or_else(|| e.to_string()),
            Format::Parquet => format!("not a readable parquet file ({e})"),
        },
    })?;
    let col = df.column(column).map_err(|_| DataError::MissingColumn {
        path: path.into(),
        column: column.into(),
        available: df.get_column_names().iter().map(|c| c.to_string()).collect(),
    })?;
    let strings = col.str().map_err(|_| DataError::Columnar {
        path: path.into(),
        message: format!("column `{column}` holds {}, not text", col.dtype()),
    })?;
    let out: Vec<String> = strings.iter().flatten().map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
    if out.is_empty() {
        return Err(DataError::Empty { path: path.into() });
    }
    Ok(out)
}

/// "line N: <why>" for the first non-empty line of a JSON-lines file that is not a JSON object.
fn first_bad_json_line(path: &Path) -> Option<String> {
    let text = crate::artifacts::read_regular_string(path).ok()?;
    text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()).find_map(|(i, l)| match serde_json::from_str::<serde_json::Value>(l) {
        Ok(v) if v.is_object() => None,
        Ok(_) => Some(format!("line {}: not a JSON object; each line holds one {{\"text\": ...}} record", i + 1)),
        Err(e) => Some(format!("line {}: not valid JSON ({e})", i + 1)),
    })
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
        let e = read_column(&jl, Format::Parquet, "text").unwrap_err().to_string();
        assert!(e.contains("d.jsonl"), "a jsonl file read as parquet names the file: {e}");
    }
}
