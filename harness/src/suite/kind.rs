//! What the suite loader asks of an experiment kind, as a trait. Each kind implements it in
//! `experiments/<kind>.rs` together with how it runs (`experiments::Experiment`); the loader is
//! handed the registry (`Kinds`) rather than naming `experiments`, which sits above it.
use super::config::{ExperimentKind, Invalid, PairsSource, RunConfig};

/// The suite-facing half of an experiment kind: which sections of a run config it reads, which
/// kinds of runs it consumes, and how it fills and checks its settings.
pub trait KindRules: Sync {
    fn kind(&self) -> ExperimentKind;

    /// The sections of a run config this kind reads; defaults contribute only these, so the run
    /// id of a kind does not move with settings it never uses.
    fn sections(&self) -> &'static [&'static str];

    /// The kinds whose runs this kind may consume (`from = "<experiment>"`).
    fn producers(&self) -> &'static [ExperimentKind] {
        &[]
    }

    /// Fills this kind's sections with their defaults and checks them against the rest of the
    /// config. Runs after the sections the kind does not read are dropped and the model and data
    /// settings are checked.
    fn validate(&self, c: &mut RunConfig) -> Result<(), Invalid>;

    /// Rewrites a validated config of this kind for the built-in `shapes` profile
    /// ([`super::shapes`]): the paper's shapes kept, the iterations cut to the fewest that run
    /// every path (device, data and pairs are rewritten before this).
    fn at_shapes(&self, _c: &mut RunConfig) {}
}

/// The registry: the rules of each kind (`experiments::rules`).
pub type Kinds = fn(ExperimentKind) -> &'static dyn KindRules;

/// The section in `slot`, filled with its defaults when the suite leaves it out.
pub fn section_or_default<'a, T: serde::de::DeserializeOwned>(slot: &'a mut Option<T>, key: &str) -> Result<&'a mut T, Invalid> {
    if slot.is_none() {
        *slot = Some(toml::Table::new().try_into().map_err(|e: toml::de::Error| Invalid::new(key, e.to_string()))?);
    }
    Ok(slot.as_mut().expect("just set"))
}

/// A kind that builds a model from tokenized text needs both sections.
pub fn need_model_data(c: &RunConfig) -> Result<(), Invalid> {
    if c.model.is_none() {
        return Err(Invalid::new("model", "this experiment builds a model: add a [model] table (or [defaults.model])"));
    }
    if c.data.is_none() {
        return Err(Invalid::new("data", "this experiment tokenizes text: add a [data] table (or [defaults.data])"));
    }
    Ok(())
}

/// A kind that reads another run's embeddings needs `from`.
pub fn need_upstream(c: &RunConfig) -> Result<(), Invalid> {
    if c.upstream.is_none() {
        return Err(Invalid::new("from", format!("a `{}` experiment reads embeddings: set from = \"<embed experiment>\"", c.kind.name())));
    }
    Ok(())
}

/// The query/passage pairs of the retrieval kinds.
pub fn check_pairs(c: &RunConfig) -> Result<(), Invalid> {
    let Some(p) = &c.pairs else {
        return Err(Invalid::new("pairs", "needs query/passage pairs: add [pairs] with source = \"embedded\", \"derived\" or \"file\""));
    };
    match (p.source, &p.path) {
        (PairsSource::File | PairsSource::Derived, None) => {
            let name = serde_json::to_value(p.source).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
            return Err(Invalid::new("pairs.path", format!("source = \"{name}\" needs path = \"<file>\"")));
        }
        (PairsSource::Embedded, Some(_)) => return Err(Invalid::new("pairs.path", "source = \"embedded\" reads no file")),
        _ => {}
    }
    if !(0.0..1.0).contains(&p.test_fraction) {
        return Err(Invalid::new("pairs.test_fraction", format!("must be in [0, 1), got {}", p.test_fraction)));
    }
    Ok(())
}
