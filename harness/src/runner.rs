//! Executes a suite: each run in its own folder, finished runs skipped (content-addressed ids,
//! verified hashes), failures recorded without stopping the other runs, then the report.
use crate::artifacts::{utc_now, Manifest, NotFinished, Provenance, RunDir, RunStatus, MANIFEST_SCHEMA};
use crate::experiments::{self, RunContext, RunOutput};
use crate::report::{self, RunRecord};
use crate::suite::{DeviceChoice, Run, Suite};
use anyhow::{Context, Result};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::time::Instant;

pub struct Options {
    pub results: PathBuf,
    pub reports: PathBuf,
    pub progress: bool,
    /// Rerun finished runs too.
    pub force: bool,
    /// Only these runs (experiment names, run ids or prefixes, `failed`), and the runs they
    /// consume (built when missing).
    pub only: Vec<String>,
    /// How often training writes the state a killed run resumes from.
    pub resume: crate::train::ResumeEvery,
    /// Write the versioned report at the end (off for the tasks of a job array: `harness report`
    /// merges their runs).
    pub report: bool,
}

pub struct Outcome {
    pub records: Vec<RunRecord>,
    pub report: Option<PathBuf>,
    /// Reruns (`--force`) that failed while an earlier finished result was kept.
    pub rerun_failed: usize,
}

impl Outcome {
    /// Runs that did not finish, and forced reruns that failed (their earlier result kept).
    pub fn failed(&self) -> usize {
        self.records.iter().filter(|r| r.status != RunStatus::Finished).count() + self.rerun_failed
    }
}

pub fn execute(suite: &Suite, opts: &Options) -> Result<Outcome> {
    // A suite that asks for CUDA where there is none stops before any run: never a silent CPU run.
    if suite.runs.iter().any(|r| r.config.device == DeviceChoice::Cuda) {
        crate::device::resolve(DeviceChoice::Cuda)?;
    }
    // Before the first tensor operation: MKL and ATen pick their kernels once, at first use.
    crate::kernels::apply(suite.runs.first().map(|r| r.config.cpu_kernels).unwrap_or_default())?;
    let runs = if opts.only.is_empty() {
        suite.runs.clone()
    } else {
        // `--only failed`: the runs whose folder holds a failed attempt.
        let failed: Vec<String> = suite
            .runs
            .iter()
            .filter(|r| RunDir::new(&opts.results, &r.suite, &r.id).read_manifest().is_some_and(|m| m.status == RunStatus::Failed))
            .map(|r| r.id.clone())
            .collect();
        let selected = suite.select(&opts.only, &failed)?;
        // No failed run to retry is success, as make's "nothing to be done": a retry loop
        // (`harness run S --only failed` until it exits 0) must end.
        if selected.is_empty() && opts.only.iter().all(|s| s == "failed") {
            eprintln!("{}: --only failed: no run failed before here, in {}: nothing to do", suite.path.display(), opts.results.display());
            return Ok(Outcome { records: Vec::new(), report: None, rerun_failed: 0 });
        }
        if selected.is_empty() {
            anyhow::bail!(
                "{}: --only {} selects no run (no run failed before here, in {}): nothing to do",
                suite.path.display(),
                opts.only.join(","),
                opts.results.display()
            );
        }
        selected
    };
    // Judged on the runs this invocation computes (with `--only`, the selected ones).
    let cpu_bf16: Vec<crate::kernels::Bf16Run> = runs
        .iter()
        .filter(|r| r.config.device == DeviceChoice::Cpu && r.config.precision() == crate::suite::Precision::Bf16)
        .map(|r| crate::kernels::Bf16Run {
            experiment: r.experiment.clone(),
            trains: experiments::of(r.config.kind).trains_in(),
        })
        .collect();
    crate::kernels::check_bf16(&cpu_bf16)?;
    let prov = Provenance::collect();
    let cache = opts.results.join(".cache");
    let refused = refuse_oversized(&runs)?;
    let mut records: Vec<(usize, RunRecord)> = Vec::new();
    let mut rerun_failed = 0;
    let n = runs.len();
    // Runs another live process holds are left for a second pass, which waits for them.
    let mut deferred: Vec<usize> = Vec::new();
    for wait in [false, true] {
        let order: Vec<usize> = if wait { std::mem::take(&mut deferred) } else { (0..n).collect() };
        for i in order {
            let run = &runs[i];
            let head = format!("[{}/{n}] {} {} {} seed {}", i + 1, run.experiment, run.short_id(), report::model_label(run), run.config.seed);
            if !wait && run.upstream().is_some_and(|up| deferred.iter().any(|d| runs[*d].id == up)) {
                deferred.push(i); // its producer is being built elsewhere
                continue;
            }
            if let Some(why) = refused.get(&run.id) {
                eprintln!("{head}: REFUSED: {why}");
                let dir = RunDir::new(&opts.results, &run.suite, &run.id);
                let why = format!("refused before any work: {why}");
                records.push((i, RunRecord { status: RunStatus::Failed, error: Some(why), ..record(run, &dir, &Manifest::not_run(run), false) }));
                continue;
            }
            match process(run, &head, opts, &prov, &cache, &records, wait)? {
                Some((rec, kept)) => {
                    rerun_failed += usize::from(kept);
                    records.push((i, rec));
                }
                None => deferred.push(i),
            }
        }
    }
    records.sort_by_key(|(i, _)| *i);
    let records: Vec<RunRecord> = records.into_iter().map(|(_, r)| r).collect();
    let report = if opts.report { Some(report::write(suite, &records, &experiments::report_sections(suite), &opts.reports, &opts.results, &prov)?) } else { None };
    Ok(Outcome { records, report, rerun_failed })
}

/// The producer files a finished consumer read (its manifest's `<producer id>/<file>` inputs)
/// that its producer now holds with another sha256, or no longer holds: the producer reran
/// (`--force`, or its own inputs changed) after the consumer finished. Producers are processed
/// first, so a change anywhere up the chain reaches every consumer below it.
fn changed_producer_files(run: &Run, m: &Manifest, results: &Path) -> Vec<String> {
    changed_producer_files_in(run, m, results, &run.suite)
}

/// [`changed_producer_files`] against the producer's folder of suite `suite`.
fn changed_producer_files_in(run: &Run, m: &Manifest, results: &Path, suite: &str) -> Vec<String> {
    let Some(up) = run.upstream() else { return Vec::new() };
    let prefix = format!("{}/", &up[..up.len().min(12)]);
    let now = RunDir::new(results, suite, up).check_finished().ok();
    m.inputs
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(&prefix)?, k, v)))
        .filter(|(name, _, v)| now.as_ref().and_then(|p| p.files.get(*name)) != Some(*v))
        .map(|(_, k, _)| format!("{k} (from its producer)"))
        .collect()
}

/// One run: reused when finished (and its inputs unchanged), else run under its lock. `None`
/// when another live process holds the lock and `wait` is false; with `wait`, it waits for that
/// process and then reuses its result (or runs it, when that process did not finish it).
/// The record and whether a forced rerun failed while the earlier result was kept.
fn process(run: &Run, head: &str, opts: &Options, prov: &Provenance, cache: &Path, done: &[(usize, RunRecord)], wait: bool) -> Result<Option<(RunRecord, bool)>> {
    let dir = RunDir::new(&opts.results, &run.suite, &run.id);
    let reusable = |announce: bool| -> Option<RunRecord> {
        if opts.force {
            return None;
        }
        match dir.check_finished() {
            Ok(m) => {
                let (mut changed, missing) = m.stale_inputs();
                changed.extend(changed_producer_files(run, &m, &opts.results));
                if changed.is_empty() {
                    if !missing.is_empty() {
                        eprintln!("{head}: finished earlier, reused; its input(s) {} are not here to re-verify", missing.join(", "));
                    } else {
                        eprintln!("{head}: finished earlier, reused");
                    }
                    return Some(record(run, &dir, &m, true));
                }
                if announce {
                    eprintln!("{head}: its input(s) {} changed since it finished; rerunning", changed.join(", "));
                }
            }
            Err(why) if announce && dir.path.exists() => eprintln!("{head}: {why}; rerunning"),
            Err(_) => {}
        }
        None
    };
    if let Some(rec) = reusable(false) {
        return Ok(Some((rec, false)));
    }
    std::fs::create_dir_all(dir.path.parent().expect("inside the results folder")).with_context(|| format!("creating {}", opts.results.display()))?;
    let lock_path = dir.lock_path();
    let mut told = false;
    let _lock = loop {
        match crate::lock::try_acquire(&lock_path).with_context(|| format!("locking {}", lock_path.display()))? {
            crate::lock::Acquire::Held(l) => break l,
            crate::lock::Acquire::Busy(who) if !wait => {
                eprintln!("{head}: another harness is running it ({who}); coming back to it");
                return Ok(None);
            }
            crate::lock::Acquire::Busy(who) => {
                if !told {
                    eprintln!("{head}: waiting for {who}");
                    told = true;
                }
                std::thread::sleep(std::time::Duration::from_millis(500));
            }
        }
    };
    // Another process may have finished it while this one waited for the lock.
    if let Some(rec) = reusable(true) {
        return Ok(Some((rec, false)));
    }
    // The same configuration finished for another suite in this results folder: adopted, not
    // computed again (the whole paper shares runs between suites). Only into an empty place: a
    // failed or stale attempt here is this suite's to rerun.
    if !opts.force && !dir.path.exists() {
        if let Some((other, from, _)) = finished_elsewhere(run, &opts.results) {
            adopt(&from, &dir).with_context(|| format!("adopting {} into {}", from.path.display(), dir.path.display()))?;
            if let Some(rec) = reusable(false) {
                eprintln!("{head}: finished for suite `{other}`, adopted (the same configuration; its files hard-linked)");
                return Ok(Some((rec, false)));
            }
        }
    }
    // Producers run first (suite order); a failed one fails its consumers without work.
    if let Some(up) = run.upstream() {
        if let Some(p) = done.iter().map(|(_, r)| r).find(|r| r.run.id == up && r.status != RunStatus::Finished) {
            let why = format!("its producer {} ({}) did not finish", p.run.short_id(), p.run.experiment);
            eprintln!("{head}: SKIPPED: {why}");
            return Ok(Some((RunRecord { status: RunStatus::Failed, error: Some(why), ..record(run, &dir, &Manifest::not_run(run), false) }, false)));
        }
    }
    eprintln!("{head}: running");
    let (m, kept) = run_one(run, &dir, prov, opts, cache)?;
    match (&m.error, &kept) {
        (_, Some(why)) => eprintln!("{head}: RERUN FAILED: {why}"),
        (None, None) => eprintln!("{head}: finished in {:.1} s", m.wall_s.unwrap_or_default()),
        (Some(e), None) => eprintln!("{head}: FAILED: {e}"),
    }
    let mut rec = record(run, &dir, &m, kept.is_some());
    let rerun_failed = kept.is_some();
    if let Some(why) = kept {
        rec.error = Some(why);
    }
    Ok(Some((rec, rerun_failed)))
}

/// The record of `run` from another suite's folder of the results folder `dir` is in, when that
/// suite finished the same configuration.
fn shared_record(run: &Run, dir: &RunDir) -> Option<RunRecord> {
    let results = dir.path.parent()?.parent()?;
    let (_, from, m) = finished_elsewhere(run, results)?;
    Some(record(run, &from, &m, true))
}

/// The same run (content-addressed: the same id is the same configuration, producers included)
/// finished for another suite of this results folder, with its inputs and its producer's files as
/// they are here; the first such suite by name.
fn finished_elsewhere(run: &Run, results: &Path) -> Option<(String, RunDir, Manifest)> {
    let mut suites: Vec<String> = std::fs::read_dir(results)
        .ok()?
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|s| *s != run.suite && !s.starts_with('.'))
        .collect();
    suites.sort();
    suites.into_iter().find_map(|suite| {
        let from = RunDir::new(results, &suite, &run.id);
        let m = from.check_finished().ok()?;
        // Its producer as this suite has it, or, where this suite has none yet, as that suite has it.
        let producer_here = run.upstream().is_some_and(|up| RunDir::new(results, &run.suite, up).path.exists());
        let producer_suite = if producer_here { run.suite.as_str() } else { suite.as_str() };
        let fresh = m.stale_inputs().0.is_empty() && changed_producer_files_in(run, &m, results, producer_suite).is_empty();
        fresh.then_some((suite, from, m))
    })
}

/// Puts a finished run's folder at `to` (hard links, or copies across file systems), through
/// `<id>.building` so a half-made folder is never taken for a run.
fn adopt(from: &RunDir, to: &RunDir) -> Result<()> {
    fn link_tree(src: &Path, dst: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dst)?;
        for e in std::fs::read_dir(src)? {
            let e = e?;
            let (s, d) = (e.path(), dst.join(e.file_name()));
            if e.file_type()?.is_dir() {
                link_tree(&s, &d)?;
            } else if std::fs::hard_link(&s, &d).is_err() {
                std::fs::copy(&s, &d)?;
            }
        }
        Ok(())
    }
    let building = to.building();
    if building.path.exists() {
        std::fs::remove_dir_all(&building.path)?;
    }
    link_tree(&from.path, &building.path)?;
    std::fs::rename(&building.path, &to.path)?;
    Ok(())
}

/// libtorch's CUDA out-of-memory error, said with the figures and a batch that fits better:
/// "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.19 GiB of
/// which 1.06 GiB is free. ..."
fn explain_oom(error: &str, config: &crate::suite::RunConfig) -> Option<String> {
    let oom = &error[error.find("CUDA out of memory")?..];
    // "<key>2.00 GiB": the figure after `key`, with its unit.
    let figure = |key: &str| -> Option<&str> {
        let rest = &oom[oom.find(key)? + key.len()..];
        let end = ["GiB", "MiB", "KiB", "bytes"].iter().filter_map(|u| rest.find(u).map(|i| i + u.len())).min()?;
        Some(rest[..end].trim())
    };
    let asked = figure("Tried to allocate ")?;
    let total = figure("total capacity of ").unwrap_or("?");
    let free = figure("of which ").unwrap_or("?");
    let fix = match &config.train {
        Some(t) if t.batch_size > 1 => format!(
            "lower train.batch_size to {} (and set train.accumulate = {} to keep the global batch of {})",
            t.batch_size / 2,
            t.accumulate * 2,
            t.global_batch()
        ),
        _ => "lower data.n_ctx or the model's size".into(),
    };
    // libtorch's first sentence, without the C++ frames after it (a panic's Debug text holds
    // them on the same line, its newlines escaped as `\n`).
    let said = oom.lines().next().unwrap_or(oom);
    let said = said.split("\\n").next().unwrap_or(said).trim_end_matches(['"', ')']);
    Some(format!("CUDA out of memory: asked for {asked} with {free} free of {total}; {fix}. libtorch said: {said}"))
}

/// What a harness process holds before a run allocates anything (libtorch, its kernels, the
/// tokenizer), counted on the CPU on top of a run's estimate.
const CPU_PROCESS_BYTES: u64 = 512 << 20;

/// The memory a run needs as the refusal reads it, with what it counts: on the CPU the kind's
/// estimate (activations included) and the process's own; on a GPU the lower bound.
fn memory_need(run: &Run) -> Option<(u64, String)> {
    let kind = experiments::of(run.config.kind);
    match run.config.device == DeviceChoice::Cpu {
        true => kind
            .memory_estimate(&run.config)
            .map(|(b, what)| (b + CPU_PROCESS_BYTES, format!("{what}, and {} for the process", crate::device::gib(CPU_PROCESS_BYTES)))),
        false => kind.memory_lower_bound(&run.config),
    }
}

/// Why `run` cannot fit its device, if it cannot: on a GPU, a memory lower bound over the card
/// (better than an allocation of terabytes failing deep inside libtorch; an allocation that fails
/// later is an error the run reports); on the CPU, an estimate, activations included, over the
/// host's memory (there, running out is the kernel killing the process). `have` caches each
/// device's memory.
fn oversized(run: &Run, have: &mut Vec<(DeviceChoice, Option<u64>)>) -> Option<String> {
    let (need, what) = memory_need(run)?;
        let d = run.config.device;
        let total = match have.iter().find(|(k, _)| *k == d) {
            Some((_, t)) => *t,
            None => {
                let t = crate::device::memory_bytes(d);
                have.push((d, t));
                t
            }
        }?;
    (need > total).then(|| {
        let lower = match &run.config.throughput {
            Some(t) => format!(
                "throughput.n_ctx, throughput.vocab_size, throughput.batch_size or the model's size (now throughput.n_ctx = {}, \
                 throughput.vocab_size = {}, throughput.batch_size = {})",
                t.n_ctx, t.vocab_size, t.batch_size
            ),
            None => "data.n_ctx, the model's size or the batch size".to_string(),
        };
        format!(
            "run {} (experiment `{}`, {}) needs {} {} of memory ({what}) but the {} has {}; lower {lower}",
            run.short_id(),
            run.experiment,
            report::model_label(run),
            if d == DeviceChoice::Cpu { "an estimated" } else { "at least" },
            crate::device::gib(need),
            format!("{d:?}").to_lowercase(),
            crate::device::gib(total),
        )
    })
}

/// Refuses, before any work, a suite with a run that cannot fit its device ([`oversized`]). At
/// the built-in `shapes` profile, whose point is to find which paper runs fit, the refused runs
/// are returned instead (they fail without work, and the others run).
fn refuse_oversized(runs: &[Run]) -> Result<std::collections::BTreeMap<String, String>> {
    let mut have = Vec::new();
    let mut refused = std::collections::BTreeMap::new();
    for run in runs {
        if let Some(why) = oversized(run, &mut have) {
            if run.config.profile.as_deref() != Some(crate::suite::shapes::SHAPES) {
                anyhow::bail!("{why}");
            }
            refused.insert(run.id.clone(), why);
        }
    }
    Ok(refused)
}

/// Runs one run in a folder beside its final one (`<id>.building`) and moves it into place when
/// it is done: a finished result already there (`--force`) is replaced only by a finished rerun.
/// When the rerun fails, the earlier result is kept, the failed attempt goes to `<id>.failed`,
/// and the earlier manifest is returned with the rerun's error.
fn run_one(run: &Run, final_dir: &RunDir, prov: &Provenance, opts: &Options, cache: &Path) -> Result<(Manifest, Option<String>)> {
    let dir = &final_dir.building();
    // A building folder left by an interrupted process: training resumes from its state when it
    // has one for this very config; anything else is a partial run, redone from scratch.
    let config_json = serde_json::to_string_pretty(&run.config).expect("config serializes");
    let resumable = dir.resume_state().exists() && std::fs::read_to_string(dir.file("config.json")).is_ok_and(|c| c == config_json);
    if dir.path.exists() && !resumable {
        std::fs::remove_dir_all(&dir.path).with_context(|| format!("clearing {}", dir.path.display()))?;
    }
    std::fs::create_dir_all(&dir.path).with_context(|| format!("creating {}", dir.path.display()))?;
    dir.write_json("config.json", &run.config)?;
    let device = crate::device::resolve(run.config.device)?;
    let mut m = Manifest {
        status: RunStatus::Running,
        git_sha: prov.git_sha.clone(),
        git_dirty: prov.git_dirty,
        cargo_lock_sha256: prov.cargo_lock_sha256.clone(),
        harness_version: prov.harness_version.clone(),
        libtorch_version: prov.libtorch_version.clone(),
        device: crate::device::describe(device),
        started_utc: utc_now(),
        ..Manifest::not_run(run)
    };
    dir.write_manifest(&m)?;
    let started = Instant::now();
    // At the built-in `shapes` profile a training run also writes its resume point after step 1.
    let resume = match run.config.profile.as_deref() == Some(crate::suite::shapes::SHAPES) {
        true => crate::train::ResumeEvery { steps: Some(1), ..opts.resume },
        false => opts.resume,
    };
    let ctx = RunContext { run, dir, device, results: &opts.results, cache, progress: opts.progress, resume };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<RunOutput> {
        experiments::of(run.config.kind).run(&ctx)
    }));
    m.wall_s = Some(started.elapsed().as_secs_f64());
    m.finished_utc = Some(utc_now());
    match result {
        Ok(Ok(out)) => {
            dir.write_json("summary.json", &out.summary)?;
            // The local files among the inputs, so reuse can re-verify them.
            m.input_files = out.inputs.files_here();
            m.inputs = out.inputs.all();
            m.execution = out.execution;
            if let Some((need, what)) = memory_need(run) {
                m.execution.insert("memory_estimate".into(), format!("{} ({what})", crate::device::gib(need)));
            }
            if let Some(peak) = crate::throughput::peak_rss() {
                m.execution.insert(
                    "peak_rss".into(),
                    format!(
                        "{:.1} MiB (the process's VmHWM when the run finished; earlier runs of the same process included)",
                        peak as f64 / (1u64 << 20) as f64
                    ),
                );
            }
            if let Some(peak) = crate::throughput::peak_rss_children() {
                m.execution.insert(
                    "peak_rss_children".into(),
                    format!("{:.1} MiB (the largest child process so far: a throughput job runs in its own)", peak as f64 / (1u64 << 20) as f64),
                );
            }
            if run.config.device == DeviceChoice::Cpu {
                // The kernel path that computed it: what `harness check` compares bits within.
                m.execution.extend(crate::kernels::KernelPath::current().facts());
                if run.config.precision() == crate::suite::Precision::Bf16 {
                    m.execution.insert("bf16_matmul".into(), crate::kernels::Bf16Probe::get().describe());
                }
            }
            m.status = RunStatus::Finished;
        }
        Ok(Err(e)) => {
            m.status = RunStatus::Failed;
            let text = format!("{e:#}");
            m.error = Some(explain_oom(&text, &run.config).unwrap_or(text));
        }
        Err(panic) => {
            m.status = RunStatus::Failed;
            let msg = panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
            // tch's tensor ops panic on a libtorch error: an out-of-memory comes this way too.
            let text = format!("panicked: {}", msg.unwrap_or_default());
            m.error = Some(explain_oom(&text, &run.config).unwrap_or(text));
        }
    }
    m.files = dir.hash_files()?;
    dir.write_manifest(&m)?;
    if m.status != RunStatus::Finished {
        if let Some(earlier) = final_dir.verified_finished() {
            let failed = final_dir.failed();
            if failed.path.exists() {
                std::fs::remove_dir_all(&failed.path).with_context(|| format!("clearing {}", failed.path.display()))?;
            }
            std::fs::rename(&dir.path, &failed.path).with_context(|| format!("moving the failed attempt to {}", failed.path.display()))?;
            let why = format!(
                "the rerun failed ({}); the earlier finished result in {} is kept, the failed attempt is in {}",
                m.error.as_deref().unwrap_or("no error recorded"),
                final_dir.path.display(),
                failed.path.display()
            );
            return Ok((earlier, Some(why)));
        }
    }
    if final_dir.path.exists() {
        std::fs::remove_dir_all(&final_dir.path).with_context(|| format!("replacing {}", final_dir.path.display()))?;
    }
    std::fs::rename(&dir.path, &final_dir.path).with_context(|| format!("moving {} into place", dir.path.display()))?;
    Ok((m, None))
}

impl Manifest {
    /// The manifest of a run before (or without) running it: its ids and seed, status failed
    /// until a run sets it.
    fn not_run(run: &Run) -> Self {
        Manifest {
            schema_version: MANIFEST_SCHEMA,
            run_id: run.id.clone(),
            suite: run.suite.clone(),
            experiment: run.experiment.clone(),
            status: RunStatus::Failed,
            error: None,
            git_sha: String::new(),
            git_dirty: false,
            cargo_lock_sha256: None,
            harness_version: String::new(),
            libtorch_version: String::new(),
            device: String::new(),
            seed: run.config.seed,
            inputs: Default::default(),
            execution: Default::default(),
            started_utc: String::new(),
            finished_utc: None,
            wall_s: None,
            files: Default::default(),
            input_files: Default::default(),
            manifest_sha256: None,
        }
    }
}

/// Each run's state in `results`: `finished`, `running` (a live lock holds it: who, and the
/// step of its last resumable state), `failed` (the error), `partial` (a building folder no one
/// holds: it resumes or restarts on the next run) or `pending`.
pub fn status(suite: &Suite, results: &Path) -> Vec<(Run, &'static str, String)> {
    suite
        .runs
        .iter()
        .map(|run| {
            let dir = RunDir::new(results, &run.suite, &run.id);
            let building = dir.building();
            let step = || building.resume_step().map_or(String::new(), |s| format!(", resumable at step {s}"));
            let (state, detail) = if let Some(holder) = crate::lock::holder(&dir.lock_path()) {
                ("running", format!("{holder}{}{}", step(), progress_text(run, &building.path)))
            } else {
                match dir.check_finished() {
                    Ok(m) => ("finished", format!("{:.1} s on {}", m.wall_s.unwrap_or_default(), m.device)),
                    Err(_) if building.path.exists() => ("partial", format!("interrupted{}", step())),
                    Err(why) => match dir.read_manifest() {
                        Some(m) if m.status == RunStatus::Failed => ("failed", m.error.unwrap_or_default()),
                        _ if why == NotFinished::NotRun => match finished_elsewhere(run, results) {
                            // A run another suite computes for both (a folder's submission).
                            Some((other, _, m)) => ("finished", format!("{:.1} s on {}, for suite `{other}`", m.wall_s.unwrap_or_default(), m.device)),
                            None => ("pending", String::new()),
                        },
                        _ => ("pending", why.to_string()),
                    },
                }
            };
            (run.clone(), state, detail)
        })
        .collect()
}

/// A running run's latest step, losses, pace and ETA from its event files (empty before the
/// first logged step).
fn progress_text(run: &Run, dir: &Path) -> String {
    let Some(p) = crate::tensorboard::progress(dir).filter(|p| p.loss.is_some()) else { return String::new() };
    let total = run.config.train.as_ref().zip(run.config.data.as_ref()).map(|(t, d)| t.budget_steps(d.n_ctx));
    let mut text = match total {
        Some(t) => format!("; step {}/{t}", p.step),
        None => format!("; step {}", p.step),
    };
    text.push_str(&format!(", loss {:.3}", p.loss.unwrap_or(f64::NAN)));
    if let Some(e) = p.eval_loss {
        text.push_str(&format!(", eval {e:.3}"));
    }
    if let Some(r) = p.steps_per_s {
        text.push_str(&format!(", {r:.2} steps/s"));
        if let Some(t) = total.filter(|&t| t > p.step) {
            let s = ((t - p.step) as f64 / r).round() as u64;
            text.push_str(&format!(", ETA {}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60));
        }
    }
    text
}

/// A run as a results folder holds it: its record when it finished and its files still hash to
/// its manifest, else a failed record saying so (for `harness report` and `harness check`).
pub fn load_record(run: &Run, dir: &RunDir) -> RunRecord {
    // Not here, but another suite of this results folder finished the same configuration: read
    // from there (a Slurm submission of the whole paper computes a shared run once).
    if !dir.path.exists() {
        if let Some(rec) = shared_record(run, dir) {
            return rec;
        }
    }
    match dir.verified_finished() {
        Some(m) => record(run, dir, &m, true),
        None => {
            let why = if dir.path.exists() { "not finished, or its files changed since it finished" } else { "not run" };
            RunRecord { error: Some(why.into()), ..record(run, dir, &Manifest::not_run(run), false) }
        }
    }
}

fn curve(dir: &RunDir, file: &str, y: &str) -> Vec<(f64, f64)> {
    let Ok(text) = std::fs::read_to_string(dir.file(file)) else { return vec![] };
    let rows: Vec<Map<String, Value>> = serde_json::from_str(&text).unwrap_or_default();
    rows.iter().filter_map(|r| Some((r.get("step")?.as_f64()?, r.get(y)?.as_f64()?))).collect()
}

fn record(run: &Run, dir: &RunDir, m: &Manifest, reused: bool) -> RunRecord {
    let summary = std::fs::read_to_string(dir.file("summary.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    RunRecord {
        run: run.clone(),
        status: m.status,
        error: m.error.clone(),
        device: m.device.clone(),
        execution: m.execution.clone(),
        wall_s: m.wall_s,
        summary,
        eval_curve: curve(dir, "metrics_eval.json", "eval_loss"),
        train_curve: curve(dir, "metrics_steps.json", "loss"),
        reused,
        folder: dir.path.clone(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cuda_oom_is_said_with_its_figures_and_a_batch() {
        let cfg: crate::suite::RunConfig = toml::from_str(
            "kind = \"clm\"\n[train]\nsteps = 10\nbatch_size = 32\n",
        )
        .unwrap();
        let e = "training: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.19 GiB of which 1.06 GiB is free. Including non-PyTorch memory, this process has 78.1 GiB memory in use.";
        let got = super::explain_oom(e, &cfg).unwrap();
        assert!(got.starts_with("CUDA out of memory: asked for 2.00 GiB with 1.06 GiB free of 79.19 GiB; lower train.batch_size to 16 (and set train.accumulate = 2 to keep the global batch of 32)"), "{got}");
        assert!(super::explain_oom("some other error", &cfg).is_none());
        // The same error as a tch panic: `unwrap()` on a TchError, Debug-formatted, C++ frames after
        // an escaped newline. The figures are read the same; the frames are left out.
        let p = "panicked: called `Result::unwrap()` on an `Err` value: Torch(\"CUDA out of memory. Tried to allocate 8.00 GiB. GPU 0 has a total capacity of 139.80 GiB of which 3.12 GiB is free. Of the allocated memory 130.1 GiB is allocated by PyTorch\\nException raised from malloc at /pytorch/c10/cuda/CUDACachingAllocator.cpp:1234 (most recent call first):\\nframe #0: c10::Error::Error\")";
        let got = super::explain_oom(p, &cfg).unwrap();
        assert!(got.starts_with("CUDA out of memory: asked for 8.00 GiB with 3.12 GiB free of 139.80 GiB; lower train.batch_size to 16"), "{got}");
        assert!(got.ends_with("libtorch said: CUDA out of memory. Tried to allocate 8.00 GiB. GPU 0 has a total capacity of 139.80 GiB of which 3.12 GiB is free. Of the allocated memory 130.1 GiB is allocated by PyTorch"), "{got}");
    }
}
