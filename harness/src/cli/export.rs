//! `harness export hf`: a run's Llama as a Hugging Face model folder.
use anyhow::Result;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Export {
    #[arg(value_name = "hf")]
    format: ExportFormat,
    /// A run folder, its checkpoint or a run id.
    target: String,
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value = "results")]
    results: PathBuf,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ExportFormat {
    Hf,
}

impl Export {
    pub fn run(self) -> Result<()> {
        let Export { format: ExportFormat::Hf, target, out, results } = self;
        harness::artifacts::refuse_inside_run(&out, "--out")?;
        let (dir, ckpt) = harness::inference::resolve(&target, &results, None)?;
        let m = harness::inference::load(&dir, &ckpt, tch::Device::Cpu)?;
        harness::inference::export::hf(&m, &out)?;
        println!("{}: a Hugging Face LlamaForCausalLM folder (from_pretrained reads it)", out.display());
        Ok(())
    }
}
