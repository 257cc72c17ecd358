//! `harness`: run, plan and check the experiments of "Masked Mixers for Language Generation and
//! Retrieval" (Badger, arXiv 2409.01482). This file parses the command line and hands each
//! command to its module under `cli/`.
mod cli;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(version, about = "Reproduces the masked-mixer paper's experiments from declarative suites")]
struct Cli {
    /// Read Hugging Face data from the local cache only (sets HF_HUB_OFFLINE=1).
    #[arg(long, global = true)]
    offline: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every run of a suite, or of every suite in a folder (finished runs are reused, and a
    /// run another suite of the results folder finished is adopted), and write the reports.
    Run(cli::run::Run),
    /// Each run's state in the results folder: finished, running (and where), failed (why) or
    /// pending; for watching a long job array.
    Status(cli::status::Status),
    /// Compare a suite's finished runs with its baseline (ci/baselines/<suite>[.<profile>].toml):
    /// exit 0 when every metric is within tolerance, 1 on a regression, 2 when a run or metric is
    /// missing.
    Check(cli::check::Check),
    /// Rebuild the versioned report from finished runs alone (no training): runs from several
    /// machines or a cluster, gathered in one results folder. For a folder of suites
    /// (`suites/paper/`), each suite's report and then the paper's: `reports/paper/<version>/`.
    Report(cli::report::Report),
    /// Print the runs a suite (or each suite of a folder) expands to, with exact parameter
    /// counts, without running them; with --estimate, what they cost on a card; or (--emit
    /// slurm) write the sweep as Slurm job arrays.
    Plan(cli::plan::Plan),
    /// Data tools.
    Data {
        #[command(subcommand)]
        what: cli::data::Data,
    },
    /// Benchmarks outside the unit tests.
    Bench {
        #[command(subcommand)]
        what: cli::bench::Bench,
    },
    /// One table and bar chart of the throughput runs of several results folders (e.g. one per
    /// machine), keyed by device, driver and libtorch version.
    Compare(cli::compare::Compare),
    /// Every table and figure of PAPER.md (docs/PAPER.md), the suites that reproduce it and the
    /// readings they take, or why none does (docs/coverage-notes.toml): docs/coverage.md.
    Coverage(cli::coverage::Coverage),
    /// Continue prompts with a trained model: a run folder, its model.safetensors, another
    /// checkpoint of the same architecture (with --model-of), or a run id under --results.
    /// Greedy unless --temperature; the same --seed gives the same text.
    Generate(cli::generate::Generate),
    /// Mean cross entropy and perplexity of runs on any text (a .txt split at the run's story
    /// marker, .jsonl or .parquet), with each run's tokenizer and n_ctx; writes a small report.
    Eval(cli::eval::Eval),
    /// A run's model in another framework's format: `export hf <run> --out DIR` writes a
    /// Llama as a Hugging Face model folder (config.json, model.safetensors, tokenizer.json).
    Export(cli::export::Export),
    /// libtorch, CUDA, threading and CPU kernel-path facts (with a one-second bf16 probe);
    /// non-zero exit with --require-cuda and no CUDA.
    Doctor(cli::doctor::Doctor),
}

fn main() -> Result<()> {
    harness::device::keep_freed_memory();
    let cli = Cli::parse();
    if cli.offline {
        // Before any thread starts: the hub layer reads it.
        std::env::set_var("HF_HUB_OFFLINE", "1");
    }
    match cli.command {
        Command::Run(c) => c.run(),
        Command::Status(c) => c.run(),
        Command::Check(c) => c.run(),
        Command::Report(c) => c.run(),
        Command::Plan(c) => c.run(),
        Command::Data { what } => what.run(),
        Command::Bench { what } => what.run(),
        Command::Compare(c) => c.run(),
        Command::Coverage(c) => c.run(),
        Command::Generate(c) => c.run(),
        Command::Eval(c) => c.run(),
        Command::Export(c) => c.run(),
        Command::Doctor(c) => c.run(),
    }
}
