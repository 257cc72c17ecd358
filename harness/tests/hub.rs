//! The `hf` source against a stand-in for the Hugging Face hub on 127.0.0.1, speaking the URL
//! layout and headers the `hf-hub` crate uses: `{endpoint}/datasets/{repo}/resolve/{rev}/{file}`,
//! a `Range: bytes=0-0` probe answered with ETag, X-Repo-Commit and Content-Range, then a ranged
//! download. The real download code runs; only the server is local.
mod common;
use common::*;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
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
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            let mut range = None;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_lowercase().strip_prefix("range: bytes=") {
                    range = Some(v.trim().to_string());
                }
            }
            let path = request.split_whitespace().nth(1).unwrap_or("").trim_start_matches("/datasets/").to_string();
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
