//! Every TOML snippet of the documentation (`docs/*.md`, `README.md`) is a suite or a piece of
//! one that the harness reads: a whole suite (it has `schema`) expands with `Suite::parse`; a
//! piece is read as the suite file schema under a minimal header, so a misspelled or removed key
//! in the docs fails here as it would in a user's suite.
use harness::suite::{Suite, SuiteFile};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// (file, line of the block's first line, text) of every ```toml block.
fn toml_blocks() -> Vec<(PathBuf, usize, String)> {
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(root().join("docs")).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|x| x == "md")).collect();
    files.sort();
    files.push(root().join("README.md"));
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let mut open: Option<(usize, String)> = None;
        for (i, line) in text.lines().enumerate() {
            let fence = line.trim_start().starts_with("```");
            match open.take() {
                None if fence && line.trim_start().starts_with("```toml") => open = Some((i + 2, String::new())),
                None => {}
                Some((start, body)) if fence => out.push((f.clone(), start, body)),
                Some((start, mut body)) => {
                    body.push_str(line);
                    body.push('\n');
                    open = Some((start, body));
                }
            }
        }
    }
    out
}

#[test]
fn every_toml_snippet_in_the_docs_is_read_by_the_harness() {
    let blocks = toml_blocks();
    assert!(blocks.len() >= 6, "the docs hold suite snippets: found {}", blocks.len());
    for (file, line, text) in &blocks {
        let at = format!("{}:{line}", file.strip_prefix(root()).unwrap_or(file).display());
        if text.lines().any(|l| l.trim_start().starts_with("schema")) {
            Suite::parse(Path::new(&at), text.clone(), &[], false).unwrap_or_else(|e| panic!("{at}: the suite does not load: {e}"));
        } else {
            // A piece without experiments (a profile, say) gets one, as a suite must have one.
            let experiment = if text.contains("[[experiment]]") { "" } else { "[[experiment]]\nname = \"e\"\nkind = \"clm\"\n" };
            let whole = format!("schema = 1\nname = \"docs\"\ndescription = \"a snippet of the docs\"\n{text}{experiment}");
            toml::from_str::<SuiteFile>(&whole).unwrap_or_else(|e| panic!("{at}: not a piece of a suite: {}", e.message()));
        }
    }
}

#[test]
fn a_misspelled_key_in_a_snippet_fails() {
    let whole = "schema = 1\nname = \"docs\"\ndescription = \"d\"\n[[experiment]]\nname = \"e\"\nkind = \"embed\"\nfrom = \"clm\"\nwhere_ = {}\n";
    assert!(toml::from_str::<SuiteFile>(whole).is_err());
}

#[test]
fn the_suite_page_lists_every_run_key_the_code_takes() {
    // The code's list, as its error for an unknown section gives it.
    let suite = "schema = 1\nname = \"t\"\ndescription = \"d\"\n[[experiment]]\nname = \"e\"\nkind = \"clm\"\n";
    let set = harness::suite::parse_override("no_such_section.x=1").unwrap();
    let err = Suite::parse(Path::new("t.toml"), suite.into(), &[set], false).unwrap_err().to_string();
    let allowed = err.split("allowed: ").nth(1).unwrap_or_else(|| panic!("{err}"));
    let page = std::fs::read_to_string(root().join("docs/suites.md")).unwrap();
    for key in allowed.split(", ").map(str::trim) {
        assert!(page.contains(&format!("`{key}`")), "docs/suites.md does not name the run key `{key}` (the code takes: {allowed})");
    }
}

/// docs/coverage.md is what `harness coverage` prints now: every table and figure of PAPER.md
/// with its suites, or the reason it has none. `HARNESS_BLESS=1` rewrites it.
#[test]
fn the_coverage_table_is_current() {
    let md = harness::coverage::for_project(&root()).unwrap_or_else(|e| panic!("docs/coverage-notes.toml and the suites disagree:\n{e}"));
    let path = root().join("docs/coverage.md");
    if std::env::var_os("HARNESS_BLESS").is_some() {
        std::fs::write(&path, &md).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(committed == md, "docs/coverage.md is out of date: run `HARNESS_BLESS=1 cargo test --release --test docs` (or `harness coverage > docs/coverage.md`)");
    // Every T and H item of PAPER.md is in it.
    let items = harness::coverage::items(&std::fs::read_to_string(root().join("docs/PAPER.md")).unwrap());
    assert_eq!(items.iter().filter(|i| i.id.starts_with('T')).count(), 14);
    assert_eq!(items.iter().filter(|i| i.id.starts_with('F')).count(), 24);
}
