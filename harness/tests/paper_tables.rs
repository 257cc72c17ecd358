//! The report's paper tables end to end: a tiny suite with a `[[table]]` and a `[[claim]]` runs
//! through the binary, and the table files hold the runs' own numbers beside the paper's.
mod common;
use common::*;
use std::collections::BTreeMap;

/// TINY with two seeds, a table and a claim. It evaluates every step: the equal-time view reads
/// each run at the step it had reached after the cheaper entry's mean time, and on a loaded machine
/// a run may be several times slower than its peer; with an eval every 10 steps it would then have
/// no evaluation after step 0 by that time, and the view (which this file checks) would be empty.
fn suite() -> String {
    assert!(TINY.contains("eval_every = 10\n"), "the fixture's eval interval moved: update suite()");
    TINY.replace("seeds = [0]", "seeds = [0, 1]").replace("eval_every = 10", "eval_every = 1").replace("name = \"clm\"\nkind = \"clm\"", "name = \"clm\"\nkind = \"clm\"\ncells = { T = [\"mixer\", \"llama\"] }")
        + r#"
[[table]]
id = "T"
caption = "tiny"
layout = "rows"
entries = ["mixer", "llama"]
metrics = ["train", "test", "test1=eval_loss@epoch1"]
paper = { test = [2.0, 3.0] }

[[claim]]
text = "the mixer wins"
better = "T mixer"
than = "T llama"

[profile.small]
train = { steps = 20 }
"#
}

/// The rows of a csv the report wrote, as column -> value maps.
fn csv(path: &std::path::Path) -> Vec<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    let head: Vec<String> = lines.next().unwrap().split(',').map(String::from).collect();
    lines.map(|l| head.iter().cloned().zip(l.split(',').map(String::from)).collect()).collect()
}

fn report_dir(reports: &std::path::Path) -> std::path::PathBuf {
    let d = reports.join("tiny");
    let mut v: Vec<_> = std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().path()).collect();
    v.sort();
    v.pop().unwrap()
}

#[test]
fn paper_tables_hold_the_runs_numbers_beside_the_papers() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_suite(dir.path(), "tiny.toml", &suite());
    let out = harness(dir.path(), &["run", path.to_str().unwrap(), "-q", "--results", "r", "--reports", "rep"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The runs' own final eval losses, by model kind.
    let mut by_kind: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for m in manifest(&dir.path().join("r"), "tiny") {
        let run = run_dir(&dir.path().join("r"), "tiny", &m);
        let s: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
        let cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
        let kind = if cfg["model"]["kind"] == "masked_mixer" { "mixer" } else { "llama" };
        by_kind.entry(kind.into()).or_default().push(s["eval_loss"].as_f64().unwrap());
    }
    let rep = report_dir(&dir.path().join("rep"));
    let rows = csv(&rep.join("table_T.csv"));
    let get = |entry: &str, metric: &str, view: &str| rows.iter().find(|r| r["entry"] == entry && r["metric"] == metric && r["view"] == view).cloned();
    for (entry, paper) in [("mixer", 2.0), ("llama", 3.0)] {
        let row = get(entry, "test", "final").unwrap_or_else(|| panic!("no final test row for {entry}: {rows:?}"));
        let xs = &by_kind[entry];
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let got: f64 = row["mean"].parse().unwrap();
        assert!((got - mean).abs() < 1e-9, "{entry}: table {got} vs runs {mean}");
        assert_eq!(row["seeds"], "2");
        assert_eq!(row["paper"].parse::<f64>().unwrap(), paper);
        assert!((row["diff"].parse::<f64>().unwrap() - (mean - paper)).abs() < 1e-9);
        // The epoch-1 reading and the equal-time view exist and are losses.
        let e1: f64 = get(entry, "test1", "final").unwrap()["mean"].parse().unwrap();
        assert!(e1.is_finite() && e1 > 0.0);
        assert!(rows.iter().any(|r| r["entry"] == entry && r["view"].starts_with('@')), "{rows:?}");
    }
    let claims = csv(&rep.join("table_claims.csv"));
    assert_eq!(claims.len(), 2, "final and equal-time views: {claims:?}");
    assert!(claims.iter().all(|c| ["reproduced", "contradicted", "inconclusive"].contains(&c["verdict"].as_str())));
    // The verdicts as data: claims.json holds the same tests, and report.json counts them from it.
    let json = |name: &str| serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(rep.join(name)).unwrap()).unwrap();
    let data = json("claims.json");
    let data = data.as_array().unwrap();
    assert_eq!(data.iter().map(|c| c["verdict"].as_str().unwrap()).collect::<Vec<_>>(), claims.iter().map(|c| c["verdict"].as_str()).collect::<Vec<_>>());
    assert!(data.iter().all(|c| c["section"] == "paper tables" && c["seeds_better"] == 2 && c["seeds_than"] == 2), "{data:?}");
    let counted = json("report.json")["verdicts"].clone();
    let n = |v: &str| data.iter().filter(|c| c["verdict"] == v).count();
    assert_eq!(
        counted,
        serde_json::json!({ "reproduced": n("reproduced"), "contradicted": n("contradicted"), "inconclusive": n("inconclusive"),
                            "same_direction_untested": 0, "against_untested": 0 })
    );
    // files.json lists every other file of the report with its sha256, the README included.
    let files = json("files.json");
    assert!(files["claims.json"].is_string() && files["table_claims.csv"].is_string() && files.get("files.json").is_none(), "{files}");
    let readme = std::fs::read_to_string(rep.join("README.md")).unwrap();
    assert_eq!(files["README.md"].as_str().unwrap(), harness::artifacts::sha256_bytes(readme.as_bytes()));
    assert!(readme.contains("### T: tiny") && readme.contains("(paper 2.00, Δ") && readme.contains(": no band stated)"), "{readme}");
    // `harness plan` names the cell each run fills.
    let plan = harness(dir.path(), &["plan", path.to_str().unwrap()]);
    let plan = String::from_utf8_lossy(&plan.stdout).to_string();
    assert_eq!(plan.lines().filter(|l| l.ends_with("T mixer")).count(), 2, "{plan}");

    // Under a profile the paper's value is a direction: no difference is computed.
    let out = harness(dir.path(), &["run", path.to_str().unwrap(), "--profile", "small", "-q", "--results", "r", "--reports", "rep2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = csv(&report_dir(&dir.path().join("rep2")).join("table_T.csv"));
    let row = rows.iter().find(|r| r["entry"] == "mixer" && r["metric"] == "test" && r["view"] == "final").unwrap();
    assert_eq!((row["paper"].as_str(), row["diff"].as_str()), ("2.0", ""), "{row:?}");
}

/// The paper's own layout, one run a cell: each cell gets a match verdict within the suite's band,
/// and the claim gives its direction, untested, never a bare "inconclusive".
#[test]
fn a_single_seed_run_says_whether_each_cell_matches_and_which_way_each_claim_points() {
    let dir = tempfile::tempdir().unwrap();
    // The mixer's paper CE is the run's own (read below) within a tight band; the Llama's far off.
    let text = suite().replace("seeds = [0, 1]", "seeds = [0]");
    let path = write_suite(dir.path(), "tiny.toml", &text);
    let out = harness(dir.path(), &["run", path.to_str().unwrap(), "-q", "--results", "r", "--reports", "rep"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut loss = BTreeMap::new();
    for m in manifest(&dir.path().join("r"), "tiny") {
        let run = run_dir(&dir.path().join("r"), "tiny", &m);
        let s: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
        let cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
        loss.insert(if cfg["model"]["kind"] == "masked_mixer" { "mixer" } else { "llama" }, s["eval_loss"].as_f64().unwrap());
    }
    let (mixer_paper, llama_paper) = (loss["mixer"] + 0.01, loss["llama"] + 0.5);
    let banded = text.replace("paper = { test = [2.0, 3.0] }", &format!("paper = {{ test = [{mixer_paper}, {llama_paper}] }}"))
        + "\n[tolerance]\nce = { abs = 0.05, seed_sd = 0.2, why = \"one seed of a 30-step toy run; the band is this test's\" }\n";
    write_suite(dir.path(), "tiny.toml", &banded);
    // The same runs (a table changes no run id): the report alone is rebuilt.
    let out = harness(dir.path(), &["report", path.to_str().unwrap(), "--results", "r", "--reports", "rep2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rep = report_dir(&dir.path().join("rep2"));
    let cells: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(rep.join("cells.json")).unwrap()).unwrap();
    let verdict = |entry: &str| cells.as_array().unwrap().iter().find(|c| c["entry"] == entry && c["metric"] == "test").unwrap()["verdict"].as_str().unwrap().to_string();
    assert_eq!(verdict("mixer"), "matches");
    assert_eq!(verdict("llama"), "differs by -0.50");
    let rows = csv(&rep.join("table_T.csv"));
    let row = rows.iter().find(|r| r["entry"] == "llama" && r["metric"] == "test" && r["view"] == "final").unwrap();
    assert_eq!(row["match"], "differs by -0.50", "{row:?}");
    let readme = std::fs::read_to_string(rep.join("README.md")).unwrap();
    assert!(readme.contains("**Paper cells: 1 of 2 match**") && readme.contains("CE within ±0.05 nats (one seed of a 30-step toy run"), "{readme}");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(rep.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["cells"], serde_json::json!({ "cells": 2, "matches": 1, "differs": 1 }));
    // One seed a side: the claim's direction, untested; which one follows from the two losses.
    let claims: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(rep.join("claims.json")).unwrap()).unwrap();
    let final_view = claims.as_array().unwrap().iter().find(|c| c["metric"] == "test (final)").unwrap();
    let want = if loss["mixer"] < loss["llama"] { "same direction (untested)" } else { "against the paper (untested)" };
    assert_eq!(final_view["verdict"], want, "{final_view}");
    assert!(final_view["p"].is_null());
    assert!(readme.lines().any(|l| l.contains("**Claims:") && l.contains(want)), "{readme}");
    // Its seed plan: the paper's gap (lower CE is better) at the suite's seed_sd, as the stats
    // module computes it; the headline gives the most any claim needs and the command.
    let gap = llama_paper - mixer_paper;
    let planned = harness::stats::seeds_for_power(gap, 0.2, 0.05, harness::stats::POWER);
    assert_eq!(final_view["seeds_needed"].as_u64().map(|n| n as usize), planned, "{final_view}");
    assert!(planned.is_some(), "the toy's paper gap {gap} is wide enough for a plan");
    assert!(final_view["seeds_basis"].as_str().unwrap().contains("the suite's seed_sd"), "{final_view}");
    let most = claims.as_array().unwrap().iter().filter_map(|c| c["seeds_needed"].as_u64()).max().unwrap();
    let seeds: Vec<String> = (0..most).map(|s| s.to_string()).collect();
    assert!(readme.contains(&format!("the most any needs is **{most} a side** (`harness run {} --set 'seeds=[{}]'`", path.display(), seeds.join(", "))), "{readme}");
    assert_eq!(report["seeds_for_tests"], most, "{report}");
}

#[test]
fn unequal_budgets_get_an_equal_steps_view_from_the_eval_curves() {
    let dir = tempfile::tempdir().unwrap();
    let text = suite().replace(
        "model = [\n  { kind = \"masked_mixer\", d_model = 16, n_layers = 1 },\n  { kind = \"llama\", d_model = 16, n_layers = 1, n_heads = 2 },\n]",
        "point = [\n  { model = { kind = \"masked_mixer\", d_model = 16, n_layers = 1 } },\n  { model = { kind = \"llama\", d_model = 16, n_layers = 1, n_heads = 2 }, train = { stop_at = 20 } },\n]",
    );
    assert!(text.contains("stop_at = 20"));
    let path = write_suite(dir.path(), "tiny.toml", &text);
    let out = harness(dir.path(), &["run", path.to_str().unwrap(), "-q", "--results", "r", "--reports", "rep"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The mixer trained 30 steps, the Llama 20: the per-step view reads both at step 20.
    let mut mixer_at_20 = Vec::new();
    for m in manifest(&dir.path().join("r"), "tiny") {
        let run = run_dir(&dir.path().join("r"), "tiny", &m);
        let cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
        let curve = eval_losses(&run);
        if cfg["model"]["kind"] == "masked_mixer" {
            assert_eq!(curve.last().unwrap().0, 30);
            mixer_at_20.push(curve.iter().find(|(s, _)| *s == 20).unwrap().1);
        } else {
            assert_eq!(curve.last().unwrap().0, 20, "stop_at ends the run");
        }
    }
    let rows = csv(&report_dir(&dir.path().join("rep")).join("table_T.csv"));
    let at = rows.iter().find(|r| r["entry"] == "mixer" && r["metric"] == "test" && r["view"] == "@ step 20").unwrap_or_else(|| panic!("{rows:?}"));
    let want = mixer_at_20.iter().sum::<f64>() / mixer_at_20.len() as f64;
    assert!((at["mean"].parse::<f64>().unwrap() - want).abs() < 1e-9);
    assert_eq!(at["paper"], "", "paper values belong to the final view only");
}

/// The report reads at a glance: a headline says what was reproduced, the run table has no empty
/// column, equal-time readings compare entries of one n_ctx only and never read step 0, every
/// table with curves has its figure, and the models' samples are there.
#[test]
fn reports_read_at_a_glance_and_compare_like_with_like() {
    let dir = tempfile::tempdir().unwrap();
    let text = TINY.replace("seeds = [0]", "seeds = [0, 1]").replace("eval_every = 10", "eval_every = 15").replace(
        "name = \"clm\"\nkind = \"clm\"\n[experiment.sweep]",
        "name = \"clm\"\nkind = \"clm\"\ncells = { C = [\"mixer 16\", \"llama 16\", \"mixer 32\", \"llama 32\"] }\n[experiment.sweep]\n\"data.n_ctx\" = [16, 32]",
    ) + r#"
[[table]]
id = "C"
caption = "two context lengths"
entries = ["mixer 16", "llama 16", "mixer 32", "llama 32"]
metrics = ["eval"]

[[claim]]
text = "the mixer wins at 16"
better = "C mixer 16"
than = "C llama 16"
metric = "eval"
"#;
    let path = write_suite(dir.path(), "tiny.toml", &text);
    let out = harness(dir.path(), &["run", path.to_str().unwrap(), "-q", "--results", "r", "--reports", "rep"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rep = report_dir(&dir.path().join("rep"));
    let md = std::fs::read_to_string(rep.join("README.md")).unwrap();
    // The first lines after the title: what was reproduced, runs and device.
    let head: Vec<&str> = md.lines().skip(2).take(6).collect();
    assert!(head[0].starts_with("> ") && head[0].contains("**8 of 8 runs** finished") && head[0].contains("**tables** C"), "{head:?}");
    assert!(head.iter().any(|l| l.contains("**Claims:") && l.contains("reproduced")), "{head:?}");
    assert!(head.iter().any(|l| l.contains("the mixer wins at 16")), "{head:?}");
    // The run table: every column holds a value for some run.
    let runs = md.split("## Runs").nth(1).unwrap();
    let lines: Vec<&str> = runs.lines().filter(|l| l.starts_with('|')).collect();
    let cells = |l: &str| l.trim_matches('|').split(" | ").map(|c| c.trim().to_string()).collect::<Vec<_>>();
    let names = cells(lines[0]);
    for (i, name) in names.iter().enumerate() {
        assert!(lines[2..].iter().any(|l| cells(l).get(i).is_some_and(|c| c != "—")), "column `{name}` is empty");
    }
    assert!(!names.iter().any(|n| n == "test_ce" || n == "hamming"), "{names:?}");
    // Equal time: per n_ctx, at the cheaper entry's time; never the untrained model's loss.
    let rows = csv(&rep.join("table_C.csv"));
    let timed: Vec<&BTreeMap<String, String>> = rows.iter().filter(|r| r["view"].starts_with("@ ") && r["view"].ends_with(" s")).collect();
    let time_of = |entry: &str| timed.iter().find(|r| r["entry"] == entry).map(|r| r["view"].clone());
    assert_eq!(time_of("mixer 16"), time_of("llama 16"), "one time per n_ctx: {timed:?}");
    assert_eq!(time_of("mixer 32"), time_of("llama 32"), "one time per n_ctx: {timed:?}");
    let mut step0 = Vec::new();
    for m in manifest(&dir.path().join("r"), "tiny") {
        step0.push(eval_losses(&run_dir(&dir.path().join("r"), "tiny", &m))[0].1);
    }
    for r in &timed {
        if let Ok(v) = r["mean"].parse::<f64>() {
            assert!(step0.iter().all(|s| (s - v).abs() > 1e-9), "an equal-time cell reads step 0: {r:?}");
        }
    }
    // One figure for the table; samples of each model.
    assert!(rep.join("eval_loss_C.png").exists() && md.contains("![eval_loss_C](eval_loss_C.png)"));
    assert!(md.contains("## Samples") && md.contains("<details>") && rep.join("samples.json").exists());
}

/// TINY as a suite named `name` that reproduces paper table `id`, its two models filling it.
fn tabled(name: &str, id: &str, paper: &str) -> String {
    TINY.replace("name = \"tiny\"", &format!("name = \"{name}\"\nreproduces = [\"{id}\"]"))
        .replace("name = \"clm\"\nkind = \"clm\"", &format!("name = \"clm\"\nkind = \"clm\"\ncells = {{ {id} = [\"mixer\", \"llama\"] }}"))
        + &format!(
            "\n[[table]]\nid = \"{id}\"\ncaption = \"{name}'s table\"\nlayout = \"rows\"\nentries = [\"mixer\", \"llama\"]\nmetrics = [\"train\", \"test\"]\npaper = {{ test = {paper} }}\n\n[tolerance]\nce = {{ abs = 0.05, why = \"one seed of a 30-step toy run; the band is this test's own\" }}\n\n[[claim]]\ntext = \"the mixer wins\"\nbetter = \"{id} mixer\"\nthan = \"{id} llama\"\n"
        )
}

/// `harness report suites/` over a folder: each suite's report, then the paper's, with PAPER.md's
/// tables in the paper's order whatever the suites' order, a suite with no finished run said
/// not run, every claim, and `--verify` following the chain into the suite reports.
#[test]
fn the_paper_report_puts_the_tables_in_the_papers_order_and_verifies_through_the_suites() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("suites");
    std::fs::create_dir(&folder).unwrap();
    // File order a, b: a holds T5 and b holds T2; the paper report puts T2 first.
    write_suite(&folder, "a.toml", &tabled("widths", "T5", "[2.0, 3.0]"));
    write_suite(&folder, "b.toml", &tabled("heads", "T2", "[2.5, 2.5]"));
    let out = harness(dir.path(), &["run", folder.to_str().unwrap(), "-q", "--results", "r", "--reports", "rep", "--no-report"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Two suites no one ran: `later` shares its Llama with the others (it is read from the suite
    // that has it), `never` shares nothing.
    write_suite(&folder, "c.toml", &tabled("later", "T9", "[1.8, 1.9]").replace("d_model = 16, n_layers = 1 }", "d_model = 24, n_layers = 1 }"));
    write_suite(&folder, "d.toml", &tabled("never", "T13", "[1.0, 1.0]").replace("n_stories = 150", "n_stories = 140"));
    let out = harness(dir.path(), &["report", folder.to_str().unwrap(), "--results", "r", "--reports", "rep"]);
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(out.status.success(), "{said}");
    assert!(said.contains("d.toml: no finished run") && said.lines().filter(|l| l.starts_with("report: ")).count() == 3 && said.contains("paper report: "), "{said}");
    let paper = report_dir_of(&dir.path().join("rep"), "paper");
    let md = std::fs::read_to_string(paper.join("README.md")).unwrap();
    let at = |s: &str| md.find(s).unwrap_or_else(|| panic!("no `{s}` in\n{md}"));
    // T1..T14 in order, each present; ours inside under its paper number.
    let mut last = 0;
    for n in 1..=14 {
        let i = at(&format!("\n### T{n} — "));
        assert!(i > last, "T{n} out of order");
        last = i;
    }
    assert!(at("#### T2: heads's table") > at("### T2 — ") && at("#### T2: heads's table") < at("### T3 — "));
    assert!(at("#### T5: widths's table") > at("### T5 — ") && at("#### T5: widths's table") < at("### T6 — "));
    let t9 = &md[at("### T9 — ")..at("### T10 — ")];
    assert!(t9.contains("([report](../../later/") && t9.contains("1 of 2 runs finished") && t9.contains("#### T9: later's table"), "{t9}");
    assert!(md[at("### T13 — ")..at("### T14 — ")].contains("not run here (0 of 2 runs finished"), "{md}");
    assert!(md.contains("**3 of 4 suites** have finished runs") && md.contains("**5 of 8 runs** finished") && md.contains("tables with results: 3 of 14** (T2, T5, T9)"), "{md}");
    assert!(md.contains("| widths | the mixer wins |") && md.contains("| heads | the mixer wins |"), "{md}");
    assert!(md.contains("c.toml`: 1 of 2 runs: 1 × not run") && md.contains("d.toml`: 2 of 2 runs: 2 × not run"), "{md}");
    // The shared Llama is named by the suite folder it was read from.
    let later = report_dir_of(&dir.path().join("rep"), "later");
    let inputs: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(later.join("inputs.json")).unwrap()).unwrap();
    assert!(inputs.as_object().unwrap().keys().any(|k| k.contains('/')), "{inputs}");
    // One seed a side: the claims say their direction; the cells their match.
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(paper.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["cells"]["cells"], 5, "4 of the two run suites and the shared Llama's in T9: {report}");
    let v = |k: &str| report["verdicts"][k].as_u64().unwrap();
    assert!(v("reproduced") == 0 && v("contradicted") == 0 && v("same_direction_untested") + v("against_untested") >= 2, "{report}");
    // --verify follows the chain; a changed suite report breaks it, named.
    let verify = |args: &[&str]| harness(dir.path(), &[&["report", folder.to_str().unwrap(), "--results", "r", "--verify"][..], args].concat());
    let ok = verify(&[paper.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&ok.stdout).to_string();
    assert!(ok.status.success() && text.contains("0 mismatched") && text.contains("heads/") && text.contains("manifest.json"), "{text}{}", stderr(&ok));
    let suite_readme = report_dir_of(&dir.path().join("rep"), "heads").join("README.md");
    let mut t = std::fs::read_to_string(&suite_readme).unwrap();
    t.push_str("\nedited\n");
    std::fs::write(&suite_readme, t).unwrap();
    let bad = verify(&[paper.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&bad.stdout).to_string();
    assert_eq!(bad.status.code(), Some(1), "{text}");
    assert!(text.lines().any(|l| l.starts_with("BAD") && l.contains("README.md")), "{text}");
}

fn report_dir_of(reports: &std::path::Path, suite: &str) -> std::path::PathBuf {
    let mut v: Vec<_> = std::fs::read_dir(reports.join(suite)).unwrap().map(|e| e.unwrap().path()).collect();
    v.sort();
    v.pop().unwrap()
}
