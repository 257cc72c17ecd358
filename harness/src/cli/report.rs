//! `harness report`: a versioned report from finished runs alone (one suite, or a folder of suites
//! and then the paper's report), or `--verify` of a report folder.
use super::{print, SuiteArgs};
use anyhow::{Context, Result};
use harness::artifacts::{Provenance, RunStatus};
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct Report {
    #[command(flatten)]
    args: SuiteArgs,
    /// Where versioned reports go.
    #[arg(long, default_value = "reports")]
    reports: PathBuf,
    /// Instead of writing a report, re-hash this report folder's files, the run manifests it
    /// was built from and every file they list; exit 1 on any mismatch.
    #[arg(long, value_name = "REPORT_DIR")]
    verify: Option<PathBuf>,
}

impl Report {
    pub fn run(self) -> Result<()> {
        match &self.verify {
            Some(dir) => verify(&self.args, dir),
            None if self.args.suite.is_dir() => paper(&self.args, &self.reports),
            None => one(&self.args, &self.reports),
        }
    }
}

/// `--verify DIR`: every file of the report and of the runs it was built from, re-hashed.
fn verify(args: &SuiteArgs, dir: &Path) -> Result<()> {
    let rows = if args.suite.is_dir() {
        args.load_all()?;
        harness::report::paper::verify(dir, &args.results)?
    } else {
        let suite = args.load()?;
        harness::report::verify(dir, &args.results, &suite.file.name)?
    };
    let bad = rows.iter().filter(|r| !r.1).count();
    let mut text = String::new();
    for (item, ok, detail) in &rows {
        text.push_str(&format!("{} {item}: {detail}\n", if *ok { "ok " } else { "BAD" }));
    }
    text.push_str(&format!("{}: {} checked, {bad} mismatched\n", dir.display(), rows.len()));
    print(&text);
    if bad > 0 {
        std::process::exit(1);
    }
    Ok(())
}

/// A folder of suites: each suite's report, then the paper's.
fn paper(args: &SuiteArgs, reports: &Path) -> Result<()> {
    let suites = args.load_all()?;
    let prov = Provenance::collect();
    let mut parts = Vec::new();
    for suite in &suites {
        let records = harness::check::records(suite, &args.results);
        let finished = records.iter().filter(|r| r.status == RunStatus::Finished).count();
        // A suite with nothing finished gets no report of its own: the paper report says why.
        let dir = if finished > 0 {
            let sections = harness::experiments::report_sections(suite);
            let d = harness::report::write(suite, &records, &sections, reports, &args.results, &prov).with_context(|| format!("the report of {}", suite.path.display()))?;
            println!("report: {}", d.join("README.md").display());
            Some(d)
        } else {
            eprintln!("{}: no finished run in {}: no report of its own", suite.path.display(), args.results.display());
            None
        };
        parts.push(harness::report::paper::SuiteReport { suite, records, dir });
    }
    let dir = harness::report::paper::write(&parts, args.profile.as_deref(), reports, &prov)?;
    println!("paper report: {}", dir.join("README.md").display());
    Ok(())
}

/// One suite's report.
fn one(args: &SuiteArgs, reports: &Path) -> Result<()> {
    let suite = args.load()?;
    let records = harness::check::records(&suite, &args.results);
    let missing = records.iter().filter(|r| r.status != RunStatus::Finished).count();
    let sections = harness::experiments::report_sections(&suite);
    let dir = harness::report::write(&suite, &records, &sections, reports, &args.results, &Provenance::collect())?;
    println!("report: {}", dir.join("README.md").display());
    if missing > 0 {
        eprintln!("{missing} of {} runs are not finished in {}: the report lists them as failed", records.len(), args.results.display());
    }
    Ok(())
}
