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
        for key in file.defaults.keys() {
            if !DEFAULT_KEYS.contains(&key.as_str()) {
                return Err(self.invalid(key, format!("unknown key in [defaults]; allowed: {}", DEFAULT_KEYS.join(", "))));
            }
        }
        if file.experiments.is_empty() {
            return Err(self.invalid("experiment", "a suite needs at least one [[experiment]]"));
        }
        let mut seen = std::collections::BTreeSet::new();
        for e in &file.experiments {
            if !seen.insert(&e.name) {
                return Err(self.invalid("name", format!("experiment name `{}` is used twice", e.name)));
            }
        }
        Ok(())
    }

    /// Each table is well formed, and each of its entries is filled by one sweep point at most.
    pub(super) fn check_tables(&self, file: &SuiteFile, runs: &[Run]) -> Result<(), SuiteError> {
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

    pub(super) fn validate(&self, c: &mut RunConfig, exp: &str, cuda_available: bool) -> Result<(), SuiteError> {
        let bad = |key: &str, msg: String| self.invalid(key, format!("{msg} (experiment `{exp}`)"));
        self.validate_sections(c, &bad)?;
        if let Some(model) = &c.model {
            model.validate().map_err(|e| match e {
                mm_models::ModelError::InvalidConfig { field, reason } => bad(&format!("model.{field}"), reason),
                other => bad("model", other.to_string()),
            })?;
        }
        if let Some(d) = c.data.as_mut() {
            if d.source == DataSource::Hf {
                if let Some(name) = d.preset.clone() {
                    let p = preset(&name).ok_or_else(|| {
                        bad("data.preset", format!("unknown preset `{name}`; known: {}", PRESETS.join(", ")))
                    })?;
                    d.repo.get_or_insert_with(|| p.repo.to_string());
                    if d.files.is_empty() {
                        d.files = p.files.iter().map(|f| f.to_string()).collect();
                    }
                    if d.eval_files.is_empty() && d.eval_rows.is_none() {
                        d.eval_files = p.eval_files.iter().map(|f| f.to_string()).collect();
                        d.eval_rows = p.eval_rows;
                    }
                }
                if d.repo.is_none() || d.files.is_empty() {
                    return Err(bad("data.repo", "source = \"hf\" needs repo = \"owner/name\" and files = [...], or a preset".into()));
                }
            } else if d.preset.is_some() || d.repo.is_some() || !d.files.is_empty() {
                return Err(bad("data.repo", "preset / repo / files belong to source = \"hf\"".into()));
            }
            if d.n_ctx < 2 {
                return Err(bad("data.n_ctx", format!("must be at least 2 (a model sees n_ctx tokens), got {}", d.n_ctx)));
            }
            let min_vocab = if d.tokenizer_path.is_some() { 16 } else { MIN_BPE_VOCAB };
            if !(min_vocab..=65536).contains(&d.vocab_size) {
                let why = if d.tokenizer_path.is_some() { "" } else { " (a trained byte-level BPE holds 256 bytes + 3 specials)" };
                return Err(bad("data.vocab_size", format!("must be in {min_vocab}..=65536{why}, got {}", d.vocab_size)));
            }
            if !(0.0..1.0).contains(&d.eval_fraction) {
                return Err(bad("data.eval_fraction", format!("must be in [0, 1), got {}", d.eval_fraction)));
            }
            match d.source {
                DataSource::Text | DataSource::Jsonl | DataSource::Parquet if d.path.is_none() => {
                    return Err(bad("data.path", format!("source = \"{:?}\" needs path = \"<file>\"", d.source).to_lowercase()))
                }
                DataSource::Embedded if d.path.is_some() || d.eval_path.is_some() => {
                    return Err(bad("data.path", "source = \"embedded\" reads no files; remove path/eval_path or use source = \"text\"".into()))
                }
                DataSource::Hf if d.path.is_some() || d.eval_path.is_some() => {
                    return Err(bad("data.path", "source = \"hf\" downloads its files; use files / eval_files, not path".into()))
                }
                DataSource::Embedded | DataSource::Text if d.text_column.is_some() => {
                    return Err(bad("data.text_column", "only jsonl and parquet sources have columns".into()))
                }
                _ => {}
            }
            if d.eval_rows.is_some() && (d.eval_path.is_some() || !d.eval_files.is_empty()) {
                return Err(bad("data.eval_rows", "give either an evaluation file or eval_rows, not both".into()));
            }
            if d.marker.is_empty() {
                return Err(bad("data.marker", "must not be empty".into()));
            }
        }
        let needs_train = c.kind == ExperimentKind::Clm;
        match (&c.train, needs_train) {
            (None, true) => return Err(bad("train", "this experiment trains a model: add a [train] section with batch_size and steps or tokens".into())),
            (Some(_), false) => c.train = None, // an untrained model does not depend on training settings
            _ => {}
        }
        if let Some(t) = &c.train {
            if t.steps.is_none() && t.tokens.is_none() {
                return Err(bad("train.steps", "give a budget: steps = N or tokens = N".into()));
            }
            if t.total_steps(c.data().n_ctx) == 0 {
                return Err(bad("train.steps", "the budget is 0 steps".into()));
            }
            if t.batch_size < 1 {
                return Err(bad("train.batch_size", format!("must be at least 1, got {}", t.batch_size)));
            }
            if t.accumulate < 1 {
                return Err(bad("train.accumulate", "must be at least 1 (1: no accumulation)".into()));
            }
            if t.max_minutes.is_some_and(|m| !(m > 0.0 && m.is_finite())) {
                return Err(bad("train.max_minutes", "must be a positive number of minutes".into()));
            }
            if !(t.lr > 0.0 && t.lr.is_finite()) {
                return Err(bad("train.lr", format!("must be a positive number, got {}", t.lr)));
            }
            if t.eval_every == 0 {
                return Err(bad("train.eval_every", "must be at least 1".into()));
            }
            if t.precision == Precision::Fp16Amp && c.device == DeviceChoice::Cpu {
                return Err(bad("train.precision", "\"fp16-amp\" uses CUDA autocast; use precision = \"fp32\" on CPU or device = \"cuda\"".into()));
            }
            if !(t.grad_clip >= 0.0 && t.grad_clip.is_finite()) {
                return Err(bad("train.grad_clip", format!("must be >= 0 (0 turns clipping off), got {}", t.grad_clip)));
            }
            for (key, v) in [("train.beta1", t.beta1), ("train.beta2", t.beta2)] {
                if !(0.0..1.0).contains(&v) {
                    return Err(bad(key, format!("must be in [0, 1) (AdamW's moment decay; the paper's are 0.9 and 0.999), got {v}")));
                }
            }
            if !(t.weight_decay >= 0.0 && t.weight_decay.is_finite()) {
                return Err(bad("train.weight_decay", format!("must be >= 0 (the paper's is 0), got {}", t.weight_decay)));
            }
            if !(t.eps >= 0.0 && t.eps.is_finite()) {
                return Err(bad("train.eps", format!("must be >= 0 (the paper's is 1e-8), got {}", t.eps)));
            }
            if t.checkpoint_every == Some(0) {
                return Err(bad("train.checkpoint_every", "must be at least 1 (steps between checkpoints); leave it out for none".into()));
            }
            if t.eval_batches == Some(0) {
                return Err(bad("train.eval_batches", "must be at least 1; leave it out to evaluate on the whole evaluation split".into()));
            }
            if t.stop_at == Some(0) {
                return Err(bad("train.stop_at", "must be at least 1 (the step to stop at); leave it out to train the whole schedule".into()));
            }
        }
        if c.kind == ExperimentKind::Representation {
            let r = c.representation.get_or_insert_with(|| toml::from_str("").expect("all fields default"));
            if r.steps == 0 {
                return Err(bad("representation.steps", "must be at least 1".into()));
            }
            if !(r.lr0 > 0.0 && r.lr0.is_finite()) {
                return Err(bad("representation.lr0", format!("must be a positive number, got {}", r.lr0)));
            }
            let vocab = c.data.as_ref().map_or(0, |d| d.vocab_size as i64);
            if r.top_k < 1 || r.top_k > vocab {
                return Err(bad("representation.top_k", format!("must be in 1..={vocab} (the vocabulary, data.vocab_size), got {}", r.top_k)));
            }
            let blocks = c.model.as_ref().map_or(0, |m| m.n_layers());
            if r.depth.is_some_and(|d| d == 0 || d > blocks) {
                let s = if blocks == 1 { "" } else { "s" };
                return Err(bad(
                    "representation.depth",
                    format!("must be in 1..={blocks}: the model has {blocks} block{s}; leave it out for all of them, got {}", r.depth.unwrap_or(0)),
                ));
            }
            let n_ctx = c.data.as_ref().map_or(0, |d| d.n_ctx);
            if r.skip < 0 || r.skip >= n_ctx {
                return Err(bad("representation.skip", format!("must be in 0..n_ctx ({n_ctx}), got {}", r.skip)));
            }
            if c.upstream.is_some() && r.source == ModelSource::Untrained {
                r.source = ModelSource::Trained; // `from` means: every checkpoint of that run
            }
            if (r.source == ModelSource::Trained) != c.upstream.is_some() {
                return Err(bad(
                    "representation.source",
                    "the checkpoints of a CLM run come through `from = \"<clm experiment>\"` (then source is \"trained\"); \
                     without `from`, use \"untrained\" or \"checkpoint\""
                        .into(),
                ));
            }
            if (r.source == ModelSource::Checkpoint) != r.checkpoint.is_some() {
                return Err(bad(
                    "representation.checkpoint",
                    "give checkpoint = \"<file>.safetensors\" exactly when source = \"checkpoint\"".into(),
                ));
            }
            if r.prompts.is_empty() && r.n_prompts == 0 {
                return Err(bad("representation.n_prompts", "needs prompts or n_prompts >= 1".into()));
            }
        } else {
            c.representation = None;
        }
        c.device = match c.device {
            DeviceChoice::Auto if cuda_available => DeviceChoice::Cuda,
            DeviceChoice::Auto => DeviceChoice::Cpu,
            other => other,
        };
        Ok(())
    }
}

impl Ctx<'_> {
    /// Which sections a kind needs, filled with their defaults, and the retrieval kinds' checks.
    pub(super) fn validate_sections(&self, c: &mut RunConfig, bad: &dyn Fn(&str, String) -> SuiteError) -> Result<(), SuiteError> {
        use ExperimentKind as K;
        let deflt = |_: ()| toml::from_str::<Table>("").expect("empty table");
        macro_rules! section {
            ($field:ident) => {
                if c.$field.is_none() {
                    c.$field = Some(Table::try_into(deflt(())).map_err(|e| bad(stringify!($field), e.to_string()))?);
                }
            };
        }
        // Sections a kind does not read are dropped, so they never move its run id.
        if !matches!(c.kind, K::Embed | K::RetrievalInfonce) {
            c.pairs = None;
        }
        if c.kind != K::Embed {
            c.embed = None;
        }
        if c.kind != K::RetrievalFrozen {
            c.retrieval_frozen = None;
        }
        if c.kind != K::RetrievalInfonce {
            c.retrieval_infonce = None;
        }
        if c.kind != K::RetrievalEval {
            c.retrieval_eval = None;
        }
        if c.kind != K::Throughput {
            c.throughput = None;
        }
        match c.kind {
            K::Embed => {
                section!(embed);
                let e = c.embed.as_mut().expect("set");
                match (e.source, c.upstream.is_some()) {
                    (WeightsSource::Producer, false) => {
                        return Err(bad(
                            "embed.source",
                            "embeds with the weights of `from = \"<clm or retrieval_infonce experiment>\"`; without `from`, \
                             set source = \"untrained\", \"checkpoint\" or \"file\""
                                .into(),
                        ))
                    }
                    (WeightsSource::Producer, true) => {}
                    (_, true) => return Err(bad("embed.source", "with `from`, the producer's weights are used; remove source or from".into())),
                    _ => {}
                }
                if (e.source == WeightsSource::Checkpoint) != e.checkpoint.is_some() {
                    return Err(bad("embed.checkpoint", "give checkpoint = \"<file>.safetensors\" exactly when source = \"checkpoint\"".into()));
                }
                if (e.source == WeightsSource::File) != e.file.is_some() {
                    return Err(bad("embed.file", "give file = \"<embeddings>.safetensors\" exactly when source = \"file\"".into()));
                }
                if e.label.is_some() && e.source != WeightsSource::File {
                    return Err(bad("embed.label", "names embeddings from a file; a model's runs are named by their model".into()));
                }
                if e.batch_size < 1 {
                    return Err(bad("embed.batch_size", format!("must be at least 1, got {}", e.batch_size)));
                }
                if e.source == WeightsSource::File {
                    // Embeddings computed elsewhere: no model, data or pairs take part.
                    c.model = None;
                    c.data = None;
                    c.pairs = None;
                    c.embed.as_mut().expect("set").padding = None;
                } else {
                    self.need_model_data(c, bad)?;
                    self.check_pairs(c, bad)?;
                }
            }
            K::RetrievalInfonce => {
                section!(retrieval_infonce);
                self.need_model_data(c, bad)?;
                self.check_pairs(c, bad)?;
                let r = c.retrieval_infonce.as_ref().expect("set");
                if r.group < 3 {
                    return Err(bad("retrieval_infonce.group", format!("needs a query and at least 2 passages, got {}", r.group)));
                }
                if !(r.tau > 0.0 && r.tau.is_finite()) || !(r.lr > 0.0 && r.lr.is_finite()) {
                    return Err(bad("retrieval_infonce", "tau and lr must be positive numbers".into()));
                }
                if r.epochs == 0 || r.groups_per_step < 1 || r.eval_every == 0 {
                    return Err(bad("retrieval_infonce", "epochs, groups_per_step and eval_every must be at least 1".into()));
                }
                if r.precision == Precision::Fp16Amp && c.device == DeviceChoice::Cpu {
                    return Err(bad("retrieval_infonce.precision", "\"fp16-amp\" needs device = \"cuda\"".into()));
                }
                if r.checkpoint.is_some() && c.upstream.is_some() {
                    return Err(bad("retrieval_infonce.checkpoint", "starts from the producer's weights with `from`; give one of the two".into()));
                }
            }
            K::RetrievalFrozen => {
                section!(retrieval_frozen);
                self.need_upstream(c, bad)?;
                let r = c.retrieval_frozen.as_ref().expect("set");
                if r.n < 3 {
                    return Err(bad("retrieval_frozen.n", format!("needs the query slot and at least 2 candidates, got n = {}", r.n)));
                }
                if r.depth == 0 || r.epochs == 0 || r.batch_size < 1 || !(r.lr > 0.0 && r.lr.is_finite()) {
                    return Err(bad("retrieval_frozen", "depth, epochs, batch_size and lr must be positive".into()));
                }
            }
            K::RetrievalEval => {
                section!(retrieval_eval);
                self.need_upstream(c, bad)?;
                let r = c.retrieval_eval.as_mut().expect("set");
                if r.n.is_empty() || r.n.iter().any(|n| *n < 2) {
                    return Err(bad("retrieval_eval.n", format!("needs values >= 2 (the query slot plus candidates), got {:?}", r.n)));
                }
                r.n.sort_unstable();
                r.n.dedup();
                if r.chunk < 1 {
                    return Err(bad("retrieval_eval.chunk", "must be at least 1".into()));
                }
            }
            K::Throughput => {
                section!(throughput);
                if c.model.is_none() {
                    return Err(bad("model", "a throughput run measures a model: add a [model] table (or [defaults.model])".into()));
                }
                let t = c.throughput.as_ref().expect("set");
                if t.batch_size < 1 || t.n_ctx < 2 || t.vocab_size < 2 {
                    return Err(bad("throughput", format!(
                        "batch_size must be at least 1, n_ctx and vocab_size at least 2 (got {}, {}, {})",
                        t.batch_size, t.n_ctx, t.vocab_size
                    )));
                }
                if t.steps < 1 || t.rounds < 1 {
                    return Err(bad("throughput", "steps and rounds must be at least 1".into()));
                }
                if t.precision == Precision::Fp16Amp && c.device == DeviceChoice::Cpu {
                    return Err(bad("throughput.precision", "\"fp16-amp\" needs device = \"cuda\"".into()));
                }
                if t.memory_limit_gib.is_some_and(|g| !(g > 0.0 && g.is_finite())) {
                    return Err(bad("throughput.memory_limit_gib", "must be a positive number of GiB".into()));
                }
                if t.attention == Attention::Eager && t.sides != Sides::Pytorch {
                    return Err(bad(
                        "throughput.attention",
                        "\"eager\" selects the PyTorch peer's attention; the harness's Llama uses SDPA only: set sides = \"pytorch\"".into(),
                    ));
                }
                if t.sides != Sides::Harness {
                    let peer_ok = match c.model.as_ref().expect("checked") {
                        mm_models::ModelSpec::MaskedMixer(s) => *s == mm_models::MixerSpec::flat(s.d_model, s.n_layers),
                        mm_models::ModelSpec::Llama(_) => true,
                        _ => false,
                    };
                    if !peer_ok {
                        return Err(bad(
                            "throughput.sides",
                            "the PyTorch peer has the flat masked mixer and Llama only (the reference's models): set sides = \"harness\" for this model".into(),
                        ));
                    }
                }
            }
            K::Clm | K::Representation => self.need_model_data(c, bad)?,
        }
        Ok(())
    }

    pub(super) fn need_model_data(&self, c: &RunConfig, bad: &dyn Fn(&str, String) -> SuiteError) -> Result<(), SuiteError> {
        if c.model.is_none() {
            return Err(bad("model", "this experiment builds a model: add a [model] table (or [defaults.model])".into()));
        }
        if c.data.is_none() {
            return Err(bad("data", "this experiment tokenizes text: add a [data] table (or [defaults.data])".into()));
        }
        Ok(())
    }

    pub(super) fn need_upstream(&self, c: &RunConfig, bad: &dyn Fn(&str, String) -> SuiteError) -> Result<(), SuiteError> {
        if c.upstream.is_none() {
            return Err(bad("from", format!("a `{}` experiment reads embeddings: set from = \"<embed experiment>\"", c.kind.name())));
        }
        Ok(())
    }

    pub(super) fn check_pairs(&self, c: &mut RunConfig, bad: &dyn Fn(&str, String) -> SuiteError) -> Result<(), SuiteError> {
        let Some(p) = &c.pairs else {
            return Err(bad("pairs", "needs query/passage pairs: add [pairs] with source = \"embedded\", \"derived\" or \"file\"".into()));
        };
        match (p.source, &p.path) {
            (PairsSource::File | PairsSource::Derived, None) => {
                return Err(bad("pairs.path", format!("source = \"{}\" needs path = \"<file>\"", serde_json::to_value(p.source).unwrap().as_str().unwrap())))
            }
            (PairsSource::Embedded, Some(_)) => return Err(bad("pairs.path", "source = \"embedded\" reads no file".into())),
            _ => {}
        }
        if !(0.0..1.0).contains(&p.test_fraction) {
            return Err(bad("pairs.test_fraction", format!("must be in [0, 1), got {}", p.test_fraction)));
        }
        Ok(())
    }
}
