//! `harness doctor`: libtorch, CUDA, threading and CPU kernel-path facts.
use anyhow::Result;

#[derive(clap::Args)]
pub struct Doctor {
    /// Exit non-zero when libtorch sees no CUDA device.
    #[arg(long)]
    require_cuda: bool,
    /// Print the facts as JSON.
    #[arg(long)]
    json: bool,
    /// Pin this kernel path first (as a suite's `cpu_kernels` does) and report what took effect.
    #[arg(long, value_name = "native|portable", default_value = "native")]
    cpu_kernels: String,
}

impl Doctor {
    pub fn run(self) -> Result<()> {
        let Doctor { require_cuda, json, cpu_kernels } = self;
        let mode: harness::kernels::CpuKernels = serde_json::from_value(serde_json::Value::String(cpu_kernels.clone()))
            .map_err(|_| anyhow::anyhow!("--cpu-kernels {cpu_kernels}: expected native or portable"))?;
        harness::kernels::apply(mode)?;
        let d = harness::device::Doctor::collect();
        if json {
            println!("{}", serde_json::to_string_pretty(&d)?);
        } else {
            println!("harness          {}", d.harness_version);
            println!("libtorch         {} ({})", d.libtorch_version.as_deref().unwrap_or("unknown"), d.libtorch_dir.as_deref().unwrap_or("?"));
            println!("libtorch_cuda    {}", if d.libtorch_cuda_linked { "linked" } else { "NOT linked" });
            println!("cuda available   {} ({} device(s))", d.cuda_available, d.cuda_device_count);
            for g in &d.gpus {
                println!("  gpu            {g}");
            }
            println!("cudnn            {}", d.cudnn_available);
            println!("threads          {}", d.threads);
            for (k, v) in &d.cpu {
                println!("{k:<16} {v}");
            }
            println!("bf16_matmul      {}", d.bf16_matmul);
            for s in &d.smoke {
                println!("smoke            {s}");
            }
        }
        if require_cuda && !d.cuda_available {
            anyhow::bail!("CUDA was required but is not available (libtorch_cuda {})", if d.libtorch_cuda_linked { "linked" } else { "not linked" });
        }
        Ok(())
    }
}
