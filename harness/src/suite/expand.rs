//! Expansion: an experiment's defaults, profile and `--set` layered, its sweep axes crossed with
//! its producers' runs and seeds, into resolved run configs with content-addressed ids.
use super::*;

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
        let sections = (self.kinds)(exp.kind).sections();
        // Settings in force: the suite profile's, this experiment's profile section, `--set`.
        let own_profile = profiled.name.and_then(|n| exp.profile.get(n));
        let mut all: Vec<(String, Value)> = profiled.overrides.to_vec();
        if let Some(t) = own_profile {
            all.extend(t.iter().filter(|(k, _)| k.as_str() != "sweep").map(|(k, v)| (k.clone(), v.clone())));
        }
        let from_profiles = all.len();
        all.extend(overrides.iter().cloned());
        let overrides = &all;
        let own_axes: Option<&Table> = own_profile.and_then(|t| t.get("sweep")).and_then(Value::as_table);
        // A consumer's model, data and seed are its producer's: it may not set them.
        let consumer = !producers.is_empty();
        let inherited: &[&str] = if consumer { &["model", "data"] } else { &[] };
        let mut base = Table::new();
        for s in sections.iter().filter(|s| !inherited.contains(s)) {
            if let Some(v) = file.defaults.get(*s) {
                base.insert(s.to_string(), v.clone());
            }
        }
        let own = exp.settings();
        for (k, v) in own {
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
        // `--set seeds=[...]` replaces every experiment's seeds.
        let seeds_override = overrides.iter().rev().find(|(k, _)| k == "seeds").map(|(_, v)| v.clone());
        let as_seeds = |v: Value, key: &str| {
            v.try_into::<Vec<u64>>()
                .map_err(|_| self.invalid(key, "expected a list of non-negative integers, e.g. seeds = [0, 1, 2]"))
        };
        let seeds = match (seeds_override, &exp.seeds, file.defaults.get("seeds")) {
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
        let seeds = if profiled.at_shapes && !overrides.iter().any(|(k, _)| k == "seeds") { seeds[..1].to_vec() } else { seeds };
        let mut axes: Vec<(String, Vec<Value>)> = Vec::new();
        for (key, values) in &exp.sweep {
            let head = key.split('.').next().unwrap_or_default();
            if !sections.contains(&head) && key != POINT {
                return Err(self.invalid(
                    key,
                    format!("sweep axis must start with one of: {} (or be `{POINT}`, tables of settings varied together)", sections.join(", ")),
                ));
            }
            let replaced = own_axes.and_then(|t| t.get(key)).and_then(Value::as_array);
            let values = replaced.or(profiled.axes.get(key)).unwrap_or(values);
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
        let mut cells_of: Vec<Vec<String>> = vec![Vec::new(); n_points];
        for (table, entries) in &exp.cells {
            let key = format!("cells.{table}");
            let Some(t) = file.tables.iter().find(|t| &t.id == table) else {
                return Err(self.invalid(&key, format!("no [[table]] with id = \"{table}\" in this suite (experiment `{}`)", exp.name)));
            };
            if entries.len() != n_points {
                let at = profiled.name.map(|p| format!(" at profile `{p}`")).unwrap_or_default();
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

        let mut runs = Vec::new();
        for up in upstream {
            for (i, point) in points.iter().enumerate() {
                let mut t = base.clone();
                t.insert("kind".into(), Value::String(exp.kind.name()));
                // Most specific wins: the sweep point, the profiles' settings, then the point's
                // axes that this experiment's own profile section replaced (written for that
                // scale), then `--set`.
                let own_axis = |k: &str| own_axes.is_some_and(|a| a.contains_key(k));
                let point_values = |own: bool| point.iter().filter(move |(k, _)| own_axis(k) == own).flat_map(|(k, v)| flatten_point(k, v));
                for (k, v) in point_values(false) {
                    set_dotted(&mut t, &k, v);
                }
                let settable = |k: &str| {
                    let head = k.split('.').next().unwrap_or_default();
                    (sections.contains(&head) && !inherited.contains(&head)) || (head == "seed" && up.is_none())
                };
                for (k, v) in overrides[..from_profiles].iter().filter(|(k, _)| settable(k)) {
                    set_dotted(&mut t, k, v.clone());
                }
                for (k, v) in point_values(true) {
                    set_dotted(&mut t, &k, v);
                }
                for (k, v) in overrides[from_profiles..].iter().filter(|(k, _)| settable(k)) {
                    set_dotted(&mut t, k, v.clone());
                }
                self.check_point_kept(&t, point, (overrides, from_profiles, profiled.name), &settable, &exp.name)?;
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
                self.validate(&mut config, &exp.name, cuda_available)?;
                if profiled.at_shapes {
                    shapes::apply(&mut config, (self.kinds)(exp.kind), profiled.pairs_per_split);
                    self.validate(&mut config, &exp.name, cuda_available)?;
                }
                // Each axis as the run has it: a profile's setting or `--set` that overrode the
                // point's value (a smoke profile's `train.steps`) is what the label shows.
                for (axis, value) in point {
                    let layers = if own_axis(axis) { &overrides[from_profiles..] } else { &overrides[..] };
                    for (k, v) in flatten_point(axis, value) {
                        let v = layers.iter().filter(|(o, _)| settable(o)).filter_map(|o| override_at(&k, o)).next_back().unwrap_or(v);
                        axes_desc.push((k, describe(&v)));
                    }
                }
                let label = run_label(&config, up.map(|(_, r)| r));
                let paper = paper_for(&exp.paper, &label, &config, &lineage);
                runs.push(Run {
                    id: run_id(&config),
                    suite: file.name.clone(),
                    experiment: exp.name.clone(),
                    paper,
                    label,
                    lineage,
                    config,
                    axes: axes_desc,
                    cells: cells_of[point_of(up, i)].clone(),
                    point: point_of(up, i),
                });
            }
        }
        Ok(runs)
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
