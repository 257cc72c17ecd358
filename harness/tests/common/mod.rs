//! Helpers shared by the integration tests: tiny suites and running the real binary.
#![allow(dead_code)]
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A CPU-seconds suite: both architectures, tiny widths, the embedded corpus.
pub const TINY: &str = include_str!("../fixtures/tiny.toml");

/// TINY with the masked mixer only.
pub fn tiny_mixer_only() -> String {
    TINY.replace("  { kind = \"llama\", d_model = 16, n_layers = 1, n_heads = 2 },\n", "")
}

/// The folder of the run a manifest describes.
pub fn run_dir(results: &Path, suite: &str, manifest: &serde_json::Value) -> PathBuf {
    results.join(suite).join(manifest["run_id"].as_str().unwrap())
}

/// (step, eval loss) of a finished CLM run, step 0 first.
pub fn eval_losses(run: &Path) -> Vec<(u64, f64)> {
    let rows: Vec<serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(run.join("metrics_eval.json")).unwrap()).unwrap();
    rows.iter().map(|r| (r["step"].as_u64().unwrap(), r["eval_loss"].as_f64().unwrap())).collect()
}

pub fn write_suite(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

pub fn harness(dir: &Path, args: &[&str]) -> Output {
    harness_env(dir, args, &[])
}

pub fn harness_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_harness"));
    cmd.current_dir(dir).args(args).env_remove("HF_HUB_OFFLINE").env_remove("RUST_BACKTRACE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("runs")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

pub fn manifest(results: &Path, suite: &str) -> Vec<serde_json::Value> {
    let mut out: Vec<serde_json::Value> = vec![];
    for e in std::fs::read_dir(results.join(suite)).unwrap() {
        let p = e.unwrap().path().join("manifest.json");
        if p.exists() {
            out.push(serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap());
        }
    }
    out.sort_by_key(|m| m["run_id"].as_str().unwrap().to_string());
    out
}

/// The python beside the harness's torch (`harness doctor`'s libtorch folder), when it has
/// Hugging Face transformers (ci/test.sh installs it from bench/pytorch/requirements.txt).
pub fn transformers_python() -> Option<PathBuf> {
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = harness(&lib, &["doctor", "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let python = Path::new(doc["libtorch_dir"].as_str()?).ancestors().nth(5)?.join("bin/python");
    let ok = std::process::Command::new(&python).args(["-c", "import transformers"]).output().is_ok_and(|o| o.status.success());
    ok.then_some(python)
}

/// `../shared/data` from the workspace root, when present (CI always has it).
pub fn shared_data() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
    if p.join("tinystories/train-head-2MiB.txt").exists() {
        Some(p.canonicalize().unwrap())
    } else if std::env::var_os("CI").is_some() {
        panic!("CI must have ../shared/data beside the checkout");
    } else {
        None
    }
}

/// One HTTP/1.1 request read off a test server's connection: the request line, lower-cased
/// header names with their values, and the body (by Content-Length).
pub struct HttpRequest {
    pub line: String,
    pub headers: std::collections::HashMap<String, String>,
    pub body: Vec<u8>,
}

impl HttpRequest {
    pub fn read(stream: &std::net::TcpStream) -> Option<Self> {
        use std::io::{BufRead, BufReader, Read};
        let mut reader = BufReader::new(stream.try_clone().ok()?);
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let mut headers = std::collections::HashMap::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_lowercase(), v.trim().to_string());
            }
        }
        let len = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        let mut body = vec![0u8; len];
        reader.read_exact(&mut body).ok()?;
        Some(Self { line, headers, body })
    }

    /// The path of the request line.
    pub fn path(&self) -> &str {
        self.line.split_whitespace().nth(1).unwrap_or("")
    }
}
