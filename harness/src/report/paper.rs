//! The paper as one report: `harness report suites/paper/` writes each suite's report, then
//! `reports/paper/<version>/`: PAPER.md's tables T1-T14 in the paper's order, each taken from the
//! reports of the suites that reproduce it, then its figures, every claim with its verdict, what
//! was not run and why, and a link to every suite report it was made from.
use super::claims::{self, Verdict};
use super::paper_tables::{cell_tally, CellVerdict};
use super::RunRecord;
use crate::artifacts::{sha256_file, Provenance, RunStatus};
use crate::coverage::{items, Item};
use crate::suite::Suite;
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// PAPER.md's digest, for the tables' and figures' order and titles.
const PAPER_MD: &str = include_str!("../../../docs/PAPER.md");

/// The folder name of the paper report under the reports root.
pub const PAPER: &str = "paper";

/// One suite of the paper: its runs as found in the results folder, and its report folder when
/// one was written (a suite with no finished run gets none).
pub struct SuiteReport<'a> {
    pub suite: &'a Suite,
    pub records: Vec<RunRecord>,
    pub dir: Option<PathBuf>,
}

impl SuiteReport<'_> {
    fn finished(&self) -> usize {
        self.records.iter().filter(|r| r.status == RunStatus::Finished).count()
    }

    fn readme(&self) -> Option<String> {
        std::fs::read_to_string(self.dir.as_ref()?.join("README.md")).ok()
    }

    fn json<T: serde::de::DeserializeOwned>(&self, name: &str) -> Vec<T> {
        self.dir.as_ref().and_then(|d| std::fs::read_to_string(d.join(name)).ok()).and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default()
    }

    /// The suite report's path from the paper report's folder: `../../<suite>/<version>`.
    fn link(&self) -> Option<String> {
        let d = self.dir.as_ref()?;
        let suite = d.parent()?.file_name()?.to_string_lossy();
        let version = d.file_name()?.to_string_lossy();
        Some(format!("../../{suite}/{version}"))
    }
}

/// A README's sections: (heading level, heading, the lines from the heading to the next heading
/// of the same or a higher level).
fn sections(readme: &str) -> Vec<(usize, String, String)> {
    let lines: Vec<&str> = readme.lines().collect();
    let level = |l: &str| if l.starts_with("### ") { 3 } else if l.starts_with("## ") { 2 } else { 0 };
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let lv = level(l);
        if lv == 0 {
            continue;
        }
        let end = lines[i + 1..].iter().position(|m| (1..=lv).contains(&level(m))).map_or(lines.len(), |p| i + 1 + p);
        out.push((lv, l.trim_start_matches('#').trim().to_string(), lines[i..end].join("\n")));
    }
    out
}

/// What of a suite report shows paper item `id`: its `### <id>: ...` tables, or, where the suite
/// reproduces `id` without a `[[table]]` of it, its kinds' sections in PAPER.md's layout
/// (`## Retrieval ... (PAPER.md T1 layout)`, `## Peak memory (PAPER.md T6, T7)`).
pub fn shown(readme: &str, id: &str) -> Vec<String> {
    let all = sections(readme);
    let tables: Vec<String> = all.iter().filter(|(lv, h, _)| *lv == 3 && h.starts_with(&format!("{id}:"))).map(|s| s.2.clone()).collect();
    if !tables.is_empty() {
        return tables;
    }
    all.iter().filter(|(lv, h, _)| *lv == 2 && h.contains("(PAPER.md ") && !h.starts_with("Paper tables")).map(|s| s.2.clone()).collect()
}

/// Headings two levels down (a suite's `## X` sits under the paper report's `### T1`), and
/// relative links made relative to the paper report's folder.
fn embed(md: &str, link: &str) -> String {
    let mut out = String::new();
    for line in md.lines() {
        let line = if line.starts_with('#') { format!("##{line}") } else { line.to_string() };
        out.push_str(&relink(&line, link));
        out.push('\n');
    }
    out
}

/// `](file)` -> `](<prefix>/file)` for links into the suite report's own folder.
fn relink(line: &str, prefix: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(i) = rest.find("](") {
        out.push_str(&rest[..i + 2]);
        rest = &rest[i + 2..];
        let local = !(rest.starts_with("http") || rest.starts_with('#') || rest.starts_with('/') || rest.starts_with(".."));
        if local {
            out.push_str(prefix);
            out.push('/');
        }
    }
    out.push_str(rest);
    out
}

/// Writes `reports/paper/<version>/` from the suites' reports and returns its folder.
pub fn write(suites: &[SuiteReport], profile: Option<&str>, root: &Path, prov: &Provenance) -> Result<PathBuf> {
    let dir = super::version_dir(root, PAPER, prov)?;
    let paper_items = items(PAPER_MD);
    let tables: Vec<&Item> = paper_items.iter().filter(|i| i.id.starts_with('T')).collect();
    let figures: Vec<&Item> = paper_items.iter().filter(|i| i.id.starts_with('F')).collect();
    let by = |id: &str| reproducing(suites, id);

    let mut verdicts: Vec<(String, Verdict)> = Vec::new();
    let mut cells: Vec<CellVerdict> = Vec::new();
    for s in suites {
        verdicts.extend(s.json::<Verdict>("claims.json").into_iter().map(|v| (s.suite.file.name.clone(), v)));
        cells.extend(s.json::<CellVerdict>("cells.json"));
    }
    let runs: usize = suites.iter().map(|s| s.records.len()).sum();
    let finished: usize = suites.iter().map(SuiteReport::finished).sum();
    let distinct: std::collections::BTreeSet<&str> = suites.iter().flat_map(|s| s.records.iter().map(|r| r.run.id.as_str())).collect();
    let with_results: Vec<&str> = tables
        .iter()
        .filter(|t| by(&t.id).iter().any(|s| s.readme().is_some_and(|md| !shown(&md, &t.id).is_empty())))
        .map(|t| t.id.as_str())
        .collect();

    let mut md = String::new();
    let _ = writeln!(md, "# The paper, reproduced — {}\n", dir.file_name().unwrap_or_default().to_string_lossy());
    let _ = writeln!(md, "\"Masked Mixers for Language Generation and Retrieval\" (Badger, arXiv 2409.01482), every table in PAPER.md's order.\n");
    let tally = claims::tally(&verdicts.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>());
    let judged = cells.iter().filter(|c| c.matches() || c.differs()).count();
    let _ = writeln!(
        md,
        "> **{} of {} suites** have finished runs · **{finished} of {runs} runs** finished ({} distinct configurations; a run two suites share is computed once) · \
         **tables with results: {} of {}**{} · **paper cells: {} of {judged} match** · **claims: {}**\n>\n> Scale: {}\n",
        suites.iter().filter(|s| s.finished() > 0).count(),
        suites.len(),
        distinct.len(),
        with_results.len(),
        tables.len(),
        if with_results.is_empty() { String::new() } else { format!(" ({})", with_results.join(", ")) },
        cells.iter().filter(|c| c.matches()).count(),
        claims::tally_text(&tally),
        match profile {
            Some(p) => format!(
                "profile `{p}`: every number is the suites' grid at that profile's scale, so the paper's values are directions, not targets \
                 (no cell is matched, and a claim's verdict is about this scale)."
            ),
            None => "the paper's own settings (each suite's derivation is in its file): cells are matched within each suite's `[tolerance]`.".into(),
        }
    );

    seed_plan(&mut md, &verdicts);
    tables_section(&mut md, &tables, suites);
    figures_section(&mut md, &figures, suites);
    claims_section(&mut md, &verdicts);
    not_run_section(&mut md, suites);
    let made_from = suite_reports_section(&mut md, suites)?;

    let meta = serde_json::json!({
        "suite": PAPER,
        "version": dir.file_name().unwrap_or_default().to_string_lossy(),
        "git_sha": prov.git_sha,
        "git_dirty": prov.git_dirty,
        "profile": profile,
        "runs": runs,
        "finished": finished,
        "distinct_runs": distinct.len(),
        "tables_with_results": with_results,
        "verdicts": tally,
        "cells": cell_tally(&cells),
        "suites": made_from,
    });
    crate::artifacts::write_atomic(&dir.join("report.json"), serde_json::to_string_pretty(&meta)?.as_bytes())?;
    crate::artifacts::write_atomic(&dir.join("cells.json"), serde_json::to_string_pretty(&cells)?.as_bytes())?;
    // The paper report reads no run itself: each suite report's inputs.json names its runs.
    crate::artifacts::write_atomic(&dir.join("inputs.json"), b"{}")?;
    let _ = writeln!(md, "## Files\n");
    let _ = writeln!(
        md,
        "`report.json` names each suite report this one was made from with the sha256 of its `files.json`; `harness report <folder of suites> \
         --verify <this folder>` re-hashes this report's files, then each of those suite reports, their runs' manifests and every file they list.\n"
    );
    super::seal(&dir, md)?;
    super::index(root)?;
    Ok(dir)
}

/// The suites that list `id` (T3, F11) in `reproduces`.
fn reproducing<'a, 's>(suites: &'a [SuiteReport<'s>], id: &str) -> Vec<&'a SuiteReport<'s>> {
    suites.iter().filter(|s| s.suite.file.reproduces.iter().any(|r| r == id)).collect()
}

/// Each suite's seed plan: the most seeds a side any of its claims' tests needs.
fn seed_plan(md: &mut String, verdicts: &[(String, Verdict)]) {
    // Each suite's seed plan: the most seeds a side any of its claims' tests needs.
    let mut plan: BTreeMap<&str, usize> = BTreeMap::new();
    for (suite, v) in verdicts {
        if let Some(n) = v.seeds_needed {
            let most = plan.entry(suite.as_str()).or_default();
            *most = (*most).max(n);
        }
    }
    if !plan.is_empty() {
        let _ = writeln!(
            md,
            "> Seeds for the claims' tests (the most any claim of the suite needs a side, at the paper's gaps; the suite reports give each): {}\n",
            plan.iter().map(|(s, n)| format!("{s} {n}")).collect::<Vec<_>>().join(", ")
        );
    }

}

/// T1-T14 in PAPER.md's order: each table's sections from the reports of the suites that
/// reproduce it.
fn tables_section(md: &mut String, tables: &[&Item], suites: &[SuiteReport]) {
    let _ = writeln!(md, "## Tables (PAPER.md G order)\n");
    for t in tables {
        let _ = writeln!(md, "### {} — {}\n", t.id, t.title);
        let from = reproducing(suites, &t.id);
        if from.is_empty() {
            let _ = writeln!(md, "No suite reproduces it: see docs/coverage.md.\n");
            continue;
        }
        for s in from {
            let (Some(readme), Some(link)) = (s.readme(), s.link()) else {
                let _ = writeln!(md, "`{}`: not run here ({} of {} runs finished; see Not run below).\n", s.suite.path.display(), s.finished(), s.records.len());
                continue;
            };
            let parts = shown(&readme, &t.id);
            let _ = writeln!(md, "From `{}` ([report]({link}/README.md), {} of {} runs finished):\n", s.suite.path.display(), s.finished(), s.records.len());
            if parts.is_empty() {
                let _ = writeln!(md, "Its report shows no section of {} (none of the runs that fill it finished).\n", t.id);
            }
            for p in parts {
                md.push_str(&embed(&p, &link));
                md.push('\n');
            }
        }
    }

}

/// The figures, each with the reports of the suites that draw it.
fn figures_section(md: &mut String, figures: &[&Item], suites: &[SuiteReport]) {
    let _ = writeln!(md, "## Figures (PAPER.md H)\n");
    let _ = writeln!(md, "| figure | what | suites (report) |\n|---|---|---|");
    for f in figures {
        let from: Vec<String> = reproducing(suites, &f.id)
            .iter()
            .map(|s| match s.link() {
                Some(l) => format!("[{}]({l}/README.md)", s.suite.file.name),
                None => format!("{} (not run)", s.suite.file.name),
            })
            .collect();
        let n = f.id.trim_start_matches('F');
        let _ = writeln!(md, "| H.{n} | {} | {} |", f.title.replace('|', "\\|"), if from.is_empty() { "— (docs/coverage.md says why)".into() } else { from.join(", ") });
    }
    md.push('\n');

}

/// Every suite's claims with their verdicts.
fn claims_section(md: &mut String, verdicts: &[(String, Verdict)]) {
    let _ = writeln!(md, "## Claims (every suite)\n");
    if verdicts.is_empty() {
        let _ = writeln!(md, "No claim was tested: no suite with a claim has finished runs on both sides.\n");
    } else {
        let _ = writeln!(md, "{} {}\n", claims::rule(), claims::SEEDS_RULE);
        let _ = writeln!(md, "| suite | claim | sides | metric (view) | ours | seeds | verdict | seeds a side for a test |\n|---|---|---|---|---|---|---|---|");
        for (suite, v) in verdicts {
            let _ = writeln!(
                md,
                "| {suite} | {} | {} vs {} | {} | {} vs {} | {} / {} | {} | {} |",
                v.claim.trim().replace('|', "\\|"),
                v.better,
                v.than,
                v.metric,
                super::table::fmt_num(v.mean_better),
                super::table::fmt_num(v.mean_than),
                v.seeds_better,
                v.seeds_than,
                v.verdict,
                v.seeds_cell()
            );
        }
        md.push('\n');
    }

}

/// The runs that did not finish, suite by suite, with why.
fn not_run_section(md: &mut String, suites: &[SuiteReport]) {
    let _ = writeln!(md, "## Not run\n");
    let mut all_ran = true;
    for s in suites {
        let missing: Vec<&RunRecord> = s.records.iter().filter(|r| r.status != RunStatus::Finished).collect();
        if missing.is_empty() {
            continue;
        }
        all_ran = false;
        let mut why: BTreeMap<String, usize> = BTreeMap::new();
        for r in &missing {
            let e = r.error.as_deref().unwrap_or("not run");
            *why.entry(e.lines().next().unwrap_or(e).chars().take(200).collect()).or_default() += 1;
        }
        let reasons: Vec<String> = why.iter().map(|(w, n)| format!("{n} × {w}")).collect();
        let _ = writeln!(md, "- `{}`: {} of {} runs: {}", s.suite.path.display(), missing.len(), s.records.len(), reasons.join("; "));
    }
    if all_ran {
        let _ = writeln!(md, "Every run of every suite finished.");
    }
    md.push('\n');

}

/// The suite reports this one was made from, with the sha256 of each one's `files.json` (for
/// `report.json`).
fn suite_reports_section(md: &mut String, suites: &[SuiteReport]) -> Result<serde_json::Map<String, serde_json::Value>> {
    let _ = writeln!(md, "## Suite reports\n");
    let _ = writeln!(md, "| suite | reproduces | runs finished | report |\n|---|---|---|---|");
    let mut made_from = serde_json::Map::new();
    for s in suites {
        let report = match (s.link(), &s.dir) {
            (Some(l), Some(d)) => {
                let hash = sha256_file(&d.join("files.json")).with_context(|| format!("hashing {}/files.json", d.display()))?;
                made_from.insert(s.suite.file.name.clone(), serde_json::json!({ "report": l.trim_start_matches("../../"), "files_json_sha256": hash }));
                format!("[{}]({l}/README.md)", l.trim_start_matches("../../"))
            }
            _ => "—".into(),
        };
        let _ = writeln!(md, "| {} | {} | {} / {} | {report} |", s.suite.file.name, s.suite.file.reproduces.join(", "), s.finished(), s.records.len());
    }
    md.push('\n');

    Ok(made_from)
}

/// `harness report <folder> --verify reports/paper/<version>`: this report's files, then each
/// suite report it names (its `files.json` as it was when this one was written, and everything
/// [`super::verify`] checks of it).
pub fn verify(report: &Path, results: &Path) -> Result<Vec<(String, bool, String)>> {
    let mut out = super::verify(report, results, PAPER)?;
    let meta: serde_json::Value = std::fs::read_to_string(report.join("report.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .with_context(|| format!("{}/report.json is missing or not JSON", report.display()))?;
    let root = report.parent().and_then(Path::parent).with_context(|| format!("{}: not inside a reports folder", report.display()))?;
    let suites = meta.get("suites").and_then(|s| s.as_object()).cloned().unwrap_or_default();
    for (suite, m) in &suites {
        let (Some(rel), Some(want)) = (m.get("report").and_then(|v| v.as_str()), m.get("files_json_sha256").and_then(|v| v.as_str())) else {
            out.push((suite.clone(), false, "report.json names it without its report and hash".into()));
            continue;
        };
        let dir = root.join(rel);
        let got = sha256_file(&dir.join("files.json")).unwrap_or_else(|_| "missing".into());
        out.push((format!("{}/files.json", dir.display()), got == want, if got == want { "matches".into() } else { format!("sha256 {got}, the paper report used {want}") }));
        out.extend(super::verify(&dir, results, suite)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const README: &str = "# s — v\n\n> head\n\n## Paper tables (PAPER.md G layout)\n\nEach cell...\n\n### T2: Llama by width\n\n| a |\n|---|\n\n### T3: Mixer by width\n\n| b |\n\n### Claims\n\nrule\n\n## Retrieval: top-1 accuracy (%) by n (PAPER.md T1 layout)\n\n| c |\n\n### Claim: mixers win\n\n| d |\n\n## Summary (mean ± sd over seeds)\n\n## Figures\n\n![eval_loss_T2](eval_loss_T2.png)\n";

    #[test]
    fn a_table_is_taken_by_its_heading_and_a_kind_section_by_its_layout_note() {
        let t2 = shown(README, "T2");
        assert_eq!(t2.len(), 1);
        assert!(t2[0].starts_with("### T2: Llama by width") && t2[0].contains("| a |") && !t2[0].contains("T3"), "{t2:?}");
        // T12 has no table heading here: the kind's sections in PAPER.md's layout, subsections included.
        let t12 = shown(README, "T12");
        assert_eq!(t12.len(), 1, "{t12:?}");
        assert!(t12[0].starts_with("## Retrieval") && t12[0].contains("### Claim: mixers win") && !t12[0].contains("Summary"), "{t12:?}");
        assert!(shown("# s\n\n## Summary\n", "T1").is_empty());
    }

    #[test]
    fn embedded_sections_sit_two_levels_down_with_links_into_their_own_report() {
        let md = embed("## Figures\n\n![eval](eval_loss_T2.png) [doc](https://x.org/a) [up](../other.md) [here](#t2)\n", "../../ts/v1");
        assert!(md.starts_with("#### Figures\n"), "{md}");
        assert!(md.contains("](../../ts/v1/eval_loss_T2.png)") && md.contains("](https://x.org/a)") && md.contains("](../other.md)") && md.contains("](#t2)"), "{md}");
    }

    #[test]
    fn the_digest_gives_fourteen_tables_in_order() {
        let ids: Vec<String> = items(PAPER_MD).into_iter().filter(|i| i.id.starts_with('T')).map(|i| i.id).collect();
        let want: Vec<String> = (1..=14).map(|n| format!("T{n}")).collect();
        assert_eq!(ids, want);
    }
}
