//! Profiles (`[profile.<name>]`, `[experiment.profile.<name>]`): one suite at several scales.
use super::*;

impl Ctx<'_> {
    /// `[experiment.profile.X]` sections name profiles of the suite and hold `sweep` or the
    /// sections the experiment reads.
    pub(super) fn check_experiment_profiles(&self, file: &SuiteFile) -> Result<(), SuiteError> {
        for exp in &file.experiments {
            for (name, t) in &exp.profile {
                let key = format!("profile.{name}");
                if !file.profile.contains_key(name) {
                    return Err(self.invalid(&key, format!("experiment `{}` has a section for profile `{name}`, but the suite has no [profile.{name}]", exp.name)));
                }
                let sections = (self.kinds)(exp.kind).sections();
                for (k, v) in t {
                    match k.as_str() {
                        "sweep" => {
                            let Some(axes) = v.as_table() else {
                                return Err(self.invalid(&format!("{key}.sweep"), "expected a table of axis = [values]"));
                            };
                            for (axis, values) in axes {
                                if !exp.sweep.contains_key(axis) {
                                    return Err(self.invalid(axis, format!("profile `{name}` replaces axis `{axis}`, which experiment `{}` does not sweep", exp.name)));
                                }
                                if !values.is_array() {
                                    return Err(self.invalid(axis, format!("profile `{name}`: a sweep axis takes a list of values")));
                                }
                            }
                        }
                        k if sections.contains(&k) || k == "seeds" => {}
                        other => {
                            return Err(self.invalid(
                                &format!("{key}.{other}"),
                                format!("experiment `{}` (kind {}) reads sweep, seeds, {}", exp.name, exp.kind.name(), sections.join(", ")),
                            ))
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// A profile's overrides (as `--set` pairs), its sweep-axis replacements, and the experiments
    /// it leaves out (`skip`: inputs that do not exist at its scale, e5's embeddings file say).
    #[allow(clippy::type_complexity)]
    pub(super) fn profile(
        &self,
        file: &SuiteFile,
        name: &str,
    ) -> Result<(Vec<(String, Value)>, BTreeMap<String, Vec<Value>>, std::collections::BTreeSet<String>), SuiteError> {
        let Some(table) = file.profile.get(name) else {
            let known: Vec<&str> = file.profile.keys().map(String::as_str).collect();
            let have = if known.is_empty() { "this suite has none".to_string() } else { format!("this suite has: {}", known.join(", ")) };
            return Err(SuiteError::Invalid { file: self.path.into(), line: None, key: "--profile".into(), message: format!("no profile `{name}`; {have}") });
        };
        let (mut overrides, mut axes, mut skip) = (Vec::new(), BTreeMap::new(), std::collections::BTreeSet::new());
        for (key, value) in table {
            match key.as_str() {
                "description" => {}
                "skip" => {
                    let names: Vec<String> = value
                        .clone()
                        .try_into()
                        .map_err(|_| self.invalid(&format!("profile.{name}.skip"), "expected a list of experiment names"))?;
                    for n in names {
                        if !file.experiments.iter().any(|e| e.name == n) {
                            return Err(self.invalid(&format!("profile.{name}.skip"), format!("no experiment `{n}` to leave out")));
                        }
                        skip.insert(n);
                    }
                }
                "sweep" => {
                    let Value::Table(t) = value else {
                        return Err(self.invalid(&format!("profile.{name}.sweep"), "expected a table of axis = [values]"));
                    };
                    for (axis, values) in t {
                        let Value::Array(values) = values else {
                            return Err(self.invalid(axis, format!("profile `{name}`: a sweep axis takes a list of values")));
                        };
                        if !file.experiments.iter().any(|e| e.sweep.contains_key(axis)) {
                            return Err(self.invalid(axis, format!("profile `{name}` replaces axis `{axis}`, but no experiment sweeps it")));
                        }
                        axes.insert(axis.clone(), values.clone());
                    }
                }
                k if default_keys().contains(&k) => overrides.push((k.to_string(), value.clone())),
                other => {
                    return Err(self.invalid(
                        &format!("profile.{name}.{other}"),
                        format!("unknown key in a profile; allowed: description, sweep, skip, {}", default_keys().join(", ")),
                    ))
                }
            }
        }
        Ok((overrides, axes, skip))
    }
}
