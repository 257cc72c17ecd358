//! `harness data pairs` against a real LLM server: llama-cpp-python's OpenAI-compatible server
//! (the paper's own tool, PAPER.md B.1) on 127.0.0.1, serving a tiny random-weight Llama in GGUF
//! that scripts/tiny_gguf.py writes (nothing downloaded). Export 24 TinyStories passages of the
//! slice, summarise at concurrency 1 and 4, kill and resume, join, then a retrieval suite on the
//! joined file. With a seed in every request the server is deterministic, so every way of making
//! the set must join to the same bytes. `ci/llama-cpp.sh` builds the server (once per user);
//! ci/test.sh runs this with --ignored and HARNESS_LLAMA_CPP_PYTHON set.
mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

struct ServerProcess(std::process::Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(python: &Path, model: &Path, dir: &Path) -> (ServerProcess, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let log = std::fs::File::create(dir.join("server.log")).unwrap();
    let child = std::process::Command::new(python)
        .args(["-m", "llama_cpp.server", "--model", model.to_str().unwrap(), "--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--n_ctx", "4096", "--model_alias", "tiny"])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("starts llama_cpp.server");
    let server = ServerProcess(child);
    let url = format!("http://127.0.0.1:{port}/v1");
    let started = Instant::now();
    while ureq::get(&format!("{url}/models")).timeout(Duration::from_secs(2)).call().is_err() {
        assert!(started.elapsed() < Duration::from_secs(120), "the server did not answer: {}", std::fs::read_to_string(dir.join("server.log")).unwrap_or_default());
        std::thread::sleep(Duration::from_millis(200));
    }
    (server, url)
}

fn run(dir: &Path, args: &[&str]) -> String {
    let out = harness(dir, args);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn sha(dir: &Path, file: &str) -> String {
    harness::artifacts::sha256_file(&dir.join(file)).unwrap()
}

fn args(a: &[String]) -> Vec<&str> {
    a.iter().map(String::as_str).collect()
}

fn valid_lines(dir: &Path, file: &str) -> usize {
    std::fs::read_to_string(dir.join(file)).map(|t| t.lines().filter(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()).count()).unwrap_or(0)
}

#[test]
#[ignore = "needs llama-cpp-python's server and gguf: ci/llama-cpp.sh builds them; ci/test.sh runs this with --ignored"]
fn a_real_llama_cpp_server_makes_a_summary_set() {
    let python = PathBuf::from(std::env::var("HARNESS_LLAMA_CPP_PYTHON").expect("HARNESS_LLAMA_CPP_PYTHON: the python of ci/llama-cpp.sh"));
    let Some(data) = shared_data() else { return eprintln!("../shared/data is absent: skipped") };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let o = std::process::Command::new(&python).arg(root.join("scripts/tiny_gguf.py")).arg(dir.join("tiny.gguf")).output().unwrap();
    assert!(o.status.success(), "tiny_gguf.py: {}", String::from_utf8_lossy(&o.stderr));
    let (_server, url) = start_server(&python, &dir.join("tiny.gguf"), dir);

    let slice = data.join("tinystories/train-head-2MiB.txt");
    let n = 24;
    run(dir, &["data", "pairs", "export", "--set", "tinystories", "--input", slice.to_str().unwrap(), "--count", &n.to_string(), "--out", "passages.jsonl"]);
    let summarize = |out: &'static str, extra: &[&'static str]| -> Vec<String> {
        let mut a: Vec<String> = ["data", "pairs", "summarize", "--passages", "passages.jsonl", "--out", out, "--endpoint", &url, "--model", "tiny"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.extend(["--seed", "7", "--max-tokens", "24"].iter().map(|s| s.to_string()));
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let join = |files: &[&str], out: &str| {
        let mut a = vec!["data", "pairs", "join", "--passages", "passages.jsonl", "--test-pairs", "8", "--out", out, "--summaries"];
        a.extend_from_slice(files);
        run(dir, &a)
    };
    let rate = |out: &str| -> f64 { out.split(" s, ").nth(1).and_then(|r| r.split("/s").next()).and_then(|r| r.parse().ok()).unwrap_or_else(|| panic!("{out}")) };

    let c1 = rate(&run(dir, &args(&summarize("c1.jsonl", &[]))));
    let c4 = rate(&run(dir, &args(&summarize("c4.jsonl", &["--concurrency", "4"]))));
    eprintln!("llama-cpp-python server, tiny Llama d64 n2: {c1:.2} requests/s at concurrency 1, {c4:.2} at 4");
    let stats = join(&["c1.jsonl"], "c1.parquet");
    eprintln!("joined: {stats}");
    join(&["c4.jsonl"], "c4.parquet");
    assert_eq!(sha(dir, "c1.parquet"), sha(dir, "c4.parquet"), "a seeded server gives the same set at any concurrency");

    // Killed at a random request, then rerun: the same set.
    let a = summarize("killed.jsonl", &[]);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_harness")).current_dir(dir).args(&a).spawn().unwrap();
    let at = 3 + (std::process::id() as usize % 15);
    let started = Instant::now();
    while valid_lines(dir, "killed.jsonl") < at && started.elapsed() < Duration::from_secs(300) {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before = valid_lines(dir, "killed.jsonl");
    assert!(before < n, "killed after {before} of {n}");
    let out = run(dir, &args(&a));
    assert!(out.contains(&format!("{n} summaries")) && out.contains(&format!("{before} reused")), "{out}");
    join(&["killed.jsonl"], "resumed.parquet");
    assert_eq!(sha(dir, "resumed.parquet"), sha(dir, "c1.parquet"), "killed after {before} and resumed: the same set");
    eprintln!("killed after {before} of {n} summaries and resumed: the joined file's sha256 equals the uninterrupted run's ({})", sha(dir, "c1.parquet"));

    // A retrieval suite reads the set as it is.
    let suite = format!(
        r#"schema = 1
name = "served-pairs"
description = "retrieval on pairs made by a real llama.cpp server"
[defaults]
seeds = [0]
device = "cpu"
[defaults.data]
source = "text"
path = "{slice}"
n_ctx = 32
vocab_size = 300
padding = "left"
[defaults.train]
steps = 10
batch_size = 8
lr = 3e-3
warmup_steps = 2
eval_every = 5
[defaults.pairs]
source = "file"
path = "c1.parquet"
query_field = "query"
passage_field = "passage"
test_pairs = 8
[[experiment]]
name = "clm"
kind = "clm"
model = {{ kind = "masked_mixer", d_model = 16, n_layers = 1 }}
[[experiment]]
name = "embed"
kind = "embed"
from = "clm"
[[experiment]]
name = "eval"
kind = "retrieval_eval"
from = "embed"
retrieval_eval = {{ n = [2, 4, 8] }}
"#,
        slice = slice.display()
    );
    let path = write_suite(dir, "served.toml", &suite);
    let out = harness(dir, &["run", path.to_str().unwrap(), "-q"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report = String::from_utf8_lossy(&out.stdout).to_string() + &stderr(&out);
    let m = manifest(&dir.join("results"), "served-pairs");
    assert!(m.iter().all(|m| m["status"] == "finished"), "{m:?}");
    let eval = m.iter().find(|m| m["experiment"] == "eval").unwrap();
    let summary = std::fs::read_to_string(run_dir(&dir.join("results"), "served-pairs", eval).join("summary.json")).unwrap();
    eprintln!("retrieval on the served pairs: {summary} ({})", report.lines().last().unwrap_or_default());
}
