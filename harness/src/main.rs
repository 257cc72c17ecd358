//! `harness`: run, plan and check the experiments of "Masked Mixers for Language Generation and
//! Retrieval" (Badger, arXiv 2409.01482).
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use harness::suite::{parse_override, Suite};
use harness::{device, runner};
use std::path::PathBuf;

#[derive(Parser)]
#[command(version, about = "Reproduces the masked-mixer paper's experiments from declarative suites")]
struct Cli {
    /// Read Hugging Face data from the local cache only (sets HF_HUB_OFFLINE=1).
    #[arg(long, global = true)]
    offline: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct SuiteArgs {
    /// The suite file (TOML, format v1); `plan` also takes a folder of suites.
    suite: PathBuf,
    /// Override a key for every run without editing the file, e.g. --set train.steps=10
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Where run folders go.
    #[arg(long, default_value = "results")]
    results: PathBuf,
    /// Run the suite at one of its named profiles (`[profile.<name>]`), e.g. --profile ci.
    #[arg(long)]
    profile: Option<String>,
}

#[derive(clap::Args)]
struct SlurmArgs {
    /// Write the sweep as Slurm job arrays (one task per run; see docs/slurm.md).
    #[arg(long, value_name = "slurm")]
    emit: Option<Emit>,
    /// Where the sbatch scripts, run lists and logs go (default: slurm/<suite>).
    #[arg(long, requires = "emit")]
    out: Option<PathBuf>,
    /// Submit with sbatch and print the job ids; nothing of the harness keeps running.
    #[arg(long, requires = "emit")]
    submit: bool,
    #[arg(long, requires = "emit")]
    partition: Option<String>,
    #[arg(long, requires = "emit")]
    account: Option<String>,
    #[arg(long, requires = "emit")]
    qos: Option<String>,
    /// GPUs per task.
    #[arg(long, requires = "emit")]
    gpus: Option<u32>,
    /// CPUs per task.
    #[arg(long, requires = "emit")]
    cpus: Option<u32>,
    /// Memory per task, e.g. 32G.
    #[arg(long, requires = "emit")]
    mem: Option<String>,
    /// Time limit per task, e.g. 12:00:00.
    #[arg(long, requires = "emit")]
    time: Option<String>,
    /// Tasks of an array running at once.
    #[arg(long, requires = "emit")]
    throttle: Option<u32>,
    /// A shell line run before the harness in each task (repeatable), e.g. "module load cuda".
    #[arg(long, requires = "emit")]
    setup: Vec<String>,
    /// Minutes between a task's resumable states (what a preempted task loses at most).
    #[arg(long, requires = "emit", default_value_t = 10.0)]
    resume_every: f64,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ExportFormat {
    Hf,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Emit {
    Slurm,
}

#[derive(Subcommand)]
enum Command {
    /// Run every run of a suite, or of every suite in a folder (finished runs are reused, and a
    /// run another suite of the results folder finished is adopted), and write the reports.
    Run {
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
    },
    /// Each run's state in the results folder: finished, running (and where), failed (why) or
    /// pending; for watching a long job array.
    Status {
        #[command(flatten)]
        args: SuiteArgs,
        /// Print again every this many seconds (10 when given alone) until every run has
        /// finished or failed; a running run shows its step, losses, pace and ETA.
        #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "10")]
        watch: Option<f64>,
    },
    /// Compare a suite's finished runs with its baseline (ci/baselines/<suite>[.<profile>].toml):
    /// exit 0 when every metric is within tolerance, 1 on a regression, 2 when a run or metric is
    /// missing.
    Check {
        #[command(flatten)]
        args: SuiteArgs,
        /// The baseline file (default: ci/baselines/<suite>[.<profile>].toml).
        #[arg(long)]
        baseline: Option<PathBuf>,
        /// Rewrite the baseline from the finished runs, on purpose, and print what changed.
        #[arg(long)]
        update_baseline: bool,
    },
    /// Rebuild the versioned report from finished runs alone (no training): runs from several
    /// machines or a cluster, gathered in one results folder. For a folder of suites
    /// (`suites/paper/`), each suite's report and then the paper's: `reports/paper/<version>/`.
    Report {
        #[command(flatten)]
        args: SuiteArgs,
        /// Where versioned reports go.
        #[arg(long, default_value = "reports")]
        reports: PathBuf,
        /// Instead of writing a report, re-hash this report folder's files, the run manifests it
        /// was built from and every file they list; exit 1 on any mismatch.
        #[arg(long, value_name = "REPORT_DIR")]
        verify: Option<PathBuf>,
    },
    /// Print the runs a suite (or each suite of a folder) expands to, with exact parameter
    /// counts, without running them; with --estimate, what they cost on a card; or (--emit
    /// slurm) write the sweep as Slurm job arrays.
    Plan {
        #[command(flatten)]
        args: SuiteArgs,
        #[command(flatten)]
        slurm: SlurmArgs,
        /// Print each run's cost instead: FLOPs per step, tokens, memory of a step and hours on
        /// --card; totals per suite and, for a folder of suites (e.g. suites/paper/), for all of
        /// them, each distinct run once (docs/cost.md).
        #[arg(long, conflicts_with = "emit")]
        estimate: bool,
        /// The card the hours are for: h100 (default), h100-pcie, h200, a100, v100, rtx3060, l4,
        /// or cpu (this machine, measured by a few training steps). With --emit slurm and no
        /// --time, each level's time limit is derived from the estimate on it.
        #[arg(long)]
        card: Option<String>,
    },
    /// Data tools.
    Data {
        #[command(subcommand)]
        what: DataCommand,
    },
    /// Benchmarks outside the unit tests.
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
    /// One table and bar chart of the throughput runs of several results folders (e.g. one per
    /// machine), keyed by device, driver and libtorch version.
    Compare {
        /// Results folders holding finished `throughput` runs.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Output folder (default: reports/compare/<UTC time>).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Every table and figure of PAPER.md (docs/PAPER.md), the suites that reproduce it and the
    /// readings they take, or why none does (docs/coverage-notes.toml): docs/coverage.md.
    Coverage {
        /// The project folder (suites/, docs/).
        #[arg(long, default_value = ".")]
        root: PathBuf,
    },
    /// Continue prompts with a trained model: a run folder, its model.safetensors, another
    /// checkpoint of the same architecture (with --model-of), or a run id under --results.
    /// Greedy unless --temperature; the same --seed gives the same text.
    Generate {
        /// A run folder, a checkpoint file or a run id (6+ characters).
        target: String,
        /// A prompt (repeatable).
        #[arg(long)]
        prompt: Vec<String>,
        /// A file of prompts, one per line (blank lines skipped).
        #[arg(long)]
        prompts: Option<PathBuf>,
        #[arg(long, default_value_t = 64)]
        max_new_tokens: usize,
        /// 0: greedy.
        #[arg(long, default_value_t = 0.0)]
        temperature: f64,
        #[arg(long)]
        top_k: Option<i64>,
        #[arg(long)]
        top_p: Option<f64>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Keep generating past the end-of-text token.
        #[arg(long)]
        ignore_eos: bool,
        /// Recompute the whole prefix for every token instead of the incremental decoder (a
        /// check: the text is the same, only slower).
        #[arg(long)]
        recompute: bool,
        /// The run whose config and tokenizer a checkpoint file outside a run folder uses.
        #[arg(long)]
        model_of: Option<String>,
        #[arg(long, default_value = "results")]
        results: PathBuf,
        #[arg(long, value_name = "auto|cpu|cuda", default_value = "auto")]
        device: String,
        /// One JSON object per prompt (ids, text, timing) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Mean cross entropy and perplexity of runs on any text (a .txt split at the run's story
    /// marker, .jsonl or .parquet), with each run's tokenizer and n_ctx; writes a small report.
    Eval {
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
    },
    /// A run's model in another framework's format: `export hf <run> --out DIR` writes a
    /// Llama as a Hugging Face model folder (config.json, model.safetensors, tokenizer.json).
    Export {
        #[arg(value_name = "hf")]
        format: ExportFormat,
        /// A run folder, its checkpoint or a run id.
        target: String,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "results")]
        results: PathBuf,
    },
    /// libtorch, CUDA, threading and CPU kernel-path facts (with a one-second bf16 probe);
    /// non-zero exit with --require-cuda and no CUDA.
    Doctor {
        /// Exit non-zero when libtorch sees no CUDA device.
        #[arg(long)]
        require_cuda: bool,
        /// Print the facts as JSON.
        #[arg(long)]
        json: bool,
        /// Pin this kernel path first (as a suite's `cpu_kernels` does) and report what took effect.
        #[arg(long, value_name = "native|portable", default_value = "native")]
        cpu_kernels: String,
    },
}

#[derive(Subcommand)]
enum DataCommand {
    /// The paper's summary -> passage sets (PAPER.md B.1-B.3): export the passages, summarise
    /// them through an OpenAI-compatible chat endpoint (one shard per server), join into the
    /// pairs file `[pairs] source = "file"` reads. See docs/summary-sets.md.
    Pairs {
        #[command(subcommand)]
        what: PairsCommand,
    },
    /// Trains a tokenizer as a suite's `data.tokenizer` does (the paper's `llama` / `llama3`,
    /// or the harness's `bpe`) on a file, writes its tokenizer.json and prints tokens per
    /// character and the share of <unk> on that file.
    Tokenizer {
        #[arg(long, value_enum)]
        kind: TokenizerArg,
        /// Stories: marker-separated text, or .jsonl / .parquet with --text-column.
        #[arg(long, required_unless_present = "base_only")]
        input: Option<PathBuf>,
        #[arg(long, default_value = "<|endoftext|>")]
        marker: String,
        #[arg(long)]
        text_column: Option<String>,
        #[arg(long, default_value_t = 4096)]
        vocab: usize,
        /// Only the first N stories.
        #[arg(long)]
        limit: Option<usize>,
        /// A base tokenizer.json to retrain instead of the built-in pipeline (`data.tokenizer_base`).
        #[arg(long)]
        base: Option<PathBuf>,
        /// The trained tokenizer.json.
        #[arg(long)]
        out: PathBuf,
        /// Write the untrained base (the pipeline `--kind` retrains) to --out instead of training.
        #[arg(long)]
        base_only: bool,
        /// Which text to train on (`data.tokenizer_lines`): every story, the paper script's
        /// selection (I.7: the first 2,000,000 lines in its overlapping batches), or the first
        /// 2,000,000 lines once each.
        #[arg(long, value_enum, default_value = "all")]
        lines: LinesArg,
    },
    /// Tokenizes a file of any size into a token shard (the format and key a run's cache uses:
    /// whole documents, so one shard serves every n_ctx, padding and packing) in bounded memory:
    /// documents stream in, 4,096 at a time, and the ids stream out. Prints documents, tokens,
    /// time and the process's peak RSS.
    Encode {
        /// Documents: marker-separated text, or .jsonl / .parquet (the column --text-column).
        #[arg(long)]
        input: PathBuf,
        /// The tokenizer.json to encode with (a run folder's, or `harness data tokenizer`'s).
        #[arg(long)]
        tokenizer: PathBuf,
        #[arg(long, default_value = "<|endoftext|>")]
        marker: String,
        #[arg(long, default_value = "text")]
        text_column: String,
        /// Keep a last text piece with no marker after it (a file cut mid-story is dropped by default).
        #[arg(long)]
        keep_unterminated: bool,
        /// Only the first N documents.
        #[arg(long)]
        limit: Option<usize>,
        /// Folder for the shard (<key>.bin and its <key>.json header).
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum PairsCommand {
    /// Writes the passages of a set as JSON lines: `--count` documents after the first `--skip`
    /// (the CLM test rows), FineWeb and FineMath cut to their first 512 tokens of the paper's
    /// tokenizer, with the text the reference's summariser was given.
    Export {
        /// The set whose rows, cut and prompt text the reference used.
        #[arg(long, value_enum)]
        set: harness::data::summarize::PromptSet,
        /// The data set's files in order (.parquet, .jsonl with --text-column, or
        /// marker-separated text); read as one stream of documents.
        #[arg(long, required = true, num_args = 1..)]
        input: Vec<PathBuf>,
        #[arg(long, default_value = "text")]
        text_column: String,
        #[arg(long, default_value = "<|endoftext|>")]
        marker: String,
        /// The paper's tokenizer (FineWeb, FineMath): a tokenizer.json.
        #[arg(long)]
        tokenizer: Option<PathBuf>,
        /// Documents before the passages (default: the set's, 50,000 test rows for FineWeb and
        /// FineMath, 0 for TinyStories).
        #[arg(long)]
        skip: Option<usize>,
        /// Passages (the paper: 200,000; 400,000 for FineMath's larger set).
        #[arg(long)]
        count: usize,
        #[arg(long)]
        out: PathBuf,
        /// Overwrite an --out that is not a passages file.
        #[arg(long)]
        replace: bool,
    },
    /// Summarises exported passages (or one shard of them), resumably: rerun to continue.
    Summarize {
        /// The passages file `pairs export` wrote; its set decides the prompt.
        #[arg(long)]
        passages: PathBuf,
        /// Summaries, one JSON line per passage.
        #[arg(long)]
        out: PathBuf,
        /// Base URL of the chat API, e.g. http://127.0.0.1:8080/v1 (OPENAI_API_KEY is sent if set).
        #[arg(long)]
        endpoint: String,
        #[arg(long, default_value = "llama-3-8b-instruct")]
        model: String,
        /// This process's part, i/k from 0: contiguous rows, one shard per server or GPU.
        #[arg(long, default_value = "0/1")]
        shard: String,
        /// Requests in flight at once.
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
        /// Requests started per second at most (0: no limit).
        #[arg(long, default_value_t = 0.0, allow_negative_numbers = true, value_parser = non_negative_rate)]
        rate: f64,
        /// Seconds a request may take before it is retried.
        #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
        timeout_s: u64,
        /// Tries after the first on 429, 5xx, time-outs and malformed replies.
        #[arg(long, default_value_t = 6)]
        retries: usize,
        /// Sampling, sent with every request (defaults: llama-cpp-python's create_chat_completion,
        /// which the paper called; the server's own defaults differ).
        #[arg(long, default_value_t = 0.2)]
        temperature: f64,
        #[arg(long, default_value_t = 0.95)]
        top_p: f64,
        #[arg(long, default_value_t = 40)]
        top_k: i64,
        #[arg(long, default_value_t = 0.05)]
        min_p: f64,
        #[arg(long, default_value_t = 1.0)]
        repeat_penalty: f64,
        #[arg(long)]
        max_tokens: Option<u64>,
        #[arg(long)]
        seed: Option<u64>,
        /// Only the first N passages of the shard.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Joins the passages with every shard's summaries into a parquet pairs file (query,
    /// passage, row, split, pair_sha256, model, prompt_set, sampling) and its provenance.
    Join {
        #[arg(long)]
        passages: PathBuf,
        #[arg(long, required = true, num_args = 1..)]
        summaries: Vec<PathBuf>,
        /// The last N pairs are the test split (the paper: 20,000).
        #[arg(long)]
        test_pairs: usize,
        #[arg(long)]
        out: PathBuf,
        /// Overwrite an --out that this command did not write.
        #[arg(long)]
        replace: bool,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LinesArg {
    All,
    Paper,
    #[value(name = "first-2m")]
    First2m,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum TokenizerArg {
    Bpe,
    Llama,
    Llama3,
}

#[derive(Subcommand)]
enum BenchCommand {
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

/// A folder the harness writes into: absent (it is made) or a folder, never a file.
fn writable_folder(flag: &str, path: &std::path::Path) -> Result<()> {
    anyhow::ensure!(!path.exists() || path.is_dir(), "{flag} {}: is not a folder; give a folder (it is made when missing)", path.display());
    harness::artifacts::refuse_inside_run(path, flag)?;
    Ok(())
}

fn load(args: &SuiteArgs) -> Result<Suite> {
    writable_folder("--results", &args.results)?;
    let overrides = args.set.iter().map(|s| parse_override(s)).collect::<Result<Vec<_>, _>>()?;
    Ok(Suite::load_profile(&args.suite, args.profile.as_deref(), &overrides, tch::Cuda::is_available())?)
}

/// The card `--card` names (h100 when none), or this machine's CPU measured now.
fn resolve_card(name: Option<&str>) -> Result<harness::estimate::Card> {
    match name.unwrap_or("h100").to_ascii_lowercase().as_str() {
        "cpu" => harness::estimate::measure_cpu().context("--card cpu: measuring this machine"),
        other => harness::estimate::card(other).map_err(anyhow::Error::msg),
    }
}

/// The suite `args` names, or every suite (`*.toml`) of the folder it names, in name order.
fn load_all(args: &SuiteArgs) -> Result<Vec<Suite>> {
    if !args.suite.is_dir() {
        return Ok(vec![load(args)?]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&args.suite)
        .with_context(|| format!("reading the folder {}", args.suite.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    files.sort();
    anyhow::ensure!(!files.is_empty(), "{}: a folder with no suite (*.toml) in it", args.suite.display());
    files.iter().map(|f| load(&SuiteArgs { suite: f.clone(), ..args.clone() }).with_context(|| format!("{}", f.display()))).collect()
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

/// `--rate`: requests per second, 0 for no limit.
fn non_negative_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r >= 0.0 => Ok(r),
        Ok(_) => Err("give requests per second, 0 or more (0: no limit)".into()),
        Err(e) => Err(format!("{e}; give requests per second, 0 or more (0: no limit)")),
    }
}

fn main() -> Result<()> {
    device::keep_freed_memory();
    let cli = Cli::parse();
    if cli.offline {
        // Before any thread starts: the hub layer reads it.
        std::env::set_var("HF_HUB_OFFLINE", "1");
    }
    match cli.command {
        Command::Run { args, reports, force, quiet, only, resume_every, resume_every_steps, no_report } => {
            anyhow::ensure!(resume_every > 0.0 && resume_every.is_finite(), "--resume-every {resume_every}: give a positive number of minutes");
            anyhow::ensure!(resume_every_steps != Some(0), "--resume-every-steps 0: give at least 1");
            let resume = harness::train::ResumeEvery { secs: resume_every * 60.0, steps: resume_every_steps };
            let suites = load_all(&args)?;
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
        }
        Command::Check { args, baseline, update_baseline } => {
            let suite = load(&args)?;
            let records = harness::check::records(&suite, &args.results);
            // --update-baseline writes the file a check reads: this machine class's variant
            // where there is one, else the default.
            let path = match baseline {
                Some(p) => p,
                None => harness::check::for_kernel_path(&harness::check::default_path(&suite, args.profile.as_deref()), &records),
            };
            let invocation = format!(
                "harness check {}{}",
                args.suite.display(),
                args.profile.as_ref().map(|p| format!(" --profile {p}")).unwrap_or_default()
            );
            use std::io::Write as _;
            if update_baseline {
                let text = harness::check::update_baseline(&suite, args.profile.as_deref(), &records, &path, &invocation, &args.results)?;
                let _ = std::io::stdout().lock().write_all(text.as_bytes());
            } else {
                let (text, code) = harness::check::check_against(&suite, args.profile.as_deref(), &records, &path, &invocation)?;
                let _ = std::io::stdout().lock().write_all(text.as_bytes());
                if code != 0 {
                    std::process::exit(code);
                }
            }
        }
        Command::Report { args, reports: _, verify: Some(dir) } => {
            let rows = if args.suite.is_dir() {
                load_all(&args)?;
                harness::report::paper::verify(&dir, &args.results)?
            } else {
                let suite = load(&args)?;
                harness::report::verify(&dir, &args.results, &suite.file.name)?
            };
            let bad = rows.iter().filter(|r| !r.1).count();
            let mut text = String::new();
            for (item, ok, detail) in &rows {
                text.push_str(&format!("{} {item}: {detail}\n", if *ok { "ok " } else { "BAD" }));
            }
            text.push_str(&format!("{}: {} checked, {bad} mismatched\n", dir.display(), rows.len()));
            use std::io::Write as _;
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
            if bad > 0 {
                std::process::exit(1);
            }
        }
        Command::Report { args, reports, verify: None } if args.suite.is_dir() => {
            let suites = load_all(&args)?;
            let prov = harness::artifacts::Provenance::collect();
            let mut parts = Vec::new();
            for suite in &suites {
                let records = harness::check::records(suite, &args.results);
                let finished = records.iter().filter(|r| r.status == harness::artifacts::RunStatus::Finished).count();
                // A suite with nothing finished gets no report of its own: the paper report says why.
                let dir = if finished > 0 {
                    let sections = harness::experiments::report_sections(suite);
                    let d = harness::report::write(suite, &records, &sections, &reports, &args.results, &prov).with_context(|| format!("the report of {}", suite.path.display()))?;
                    println!("report: {}", d.join("README.md").display());
                    Some(d)
                } else {
                    eprintln!("{}: no finished run in {}: no report of its own", suite.path.display(), args.results.display());
                    None
                };
                parts.push(harness::report::paper::SuiteReport { suite, records, dir });
            }
            let dir = harness::report::paper::write(&parts, args.profile.as_deref(), &reports, &prov)?;
            println!("paper report: {}", dir.join("README.md").display());
        }
        Command::Report { args, reports, verify: None } => {
            let suite = load(&args)?;
            let records = harness::check::records(&suite, &args.results);
            let missing = records.iter().filter(|r| r.status != harness::artifacts::RunStatus::Finished).count();
            let sections = harness::experiments::report_sections(&suite);
            let dir = harness::report::write(&suite, &records, &sections, &reports, &args.results, &harness::artifacts::Provenance::collect())?;
            println!("report: {}", dir.join("README.md").display());
            if missing > 0 {
                eprintln!("{missing} of {} runs are not finished in {}: the report lists them as failed", records.len(), args.results.display());
            }
        }
        Command::Plan { args, estimate: true, card, .. } => {
            let card = resolve_card(card.as_deref())?;
            let suites = load_all(&args)?;
            use std::io::Write as _;
            let _ = std::io::stdout().lock().write_all(harness::estimate::estimate_text(&suites, &card).as_bytes());
        }
        Command::Plan { args, slurm: s, card, .. } if s.emit.is_some() => {
            let suites = load_all(&args)?;
            let card = if s.time.is_none() { Some(resolve_card(card.as_deref())?) } else { None };
            anyhow::ensure!(s.resume_every > 0.0 && s.resume_every.is_finite(), "--resume-every {}: give a positive number of minutes", s.resume_every);
            let flags = harness::slurm::SlurmConfig {
                partition: s.partition,
                account: s.account,
                qos: s.qos,
                gpus: s.gpus,
                cpus: s.cpus,
                mem: s.mem,
                time: s.time,
                throttle: s.throttle,
                setup: s.setup,
                sbatch: vec![],
            };
            let workdir = std::env::current_dir()?;
            let harness_bin = std::env::current_exe().context("locating the harness binary")?;
            let parts: Vec<(&Suite, harness::slurm::SlurmConfig, harness::slurm::Invocation)> = suites
                .iter()
                .map(|suite| {
                    let cfg = suite.file.slurm.clone().unwrap_or_default().overridden_by(&flags);
                    let inv = harness::slurm::Invocation {
                        harness: harness_bin.clone(),
                        suite: suite.path.clone(),
                        profile: args.profile.clone(),
                        sets: args.set.clone(),
                        results: args.results.clone(),
                        resume_every: s.resume_every,
                        workdir: workdir.clone(),
                        card: card.clone(),
                    };
                    (suite, cfg, inv)
                })
                .collect();
            let e = if args.suite.is_dir() {
                let name = args.suite.file_name().map_or("suites".into(), |n| n.to_string_lossy().into_owned());
                let out = s.out.unwrap_or_else(|| PathBuf::from("slurm").join(name));
                harness::slurm::emit_folder(&parts, &out)?
            } else {
                let (suite, cfg, inv) = &parts[0];
                let out = s.out.unwrap_or_else(|| PathBuf::from("slurm").join(&suite.file.name));
                harness::slurm::emit(suite, cfg, inv, &out)?
            };
            for (i, (script, n)) in e.levels.iter().enumerate() {
                println!("array {i}: {n} task(s): {}", script.display());
            }
            if s.submit {
                for (i, id) in harness::slurm::submit(&e)?.iter().enumerate() {
                    println!("submitted level {i}: job {id}");
                }
                println!("watch with: harness status {} --results {}", args.suite.display(), args.results.display());
            } else {
                println!("submit with: bash {}", e.submit.display());
            }
        }
        Command::Status { args, watch } => {
            let suites = load_all(&args)?;
            use std::io::Write as _;
            if let Some(every) = watch {
                anyhow::ensure!(every.is_finite() && every >= 0.5, "--watch {every}: give at least 0.5 seconds between updates");
            }
            loop {
                let text: String = suites.iter().map(|suite| harness::plan::status_text(suite, &args.results)).collect::<Vec<_>>().join("\n");
                let stamp = if watch.is_some() { format!("== {}\n", harness::artifacts::utc_now()) } else { String::new() };
                if std::io::stdout().lock().write_all(format!("{stamp}{text}").as_bytes()).is_err() {
                    break;
                }
                // Done when no run can still move without a new `harness run`: each finished,
                // failed, or interrupted with no process holding it (a killed job); pending runs
                // keep the watch going (a job array's tasks may not have started yet).
                let states: Vec<&str> = suites.iter().flat_map(|suite| harness::runner::status(suite, &args.results).into_iter().map(|(_, state, _)| state)).collect();
                let done = states.iter().all(|s| matches!(*s, "finished" | "failed" | "partial"));
                let interrupted = states.iter().filter(|s| **s == "partial").count();
                if watch.is_some() && done && interrupted > 0 {
                    let _ = writeln!(
                        std::io::stdout().lock(),
                        "{interrupted} run(s) interrupted and held by no process (killed?): `harness run {}` resumes them",
                        args.suite.display()
                    );
                }
                match watch {
                    Some(every) if !done => std::thread::sleep(std::time::Duration::from_secs_f64(every)),
                    _ => break,
                }
            }
        }
        Command::Plan { args, card, .. } => {
            anyhow::ensure!(card.is_none(), "--card prices runs: give it with --estimate (or with --emit slurm, for the tasks' time limits)");
            let text: String = load_all(&args)?.iter().map(|suite| harness::plan::plan_text(suite, args.profile.as_deref(), &args.results)).collect::<Vec<_>>().join("\n");
            // A closed pipe (`harness plan ... | head`) is not an error worth a panic.
            use std::io::Write as _;
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
        }
        Command::Generate { target, prompt, prompts, max_new_tokens, temperature, top_k, top_p, seed, ignore_eos, recompute, model_of, results, device, json } => {
            use harness::inference::{self, generate};
            let mut all = prompt;
            if let Some(f) = &prompts {
                let text = harness::artifacts::read_regular_string(f).with_context(|| format!("--prompts {}", f.display()))?;
                all.extend(text.lines().filter(|l| !l.trim().is_empty()).map(String::from));
            }
            anyhow::ensure!(!all.is_empty(), "no prompt: give --prompt TEXT (repeatable) or --prompts FILE");
            let sampling = generate::Sampling { temperature, top_k, top_p };
            sampling.check()?;
            let (dir, ckpt) = inference::resolve(&target, &results, model_of.as_deref())?;
            let m = inference::load(&dir, &ckpt, device_arg(&device)?)?;
            let out = generate::generate(&m, &all, max_new_tokens, &sampling, seed, recompute, ignore_eos)?;
            use std::io::Write as _;
            let mut text = String::new();
            if !json {
                text.push_str(&format!("{} on {}, {}, seed {seed}{}\n", m.label(), harness::device::describe(m.device), sampling.describe(), if recompute { ", full recompute" } else { "" }));
            }
            for g in &out {
                if json {
                    text.push_str(&serde_json::to_string(g)?);
                    text.push('\n');
                } else {
                    text.push_str(&format!(
                        "\n{}\u{2016}{}\n[{} new tokens in {:.3} s, {:.1} tokens/s, stopped: {}]\n",
                        g.prompt,
                        g.continuation,
                        g.new_ids.len(),
                        g.seconds,
                        g.tokens_per_s,
                        serde_json::to_value(g.stop)?.as_str().unwrap_or_default()
                    ));
                }
            }
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
        }
        Command::Eval { targets, data, field, batch_size, model_of, results, out, device } => {
            use harness::inference::{self, eval};
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
        }
        Command::Export { format: ExportFormat::Hf, target, out, results } => {
            harness::artifacts::refuse_inside_run(&out, "--out")?;
            let (dir, ckpt) = harness::inference::resolve(&target, &results, None)?;
            let m = harness::inference::load(&dir, &ckpt, tch::Device::Cpu)?;
            harness::inference::export::hf(&m, &out)?;
            println!("{}: a Hugging Face LlamaForCausalLM folder (from_pretrained reads it)", out.display());
        }
        Command::Coverage { root } => {
            let md = harness::coverage::for_project(&root).map_err(|e| anyhow::anyhow!("{e}"))?;
            print!("{md}");
        }
        Command::Data { what: DataCommand::Tokenizer { kind, input, marker, text_column, vocab, limit, base, out, base_only, lines } } => {
            harness::artifacts::refuse_inside_run(&out, "--out")?;
            data_tokenizer(kind, input.as_deref(), &marker, text_column, vocab, limit, base, &out, base_only, lines)?;
        }
        Command::Data { what: DataCommand::Encode { input, tokenizer, marker, text_column, keep_unterminated, limit, out } } => {
            harness::artifacts::refuse_inside_run(&out, "--out")?;
            let json = harness::artifacts::read_regular_string(&tokenizer).with_context(|| format!("--tokenizer {}", tokenizer.display()))?;
            let tok = harness::data::Tok::from_json(json, &tokenizer).with_context(|| format!("--tokenizer {}", tokenizer.display()))?;
            let started = std::time::Instant::now();
            let docs = harness::data::stream_file(&input, &text_column, &marker, !keep_unterminated)?.take(limit.unwrap_or(usize::MAX));
            let w = harness::data::shards::write_stream(&tok, docs, &out)?;
            let secs = started.elapsed().as_secs_f64();
            let input_bytes = std::fs::metadata(&input).map(|m| m.len()).unwrap_or(0);
            let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
            println!(
                "{}: {} documents -> {} tokens in {secs:.1} s ({:.1} MiB/s of text)\nshard {} ({:.1} MiB), header {}\nkey {}, text sha256 {}, tokenizer sha256 {}\npeak RSS {} (input file {:.1} MiB)",
                input.display(),
                w.docs,
                w.tokens,
                mib(w.text_bytes) / secs.max(1e-9),
                w.shard.display(),
                mib(w.bytes),
                w.header.display(),
                w.key,
                w.text_sha256,
                tok.sha256,
                harness::throughput::peak_rss().map_or("unknown (no /proc/self/status)".to_string(), |b| format!("{:.1} MiB", mib(b))),
                mib(input_bytes),
            );
        }
        Command::Data { what: DataCommand::Pairs { what } } => data_pairs(what)?,
        Command::Bench { what: BenchCommand::Job { job } } => {
            let job: harness::throughput::Job = serde_json::from_str(&job).context("reading the job")?;
            let measured = harness::throughput::measure_here(&job)?;
            println!("{}", serde_json::to_string(&measured)?);
        }
        Command::Bench { what: BenchCommand::Data { file, marker, vocab_size, repeats, python, out } } => {
            let bench = harness::bench::DataBench { file, marker, vocab_size, repeats: repeats.max(1), python, cache: PathBuf::from("results/.cache") };
            let (table, notes) = bench.run().context("bench data --file")?;
            let out = out.unwrap_or_else(|| PathBuf::from("reports/bench-data").join(chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string()));
            harness::bench::write(&out, "Tokenization throughput", "tokenize", &table, &notes)?;
            for n in &notes {
                println!("{n}");
            }
            println!("{}", table.markdown());
            println!("written to {}", out.display());
        }
        Command::Bench { what: BenchCommand::Gather { gib, batches, n_ctx, dir, out } } => {
            anyhow::ensure!(gib > 0.0 && batches > 0, "--gib and --batches must be positive");
            anyhow::ensure!(n_ctx.iter().all(|&n| n >= 2), "--n-ctx: each context length must be at least 2");
            let shapes = n_ctx.iter().map(|&n| (n, if n >= 512 { harness::suite::Packing::Truncate } else { harness::suite::Packing::Windows })).collect();
            let bench = harness::bench::GatherBench { dir, gib, shapes, batches };
            let (table, notes) = bench.run().context("bench gather")?;
            let out = out.unwrap_or_else(|| PathBuf::from("reports/bench-gather").join(chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string()));
            harness::bench::write(&out, "Loader throughput from a token shard", "gather", &table, &notes)?;
            for n in &notes {
                println!("{n}");
            }
            println!("{}", table.markdown());
            println!("written to {}", out.display());
        }
        Command::Compare { dirs, out } => {
            let out = out.unwrap_or_else(|| PathBuf::from("reports/compare").join(chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string()));
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
            let rows = harness::report::throughput::compare(&dirs, &out)?;
            println!("{} rows from {} folder(s): {}", rows.len(), dirs.len(), out.join("README.md").display());
        }
        Command::Doctor { require_cuda, json, cpu_kernels } => {
            let mode: harness::kernels::CpuKernels = serde_json::from_value(serde_json::Value::String(cpu_kernels.clone()))
                .map_err(|_| anyhow::anyhow!("--cpu-kernels {cpu_kernels}: expected native or portable"))?;
            harness::kernels::apply(mode)?;
            let d = device::Doctor::collect();
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
        }
    }
    Ok(())
}

/// `harness data tokenizer`: the suite's tokenizer training on one file, with its statistics.
#[allow(clippy::too_many_arguments)]
fn data_pairs(what: PairsCommand) -> Result<()> {
    use harness::data::{pairset, summarize};
    match what {
        PairsCommand::Export { set, input, text_column, marker, tokenizer, skip, count, out, replace } => {
            let tok = match &tokenizer {
                Some(p) => Some(tokenizers::Tokenizer::from_file(p).map_err(|e| anyhow::anyhow!("--tokenizer {}: {e}", p.display()))?),
                None => None,
            };
            let e = pairset::Export {
                inputs: &input,
                text_column: &text_column,
                marker: &marker,
                prompts: set,
                tokenizer: tok.as_ref(),
                skip: skip.unwrap_or(set.default_skip()),
                count,
            };
            let n = pairset::export(&e, &out, replace).with_context(|| format!("data pairs export into {}", out.display()))?;
            println!("{n} {} passages (rows {} .. {}) in {}", set.name(), e.skip, e.skip + n - 1, out.display());
        }
        PairsCommand::Summarize {
            passages, out, endpoint, model, shard, concurrency, rate, timeout_s, retries, temperature, top_p, top_k, min_p,
            repeat_penalty, max_tokens, seed, limit,
        } => {
            let meta: serde_json::Value = std::fs::read_to_string(summarize::sidecar(&passages))
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok())
                .with_context(|| format!("{}: not found or unreadable; `harness data pairs export` writes it beside the passages", summarize::sidecar(&passages).display()))?;
            let prompts: summarize::PromptSet = serde_json::from_value(meta["prompt_set"].clone())
                .with_context(|| format!("{}: no prompt_set", summarize::sidecar(&passages).display()))?;
            let (i, k) = shard
                .split_once('/')
                .and_then(|(i, k)| Some((i.parse::<usize>().ok()?, k.parse::<usize>().ok()?)))
                .with_context(|| format!("--shard {shard}: give i/k, e.g. 0/4"))?;
            pairset::guard_output(&out, &[&passages, &summarize::sidecar(&passages)], |_| true, false)?;
            let all = pairset::read_passages(&passages)?;
            let mut jobs: Vec<summarize::Job> = summarize::shard(&all, i, k)?
                .into_iter()
                .map(|p| summarize::Job { row: p.row, text: p.prompt_text, passage_sha256: p.passage_sha256 })
                .collect();
            if let Some(n) = limit {
                jobs.truncate(n);
            }
            let s = summarize::Summarizer {
                endpoint,
                model,
                api_key: std::env::var("OPENAI_API_KEY").ok(),
                prompts,
                sampling: summarize::Sampling { temperature, top_p, top_k, min_p, repeat_penalty, max_tokens, seed },
                concurrency,
                rate,
                timeout: std::time::Duration::from_secs(timeout_s),
                retries,
                backoff: std::time::Duration::from_millis(500),
                progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
            };
            let o = s.run(&jobs, &out).with_context(|| format!("summarizing shard {shard} of {} into {}", passages.display(), out.display()))?;
            println!(
                "{} summaries in {} ({} asked now in {:.1} s, {:.2}/s; {} reused); retried: {} x 429, {} x 5xx, {} x time-out or no connection, {} x malformed; sha256 {}",
                o.total,
                out.display(),
                o.requested,
                o.wall_s,
                o.requested as f64 / o.wall_s.max(1e-9),
                o.reused,
                o.retried_429,
                o.retried_5xx,
                o.retried_timeout,
                o.retried_malformed,
                o.output_sha256
            );
        }
        PairsCommand::Join { passages, summaries, test_pairs, out, replace } => {
            let st = pairset::join(&passages, &summaries, test_pairs, &out, replace).with_context(|| format!("data pairs join into {}", out.display()))?;
            println!(
                "{} pairs ({} train, {} test) in {}; {} empty and {} duplicate summaries; summary words min/p10/p50/p90/max {:?}; provenance in {}",
                st.pairs,
                st.train,
                st.test,
                out.display(),
                st.empty_summaries,
                st.duplicate_summaries,
                st.summary_words,
                pairset::provenance_path(&out).display()
            );
        }
    }
    Ok(())
}

fn data_tokenizer(
    kind: TokenizerArg,
    input: Option<&std::path::Path>,
    marker: &str,
    text_column: Option<String>,
    vocab: usize,
    limit: Option<usize>,
    base: Option<PathBuf>,
    out: &std::path::Path,
    base_only: bool,
    lines: LinesArg,
) -> Result<()> {
    use harness::data::tokenizer;
    use harness::suite::{DataConfig, TokenizerKind, TokenizerLines};
    let kind = match kind {
        TokenizerArg::Bpe => TokenizerKind::Bpe,
        TokenizerArg::Llama => TokenizerKind::Llama,
        TokenizerArg::Llama3 => TokenizerKind::Llama3,
    };
    if base_only {
        let json = match kind {
            TokenizerKind::Bpe => anyhow::bail!("--base-only: the byte-level BPE is trained from scratch and has no base; use --kind llama or llama3"),
            TokenizerKind::Llama => tokenizer::llama_base(),
            TokenizerKind::Llama3 => tokenizer::llama3_base(),
        };
        harness::artifacts::write_atomic(out, serde_json::to_string_pretty(&json)?.as_bytes()).with_context(|| format!("writing {}", out.display()))?;
        println!("the untrained {} base in {}", kind.name(), out.display());
        return Ok(());
    }
    let input = input.context("--input is required to train")?;
    let mut cfg = DataConfig::for_file(&input, text_column.as_deref(), marker, true);
    cfg.vocab_size = vocab;
    cfg.n_stories = limit;
    cfg.tokenizer = kind;
    cfg.tokenizer_base = base;
    cfg.tokenizer_lines = match lines {
        LinesArg::All => TokenizerLines::All,
        LinesArg::Paper => TokenizerLines::Paper,
        LinesArg::First2m => TokenizerLines::First2m,
    };
    cfg.normalize().map_err(|e| anyhow::anyhow!("{} ({}): check the matching option (--vocab, --input, --text-column, --lines)", e.message, e.key))?;
    let corpus = harness::data::Corpus::open(&cfg).with_context(|| format!("reading {}", input.display()))?;
    let started = std::time::Instant::now();
    let base_json = match &cfg.tokenizer_base {
        Some(p) => Some(serde_json::from_str(&harness::artifacts::read_regular_string(p).with_context(|| format!("--base {}", p.display()))?).with_context(|| format!("--base {}: not JSON", p.display()))?),
        None => None,
    };
    let failed = std::sync::Mutex::new(None);
    let trained = harness::data::train(&cfg, base_json, harness::data::until_error(corpus.train_docs(), &failed));
    if let Some(e) = failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(anyhow::Error::new(e).context(format!("reading {}", input.display())));
    }
    let json = trained.map_err(|m| anyhow::anyhow!("training the {} tokenizer: {m}", kind.name()))?;
    let seconds = started.elapsed().as_secs_f64();
    harness::artifacts::write_atomic(out, json.as_bytes()).with_context(|| format!("writing {}", out.display()))?;
    let tok = harness::data::Tok::from_json(json, out)?;
    let failed = std::sync::Mutex::new(None);
    let stats = tokenizer::stats(&tok.tokenizer, harness::data::until_error(corpus.train_docs(), &failed));
    if let Some(e) = failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(anyhow::Error::new(e).context(format!("reading {}", input.display())));
    }
    let s = stats.map_err(|m| anyhow::anyhow!("encoding {}: {m}", input.display()))?;
    println!(
        "{}: {} stories, {} characters -> {} tokens ({:.4} tokens per character, {:.2} characters per token), <unk> {:.3}% of tokens; \
         vocab {}, trained in {seconds:.1} s, sha256 {} in {}",
        kind.name(),
        corpus.train.docs,
        s.chars,
        s.tokens,
        s.tokens as f64 / s.chars.max(1) as f64,
        s.chars as f64 / s.tokens.max(1) as f64,
        100.0 * s.unk as f64 / s.tokens.max(1) as f64,
        tok.vocab_size(),
        tok.sha256,
        out.display()
    );
    Ok(())
}

/// `--device auto|cpu|cuda`.
fn device_arg(name: &str) -> Result<tch::Device> {
    let choice = match name {
        "auto" => device::DeviceChoice::Auto,
        "cpu" => device::DeviceChoice::Cpu,
        "cuda" => device::DeviceChoice::Cuda,
        other => anyhow::bail!("--device {other}: use auto, cpu or cuda"),
    };
    Ok(device::resolve(choice)?)
}
