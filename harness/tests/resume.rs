//! Exact resume: a run killed with SIGKILL at a random step and started again ends with the
//! same weights, bit for bit, as one that was never interrupted.
mod common;
use common::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The step of the resumable state of the (building) run of `kind` under `results/<suite>`.
fn state_step(suite_dir: &Path, kind: &str) -> Option<u64> {
    for e in std::fs::read_dir(suite_dir).ok()?.flatten() {
        let p = e.path();
        let is_kind = std::fs::read_to_string(p.join("config.json")).is_ok_and(|c| c.contains(&format!("\"kind\": \"{kind}\"")));
        if p.to_string_lossy().ends_with(".building") && is_kind {
            let t = std::fs::read_to_string(p.join("resume/state.json")).ok()?;
            return serde_json::from_str::<serde_json::Value>(&t).ok()?["state"]["step"].as_u64();
        }
    }
    None
}

/// Starts `harness run <suite> --results <results> --resume-every-steps N`, kills it with SIGKILL
/// once the `kind` run's resumable state reaches `target`, and returns that step.
fn kill_at(dir: &Path, suite: &str, results: &str, kind: &str, every: &str, target: u64) -> u64 {
    let mut child = Command::new(env!("CARGO_BIN_EXE_harness"))
        .current_dir(dir)
        .args(["run", suite, "-q", "--results", results, "--resume-every-steps", every])
        .env_remove("RUST_BACKTRACE")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let suite_dir = dir.join(results).join(std::fs::read_to_string(dir.join(suite)).unwrap().lines().find_map(|l| l.strip_prefix("name = \"")).unwrap().trim_end_matches('"'));
    let start = Instant::now();
    loop {
        if let Some(s) = state_step(&suite_dir, kind).filter(|s| *s >= target) {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            return s;
        }
        assert!(child.try_wait().unwrap().is_none(), "the run ended before step {target}");
        assert!(start.elapsed() < Duration::from_secs(300), "no resumable state after 300 s");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A step drawn from the clock in `lo..lo + span`.
fn random_step(lo: u64, span: u64) -> u64 {
    lo + std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() as u64 % span
}

#[test]
fn an_infonce_run_killed_mid_epoch_resumes_to_the_same_weights() {
    let dir = tempfile::tempdir().unwrap();
    let text = include_str!("fixtures/infonce-resume.toml");
    write_suite(dir.path(), "rt.toml", text);
    let whole = harness(dir.path(), &["run", "rt.toml", "-q", "--results", "whole"]);
    assert!(whole.status.success(), "{}", stderr(&whole));
    let killed = kill_at(dir.path(), "rt.toml", "cut", "retrieval_infonce", "7", random_step(20, 400));
    let again = harness(dir.path(), &["run", "rt.toml", "-q", "--results", "cut"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(stderr(&again).contains("resuming from"), "{}", stderr(&again));
    let hashes = |r: &str| -> Vec<String> {
        let mut v: Vec<String> = manifest(&dir.path().join(r), "rt").iter().map(|m| format!("{} {}", m["experiment"], m["files"]["model.safetensors"])).collect();
        v.sort();
        v
    };
    eprintln!("InfoNCE killed at step {killed}: {:?}", hashes("cut"));
    assert_eq!(hashes("cut"), hashes("whole"));
}

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
    let killed_at = kill_at(dir.path(), "tiny.toml", "cut", "clm", "10", random_step(20, 300));
    assert!(!dir.path().join("cut/tiny").join(&run_id).exists(), "killed before it finished");

    let again = harness(dir.path(), &["run", suite, "-q", "--results", "cut"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(stderr(&again).contains("resuming at step"), "{}", stderr(&again));
    let m2 = &manifest(&dir.path().join("cut"), "tiny")[0];
    assert_eq!(m2["status"], "finished");
    let got = m2["files"]["model.safetensors"].as_str().unwrap();
    eprintln!("killed at step {killed_at}; uninterrupted {want}, resumed {got}");
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
