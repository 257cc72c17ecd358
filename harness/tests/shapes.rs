//! The built-in `shapes` profile end to end: of the paper suites' CLM runs, the cheapest of each
//! model kind at each context the paper trains it at, each run at its paper shapes on the CPU in a
//! process of its own, on the real slices beside the checkout. Each must train its two steps,
//! evaluate, checkpoint, pass its resume point, and peak below the memory estimate the refusal
//! reads (so the estimate is an upper bound where it matters: a CPU run over it is refused
//! rather than killed). `ci/shapes-pass.sh` runs every paper run so.
mod common;
use common::*;
use harness::suite::{shapes, ExperimentKind, Suite};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Model kind and context -> (suite file, run id, cost), the cheapest run of each.
fn selection() -> BTreeMap<(String, i64), (PathBuf, String, u64)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../suites/paper");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let mut pick: BTreeMap<(String, i64), (PathBuf, String, u64)> = BTreeMap::new();
    for f in files {
        let s = Suite::load_profile(&f, Some(shapes::SHAPES), &[], false).unwrap();
        for r in s.runs.iter().filter(|r| r.config.kind == ExperimentKind::Clm) {
            let (model, data) = (r.config.model.as_ref().unwrap(), r.config.data.as_ref().unwrap());
            let cost = model.num_params(data.vocab_size as i64, data.n_ctx) * data.n_ctx as u64;
            let key = (model.kind().to_string(), data.n_ctx);
            if pick.get(&key).is_none_or(|(_, _, c)| cost < *c) {
                pick.insert(key, (f.clone(), r.id.clone(), cost));
            }
        }
    }
    pick
}

fn gib(s: &str) -> f64 {
    s.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn one_run_of_each_model_kind_and_context_runs_at_its_paper_shapes() {
    let Some(data) = shared_data() else {
        eprintln!("skipped: ../shared/data is not beside this checkout");
        return;
    };
    // The run ids depend on where the data is: resolve them as the runs below will.
    // The only test of this binary: no other thread reads the environment.
    std::env::set_var("HARNESS_SHARED_DATA", &data);
    let pick = selection();
    // Every model kind the paper trains, and the mixer and the Llama at the four contexts of E.3.
    for kind in ["masked_mixer", "llama", "transfixer", "gpt", "mixer_autoencoder", "llama_autoencoder"] {
        assert!(pick.keys().any(|(k, _)| k == kind), "no paper run of {kind}: {:?}", pick.keys());
    }
    for n_ctx in [32, 128, 512, 1024] {
        assert!(pick.contains_key(&("masked_mixer".into(), n_ctx)) && pick.contains_key(&("llama".into(), n_ctx)), "{n_ctx}: {:?}", pick.keys());
    }
    let dir = tempfile::tempdir().unwrap();
    let (results, reports) = (dir.path().join("results"), dir.path().join("reports"));
    let env = [("HARNESS_SHARED_DATA", data.to_str().unwrap())];
    for ((kind, n_ctx), (suite, id, _)) in &pick {
        let args = [
            "run",
            suite.to_str().unwrap(),
            "--profile",
            "shapes",
            "--only",
            id,
            "-q",
            "--results",
            results.to_str().unwrap(),
            "--reports",
            reports.to_str().unwrap(),
        ];
        let out = harness_env(dir.path(), &args, &env);
        assert!(out.status.success(), "{kind} at {n_ctx} ({id}): {}", stderr(&out));
        let folder = std::fs::read_dir(&results).unwrap().map(|e| e.unwrap().path().join(id)).find(|p| p.exists()).unwrap();
        let m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(folder.join("manifest.json")).unwrap()).unwrap();
        assert_eq!(m["status"], "finished", "{m}");
        // Two steps, evaluated before and after each, a checkpoint after the first; no
        // resumable state left behind by a finished run.
        assert!(folder.join("checkpoints/step-00000001.safetensors").exists() && folder.join("model.safetensors").exists(), "{kind} {n_ctx}");
        assert_eq!(eval_losses(&folder).iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![0, 1, 2], "{kind} {n_ctx}");
        assert!(!folder.join("resume").exists(), "{kind} {n_ctx}");
        let config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(folder.join("config.json")).unwrap()).unwrap();
        assert_eq!(config["data"]["n_ctx"], *n_ctx);
        let e = &m["execution"];
        let (peak, estimate) = (gib(e["peak_rss"].as_str().unwrap()) / 1024.0, gib(e["memory_estimate"].as_str().unwrap()));
        eprintln!("{kind} n_ctx {n_ctx} ({id:.12}): peak {peak:.2} GiB, estimate {estimate:.1} GiB, {:.0} s", m["wall_s"].as_f64().unwrap());
        assert!(peak <= estimate + 0.05, "{kind} at {n_ctx}: peaked at {peak:.2} GiB over its estimate of {estimate:.1} GiB ({})", e["memory_estimate"]);
    }
}
