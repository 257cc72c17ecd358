//! Using trained models through the binary: `harness generate` (deterministic, the incremental
//! decoder equal to the full recompute, Llama greedy equal to transformers' generate on the
//! exported weights) and `harness eval` on any text.
mod common;
use common::*;
use std::path::{Path, PathBuf};

const STORIES: &[&str] = &[
    "Tom had a red ball. He liked to play with the ball in the park.",
    "Lily saw a big dog. The dog was happy and ran to Lily.",
    "Once upon a time there was a little cat. The cat liked to sleep in the sun.",
    "Ben and Mia went to the park. They played on the swing and had fun.",
];

/// A suite of one mixer and one Llama trained briefly on stories in a text file; returns the
/// two run folders (mixer first).
fn trained(dir: &Path) -> Vec<PathBuf> {
    let text: String = (0..120).map(|i| format!("{}\n<|endoftext|>\n", STORIES[i % STORIES.len()])).collect();
    std::fs::write(dir.join("stories.txt"), text).unwrap();
    let suite = TINY
        .replace("source = \"embedded\"\nn_stories = 150", "source = \"text\"\npath = \"stories.txt\"")
        .replace("steps = 30", "steps = 60\ncheckpoint_every = 20");
    write_suite(dir, "gen.toml", &suite);
    let out = harness(dir, &["run", "gen.toml", "-q"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut runs: Vec<(String, PathBuf)> = manifest(&dir.join("results"), "tiny")
        .iter()
        .map(|m| {
            let folder = run_dir(&dir.join("results"), "tiny", m);
            let config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(folder.join("config.json")).unwrap()).unwrap();
            (config["model"]["kind"].as_str().unwrap().to_string(), folder)
        })
        .collect();
    runs.sort_by_key(|(k, _)| k != "masked_mixer");
    assert_eq!(runs.len(), 2, "{runs:?}");
    runs.into_iter().map(|(_, p)| p).collect()
}

fn generate(dir: &Path, args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["generate"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = harness(dir, &all);
    assert!(out.status.success(), "{all:?}: {}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn ids(v: &serde_json::Value) -> Vec<i64> {
    v["new_ids"].as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect()
}

#[test]
fn generation_is_deterministic_and_the_incremental_decoder_equals_the_full_recompute() {
    let dir = tempfile::tempdir().unwrap();
    let runs = trained(dir.path());
    for run in &runs {
        let r = run.to_str().unwrap();
        let prompts = ["--prompt", "Tom had a", "--prompt", "Lily saw"];
        let mut greedy: Vec<&str> = vec![r, "--max-new-tokens", "16", "--ignore-eos"];
        greedy.extend_from_slice(&prompts);
        let a = generate(dir.path(), &greedy);
        assert_eq!(a.len(), 2);
        assert!(!ids(&a[0]).is_empty() && a[0]["continuation"].as_str().is_some_and(|t| !t.is_empty()), "{a:?}");
        let mut full = greedy.clone();
        full.push("--recompute");
        let b = generate(dir.path(), &full);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(ids(x), ids(y), "{r}: incremental and full recompute differ");
        }
        // Sampling: the same seed gives the same text, incremental or not; another seed, other text.
        let mut sampled: Vec<&str> = greedy.clone();
        sampled.extend_from_slice(&["--temperature", "1.0", "--top-k", "50", "--top-p", "0.95", "--seed", "7"]);
        let s1 = generate(dir.path(), &sampled);
        assert_eq!(s1.iter().map(ids).collect::<Vec<_>>(), generate(dir.path(), &sampled).iter().map(ids).collect::<Vec<_>>());
        let mut recomputed = sampled.clone();
        recomputed.push("--recompute");
        assert_eq!(s1.iter().map(ids).collect::<Vec<_>>(), generate(dir.path(), &recomputed).iter().map(ids).collect::<Vec<_>>());
        // The trained model continues a story in its vocabulary of words, not random bytes.
        assert!(a.iter().all(|g| g["tokens_per_s"].as_f64().is_some_and(|t| t > 0.0)));
    }
    // A run id prefix under results/, and text output with the rate printed.
    let id = runs[1].file_name().unwrap().to_str().unwrap()[..8].to_string();
    let out = harness(dir.path(), &["generate", &id, "--prompt", "Once upon a time", "--max-new-tokens", "8"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success() && text.contains("llama d16 n1 h2") && text.contains("tokens/s") && text.contains("Once upon a time\u{2016}"), "{text}{}", stderr(&out));
    // A checkpoint of the run mid-training, by its path: the run's config and tokenizer are used.
    let ckpt = runs[1].join("checkpoints/step-00000020.safetensors");
    assert!(ckpt.exists(), "{}", ckpt.display());
    let early = generate(dir.path(), &[ckpt.to_str().unwrap(), "--prompt", "Tom had a", "--max-new-tokens", "8", "--ignore-eos"]);
    assert_eq!(ids(&early[0]).len(), 8);
    // Bad requests are named.
    for (args, needle) in [
        (vec!["generate", &id], "no prompt"),
        (vec!["generate", &id, "--prompt", "x", "--top-k", "5"], "greedy"),
        (vec!["generate", "nope", "--prompt", "x"], "`nope`"),
        (vec!["generate", &id, "--prompt", "x", "--temperature=-1"], "--temperature"),
    ] {
        let out = harness(dir.path(), &args);
        assert!(!out.status.success() && stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
    }
    // Export: a folder written whole (through a hidden partial folder renamed into place), into
    // a new or an empty folder, never over one that holds files.
    let llama = runs[1].to_str().unwrap();
    std::fs::create_dir(dir.path().join("hf_empty")).unwrap();
    for target in ["hf_new", "hf_empty"] {
        let out = harness(dir.path(), &["export", "hf", llama, "--out", target]);
        assert!(out.status.success(), "{}", stderr(&out));
        let mut files: Vec<String> = std::fs::read_dir(dir.path().join(target)).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).collect();
        files.sort();
        assert_eq!(files, ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]);
    }
    let out = harness(dir.path(), &["export", "hf", llama, "--out", "hf_new"]);
    assert!(!out.status.success() && stderr(&out).contains("not empty"), "{}", stderr(&out));
    assert!(std::fs::read_dir(dir.path()).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().contains("partial")), "a partial export folder was left");
    // A prompt longer than the mixer's n_ctx is refused, quoted by its head and length only.
    let long = "Tom had a ball. ".repeat(12_500);
    std::fs::write(dir.path().join("long.txt"), format!("{long}\n")).unwrap();
    let out = harness(dir.path(), &["generate", runs[0].to_str().unwrap(), "--prompts", "long.txt"]);
    let e = stderr(&out);
    assert!(!out.status.success() && e.contains("\"... (200000 characters)") && e.contains("nothing is left to generate") && e.len() < 2_000, "{}", &e[..e.len().min(3_000)]);
    // A mixer holds n_ctx positions: generation stops there and says so.
    let out = generate(dir.path(), &[runs[0].to_str().unwrap(), "--prompt", "Tom had a", "--max-new-tokens", "100", "--ignore-eos"]);
    assert_eq!(out[0]["stop"], "capacity");
    assert_eq!(out[0]["prompt_ids"].as_array().unwrap().len() + ids(&out[0]).len(), 24);
}

#[test]
fn eval_scores_any_text_and_a_trained_model_prefers_its_kind_of_text() {
    let dir = tempfile::tempdir().unwrap();
    let runs = trained(dir.path());
    let like: String = STORIES.iter().rev().map(|s| format!("{s}\n<|endoftext|>\n")).collect();
    std::fs::write(dir.path().join("like.txt"), like).unwrap();
    let noise: String = (0..4).map(|i| format!("{}\n<|endoftext|>\n", "zq xv kj wp ".repeat(3 + i))).collect();
    std::fs::write(dir.path().join("noise.jsonl"), noise.split("\n<|endoftext|>\n").filter(|s| !s.is_empty()).map(|s| serde_json::json!({ "body": s }).to_string() + "\n").collect::<String>()).unwrap();
    let targets: Vec<&str> = runs.iter().map(|r| r.to_str().unwrap()).collect();
    let score = |data: &str, out: &str, extra: &[&str]| -> Vec<serde_json::Value> {
        let mut args = vec!["eval"];
        args.extend_from_slice(&targets);
        args.extend_from_slice(&["--data", data, "--out", out]);
        args.extend_from_slice(extra);
        let o = harness(dir.path(), &args);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(dir.path().join(out).join("README.md").exists());
        serde_json::from_str::<Vec<serde_json::Value>>(&std::fs::read_to_string(dir.path().join(out).join("eval.json")).unwrap()).unwrap()
    };
    let like = score("like.txt", "e1", &[]);
    let noise = score("noise.jsonl", "e2", &["--field", "body"]);
    for (a, b) in like.iter().zip(&noise) {
        let (ce, ppl) = (a["mean_ce"].as_f64().unwrap(), a["perplexity"].as_f64().unwrap());
        assert!(ce.is_finite() && ce > 0.0 && (ppl - ce.exp()).abs() < 1e-9 * ppl, "{a}");
        assert_eq!(a["texts"], 4);
        assert!(a["tokens"].as_i64().unwrap() > 40, "{a}");
        assert!(ce + 1.0 < b["mean_ce"].as_f64().unwrap(), "{}: stories {ce} vs noise {}", a["model"], b["mean_ce"]);
    }
    // An existing report folder is never replaced; a missing field is named.
    let o = harness(dir.path(), &["eval", targets[0], "--data", "like.txt", "--out", "e1"]);
    assert!(!o.status.success() && stderr(&o).contains("already exists"), "{}", stderr(&o));
    let o = harness(dir.path(), &["eval", targets[0], "--data", "noise.jsonl", "--out", "e3"]);
    assert!(!o.status.success() && stderr(&o).contains("text") && stderr(&o).contains("noise.jsonl"), "{}", stderr(&o));

    // A run's files are checked against its manifest before use: one flipped bit in the weights,
    // one edited byte of the tokenizer, and each is named (not used); restored, both work again.
    for (file, at) in [("model.safetensors", 0.5), ("tokenizer.json", 0.5)] {
        let path = runs[0].join(file);
        let good = std::fs::read(&path).unwrap();
        let mut bad = good.clone();
        let i = (bad.len() as f64 * at) as usize;
        bad[i] ^= if file == "tokenizer.json" { 0x01 } else { 0x10 };
        std::fs::write(&path, &bad).unwrap();
        for cmd in [vec!["generate", targets[0], "--prompt", "Tom had"], vec!["eval", targets[0], "--data", "like.txt", "--out", "e4"]] {
            let o = harness(dir.path(), &cmd);
            assert!(!o.status.success() && stderr(&o).contains(file) && stderr(&o).contains("changed since the run finished"), "{cmd:?} with {file} edited: {}", stderr(&o));
        }
        std::fs::write(&path, &good).unwrap();
    }
    let o = harness(dir.path(), &["generate", targets[0], "--prompt", "Tom had", "--max-new-tokens", "4"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// The harness's Llama, exported with `harness export hf`, generates greedily what
/// `LlamaForCausalLM.generate` does on the same weights (scripts/hf_generate.py).
#[test]
#[ignore = "needs Hugging Face transformers beside the harness's torch: ci/test.sh installs it and runs this with --ignored"]
fn llama_greedy_generation_equals_transformers() {
    let python = transformers_python().expect("transformers beside the harness's torch (ci/test.sh installs it)");
    let dir = tempfile::tempdir().unwrap();
    let runs = trained(dir.path());
    let llama = runs[1].to_str().unwrap();
    let out = harness(dir.path(), &["export", "hf", llama, "--out", "hf"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ours = generate(dir.path(), &[llama, "--prompt", "Tom had a", "--prompt", "Once upon a time there", "--prompt", "Ben", "--max-new-tokens", "20", "--ignore-eos"]);
    let prompt_ids: Vec<serde_json::Value> = ours.iter().map(|g| g["prompt_ids"].clone()).collect();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/hf_generate.py");
    let o = std::process::Command::new(&python)
        .arg(&script)
        .args(["--model", dir.path().join("hf").to_str().unwrap(), "--prompt-ids", &serde_json::to_string(&prompt_ids).unwrap(), "--max-new-tokens", "20"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let theirs: Vec<Vec<i64>> = String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(theirs.len(), 3);
    for (g, t) in ours.iter().zip(&theirs) {
        assert_eq!(&ids(g), t, "prompt {}: harness vs transformers", g["prompt"]);
    }
}
