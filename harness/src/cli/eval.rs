//! `harness eval`: mean cross entropy and perplexity of runs on any text, with a small report.
use super::device_arg;
use anyhow::Result;
use harness::inference::{self, eval};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Eval {
    /// Run folders, checkpoints or run ids.
    #[arg(required = true)]
    targets: Vec<String>,
    #[arg(long)]
    data: PathBuf,
    /// The text field of .jsonl and .parquet rows.
    #[arg(long, default_value = "text")]
    field: String,
    #[arg(long, default_value_t = 16)]
    batch_size: i64,
    #[arg(long)]
    model_of: Option<String>,
    #[arg(long, default_value = "results")]
    results: PathBuf,
    /// The report folder (default: reports/eval/<UTC time>); never replaced.
    #[arg(long)]
    out: Option<PathBuf>,
    #[arg(long, value_name = "auto|cpu|cuda", default_value = "auto")]
    device: String,
}

impl Eval {
    pub fn run(self) -> Result<()> {
        let Eval { targets, data, field, batch_size, model_of, results, out, device } = self;
        let device = device_arg(&device)?;
        if let Some(o) = &out {
            harness::artifacts::refuse_inside_run(o, "--out")?;
        }
        let mut scores = Vec::new();
        for t in &targets {
            let (dir, ckpt) = inference::resolve(t, &results, model_of.as_deref())?;
            let m = inference::load(&dir, &ckpt, device)?;
            let s = eval::eval(&m, &data, &field, batch_size, &results.join(".cache"))?;
            println!("{}: CE {:.4}, perplexity {:.2} over {} tokens ({} rows of {}) in {:.1} s", m.label(), s.mean_ce, s.perplexity, s.tokens, s.rows, s.n_ctx, s.seconds);
            scores.push(s);
        }
        // The default is named for the time; a second eval within the same second gets a suffix.
        let out = out.unwrap_or_else(|| {
            let base = PathBuf::from("reports/eval").join(harness::artifacts::utc_now().replace([':', '-'], ""));
            (1..).map(|k| if k == 1 { base.clone() } else { PathBuf::from(format!("{}-{k}", base.display())) }).find(|p| !p.exists()).unwrap_or(base)
        });
        eval::write_report(&out, &scores)?;
        println!("report: {}", out.join("README.md").display());
        Ok(())
    }
}
