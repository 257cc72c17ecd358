//! Reliability through the binary: concurrent runs on one results folder, changed inputs and
//! edited manifests rerun, a diverging run fails alone and `--only failed` reruns it.
mod common;
use common::*;
use std::process::{Command, Stdio};

#[test]
fn two_processes_on_one_results_folder_share_the_work() {
    let dir = tempfile::tempdir().unwrap();
    let suite = write_suite(dir.path(), "tiny.toml", &TINY.replace("steps = 30", "steps = 150").replace("seeds = [0]", "seeds = [0, 1]"));
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_harness"))
            .current_dir(dir.path())
            .args(["run", suite.to_str().unwrap(), "-q"])
            .env_remove("RUST_BACKTRACE")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let (ea, eb) = (stderr(&a), stderr(&b));
    assert!(a.status.success() && b.status.success(), "{ea}\n---\n{eb}");
    let ran = |e: &str| e.matches(": running").count();
    eprintln!("process A ran {}, process B ran {}\n{ea}\n---\n{eb}", ran(&ea), ran(&eb));
    assert_eq!(ran(&ea) + ran(&eb), 4, "each of the 4 runs computed exactly once");
    let ms = manifest(&dir.path().join("results"), "tiny");
    assert_eq!(ms.len(), 4);
    assert!(ms.iter().all(|m| m["status"] == "finished"));
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("results/tiny"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".lock") || n.ends_with(".building"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_changed_input_or_an_edited_manifest_reruns() {
    let dir = tempfile::tempdir().unwrap();
    let stories: String = (0..60).map(|i| format!("Tom had {i} red balls and a dog named Rex.\n<|endoftext|>\n")).collect();
    std::fs::write(dir.path().join("stories.txt"), &stories).unwrap();
    let text = tiny_mixer_only().replace("source = \"embedded\"", "source = \"text\"\npath = \"stories.txt\"").replace("vocab_size = 300", "vocab_size = 280");
    let suite = write_suite(dir.path(), "tiny.toml", &text);
    let run = |args: &[&str]| {
        let mut all = vec!["run", suite.to_str().unwrap(), "-q"];
        all.extend_from_slice(args);
        let out = harness(dir.path(), &all);
        assert!(out.status.success(), "{}", stderr(&out));
        stderr(&out)
    };
    run(&[]);
    assert!(run(&[]).contains("finished earlier, reused"));
    // The data file changes under the same path: the run is redone, and says why.
    std::fs::write(dir.path().join("stories.txt"), stories.replace("Rex", "Max")).unwrap();
    let e = run(&[]);
    assert!(e.contains("its input(s) stories.txt changed since it finished; rerunning"), "{e}");
    let e = run(&[]);
    assert!(e.contains("finished earlier, reused"), "{e}");
    // An edited manifest is not trusted.
    let m = &manifest(&dir.path().join("results"), "tiny")[0];
    let path = run_dir(&dir.path().join("results"), "tiny", m).join("manifest.json");
    let edited = std::fs::read_to_string(&path).unwrap().replace("\"device\": \"cpu", "\"device\": \"cuda:0 NVIDIA H100");
    std::fs::write(&path, edited).unwrap();
    let e = run(&[]);
    assert!(e.contains("its manifest.json was edited after the run finished; rerunning"), "{e}");
}

#[test]
fn a_diverging_run_fails_alone_and_only_failed_reruns_it() {
    let dir = tempfile::tempdir().unwrap();
    // Two learning rates: 1e30 sends the weights to infinity after one step.
    let text = tiny_mixer_only().replace("[experiment.sweep]", "[experiment.sweep]\n\"train.lr\" = [3e-3, 1e30]");
    let suite = write_suite(dir.path(), "tiny.toml", &text);
    let out = harness(dir.path(), &["run", suite.to_str().unwrap(), "-q"]);
    let e = stderr(&out);
    assert!(!out.status.success(), "{e}");
    assert!(e.contains("1 of 2 runs failed"), "{e}");
    assert!(e.contains("training diverged: the loss is NaN at step") || e.contains("training diverged: the loss is inf at step"), "{e}");
    assert!(e.contains("the last finite loss logged was"), "{e}");
    let ms = manifest(&dir.path().join("results"), "tiny");
    assert_eq!(ms.iter().filter(|m| m["status"] == "finished").count(), 1);
    // --only failed runs that one again (it fails again, the same way), and nothing else.
    let again = harness(dir.path(), &["run", suite.to_str().unwrap(), "-q", "--only", "failed"]);
    let e = stderr(&again);
    assert_eq!(e.matches(": running").count(), 1, "{e}");
    assert!(!e.contains("reused"), "{e}");
    assert!(e.contains("training diverged"), "{e}");
}

/// `train.on_divergence = "record"` (PAPER.md A.2: runs that do not train are the point): the
/// diverging run finishes as diverged, its cell reads "diverged", and the claim that the run
/// which trained is better holds by direction (one seed a side).
#[test]
fn a_recorded_divergence_fills_its_cell_and_decides_the_claim() {
    let dir = tempfile::tempdir().unwrap();
    let text = tiny_mixer_only()
        .replace("eval_every = 10", "eval_every = 10\non_divergence = \"record\"")
        .replace("kind = \"clm\"", "kind = \"clm\"\ncells = { X = [\"trains\", \"diverges\"] }")
        .replace("[experiment.sweep]", "[experiment.sweep]\n\"train.lr\" = [3e-3, 1e30]")
        + "[[table]]\nid = \"X\"\ncaption = \"x\"\nentries = [\"trains\", \"diverges\"]\nmetrics = [\"eval\"]\npaper = { eval = [nan, nan] }\n\
           [[claim]]\ntext = \"the run that trains beats the one that diverges\"\nbetter = \"X trains\"\nthan = \"X diverges\"\nmetric = \"eval\"\n";
    let suite = write_suite(dir.path(), "tiny.toml", &text);
    let out = harness(dir.path(), &["run", suite.to_str().unwrap(), "-q", "--reports", "rep"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ms = manifest(&dir.path().join("results"), "tiny");
    assert!(ms.iter().all(|m| m["status"] == "finished"), "{ms:?}");
    let diverged: Vec<&serde_json::Value> = ms.iter().filter(|m| m["execution"]["diverged"].is_string()).collect();
    assert_eq!(diverged.len(), 1);
    let folder = run_dir(&dir.path().join("results"), "tiny", diverged[0]);
    let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(folder.join("summary.json")).unwrap()).unwrap();
    assert!(summary["diverged_at_step"].as_u64().is_some_and(|s| s >= 1) && summary.get("eval_loss").is_none(), "{summary}");
    let report = std::fs::read_dir(dir.path().join("rep/tiny")).unwrap().next().unwrap().unwrap().path();
    let md = std::fs::read_to_string(report.join("README.md")).unwrap();
    assert!(md.contains("| diverged"), "{md}");
    let claims: Vec<serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(report.join("claims.json")).unwrap()).unwrap();
    assert_eq!(claims[0]["verdict"], "same direction (untested)", "{claims:?}");
}

/// `--only failed` where no run failed is success with nothing to do (as make's "nothing to be
/// done"), so a retry loop ends.
#[test]
fn only_failed_with_no_failure_is_nothing_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let suite = write_suite(dir.path(), "tiny.toml", &tiny_mixer_only());
    let out = harness(dir.path(), &["run", suite.to_str().unwrap(), "-q"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let again = harness(dir.path(), &["run", suite.to_str().unwrap(), "-q", "--only", "failed"]);
    let e = stderr(&again);
    assert!(again.status.success(), "{e}");
    assert!(e.contains("--only failed: no run failed before here") && e.contains("nothing to do"), "{e}");
    assert!(!e.contains(": running"), "{e}");
}

/// A consumer finished on a producer's file is not reused once the producer holds another file:
/// here an embeddings file is replaced under an `embed source = "file"` experiment, its embed
/// run reruns (its input changed), and the retrieval_eval run that read the old embeddings
/// reruns too, naming the producer file, instead of reporting the old top-1.
#[test]
fn a_consumer_reruns_when_its_producer_changed() {
    let dir = tempfile::tempdir().unwrap();
    let write = |seed: i64| {
        tch::manual_seed(seed);
        let q = tch::Tensor::randn([12, 8], (tch::Kind::Float, tch::Device::Cpu));
        let p = &q + tch::Tensor::randn([12, 8], (tch::Kind::Float, tch::Device::Cpu)) * (seed as f64);
        tch::Tensor::write_safetensors(&[("query", &q), ("passage", &p)], dir.path().join("vecs.safetensors")).unwrap();
    };
    write(0);
    let suite = r#"schema = 1
name = "stale"
description = "a consumer of a changed producer"
[defaults]
seeds = [0]
device = "cpu"
[defaults.pairs]
source = "embedded"
n_pairs = 30
test_pairs = 12
[[experiment]]
name = "vecs"
kind = "embed"
embed = { source = "file", file = "vecs.safetensors", label = "outside" }
[[experiment]]
name = "eval"
kind = "retrieval_eval"
from = "vecs"
retrieval_eval = { n = [2, 4, 12] }
"#;
    let path = write_suite(dir.path(), "stale.toml", suite);
    let top1 = || {
        let m = manifest(&dir.path().join("results"), "stale");
        let eval = m.iter().find(|m| m["experiment"] == "eval").unwrap().clone();
        std::fs::read_to_string(run_dir(&dir.path().join("results"), "stale", &eval).join("summary.json")).unwrap()
    };
    let out = harness(dir.path(), &["run", path.to_str().unwrap(), "-q"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let before = top1();
    assert!(before.contains("\"top1@12\": 100.0"), "identical query and passage vectors retrieve perfectly: {before}");
    let out = harness(dir.path(), &["run", path.to_str().unwrap(), "-q"]);
    assert_eq!(stderr(&out).matches("finished earlier, reused").count(), 2, "{}", stderr(&out));
    write(3);
    let out = harness(dir.path(), &["run", path.to_str().unwrap(), "-q"]);
    let e = stderr(&out);
    assert!(out.status.success(), "{e}");
    assert!(e.contains("vecs.safetensors changed since it finished; rerunning"), "{e}");
    assert!(e.contains("/embeddings.safetensors (from its producer) changed since it finished; rerunning"), "{e}");
    assert_ne!(top1(), before, "the consumer must score the new embeddings");
}
