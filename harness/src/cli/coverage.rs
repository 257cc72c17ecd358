//! `harness coverage`: every table and figure of the paper, the suites that reproduce it and the
//! readings they take (docs/coverage.md).
use anyhow::Result;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Coverage {
    /// The project folder (suites/, docs/).
    #[arg(long, default_value = ".")]
    root: PathBuf,
}

impl Coverage {
    pub fn run(self) -> Result<()> {
        let md = harness::coverage::for_project(&self.root).map_err(|e| anyhow::anyhow!("{e}"))?;
        print!("{md}");
        Ok(())
    }
}
