//! `harness check`: a suite's finished runs against its baseline, or the baseline rewritten.
use super::{print, SuiteArgs};
use anyhow::Result;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Check {
    #[command(flatten)]
    args: SuiteArgs,
    /// The baseline file (default: ci/baselines/<suite>[.<profile>].toml).
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Rewrite the baseline from the finished runs, on purpose, and print what changed.
    #[arg(long)]
    update_baseline: bool,
}

impl Check {
    pub fn run(self) -> Result<()> {
        let Check { args, baseline, update_baseline } = self;
        let suite = args.load()?;
        let profile = args.profile.as_deref();
        let records = harness::check::records(&suite, &args.results);
        // --update-baseline writes the file a check reads: this machine class's variant where
        // there is one, else the default.
        let path = match baseline {
            Some(p) => p,
            None => harness::check::for_kernel_path(&harness::check::default_path(&suite, profile), &records),
        };
        let invocation = format!("harness check {}{}", args.suite.display(), args.profile_flag());
        if update_baseline {
            print(&harness::check::update_baseline(&suite, profile, &records, &path, &invocation, &args.results)?);
        } else {
            let (text, code) = harness::check::check_against(&suite, profile, &records, &path, &invocation)?;
            print(&text);
            if code != 0 {
                std::process::exit(code);
            }
        }
        Ok(())
    }
}
