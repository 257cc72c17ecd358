//! The sweep as a Slurm job array, against a real Slurm: `.ci/run` starts a one-node cluster
//! (ci/slurm/cluster.sh), exports SLURM_CONF and runs these `#[ignore]`d tests with `--ignored`.
//! Without a cluster they are reported as ignored, never as passed; run with `--ignored` and no
//! Slurm, they fail and say how to start one.
mod common;
use common::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn require_slurm() {
    let ok = std::env::var_os("SLURM_CONF").is_some() && Command::new("sbatch").arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(ok, "no Slurm here (SLURM_CONF unset or no sbatch): start one with `eval \"$(bash ci/slurm/cluster.sh start DIR)\"` first");
}

fn sh(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Submits through `harness plan --emit slurm --submit`; the job ids of the levels.
fn submit(dir: &Path, suite: &str, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["plan", suite, "--emit", "slurm", "--out", "slurm", "--results", "results", "--submit", "--throttle", "2"];
    args.extend_from_slice(extra);
    let out = harness(dir, &args);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let ids: Vec<String> = text.lines().filter_map(|l| l.strip_prefix("submitted level ").and_then(|r| r.split("job ").nth(1))).map(String::from).collect();
    assert!(!ids.is_empty(), "{text}");
    ids
}

fn wait_for(job: &str, limit: Duration) {
    let start = Instant::now();
    while !sh("squeue", &["-h", "-j", job]).trim().is_empty() {
        assert!(start.elapsed() < limit, "job {job} still queued after {limit:?}:\n{}", sh("squeue", &[]));
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn logs(dir: &Path, job: &str) -> String {
    let mut all = String::new();
    for e in std::fs::read_dir(dir.join("slurm/logs")).unwrap() {
        let p = e.unwrap().path();
        if p.file_name().unwrap().to_string_lossy().contains(&format!("-{job}_")) {
            all.push_str(&std::fs::read_to_string(p).unwrap());
        }
    }
    all
}

#[test]
#[ignore = "needs a real Slurm: ci/test.sh starts one (ci/slurm/cluster.sh) and runs these with --ignored"]
fn a_suite_runs_as_a_throttled_array_once_and_a_resubmission_does_no_work() {
    require_slurm();
    let dir = tempfile::tempdir().unwrap();
    // 4 CLM runs (level 0) and 4 inversions of their checkpoints (level 1, after level 0).
    let text = format!(
        "{}\n[[experiment]]\nname = \"inv\"\nkind = \"representation\"\nfrom = \"clm\"\nrepresentation = {{ steps = 5, n_prompts = 2 }}\n",
        TINY.replace("seeds = [0]", "seeds = [0, 1]")
    );
    write_suite(dir.path(), "tiny.toml", &text);
    let started = Instant::now();
    let jobs = submit(dir.path(), "tiny.toml", &[]);
    assert_eq!(jobs.len(), 2, "two levels: {jobs:?}");
    let script = std::fs::read_to_string(dir.path().join("slurm/level0.sbatch")).unwrap();
    assert!(script.contains("#SBATCH --array=0-3%2") && script.contains("--only \"$run\""), "{script}");
    let submit_sh = std::fs::read_to_string(dir.path().join("slurm/submit.sh")).unwrap();
    assert!(submit_sh.contains("--dependency=afterany:$prev"), "{submit_sh}");
    wait_for(&jobs[1], Duration::from_secs(600));
    wait_for(&jobs[0], Duration::from_secs(60));
    let (l0, l1) = (logs(dir.path(), &jobs[0]), logs(dir.path(), &jobs[1]));
    eprintln!("2 arrays of 4 tasks done in {:.1} s", started.elapsed().as_secs_f64());
    assert_eq!(l0.matches(": running").count(), 4, "each CLM run once:\n{l0}");
    // Level 1 started after level 0 ended: each task finds its producer finished and runs its own.
    assert_eq!(l1.matches(": running").count(), 4, "each inversion once:\n{l1}\nLEVEL0:\n{l0}");
    assert_eq!(l1.matches("finished earlier, reused").count(), 4, "{l1}");
    let ms = manifest(&dir.path().join("results"), "tiny");
    assert_eq!(ms.iter().filter(|m| m["status"] == "finished").count(), 8, "{ms:?}");
    // The shared folder merges into one report; status shows every run finished.
    let rep = harness(dir.path(), &["report", "tiny.toml", "--results", "results", "--reports", "reports"]);
    assert!(rep.status.success() && stderr(&rep).is_empty(), "{}", stderr(&rep));
    let st = harness(dir.path(), &["status", "tiny.toml", "--results", "results"]);
    assert!(String::from_utf8_lossy(&st.stdout).contains("tiny: 8 runs: 8 finished"), "{}", String::from_utf8_lossy(&st.stdout));
    // Submitted again: every task finds its run (and its producer) finished.
    let again = submit(dir.path(), "tiny.toml", &[]);
    wait_for(&again[1], Duration::from_secs(300));
    let second = format!("{}{}", logs(dir.path(), &again[0]), logs(dir.path(), &again[1]));
    assert_eq!(second.matches("finished earlier, reused").count(), 4 + 8, "{second}");
    assert!(!second.contains(": running"), "{second}");
}

#[test]
#[ignore = "needs a real Slurm: ci/test.sh starts one (ci/slurm/cluster.sh) and runs these with --ignored"]
fn a_folder_of_suites_is_one_submission_and_a_shared_run_is_computed_once() {
    require_slurm();
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("suites");
    std::fs::create_dir(&folder).unwrap();
    write_suite(&folder, "a.toml", TINY);
    // tiny-b: the same two runs (computed by tiny's array) and two of its own (seed 1).
    write_suite(&folder, "b.toml", &TINY.replace("name = \"tiny\"", "name = \"tiny-b\"").replace("seeds = [0]", "seeds = [0, 1]"));
    let jobs = submit(dir.path(), folder.to_str().unwrap(), &[]);
    assert_eq!(jobs.len(), 2, "one array per suite at level 0: {jobs:?}");
    assert!(std::fs::read_to_string(dir.path().join("slurm/tiny-b/runs-0.txt")).unwrap().lines().count() == 2, "tiny-b lists its own 2 runs only");
    for j in &jobs {
        wait_for(j, Duration::from_secs(600));
    }
    let all: String = jobs.iter().map(|j| logs(dir.path(), j)).collect();
    assert_eq!(all.matches(": running").count(), 4, "4 distinct runs, each once:\n{all}");
    // tiny-b's report reads the 2 shared runs from tiny's folder; status counts them finished.
    let st = harness(dir.path(), &["status", folder.to_str().unwrap(), "--results", "results"]);
    let st = String::from_utf8_lossy(&st.stdout).to_string();
    assert!(st.contains("tiny: 2 runs: 2 finished") && st.contains("tiny-b: 4 runs: 4 finished"), "{st}");
    let rep = harness(dir.path(), &["report", folder.to_str().unwrap(), "--results", "results", "--reports", "reports"]);
    assert!(rep.status.success(), "{}", stderr(&rep));
    let paper = std::fs::read_dir(dir.path().join("reports/paper")).unwrap().next().unwrap().unwrap().path();
    let md = std::fs::read_to_string(paper.join("README.md")).unwrap();
    assert!(md.contains("**6 of 6 runs** finished (4 distinct configurations"), "{md}");
    let verify = harness(dir.path(), &["report", folder.to_str().unwrap(), "--results", "results", "--verify", paper.to_str().unwrap()]);
    assert!(verify.status.success(), "{}{}", String::from_utf8_lossy(&verify.stdout), stderr(&verify));
}

#[test]
#[ignore = "needs a real Slurm: ci/test.sh starts one (ci/slurm/cluster.sh) and runs these with --ignored"]
fn a_requeued_task_resumes_its_run() {
    require_slurm();
    let dir = tempfile::tempdir().unwrap();
    let text = tiny_mixer_only().replace("steps = 30", "steps = 2000").replace("eval_every = 10", "eval_every = 500");
    write_suite(dir.path(), "long.toml", &text);
    let jobs = submit(dir.path(), "long.toml", &["--resume-every", "0.005"]);
    let m_state = || -> Option<u64> {
        let tiny = dir.path().join("results/tiny");
        let building = std::fs::read_dir(&tiny).ok()?.filter_map(|e| e.ok()).find(|e| e.file_name().to_string_lossy().ends_with(".building"))?;
        let t = std::fs::read_to_string(building.path().join("resume/state.json")).ok()?;
        serde_json::from_str::<serde_json::Value>(&t).ok()?["state"]["step"].as_u64()
    };
    let start = Instant::now();
    let at = loop {
        if let Some(s) = m_state().filter(|s| *s >= 300) {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(300), "no resumable state:\n{}", logs(dir.path(), &jobs[0]));
        std::thread::sleep(Duration::from_millis(50));
    };
    // What a preemption does: the task is killed and put back in the queue.
    let task = format!("{}_0", jobs[0]);
    let out = Command::new("scontrol").args(["requeue", &task]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_for(&jobs[0], Duration::from_secs(600));
    let log = logs(dir.path(), &jobs[0]);
    eprintln!("requeued at step >= {at}:\n{log}");
    assert!(log.contains("(restart 1)"), "{log}");
    assert!(log.contains("resuming at step"), "{log}");
    let ms = manifest(&dir.path().join("results"), "tiny");
    assert_eq!(ms.len(), 1);
    assert_eq!(ms[0]["status"], "finished");
    // The same weights as the run never interrupted.
    let whole = harness(dir.path(), &["run", "long.toml", "-q", "--results", "whole"]);
    assert!(whole.status.success(), "{}", stderr(&whole));
    assert_eq!(manifest(&dir.path().join("whole"), "tiny")[0]["files"]["model.safetensors"], ms[0]["files"]["model.safetensors"]);
}

/// No Slurm needed: the scripts `--emit slurm` writes, read back as sbatch and bash read them.
/// Every line between the shebang and the first command is one `#SBATCH --key=value` with a key
/// sbatch knows, each flag's value appears whole on its own line, and `bash -n` parses the script.
#[test]
fn generated_scripts_hold_only_the_options_given() {
    let dir = tempfile::tempdir().unwrap();
    let suite = write_suite(dir.path(), "tiny.toml", &tiny_mixer_only());
    let args = [
        "plan", suite.to_str().unwrap(), "--emit", "slurm", "--out", "slurm", "--partition", "gpu,debug", "--account", "lab-1",
        "--qos", "high", "--mem", "32G", "--time", "1-02:00:00", "--throttle", "3", "--cpus", "4", "--gpus", "1",
    ];
    let out = harness(dir.path(), &args);
    assert!(out.status.success(), "{}", stderr(&out));
    let known = ["job-name", "array", "output", "requeue", "open-mode", "partition", "account", "qos", "mem", "time", "cpus-per-task", "gres"];
    for e in std::fs::read_dir(dir.path().join("slurm")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|x| x != "sbatch") {
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap();
        // sbatch reads #SBATCH lines up to the first command; plain comments may sit between them.
        let header: Vec<&str> = text.lines().skip(1).take_while(|l| l.starts_with('#')).filter(|l| !l.starts_with("# ")).collect();
        for line in &header {
            let opt = line.strip_prefix("#SBATCH --").unwrap_or_else(|| panic!("{}: not an #SBATCH option: {line:?}", p.display()));
            let key = opt.split('=').next().unwrap();
            assert!(known.contains(&key) && !opt.contains(' '), "{}: {line:?}", p.display());
        }
        for want in ["--partition=gpu,debug", "--account=lab-1", "--qos=high", "--mem=32G", "--time=1-02:00:00", "--cpus-per-task=4", "--gres=gpu:1"] {
            assert!(header.contains(&format!("#SBATCH {want}").as_str()), "{}: no {want} in {header:?}", p.display());
        }
        assert!(header.iter().any(|l| l.starts_with("#SBATCH --array=0-") && l.ends_with("%3")), "{header:?}");
        let syntax = Command::new("bash").arg("-n").arg(&p).output().unwrap();
        assert!(syntax.status.success(), "{}: {}", p.display(), String::from_utf8_lossy(&syntax.stderr));
    }
    let syntax = Command::new("bash").arg("-n").arg(dir.path().join("slurm/submit.sh")).output().unwrap();
    assert!(syntax.status.success(), "{}", String::from_utf8_lossy(&syntax.stderr));
}
