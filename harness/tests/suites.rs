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
