//! `harness compare`: one table and chart of the throughput runs of several results folders.
use super::writable_folder;
use anyhow::Result;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Compare {
    /// Results folders holding finished `throughput` runs.
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
    /// Output folder (default: reports/compare/<UTC time>).
    #[arg(long)]
    out: Option<PathBuf>,
}

impl Compare {
    pub fn run(self) -> Result<()> {
        let out = self.out.unwrap_or_else(|| super::timestamped("compare"));
        writable_folder("--out", &out)?;
        // A folder that holds anything but an earlier comparison (a suite's report, say) is not
        // this command's to overwrite.
        if let Ok(entries) = std::fs::read_dir(&out) {
            let names: Vec<String> = entries.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().to_string()).collect();
            let earlier = std::fs::read_to_string(out.join("README.md")).is_ok_and(|t| t.starts_with("# Throughput across devices"));
            anyhow::ensure!(
                names.is_empty() || earlier,
                "--out {}: the folder holds {} file(s) that `harness compare` did not write ({}): give a new or empty folder",
                out.display(),
                names.len(),
                names.iter().take(4).cloned().collect::<Vec<_>>().join(", ")
            );
        }
        let rows = harness::report::throughput::compare(&self.dirs, &out)?;
        println!("{} rows from {} folder(s): {}", rows.len(), self.dirs.len(), out.join("README.md").display());
        Ok(())
    }
}
