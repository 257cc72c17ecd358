//! `harness bench`: benchmarks outside the unit tests (tokenization, the loader's gather), and the
//! hidden `job` a throughput run spawns.
use anyhow::{Context, Result};
use harness::bench::{DataBench, GatherBench};
use std::path::PathBuf;

#[derive(clap::Subcommand)]
pub enum Bench {
    /// One throughput job (JSON) measured in this process; what `throughput` runs spawn.
    #[command(hide = true)]
    Job { job: String },
    /// Tokenization throughput (MB/s) of this harness vs the Python `tokenizers` package.
    Data {
        /// Stories separated by --marker.
        #[arg(long, default_value = "../shared/data/tinystories/train-head-2MiB.txt")]
        file: PathBuf,
        #[arg(long, default_value = "<|endoftext|>")]
        marker: String,
        #[arg(long, default_value_t = 4096)]
        vocab_size: usize,
        #[arg(long, default_value_t = 5)]
        repeats: usize,
        /// The Python that has `tokenizers` (default: python3).
        #[arg(long)]
        python: Option<PathBuf>,
        /// Output folder (default: reports/bench-data/<UTC time>).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The loader's rate from a token shard in shuffled order (tokens/s, CPU per second), cold
    /// (the shard's pages evicted) and on a second pass; the shard is synthetic, made once in
    /// --dir. Give --gib over the machine's memory to measure a shard larger than memory.
    Gather {
        /// Size of the synthetic shard (u16 ids).
        #[arg(long, default_value_t = 2.0)]
        gib: f64,
        /// Global batches of 65,536 tokens per pass.
        #[arg(long, default_value_t = 200)]
        batches: u64,
        /// Context lengths; each is read one row a document (truncate) at n_ctx >= 512, and in
        /// windows below (the paper's packing, B.2).
        #[arg(long, value_delimiter = ',', default_value = "512,32")]
        n_ctx: Vec<i64>,
        /// Where the synthetic shard is made (and found again).
        #[arg(long, default_value = "results/.cache/bench-gather")]
        dir: PathBuf,
        /// Output folder (default: reports/bench-gather/<UTC time>).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

impl Bench {
    pub fn run(self) -> Result<()> {
        match self {
            Bench::Job { job } => {
                let job: harness::throughput::Job = serde_json::from_str(&job).context("reading the job")?;
                let measured = harness::throughput::measure_here(&job)?;
                println!("{}", serde_json::to_string(&measured)?);
                return Ok(());
            }
            Bench::Data { file, marker, vocab_size, repeats, python, out } => {
                let bench = DataBench { file, marker, vocab_size, repeats: repeats.max(1), python, cache: PathBuf::from("results/.cache") };
                let (table, notes) = bench.run().context("bench data --file")?;
                let out = out.unwrap_or_else(|| super::timestamped("bench-data"));
                harness::bench::write(&out, "Tokenization throughput", "tokenize", &table, &notes)?;
                finish(&out, &table, &notes);
            }
            Bench::Gather { gib, batches, n_ctx, dir, out } => {
                anyhow::ensure!(gib > 0.0 && batches > 0, "--gib and --batches must be positive");
                anyhow::ensure!(n_ctx.iter().all(|&n| n >= 2), "--n-ctx: each context length must be at least 2");
                let shapes = n_ctx.iter().map(|&n| (n, if n >= 512 { harness::suite::Packing::Truncate } else { harness::suite::Packing::Windows })).collect();
                let bench = GatherBench { dir, gib, shapes, batches };
                let (table, notes) = bench.run().context("bench gather")?;
                let out = out.unwrap_or_else(|| super::timestamped("bench-gather"));
                harness::bench::write(&out, "Loader throughput from a token shard", "gather", &table, &notes)?;
                finish(&out, &table, &notes);
            }
        }
        Ok(())
    }
}

/// A benchmark's notes, its table and where it was written.
fn finish(out: &std::path::Path, table: &harness::report::table::Table, notes: &[String]) {
    for n in notes {
        println!("{n}");
    }
    println!("{}", table.markdown());
    println!("written to {}", out.display());
}
