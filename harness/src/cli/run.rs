//! `harness run`: every run of a suite (or of each suite of a folder), then the reports.
use super::{writable_folder, SuiteArgs};
use anyhow::{Context, Result};
use harness::runner;
use harness::suite::Suite;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Run {
    #[command(flatten)]
    args: SuiteArgs,
    /// Where versioned reports go.
    #[arg(long, default_value = "reports")]
    reports: PathBuf,
    /// Rerun runs that already finished.
    #[arg(long)]
    force: bool,
    /// No progress bars.
    #[arg(long, short)]
    quiet: bool,
    /// Run only these (repeatable or comma-separated): an experiment, a run id (6+ characters
    /// of it) or `failed` (the runs that failed before), with the runs they consume.
    #[arg(long, value_name = "EXPERIMENT|RUN_ID|failed", value_delimiter = ',')]
    only: Vec<String>,
    /// Minutes between the resumable states a training run writes (a killed run started
    /// again continues from the last one, bit for bit).
    #[arg(long, value_name = "MINUTES", default_value_t = 10.0)]
    resume_every: f64,
    /// Also write the resumable state every this many steps.
    #[arg(long, value_name = "STEPS")]
    resume_every_steps: Option<u64>,
    /// Write no report (the tasks of a job array; `harness report` merges their runs).
    #[arg(long)]
    no_report: bool,
}

impl Run {
    pub fn run(self) -> Result<()> {
        let Run { args, reports, force, quiet, only, resume_every, resume_every_steps, no_report } = self;
        anyhow::ensure!(resume_every > 0.0 && resume_every.is_finite(), "--resume-every {resume_every}: give a positive number of minutes");
        anyhow::ensure!(resume_every_steps != Some(0), "--resume-every-steps 0: give at least 1");
        let resume = harness::train::ResumeEvery { secs: resume_every * 60.0, steps: resume_every_steps };
        let suites = args.load_all()?;
        anyhow::ensure!(
            !(args.suite.is_dir() && !only.is_empty()),
            "--only names runs of one suite, and {} is a folder of suites: give one suite file with --only",
            args.suite.display()
        );
        same_cpu_kernels(&suites)?;
        writable_folder("--reports", &reports)?;
        let opts = runner::Options { results: args.results.clone(), reports, progress: !quiet, force, only, resume, report: !no_report };
        let (mut failed, mut total) = (0, 0);
        for suite in &suites {
            eprintln!("suite {}: {} runs", suite.file.name, suite.runs.len());
            let out = runner::execute(suite, &opts).with_context(|| format!("running {}", suite.path.display()))?;
            if let Some(report) = &out.report {
                println!("report: {}", report.join("README.md").display());
            }
            if suites.len() > 1 && out.failed() > 0 {
                eprintln!("suite {}: {} of {} runs failed", suite.file.name, out.failed(), out.records.len());
            }
            failed += out.failed();
            total += out.records.len();
        }
        if failed > 0 {
            anyhow::bail!("{failed} of {total} runs failed; see the report and each run's manifest.json");
        }
        Ok(())
    }
}

/// One process picks its CPU kernel path once: the suites of one `harness run` must ask for the
/// same one.
fn same_cpu_kernels(suites: &[Suite]) -> Result<()> {
    let mut modes: Vec<(String, String)> = suites.iter().filter_map(|s| s.runs.first().map(|r| (format!("{:?}", r.config.cpu_kernels), s.file.name.clone()))).collect();
    modes.sort();
    modes.dedup_by(|a, b| a.0 == b.0);
    anyhow::ensure!(
        modes.len() <= 1,
        "the suites ask for different CPU kernel paths ({}); one process takes one: run them apart, or give them one with --set cpu_kernels=\"portable\"",
        modes.iter().map(|(m, s)| format!("{s}: {m}")).collect::<Vec<_>>().join(", ")
    );
    Ok(())
}
