use super::*;

const GOOD: &str = r#"
schema = 1
name = "t"
description = "test suite"
reproduces = ["T3"]

[defaults]
seeds = [0, 1]
[defaults.data]
source = "embedded"
n_ctx = 16
vocab_size = 300
[defaults.train]
steps = 5
batch_size = 2

[[experiment]]
name = "clm"
kind = "clm"
[experiment.sweep]
model = [{ kind = "masked_mixer", d_model = 8, n_layers = 1 }, { kind = "llama", d_model = 8, n_layers = 1, n_heads = 2 }]
"data.n_ctx" = [16, 32]
"#;

fn parse(src: &str) -> Result<Suite, SuiteError> {
    Suite::parse(Path::new("suites/t.toml"), src.to_string(), &[], false)
}

#[test]
fn sweep_expands_to_the_cartesian_product() {
    let s = parse(GOOD).unwrap();
    assert_eq!(s.runs.len(), 2 * 2 * 2);
    let ids: std::collections::BTreeSet<_> = s.runs.iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids.len(), 8, "every run has its own id");
    // Axes are sorted by key (data.n_ctx, model, seed), the first varying slowest.
    assert_eq!(s.runs[0].config.model().kind(), "masked_mixer");
    assert_eq!((s.runs[1].config.model().kind(), s.runs[1].config.seed), ("masked_mixer", 1));
    assert_eq!(s.runs[2].config.model().kind(), "llama");
    assert!(s.runs.iter().any(|r| r.config.data().n_ctx == 32 && r.config.seed == 1));
}

#[test]
fn run_id_is_stable_and_sensitive() {
    let a = parse(GOOD).unwrap();
    let b = parse(&GOOD.replace("description = \"test suite\"", "description = \"renamed\"")).unwrap();
    assert_eq!(a.runs[0].id, b.runs[0].id, "descriptions do not change what a run computes");
    let c = parse(&GOOD.replace("steps = 5", "steps = 6")).unwrap();
    assert_ne!(a.runs[0].id, c.runs[0].id);
    // Pinned: a change here means every stored result is orphaned; change it deliberately.
    assert_eq!(a.runs[0].id.len(), 64);
    assert_eq!(a.runs[0].id, run_id(&a.runs[0].config));
}

#[test]
fn overrides_apply_to_every_run() {
    let ov = [parse_override("train.steps=9").unwrap(), parse_override("data.padding=left").unwrap()];
    let s = Suite::parse(Path::new("t.toml"), GOOD.into(), &ov, false).unwrap();
    assert!(s.runs.iter().all(|r| r.config.train.as_ref().unwrap().steps == Some(9)));
    // Pinning a swept key collapses the sweep points that became identical.
    let pinned = Suite::parse(Path::new("t.toml"), GOOD.into(), &[parse_override("data.n_ctx=16").unwrap()], false).unwrap();
    assert_eq!(pinned.runs.len(), 4);
    assert!(s.runs.iter().all(|r| r.config.data().padding == PaddingSide::Left));
    let one_seed = Suite::parse(Path::new("t.toml"), GOOD.into(), &[parse_override("seeds=[7]").unwrap()], false).unwrap();
    assert!(one_seed.runs.len() == 4 && one_seed.runs.iter().all(|r| r.config.seed == 7), "--set seeds replaces the suite's seeds");
    let err = Suite::parse(Path::new("t.toml"), GOOD.into(), &[parse_override("trian.steps=1").unwrap()], false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown section `trian`"), "{err}");
}

#[test]
fn unknown_key_names_file_line_and_key() {
    let src = GOOD.replace("batch_size = 2", "batch_size = 2\nlearning_rate = 0.1");
    let err = parse(&src).unwrap_err().to_string();
    assert!(err.starts_with("suites/t.toml:16: key `train.learning_rate`"), "{err}");
    assert!(err.contains("unknown field `learning_rate`, expected one of"), "{err}");
}

#[test]
fn wrong_type_names_the_key() {
    let src = GOOD.replace("batch_size = 2", "batch_size = \"two\"");
    let err = parse(&src).unwrap_err().to_string();
    assert!(err.contains("suites/t.toml:15: key `train.batch_size`"), "{err}");
    assert!(err.contains("invalid type: string \"two\", expected i64"), "{err}");
}

#[test]
fn zero_context_is_rejected_with_the_fix() {
    let src = GOOD.replace("\"data.n_ctx\" = [16, 32]", "\"data.n_ctx\" = [0]");
    let err = parse(&src).unwrap_err().to_string();
    assert!(err.contains("key `data.n_ctx`: must be at least 2"), "{err}");
    assert!(err.contains("got 0"), "{err}");
    assert!(err.starts_with("suites/t.toml:22:"), "{err}");
}

#[test]
fn a_model_of_another_kind_replaces_the_default_model() {
    let ov = [parse_override("model={kind=\"masked_mixer\", d_model=4, n_layers=1}").unwrap()];
    let s = Suite::parse(Path::new("t.toml"), GOOD.into(), &ov, false).unwrap();
    assert!(s.runs.iter().all(|r| r.config.model().kind() == "masked_mixer" && r.config.model().d_model() == 4));
    let ov = [parse_override("model.d_model=12").unwrap()];
    let s = Suite::parse(Path::new("t.toml"), GOOD.into(), &ov, false).unwrap();
    assert!(s.runs.iter().all(|r| r.config.model().d_model() == 12), "same kind: fields merge");
    // Data of another source replaces the data table (an hf preset's fields would not fit).
    let hf = GOOD.replace("source = \"embedded\"", "source = \"hf\"\npreset = \"tinystories\"");
    let ov = [parse_override("data={source=\"embedded\", n_ctx=16, vocab_size=300}").unwrap()];
    let s = Suite::parse(Path::new("t.toml"), hf, &ov, false).unwrap();
    assert!(s.runs.iter().all(|r| r.config.data().preset.is_none()), "another source replaces the data table");
}

#[test]
fn fp16_amp_needs_cuda() {
    let err = parse(&GOOD.replace("batch_size = 2", "batch_size = 2\nprecision = \"fp16-amp\"")).unwrap_err().to_string();
    assert!(err.contains("key `train.precision`: \"fp16-amp\" uses CUDA autocast"), "{err}");
    let ok = Suite::parse(Path::new("t.toml"), GOOD.replace("batch_size = 2", "batch_size = 2\nprecision = \"fp16-amp\""), &[parse_override("device=\"cuda\"").unwrap()], true);
    assert!(ok.is_ok());
}

#[test]
fn small_bpe_vocab_is_rejected_before_running() {
    let err = parse(&GOOD.replace("vocab_size = 300", "vocab_size = 200")).unwrap_err().to_string();
    assert!(err.contains("key `data.vocab_size`: must be in 259..=65536"), "{err}");
}

#[test]
fn syntax_errors_carry_line_and_column() {
    let err = parse("schema = 1\nname = \n").unwrap_err().to_string();
    assert!(err.starts_with("suites/t.toml:2:"), "{err}");
}

#[test]
fn unknown_model_kind_lists_the_allowed_ones() {
    let src = GOOD.replace("kind = \"llama\"", "kind = \"mamba\"");
    let err = parse(&src).unwrap_err().to_string();
    assert!(err.starts_with("suites/t.toml:21: key `model.kind`"), "{err}");
    assert!(err.contains("unknown variant `mamba`, expected one of `masked_mixer`, `llama`, `transfixer`, `gpt`, `mixer_autoencoder`, `llama_autoencoder`"), "{err}");
}

#[test]
fn unknown_top_level_key_is_rejected() {
    let err = parse(&format!("foo = 1\n{GOOD}")).unwrap_err().to_string();
    assert!(err.contains("unknown field `foo`"), "{err}");
}

const PIPE: &str = r#"
schema = 1
name = "p"
description = "pipeline"
[defaults]
seeds = [0, 1]
[defaults.data]
source = "embedded"
n_ctx = 16
vocab_size = 300
[defaults.train]
steps = 5
batch_size = 2
[defaults.pairs]
source = "embedded"
n_pairs = 40

[[experiment]]
name = "clm"
kind = "clm"
[experiment.sweep]
model = [{ kind = "masked_mixer", d_model = 8, n_layers = 1 }, { kind = "llama", d_model = 8, n_layers = 1, n_heads = 2 }]
"data.n_ctx" = [16, 32]

[[experiment]]
name = "embed"
kind = "embed"
from = "clm"
where = { "data.n_ctx" = 16 }

[[experiment]]
name = "frozen"
kind = "retrieval_frozen"
from = "embed"
[experiment.sweep]
"retrieval_frozen.n" = [4, 8]

[[experiment]]
name = "eval"
kind = "retrieval_eval"
from = ["embed"]
"#;

#[test]
fn consumers_expand_per_producer_run_and_inherit_model_data_seed() {
    let s = parse(PIPE).unwrap();
    let of = |e: &str| s.runs.iter().filter(|r| r.experiment == e).collect::<Vec<_>>();
    assert_eq!(of("clm").len(), 8);
    assert_eq!(of("embed").len(), 4, "where keeps the n_ctx = 16 producers: 2 models x 2 seeds");
    assert_eq!(of("frozen").len(), 8, "one per embed run and sweep point");
    assert_eq!(of("eval").len(), 4);
    for r in of("frozen") {
        let up = s.runs.iter().find(|p| Some(p.id.as_str()) == r.upstream()).expect("the producer is in the suite");
        assert_eq!(up.experiment, "embed");
        assert_eq!((r.config.seed, r.config.model.as_ref(), r.config.data().n_ctx), (up.config.seed, up.config.model.as_ref(), 16));
        assert_eq!(r.lineage, vec!["clm".to_string(), "embed".to_string()]);
    }
    // Producers come before their consumers.
    let pos = |id: &str| s.runs.iter().position(|r| r.id == id).unwrap();
    assert!(s.runs.iter().all(|r| r.upstream().is_none_or(|u| pos(u) < pos(&r.id))));
}

/// Each run's precision is its own kind's: a retrieval model in bf16 is a bf16 run (the CPU's
/// bf16 check judges it), and its producers' fp32 training is not.
#[test]
fn a_runs_precision_is_its_own_kinds() {
    let s = parse(&PIPE.replace("\"retrieval_frozen.n\" = [4, 8]", "\"retrieval_frozen.n\" = [4, 8]\n[experiment.retrieval_frozen]\nprecision = \"bf16\"")).unwrap();
    for r in &s.runs {
        let want = if r.experiment == "frozen" { Precision::Bf16 } else { Precision::Fp32 };
        assert_eq!(r.config.precision(), want, "{}", r.experiment);
    }
}

#[test]
fn a_changed_producer_changes_every_consumer_id() {
    let a = parse(PIPE).unwrap();
    let b = parse(&PIPE.replace("steps = 5", "steps = 6")).unwrap();
    let ids = |s: &Suite, e: &str| s.runs.iter().filter(|r| r.experiment == e).map(|r| r.id.clone()).collect::<Vec<_>>();
    for e in ["clm", "embed", "frozen", "eval"] {
        assert!(ids(&a, e).iter().all(|id| !ids(&b, e).contains(id)), "{e}: a retrained CLM must move downstream ids");
    }
    // A change only the consumer reads moves only the consumer.
    let c = parse(&PIPE.replace("\"retrieval_frozen.n\" = [4, 8]", "\"retrieval_frozen.n\" = [4, 9]")).unwrap();
    assert_eq!(ids(&a, "embed"), ids(&c, "embed"));
    assert_eq!(ids(&a, "frozen")[0], ids(&c, "frozen")[0]);
    assert_ne!(ids(&a, "frozen")[1], ids(&c, "frozen")[1]);
}

#[test]
fn select_adds_the_producers_of_what_it_runs() {
    let s = parse(PIPE).unwrap();
    let sel = s.select(&["eval".to_string()], &[]).unwrap();
    let count = |e: &str| sel.iter().filter(|r| r.experiment == e).count();
    assert_eq!((count("eval"), count("embed"), count("clm"), count("frozen")), (4, 4, 4, 0));
    let err = s.select(&["nope".to_string()], &[]).unwrap_err().to_string();
    assert!(err.contains("`nope` is no experiment or run id") && err.contains("clm, embed, frozen, eval"), "{err}");
    // A run id (or its first characters) and `failed` select runs, with their producers.
    let eval = s.runs.iter().find(|r| r.experiment == "eval").unwrap();
    let by_id = s.select(&[eval.id[..8].to_string()], &[]).unwrap();
    assert_eq!(by_id.iter().map(|r| r.experiment.as_str()).collect::<Vec<_>>(), ["clm", "embed", "eval"]);
    let clm = s.runs.iter().find(|r| r.experiment == "clm").unwrap();
    let failed = s.select(&["failed".to_string()], std::slice::from_ref(&clm.id)).unwrap();
    assert_eq!(failed.len(), 1);
    assert!(s.select(&["failed".to_string()], &[]).unwrap().is_empty(), "nothing failed, nothing to run");
}

#[test]
fn bad_edges_are_errors_that_say_what_to_do() {
    let e = |src: &str| parse(src).unwrap_err().to_string();
    let later = e(&PIPE.replace("from = \"clm\"\nwhere", "from = \"frozen\"\nwhere"));
    assert!(later.contains("`frozen` is not an earlier experiment; move it before this one"), "{later}");
    let wrong = e(&PIPE.replace("from = \"embed\"\n[experiment.sweep]", "from = \"clm\"\n[experiment.sweep]"));
    assert!(wrong.contains("cannot consume `clm` (clm); it reads embed"), "{wrong}");
    let own = e(&PIPE.replace("from = [\"embed\"]", "from = [\"embed\"]\nseeds = [3]"));
    assert!(own.contains("key `seeds`") && own.contains("takes its model, data and seed from `embed`"), "{own}");
    let swept = e(&PIPE.replace("\"retrieval_frozen.n\" = [4, 8]", "\"model.d_model\" = [4, 8]"));
    assert!(swept.contains("key `model.d_model`") && swept.contains("set it on the producer"), "{swept}");
    let none = e(&PIPE.replace("where = { \"data.n_ctx\" = 16 }", "where = { \"data.n_ctx\" = 17 }"));
    assert!(none.contains("key `where.data.n_ctx`: no run of `clm` has data.n_ctx = 17"), "{none}");
    let orphan = e(&PIPE.replace("from = [\"embed\"]", ""));
    assert!(orphan.contains("key `from`") && orphan.contains("set from = \"<embed experiment>\""), "{orphan}");
    let trained = e(&GOOD.replace("[[experiment]]", "[defaults.representation]\nsource = \"trained\"\n[[experiment]]")
        .replace("kind = \"clm\"\n[experiment.sweep]", "kind = \"representation\"\n[experiment.sweep]"));
    assert!(trained.contains("come through `from = \"<clm experiment>\"`"), "{trained}");
}

#[test]
fn paper_cells_attach_by_label_then_kind() {
    let src = PIPE.replace(
        "from = [\"embed\"]",
        "from = [\"embed\"]\npaper = { masked_mixer = { \"32\" = 98.2 }, \"llama d8 n1 h2\" = { \"32\" = 95.0 }, llama = \"text\" }",
    );
    let s = parse(&src).unwrap();
    for r in s.runs.iter().filter(|r| r.experiment == "eval") {
        let want = if r.config.model().kind() == "llama" { 95.0 } else { 98.2 };
        assert_eq!(r.paper.as_ref().and_then(|p| p.cell("32")), Some(want), "{}", r.label);
    }
    let by_pipeline = PIPE.replace("from = [\"embed\"]", "from = [\"embed\"]\npaper = { \"masked_mixer @ clm\" = { \"32\" = 1.0 }, embed = { \"32\" = 2.0 } }");
    let s = parse(&by_pipeline).unwrap();
    for r in s.runs.iter().filter(|r| r.experiment == "eval") {
        let want = if r.config.model().kind() == "llama" { 2.0 } else { 1.0 };
        assert_eq!(r.paper.as_ref().and_then(|p| p.cell("32")), Some(want), "{}", r.label);
    }
}

#[test]
fn shapes_runs_the_first_seed_unless_seeds_are_set() {
    let shapes = |ov: &[(String, Value)]| Suite::parse_profile(Path::new("suites/t.toml"), GOOD.into(), Some(shapes::SHAPES), ov, false).unwrap();
    let first = shapes(&[]);
    assert_eq!(first.runs.len(), 4, "2 models x 2 contexts, seed 0 standing for seeds 0 and 1");
    assert!(first.runs.iter().all(|r| r.config.seed == 0 && r.config.profile.as_deref() == Some(shapes::SHAPES)));
    let named = shapes(&[parse_override("seeds=[3, 4]").unwrap()]);
    assert_eq!(named.runs.len(), 8, "--set seeds names the seeds to run");
}

#[test]
fn profiles_override_replace_axes_skip_and_move_run_ids() {
    let src = format!(
        "{PIPE}\n[[experiment]]\nname = \"file\"\nkind = \"embed\"\nembed = {{ source = \"file\", file = \"e5.safetensors\" }}\n\
         [[experiment]]\nname = \"eval_file\"\nkind = \"retrieval_eval\"\nfrom = \"file\"\n\
         [profile.ci]\ndescription = \"small\"\nseeds = [5]\ntrain = {{ steps = 2 }}\nskip = [\"file\"]\n\
         [profile.ci.sweep]\n\"retrieval_frozen.n\" = [3]\n"
    );
    let full = parse(&src).unwrap();
    let ci = Suite::parse_profile(Path::new("suites/t.toml"), src.clone(), Some("ci"), &[], false).unwrap();
    let of = |s: &Suite, e: &str| s.runs.iter().filter(|r| r.experiment == e).cloned().collect::<Vec<_>>();
    assert_eq!(of(&ci, "clm").len(), 4, "one seed instead of two");
    assert!(ci.runs.iter().all(|r| r.config.seed == 5 && r.config.profile.as_deref() == Some("ci")));
    assert!(of(&ci, "clm").iter().all(|r| r.config.train.as_ref().unwrap().steps == Some(2)));
    assert!(of(&ci, "frozen").iter().all(|r| r.config.retrieval_frozen.as_ref().unwrap().n == 3), "the axis is replaced");
    assert_eq!(of(&ci, "frozen").len(), 2);
    assert!(of(&ci, "file").is_empty() && of(&ci, "eval_file").is_empty(), "skipped, with its only consumer");
    assert_eq!(of(&full, "eval_file").len(), 2, "one per seed of the file producer");
    // The profile is part of the id even where it changes nothing else.
    let noop = src.replace("seeds = [5]\ntrain = { steps = 2 }\n", "").replace("\"retrieval_frozen.n\" = [3]", "\"retrieval_frozen.n\" = [4, 8]");
    let same = Suite::parse_profile(Path::new("t.toml"), noop, Some("ci"), &[], false).unwrap();
    assert!(of(&same, "clm").iter().all(|r| !full.runs.iter().any(|f| f.id == r.id)));
    // Errors name the profile and the fix.
    let e = |name: &str, text: &str| Suite::parse_profile(Path::new("t.toml"), text.into(), Some(name), &[], false).unwrap_err().to_string();
    assert!(e("gpu", &src).contains("no profile `gpu`; this suite has: ci"), "{}", e("gpu", &src));
    let bad_key = e("ci", &src.replace("description = \"small\"", "descripton = \"small\""));
    assert!(bad_key.contains("key `profile.ci.descripton`: unknown key in a profile"), "{bad_key}");
    let bad_axis = e("ci", &src.replace("\"retrieval_frozen.n\" = [3]", "\"retrieval_frozen.depth\" = [3]"));
    assert!(bad_axis.contains("replaces axis `retrieval_frozen.depth`, but no experiment sweeps it"), "{bad_axis}");
    let bad_skip = e("ci", &src.replace("skip = [\"file\"]", "skip = [\"nope\"]"));
    assert!(bad_skip.contains("no experiment `nope` to leave out"), "{bad_skip}");
}

#[test]
fn every_section_an_experiment_sets_is_in_sections() {
    let exp: ExperimentDef = toml::from_str("name = \"e\"\nkind = \"clm\"").unwrap();
    let names: Vec<&str> = exp.settings().iter().map(|(k, _)| *k).collect();
    assert_eq!(names, SECTIONS, "ExperimentDef::settings and SECTIONS must list the same sections in the same order");
    assert!(default_keys().contains(&"seeds"));
}

/// A run's setting shows what it runs with: a profile's setting or `--set` that overrides a
/// swept value (a smoke profile's step budget) replaces it in the label, and an axis the
/// experiment's own profile section replaced keeps its values unless `--set` overrides them.
#[test]
fn settings_show_the_values_that_override_the_sweep() {
    let src = GOOD.replace("[experiment.sweep]\nmodel = [", "[experiment.sweep]\n\"train.lr\" = [0.001]\npoint = [{ train = { steps = 10 } }, { train = { steps = 20 } }]\nmodel = [")
        + "[profile.smoke]\ndescription = \"short\"\ntrain = { steps = 3 }\n\
           [experiment.profile.smoke.sweep]\n\"train.lr\" = [0.002]\n";
    let load = |profile: Option<&str>, set: &[(String, Value)]| Suite::parse_profile(Path::new("suites/t.toml"), src.clone(), profile, set, false).unwrap();
    let settings = |s: &Suite| -> std::collections::BTreeSet<String> { s.runs.iter().map(crate::report::setting).collect() };
    let base = load(None, &[]);
    assert!(settings(&base).iter().any(|s| s.contains("train.steps=10") && s.contains("train.lr=0.001")), "{:?}", settings(&base));
    assert!(settings(&base).iter().any(|s| s.contains("train.steps=20")), "{:?}", settings(&base));
    assert!(base.runs.iter().any(|r| r.config.train.as_ref().unwrap().steps == Some(20)));
    // The profile's steps = 3 beats both points: every label says 3, and the points collapse.
    let smoke = load(Some("smoke"), &[]);
    assert!(smoke.runs.iter().all(|r| r.config.train.as_ref().unwrap().steps == Some(3)));
    assert!(settings(&smoke).iter().all(|s| s.contains("train.steps=3") && s.contains("train.lr=0.002")), "{:?}", settings(&smoke));
    // `--set` beats the profile and the experiment's own axis.
    let set = [parse_override("train.lr=0.005").unwrap(), parse_override("train.steps=4").unwrap()];
    let cli = load(Some("smoke"), &set);
    assert!(settings(&cli).iter().all(|s| s.contains("train.steps=4") && s.contains("train.lr=0.005")), "{:?}", settings(&cli));
    assert!(cli.runs.iter().all(|r| r.config.train.as_ref().unwrap().lr == 0.005));
}

/// A profile's or `--set`'s table of another `source` replaces the suite's whole table: a
/// setting a sweep point put there would be dropped while the label still shows it, so that is
/// an error naming the table's line and the key; repeating the points in the experiment's own
/// profile sweep (applied after the profile's tables) keeps them.
#[test]
fn a_point_setting_dropped_by_a_replacing_table_is_an_error() {
    let src = GOOD.replace("\"data.n_ctx\" = [16, 32]", "point = [{ data = { padding = \"left\" } }, { data = { padding = \"right\" } }]")
        + "[profile.text]\ndescription = \"another source\"\n\
           data = { source = \"text\", path = \"stories.txt\", n_ctx = 16, vocab_size = 300 }\n";
    let load = |text: &str, profile: Option<&str>, set: &[(String, Value)]| Suite::parse_profile(Path::new("suites/t.toml"), text.into(), profile, set, false);
    let e = load(&src, Some("text"), &[]).unwrap_err().to_string();
    let line = src.lines().position(|l| l.starts_with("data = { source = \"text\"")).unwrap() + 1;
    assert!(e.starts_with(&format!("suites/t.toml:{line}: key `data`: this `data` table has another `source`")), "{e}");
    assert!(e.contains("drops `data.padding = \"left\"`") && e.contains("experiment `clm`") && e.contains("(set by profile `text`)"), "{e}");
    assert!(e.contains("repeat the points under [experiment.profile.text.sweep]"), "{e}");
    // The points repeated under the experiment's own profile sweep apply after the table.
    let kept = src.clone() + "[experiment.profile.text.sweep]\npoint = [{ data = { padding = \"left\" } }, { data = { padding = \"right\" } }]\n";
    let suite = load(&kept, Some("text"), &[]).unwrap();
    let padding = |r: &Run| serde_json::to_value(&r.config.data).unwrap()["padding"].clone();
    assert_eq!(suite.runs.iter().filter(|r| padding(r) == "left").count(), suite.runs.len() / 2);
    // `--set` of another source is named as the `--set`; one of the same source merges.
    let other = parse_override("data={ source = \"text\", path = \"y.txt\", n_ctx = 16, vocab_size = 300 }").unwrap();
    let e = load(&src, None, &[other]).unwrap_err().to_string();
    assert!(e.starts_with("--set data=") && e.contains("drops `data.padding = \"left\"`") && e.contains("give `padding` in this table too"), "{e}");
    assert!(load(&src, None, &[parse_override("data={ n_ctx = 32 }").unwrap()]).is_ok());
}
