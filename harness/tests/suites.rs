//! Every committed suite parses and expands, and the paper suites' models have PAPER.md A.7's
//! exact parameter counts.
use harness::suite::Suite;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn suites() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../suites");
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "toml") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn every_committed_suite_parses() {
    let all = suites();
    assert!(all.len() >= 10, "{all:?}");
    for p in all {
        // CUDA "available": suites for the GPU must validate here too.
        let s = Suite::load(&p, &[], true).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert!(!s.runs.is_empty(), "{}", p.display());
        for r in &s.runs {
            if let Some(up) = r.upstream() {
                assert!(s.runs.iter().any(|p| p.id == up), "{}: {} consumes a run outside the suite", p.display(), r.id);
            }
        }
        // Every profile of every suite expands too.
        for name in s.file.profile.keys() {
            let ps = Suite::load_profile(&p, Some(name), &[], true).unwrap_or_else(|e| panic!("{} --profile {name}: {e}", p.display()));
            assert!(ps.runs.iter().all(|r| r.config.profile.as_deref() == Some(name.as_str())));
        }
    }
}

/// The built-in `shapes` profile: every paper run keeps its model, context, vocabulary, tokenizer
/// pipeline, padding and packing (a completion model reads full windows), and runs on the CPU for two steps at micro-batch 1 on local
/// data; nothing else changes, and files made elsewhere are left out.
#[test]
fn every_paper_suite_runs_at_its_shapes_on_local_data() {
    use harness::suite::{shapes, DataSource, DeviceChoice, Precision};
    use mm_models::ModelSpec;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../suites/paper");
    let mut files: Vec<_> = std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(files.len() >= 18, "{files:?}");
    for path in files {
        let paper = Suite::load(&path, &[], true).unwrap();
        let at = Suite::load_profile(&path, Some(shapes::SHAPES), &[], true).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let name = path.display();
        assert!(!at.runs.is_empty(), "{name}");
        for r in &at.runs {
            let c = &r.config;
            assert_eq!(c.profile.as_deref(), Some("shapes"), "{name}");
            assert_eq!(c.device, DeviceChoice::Cpu, "{name}");
            // The paper's run of the same experiment and point: the same shapes.
            let p = paper
                .runs
                .iter()
                .find(|p| p.experiment == r.experiment && p.point == r.point && p.config.seed == c.seed)
                .unwrap_or_else(|| panic!("{name}: {}", r.experiment));
            assert_eq!(c.model, p.config.model, "{name} {}: the model is the paper's", r.experiment);
            if let (Some(d), Some(pd)) = (&c.data, &p.config.data) {
                assert_eq!((d.n_ctx, d.vocab_size, d.tokenizer, d.padding), (pd.n_ctx, pd.vocab_size, pd.tokenizer, pd.padding), "{name}");
                // A completion model reads full windows at shapes, so its target half exists.
                let completion = matches!(&c.model, Some(ModelSpec::MixerAutoencoder(s) | ModelSpec::LlamaAutoencoder(s)) if s.completion);
                assert_eq!(d.packing, if completion { harness::suite::Packing::Windows } else { pd.packing }, "{name} {}", r.experiment);
                assert!(matches!(d.source, DataSource::Text | DataSource::Embedded), "{name}: local data, not {:?}", d.source);
                assert!(d.preset.is_none() && d.files.is_empty(), "{name}");
            }
            if let Some(t) = &c.train {
                assert_eq!((t.steps, t.batch_size, t.accumulate, t.precision), (Some(shapes::STEPS), 1, 1, Precision::Fp32), "{name}");
                assert_eq!((t.eval_every, t.eval_batches, t.checkpoint_every), (1, Some(shapes::EVAL_BATCHES), Some(1)), "{name}");
            }
            if let Some(i) = &c.retrieval_infonce {
                assert_eq!(
                    (i.group, i.groups_per_step, i.epochs, i.precision),
                    (p.config.retrieval_infonce.as_ref().unwrap().group, 1, 1, Precision::Fp32),
                    "{name}"
                );
            }
            if let Some(e) = &c.retrieval_eval {
                assert!(!e.n.is_empty() && e.n.iter().all(|&n| n <= shapes::TEST_PAIRS as i64), "{name}: {:?}", e.n);
            }
            assert!(c.embed.as_ref().is_none_or(|e| e.source != harness::suite::WeightsSource::File), "{name}: embeddings from a file are left out");
            if let Some(f) = &c.retrieval_frozen {
                // The pairs it draws from (its own or a producer's) hold the n - 1 distinct
                // passages a query needs in each split, at the paper's n.
                assert_eq!(f.n, p.config.retrieval_frozen.as_ref().unwrap().n, "{name}: the paper's slots");
                let mut at_run = Some(r);
                let pairs = std::iter::from_fn(|| {
                    let cur = at_run?;
                    at_run = cur.config.upstream.as_ref().and_then(|u| at.runs.iter().find(|x| x.id == u.run));
                    Some(cur)
                })
                .find_map(|x| x.config.pairs.clone())
                .unwrap_or_else(|| panic!("{name}: no pairs upstream of {}", r.experiment));
                let (all, test) = (pairs.n_pairs.unwrap() as i64, pairs.test_pairs.unwrap() as i64);
                assert!(test >= f.n - 1 && all - test >= f.n - 1, "{name} {}: n = {} from {all} pairs, {test} to test", r.experiment, f.n);
            }
        }
    }
}

#[test]
fn retrieval_paper_suites_have_the_paper_models() {
    // PAPER.md A.7 (V 8000 rows at L 512).
    let want: BTreeMap<&str, u64> = [
        ("masked_mixer d1024 n16", 154_951_680),
        ("masked_mixer d512 n16", 46_022_656),
        ("masked_mixer d512 n32", 83_853_312),
        ("llama d512 n16 h4", 75_317_760),
    ]
    .into();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../suites/paper");
    let s = Suite::load(&root.join("retrieval_infonce_finemath.toml"), &[], true).unwrap();
    let mut seen = 0;
    for r in s.runs.iter().filter(|r| r.experiment.starts_with("clm")) {
        let c = &r.config;
        let n = c.model().num_params(c.data().vocab_size as i64, c.data().n_ctx);
        assert_eq!(Some(&n), want.get(r.label.as_str()), "{}", r.label);
        seen += 1;
    }
    assert_eq!(seen, 4);
    let t13 = Suite::load(&root.join("retrieval_pretraining_data.toml"), &[], true).unwrap();
    let eval: Vec<_> = t13.runs.iter().filter(|r| r.experiment == "eval").collect();
    let cells: Vec<Option<f64>> = eval.iter().map(|r| r.paper.as_ref().and_then(|p| p.cell("32"))).collect();
    assert_eq!(cells, vec![Some(69.0), Some(71.3), Some(81.8)], "T13's rows by pretraining experiment");
    // Each retrieval paper suite has a CPU profile.
    for f in ["retrieval_infonce_finemath", "retrieval_pretraining_data", "retrieval_frozen_fineweb", "retrieval_frozen_tinystories"] {
        let s = Suite::load_profile(&root.join(format!("{f}.toml")), Some("ci"), &[], false).unwrap();
        assert!(s.runs.iter().all(|r| r.config.device == harness::suite::DeviceChoice::Cpu), "{f}");
    }
}

/// Every model of the CLM and autoencoder paper suites at the paper's scale, by label and vocabulary.
#[test]
fn clm_paper_suites_have_the_paper_models() {
    // PAPER.md A.7, every row these suites use (V 4096 at L 512 unless the label says V 8000).
    let want: BTreeMap<&str, u64> = [
        ("masked_mixer d256 n8", 8_411_136),
        ("masked_mixer d512 n8", 23_109_632),
        ("masked_mixer d1024 n8", 77_672_448),
        ("masked_mixer d2048 n8", 287_461_376),
        ("masked_mixer d256 n8 expanded e2", 14_710_784),
        ("masked_mixer d512 n8 expanded e2", 29_409_280),
        ("masked_mixer d1024 n8 expanded e2", 83_972_096),
        ("masked_mixer d1024 n8 kernel k4", 83_963_904),
        ("llama d128 n8 h16", 3_147_904),
        ("llama d256 n8 h16", 10_490_112),
        ("llama d512 n8 h16", 37_757_440),
        ("llama d1024 n8 h16", 142_623_744),
        ("gpt d512 n8 h4", 27_578_368),
        ("V8000 L512 masked_mixer d1024 n16", 154_951_680),
        ("V8000 L128 masked_mixer d1024 n16", 151_013_376),
        ("V8000 L32 masked_mixer d1024 n16", 150_766_080),
        ("V8000 L1024 masked_mixer d1024 n8", 91_963_392),
        ("V8000 L512 llama d512 n16 h4", 75_317_760),
        ("V8000 L1024 llama d512 n8 h4", 41_755_136),
        ("V8000 L512 gpt d512 n16 h4", 54_796_288),
        ("mixer_autoencoder d512 8+8", 42_024_960),
        ("mixer_autoencoder d1024 8+8", 146_956_288),
    ]
    .into();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../suites/paper");
    let mut seen = std::collections::BTreeSet::new();
    for f in ["ts_clm_width", "ts_clm_4xv100", "fineweb_ctx_sweep", "autoencoders_ts"] {
        let s = Suite::load(&root.join(format!("{f}.toml")), &[], true).unwrap();
        for r in &s.runs {
            let (m, d) = (r.config.model(), r.config.data());
            let key = if d.vocab_size == 8000 { format!("V8000 L{} {}", d.n_ctx, r.label) } else { r.label.clone() };
            if let Some(&n) = want.get(key.as_str()) {
                assert_eq!(m.num_params(d.vocab_size as i64, d.n_ctx), n, "{f}: {key}");
                seen.insert(key);
            }
            assert!(!r.cells.is_empty() || r.experiment == "completion", "{f}: {} fills no table cell", r.label);
        }
    }
    let missing: Vec<_> = want.keys().filter(|k| !seen.contains(**k)).collect();
    assert!(missing.is_empty(), "A.7 rows no suite runs: {missing:?}");
}

/// Each table entry of the CLM paper suites is filled at the paper's scale and at every
/// profile, and the budgets stay within the schedules.
#[test]
fn clm_paper_suites_fill_every_cell_at_every_profile() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../suites/paper");
    for f in ["ts_clm_width", "ts_clm_4xv100", "fineweb_ctx_sweep", "autoencoders_ts"] {
        let path = root.join(format!("{f}.toml"));
        let base = Suite::load(&path, &[], true).unwrap();
        let mut profiles: Vec<Option<String>> = vec![None];
        profiles.extend(base.file.profile.keys().cloned().map(Some));
        assert!(profiles.contains(&Some("ci".into())) && profiles.contains(&Some("gpu-smoke".into())), "{f}");
        for p in profiles {
            let s = Suite::load_profile(&path, p.as_deref(), &[], true).unwrap();
            for t in &s.file.tables {
                for e in &t.entries {
                    let cell = t.cell(e);
                    assert!(s.runs.iter().any(|r| r.cells.contains(&cell)), "{f} {p:?}: {cell} is not filled");
                }
            }
            for r in &s.runs {
                let t = r.config.train.as_ref().unwrap();
                assert!(t.budget_steps(r.config.data().n_ctx) > 0, "{f} {p:?}: {}", r.label);
            }
            if p.as_deref() == Some("ci") {
                assert!(s.runs.iter().all(|r| r.config.device == harness::suite::DeviceChoice::Cpu), "{f}");
            }
        }
    }
}

const TABLED: &str = include_str!("fixtures/tabled.toml");

fn tabled_err(from: &str, to: &str) -> String {
    let src = TABLED.replace(from, to);
    assert_ne!(src, TABLED, "the replacement must apply: {from}");
    Suite::parse(Path::new("t.toml"), src, &[], false).map(|_| ()).unwrap_err().to_string()
}

#[test]
fn cells_attach_to_sweep_points_and_bad_tables_are_named() {
    let s = Suite::parse(Path::new("t.toml"), TABLED.to_string(), &[], false).unwrap();
    let cells: Vec<(String, u64)> = s.runs.iter().map(|r| (r.cells.join(","), r.config.seed)).collect();
    assert_eq!(cells, vec![("T x".into(), 0), ("T x".into(), 1), ("T y".into(), 0), ("T y".into(), 1)]);
    let e = tabled_err(r#"cells = { T = ["x", "y"] }"#, r#"cells = { T = ["x"] }"#);
    assert!(e.contains("t.toml") && e.contains("cells.T") && e.contains("2 sweep point(s)") && e.contains("names 1"), "{e}");
    let e = tabled_err(r#"cells = { T = ["x", "y"] }"#, r#"cells = { T = ["x", "z"] }"#);
    assert!(e.contains("`z` is not an entry of T"), "{e}");
    let e = tabled_err(r#"cells = { T = ["x", "y"] }"#, r#"cells = { U = ["x", "y"] }"#);
    assert!(e.contains("no [[table]] with id = \"U\""), "{e}");
    let e = tabled_err(r#"cells = { T = ["x", "y"] }"#, r#"cells = { T = ["x", "x"] }"#);
    assert!(e.contains("T x is filled by more than one sweep point"), "{e}");
    let e = tabled_err("paper = { test = [2.0, 1.5] }", "paper = { test = [2.0] }");
    assert!(e.contains("table.paper") && e.contains("1 values for 2 entries"), "{e}");
    let e = tabled_err(r#"better = "T y""#, r#"better = "T w""#);
    assert!(e.contains("no table cell `T w`") && e.contains("T x, T y"), "{e}");
    let e = tabled_err(r#"metrics = ["train", "test"]"#, r#"metrics = ["train", "accuracy"]"#);
    assert!(e.contains("`accuracy` is not a known metric"), "{e}");
    let e = tabled_err("[[table]]", "[tolerance]\nce = { abs = -0.05, why = \"seeds\" }\n\n[[table]]");
    assert!(e.contains("t.toml") && e.contains("tolerance.ce") && e.contains("positive number"), "{e}");
    let e = tabled_err("[[table]]", "[tolerance]\nce = { abs = 0.05 }\n\n[[table]]");
    assert!(e.contains("why"), "{e}");
}

/// A paper number with no band would print "no band stated" in every single-seed report: each
/// paper suite states the band of every kind of metric its tables give the paper's numbers for.
#[test]
fn every_paper_number_in_a_table_has_a_tolerance_with_its_reason() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../suites/paper");
    let mut banded = 0;
    for e in std::fs::read_dir(&root).unwrap() {
        let path = e.unwrap().path();
        let s = Suite::load(&path, &[], true).unwrap();
        for t in &s.file.tables {
            for m in t.metrics() {
                if !t.entries.iter().any(|e| t.paper(e, &m.name).is_some()) {
                    continue;
                }
                let kind = m.kind().unwrap_or_else(|| panic!("{}: table {} metric {} has paper numbers of no known kind", path.display(), t.id, m.name));
                let band = s.file.tolerance.of(kind).unwrap_or_else(|| {
                    panic!("{}: table {} gives the paper's {} but [tolerance] has no `{}`", path.display(), t.id, m.name, kind.name())
                });
                assert!(band.why.len() > 40, "{}: say what the {} band is made of", path.display(), kind.name());
                banded += 1;
            }
        }
    }
    assert!(banded >= 14, "{banded} banded metrics: the paper suites' tables lost their numbers?");
}

#[test]
fn every_paper_suite_has_a_ci_profile_so_the_whole_paper_runs_at_ci_scale() {
    // `harness run suites/paper/ --profile ci` needs it in every suite of the folder.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../suites/paper");
    for e in std::fs::read_dir(&root).unwrap() {
        let path = e.unwrap().path();
        let s = Suite::load_profile(&path, Some("ci"), &[], false).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(s.runs.iter().all(|r| r.config.device == harness::device::DeviceChoice::Cpu), "{}: its ci profile runs on the CPU", path.display());
    }
}

#[test]
fn every_paper_number_of_a_retrieval_experiment_has_a_band_and_every_band_a_seed_sd() {
    use harness::suite::{ExperimentKind, MetricKind, PaperValue};
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../suites/paper");
    let mut judged = std::collections::BTreeSet::new();
    for e in std::fs::read_dir(&root).unwrap() {
        let path = e.unwrap().path();
        let s = Suite::load(&path, &[], true).unwrap();
        for r in &s.runs {
            let kind = match r.config.kind {
                ExperimentKind::RetrievalEval => MetricKind::Top1,
                ExperimentKind::RetrievalFrozen => MetricKind::Ce,
                _ => continue,
            };
            if !matches!(r.paper, Some(PaperValue::Cells(_))) {
                continue;
            }
            let band = s.file.tolerance.of(kind).unwrap_or_else(|| {
                panic!("{}: experiment {} gives the paper's numbers but [tolerance] has no `{}`", path.display(), r.experiment, kind.name())
            });
            assert!(band.why.len() > 40, "{}: say what the {} band is made of", path.display(), kind.name());
            judged.insert(path.clone());
        }
        // A claim's seed plan needs a seed sd while no side has 2 seeds (the paper suites run one).
        for kind in [MetricKind::Ce, MetricKind::Top1, MetricKind::Hamming] {
            // (Memory has no claim and no seed spread: a peak is deterministic.)
            if let Some(t) = s.file.tolerance.of(kind) {
                assert!(t.seed_sd.is_some(), "{}: [tolerance] {} has no seed_sd, so no claim on it gets a seed plan", path.display(), kind.name());
            }
        }
    }
    assert_eq!(judged.len(), 4, "the four retrieval suites judge their paper cells: {judged:?}");
}

#[test]
fn an_experiments_own_profile_section_wins_over_the_suites_profile() {
    let src = TABLED.to_string()
        + "[experiment.profile.small.sweep]\nmodel = [{ kind = \"masked_mixer\", d_model = 4, n_layers = 1 }, { kind = \"masked_mixer\", d_model = 6, n_layers = 1 }]\n\
           [experiment.profile.small]\ntrain = { batch_size = 3 }\n\
           [profile.small]\ntrain = { batch_size = 5, steps = 2 }\nseeds = [7]\n";
    let s = Suite::parse_profile(Path::new("t.toml"), src.clone(), Some("small"), &[], false).unwrap();
    let got: Vec<(String, i64, u64, u64)> =
        s.runs.iter().map(|r| (r.label.clone(), r.config.train.as_ref().unwrap().batch_size, r.config.train.as_ref().unwrap().budget_steps(16), r.config.seed)).collect();
    assert_eq!(got, vec![("masked_mixer d4 n1".into(), 3, 2, 7), ("masked_mixer d6 n1".into(), 3, 2, 7)]);
    assert_eq!(s.runs[1].cells, vec!["T y".to_string()], "cells follow the replaced points");
    // `--set` still wins over both.
    let s = Suite::parse_profile(Path::new("t.toml"), src.clone(), Some("small"), &[("train.batch_size".into(), toml::Value::Integer(9))], false).unwrap();
    assert!(s.runs.iter().all(|r| r.config.train.as_ref().unwrap().batch_size == 9));
    // A profile's data table of another source replaces the suite's: a key it lacks is named.
    let other = src.replace("[profile.small]\n", "[profile.small]\ndata = { source = \"text\", path = \"x.txt\" }\n");
    let e = Suite::parse_profile(Path::new("t.toml"), other, Some("small"), &[], false).map(|_| ()).unwrap_err().to_string();
    assert!(e.contains("missing field `n_ctx`") && e.contains("at profile `small`") && e.contains("replaces the suite's whole table"), "{e}");
    // A section for a profile the suite does not define is an error naming it.
    let bad = src.replace("[profile.small]", "[profile.other]");
    let e = Suite::parse_profile(Path::new("t.toml"), bad, Some("other"), &[], false).map(|_| ()).unwrap_err().to_string();
    assert!(e.contains("profile `small`") && e.contains("no [profile.small]"), "{e}");
}

#[test]
fn a_point_axis_varies_settings_together() {
    let src = TABLED.replace(
        "model = [{ kind = \"masked_mixer\", d_model = 8, n_layers = 1 }, { kind = \"masked_mixer\", d_model = 16, n_layers = 1 }]",
        "point = [{ model = { kind = \"masked_mixer\", d_model = 8, n_layers = 1 }, train = { stop_at = 2 } }, { model = { kind = \"llama\", d_model = 8, n_layers = 1, n_heads = 2 }, train = { batch_size = 3 } }]",
    );
    let s = Suite::parse(Path::new("t.toml"), src.clone(), &[], false).unwrap();
    let got: Vec<(String, i64, u64)> =
        s.runs.iter().map(|r| (r.label.clone(), r.config.train.as_ref().unwrap().batch_size, r.config.train.as_ref().unwrap().budget_steps(16))).collect();
    assert_eq!(got[0], ("masked_mixer d8 n1".into(), 2, 2));
    assert_eq!(got[2], ("llama d8 n1 h2".into(), 3, 4));
    assert_eq!(s.runs[0].axes.iter().find(|(k, _)| k == "train.stop_at").map(|(_, v)| v.as_str()), Some("2"));
    let e = Suite::parse(Path::new("t.toml"), src.replace("train = { stop_at = 2 }", "pairs = { n_pairs = 2 }"), &[], false)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(e.contains("`point` sets `pairs`"), "{e}");
}

/// A consumer's cells are given per producer point (seeds aside) times its own sweep.
#[test]
fn consumer_cells_follow_their_producers_points() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../suites");
    let s = Suite::load(&root.join("quickstart.toml"), &[], false).unwrap();
    let rep: Vec<(String, String)> =
        s.runs.iter().filter(|r| r.experiment == "representation").map(|r| (r.config.model().kind().to_string(), r.cells.join(","))).collect();
    assert_eq!(rep.len(), 6, "2 CLM points at n_ctx 64 x 3 seeds");
    for (kind, cell) in rep {
        assert_eq!(cell, if kind == "masked_mixer" { "INV mixer" } else { "INV Llama" });
    }
    let e = Suite::parse(
        &root.join("quickstart.toml"),
        std::fs::read_to_string(root.join("quickstart.toml")).unwrap().replace("cells = { INV = [\"mixer\", \"Llama\"] }", "cells = { INV = [\"mixer\"] }"),
        &[],
        false,
    )
    .map(|_| ())
    .unwrap_err()
    .to_string();
    assert!(e.contains("cells.INV") && e.contains("2 sweep point(s)"), "{e}");
}

/// The suites the integration tests share (`tests/fixtures/`) are valid suites of this format.
#[test]
fn every_test_fixture_is_a_valid_suite() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let suite = Suite::load(&p, &[], false).unwrap_or_else(|e| panic!("{e}"));
        assert!(!suite.runs.is_empty(), "{}", p.display());
        n += 1;
    }
    assert!(n >= 6, "the fixtures are in {}", dir.display());
}

/// T12's InfoNCE-tuned values sit beside the tuned rows only, never the frozen or untrained ones.
#[test]
fn tuned_retrieval_cells_sit_on_tuned_rows_only() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../suites/ci");
    for f in ["retrieval.toml", "gpu-retrieval.toml"] {
        let s = Suite::load(&root.join(f), &[], true).unwrap();
        let eval: Vec<_> = s.runs.iter().filter(|r| r.experiment == "eval").collect();
        assert!(!eval.is_empty(), "{f}");
        for r in eval {
            let tuned = r.lineage.iter().any(|e| e == "embed_tuned");
            let cell = r.paper.as_ref().and_then(|p| p.cell("32"));
            assert_eq!(cell.is_some(), tuned, "{f}: {} (from {:?}) has paper value {cell:?}", r.label, r.lineage);
        }
    }
}

/// Paper-scale suites train the paper's tokenizers (PAPER.md B.1-B.3): Llama's on TinyStories,
/// Llama 3's on FineWeb-edu and FineMath.
#[test]
fn paper_suites_use_the_paper_tokenizers() {
    use harness::suite::{DataSource, TokenizerKind};
    for p in suites().into_iter().filter(|p| p.parent().is_some_and(|d| d.ends_with("paper"))) {
        let s = Suite::load(&p, &[], true).unwrap();
        for r in s.runs.iter().filter(|r| r.config.data.is_some()) {
            let d = r.config.data();
            if d.source == DataSource::Embedded && !p.ends_with("representation_untrained.toml") {
                continue;
            }
            let want = match d.vocab_size {
                4096 => TokenizerKind::Llama,
                8000 => TokenizerKind::Llama3,
                v => panic!("{}: {} has vocabulary {v}, neither of the paper's", p.display(), r.label),
            };
            assert_eq!(d.tokenizer, want, "{}: {} ({})", p.display(), r.label, r.experiment);
        }
    }
}
