//! Suite errors and where in the file they point: the key's line, or the `--set` that set it.
use super::*;

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

impl Ctx<'_> {
    pub(super) fn invalid(&self, key: &str, message: impl Into<String>) -> SuiteError {
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

    pub(super) fn inherited(&self, exp: &ExperimentDef, key: &str) -> SuiteError {
        self.invalid(
            key,
            format!(
                "experiment `{}` takes its model, data and seed from `{}` (from = ...); remove `{key}` here and set it on the producer",
                exp.name,
                exp.from.as_ref().map(|f| f.names().join(", ")).unwrap_or_default()
            ),
        )
    }
}

pub(super) fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let before = &src[..offset.min(src.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The line that holds both the key's last segment and the offending value that serde quotes in
/// its message ("unknown variant `mamba`", "invalid type: string \"two\"").
pub(super) fn locate_value(src: &str, key: &str, message: &str) -> Option<usize> {
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
