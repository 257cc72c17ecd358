//! `tensorboard --logdir results/` shows every run's curves: the event files training writes,
//! read with TensorBoard's own reader (scripts/read_tensorboard.py), hold the same values as
//! the run's metrics files, and the run's config as hparams.
mod common;
use common::*;
use std::path::Path;

#[test]
#[ignore = "needs the tensorboard package beside the harness's torch: ci/test.sh installs it and runs this with --ignored"]
fn tensorboard_reads_every_runs_curves_and_hparams() {
    let python = transformers_python().expect("the harness's torch python (ci/test.sh installs tensorboard there)");
    let dir = tempfile::tempdir().unwrap();
    write_suite(dir.path(), "tiny.toml", TINY);
    let out = harness(dir.path(), &["run", "tiny.toml", "-q"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/read_tensorboard.py");
    let o = std::process::Command::new(&python).arg(&script).arg(dir.path().join("results")).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let read: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let runs = read["runs"].as_object().unwrap();
    let manifests = manifest(&dir.path().join("results"), "tiny");
    assert_eq!(runs.len(), manifests.len(), "one TensorBoard run per run folder: {:?}", runs.keys().collect::<Vec<_>>());
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-6 * b.abs().max(1.0);
    for m in &manifests {
        let id = m["run_id"].as_str().unwrap();
        let run = &runs[&format!("tiny/{id}")];
        let folder = run_dir(&dir.path().join("results"), "tiny", m);
        let json = |f: &str| -> Vec<serde_json::Value> { serde_json::from_str(&std::fs::read_to_string(folder.join(f)).unwrap()).unwrap() };
        let series = |tag: &str| -> Vec<(u64, f64)> {
            run["scalars"][tag].as_array().unwrap_or_else(|| panic!("{id}: no {tag}: {run}")).iter().map(|p| (p[0].as_u64().unwrap(), p[1].as_f64().unwrap())).collect()
        };
        for (tag, file, key) in [("train/loss", "metrics_steps.json", "loss"), ("train/lr", "metrics_steps.json", "lr"), ("train/grad_norm", "metrics_steps.json", "grad_norm"), ("eval/loss", "metrics_eval.json", "eval_loss")] {
            let want: Vec<(u64, f64)> = json(file).iter().map(|r| (r["step"].as_u64().unwrap(), r[key].as_f64().unwrap())).collect();
            let got = series(tag);
            assert_eq!(got.len(), want.len(), "{id} {tag}");
            for ((s, v), (ws, wv)) in got.iter().zip(&want) {
                assert!(*s == *ws && close(*v, *wv), "{id} {tag}: step {s} {v} vs {ws} {wv}");
            }
        }
        assert!(series("train/tokens_per_s").iter().all(|(_, v)| *v > 0.0));
        let h = &run["hparams"];
        assert_eq!(h["train.lr"].as_f64(), Some(3e-3), "{h}");
        assert_eq!(h["kind"], "clm");
        let config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(folder.join("config.json")).unwrap()).unwrap();
        assert_eq!(h["model.kind"], config["model"]["kind"]);
    }

    // The retrieval trainers write theirs too: InfoNCE per logged step and evaluation, the
    // frozen-embedding retrieval model per epoch.
    let suite = include_str!("fixtures/infonce-resume.toml").replace("epochs = 40", "epochs = 4")
        + "[[experiment]]\nname = \"embed\"\nkind = \"embed\"\nfrom = \"clm\"\n[[experiment]]\nname = \"frozen\"\nkind = \"retrieval_frozen\"\nfrom = \"embed\"\n[experiment.retrieval_frozen]\nn = 4\ndepth = 1\nepochs = 3\nbatch_size = 16\nwarmup_steps = 1\n";
    write_suite(dir.path(), "rt.toml", &suite);
    let out = harness(dir.path(), &["run", "rt.toml", "-q", "--results", "rt"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let o = std::process::Command::new(&python).arg(&script).arg(dir.path().join("rt")).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let read: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let runs = read["runs"].as_object().unwrap();
    let tags = |kind: &str| -> Vec<(String, usize)> {
        let m = manifest(&dir.path().join("rt"), "rt").into_iter().find(|m| {
            let c: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run_dir(&dir.path().join("rt"), "rt", m).join("config.json")).unwrap()).unwrap();
            c["kind"] == kind
        });
        let id = m.unwrap_or_else(|| panic!("no {kind} run"))["run_id"].as_str().unwrap().to_string();
        runs[&format!("rt/{id}")]["scalars"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_array().unwrap().len())).collect()
    };
    let infonce = tags("retrieval_infonce");
    for t in ["train/loss", "train/lr", "eval/infonce_loss", "eval/top1_percent"] {
        assert!(infonce.iter().any(|(k, n)| k == t && *n > 1), "{t}: {infonce:?}");
    }
    let frozen = tags("retrieval_frozen");
    for t in ["train/ce", "eval/ce", "eval/top1_percent"] {
        assert!(frozen.iter().any(|(k, n)| k == t && *n == 3), "{t}: one point per epoch: {frozen:?}");
    }
}

/// A resumed run's event file starts with a restart marker (SessionLog START at the first step
/// it logs again): TensorBoard drops what the earlier file logged from there on, so the steps
/// replayed after the resume point show once, with the resumed run's values.
#[test]
#[ignore = "needs the tensorboard package beside the harness's torch: ci/test.sh installs it and runs this with --ignored"]
fn a_resumed_runs_replayed_steps_show_once() {
    let python = transformers_python().expect("the harness's torch python (ci/test.sh installs tensorboard there)");
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("suite/run");
    std::fs::create_dir_all(&run).unwrap();
    // The first process logged steps 1..=20 and was killed; its last resume point was step 10.
    let mut first = harness::tensorboard::EventWriter::create(&run, None).unwrap();
    for step in 1..=20u64 {
        first.scalars(step, &[("train/loss", 100.0 + step as f64)]).unwrap();
    }
    drop(first);
    std::thread::sleep(std::time::Duration::from_millis(1100)); // a later file name (seconds)
    let mut resumed = harness::tensorboard::EventWriter::create(&run, Some(10)).unwrap();
    for step in 11..=25u64 {
        resumed.scalars(step, &[("train/loss", step as f64)]).unwrap();
    }
    drop(resumed);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/read_tensorboard.py");
    let o = std::process::Command::new(&python).arg(&script).arg(dir.path()).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let read: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let points: Vec<(u64, f64)> =
        read["runs"]["suite/run"]["scalars"]["train/loss"].as_array().unwrap().iter().map(|p| (p[0].as_u64().unwrap(), p[1].as_f64().unwrap())).collect();
    let want: Vec<(u64, f64)> = (1..=25u64).map(|s| (s, if s <= 10 { 100.0 + s as f64 } else { s as f64 })).collect();
    assert_eq!(points, want, "each step once, the resumed values after step 10");
}

/// `harness status` shows a running run's step, losses and ETA from its event files as it
/// trains; `--watch` ends by itself once every run has finished.
#[test]
fn status_shows_a_running_runs_progress_and_watch_ends_when_all_finished() {
    let dir = tempfile::tempdir().unwrap();
    let long = tiny_mixer_only().replace("steps = 30", "steps = 200000").replace("eval_every = 10", "eval_every = 50");
    write_suite(dir.path(), "long.toml", &long);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_harness"))
        .current_dir(dir.path())
        .args(["run", "long.toml", "-q"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let mut seen = String::new();
    while started.elapsed() < std::time::Duration::from_secs(90) {
        let out = harness(dir.path(), &["status", "long.toml"]);
        seen = String::from_utf8_lossy(&out.stdout).to_string();
        if seen.contains("ETA") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let _ = child.kill();
    let _ = child.wait();
    let line = seen.lines().find(|l| l.contains("running")).unwrap_or_else(|| panic!("no running run: {seen}"));
    assert!(line.contains("step ") && line.contains("/200000") && line.contains("loss ") && line.contains("steps/s") && line.contains("ETA "), "{line}");
    // Killed (SIGKILL): no process holds the run, so --watch ends and says how to resume it.
    let out = harness(dir.path(), &["status", "long.toml", "--watch", "0.5"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success() && text.matches("== ").count() == 1 && text.contains("1 run(s) interrupted") && text.contains("harness run long.toml"), "{text}");

    let dir = tempfile::tempdir().unwrap();
    write_suite(dir.path(), "tiny.toml", &tiny_mixer_only());
    assert!(harness(dir.path(), &["run", "tiny.toml", "-q"]).status.success());
    let out = harness(dir.path(), &["status", "tiny.toml", "--watch", "0.5"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success() && text.starts_with("== ") && text.contains("1 finished"), "{text}");
}
