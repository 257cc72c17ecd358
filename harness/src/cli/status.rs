//! `harness status`: each run's state in the results folder, once or until the runs stop moving.
use super::{print, SuiteArgs};
use anyhow::Result;

#[derive(clap::Args)]
pub struct Status {
    #[command(flatten)]
    args: SuiteArgs,
    /// Print again every this many seconds (10 when given alone) until every run has
    /// finished or failed; a running run shows its step, losses, pace and ETA.
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "10")]
    watch: Option<f64>,
}

impl Status {
    pub fn run(self) -> Result<()> {
        let Status { args, watch } = self;
        let suites = args.load_all()?;
        if let Some(every) = watch {
            anyhow::ensure!(every.is_finite() && every >= 0.5, "--watch {every}: give at least 0.5 seconds between updates");
        }
        loop {
            let text: String = suites.iter().map(|suite| harness::plan::status_text(suite, &args.results)).collect::<Vec<_>>().join("\n");
            let stamp = if watch.is_some() { format!("== {}\n", harness::artifacts::utc_now()) } else { String::new() };
            if !print(&format!("{stamp}{text}")) {
                break;
            }
            // Done when no run can still move without a new `harness run`: each finished,
            // failed, or interrupted with no process holding it (a killed job); pending runs
            // keep the watch going (a job array's tasks may not have started yet).
            let states: Vec<&str> = suites.iter().flat_map(|suite| harness::runner::status(suite, &args.results).into_iter().map(|(_, state, _)| state)).collect();
            let done = states.iter().all(|s| matches!(*s, "finished" | "failed" | "partial"));
            let interrupted = states.iter().filter(|s| **s == "partial").count();
            if watch.is_some() && done && interrupted > 0 {
                print(&format!(
                    "{interrupted} run(s) interrupted and held by no process (killed?): `harness run {}` resumes them\n",
                    args.suite.display()
                ));
            }
            match watch {
                Some(every) if !done => std::thread::sleep(std::time::Duration::from_secs_f64(every)),
                _ => break,
            }
        }
        Ok(())
    }
}
