//! ci/gpu-check.sh and ci/gpu-summary.py, without a GPU: the script's phases expand (every
//! suite, profile and `--set` it will run on the card is read by this harness), and the summary
//! reads the goals and the losses off what the harness writes. A GPU lease is 15 minutes; a typo
//! found there costs most of it.
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn every_phase_of_the_gpu_check_expands() {
    let out = Command::new("bash")
        .arg("ci/gpu-check.sh")
        .arg("--plan")
        .current_dir(root())
        .env("HARNESS_BIN", env!("CARGO_BIN_EXE_harness"))
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    for phase in ["paths", "throughput", "precision", "band", "memory", "width", "retrieval", "rerun", "smoke"] {
        assert!(text.lines().any(|l| l.starts_with(&format!("ok   {phase}:"))), "{phase} missing:\n{text}");
    }
    // Every phase that runs a suite expanded at least one.
    assert!(!text.contains(": 0 suite expansion") || text.lines().filter(|l| l.contains(": 0 suite expansion")).all(|l| l.contains("band")), "{text}");
    let bad = Command::new("bash").args(["ci/gpu-check.sh", "--plan", "speed"]).current_dir(root()).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown phase 'speed' (phases: paths throughput"), "{bad:?}");
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// The summary's verdicts from a work folder laid out as the script leaves it: a speed-up under
/// the goal is MISSED, the best MFU over batches decides the MFU goal, and a failed or non-finite
/// training run is named.
#[test]
fn the_gpu_summary_judges_goals_and_losses() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    write(&w.join("status.tsv"), "paths\tok\t41\tT\nthroughput\tstopped at the budget\t300\tT\nthroughput\tok\t120\tT\nprecision\tfailed (exit 1)\t90\tT\n");
    write(&w.join("record/gpu.txt"), "card: NVIDIA H200, 143771 MiB, 580.159.04\n");
    write(&w.join("record/paths.txt"), "ok   pinned rows: \"training_rows\": \"in pinned host memory (1.10 GiB)\"\n");
    let rep = w.join("reports/throughput/throughput/20261205T010000Z-abc");
    write(&rep.join("README.md"), "# throughput\n");
    let row = |exp: &str, run: &str, side: &str, model: &str, batch: i64, ms: f64, mfu: f64, speedup: Option<f64>| {
        serde_json::json!({"suite": "throughput", "experiment": exp, "run": run, "model": model, "mode": "train", "n_ctx": 512,
            "batch": batch, "precision": "bf16", "side": side, "device": "cuda:0", "libtorch": "2.11.0", "driver": "580",
            "malloc": "", "step_ms": ms, "issue_ms": ms * 0.9, "tokens_per_s": 1.0, "mfu": mfu, "peak_mib": 1000.0, "oom": false,
            "over_limit": false, "speedup": speedup})
    };
    let rows = serde_json::json!([
        row("train_step", "aaa", "harness", "masked_mixer d256 n8", 16, 10.0, 0.2, Some(1.25)),
        row("train_step", "aaa", "pytorch", "masked_mixer d256 n8", 16, 12.5, 0.16, None),
        row("train_step", "bbb", "harness", "llama d256 n8 h4", 16, 10.0, 0.2, Some(1.04)),
        row("train_step", "bbb", "pytorch", "llama d256 n8 h4", 16, 10.4, 0.19, None),
        row("mfu", "ccc", "harness", "masked_mixer d1024 n8", 64, 40.0, 0.41, Some(1.3)),
        row("mfu", "ddd", "harness", "masked_mixer d1024 n8", 256, 150.0, 0.47, Some(1.3)),
    ]);
    write(&rep.join("throughput.json"), &rows.to_string());
    // An older report of the same phase is ignored: the newest folder wins.
    write(&w.join("reports/precision/ci-gpu/20261204T000000Z-old/README.md"), "# old\n");
    write(&w.join("reports/precision/ci-gpu/20261204T000000Z-old/runs.csv"), "experiment,model,setting,status,train_loss,eval_loss\nclm,old,n_ctx=512,finished,1,1\n");
    let rep = w.join("reports/precision/ci-gpu/20261205T010000Z-abc");
    write(&rep.join("README.md"), "# precision\n");
    write(
        &rep.join("runs.csv"),
        "experiment,model,setting,status,train_loss,eval_loss,hamming,tokens_per_s\n\
         clm,masked_mixer d256 n8,n_ctx=512,finished,0.68,0.64,,68000\n\
         clm-fp16-amp,llama d256 n8 h4,n_ctx=512,finished,0.56,NaN,,29000\n\
         clm-bf16,llama d256 n8 h4,n_ctx=512,failed: CUDA error,,,,\n\
         representation,masked_mixer d256 n8,n_ctx=512,finished,,,0.0,\n",
    );
    for (suite, loss) in [("ts-clm-variants", "2.5"), ("fineweb-heads", "inf")] {
        let rep = w.join(format!("reports/smoke/{suite}/20261205T020000Z-abc"));
        write(&rep.join("README.md"), "# smoke\n");
        write(&rep.join("runs.csv"), &format!("experiment,model,setting,status,train_loss,eval_loss\nclm,m,n_ctx=512,finished,{loss},2.6\n"));
    }
    write(&w.join("record/band.txt"), "baseline /w/record/ci-gpu.cuda.toml\n| run | metric | expected | got | tolerance | verdict |\n|---|---|---|---|---|---|\n| clm · m | eval_loss | 0.64 | 0.70 | ±2% | REGRESSION |\n| clm · m | train_loss | 0.68 | 0.68 | ±2% | pass |\n\n2 checks: 1 pass, 1 regression(s), 0 missing\nexit 1\n");
    let out = Command::new("python3").arg(root().join("ci/gpu-summary.py")).arg(w).output().unwrap();
    let md = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{md}{}", String::from_utf8_lossy(&out.stderr));
    assert!(md.contains("| throughput | ok | 420 |"), "seconds add up over calls, the last state wins:\n{md}");
    assert!(md.contains("| precision | failed (exit 1) | 90 |") && md.contains("| rerun | not asked | 0 |"), "{md}");
    assert!(md.contains("| masked_mixer d256 n8 | bf16 | 512 | 16 | 10.00 | 12.50 | 1.25x | met | 20.0 | 9.00 | 11.25 |"), "{md}");
    assert!(md.contains("| llama d256 n8 h4 | bf16 | 512 | 16 | 10.00 | 10.40 | 1.04x | MISSED |"), "{md}");
    assert!(md.contains("Speed goals missed: 1 of 2 train-step shapes."), "{md}");
    assert!(md.contains("**met** (best 47.0%)"), "the best batch decides:\n{md}");
    assert!(md.contains("in pinned host memory (1.10 GiB)"), "{md}");
    assert!(md.contains("From `precision/ci-gpu/20261205T010000Z-abc`") && !md.contains("| old |"), "{md}");
    assert!(md.contains("precision: clm-fp16-amp llama d256 n8 h4 (eval_loss NaN)"), "{md}");
    assert!(md.contains("precision: clm-bf16 llama d256 n8 h4 (failed: CUDA error)"), "{md}");
    assert!(!md.contains("representation masked_mixer"), "a run without losses is not judged on them:\n{md}");
    assert!(md.contains("| suite | experiment |") && md.contains("| ts-clm-variants | clm | m |") && md.contains("| fineweb-heads | clm | m |"), "{md}");
    assert!(md.contains("smoke: clm m (train_loss inf)") && !md.contains("smoke: clm m (train_loss 2.5)"), "{md}");
    assert!(md.contains("| clm · m | eval_loss | 0.64 | 0.70 | ±2% | REGRESSION |") && md.contains("2 checks: 1 pass, 1 regression(s), 0 missing"), "{md}");
    assert!(!md.contains("| train_loss | 0.68 | 0.68 | ±2% | pass |"), "passing rows stay in the file:\n{md}");
}
