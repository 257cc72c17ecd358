//! `harness data summarize` against a stand-in OpenAI-compatible chat server on 127.0.0.1.
mod common;
use common::*;
use std::io::Write;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Answers chat completions with "Summary of: <first words>"; model "bad" gets HTTP 400.
fn serve(count: Arc<AtomicUsize>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(100) {
            let Ok(mut stream) = stream else { continue };
            let Some(req) = HttpRequest::read(&stream) else { continue };
            let v: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
            let ok_path = req.line.starts_with("POST /v1/chat/completions ");
            let system_ok = v["messages"][0]["content"] == harness::data::summarize::SYSTEM;
            let user = v["messages"][1]["content"].as_str().unwrap_or("");
            let (status, reply) = if !ok_path || !system_ok || !user.starts_with(harness::data::summarize::USER_PREFIX) {
                ("404 Not Found", serde_json::json!({"error": "unexpected request"}))
            } else if v["model"] == "bad" {
                ("400 Bad Request", serde_json::json!({"error": "no such model"}))
            } else {
                count.fetch_add(1, Ordering::SeqCst);
                let story = &user[harness::data::summarize::USER_PREFIX.len()..];
                let first: Vec<&str> = story.split_whitespace().take(4).collect();
                ("200 OK", serde_json::json!({"choices": [{"message": {"role": "assistant", "content": format!(" Summary of: {} ", first.join(" "))}}]}))
            };
            let text = reply.to_string();
            let _ = write!(stream, "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}", text.len());
        }
    });
    format!("http://{addr}/v1")
}

#[test]
fn summarizes_resumes_and_reports_errors() {
    let dir = tempfile::tempdir().unwrap();
    let stories: Vec<String> = harness::data::embedded::generate(6, 9).into_iter().map(|r| r.story).collect();
    std::fs::write(dir.path().join("s.txt"), stories.join("\n<|endoftext|>\n") + "\n<|endoftext|>\n").unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let endpoint = serve(count.clone());
    let args = |limit: &str, model: &str| {
        vec!["data", "summarize", "--input", "s.txt", "--out", "sum.jsonl", "--endpoint", &endpoint, "--limit", limit, "--rate", "0", "--model", model]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    let run = |a: Vec<String>| harness(dir.path(), &a.iter().map(String::as_str).collect::<Vec<_>>());
    let out = run(args("3", "m"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(count.load(Ordering::SeqCst), 3);
    // Resume: only stories 3 and 4 are asked for.
    let out = run(args("5", "m"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(count.load(Ordering::SeqCst), 5);
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(dir.path().join("sum.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5);
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["index"], i);
        let first: Vec<&str> = stories[i].split_whitespace().take(4).collect();
        assert_eq!(l["summary"], format!("Summary of: {}", first.join(" ")));
    }
    let meta: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("sum.jsonl.meta.json")).unwrap()).unwrap();
    assert_eq!(meta["output_sha256"].as_str().unwrap().len(), 64);
    // A client error is reported with its status, and the finished summaries stay.
    let out = run(args("6", "bad"));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("HTTP 400"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(dir.path().join("sum.jsonl")).unwrap().lines().count(), 5);
}
