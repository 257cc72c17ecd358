//! The binary end to end on tiny suites: report files, reuse, determinism, falling loss, and the
//! errors a user sees.
mod common;
use common::*;

#[test]
fn run_writes_report_reuses_finished_runs_and_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let suite = write_suite(dir.path(), "tiny.toml", TINY);
    let out = harness(dir.path(), &["run", suite.to_str().unwrap(), "-q"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // One row per run in every table format.
    let reports: Vec<_> = std::fs::read_dir(dir.path().join("reports/tiny")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(reports.len(), 1);
    let rep = &reports[0];
    for f in ["README.md", "runs.parquet", "runs.csv", "summary.csv", "eval_loss.png", "eval_loss.svg", "train_loss.png"] {
        assert!(rep.join(f).exists(), "missing {f}");
    }
    let csv = std::fs::read_to_string(rep.join("runs.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 2, "{csv}");
    let md = std::fs::read_to_string(rep.join("README.md")).unwrap();
    assert!(md.contains("**Data: synthetic.**") && md.contains("![eval_loss](eval_loss.png)"));

    // Every run finished, every file hashed; the loss fell from step 0.
    let first = manifest(&dir.path().join("results"), "tiny");
    assert_eq!(first.len(), 2);
    for m in &first {
        assert_eq!(m["status"], "finished");
        let files = m["files"].as_object().unwrap();
        for f in ["config.json", "summary.json", "model.safetensors", "tokenizer.json", "metrics_eval.json"] {
            assert_eq!(files[f].as_str().unwrap().len(), 64, "{f}");
        }
        let evals = eval_losses(&run_dir(&dir.path().join("results"), "tiny", m));
        let ((step0, start), (_, end)) = (evals[0], *evals.last().unwrap());
        assert_eq!(step0, 0);
        assert!(end < start - 0.5, "eval loss {start} -> {end} did not fall");
    }

    // A second invocation reuses both runs and writes a new report version beside the first.
    let again = harness(dir.path(), &["run", suite.to_str().unwrap(), "-q"]);
    assert!(again.status.success());
    assert_eq!(stderr(&again).matches("finished earlier, reused").count(), 2, "{}", stderr(&again));
    assert_eq!(std::fs::read_dir(dir.path().join("reports/tiny")).unwrap().count(), 2);

    // Same seed, fresh results folder: the same checkpoint bytes.
    let other = harness(dir.path(), &["run", suite.to_str().unwrap(), "-q", "--results", "results2"]);
    assert!(other.status.success());
    let second = manifest(&dir.path().join("results2"), "tiny");
    for (a, b) in first.iter().zip(&second) {
        assert_eq!(a["files"]["model.safetensors"], b["files"]["model.safetensors"], "same seed, same weights");
    }
    // A different seed gives different weights.
    let seeded = harness(dir.path(), &["run", suite.to_str().unwrap(), "-q", "--results", "results3", "--set", "seed=5"]);
    assert!(seeded.status.success());
    let third = manifest(&dir.path().join("results3"), "tiny");
    assert_ne!(first[0]["files"]["model.safetensors"], third[0]["files"]["model.safetensors"]);
}

#[test]
fn tampered_run_is_redone() {
    let dir = tempfile::tempdir().unwrap();
    let suite = write_suite(dir.path(), "tiny.toml", &tiny_mixer_only());
    assert!(harness(dir.path(), &["run", suite.to_str().unwrap(), "-q"]).status.success());
    let m = &manifest(&dir.path().join("results"), "tiny")[0];
    let run = run_dir(&dir.path().join("results"), "tiny", m);
    std::fs::write(run.join("summary.json"), "{}").unwrap();
    let out = harness(dir.path(), &["run", suite.to_str().unwrap(), "-q"]);
    assert!(out.status.success());
    assert!(stderr(&out).contains(": running"), "{}", stderr(&out));
    assert_ne!(std::fs::read_to_string(run.join("summary.json")).unwrap(), "{}");
}

#[test]
fn plan_lists_runs_with_exact_parameter_counts() {
    let dir = tempfile::tempdir().unwrap();
    let suite = write_suite(dir.path(), "tiny.toml", TINY);
    let out = harness(dir.path(), &["plan", suite.to_str().unwrap(), "--set", "data.n_ctx=32"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    // mixer: 2Vd + 8d²+9d + L²+L = 9600 + 2048 + 144 + 1056; llama: 2Vd + 16d²+2d + d = 9600 + 4096 + 32 + 16
    assert!(text.contains(" 12848 "), "{text}");
    assert!(text.contains(" 13744 "), "{text}");
    assert!(text.contains("n_ctx=32") && text.contains("pending"), "{text}");
}

#[test]
fn plan_estimates_a_folder_of_suites_and_slurm_takes_its_time_limits_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("suites");
    std::fs::create_dir(&folder).unwrap();
    write_suite(&folder, "a.toml", TINY);
    write_suite(&folder, "b.toml", &TINY.replace("name = \"tiny\"", "name = \"tiny-b\""));
    let out = harness(dir.path(), &["plan", folder.to_str().unwrap(), "--estimate", "--card", "V100"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("estimate on NVIDIA V100") && text.contains("suite tiny (") && text.contains("suite tiny-b ("), "{text}");
    // The two suites are one configuration under two names: their runs are the same two run ids.
    assert!(text.contains("whole: 2 suites, 4 runs, 2 distinct"), "{text}");
    let e = stderr(&harness(dir.path(), &["plan", folder.to_str().unwrap(), "--estimate", "--card", "tpu"]));
    assert!(e.contains("--card tpu: unknown card; give one of h100"), "{e}");
    let e = stderr(&harness(dir.path(), &["plan", folder.join("a.toml").to_str().unwrap(), "--card", "v100"]));
    assert!(e.contains("give it with --estimate"), "{e}");
    // Without --time, each level's limit comes from the estimate (twice it, and 30 minutes).
    let out = harness(dir.path(), &["plan", folder.join("a.toml").to_str().unwrap(), "--emit", "slurm", "--out", "sl", "--card", "v100"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let script = std::fs::read_to_string(dir.path().join("sl/level0.sbatch")).unwrap();
    assert!(script.contains("#SBATCH --time=0-00:3") && script.contains("by `harness plan --estimate`"), "{script}");
    // The folder as one submission: tiny-b's runs are tiny's, so tiny-b gets no array at all.
    write_suite(&folder, "c.toml", &TINY.replace("name = \"tiny\"", "name = \"tiny-c\"").replace("seeds = [0]", "seeds = [0, 1]"));
    let out = harness(dir.path(), &["plan", folder.to_str().unwrap(), "--emit", "slurm", "--out", "all", "--time", "1:00:00"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(said.lines().filter(|l| l.starts_with("array ")).count(), 2, "tiny and tiny-c's seed 1: {said}");
    assert!(!dir.path().join("all/tiny-b/level0.sbatch").exists());
    let runs_c = std::fs::read_to_string(dir.path().join("all/tiny-c/runs-0.txt")).unwrap();
    let runs_a = std::fs::read_to_string(dir.path().join("all/tiny/runs-0.txt")).unwrap();
    assert!(runs_c.lines().count() == 2 && runs_c.lines().all(|id| !runs_a.contains(id)), "{runs_a}\n{runs_c}");
    let submit = std::fs::read_to_string(dir.path().join("all/submit.sh")).unwrap();
    assert!(submit.contains("tiny/level0.sbatch") && submit.contains("tiny-c/level0.sbatch") && !submit.contains("tiny-b/"), "{submit}");
    let c_script = std::fs::read_to_string(dir.path().join("all/tiny-c/level0.sbatch")).unwrap();
    assert!(c_script.contains("c.toml") && c_script.contains("--only \"$run\""), "{c_script}");
}

/// `harness run FOLDER` runs every suite in it, and a configuration two suites share is computed
/// once: the second suite adopts the first one's finished folder (hard links), never retrains it.
#[test]
fn a_folder_of_suites_runs_each_shared_run_once() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("suites");
    std::fs::create_dir(&folder).unwrap();
    write_suite(&folder, "a.toml", TINY);
    // The same two runs, and one of its own (another seed).
    write_suite(&folder, "b.toml", &TINY.replace("name = \"tiny\"", "name = \"tiny-b\"").replace("seeds = [0]", "seeds = [0, 1]"));
    let out = harness(dir.path(), &["run", folder.to_str().unwrap(), "--results", "r", "--reports", "rep"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(err.matches("finished for suite `tiny`, adopted").count(), 2, "{err}");
    assert_eq!(err.matches(": running").count(), 4, "2 runs of tiny, then tiny-b's seed-1 runs only: {err}");
    for m in manifest(&dir.path().join("r"), "tiny") {
        let (a, b) = (run_dir(&dir.path().join("r"), "tiny", &m), run_dir(&dir.path().join("r"), "tiny-b", &m));
        assert_eq!(std::fs::read(a.join("summary.json")).unwrap(), std::fs::read(b.join("summary.json")).unwrap());
        use std::os::unix::fs::MetadataExt as _;
        assert_eq!(std::fs::metadata(a.join("summary.json")).unwrap().ino(), std::fs::metadata(b.join("summary.json")).unwrap().ino(), "hard-linked");
    }
    let reports = String::from_utf8_lossy(&out.stdout);
    assert_eq!(reports.matches("report: ").count(), 2, "{reports}");
    // Both suites' checks see every run finished: the adopted folders verify as their own.
    let again = harness(dir.path(), &["run", folder.to_str().unwrap(), "--results", "r", "--reports", "rep", "--no-report"]);
    let err = stderr(&again);
    assert!(again.status.success() && err.matches("finished earlier, reused").count() == 6, "{err}");
    // --only names the runs of one suite.
    let e = stderr(&harness(dir.path(), &["run", folder.to_str().unwrap(), "--only", "clm"]));
    assert!(e.contains("--only names runs of one suite") && e.contains("is a folder of suites"), "{e}");
}

#[test]
fn bad_input_gives_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = harness(dir.path(), &["run", "nope.toml"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("nope.toml: cannot read"), "{}", stderr(&out));

    let bad = write_suite(dir.path(), "bad.toml", &TINY.replace("n_ctx = 24", "n_ctx = 0"));
    let out = harness(dir.path(), &["plan", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(e.contains("bad.toml:10: key `data.n_ctx`: must be at least 2"), "{e}");

    let missing = write_suite(
        dir.path(),
        "missing.toml",
        &TINY.replace("source = \"embedded\"", "source = \"text\"\npath = \"no/such/file.txt\""),
    );
    let out = harness(dir.path(), &["run", missing.to_str().unwrap(), "-q"]);
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(e.contains("2 of 2 runs failed"), "{e}");
    let m = &manifest(&dir.path().join("results"), "tiny")[0];
    assert_eq!(m["status"], "failed");
    assert!(m["error"].as_str().unwrap().contains("no/such/file.txt: cannot read"), "{m}");
}

#[test]
fn cuda_is_never_a_silent_fallback() {
    let dir = tempfile::tempdir().unwrap();
    if tch::Cuda::is_available() {
        // With a GPU the other half holds: CUDA is found and required CUDA is satisfied.
        let out = harness(dir.path(), &["doctor", "--require-cuda"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let doc = harness(dir.path(), &["doctor", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&doc.stdout).unwrap();
        assert_eq!(v["cuda_available"], true, "{v}");
        return;
    }
    let suite = write_suite(dir.path(), "tiny.toml", TINY);
    let out = harness(dir.path(), &["run", suite.to_str().unwrap(), "--set", "device=\"cuda\""]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("asks for device = \"cuda\""), "{}", stderr(&out));
    assert!(!dir.path().join("results").exists(), "nothing ran");
    let out = harness(dir.path(), &["doctor", "--require-cuda"]);
    assert!(!out.status.success());
    let doc = harness(dir.path(), &["doctor", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&doc.stdout).unwrap();
    assert_eq!(v["libtorch_version"].as_str().unwrap().split('+').next().unwrap(), "2.11.0");
    assert_eq!(v["libtorch_cuda_linked"], true, "libtorch_cuda must be NEEDED so CUDA works on GPU machines");
}

#[test]
fn trains_on_real_tinystories_text() {
    let Some(data) = shared_data() else {
        eprintln!("skipped: ../shared/data is not beside this checkout");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let text = TINY
        .replace(
            "source = \"embedded\"\nn_stories = 150",
            &format!(
                "source = \"text\"\npath = \"{}\"\neval_path = \"{}\"\nn_stories = 300\neval_stories = 40",
                data.join("tinystories/train-head-2MiB.txt").display(),
                data.join("tinystories/validation-first1000.txt").display()
            ),
        )
        .replace("vocab_size = 300", "vocab_size = 512");
    let suite = write_suite(dir.path(), "real.toml", &text);
    let out = harness(dir.path(), &["run", suite.to_str().unwrap(), "-q", "--set", "model={kind=\"masked_mixer\", d_model=16, n_layers=1}"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let m = &manifest(&dir.path().join("results"), "tiny")[0];
    let inputs = m["inputs"].as_object().unwrap();
    let train_key = inputs.keys().find(|k| k.ends_with("train-head-2MiB.txt")).expect("data file hashed");
    // The checksum published in ../shared/data/SHA256SUMS.
    let sums = std::fs::read_to_string(data.join("SHA256SUMS")).unwrap();
    let want = sums.lines().find(|l| l.ends_with("tinystories/train-head-2MiB.txt")).unwrap().split_whitespace().next().unwrap();
    assert_eq!(inputs[train_key], want);
    let rep = std::fs::read_dir(dir.path().join("reports/tiny")).unwrap().next().unwrap().unwrap().path();
    assert!(std::fs::read_to_string(rep.join("runs.csv")).unwrap().contains(",real,"));
    assert!(m["execution"]["tokens_train"].as_str().unwrap().starts_with("tokenized in"), "{m}");
    // Where the training rows are read from: the shard, a batch at a time, by the loader thread.
    let rows = m["execution"]["training_rows"].as_str().unwrap();
    assert!(rows.starts_with("300 rows of 24 (one row a document) read from the token shard") && rows.contains("loader thread"), "{m}");
    assert!(m["execution"]["peak_rss"].as_str().unwrap().ends_with("earlier runs of the same process included)"), "{m}");

    // `harness data encode` streams a file into the shard a run would write: the same key.
    let run = run_dir(&dir.path().join("results"), "tiny", m);
    let valid = data.join("tinystories/validation-first1000.txt");
    let tok = run.join("tokenizer.json");
    let args = ["data", "encode", "--input", valid.to_str().unwrap(), "--tokenizer", tok.to_str().unwrap(), "--limit", "40", "--out", "pre"];
    let enc = harness(dir.path(), &args);
    assert!(enc.status.success(), "{}", stderr(&enc));
    let printed = String::from_utf8_lossy(&enc.stdout).to_string();
    let eval_key = m["execution"]["tokens_eval"].as_str().unwrap().rsplit("key ").next().unwrap().to_string();
    assert!(printed.contains("40 documents -> 11372 tokens") && printed.contains(&format!("key {eval_key}")) && printed.contains("peak RSS"), "{printed}\n{m}");
    let missing = harness(dir.path(), &["data", "encode", "--input", valid.to_str().unwrap(), "--tokenizer", "nope.json", "--out", "pre"]);
    assert!(!missing.status.success() && stderr(&missing).contains("--tokenizer nope.json"), "{}", stderr(&missing));

    // Rerunning the finished run (--force) reads the token shards from the cache.
    let again = harness(dir.path(), &["run", suite.to_str().unwrap(), "-q", "--force", "--set", "model={kind=\"masked_mixer\", d_model=16, n_layers=1}"]);
    assert!(again.status.success(), "{}", stderr(&again));
    let m = &manifest(&dir.path().join("results"), "tiny")[0];
    for split in ["tokens_train", "tokens_eval"] {
        assert!(m["execution"][split].as_str().unwrap().starts_with("cache hit"), "{m}");
    }
}

#[test]
fn jsonl_source_with_window_packing() {
    let dir = tempfile::tempdir().unwrap();
    let docs: Vec<String> = harness::data::embedded::generate(120, 3)
        .into_iter()
        .map(|r| serde_json::json!({ "content": r.story, "id": 1 }).to_string())
        .collect();
    std::fs::write(dir.path().join("docs.jsonl"), docs.join("\n")).unwrap();
    let text = TINY
        .replace("source = \"embedded\"\nn_stories = 150", "source = \"jsonl\"\npath = \"docs.jsonl\"\ntext_column = \"content\"\npacking = \"windows\"")
        .replace("n_ctx = 24", "n_ctx = 16");
    let suite = write_suite(dir.path(), "jl.toml", &text);
    let out = harness(dir.path(), &["run", suite.to_str().unwrap(), "-q", "--set", "model={kind=\"llama\", d_model=16, n_layers=1, n_heads=2}"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let m = &manifest(&dir.path().join("results"), "tiny")[0];
    assert!(m["inputs"].as_object().unwrap().keys().any(|k| k.ends_with("docs.jsonl")));
    let bad = write_suite(dir.path(), "bad.toml", &text.replace("text_column = \"content\"", "text_column = \"body\""));
    let out = harness(dir.path(), &["run", bad.to_str().unwrap(), "-q", "--results", "r2"]);
    assert!(!out.status.success());
    let m = &manifest(&dir.path().join("r2"), "tiny")[0];
    let e = m["error"].as_str().unwrap();
    assert!(e.contains("docs.jsonl: no column `body`") && e.contains("content"), "{e}");
}

#[test]
fn every_architecture_trains_a_few_steps() {
    let dir = tempfile::tempdir().unwrap();
    let models = r#"model = [
  { kind = "masked_mixer", d_model = 16, n_layers = 1 },
  { kind = "masked_mixer", d_model = 16, n_layers = 1, expansion = 2 },
  { kind = "masked_mixer", d_model = 16, n_layers = 1, kernel = 4 },
  { kind = "masked_mixer", d_model = 16, n_layers = 1, parallel = 2 },
  { kind = "masked_mixer", d_model = 16, n_layers = 1, heads = 2 },
  { kind = "masked_mixer", d_model = 16, n_layers = 1, bidirectional = true },
  { kind = "masked_mixer", d_model = 16, n_layers = 1, layer_norm = false, embed_linear = true, mask_grad = "reference" },
  { kind = "llama", d_model = 16, n_layers = 1, n_heads = 2 },
  { kind = "llama", d_model = 16, n_layers = 1, n_heads = 2, bidirectional = true },
  { kind = "transfixer", d_model = 16, n_layers = 1, n_heads = 2 },
  { kind = "gpt", d_model = 16, n_layers = 1, n_heads = 2 },
  { kind = "mixer_autoencoder", d_model = 16, encoder_layers = 1, decoder_layers = 1 },
  { kind = "llama_autoencoder", d_model = 16, encoder_layers = 1, decoder_layers = 1, n_heads = 2, completion = true },
]"#;
    let start = TINY.find("model = [").unwrap();
    let text = format!("{}{models}\n", &TINY[..start]).replace("steps = 30", "steps = 4").replace("eval_every = 10", "eval_every = 2");
    let suite = write_suite(dir.path(), "zoo.toml", &text);
    let plan = harness(dir.path(), &["plan", suite.to_str().unwrap()]);
    assert!(plan.status.success(), "{}", stderr(&plan));
    assert_eq!(String::from_utf8_lossy(&plan.stdout).matches("pending").count(), 13);
    let out = harness(dir.path(), &["run", suite.to_str().unwrap(), "-q"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ms = manifest(&dir.path().join("results"), "tiny");
    assert_eq!(ms.len(), 13);
    assert!(ms.iter().any(|m| m["execution"]["mask_grad"] == "reference"));
    for m in &ms {
        assert_eq!(m["status"], "finished", "{m}");
        // Each one learns: the held-out loss after the last step is below the one before the first.
        let evals = eval_losses(&run_dir(&dir.path().join("results"), "tiny", m));
        let (first, last) = (evals.first().unwrap(), evals.last().unwrap());
        assert!(first.0 == 0 && last.1 < first.1, "{}: eval loss did not fall: {evals:?}", m["run_id"]);
    }
    // Generation, both ways or neither: where the incremental decoder runs, the full recompute
    // gives the same tokens; where a kind has none, `--recompute` is refused as well (a full
    // forward of a model that sees both sides is no left-to-right continuation).
    let mut decoded = 0;
    for m in &ms {
        let folder = run_dir(&dir.path().join("results"), "tiny", m);
        let config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(folder.join("config.json")).unwrap()).unwrap();
        let run = folder.display().to_string();
        let model = config["model"].to_string();
        let args = |recompute: bool| {
            let mut a = vec!["generate", run.as_str(), "--prompt", "Tom had a", "--max-new-tokens", "6", "--ignore-eos", "--json"];
            if recompute {
                a.push("--recompute");
            }
            harness(dir.path(), &a)
        };
        let (inc, full) = (args(false), args(true));
        assert_eq!(inc.status.success(), full.status.success(), "{model}: {} / {}", stderr(&inc), stderr(&full));
        if inc.status.success() {
            decoded += 1;
            let ids = |o: &std::process::Output| -> serde_json::Value { serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["new_ids"].clone() };
            assert_eq!(ids(&inc), ids(&full), "{model}: incremental and full recompute differ");
        } else {
            let e = stderr(&full);
            assert!(e.contains("--recompute") && !e.contains("panicked"), "{model}: {e}");
        }
    }
    assert!(decoded >= 3, "the causal mixer, Llama and GPT decode: {decoded}");
}

#[test]
fn init_from_continues_a_checkpoint_and_lists_bad_keys() {
    let dir = tempfile::tempdir().unwrap();
    let suite = write_suite(dir.path(), "tiny.toml", &tiny_mixer_only());
    assert!(harness(dir.path(), &["run", suite.to_str().unwrap(), "-q"]).status.success());
    let m = &manifest(&dir.path().join("results"), "tiny")[0];
    let first_run = run_dir(&dir.path().join("results"), "tiny", m);
    let ckpt = first_run.join("model.safetensors");
    let first = eval_losses(&first_run);
    let set = format!("init_from=\"{}\"", ckpt.display());
    let out = harness(dir.path(), &["run", suite.to_str().unwrap(), "-q", "--results", "r2", "--set", &set]);
    assert!(out.status.success(), "{}", stderr(&out));
    let m2 = &manifest(&dir.path().join("r2"), "tiny")[0];
    // The checkpoint is a local input file: listed with its hash, and re-verified before reuse.
    let key = ckpt.display().to_string();
    assert_eq!(m2["inputs"][&key], m["files"]["model.safetensors"]);
    assert_eq!(m2["input_files"][&key], m["files"]["model.safetensors"]);
    let second = eval_losses(&run_dir(&dir.path().join("r2"), "tiny", m2));
    // Step 0 of the continued run is where the first run ended.
    let (end1, start2) = (first.last().unwrap().1, second[0].1);
    assert!((end1 - start2).abs() < 1e-4, "{end1} vs {start2}");
    // A checkpoint of another shape: the run fails and names the mismatched keys.
    let out = harness(dir.path(), &["run", suite.to_str().unwrap(), "-q", "--results", "r3", "--set", &set, "--set", "model.d_model=8"]);
    assert!(!out.status.success());
    let e = manifest(&dir.path().join("r3"), "tiny")[0]["error"].as_str().unwrap().to_string();
    assert!(e.contains("init_from") && e.contains("wte.weight: file [300, 16] vs model [300, 8]"), "{e}");
}

#[test]
fn bf16_mixed_precision_trains_and_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let suite = write_suite(dir.path(), "tiny.toml", TINY);
    let args = ["run", suite.to_str().unwrap(), "-q", "--set", "train.precision=\"bf16\""];
    // The verdict is the harness's own (its probe, in its process), read from what it wrote: a
    // probe in this test process, timed while other cases run, could disagree with it.
    // On a CPU without bf16 matrix hardware (AMX, AVX512_BF16) the run is refused before any
    // work, with the probe's figures and the fix; the override runs it, with a warning.
    let mut out = harness(dir.path(), &args);
    let refused = !out.status.success();
    if refused {
        let err = stderr(&out);
        assert!(err.contains("train.precision") && err.contains("NOT accelerated") && err.contains("HARNESS_ALLOW_SLOW_BF16=1"), "{err}");
        assert!(!dir.path().join("results").exists() || manifest(&dir.path().join("results"), "tiny").is_empty());
        out = harness_env(dir.path(), &args, &[("HARNESS_ALLOW_SLOW_BF16", "1")]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let runs = manifest(&dir.path().join("results"), "tiny");
    assert!(!runs.is_empty());
    for m in runs {
        assert_eq!(m["execution"]["precision"], "bf16");
        let probe = m["execution"]["bf16_matmul"].as_str().unwrap();
        let accelerated = probe.starts_with("accelerated");
        assert!(accelerated || probe.starts_with("NOT accelerated"), "{probe}");
        // A run that went ahead without the override had an accelerated probe; one that went
        // ahead slowly says so on stderr.
        assert!(refused || accelerated, "{probe}");
        assert_eq!(stderr(&out).contains("slow path"), !accelerated, "{probe}\n{}", stderr(&out));
        let evals = eval_losses(&run_dir(&dir.path().join("results"), "tiny", &m));
        let (start, end) = (evals[0].1, evals.last().unwrap().1);
        assert!(end < start - 0.5, "bf16 eval loss {start} -> {end}");
    }
}
