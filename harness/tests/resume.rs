//! Exact resume: a run killed with SIGKILL at a random step and started again ends with the
//! same weights, bit for bit, as one that was never interrupted.
mod common;
use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn a_run_killed_at_a_random_step_resumes_to_the_same_weights() {
    let dir = tempfile::tempdir().unwrap();
    // Long enough to be killed in the middle; a model with dropout so the RNG must resume too.
    let text = tiny_mixer_only()
        .replace("steps = 30", "steps = 400")
        .replace("{ kind = \"masked_mixer\", d_model = 16, n_layers = 1 }", "{ kind = \"gpt\", d_model = 16, n_layers = 1, n_heads = 2 }");
    let suite = write_suite(dir.path(), "tiny.toml", &text);
    let suite = suite.to_str().unwrap();
    let whole = harness(dir.path(), &["run", suite, "-q", "--results", "whole"]);
    assert!(whole.status.success(), "{}", stderr(&whole));
    let m = &manifest(&dir.path().join("whole"), "tiny")[0];
    let want = m["files"]["model.safetensors"].as_str().unwrap().to_string();
    let run_id = m["run_id"].as_str().unwrap().to_string();

    // Kill at a step drawn from the clock, after at least one resumable state.
    let target = 20 + (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() as u64 % 300);
    let state = dir.path().join("cut/tiny").join(format!("{run_id}.building/resume/state.json"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_harness"))
        .current_dir(dir.path())
        .args(["run", suite, "-q", "--results", "cut", "--resume-every-steps", "10"])
        .env_remove("RUST_BACKTRACE")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let killed_at = loop {
        let step = std::fs::read_to_string(&state)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["step"].as_u64());
        if step.is_some_and(|s| s >= target) {
            child.kill().unwrap(); // SIGKILL
            break step.unwrap();
        }
        assert!(child.try_wait().unwrap().is_none(), "the run ended before step {target}");
        assert!(start.elapsed() < Duration::from_secs(300), "no resumable state after 300 s");
        std::thread::sleep(Duration::from_millis(5));
    };
    child.wait().unwrap();
    assert!(!dir.path().join("cut/tiny").join(&run_id).exists(), "killed before it finished");

    let again = harness(dir.path(), &["run", suite, "-q", "--results", "cut"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(stderr(&again).contains("resuming at step"), "{}", stderr(&again));
    let m2 = &manifest(&dir.path().join("cut"), "tiny")[0];
    assert_eq!(m2["status"], "finished");
    let got = m2["files"]["model.safetensors"].as_str().unwrap();
    eprintln!("killed at or after step {killed_at} (target {target}); uninterrupted {want}, resumed {got}");
    assert_eq!(got, want, "resumed weights differ from the uninterrupted run's");
    // The evaluation curve is the same too (its f64 sums over batches may differ in the last bit
    // between processes; the weights above may not differ at all).
    let read = |r: &str| eval_losses(&dir.path().join(r).join("tiny").join(&run_id));
    let (a, b) = (read("whole"), read("cut"));
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert!(x.0 == y.0 && (x.1 - y.1).abs() <= 1e-12 * x.1.abs(), "{x:?} vs {y:?}");
    }
    assert!(!dir.path().join("cut/tiny").join(&run_id).join("resume").exists(), "no resumable state left in a finished run");
}
