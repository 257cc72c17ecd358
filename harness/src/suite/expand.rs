//! Expansion: an experiment's defaults, profile and `--set` layered, its sweep axes crossed with
//! its producers' runs and seeds, into resolved run configs with content-addressed ids.
use super::*;

/// One experiment's expansion: its layers of settings and what it may set.
struct Expansion<'a> {
    file: &'a SuiteFile,
    exp: &'a ExperimentDef,
    profiled: &'a Profiled<'a>,
    /// The sections its kind reads.
    sections: &'static [&'static str],
    /// A consumer's sections its producer decides (model, data): it may not set them.
    inherited: &'static [&'static str],
    /// Settings in force, least specific first: the suite profile's, this experiment's profile
    /// section (its `sweep` aside), then `--set`; the first `from_profiles` are the profiles'.
    layers: Vec<(String, Value)>,
    from_profiles: usize,
    /// The axes this experiment's own profile section replaced.
    own_axes: Option<&'a Table>,
    cuda_available: bool,
}

impl Expansion<'_> {
    /// An axis this experiment's own profile section replaced (written for that scale).
    fn own_axis(&self, key: &str) -> bool {
        self.own_axes.is_some_and(|a| a.contains_key(key))
    }

    /// Whether a layer's key applies to a run: a section the kind reads and does not inherit, or
    /// the seed of a run that consumes nothing.
    fn settable(&self, key: &str, consumer: bool) -> bool {
        let head = key.split('.').next().unwrap_or_default();
        (self.sections.contains(&head) && !self.inherited.contains(&head)) || (head == "seed" && !consumer)
    }
}

impl Ctx<'_> {
    pub(super) fn expand(
        &self,
        file: &SuiteFile,
        exp: &ExperimentDef,
        producers: &[Producer],
        profiled: &Profiled,
        overrides: &[(String, Value)],
        cuda_available: bool,
    ) -> Result<Vec<Run>, SuiteError> {
        let own_profile = profiled.name.and_then(|n| exp.profile.get(n));
        let mut layers: Vec<(String, Value)> = profiled.overrides.to_vec();
        if let Some(t) = own_profile {
            layers.extend(t.iter().filter(|(k, _)| k.as_str() != "sweep").map(|(k, v)| (k.clone(), v.clone())));
        }
        let from_profiles = layers.len();
        layers.extend(overrides.iter().cloned());
        // A consumer's model, data and seed are its producer's: it may not set them.
        let consumer = !producers.is_empty();
        let x = Expansion {
            file,
            exp,
            profiled,
            sections: (self.kinds)(exp.kind).sections(),
            inherited: if consumer { &["model", "data"] } else { &[] },
            layers,
            from_profiles,
            own_axes: own_profile.and_then(|t| t.get("sweep")).and_then(Value::as_table),
            cuda_available,
        };
        let base = self.base_table(&x, consumer)?;
        let seeds = self.seeds(&x)?;
        let mut axes = self.axes(&x)?;
        if !consumer {
            axes.push(("seed".into(), seeds.iter().map(|s| Value::Integer(*s as i64)).collect()));
        }
        // A consumer runs once per producer run; the producer's axes describe it in tables.
        let upstream: Vec<Option<(&Producer, &Run)>> = if consumer {
            producers.iter().flat_map(|p| p.runs.iter().map(move |r| Some((p, *r)))).collect()
        } else {
            vec![None]
        };

        let points = cartesian(&axes);
        // Sweep points without the seed axis (the last one): what table cells are filled by. A
        // consumer's points are its producers' points (seeds aside) times its own sweep.
        let per_point = if consumer { 1 } else { seeds.len() };
        let mut up_points: Vec<(String, usize)> = Vec::new();
        for (p, r) in upstream.iter().flatten() {
            let k = (p.name.to_string(), r.point);
            if !up_points.contains(&k) {
                up_points.push(k);
            }
        }
        let point_of = |up: Option<(&Producer, &Run)>, i: usize| -> usize {
            match up {
                None => i / per_point,
                Some((p, r)) => up_points.iter().position(|k| k.0 == p.name && k.1 == r.point).unwrap_or(0) * points.len() + i,
            }
        };
        let n_points = if consumer { up_points.len() * points.len() } else { points.len() / per_point };
        let cells_of = self.cells(&x, n_points)?;

        let mut runs = Vec::new();
        for up in upstream {
            for (i, point) in points.iter().enumerate() {
                let at = point_of(up, i);
                runs.push(self.run_at(&x, &base, point, up, (at, cells_of[at].clone()))?);
            }
        }
        Ok(runs)
    }

    /// The experiment's own tables over the suite's defaults, for the sections its kind reads;
    /// a consumer may not set what it inherits (model, data, seeds).
    fn base_table(&self, x: &Expansion, consumer: bool) -> Result<Table, SuiteError> {
        let (exp, sections, inherited) = (x.exp, x.sections, x.inherited);
        let mut base = Table::new();
        for s in sections.iter().filter(|s| !inherited.contains(s)) {
            if let Some(v) = x.file.defaults.get(*s) {
                base.insert(s.to_string(), v.clone());
            }
        }
        for (k, v) in exp.settings() {
            if let Some(v) = v {
                if !sections.contains(&k) {
                    return Err(self.invalid(k, format!("a `{}` experiment does not read [{k}]", exp.kind.name())));
                }
                if inherited.contains(&k) {
                    return Err(self.inherited(exp, k));
                }
                merge(&mut base, k, v);
            }
        }
        if consumer {
            if exp.seeds.is_some() {
                return Err(self.inherited(exp, "seeds"));
            }
            for key in exp.sweep.keys() {
                let head = key.split('.').next().unwrap_or_default();
                if inherited.contains(&head) {
                    return Err(self.inherited(exp, key));
                }
            }
        }
        Ok(base)
    }

    /// The experiment's seeds: `--set seeds=[...]`, its own, the suite's, else [0]; at shapes
    /// the first stands for the others.
    fn seeds(&self, x: &Expansion) -> Result<Vec<u64>, SuiteError> {
        let seeds_override = x.layers.iter().rev().find(|(k, _)| k == "seeds").map(|(_, v)| v.clone());
        let as_seeds = |v: Value, key: &str| {
            v.try_into::<Vec<u64>>()
                .map_err(|_| self.invalid(key, "expected a list of non-negative integers, e.g. seeds = [0, 1, 2]"))
        };
        let seeds = match (seeds_override, &x.exp.seeds, x.file.defaults.get("seeds")) {
            (Some(v), _, _) => as_seeds(v, "seeds")
                .map_err(|_| SuiteError::Override { arg: "seeds".into(), message: "expected a list of seeds, e.g. --set seeds=[0]".into() })?,
            (None, Some(s), _) => s.clone(),
            (None, None, Some(v)) => as_seeds(v.clone(), "seeds")?,
            (None, None, None) => vec![0],
        };
        if seeds.is_empty() {
            return Err(self.invalid("seeds", "needs at least one seed, e.g. seeds = [0]"));
        }
        if let Some(s) = seeds.iter().enumerate().find_map(|(i, s)| seeds[..i].contains(s).then_some(s)) {
            return Err(self.invalid("seeds", format!("seed {s} is listed twice; each seed is one run")));
        }
        // At shapes a run shows only that its shape runs and what it costs, which no seed changes:
        // the first seed stands for the others (unless `--set seeds` names them).
        Ok(if x.profiled.at_shapes && !x.layers.iter().any(|(k, _)| k == "seeds") { seeds[..1].to_vec() } else { seeds })
    }

    /// The sweep axes with the values in force (the experiment's own profile section's, else the
    /// suite profile's, else the suite's), each checked against the sections the kind reads.
    fn axes(&self, x: &Expansion) -> Result<Vec<(String, Vec<Value>)>, SuiteError> {
        let sections = x.sections;
        let mut axes: Vec<(String, Vec<Value>)> = Vec::new();
        for (key, values) in &x.exp.sweep {
            let head = key.split('.').next().unwrap_or_default();
            if !sections.contains(&head) && key != POINT {
                return Err(self.invalid(
                    key,
                    format!("sweep axis must start with one of: {} (or be `{POINT}`, tables of settings varied together)", sections.join(", ")),
                ));
            }
            let replaced = x.own_axes.and_then(|t| t.get(key)).and_then(Value::as_array);
            let values = replaced.or(x.profiled.axes.get(key)).unwrap_or(values);
            if key == POINT {
                for v in values {
                    let Some(t) = v.as_table() else {
                        return Err(self.invalid(key, "each value of `point` is a table of settings, e.g. { model = {...}, train = { stop_at = 1000 } }"));
                    };
                    for k in t.keys() {
                        let head = k.split('.').next().unwrap_or_default();
                        if !sections.contains(&head) {
                            return Err(self.invalid(k, format!("`point` sets `{k}`; it may set: {}", sections.join(", "))));
                        }
                    }
                }
            }
            if values.is_empty() {
                return Err(self.invalid(key, "sweep axis has no values"));
            }
            axes.push((key.clone(), values.clone()));
        }
        Ok(axes)
    }

    /// The paper-table cells each sweep point fills (`cells`: one entry per point, "-" for none).
    fn cells(&self, x: &Expansion, n_points: usize) -> Result<Vec<Vec<String>>, SuiteError> {
        let exp = x.exp;
        let mut cells_of: Vec<Vec<String>> = vec![Vec::new(); n_points];
        for (table, entries) in &exp.cells {
            let key = format!("cells.{table}");
            let Some(t) = x.file.tables.iter().find(|t| &t.id == table) else {
                return Err(self.invalid(&key, format!("no [[table]] with id = \"{table}\" in this suite (experiment `{}`)", exp.name)));
            };
            if entries.len() != n_points {
                let at = x.profiled.name.map(|p| format!(" at profile `{p}`")).unwrap_or_default();
                return Err(self.invalid(
                    &key,
                    format!(
                        "experiment `{}` has {n_points} sweep point(s){at} but names {} entries of {table}; give one per point in plan order (\"-\" for none)",
                        exp.name,
                        entries.len()
                    ),
                ));
            }
            for (i, e) in entries.iter().enumerate().filter(|(_, e)| e.as_str() != "-") {
                if !t.entries.contains(e) {
                    return Err(self.invalid(&key, format!("`{e}` is not an entry of {table} ({})", t.entries.join(", "))));
                }
                cells_of[i].push(t.cell(e));
            }
        }
        Ok(cells_of)
    }

    /// One run: the base table with the sweep point and the layers over it, resolved, its
    /// producer's model, data and seed taken, validated (and rewritten at shapes), labelled.
    fn run_at(&self, x: &Expansion, base: &Table, point: &[(String, Value)], up: Option<(&Producer, &Run)>, (at, cells): (usize, Vec<String>)) -> Result<Run, SuiteError> {
        let (exp, profiled) = (x.exp, x.profiled);
        let consumer = up.is_some();
        let (profiles, set) = x.layers.split_at(x.from_profiles);
        let settable = |k: &str| x.settable(k, consumer);
        let mut t = base.clone();
        t.insert("kind".into(), Value::String(exp.kind.name()));
        // Most specific wins: the sweep point, the profiles' settings, then the point's axes that
        // this experiment's own profile section replaced (written for that scale), then `--set`.
        let point_values = |own: bool| point.iter().filter(move |(k, _)| x.own_axis(k) == own).flat_map(|(k, v)| flatten_point(k, v));
        for (k, v) in point_values(false) {
            set_dotted(&mut t, &k, v);
        }
        for (k, v) in profiles.iter().filter(|(k, _)| settable(k)) {
            set_dotted(&mut t, k, v.clone());
        }
        for (k, v) in point_values(true) {
            set_dotted(&mut t, &k, v);
        }
        for (k, v) in set.iter().filter(|(k, _)| settable(k)) {
            set_dotted(&mut t, k, v.clone());
        }
        self.check_point_kept(&t, point, (&x.layers, x.from_profiles, profiled.name), &settable, &exp.name)?;
        let mut config: RunConfig = serde_path_to_error::deserialize(Value::Table(t)).map_err(|e| {
            let key = e.path().to_string();
            let msg = e.inner().message().trim().to_string();
            let hint = match profiled.name {
                Some(p) if msg.starts_with("missing field") => format!(
                    "; at profile `{p}`, a table of another `source` or `kind` replaces the suite's whole table: give the missing key there"
                ),
                _ => String::new(),
            };
            self.invalid(&key, format!("{msg} (experiment `{}`){hint}", exp.name))
        })?;
        config.profile = profiled.name.map(String::from);
        let mut axes_desc: Vec<(String, String)> = Vec::new();
        let mut lineage = Vec::new();
        if let Some((p, up)) = up {
            config.model = up.config.model.clone();
            config.data = up.config.data.clone();
            config.seed = up.config.seed;
            config.upstream = Some(Upstream { experiment: p.name.to_string(), kind: p.kind, run: up.id.clone() });
            axes_desc.extend(up.axes.iter().cloned());
            lineage = up.lineage.clone();
            lineage.push(p.name.to_string());
        }
        self.validate(&mut config, &exp.name, x.cuda_available)?;
        if profiled.at_shapes {
            shapes::apply(&mut config, (self.kinds)(exp.kind), profiled.pairs_per_split);
            self.validate(&mut config, &exp.name, x.cuda_available)?;
        }
        // Each axis as the run has it: a profile's setting or `--set` that overrode the point's
        // value (a smoke profile's `train.steps`) is what the label shows.
        for (axis, value) in point {
            let layers = if x.own_axis(axis) { set } else { &x.layers[..] };
            for (k, v) in flatten_point(axis, value) {
                let v = layers.iter().filter(|(o, _)| settable(o)).filter_map(|o| override_at(&k, o)).next_back().unwrap_or(v);
                axes_desc.push((k, describe(&v)));
            }
        }
        let label = run_label(&config, up.map(|(_, r)| r));
        let paper = paper_for(&exp.paper, &label, &config, &lineage);
        Ok(Run {
            id: run_id(&config),
            suite: x.file.name.clone(),
            experiment: exp.name.clone(),
            paper,
            label,
            lineage,
            config,
            axes: axes_desc,
            cells,
            point: at,
        })
    }
}

impl Ctx<'_> {
    /// Every setting of a sweep point is in the resolved table. A later layer (a profile's or
    /// `--set`'s table of another `source` or `kind`) replaces the whole table and drops what
    /// the point set there: the run would take the default while its label shows the point's
    /// value, so that is an error naming the layer and the key.
    fn check_point_kept(
        &self,
        resolved: &Table,
        point: &[(String, Value)],
        (layers, from_profiles, profile): (&[(String, Value)], usize, Option<&str>),
        settable: &dyn Fn(&str) -> bool,
        experiment: &str,
    ) -> Result<(), SuiteError> {
        for (key, value) in point.iter().flat_map(|(k, v)| flatten_point(k, v)) {
            if get_dotted(resolved, &key).is_some() {
                continue;
            }
            // The last layer that replaced a table above the key without setting the key.
            let replaces = |v: &Value| v.as_table().is_none_or(|t| t.contains_key("source") || t.contains_key("kind"));
            let by = layers
                .iter()
                .enumerate()
                .rev()
                .filter(|(_, (o, v))| settable(o) && replaces(v))
                .find(|(_, o)| key.starts_with(&format!("{}.", o.0)) && override_at(&key, o).is_none());
            let leaf = key.rsplit('.').next().unwrap_or(&key);
            let fix = match (by, profile) {
                (Some((i, _)), Some(p)) if i < from_profiles => format!(
                    "repeat the points under [experiment.profile.{p}.sweep], which apply after the profile's tables (or give `{leaf}` \
                     in this table, if every run should have one value)"
                ),
                _ => format!("give `{leaf}` in this table too"),
            };
            let (at, what) = match by {
                Some((_, (o, _))) => (o.as_str(), format!("this `{o}` table")),
                None => (key.as_str(), "a later setting".to_string()),
            };
            return Err(self.invalid(
                at,
                format!(
                    "{what} has another `source` or `kind` than the suite's, so it replaces the whole table and drops `{key} = {value}`, \
                     which a sweep point of experiment `{experiment}` sets: the run would take the default while its label shows \
                     `{value}`. To keep it, {fix}"
                ),
            ));
        }
        Ok(())
    }
}

/// The value at a dotted key of a table, if every table on the way has it.
fn get_dotted<'a>(t: &'a Table, key: &str) -> Option<&'a Value> {
    let (head, rest) = match key.split_once('.') {
        None => return t.get(key),
        Some(split) => split,
    };
    get_dotted(t.get(head)?.as_table()?, rest)
}

/// The paper value for a run, most specific key first: "<label> @ <experiment>" and
/// "<kind> @ <experiment>" for each experiment the run's inputs came through (nearest first),
/// then the label, the model kind, and the experiment names alone. Rows of a paper table that
/// share a model but differ by pipeline (T13's pretraining data, T12's 200k vs 400k pairs) are
/// told apart by the experiment.
pub(super) fn paper_for(paper: &BTreeMap<String, PaperValue>, label: &str, c: &RunConfig, lineage: &[String]) -> Option<PaperValue> {
    let kind = c.model.as_ref().map(|m| m.kind().to_string());
    let mut keys: Vec<String> = Vec::new();
    for e in lineage.iter().rev() {
        keys.push(format!("{label} @ {e}"));
        if let Some(k) = &kind {
            keys.push(format!("{k} @ {e}"));
        }
    }
    keys.push(label.to_string());
    keys.extend(kind);
    keys.extend(lineage.iter().rev().cloned());
    keys.into_iter().find_map(|k| paper.get(&k).cloned())
}

/// The sweep axis whose values are tables of settings varied together (a model and its budget).
pub(super) const POINT: &str = "point";

/// A sweep value as (dotted key, value) pairs: a `point` table gives one pair per setting
/// (`train.stop_at`), a model whole (its label names it in tables).
pub(super) fn flatten_point(key: &str, value: &Value) -> Vec<(String, Value)> {
    fn walk(prefix: &str, v: &Value, out: &mut Vec<(String, Value)>) {
        match v {
            Value::Table(t) if prefix != "model" => t.iter().for_each(|(k, v)| walk(&format!("{prefix}.{k}"), v, out)),
            _ => out.push((prefix.to_string(), v.clone())),
        }
    }
    match (key, value) {
        (POINT, Value::Table(t)) => {
            let mut out = Vec::new();
            t.iter().for_each(|(k, v)| walk(k, v, &mut out));
            out
        }
        _ => vec![(key.to_string(), value.clone())],
    }
}

/// The value an override `(key, value)` gives the dotted key `at`, when it sets it: both
/// `("train.steps", 300)` and `("train", { steps = 300 })` set `train.steps`.
pub(super) fn override_at(at: &str, (key, value): &(String, Value)) -> Option<Value> {
    let rest = match at.strip_prefix(key.as_str()) {
        Some("") => return Some(value.clone()),
        Some(rest) => rest.strip_prefix('.')?,
        None => return None,
    };
    let mut v = value;
    for part in rest.split('.') {
        v = v.as_table()?.get(part)?;
    }
    Some(v.clone())
}

/// A run's sweep point: its axes without the seed.
pub(super) fn setting_key(r: &Run) -> String {
    r.axes.iter().filter(|(k, _)| k != "seed").map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
}

pub(super) fn run_label(c: &RunConfig, up: Option<&Run>) -> String {
    match (&c.model, c.embed.as_ref().and_then(|e| e.label.clone()), up) {
        (Some(m), _, _) => m.label(),
        (None, Some(l), _) => l,
        (None, None, Some(u)) => u.label.clone(),
        (None, None, None) => "embeddings (file)".into(),
    }
}

/// sha256 of the canonical JSON of a resolved config (serde_json sorts object keys).
pub fn run_id(config: &RunConfig) -> String {
    let canonical = serde_json::to_value(config).expect("config serializes").to_string();
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

pub(super) fn describe(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Table(t) => t.iter().map(|(k, v)| format!("{k}={}", describe(v))).collect::<Vec<_>>().join(" "),
        other => other.to_string(),
    }
}

/// Deep merge: tables merge key by key, anything else replaces. A table with a different `kind`
/// (another model family) or `source` (another data or pairs source) replaces the whole table:
/// its fields would not fit the old one.
pub(super) fn merge(t: &mut Table, key: &str, value: Value) {
    let same = |dst: &Table, src: &Table, field: &str| src.get(field).is_none_or(|k| dst.get(field).is_none_or(|d| d == k));
    match (t.get_mut(key), value) {
        (Some(Value::Table(dst)), Value::Table(src)) if same(dst, &src, "kind") && same(dst, &src, "source") => {
            for (k, v) in src {
                merge(dst, &k, v);
            }
        }
        (_, v) => {
            t.insert(key.to_string(), v);
        }
    }
}

/// Sets `a.b.c = value`, creating tables on the way; a table value merges into what is there.
pub(super) fn set_dotted(t: &mut Table, key: &str, value: Value) {
    match key.split_once('.') {
        None => merge(t, key, value),
        Some((head, rest)) => {
            let entry = t.entry(head.to_string()).or_insert_with(|| Value::Table(Table::new()));
            if !entry.is_table() {
                *entry = Value::Table(Table::new());
            }
            set_dotted(entry.as_table_mut().expect("table"), rest, value);
        }
    }
}

pub(super) fn cartesian(axes: &[(String, Vec<Value>)]) -> Vec<Vec<(String, Value)>> {
    axes.iter().fold(vec![vec![]], |acc, (k, values)| {
        acc.into_iter()
            .flat_map(|prefix| {
                values.iter().map(move |v| {
                    let mut p = prefix.clone();
                    p.push((k.clone(), v.clone()));
                    p
                })
            })
            .collect()
    })
}
