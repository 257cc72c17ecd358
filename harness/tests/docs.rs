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

/// The project's own pages: docs/ without the copies of ../shared (PAPER.md, TECH-NOTES.md, which
/// cite the paper's repositories), and README.md.
fn own_pages() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .filter(|p| !matches!(p.file_name().and_then(|n| n.to_str()), Some("PAPER.md" | "TECH-NOTES.md")))
        .collect();
    files.sort();
    files.push(root().join("README.md"));
    files
}

/// A path of this repository written in backquotes (`harness/src/...`, `ci/x.sh:12`,
/// `suites/paper/x.toml@gpu-smoke`), with its line, anchor or profile suffix removed; None for
/// what is not one (a placeholder, a glob, a results folder that runs create).
fn cited_path(quoted: &str) -> Option<&str> {
    const TOP: &[&str] = &[".ci/", "harness/", "models/", "ci/", "suites/", "scripts/", "bench/", "docs/", "reports/"];
    if !TOP.iter().any(|t| quoted.starts_with(t)) || quoted.contains(['<', '*', '{', '$', '|', ' ']) {
        return None;
    }
    let end = quoted.find(['@', '#', ':']).unwrap_or(quoted.len());
    Some(quoted[..end].trim_end_matches(['.', ',', ';']))
}

#[test]
fn every_path_the_docs_cite_exists() {
    let mut missing = Vec::new();
    let mut cited = 0;
    for page in own_pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        let name = page.strip_prefix(root()).unwrap_or(&page).display().to_string();
        for (i, line) in text.lines().enumerate() {
            // `path` in backquotes, relative to the repository root.
            for quoted in line.split('`').skip(1).step_by(2) {
                if let Some(p) = cited_path(quoted) {
                    cited += 1;
                    if !root().join(p).exists() {
                        missing.push(format!("{name}:{}: `{quoted}`", i + 1));
                    }
                }
            }
            // [text](link), relative to the page.
            for link in line.split("](").skip(1).filter_map(|s| s.split(')').next()) {
                let target = link.split('#').next().unwrap_or_default();
                if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                cited += 1;
                if !page.parent().unwrap().join(target).exists() {
                    missing.push(format!("{name}:{}: link ({link})", i + 1));
                }
            }
        }
    }
    assert!(cited > 50, "the docs cite the repository's files: found {cited}");
    assert!(missing.is_empty(), "the docs cite files that do not exist (moved or renamed?):\n{}", missing.join("\n"));
}

#[test]
fn cited_paths_drop_their_suffixes_and_skip_placeholders() {
    assert_eq!(cited_path("harness/src/data/shards.rs:310"), Some("harness/src/data/shards.rs"));
    assert_eq!(cited_path("suites/paper/memory.toml@gpu-smoke"), Some("suites/paper/memory.toml"));
    assert_eq!(cited_path("docs/suites.md#profiles"), Some("docs/suites.md"));
    assert_eq!(cited_path("ci/gpu-runs/<date>-<card>/"), None);
    assert_eq!(cited_path("results/.cache/tokens"), None, "run outputs are not in the repository");
    assert_eq!(cited_path("--profile"), None);
}

/// Every environment variable the code reads (`env::var` of a name in Rust, `${NAME:-default}` in
/// the CI and helper scripts) is on docs/environment.md, but for the system's own.
#[test]
fn every_environment_variable_read_is_documented() {
    const SYSTEM: &[&str] = &["HOSTNAME", "HOME", "PWD", "XDG_CACHE_HOME", "PATH", "LD_LIBRARY_PATH"];
    fn walk(dir: &Path, ext: &[&str], out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() && !p.ends_with("target") {
                walk(&p, ext, out);
            } else if p.extension().and_then(|x| x.to_str()).is_some_and(|x| ext.contains(&x)) {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    for dir in ["harness/src", "harness/tests", "models/src", "bench"] {
        walk(&root().join(dir), &["rs"], &mut files);
    }
    for dir in ["ci", "scripts", ".ci"] {
        walk(&root().join(dir), &["sh"], &mut files);
    }
    let mut read = std::collections::BTreeSet::new();
    // This file names the patterns it looks for.
    for f in files.iter().filter(|f| !f.ends_with("tests/docs.rs")) {
        let text = std::fs::read_to_string(f).unwrap();
        let name_after = |s: &str| s.chars().take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_').collect::<String>();
        for pat in ["env::var(\"", "env::var_os(\""] {
            read.extend(text.split(pat).skip(1).map(name_after).map(|n| (n, f.clone())));
        }
        for piece in text.split("${").skip(1) {
            let n = name_after(piece);
            if piece[n.len()..].starts_with(":-") {
                read.insert((n, f.clone()));
            }
        }
    }
    let page = std::fs::read_to_string(root().join("docs/environment.md")).unwrap();
    let undocumented: Vec<String> = read
        .iter()
        // A name starts with a letter (`${1:-...}` is an argument) and has two characters or more.
        .filter(|(n, _)| n.len() > 1 && n.starts_with(|c: char| c.is_ascii_uppercase()) && !SYSTEM.contains(&n.as_str()) && !page.contains(&format!("`{n}")))
        .map(|(n, f)| format!("{n} (read in {})", f.strip_prefix(root()).unwrap_or(f).display()))
        .collect();
    assert!(read.len() > 20, "the code reads environment variables: found {}", read.len());
    assert!(undocumented.is_empty(), "docs/environment.md does not list: {}", undocumented.join(", "));
}
