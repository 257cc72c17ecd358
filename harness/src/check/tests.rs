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
