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
        let focus = self.focus.borrow();
        let lines: Vec<&str> = self.source.lines().collect();
        let find = |range: &[usize]| -> Option<usize> {
            let text: String = range.iter().map(|&i| lines[i]).collect::<Vec<_>>().join("\n");
            let at = locate_value(&text, key, &message).or_else(|| locate(&text, key))?;
            Some(range[at - 1] + 1)
        };
        // A key the profile in force set: its line in the profile's sections, and the profile named.
        if let (Some(p), Some(exp)) = (&focus.profile, &focus.experiment) {
            if focus.profile_sets.iter().any(|(k, v)| sets(k, v, key)) {
                let own = experiment_block(&lines, exp).map(|b| sections_under(&lines, &b, &format!("experiment.profile.{p}"))).unwrap_or_default();
                let suite_wide = sections_under(&lines, &(0..lines.len()).collect::<Vec<_>>(), &format!("profile.{p}"));
                let line = find(&own).or_else(|| find(&suite_wide));
                return SuiteError::Invalid { file: self.path.into(), line, key: key.into(), message: format!("{message} (set by profile `{p}`)") };
            }
        }
        // Else the experiment's own block (its profile sections left out), then the whole file.
        let block = focus.experiment.as_ref().and_then(|e| experiment_block(&lines, e)).map(|b| {
            let profiles = sections_under(&lines, &b, "experiment.profile.");
            b.into_iter().filter(|i| !profiles.contains(i)).collect::<Vec<_>>()
        });
        let line = block.as_deref().and_then(find).or_else(|| locate_value(self.source, key, &message).or_else(|| locate(self.source, key)));
        SuiteError::Invalid { file: self.path.into(), line, key: key.into(), message }
    }

    /// Errors from here on are about this experiment, at this profile.
    pub(super) fn focus_on(&self, exp: &ExperimentDef, profiled: &super::Profiled) {
        let mut sets: Vec<(String, Value)> = profiled.overrides.to_vec();
        if let Some(t) = profiled.name.and_then(|n| exp.profile.get(n)) {
            sets.extend(t.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        sets.extend(profiled.axes.iter().map(|(k, v)| (k.clone(), Value::Array(v.clone()))));
        *self.focus.borrow_mut() = Focus { experiment: Some(exp.name.clone()), profile: profiled.name.map(String::from), profile_sets: sets };
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

/// Which part of the suite errors are about (see `Ctx::focus`).
#[derive(Debug, Default)]
pub(super) struct Focus {
    pub experiment: Option<String>,
    pub profile: Option<String>,
    /// What the profile sets for this experiment: (section or axis, value), its `sweep` included.
    pub profile_sets: Vec<(String, Value)>,
}

/// Whether a profile setting (`train = { steps = 3 }`, an axis `"model.d_model" = [...]`, a
/// `sweep` table of axes) sets the dotted `key` or a key inside it.
fn sets(k: &str, v: &Value, key: &str) -> bool {
    if k == "sweep" {
        return v.as_table().is_some_and(|t| t.iter().any(|(a, v)| sets(a, v, key)));
    }
    if k == key || k.starts_with(&format!("{key}.")) {
        return true;
    }
    let Some(rest) = key.strip_prefix(&format!("{k}.")) else { return false };
    let mut at = v;
    for part in rest.split('.') {
        match at.as_table().and_then(|t| t.get(part)) {
            Some(next) => at = next,
            None => return at.is_array() && k.contains('.'),
        }
    }
    true
}

/// A TOML header's name: `[a.b]` and `[[a.b]]` give `a.b`.
fn header(line: &str) -> Option<&str> {
    let l = line.trim();
    l.starts_with('[').then(|| l.trim_start_matches('[').split(']').next().unwrap_or_default().trim())
}

/// The 0-based lines of the `[[experiment]]` named `name`, its sub-tables included.
fn experiment_block(lines: &[&str], name: &str) -> Option<Vec<usize>> {
    let named = format!("\"{name}\"");
    let mut i = 0;
    while i < lines.len() {
        if header(lines[i]) == Some("experiment") && lines[i].trim().starts_with("[[") {
            let mut end = i + 1;
            while end < lines.len() {
                match header(lines[end]) {
                    Some(h) if h == "experiment" || !h.starts_with("experiment.") => break,
                    _ => end += 1,
                }
            }
            let block: Vec<usize> = (i..end).collect();
            let is_it = block.iter().any(|&j| {
                let l = lines[j].trim();
                l.strip_prefix("name").is_some_and(|r| r.trim_start().strip_prefix('=').is_some_and(|v| v.trim().starts_with(&named)))
            });
            if is_it {
                return Some(block);
            }
            i = end;
        } else {
            i += 1;
        }
    }
    None
}

/// The lines (within `within`) of the sections `prefix` names and their sub-tables (a profile's
/// `[profile.ci]` and `[profile.ci.train]`); a prefix ending in `.` takes every section under it.
fn sections_under(lines: &[&str], within: &[usize], prefix: &str) -> Vec<usize> {
    let exact = prefix.trim_end_matches('.');
    let mut out = Vec::new();
    let mut inside = false;
    for &i in within {
        if let Some(h) = header(lines[i]) {
            inside = h == exact || h.starts_with(&format!("{exact}.")) || (prefix.ends_with('.') && h.starts_with(prefix));
        }
        if inside {
            out.push(i);
        }
    }
    out
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
    // `where = { "data.n_ctx" = 64 }` for `where.data.n_ctx`.
    let quoted_rest = key.split_once('.').map(|(_, rest)| format!("\"{rest}\""));
    find(&|l| l.starts_with(&format!("\"{key}\"")))
        .or_else(|| quoted_rest.as_ref().and_then(|q| find(&|l| l.contains(q.as_str()) && l.contains('='))))
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
