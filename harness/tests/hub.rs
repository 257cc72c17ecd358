//! The `hf` source against a stand-in for the Hugging Face hub on 127.0.0.1, speaking the URL
//! layout and headers the `hf-hub` crate uses: `{endpoint}/datasets/{repo}/resolve/{rev}/{file}`,
//! a `Range: bytes=0-0` probe answered with ETag, X-Repo-Commit and Content-Range, then a ranged
//! download. The real download code runs; only the server is local.
mod common;
use common::*;
use std::collections::HashMap;
use std::io::Write;
use std::net::TcpListener;

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

fn sha(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

/// Serves `files` (path after `/datasets/`, e.g. "test/stories/resolve/v1/train.txt") for at most
/// 200 connections, then stops; returns the endpoint URL.
fn serve(files: HashMap<String, Vec<u8>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(200) {
            let Ok(mut stream) = stream else { continue };
            let Some(req) = HttpRequest::read(&stream) else { continue };
            let range = req.headers.get("range").and_then(|r| r.strip_prefix("bytes=")).map(String::from);
            let raw = req.path().to_string();
            // The file listing: /api/datasets/{repo}/revision/{rev} -> {"siblings": [...], "sha": ...}
            if let Some(rest) = raw.strip_prefix("/api/datasets/") {
                let prefix = rest.replacen("/revision/", "/resolve/", 1) + "/";
                let siblings: Vec<serde_json::Value> = files
                    .keys()
                    .filter_map(|k| k.strip_prefix(&prefix))
                    .map(|f| serde_json::json!({ "rfilename": f }))
                    .collect();
                let body = serde_json::json!({ "siblings": siblings, "sha": COMMIT }).to_string();
                let _ = write!(stream, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                continue;
            }
            let path = raw.trim_start_matches("/datasets/").to_string();
            let Some(body) = files.get(&path) else {
                let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found");
                continue;
            };
            let len = body.len();
            let (start, end) = match range.as_deref() {
                Some(r) => {
                    let (a, b) = r.split_once('-').unwrap();
                    let a: usize = a.parse().unwrap();
                    (a, if b.is_empty() { len - 1 } else { b.parse().unwrap() })
                }
                None => (0, len - 1),
            };
            let head = format!(
                "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{end}/{len}\r\nETag: \"{}\"\r\nX-Repo-Commit: {COMMIT}\r\nConnection: close\r\n\r\n",
                end + 1 - start,
                sha(body)
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body[start..=end]);
        }
    });
    format!("http://{addr}")
}

fn stories(n: usize, seed: u64) -> Vec<u8> {
    let s: Vec<String> = harness::data::embedded::generate(n, seed).into_iter().map(|r| r.story).collect();
    (s.join("\n<|endoftext|>\n") + "\n<|endoftext|>\n").into_bytes()
}

#[test]
fn downloads_pins_caches_and_fails_clearly() {
    let (train, valid) = (stories(120, 1), stories(20, 2));
    let mut files = HashMap::new();
    files.insert("test/stories/resolve/v1/train.txt".to_string(), train.clone());
    files.insert("test/stories/resolve/v1/valid.txt".to_string(), valid);
    let endpoint = serve(files);
    let dir = tempfile::tempdir().unwrap();
    let hf_home = dir.path().join("hf");
    let data = format!(
        "source = \"hf\"\nrepo = \"test/stories\"\nrevision = \"v1\"\nfiles = [\"train.txt\"]\neval_files = [\"valid.txt\"]\nsha256 = {{ \"train.txt\" = \"{}\" }}",
        sha(&train)
    );
    let text = TINY.replace("source = \"embedded\"\nn_stories = 150", &data);
    let suite = write_suite(dir.path(), "hf.toml", &text);
    let one_model = "model={kind=\"masked_mixer\", d_model=16, n_layers=1}";
    let env = [("HF_ENDPOINT", endpoint.as_str()), ("HF_HOME", hf_home.to_str().unwrap())];
    let run = |results: &str, suite: &std::path::Path, env: &[(&str, &str)]| {
        harness_env(dir.path(), &["run", suite.to_str().unwrap(), "-q", "--results", results, "--set", one_model], env)
    };

    // Online: downloaded into HF_HOME, hashed into the manifest.
    let out = run("r1", &suite, &env);
    assert!(out.status.success(), "{}", stderr(&out));
    let m = &manifest(&dir.path().join("r1"), "tiny")[0];
    assert_eq!(m["inputs"]["hf://datasets/test/stories@v1/train.txt"], sha(&train));

    // Offline: the cache serves it; an empty cache fails with the file named.
    let offline = [env[0], env[1], ("HF_HUB_OFFLINE", "1")];
    let out = run("r2", &suite, &offline);
    assert!(out.status.success(), "{}", stderr(&out));
    let empty = dir.path().join("empty-hf");
    let out = run("r3", &suite, &[env[0], ("HF_HOME", empty.to_str().unwrap()), ("HF_HUB_OFFLINE", "1")]);
    assert!(!out.status.success());
    let e = manifest(&dir.path().join("r3"), "tiny")[0]["error"].as_str().unwrap().to_string();
    assert!(e.contains("offline") && e.contains("train.txt") && e.contains("not in the cache"), "{e}");

    // A file the hub does not have: 404, named.
    let missing = write_suite(dir.path(), "missing.toml", &text.replace("files = [\"train.txt\"]", "files = [\"nope.txt\"]"));
    let out = run("r4", &missing, &env);
    assert!(!out.status.success());
    let e = manifest(&dir.path().join("r4"), "tiny")[0]["error"].as_str().unwrap().to_string();
    assert!(e.contains("test/stories") && e.contains("nope.txt") && e.contains("404"), "{e}");

    // A wrong pin stops the run.
    let pinned = write_suite(dir.path(), "pinned.toml", &text.replace(&sha(&train), &"0".repeat(64)));
    let out = run("r5", &pinned, &env);
    assert!(!out.status.success());
    let e = manifest(&dir.path().join("r5"), "tiny")[0]["error"].as_str().unwrap().to_string();
    assert!(e.contains("differs from the pinned"), "{e}");
}

fn jsonl_docs(n: usize, seed: u64) -> Vec<u8> {
    let docs: Vec<String> = harness::data::embedded::generate(n, seed)
        .into_iter()
        .map(|r| serde_json::json!({ "text": r.story }).to_string())
        .collect();
    (docs.join("\n") + "\n").into_bytes()
}

#[test]
fn glob_patterns_split_rule_and_lazy_download() {
    let mut files = HashMap::new();
    files.insert("test/web/resolve/v2/shards/000.jsonl".to_string(), jsonl_docs(60, 1));
    files.insert("test/web/resolve/v2/shards/001.jsonl".to_string(), jsonl_docs(60, 2));
    files.insert("test/web/resolve/v2/README.md".to_string(), b"# not data".to_vec());
    let endpoint = serve(files);
    let dir = tempfile::tempdir().unwrap();
    let hf_home = dir.path().join("hf");
    let env = [("HF_ENDPOINT", endpoint.as_str()), ("HF_HOME", hf_home.to_str().unwrap())];
    let data = "source = \"hf\"\nrepo = \"test/web\"\nrevision = \"v2\"\nfiles = [\"shards/*.jsonl\"]\neval_rows = 10";
    let text = TINY.replace("source = \"embedded\"\nn_stories = 150", data);
    let suite = write_suite(dir.path(), "web.toml", &text);
    let one = "model={kind=\"masked_mixer\", d_model=16, n_layers=1}";
    let run = |results: &str, extra: &[&str], env: &[(&str, &str)]| {
        let mut a = vec!["run", suite.to_str().unwrap(), "-q", "--results", results, "--set", one];
        a.extend_from_slice(extra);
        harness_env(dir.path(), &a, env)
    };
    // Both shards, sorted; the first 10 documents are the evaluation split.
    let out = run("r1", &[], &env);
    assert!(out.status.success(), "{}", stderr(&out));
    let m = &manifest(&dir.path().join("r1"), "tiny")[0];
    let inputs: Vec<&String> = m["inputs"].as_object().unwrap().keys().filter(|k| k.starts_with("hf://")).collect();
    assert_eq!(inputs, vec!["hf://datasets/test/web@v2/shards/000.jsonl", "hf://datasets/test/web@v2/shards/001.jsonl"]);
    let run_dir = dir.path().join("r1/tiny").join(m["run_id"].as_str().unwrap());
    let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run_dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!((summary["train_stories"].as_u64(), summary["eval_stories"].as_u64()), (Some(110), Some(10)));
    // Needing 30 training documents, only the first shard is fetched.
    let out = run("r2", &["--set", "data.n_stories=30"], &[env[0], ("HF_HOME", dir.path().join("hf2").to_str().unwrap())]);
    assert!(out.status.success(), "{}", stderr(&out));
    let m = &manifest(&dir.path().join("r2"), "tiny")[0];
    assert!(!m["inputs"].as_object().unwrap().keys().any(|k| k.ends_with("001.jsonl")), "{m}");
    // Offline, the pattern resolves against the cached snapshot.
    let out = run("r3", &[], &[env[0], env[1], ("HF_HUB_OFFLINE", "1")]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_silent_hub_times_out_with_the_file_named() {
    // Accepts connections and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = vec![];
        for s in listener.incoming().take(10) {
            held.push(s);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let data = "source = \"hf\"\nrepo = \"test/slow\"\nfiles = [\"train.txt\"]";
    let suite = write_suite(dir.path(), "slow.toml", &TINY.replace("source = \"embedded\"\nn_stories = 150", data));
    let started = std::time::Instant::now();
    let hf_home = dir.path().join("hf");
    let env = [("HF_ENDPOINT", endpoint.as_str()), ("HF_HOME", hf_home.to_str().unwrap()), ("HARNESS_HUB_TIMEOUT_S", "1")];
    let out = harness_env(dir.path(), &["run", suite.to_str().unwrap(), "-q", "--set", "model={kind=\"masked_mixer\", d_model=16, n_layers=1}"], &env);
    assert!(!out.status.success());
    assert!(started.elapsed().as_secs() < 30, "it hung");
    let e = manifest(&dir.path().join("results"), "tiny")[0]["error"].as_str().unwrap().to_string();
    assert!(e.contains("train.txt") && e.contains("no answer within 1 s") && e.contains("HARNESS_HUB_TIMEOUT_S"), "{e}");
}

#[test]
fn presets_resolve_in_the_plan() {
    let dir = tempfile::tempdir().unwrap();
    let text = TINY.replace("source = \"embedded\"\nn_stories = 150", "source = \"hf\"\npreset = \"tinystories\"");
    let suite = write_suite(dir.path(), "p.toml", &text);
    let out = harness(dir.path(), &["plan", suite.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let bad = write_suite(dir.path(), "bad.toml", &text.replace("tinystories", "tinystorie"));
    let out = harness(dir.path(), &["plan", bad.to_str().unwrap()]);
    assert!(stderr(&out).contains("unknown preset `tinystorie`; known: tinystories"), "{}", stderr(&out));
}

/// A parquet file of documents in a `text` column, as the FineWeb and FineMath presets hold them.
fn parquet_docs(n: usize, seed: u64, dir: &std::path::Path, stem: &str) -> Vec<u8> {
    use harness::report::table::{Col, Table};
    let mut t = Table::default();
    t.push("text", Col::Str(harness::data::embedded::generate(n, seed).into_iter().map(|r| r.story).collect()));
    t.write(dir, stem).unwrap();
    std::fs::read(dir.join(format!("{stem}.parquet"))).unwrap()
}

/// B.3: `data.tokenizer_text` trains the tokenizer on another preset's text, and it is that
/// preset's runs' own file (the paper's FineMath runs reused the FineWeb-trained tokenizer); a
/// run without it trains on its own text. Each preset holds its 50,000 test rows and 400 more; the
/// runs read all of it, as the paper's do.
#[test]
fn a_tokenizer_trained_on_another_presets_text_is_that_presets_own() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = HashMap::new();
    let n = 50_000 + 400;
    files.insert("HuggingFaceFW/fineweb-edu/resolve/main/sample/10BT/000.parquet".to_string(), parquet_docs(n, 5, dir.path(), "fw"));
    files.insert("HuggingFaceTB/finemath/resolve/main/finemath-4plus/000.parquet".to_string(), parquet_docs(n, 6, dir.path(), "fm"));
    let endpoint = serve(files);
    let hf_home = dir.path().join("hf");
    let env = [("HF_ENDPOINT", endpoint.as_str()), ("HF_HOME", hf_home.to_str().unwrap())];
    let tok = |preset: &str, text: Option<&str>| -> String {
        let data = format!(
            "source = \"hf\"\npreset = \"{preset}\"\ntokenizer = \"llama3\"\ntokenizer_lines = \"paper\"\n{}",
            text.map_or(String::new(), |t| format!("tokenizer_text = \"{t}\"\n"))
        );
        let suite = write_suite(dir.path(), "tt.toml", &TINY.replace("source = \"embedded\"\nn_stories = 150", &data).replace("vocab_size = 300", "vocab_size = 600"));
        let one = "model={kind=\"masked_mixer\", d_model=16, n_layers=1}";
        let out = harness_env(dir.path(), &["run", suite.to_str().unwrap(), "-q", "--set", one, "--set", "train.steps=2", "--set", "train.eval_batches=1"], &env);
        assert!(out.status.success(), "{preset} {text:?}: {}", stderr(&out));
        let results = dir.path().join("results");
        let config = |m: &serde_json::Value| -> serde_json::Value { serde_json::from_str(&std::fs::read_to_string(run_dir(&results, "tiny", m).join("config.json")).unwrap()).unwrap() };
        let ms = manifest(&results, "tiny");
        let m = ms.iter().find(|m| config(m)["data"]["preset"] == preset && config(m)["data"]["tokenizer_text"].as_str() == text).expect("the run");
        m["inputs"]["tokenizer.json"].as_str().unwrap().to_string()
    };
    let fineweb = tok("fineweb-edu-10bt", None);
    let reused = tok("finemath-4plus", Some("fineweb-edu-10bt"));
    let own = tok("finemath-4plus", None);
    assert_eq!(reused, fineweb, "FineMath with tokenizer_text = FineWeb uses FineWeb's file");
    assert_ne!(own, fineweb, "FineMath's own text trains another tokenizer");
}
