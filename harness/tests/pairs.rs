//! `harness data pairs`: export the passages of the TinyStories slice, summarise them against
//! stand-in OpenAI-compatible chat servers on 127.0.0.1 (at concurrency 1 and 4, in two shards,
//! killed and resumed, and against a server that fails on purpose), join, and read the joined
//! file in a retrieval suite. The stand-in's summary is a function of the prompt, so every way of
//! making the set must join to the same bytes.
mod common;
use common::*;
use harness::data::summarize::PromptSet;
use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Clean,
    /// Every 10 requests: #1 HTTP 500, #3 HTTP 429, #5 a reply cut in the middle of its JSON,
    /// #7 an answer only after the client's time-out.
    Faulty,
}

struct Server {
    url: String,
    answered: Arc<AtomicUsize>,
    /// Requests the server took (before its delay); in `Mode::Clean` each is answered.
    seen: Arc<AtomicUsize>,
    injected: Arc<Mutex<BTreeMap<&'static str, usize>>>,
}

/// Answers with "Summary: <the text's first four words>"; model "bad" gets HTTP 400; `delay`
/// before every answer.
fn serve(mode: Mode, delay: Duration) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let (answered, injected) = (Arc::new(AtomicUsize::new(0)), Arc::new(Mutex::new(BTreeMap::new())));
    let (a, inj) = (answered.clone(), injected.clone());
    let seen = Arc::new(AtomicUsize::new(0));
    let taken = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let (a, inj, seen) = (a.clone(), inj.clone(), seen.clone());
            std::thread::spawn(move || {
                let Some(req) = HttpRequest::read(&stream) else { return };
                let v: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
                let user = v["messages"][1]["content"].as_str().unwrap_or("");
                let prefix = PromptSet::Tinystories.user("");
                let reply = |status: &str, body: &str, stream: &mut std::net::TcpStream| {
                    let _ = write!(stream, "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                };
                if req.path() != "/v1/chat/completions"
                    || v["messages"][0]["content"] != harness::data::summarize::SYSTEM
                    || !user.starts_with(&prefix)
                    || v["temperature"].as_f64() != Some(0.2)
                {
                    return reply("404 Not Found", r#"{"error": "unexpected request"}"#, &mut stream);
                }
                if v["model"] == "bad" {
                    return reply("400 Bad Request", r#"{"error": "no such model"}"#, &mut stream);
                }
                if v["model"] == "mute" {
                    return reply("200 OK", r#"{"choices": [{"message": {"role": "assistant", "content": "  "}}]}"#, &mut stream);
                }
                let n = seen.fetch_add(1, Ordering::SeqCst);
                let fault = if mode == Mode::Faulty { [None, Some("5xx"), None, Some("429"), None, Some("malformed"), None, Some("timeout"), None, None][n % 10] } else { None };
                if let Some(kind) = fault {
                    *inj.lock().unwrap().entry(kind).or_default() += 1;
                }
                std::thread::sleep(delay);
                let first: Vec<&str> = user[prefix.len()..].split_whitespace().take(4).collect();
                let ok = serde_json::json!({"choices": [{"message": {"role": "assistant", "content": format!(" Summary: {} ", first.join(" "))}}]}).to_string();
                match fault {
                    Some("5xx") => reply("500 Internal Server Error", r#"{"error": "overloaded"}"#, &mut stream),
                    Some("429") => reply("429 Too Many Requests", r#"{"error": "slow down"}"#, &mut stream),
                    Some("malformed") => reply("200 OK", &ok[..ok.len() / 2], &mut stream),
                    Some(_) => {
                        std::thread::sleep(Duration::from_millis(2500));
                        reply("200 OK", &ok, &mut stream)
                    }
                    None => {
                        a.fetch_add(1, Ordering::SeqCst);
                        reply("200 OK", &ok, &mut stream)
                    }
                }
            });
        }
    });
    Server { url, answered, seen: taken, injected }
}

fn run(dir: &Path, args: &[&str]) -> String {
    let out = harness(dir, args);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn summarize<'a>(server: &'a Server, out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["data", "pairs", "summarize", "--passages", "passages.jsonl", "--out", out, "--endpoint", &server.url, "--model", "m"];
    a.extend_from_slice(extra);
    a
}

fn join(dir: &Path, summaries: &[&str], out: &str) -> std::process::Output {
    let mut a = vec!["data", "pairs", "join", "--passages", "passages.jsonl", "--test-pairs", "10", "--out", out, "--summaries"];
    a.extend_from_slice(summaries);
    harness(dir, &a)
}

fn sha(dir: &Path, file: &str) -> String {
    harness::artifacts::sha256_file(&dir.join(file)).unwrap()
}

fn lines(dir: &Path, file: &str) -> usize {
    std::fs::read_to_string(dir.join(file)).map(|t| t.lines().count()).unwrap_or(0)
}

#[test]
fn pairs_are_exported_summarised_resumed_and_joined() {
    let Some(data) = shared_data() else { return eprintln!("../shared/data is absent: skipped") };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let slice = data.join("tinystories/train-head-2MiB.txt");
    let n = 60;
    let out = run(dir, &["data", "pairs", "export", "--set", "tinystories", "--input", slice.to_str().unwrap(), "--count", &n.to_string(), "--out", "passages.jsonl"]);
    assert!(out.contains("60 tinystories passages (rows 0 .. 59)"), "{out}");
    let stories = harness::data::text::read_stories(&slice, "<|endoftext|>", true).unwrap();
    let passages = harness::data::pairset::read_passages(&dir.join("passages.jsonl")).unwrap();
    for (i, p) in passages.iter().enumerate() {
        assert_eq!((p.row, &p.passage, &p.prompt_text), (i, &stories[i], &stories[i]));
    }

    // Concurrency 1 and 4: the same summaries; the rates go to the closing note.
    let slow = serve(Mode::Clean, Duration::from_millis(20));
    // The rate the harness prints: requests over the time spent asking.
    let rate = |out: &str| -> f64 { out.split(" s, ").nth(1).and_then(|r| r.split("/s").next()).and_then(|r| r.parse().ok()).unwrap_or_else(|| panic!("{out}")) };
    let c1 = rate(&run(dir, &summarize(&slow, "c1.jsonl", &[])));
    let c4 = rate(&run(dir, &summarize(&slow, "c4.jsonl", &["--concurrency", "4"])));
    eprintln!("stand-in server with 20 ms per answer: {c1:.1} requests/s at concurrency 1, {c4:.1} at 4");
    assert!(c4 > 1.5 * c1, "four requests in flight should be faster than one: {c1:.1} vs {c4:.1} per second");
    assert_eq!(sha(dir, "c1.jsonl"), sha(dir, "c4.jsonl"));
    assert!(join(dir, &["c1.jsonl"], "full.parquet").status.success());
    let reference = sha(dir, "full.parquet");

    // Two shards, joined, give the same file; a missing shard or overlapping ones are errors.
    run(dir, &summarize(&slow, "s0.jsonl", &["--shard", "0/2", "--concurrency", "4"]));
    run(dir, &summarize(&slow, "s1.jsonl", &["--shard", "1/2", "--concurrency", "4"]));
    assert_eq!((lines(dir, "s0.jsonl"), lines(dir, "s1.jsonl")), (30, 30));
    assert!(join(dir, &["s0.jsonl", "s1.jsonl"], "sharded.parquet").status.success());
    assert_eq!(sha(dir, "sharded.parquet"), reference);
    let e = stderr(&join(dir, &["s0.jsonl"], "x.parquet"));
    assert!(e.contains("30 of 60 passages have no summary (rows [30, 31,"), "{e}");
    let e = stderr(&join(dir, &["c1.jsonl", "s1.jsonl"], "x.parquet"));
    assert!(e.contains("30 rows have two summaries") && e.contains("row 30 in c1.jsonl and s1.jsonl"), "{e}");

    // Killed at a random point (SIGKILL), then rerun: nothing doubled, nothing missing.
    let slower = serve(Mode::Clean, Duration::from_millis(60));
    let args = summarize(&slower, "killed.jsonl", &["--concurrency", "2"]);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_harness")).current_dir(dir).args(&args).spawn().unwrap();
    let at = 5 + (std::process::id() as usize % 30);
    while lines(dir, "killed.jsonl") < at {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // Answers already on their way when the client died are counted before the rerun starts: a
    // pause for requests still in the socket's queue, then until every request taken is answered.
    std::thread::sleep(Duration::from_millis(300));
    let settling = std::time::Instant::now();
    while slower.answered.load(Ordering::SeqCst) < slower.seen.load(Ordering::SeqCst) && settling.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let before = std::fs::read_to_string(dir.join("killed.jsonl")).unwrap().lines().filter(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()).count();
    assert!(before < n, "killed after {before} of {n}");
    let answered = slower.answered.load(Ordering::SeqCst);
    let out = run(dir, &args);
    assert!(out.contains(&format!("{n} summaries")) && out.contains(&format!("{before} reused")), "{out}");
    assert_eq!(slower.answered.load(Ordering::SeqCst) - answered, n - before, "the rerun asks only for what is missing");
    assert!(join(dir, &["killed.jsonl"], "resumed.parquet").status.success());
    assert_eq!(sha(dir, "resumed.parquet"), reference);
    eprintln!("killed after {before} summaries, resumed: the joined file equals the uninterrupted one");

    // A line cut by a kill, then a rerun that fails (no server): the cut line is dropped, no
    // broken line is left inside the file, and the next rerun completes it.
    let mut cut = std::fs::read(dir.join("c1.jsonl")).unwrap();
    let keep = cut.iter().enumerate().filter(|(_, c)| **c == b'\n').nth(40).unwrap().0 + 1;
    cut.truncate(keep + 25);
    std::fs::write(dir.join("cut.jsonl"), &cut).unwrap();
    let dead = harness(dir, &["data", "pairs", "summarize", "--passages", "passages.jsonl", "--out", "cut.jsonl", "--endpoint", "http://127.0.0.1:9", "--model", "m", "--retries", "0", "--timeout-s", "1"]);
    assert!(!dead.status.success());
    assert_eq!(std::fs::read(dir.join("cut.jsonl")).unwrap(), cut[..keep].to_vec(), "the cut line is dropped, the 41 whole ones kept");
    let out = run(dir, &summarize(&slow, "cut.jsonl", &[]));
    assert!(out.contains("41 reused"), "{out}");
    assert!(join(dir, &["cut.jsonl"], "cut.parquet").status.success());
    assert_eq!(sha(dir, "cut.parquet"), reference);
    // Two summarize processes on one --out: the second is refused while the first writes.
    let held = harness::lock::try_acquire(&dir.join("c4.jsonl.lock")).unwrap();
    assert!(matches!(held, harness::lock::Acquire::Held(_)));
    let e = stderr(&harness(dir, &summarize(&slow, "c4.jsonl", &[])));
    assert!(e.contains("--out c4.jsonl is being written by another summarize") && e.contains("its own --out"), "{e}");
    drop(held);

    // A misbehaving server: every failure retried, counted, and nothing lost or doubled.
    let faulty = serve(Mode::Faulty, Duration::ZERO);
    let out = run(dir, &summarize(&faulty, "faulty.jsonl", &["--concurrency", "4", "--timeout-s", "1", "--retries", "10"]));
    let injected = faulty.injected.lock().unwrap().clone();
    for (kind, label) in [("429", "x 429"), ("5xx", "x 5xx"), ("timeout", "x time-out or no connection"), ("malformed", "x malformed")] {
        let k = injected.get(kind).copied().unwrap_or(0);
        assert!(k > 0, "no {kind} injected");
        assert!(out.contains(&format!(" {k} {label}")), "{kind}: the server injected {k}: {out}");
    }
    eprintln!("fault injection: {injected:?}; {out}");
    assert!(join(dir, &["faulty.jsonl"], "faulty.parquet").status.success());
    assert_eq!(sha(dir, "faulty.parquet"), reference);

    // A client error stops the run with its status; what was finished stays.
    let out = harness(dir, &["data", "pairs", "summarize", "--passages", "passages.jsonl", "--out", "c1.jsonl", "--endpoint", &slow.url, "--model", "bad"]);
    assert!(!out.status.success() && stderr(&out).contains("HTTP 400"), "{}", stderr(&out));
    assert_eq!(lines(dir, "c1.jsonl"), n);
    // A server that answers with nothing: retried, then an error, never an empty summary.
    let out = harness(dir, &["data", "pairs", "summarize", "--passages", "passages.jsonl", "--out", "mute.jsonl", "--endpoint", &slow.url, "--model", "mute", "--retries", "1"]);
    assert!(!out.status.success() && stderr(&out).contains("no answer after 2 tries; the last: an empty summary"), "{}", stderr(&out));
    assert_eq!(lines(dir, "mute.jsonl"), 0);

    // The joined file feeds a retrieval suite as it is.
    let provenance: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("full.parquet.provenance.json")).unwrap()).unwrap();
    assert_eq!(provenance["stats"]["pairs"], n);
    assert_eq!(provenance["sampling"]["temperature"], 0.2);
    let suite = format!(
        r#"schema = 1
name = "pairs"
description = "a retrieval suite on the joined pairs"
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
path = "full.parquet"
query_field = "query"
passage_field = "passage"
test_pairs = 10
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
retrieval_eval = {{ n = [2, 4] }}
"#,
        slice = slice.display()
    );
    let path = write_suite(dir, "pairs.toml", &suite);
    run(dir, &["run", path.to_str().unwrap(), "-q"]);
    let m = manifest(&dir.join("results"), "pairs");
    assert!(m.iter().all(|m| m["status"] == "finished"), "{m:?}");
    let embed = m.iter().find(|m| m["experiment"] == "embed").unwrap();
    assert!(embed["inputs"].to_string().contains(&reference), "the embed run records the pairs file's sha256: {}", embed["inputs"]);
}

/// FineWeb passages: the rows after `--skip`, each its first 512 tokens of the given tokenizer,
/// decoded; the summariser's text is the reference's `.strip('<|end_of_text|>')` of it.
#[test]
fn fineweb_passages_are_the_first_512_tokens_after_the_test_rows() {
    let Some(data) = shared_data() else { return eprintln!("../shared/data is absent: skipped") };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let slice = data.join("fineweb-edu/sample10BT-head-1Mchars.txt");
    let s = slice.to_str().unwrap();
    run(dir, &["data", "tokenizer", "--kind", "llama3", "--input", s, "--marker", "\n", "--vocab", "512", "--out", "tok.json"]);
    let out = run(dir, &["data", "pairs", "export", "--set", "fineweb", "--input", s, "--marker", "\n", "--tokenizer", "tok.json", "--skip", "7", "--count", "40", "--out", "passages.jsonl"]);
    assert!(out.contains("40 fineweb passages (rows 7 .. 46)"), "{out}");
    let docs = harness::data::text::read_stories(&slice, "\n", true).unwrap();
    let tok = tokenizers::Tokenizer::from_file(dir.join("tok.json")).unwrap();
    let passages = harness::data::pairset::read_passages(&dir.join("passages.jsonl")).unwrap();
    let mut cut = 0;
    for (i, p) in passages.iter().enumerate() {
        assert_eq!(p.row, 7 + i);
        let ids = tok.encode(docs[p.row].as_str(), false).unwrap().get_ids().to_vec();
        assert_eq!(p.passage, tok.decode(&ids[..ids.len().min(512)], false).unwrap(), "row {}", p.row);
        cut += usize::from(ids.len() > 512);
        assert_eq!(p.prompt_text, harness::data::summarize::py_strip(&p.passage, "<|end_of_text|>"));
    }
    assert!(cut > 0, "no passage of the slice was longer than 512 tokens: the cut is untested");
    // Asking for more than the file holds names the shortfall.
    let e = stderr(&harness(dir, &["data", "pairs", "export", "--set", "fineweb", "--input", s, "--marker", "\n", "--tokenizer", "tok.json", "--count", "100000", "--out", "x.jsonl"]));
    assert!(e.contains("fewer than --count 100000") && e.contains("after skipping 50000"), "{e}");
}
