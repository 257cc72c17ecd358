//! Validation and normalisation of resolved run configs and of the suite's header and tables:
//! each error names the key, its line and the fix.
use super::*;

impl Ctx<'_> {
    /// `cpu_kernels` pins the process's math libraries, so every run of one invocation takes
    /// the same path.
    pub(super) fn check_one_kernel_path(&self, runs: &[Run]) -> Result<(), SuiteError> {
        let mut paths = runs.iter().map(|r| (r.config.cpu_kernels, &r.experiment));
        let Some((first, first_exp)) = paths.next() else { return Ok(()) };
        match paths.find(|(k, _)| *k != first) {
            None => Ok(()),
            Some((other, exp)) => Err(self.invalid(
                "cpu_kernels",
                format!(
                    "experiment `{first_exp}` runs on cpu_kernels = {:?} and `{exp}` on {:?}; the kernel path is \
                     process-wide, so set it once in [defaults] (or a profile) for the whole suite",
                    format!("{first:?}").to_lowercase(),
                    format!("{other:?}").to_lowercase()
                ),
            )),
        }
    }

    pub(super) fn check_header(&self, file: &SuiteFile) -> Result<(), SuiteError> {
        if file.schema != 1 {
            return Err(self.invalid("schema", format!("unsupported schema {}; this harness reads schema = 1", file.schema)));
        }
        if file.name.is_empty() || !file.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(self.invalid("name", "use letters, digits, '_' and '-' (it names the results folder)"));
        }
        if let Some(bad) = file.reproduces.iter().find(|id| !paper_item(id)) {
            return Err(self.invalid(
                "reproduces",
                format!("{bad:?} is not a PAPER.md item: name a table T1-T14, a figure F1-F24 (H.1-H.24) or a section such as \"D\" or \"A.2\""),
            ));
        }
        for key in file.defaults.keys() {
            if !default_keys().contains(&key.as_str()) {
                return Err(self.invalid(key, format!("unknown key in [defaults]; allowed: {}", default_keys().join(", "))));
            }
        }
        if file.experiments.is_empty() {
            return Err(self.invalid("experiment", "a suite needs at least one [[experiment]]"));
        }
        let mut seen = std::collections::BTreeSet::new();
        for e in &file.experiments {
            // Names go into the plan's and the report's tables, folder-free file names and `--only`.
            if e.name.is_empty() || !e.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.') {
                return Err(self.invalid("name", format!("experiment name {:?}: use letters, digits, '_', '-' and '.' (it names rows of the plan and the report)", e.name)));
            }
            if e.name == "failed" {
                return Err(self.invalid("name", "experiment name `failed` is taken: `--only failed` selects the runs that failed; rename the experiment"));
            }
            if !seen.insert(&e.name) {
                return Err(self.invalid("name", format!("experiment name `{}` is used twice", e.name)));
            }
        }
        Ok(())
    }

    /// Each table is well formed, and each of its entries is filled by one sweep point at most.
    pub(super) fn check_tables(&self, file: &SuiteFile, runs: &[Run]) -> Result<(), SuiteError> {
        file.tolerance.check().map_err(|(k, m)| self.invalid(&k, m))?;
        let mut ids = std::collections::BTreeSet::new();
        for t in &file.tables {
            t.check().map_err(|(k, m)| self.invalid(&k, m))?;
            if !ids.insert(&t.id) {
                return Err(self.invalid("table.id", format!("table {} is defined twice", t.id)));
            }
            for e in &t.entries {
                let cell = t.cell(e);
                let mut fillers: Vec<(&str, String)> =
                    runs.iter().filter(|r| r.cells.contains(&cell)).map(|r| (r.experiment.as_str(), setting_key(r))).collect();
                fillers.sort();
                fillers.dedup();
                if fillers.len() > 1 {
                    let who: Vec<String> = fillers.iter().map(|(e, s)| format!("{e} [{s}]")).collect();
                    return Err(self.invalid(&format!("cells.{}", t.id), format!("{cell} is filled by more than one sweep point: {}", who.join("; "))));
                }
            }
        }
        for c in &file.claims {
            c.check(&file.tables).map_err(|m| self.invalid("claim", m))?;
        }
        Ok(())
    }

    /// Normalises and checks one resolved run config: the sections its kind does not read are
    /// dropped, the model and data are checked, then its kind checks its own (`KindRules::validate`).
    pub(super) fn validate(&self, c: &mut RunConfig, exp: &str, cuda_available: bool) -> Result<(), SuiteError> {
        let bad = |e: Invalid| self.invalid(&e.key, format!("{} (experiment `{exp}`)", e.message));
        let rules = (self.kinds)(c.kind);
        c.drop_unread(rules.sections());
        if let Some(model) = &c.model {
            model.validate().map_err(|e| match e {
                mm_models::ModelError::InvalidConfig { field, reason } => bad(Invalid::new(format!("model.{field}"), reason)),
                other => bad(Invalid::new("model", other.to_string())),
            })?;
        }
        if let Some(d) = c.data.as_mut() {
            d.normalize().map_err(bad)?;
        }
        rules.validate(c).map_err(bad)?;
        c.device = match c.device {
            DeviceChoice::Auto if cuda_available => DeviceChoice::Cuda,
            DeviceChoice::Auto => DeviceChoice::Cpu,
            other => other,
        };
        Ok(())
    }
}

/// A table (T1-T14), figure (F1-F24, PAPER.md's H.1-H.24) or section ("D", "A.2", "E3") of
/// PAPER.md, as `reproduces` names them.
fn paper_item(id: &str) -> bool {
    let number = |s: &str, max: u32| s.parse::<u32>().is_ok_and(|n| (1..=max).contains(&n)) && !s.starts_with('0');
    if let Some(n) = id.strip_prefix('T') {
        return number(n, 14);
    }
    if let Some(n) = id.strip_prefix('F') {
        return number(n, 24);
    }
    let mut chars = id.chars();
    match chars.next() {
        Some('A'..='I') => {
            let rest = chars.as_str();
            rest.is_empty() || number(rest.strip_prefix('.').unwrap_or(rest), 9)
        }
        _ => false,
    }
}
