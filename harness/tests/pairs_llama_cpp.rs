//! `harness data pairs` against a real LLM server: llama-cpp-python's OpenAI-compatible server
//! (the paper's own tool, PAPER.md B.1) on 127.0.0.1, serving a tiny random-weight Llama in GGUF
//! that scripts/tiny_gguf.py writes (nothing downloaded). Export 120 TinyStories passages of the
//! slice, summarise at concurrency 1 and 4, kill and resume, join, then the CI retrieval suite on
//! the joined file. With a seed in every request the server is deterministic, so every way of making
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
    let n = 120;
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
        let mut a = vec!["data", "pairs", "join", "--passages", "passages.jsonl", "--test-pairs", "40", "--out", out, "--summaries"];
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
    let at = 3 + (std::process::id() as usize % 100);
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

    // The CI retrieval suite (suites/ci/retrieval.toml: CLM, frozen embeddings, the retrieval
    // model, InfoNCE, top-1 at n = 4..32), one seed, on the served pairs instead of its embedded ones.
    let suite = root.join("suites/ci/retrieval.toml");
    let path = format!("pairs.path=\"{}\"", dir.join("c1.parquet").display());
    let out = harness(
        dir,
        &[
            "run", suite.to_str().unwrap(), "-q", "--set", "seeds=[0]", "--set", "pairs.source=\"file\"", "--set", &path,
            "--set", "pairs.query_field=\"query\"", "--set", "pairs.passage_field=\"passage\"", "--set", "pairs.test_pairs=40",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let m = manifest(&dir.join("results"), "ci-retrieval");
    assert!(m.len() >= 20 && m.iter().all(|m| m["status"] == "finished"), "{m:?}");
    let embed = m.iter().find(|m| m["experiment"] == "embed").unwrap();
    assert!(embed["inputs"].to_string().contains(&sha(dir, "c1.parquet")), "the embed runs record the served pairs: {}", embed["inputs"]);
    let report = std::fs::read_dir(dir.join("reports/ci-retrieval")).unwrap().next().unwrap().unwrap().path().join("README.md");
    let text = std::fs::read_to_string(&report).unwrap();
    let top1: Vec<&str> = text.lines().filter(|l| l.starts_with("| clm → embed |") || l.starts_with("| clm → infonce → embed_tuned |")).collect();
    assert!(!top1.is_empty(), "{text}");
    eprintln!("ci-retrieval on the served pairs (top-1 %, n = 4, 8, 16, 32):\n{}", top1.join("\n"));
}
