//! `harness check` end to end: a baseline written from finished runs passes; a moved metric is a
//! regression (exit 1); a run the baseline expects and the results lack is missing (exit 2).
mod common;
use common::*;
use std::path::Path;

fn check(dir: &Path, extra: &[&str]) -> (i32, String) {
    let mut args = vec!["check", "tiny.toml", "--results", "r"];
    args.extend_from_slice(extra);
    let out = harness(dir, &args);
    (out.status.code().unwrap_or(-1), format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out)))
}

/// Moves one number in a finished run's summary and re-hashes it into the manifest: what a code
/// change that alters a result leaves behind.
fn perturb(run: &Path, key: &str, by: f64) {
    let path = run.join("summary.json");
    let mut s: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let v = s[key].as_f64().unwrap();
    s[key] = serde_json::json!(v + by);
    std::fs::write(&path, serde_json::to_string_pretty(&s).unwrap()).unwrap();
    // Written through the artifact store, so the manifest's own hash is renewed too.
    let rd = harness::artifacts::RunDir { path: run.to_path_buf() };
    let mut m = rd.read_manifest().unwrap();
    m.files.insert("summary.json".into(), harness::artifacts::sha256_file(&path).unwrap());
    rd.write_manifest(&m).unwrap();
}

#[test]
fn a_drifted_metric_fails_and_a_missing_run_is_never_a_pass() {
    let dir = tempfile::tempdir().unwrap();
    write_suite(dir.path(), "tiny.toml", TINY);
    let out = harness(dir.path(), &["run", "tiny.toml", "-q", "--results", "r", "--reports", "rep"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // No baseline yet: a clear error naming the fix.
    let (code, text) = check(dir.path(), &[]);
    assert_ne!(code, 0);
    assert!(text.contains("no baseline at ci/baselines/tiny.toml") && text.contains("--update-baseline"), "{text}");
    let (code, text) = check(dir.path(), &["--update-baseline"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("2 runs") && text.contains("+ clm · masked_mixer d16 n1"), "{text}");
    let (code, text) = check(dir.path(), &[]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("0 regression(s), 0 missing") && text.contains("| eval_loss |"), "{text}");

    // The Llama's eval loss moves by 1e-3 nats: a regression, named.
    let llama = manifest(&dir.path().join("r"), "tiny")
        .into_iter()
        .map(|m| run_dir(&dir.path().join("r"), "tiny", &m))
        .find(|p| std::fs::read_to_string(p.join("config.json")).unwrap().contains("\"llama\""))
        .unwrap();
    perturb(&llama, "eval_loss", 1e-3);
    let (code, text) = check(dir.path(), &[]);
    assert_eq!(code, 1, "{text}");
    let bad: Vec<&str> = text.lines().filter(|l| l.contains("REGRESSION")).collect();
    assert_eq!(bad.len(), 1, "{text}");
    assert!(bad[0].contains("llama d16 n1 h2") && bad[0].contains("eval_loss"), "{}", bad[0]);

    // A run the baseline knows but the results lack: missing, exit 2 (not a pass).
    perturb(&llama, "eval_loss", -1e-3);
    std::fs::remove_dir_all(&llama).unwrap();
    let (code, text) = check(dir.path(), &[]);
    assert_eq!(code, 2, "{text}");
    assert!(text.lines().any(|l| l.contains("llama d16 n1 h2") && l.contains("MISSING") && l.contains("not run")), "{text}");

    // A renamed sweep point is missing too: the baseline's run is gone, the new one unguarded.
    let renamed = TINY.replace("d_model = 16, n_layers = 1, n_heads = 2", "d_model = 16, n_layers = 1, n_heads = 4");
    write_suite(dir.path(), "tiny.toml", &renamed);
    let out = harness(dir.path(), &["run", "tiny.toml", "-q", "--results", "r", "--reports", "rep"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (code, text) = check(dir.path(), &[]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("no such run in the suite") && text.contains("not in the baseline"), "{text}");
}

#[test]
fn report_rebuilds_from_finished_runs_without_training() {
    let dir = tempfile::tempdir().unwrap();
    write_suite(dir.path(), "tiny.toml", TINY);
    let out = harness(dir.path(), &["run", "tiny.toml", "-q", "--results", "r", "--reports", "rep"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let before: Vec<_> = manifest(&dir.path().join("r"), "tiny").iter().map(|m| m["finished_utc"].clone()).collect();
    let out = harness(dir.path(), &["report", "tiny.toml", "--results", "r", "--reports", "rep2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let after: Vec<_> = manifest(&dir.path().join("r"), "tiny").iter().map(|m| m["finished_utc"].clone()).collect();
    assert_eq!(before, after, "no run was redone");
    let readme = std::fs::read_dir(dir.path().join("rep2/tiny")).unwrap().next().unwrap().unwrap().path().join("README.md");
    let text = std::fs::read_to_string(readme).unwrap();
    assert!(text.contains("masked_mixer d16 n1") && text.contains("llama d16 n1 h2"), "{text}");
    // The index of the reports folder lists it, with its runs.
    let index = std::fs::read_to_string(dir.path().join("rep2/README.md")).unwrap();
    let row = index.lines().find(|l| l.starts_with("| tiny | [")).unwrap_or_else(|| panic!("{index}"));
    assert!(row.contains("| 2 / 2 |") && row.contains("/README.md)"), "{row}");
    // --verify re-hashes the report's files and the runs it was built from.
    let rep = std::fs::read_dir(dir.path().join("rep2/tiny")).unwrap().next().unwrap().unwrap().path();
    let verify = |d: &std::path::Path| harness(dir.path(), &["report", "tiny.toml", "--results", "r", "--verify", d.to_str().unwrap()]);
    let out = verify(&rep);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success() && text.contains(" 0 mismatched") && text.contains("every file it lists match"), "{text}{}", stderr(&out));
    let one = manifest(&dir.path().join("r"), "tiny").into_iter().next().unwrap();
    let eval = run_dir(&dir.path().join("r"), "tiny", &one).join("metrics_eval.json");
    let original = std::fs::read(&eval).unwrap();
    std::fs::write(&eval, b"[]").unwrap();
    let out = verify(&rep);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("BAD") && text.contains("a file it lists changed"), "{text}");
    std::fs::write(&eval, original).unwrap();
    std::fs::write(rep.join("summary.csv"), b"edited").unwrap();
    let out = verify(&rep);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.code() == Some(1) && text.lines().any(|l| l.starts_with("BAD summary.csv")), "{text}");
    // The README's numbers are covered too, and a file the report did not write is named.
    std::fs::remove_file(rep.join("summary.csv")).unwrap();
    let out = verify(&rep);
    assert!(String::from_utf8_lossy(&out.stdout).lines().any(|l| l.starts_with("BAD summary.csv")), "a deleted file is a mismatch");
    let readme = rep.join("README.md");
    let text = std::fs::read_to_string(&readme).unwrap();
    let at = text.find("| tiny |").or_else(|| text.find(char::is_numeric)).unwrap();
    let digit = text[at..].find(|c: char| c.is_ascii_digit()).unwrap() + at;
    let mut edited = text.clone().into_bytes();
    edited[digit] = if edited[digit] == b'9' { b'8' } else { edited[digit] + 1 };
    std::fs::write(&readme, edited).unwrap();
    let out = verify(&rep);
    let text_out = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.code() == Some(1) && text_out.lines().any(|l| l.starts_with("BAD README.md")), "{text_out}");
    std::fs::write(&readme, &text).unwrap();
    std::fs::write(rep.join("extra.png"), b"not from the report").unwrap();
    let out = verify(&rep);
    let text_out = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text_out.lines().any(|l| l.starts_with("BAD extra.png") && l.contains("not written by this report")), "{text_out}");
    assert!(!text_out.lines().any(|l| l.starts_with("BAD README.md")), "the restored README matches again: {text_out}");

    // A run that is gone: the rebuilt report says so rather than failing or inventing it.
    let gone = manifest(&dir.path().join("r"), "tiny").into_iter().next().unwrap();
    std::fs::remove_dir_all(run_dir(&dir.path().join("r"), "tiny", &gone)).unwrap();
    let out = harness(dir.path(), &["report", "tiny.toml", "--results", "r", "--reports", "rep3"]);
    assert!(out.status.success() && stderr(&out).contains("1 of 2 runs are not finished"), "{}", stderr(&out));
    let index = std::fs::read_to_string(dir.path().join("rep3/README.md")).unwrap();
    assert!(index.contains("| 1 / 2 |"), "{index}");
}

/// `run --force` builds beside the finished run and replaces it only when the rerun finishes: a
/// rerun that fails (its data gone) leaves the earlier result verified and says so.
#[test]
fn a_failed_forced_rerun_keeps_the_earlier_result() {
    let dir = tempfile::tempdir().unwrap();
    let stories: String = (0..120).map(|i| format!("Tom had {i} red balls. He gave one to Sue and she was happy.\n<|endoftext|>\n")).collect();
    std::fs::write(dir.path().join("stories.txt"), stories).unwrap();
    let text = tiny_mixer_only().replace("source = \"embedded\"\nn_stories = 150", "source = \"text\"\npath = \"stories.txt\"");
    write_suite(dir.path(), "tiny.toml", &text);
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "tiny.toml", "-q", "--results", "r", "--reports", "rep"];
        args.extend_from_slice(extra);
        harness(dir.path(), &args)
    };
    assert!(run(&[]).status.success());
    let m = manifest(&dir.path().join("r"), "tiny").pop().unwrap();
    let folder = run_dir(&dir.path().join("r"), "tiny", &m);
    let model = harness::artifacts::sha256_file(&folder.join("model.safetensors")).unwrap();

    std::fs::remove_file(dir.path().join("stories.txt")).unwrap();
    let out = run(&["--force"]);
    assert!(!out.status.success(), "a failed rerun is a failure");
    let err = stderr(&out);
    assert!(err.contains("RERUN FAILED") && err.contains("is kept") && err.contains(".failed"), "{err}");
    // The earlier result is intact and verified; the failed attempt sits beside it.
    assert!(harness::artifacts::RunDir { path: folder.clone() }.verified_finished().is_some());
    assert_eq!(harness::artifacts::sha256_file(&folder.join("model.safetensors")).unwrap(), model);
    let failed = folder.with_file_name(format!("{}.failed", m["run_id"].as_str().unwrap()));
    assert!(failed.join("manifest.json").is_file());
    assert!(!folder.with_file_name(format!("{}.building", m["run_id"].as_str().unwrap())).exists());
    // A plain run reuses the kept result.
    let out = run(&[]);
    assert!(out.status.success() && stderr(&out).contains("reused"), "{}", stderr(&out));
}

/// The portable kernel path (`cpu_kernels = "portable"`): runs made under an environment that
/// asks MKL, ATen and OpenMP for other kernels and threads (as another CPU's defaults would give)
/// have the same bits as runs made without it, so the bitwise baseline passes; planted
/// regressions still fail it; a native run is named as another kernel path (exit 2), never
/// silently compared.
#[test]
fn portable_runs_check_bit_for_bit_whatever_the_environment_and_other_paths_are_named() {
    let dir = tempfile::tempdir().unwrap();
    write_suite(dir.path(), "tiny.toml", TINY);
    let run = |results: &str, extra: &[&str], env: &[(&str, &str)]| {
        let mut args = vec!["run", "tiny.toml", "-q", "--results", results, "--reports", "rep"];
        args.extend_from_slice(extra);
        let out = harness_env(dir.path(), &args, env);
        assert!(out.status.success(), "{}", stderr(&out));
    };
    let check_in = |results: &str, extra: &[&str]| {
        let mut args = vec!["check", "tiny.toml", "--results", results];
        args.extend_from_slice(extra);
        let out = harness(dir.path(), &args);
        (out.status.code().unwrap_or(-1), format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out)))
    };
    let portable = ["--set", "cpu_kernels=\"portable\""];
    let foreign = [("MKL_CBWR", "AUTO"), ("ATEN_CPU_CAPABILITY", "default"), ("OMP_NUM_THREADS", "1"), ("MKL_NUM_THREADS", "1")];
    run("a", &portable, &foreign);
    let (code, text) = check_in("a", &[&portable[..], &["--update-baseline"]].concat());
    assert_eq!(code, 0, "{text}");
    let base_file = dir.path().join("ci/baselines/tiny.toml");
    let baseline = std::fs::read_to_string(&base_file).unwrap();
    assert!(baseline.contains("kernel_path = \"mkl COMPATIBLE · aten AVX2 · 2 threads\""), "{baseline}");
    // This test is about bits. Its runs share the 2 cores with the other tests of this file, so
    // run a's tokens/s is no floor for run b (CI once saw the mixer's drop 5.7x): the speed
    // floors come out of its baseline. `tokens_per_s` floors are tested in check/tests.rs.
    let mut parsed: harness::check::Baseline = toml::from_str(&baseline).unwrap();
    for r in &mut parsed.runs {
        assert!(r.metrics.remove("tokens_per_s").is_some(), "the baseline had a speed floor for {}", r.key);
    }
    std::fs::write(&base_file, parsed.to_toml()).unwrap();

    // The same suite without the foreign environment: the same bits.
    run("b", &portable, &[]);
    let (code, text) = check_in("b", &portable);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("0 regression(s), 0 missing"), "{text}");

    // Planted: the LR warm-up one step longer (30-step schedule) fails, on the metrics and curve.
    let shifted = [&portable[..], &["--set", "train.warmup_steps=4"]].concat();
    run("c", &shifted, &[]);
    let (code, text) = check_in("c", &shifted);
    assert_eq!(code, 1, "{text}");
    assert!(text.lines().filter(|l| l.contains("REGRESSION")).count() >= 4, "{text}");

    // Planted: one metric moved by 1e-3 relative.
    let mixer = manifest(&dir.path().join("b"), "tiny")
        .into_iter()
        .map(|m| run_dir(&dir.path().join("b"), "tiny", &m))
        .find(|p| std::fs::read_to_string(p.join("config.json")).unwrap().contains("\"masked_mixer\""))
        .unwrap();
    let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(mixer.join("summary.json")).unwrap()).unwrap();
    perturb(&mixer, "eval_loss", summary["eval_loss"].as_f64().unwrap() * 1e-3);
    let (code, text) = check_in("b", &portable);
    assert_eq!(code, 1, "{text}");

    // Native runs against the portable baseline: another kernel path, named, exit 2.
    run("d", &[], &[]);
    let (code, text) = check_in("d", &[]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("OTHER KERNEL PATH") && text.contains("2 run(s) on another kernel path") && text.contains("cpu_kernels = \"portable\""), "{text}");
    // Updating from them does not overwrite the portable numbers: it names the variant to write.
    let portable_file = std::fs::read(&base_file).unwrap();
    let (code, text) = check_in("d", &["--update-baseline"]);
    assert_ne!(code, 0, "{text}");
    assert!(text.contains("was written on kernel path `mkl COMPATIBLE") && text.contains("tiny@<tag>.toml"), "{text}");
    // The variant, once written, is the file both a check and an update on this class use.
    let (code, text) = check_in("d", &["--baseline", "ci/baselines/tiny@native.toml", "--update-baseline"]);
    assert_eq!(code, 0, "{text}");
    let (code, text) = check_in("d", &[]);
    assert!(code == 0 && text.contains("tiny@native.toml"), "{text}");
    let (code, text) = check_in("d", &["--update-baseline"]);
    assert!(code == 0 && text.contains("tiny@native.toml: 2 runs, 0 change(s)"), "{text}");
    assert_eq!(std::fs::read(&base_file).unwrap(), portable_file, "the default (portable) baseline was rewritten");
    // Another suite's baseline is not overwritten by this one's runs.
    write_suite(dir.path(), "other.toml", &TINY.replace("name = \"tiny\"", "name = \"other\""));
    let out = harness(dir.path(), &["run", "other.toml", "-q", "--results", "d", "--reports", "rep"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = harness(dir.path(), &["check", "other.toml", "--results", "d", "--baseline", "ci/baselines/tiny@native.toml", "--update-baseline"]);
    let text = stderr(&out);
    assert!(!out.status.success() && text.contains("holds the baseline of suite `tiny`, not of suite `other`"), "{text}");
}
