//! The retrieval pipeline through the binary (PAPER.md F): CLM -> embed -> frozen retrieval
//! model and InfoNCE -> embed -> evaluation, plus embeddings from a file standing in for
//! e5-mistral's; `--only` builds missing producers; a failed producer fails its consumers.
mod common;
use common::*;
use std::path::Path;
use tch::{Device, Kind, Tensor};

const PIPELINE: &str = include_str!("fixtures/retrieval.toml");

/// Perfect embeddings (query = passage) for 20 test pairs, as a file computed elsewhere.
fn write_e5(dir: &Path) {
    tch::manual_seed(0);
    let x = Tensor::randn([20, 12], (Kind::Float, Device::Cpu));
    Tensor::write_safetensors(&[("query", &x), ("passage", &x)], dir.join("e5.safetensors")).unwrap();
}

fn summary(results: &Path, m: &serde_json::Value) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run_dir(results, "rt", m).join("summary.json")).unwrap()).unwrap()
}

#[test]
fn the_whole_pipeline_runs_and_reports_t1_shaped_tables() {
    let dir = tempfile::tempdir().unwrap();
    write_e5(dir.path());
    let suite = write_suite(dir.path(), "rt.toml", PIPELINE);
    let out = harness(dir.path(), &["run", suite.to_str().unwrap(), "-q"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let results = dir.path().join("results");
    let ms = manifest(&results, "rt");
    assert_eq!(ms.len(), 2 + 2 + 2 + 2 + 2 + 1 + 5);
    assert!(ms.iter().all(|m| m["status"] == "finished"), "{}", stderr(&out));
    let by = |e: &str| ms.iter().filter(|m| m["experiment"] == e).collect::<Vec<_>>();

    // Embeddings: [pairs, d] per split, hashed in the manifest; consumers record them as inputs.
    for m in by("embed") {
        let f = run_dir(&results, "rt", m).join("embeddings.safetensors");
        let t: std::collections::BTreeMap<String, Tensor> = Tensor::read_safetensors(&f).unwrap().into_iter().collect();
        assert_eq!(t["train_query"].size(), vec![40, 16]);
        assert_eq!(t["test_passage"].size(), vec![20, 16]);
        assert_eq!(m["files"]["embeddings.safetensors"].as_str().unwrap().len(), 64);
    }
    for m in by("eval") {
        let inputs = m["inputs"].as_object().unwrap();
        assert!(inputs.keys().any(|k| k.ends_with("/embeddings.safetensors")), "{inputs:?}");
    }
    // The file's perfect embeddings score 100 at every n that fits the 20-pair pool.
    let e5 = by("eval").into_iter().map(|m| summary(&results, m)).find(|s| s["data"] == "file").unwrap();
    assert_eq!((e5["top1@2"].as_f64(), e5["top1@4"].as_f64(), e5["top1@8"].as_f64()), (Some(100.0), Some(100.0), Some(100.0)));
    assert_eq!(e5["skipped_n"], serde_json::json!([64]), "n = 64 exceeds the pool");
    // Frozen retrieval: chance CE for n = 4 is ln 3.
    for m in by("frozen") {
        let s = summary(&results, m);
        assert!((s["chance_ce"].as_f64().unwrap() - 3f64.ln()).abs() < 1e-12);
        assert!(s["test_ce"].as_f64().unwrap().is_finite());
    }
    // InfoNCE starts from the CLM weights and writes a model that embed reads.
    for m in by("infonce") {
        let s = summary(&results, m);
        assert_eq!(s["start"], "clm");
        assert!(m["inputs"].as_object().unwrap().keys().any(|k| k.ends_with("/model.safetensors")));
    }

    let reports: Vec<_> = std::fs::read_dir(dir.path().join("reports/rt")).unwrap().map(|e| e.unwrap().path()).collect();
    let md = std::fs::read_to_string(reports[0].join("README.md")).unwrap();
    assert!(md.contains("## Retrieval: top-1 accuracy (%) by n (PAPER.md T1 layout)"), "{md}");
    // n = 64 exceeds every pool: no column.
    assert!(md.contains("| e5 | e5-test | 1 | 100.0 | 100.0 (paper 100.0, Δ +0.0: no band stated) | 100.0 |\n"), "{md}");
    assert!(md.contains("### Claim: mixer embeddings retrieve better than transformer embeddings"), "{md}");
    for f in ["retrieval.csv", "retrieval.parquet", "claims.csv", "retrieval_top1.png", "retrieval_top1.svg"] {
        assert!(reports[0].join(f).exists(), "missing {f}");
    }
    let claims: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(reports[0].join("claims.json")).unwrap()).unwrap();
    // Top-1 (T1's claim) and frozen-retrieval CE (T11 and T14's), each in its own table.
    let rows = |f: &str| std::fs::read_to_string(reports[0].join(f)).unwrap().lines().count() - 1;
    let (top1, frozen_ce) = (rows("claims.csv"), rows("claims_frozen.csv"));
    assert!(top1 > 0 && frozen_ce == 1 && claims.as_array().unwrap().len() == top1 + frozen_ce, "claims.json {claims} vs {top1} + {frozen_ce} rows");
    let metric = |c: &serde_json::Value| c["metric"].as_str().unwrap().to_string();
    assert!(claims.as_array().unwrap().iter().all(|c| c["section"] == "retrieval" && (metric(c).starts_with("top-1 at n = ") || metric(c) == "test CE (best epoch) at n = 4")));
    assert!(md.contains("### Claim: mixer embeddings give a lower frozen-retrieval CE than transformer embeddings"), "{md}");
    // T1's mixer against e5: embeddings from a file scored in the mixer's experiment.
    assert!(claims.as_array().unwrap().iter().any(|c| c["than"] == "e5-test" && c["better"].as_str().unwrap().starts_with("masked_mixer")), "{claims}");
    let csv = std::fs::read_to_string(reports[0].join("retrieval.csv")).unwrap();
    assert!(csv.starts_with("embeddings,model,n,seeds,top1_mean,top1_sd,paper,diff,match\n"), "{csv}");
    // The frozen retrieval runs: T14's layout, train and test CE by n, each seed's numbers in the csv.
    assert!(md.contains("## Frozen-embedding retrieval: train and test CE by n (PAPER.md T14 layout)"), "{md}");
    assert!(md.contains("| embeddings | model | n | seeds | train CE, final epoch | test CE, final epoch | test CE, best epoch |"), "{md}");
    let frozen = std::fs::read_to_string(reports[0].join("retrieval_frozen.csv")).unwrap();
    assert!(frozen.starts_with("embeddings,model,n,seeds,train_ce_final_mean,train_ce_final_sd,paper_train,match_train,test_ce_final_mean,"), "{frozen}");
    let record = frozen.lines().nth(1).expect("a frozen row");
    let train_mean: f64 = record.split(',').nth(4).unwrap().parse().expect("a train CE");
    assert!(train_mean.is_finite() && train_mean > 0.0, "{frozen}");

    // With the suite's bands stated, each paper cell of T1's and T14's layouts gets its verdict
    // (a paper value or a band changes no run id: the report alone is rebuilt).
    let banded = PIPELINE.replace(
        "[experiment.retrieval_frozen]\nn = 4",
        "paper = { masked_mixer = { \"4\" = 0.0, \"4 train\" = 0.0 } }\n[experiment.retrieval_frozen]\nn = 4",
    ) + "\n[tolerance]\ntop1 = { abs = 0.5, seed_sd = 1.0, why = \"this test's: a file's perfect embeddings\" }\nce = { abs = 0.05, why = \"this test's band\" }\n";
    write_suite(dir.path(), "rt.toml", &banded);
    let out = harness(dir.path(), &["report", suite.to_str().unwrap(), "--reports", "banded"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rep = std::fs::read_dir(dir.path().join("banded/rt")).unwrap().next().unwrap().unwrap().path();
    let md = std::fs::read_to_string(rep.join("README.md")).unwrap();
    assert!(md.contains("| e5 | e5-test | 1 | 100.0 | 100.0 (paper 100.0, Δ +0.0: matches) | 100.0 |\n"), "{md}");
    let cells: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(rep.join("cells.json")).unwrap()).unwrap();
    let cells = cells.as_array().unwrap();
    let e5 = cells.iter().find(|c| c["table"] == "eval" && c["metric"] == "top-1 at n = 4").expect("the e5 cell");
    assert_eq!((e5["verdict"].as_str(), e5["paper"].as_f64(), e5["band"].as_f64()), (Some("matches"), Some(100.0), Some(0.5)), "{e5}");
    // The mixer's frozen CE (test at its best epoch, and train) against a paper value of 0.
    for metric in ["test CE at n = 4", "train CE at n = 4"] {
        let c = cells.iter().find(|c| c["table"] == "frozen" && c["metric"] == metric).unwrap_or_else(|| panic!("{metric}: {cells:?}"));
        assert!(c["entry"].as_str().unwrap().starts_with("masked_mixer") && c["verdict"].as_str().unwrap().starts_with("differs by +"), "{c}");
    }
    assert!(md.contains("**Paper cells: 1 of 3 match**"), "{md}");
    let csv = std::fs::read_to_string(rep.join("retrieval_frozen.csv")).unwrap();
    assert!(csv.lines().next().unwrap().contains(",match_train,") && csv.contains(",differs by +"), "{csv}");

    // Same seeds, fresh results folder, another process: the same numbers (CPU), end to end.
    let again = harness(dir.path(), &["run", suite.to_str().unwrap(), "-q", "--results", "results2"]);
    assert!(again.status.success(), "{}", stderr(&again));
    let second = manifest(&dir.path().join("results2"), "rt");
    for (a, b) in ms.iter().zip(&second) {
        assert_eq!(a["run_id"], b["run_id"]);
        // Every number but the timings.
        let stable = |mut s: serde_json::Value| {
            s.as_object_mut().unwrap().retain(|k, _| !k.ends_with("_s") && !k.contains("per_s"));
            s
        };
        assert_eq!(stable(summary(&results, a)), stable(summary(&dir.path().join("results2"), b)), "{}", a["experiment"]);
        for f in ["embeddings.safetensors", "model.safetensors", "retrieval_eval.json", "metrics_epochs.json"] {
            assert_eq!(a["files"][f], b["files"][f], "{}: {f}", a["experiment"]);
        }
    }

    // Plan shows each consumer's producer.
    let plan = harness(dir.path(), &["plan", suite.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&plan.stdout);
    let frozen = text.lines().find(|l| l.contains(" frozen ")).unwrap();
    let embed_ids: Vec<String> = by("embed").iter().map(|m| m["run_id"].as_str().unwrap()[..12].to_string()).collect();
    assert!(embed_ids.iter().any(|id| frozen.contains(id.as_str())), "{frozen}");
}

#[test]
fn only_builds_the_producers_it_needs_and_a_failed_producer_fails_its_consumers() {
    let dir = tempfile::tempdir().unwrap();
    let suite = write_suite(dir.path(), "rt.toml", PIPELINE);
    // No e5.safetensors: the file producer fails, and so, without work, does its consumer.
    let out = harness(dir.path(), &["run", suite.to_str().unwrap(), "-q", "--only", "eval"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.matches(": running").count(), 2 + 2 + 2 + 2 + 1 + 4, "{err}");
    assert!(!err.contains(" frozen "), "frozen is not needed by eval: {err}");
    assert!(err.contains("SKIPPED: its producer") && err.contains("(e5) did not finish"), "{err}");
    assert!(err.contains("2 of 14 runs failed"), "the file producer and its consumer: {err}");
    let ms = manifest(&dir.path().join("results"), "rt");
    let e5 = ms.iter().find(|m| m["experiment"] == "e5").unwrap();
    assert!(e5["error"].as_str().unwrap().contains("embed.file: reading e5.safetensors"), "{e5}");

    // With the file in place, a rerun reuses every finished producer and builds the rest.
    write_e5(dir.path());
    let again = harness(dir.path(), &["run", suite.to_str().unwrap(), "-q", "--only", "eval"]);
    assert!(again.status.success(), "{}", stderr(&again));
    let err = stderr(&again);
    assert_eq!(err.matches("finished earlier, reused").count(), 12, "{err}");
    assert_eq!(err.matches(": running").count(), 2, "{err}");
}

/// T13's claim: the paper's ordering of one model's embeddings by the corpus it was pretrained
/// on, tested pair by pair (the paper suite's ci profile: three pretraining corpora, 3 seeds).
#[test]
fn the_pretraining_corpora_are_claimed_in_the_papers_order() {
    let dir = tempfile::tempdir().unwrap();
    let suite = Path::new(env!("CARGO_MANIFEST_DIR")).join("../suites/paper/retrieval_pretraining_data.toml");
    let out = harness(dir.path(), &["run", suite.to_str().unwrap(), "--profile", "ci", "-q"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rep = std::fs::read_dir(dir.path().join("reports/retrieval-pretraining-data")).unwrap().next().unwrap().unwrap().path();
    let md = std::fs::read_to_string(rep.join("README.md")).unwrap();
    assert!(md.contains("### Claim: the paper's ordering of one model's embeddings by their source"), "{md}");
    let order = std::fs::read_to_string(rep.join("claims_order.csv")).unwrap();
    assert_eq!(order.lines().count(), 1 + 3, "three pairs of corpora at n = 32: {order}");
    let claims: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(rep.join("claims.json")).unwrap()).unwrap();
    let pairs: Vec<(String, String)> = claims
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["claim"].as_str().is_some_and(|t| t.contains("retrieve better than via")))
        .map(|c| (c["better"].as_str().unwrap().to_string(), c["than"].as_str().unwrap().to_string()))
        .collect();
    let first = |s: &str| s.split(" → ").next().unwrap().to_string();
    let mut got: Vec<(String, String)> = pairs.iter().map(|(b, t)| (first(b), first(t))).collect();
    got.sort();
    let want = [("clm_finemath", "clm_fineweb_1ep"), ("clm_finemath", "clm_fineweb_2ep"), ("clm_fineweb_2ep", "clm_fineweb_1ep")];
    assert_eq!(got, want.map(|(a, b)| (a.to_string(), b.to_string())).to_vec(), "{claims}");
}
