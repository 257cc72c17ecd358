//! `harness plan`: the runs a suite (or a folder of suites) expands to, their cost on a card
//! (`--estimate`), or the sweep as Slurm job arrays (`--emit slurm`).
use super::{print, resolve_card, SuiteArgs};
use anyhow::{Context, Result};
use harness::slurm::{Invocation, SlurmConfig};
use harness::suite::Suite;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Plan {
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
enum Emit {
    Slurm,
}

impl Plan {
    pub fn run(self) -> Result<()> {
        if self.estimate {
            let card = resolve_card(self.card.as_deref())?;
            print(&harness::estimate::estimate_text(&self.args.load_all()?, &card));
        } else if self.slurm.emit.is_some() {
            self.emit()?;
        } else {
            anyhow::ensure!(self.card.is_none(), "--card prices runs: give it with --estimate (or with --emit slurm, for the tasks' time limits)");
            let args = &self.args;
            let text: String = args.load_all()?.iter().map(|suite| harness::plan::plan_text(suite, args.profile.as_deref(), &args.results)).collect::<Vec<_>>().join("\n");
            print(&text);
        }
        Ok(())
    }

    /// `--emit slurm`: one set of job arrays for the suite, or one for the folder's suites with
    /// the dependencies between them; submitted with `--submit`.
    fn emit(self) -> Result<()> {
        let Plan { args, slurm: s, card, .. } = self;
        let suites = args.load_all()?;
        let card = if s.time.is_none() { Some(resolve_card(card.as_deref())?) } else { None };
        anyhow::ensure!(s.resume_every > 0.0 && s.resume_every.is_finite(), "--resume-every {}: give a positive number of minutes", s.resume_every);
        let flags = SlurmConfig {
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
        let parts: Vec<(&Suite, SlurmConfig, Invocation)> = suites
            .iter()
            .map(|suite| {
                let cfg = suite.file.slurm.clone().unwrap_or_default().overridden_by(&flags);
                let inv = Invocation {
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
            harness::slurm::emit_folder(&parts, &s.out.unwrap_or_else(|| PathBuf::from("slurm").join(name)))?
        } else {
            let (suite, cfg, inv) = &parts[0];
            harness::slurm::emit(suite, cfg, inv, &s.out.unwrap_or_else(|| PathBuf::from("slurm").join(&suite.file.name)))?
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
        Ok(())
    }
}
