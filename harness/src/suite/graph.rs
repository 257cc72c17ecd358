//! Runs that consume runs: the producers an experiment names with `from`, filtered by `where`.
use super::*;

impl Ctx<'_> {
    /// The producers named by `from`, their runs filtered by `where`; checked against the kinds
    /// this experiment can consume.
    pub(super) fn producers<'a>(
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
        let allowed = (self.kinds)(exp.kind).producers();
        let mut out = Vec::new();
        for name in from.names().into_iter().filter(|n| !skipped.contains(*n)) {
            let Some((key, (kind, runs))) = earlier.get_key_value(name) else {
                if name == exp.name {
                    return Err(self.invalid("from", format!("experiment `{name}` names itself: `from` names an earlier experiment whose runs this one reads")));
                }
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
}

/// The resolved value at a dotted key of a config, as JSON.
pub(super) fn json_at(config: &RunConfig, key: &str) -> Option<serde_json::Value> {
    let mut v = serde_json::to_value(config).ok()?;
    for part in key.split('.') {
        v = v.get(part)?.clone();
    }
    Some(v)
}

/// JSON equality with numbers compared as numbers (a TOML 64 and a resolved 64.0 agree).
pub(super) fn json_eq(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => match (a, b) {
            (serde_json::Value::Object(x), serde_json::Value::Object(y)) => y.iter().all(|(k, v)| x.get(k).is_some_and(|w| json_eq(w, v))),
            _ => a == b,
        },
    }
}
