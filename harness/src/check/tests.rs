use super::*;

#[test]
fn the_variant_whose_kernel_path_is_the_runs_is_picked_else_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, path: Option<&str>| {
        let b = Baseline { suite: "s".into(), profile: None, note: "n".into(), kernel_path: path.map(String::from), cpu_speed_class: None, runs: vec![] };
        std::fs::write(dir.path().join(name), b.to_toml()).unwrap();
    };
    write("s.ci.toml", None);
    write("s.ci@amd.toml", Some("AuthenticAMD · mkl AUTO · aten AVX2 · 2 threads"));
    write("s.ci@portable.toml", Some("mkl COMPATIBLE · aten AVX2 · 2 threads"));
    // Another suite's variant on the same path, and a file that is no baseline, are never taken.
    write("t.ci@amd.toml", Some("GenuineIntel · mkl AVX512_E1 · aten AVX512 · 2 threads"));
    std::fs::write(dir.path().join("s.ci@broken.toml"), "not = [toml").unwrap();
    let default = dir.path().join("s.ci.toml");
    let pick = |paths: &[&str]| variant_for(&default, paths.iter().copied()).file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(pick(&["AuthenticAMD · mkl AUTO · aten AVX2 · 2 threads"; 3]), "s.ci@amd.toml");
    assert_eq!(pick(&["mkl COMPATIBLE · aten AVX2 · 2 threads"]), "s.ci@portable.toml");
    assert_eq!(pick(&["GenuineIntel · mkl AVX512_E1 · aten AVX512 · 2 threads"]), "s.ci.toml");
    // Runs on two paths, or with no recorded path (CUDA, older runs): the default, which
    // then reports the runs on another path.
    assert_eq!(pick(&["AuthenticAMD · mkl AUTO · aten AVX2 · 2 threads", "mkl COMPATIBLE · aten AVX2 · 2 threads"]), "s.ci.toml");
    assert_eq!(pick(&[]), "s.ci.toml");
}

#[test]
fn tolerances_are_bands_and_throughput_only_fails_on_drops() {
    let e = Expect { value: 2.0, abs: 0.01, rel: 0.1, side: Side::Both };
    assert!((e.band() - 0.21).abs() < 1e-12);
    assert!(e.passes(2.2) && e.passes(1.8) && !e.passes(2.22) && !e.passes(1.78) && !e.passes(f64::NAN));
    let floor = Expect { value: 1000.0, abs: 0.0, rel: 0.75, side: Side::Lower };
    assert!(floor.passes(1e9) && floor.passes(250.0) && !floor.passes(249.0));
    assert_eq!(floor.tolerance(), "±75% (drops only)");
}

#[test]
fn the_written_baseline_reads_back_exactly() {
    let b = Baseline {
        suite: "s".into(),
        profile: Some("ci".into()),
        note: "n \"quoted\"".into(),
        kernel_path: Some("mkl COMPATIBLE · aten AVX2 · 2 threads".into()),
        cpu_speed_class: Some("AuthenticAMD · AVX2 · 2 threads".into()),
        runs: vec![BaselineRun {
            key: "clm · llama d8 n1 h2 · n_ctx=16 · seed 0".into(),
            metrics: BTreeMap::from([
                ("eval_loss".into(), Expect { value: 2.7144727858286055, abs: 1e-12, rel: 1e-6, side: Side::Both }),
                ("tokens_per_s".into(), Expect { value: 65045.7, abs: 0.0, rel: 0.75, side: Side::Lower }),
                ("top1@32".into(), Expect { value: 1.0 / 3.0, abs: 0.0, rel: 0.0, side: Side::Both }),
            ]),
            train_curve: Some(CurveExpect { steps: vec![1, 2], values: vec![6.398692, 0.1 + 0.2], abs: 1e-5 }),
        }],
    };
    let back: Baseline = toml::from_str(&b.to_toml()).unwrap();
    assert_eq!(back, b);
}

#[test]
fn exit_codes_put_regressions_before_missing() {
    let row = |v| Row { run: "r".into(), metric: "m".into(), expected: "1".into(), got: "1".into(), tolerance: "±0".into(), verdict: v };
    assert_eq!(render(&[row(Verdict::Pass)]).1, 0);
    assert_eq!(render(&[row(Verdict::Pass), row(Verdict::Missing)]).1, 2);
    assert_eq!(render(&[row(Verdict::Missing), row(Verdict::Regression)]).1, 1);
    assert!(render(&[row(Verdict::Regression)]).0.contains("1 regression(s)"));
}

fn one_run_suite() -> Suite {
    let text = "schema = 1\nname = \"t\"\ndescription = \"d\"\n[defaults.data]\nsource = \"embedded\"\nvocab_size = 300\nn_ctx = 16\n[defaults.train]\nsteps = 1\nbatch_size = 1\n[[experiment]]\nname = \"c\"\nkind = \"clm\"\nmodel = { kind = \"masked_mixer\", d_model = 8, n_layers = 1 }\n";
    Suite::parse(Path::new("t.toml"), text.into(), &[], false).unwrap()
}

/// A finished CPU run of a one-run suite, with the given summary and CPU speed class.
fn speed_record(speedup: f64, tokens_per_s: f64, class: &str) -> RunRecord {
    let mut summary = serde_json::Map::new();
    summary.insert("speedup".into(), speedup.into());
    summary.insert("tokens_per_s".into(), tokens_per_s.into());
    summary.insert("params".into(), 100.0.into());
    RunRecord {
        run: one_run_suite().runs[0].clone(),
        status: crate::artifacts::RunStatus::Finished,
        error: None,
        device: "cpu".into(),
        execution: BTreeMap::from([("cpu_speed_class".to_string(), class.to_string())]),
        wall_s: Some(1.0),
        summary,
        eval_curve: vec![],
        train_curve: vec![],
        reused: false,
        folder: Default::default(),
    }
}

#[test]
fn speed_ups_and_tokens_per_s_are_judged_only_within_the_baselines_cpu_class() {
    let intel = "GenuineIntel · AVX-512 + AMX · 2 threads";
    let amd = "AuthenticAMD · AVX2 · 2 threads";
    let written = speed_record(1.26, 12_000.0, intel);
    let baseline = baseline_from(&one_run_suite(), Some("ci"), &[written]).unwrap();
    assert_eq!(baseline.cpu_speed_class.as_deref(), Some(intel));
    let verdict = |r: &RunRecord, metric: &str| compare(&baseline, std::slice::from_ref(r)).into_iter().find(|row| row.metric == metric).unwrap().verdict;
    // The same class: a speed-up 19% down (1.26 -> 1.02, CI's AVX2 EPYC) and tokens/s at a
    // fifth are regressions; params are judged as ever.
    let slow = speed_record(1.02, 2_400.0, intel);
    assert_eq!(verdict(&slow, "speedup"), Verdict::Regression);
    assert_eq!(verdict(&slow, "tokens_per_s"), Verdict::Regression);
    assert_eq!(verdict(&speed_record(1.08, 3_100.0, intel), "speedup"), Verdict::Pass);
    // Another class: both speed figures are shown, not judged; exact counts still are.
    let other = speed_record(1.02, 2_400.0, amd);
    assert_eq!(verdict(&other, "speedup"), Verdict::NotCompared);
    assert_eq!(verdict(&other, "tokens_per_s"), Verdict::NotCompared);
    assert_eq!(verdict(&other, "params"), Verdict::Pass);
    let mut moved = speed_record(1.02, 2_400.0, amd);
    moved.summary.insert("params".into(), 101.0.into());
    assert_eq!(verdict(&moved, "params"), Verdict::Regression);
    let (text, code) = render(&compare(&baseline, &[other]));
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("2 speed figure(s) not compared (another CPU class)"), "{text}");
}
