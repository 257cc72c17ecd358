//! A suite's sweep as Slurm job arrays: the harness hands the grid to the cluster's scheduler and
//! schedules nothing itself.
//!
//! `harness plan <suite> --emit slurm --out DIR` writes one array per *level* of the suite's
//! run graph (level 0: runs that consume nothing; level k: runs whose producer is at level k-1),
//! each task `harness run <suite> --only <run id> --no-report` on the shared results folder, and
//! `submit.sh`, which submits level k with `--dependency=afterany:<level k-1>`. A consumer whose
//! producer failed does not wait forever: its task starts, and `--only` builds the missing
//! producer itself under the producer's run lock (or fails saying why). Tasks are `--requeue`d:
//! a preempted task started again resumes its run from the last resumable state. Nothing of the
//! harness stays on the login node; `harness report` merges the finished runs afterwards.
use crate::suite::{Run, Suite};
use anyhow::{Context, Result};
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

pub use crate::suite::SlurmConfig;

/// What a task runs: the binary, the suite and the settings that define its run ids.
pub struct Invocation {
    pub harness: PathBuf,
    pub suite: PathBuf,
    pub profile: Option<String>,
    pub sets: Vec<String>,
    pub results: PathBuf,
    /// Minutes between resumable states (what a requeued task loses at most).
    pub resume_every: f64,
    /// The folder tasks start in (relative data paths in the suite resolve from it).
    pub workdir: PathBuf,
    /// Without a `time` of its own, each level's time limit is derived from the estimate on this
    /// card ([`derived_time`]).
    pub card: Option<crate::estimate::Card>,
}

/// The time limit of a task that runs for up to `secs` by the estimate: twice that and 30 minutes
/// (the estimate is within a factor of two of the runs it was checked against; docs/cost.md), in
/// sbatch's D-HH:MM:SS.
pub fn derived_time(secs: f64) -> String {
    let total = (2.0 * secs + 1800.0).ceil() as u64;
    format!("{}-{:02}:{:02}:{:02}", total / 86400, total % 86400 / 3600, total % 3600 / 60, total % 60)
}

/// The files written for one suite.
pub struct Emitted {
    pub dir: PathBuf,
    /// Per level: the sbatch script and its number of tasks.
    pub levels: Vec<(PathBuf, usize)>,
    pub submit: PathBuf,
}

/// Level of each run: 0 without a producer, else one more than its producer's.
pub fn levels(runs: &[Run]) -> Vec<usize> {
    let mut out: Vec<usize> = Vec::with_capacity(runs.len());
    for (i, r) in runs.iter().enumerate() {
        let level = r.upstream().and_then(|up| runs[..i].iter().position(|p| p.id == up)).map_or(0, |p| out[p] + 1);
        out.push(level);
    }
    out
}

/// Single-quoted for a POSIX shell.
fn sh(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Checks every value that goes into an `#SBATCH` line against the form sbatch takes, so none
/// can end the line early or add one (a newline in `--partition` would be a shell line of its own).
pub fn validate(cfg: &SlurmConfig) -> Result<()> {
    let fail = |key: &str, v: &str, form: &str| -> Result<()> {
        anyhow::bail!("slurm.{key} (or --{key}) = {v:?}: {form}")
    };
    let name_ok = |v: &str| !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric() || "_-.,".contains(c));
    for (key, v) in [("partition", &cfg.partition), ("account", &cfg.account), ("qos", &cfg.qos)] {
        if let Some(v) = v.as_deref().filter(|v| !name_ok(v)) {
            fail(key, v, "Slurm names are letters, digits, '_', '-' and '.' (several separated by ',')")?;
        }
    }
    if let Some(v) = cfg.mem.as_deref() {
        let digits = v.trim_end_matches(['K', 'M', 'G', 'T']);
        if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) || v.len() - digits.len() > 1 {
            fail("mem", v, "a size as sbatch takes it: digits with an optional K, M, G or T (\"32G\")")?;
        }
    }
    if let Some(v) = cfg.time.as_deref() {
        let hms = |s: &str| {
            let parts: Vec<&str> = s.split(':').collect();
            (1..=3).contains(&parts.len()) && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        };
        let ok = matches!(v, "UNLIMITED" | "INFINITE")
            || match v.split_once('-') {
                Some((days, rest)) => !days.is_empty() && days.chars().all(|c| c.is_ascii_digit()) && hms(rest),
                None => hms(v),
            };
        if !ok {
            fail("time", v, "one of sbatch's forms: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS, or UNLIMITED")?;
        }
    }
    for (key, v) in [("throttle", cfg.throttle), ("cpus", cfg.cpus), ("gpus", cfg.gpus)] {
        if v == Some(0) {
            fail(key, "0", "at least 1")?;
        }
    }
    for extra in &cfg.sbatch {
        if !extra.starts_with("--") || extra.chars().any(|c| c.is_control()) {
            fail("sbatch", extra, "one sbatch option per entry, starting with --, on one line (\"--constraint=h100\")")?;
        }
    }
    if let Some(line) = cfg.setup.iter().find(|l| l.contains(['\n', '\r'])) {
        fail("setup", line, "one shell line per entry (give several entries for several lines)")?;
    }
    Ok(())
}

/// Writes one sbatch script and run list per level of `suite` into `out` (the logs go to `logs`),
/// leaving out the runs in `skip` (another suite of the same submission computes them); a level
/// with no run left gets no script (`None`).
fn write_levels(suite: &Suite, cfg: &SlurmConfig, inv: &Invocation, out: &Path, logs: &Path, skip: &BTreeSet<String>) -> Result<Vec<Option<(PathBuf, usize)>>> {
    validate(cfg)?;
    let abs = |p: &Path| -> PathBuf { if p.is_absolute() { p.to_path_buf() } else { inv.workdir.join(p) } };
    let levels = levels(&suite.runs);
    let n_levels = levels.iter().max().map_or(0, |m| m + 1);
    let name = &suite.file.name;
    let mut written = Vec::new();
    for level in 0..n_levels {
        let ids: Vec<&str> = suite.runs.iter().zip(&levels).filter(|(r, l)| **l == level && !skip.contains(&r.id)).map(|(r, _)| r.id.as_str()).collect();
        if ids.is_empty() {
            written.push(None);
            continue;
        }
        let list = out.join(format!("runs-{level}.txt"));
        crate::artifacts::write_atomic(&list, format!("{}\n", ids.join("\n")).as_bytes())?;
        let mut s = String::from("#!/bin/bash\n");
        let _ = writeln!(s, "# harness: suite `{name}`{}, level {level} of {n_levels}: {} run(s), one per task.", inv.profile.as_ref().map(|p| format!(" at profile `{p}`")).unwrap_or_default(), ids.len());
        let _ = writeln!(s, "#SBATCH --job-name={name}-L{level}");
        let throttle = cfg.throttle.map(|t| format!("%{t}")).unwrap_or_default();
        let _ = writeln!(s, "#SBATCH --array=0-{}{throttle}", ids.len() - 1);
        let _ = writeln!(s, "#SBATCH --output={}/%x-%A_%a.out", logs.display());
        let _ = writeln!(s, "#SBATCH --requeue");
        let _ = writeln!(s, "#SBATCH --open-mode=append");
        let time = match (&cfg.time, &inv.card) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(card)) => {
                let producers: std::collections::BTreeMap<&str, &crate::suite::Run> = suite.runs.iter().map(|r| (r.id.as_str(), r)).collect();
                let longest = suite
                    .runs
                    .iter()
                    .filter(|r| ids.contains(&r.id.as_str()))
                    .map(|r| crate::estimate::run_cost(r, &producers).seconds(card))
                    .fold(0.0, f64::max);
                let _ = writeln!(
                    s,
                    "# --time: the level's longest run is {:.2} h on one {} by `harness plan --estimate`; twice that and 30 min",
                    longest / 3600.0,
                    card.id
                );
                Some(derived_time(longest))
            }
            (None, None) => None,
        };
        for (key, v) in [("partition", &cfg.partition), ("account", &cfg.account), ("qos", &cfg.qos), ("mem", &cfg.mem), ("time", &time)] {
            if let Some(v) = v {
                let _ = writeln!(s, "#SBATCH --{key}={v}");
            }
        }
        if let Some(c) = cfg.cpus {
            let _ = writeln!(s, "#SBATCH --cpus-per-task={c}");
        }
        if let Some(g) = cfg.gpus.filter(|g| *g > 0) {
            let _ = writeln!(s, "#SBATCH --gres=gpu:{g}");
        }
        for extra in &cfg.sbatch {
            let _ = writeln!(s, "#SBATCH {extra}");
        }
        s.push_str("set -euo pipefail\n");
        for line in &cfg.setup {
            let _ = writeln!(s, "{line}");
        }
        let _ = writeln!(s, "cd {}", sh(&inv.workdir.display().to_string()));
        let _ = writeln!(s, "run=$(sed -n \"$((SLURM_ARRAY_TASK_ID + 1))p\" {})", sh(&list.display().to_string()));
        let _ = writeln!(s, "echo \"task $SLURM_ARRAY_TASK_ID (restart ${{SLURM_RESTART_COUNT:-0}}) on $(hostname): run $run\"");
        let mut cmd = vec![
            sh(&abs(&inv.harness).display().to_string()),
            "run".into(),
            sh(&abs(&inv.suite).display().to_string()),
        ];
        if let Some(p) = &inv.profile {
            cmd.extend(["--profile".into(), sh(p)]);
        }
        for set in &inv.sets {
            cmd.extend(["--set".into(), sh(set)]);
        }
        cmd.extend([
            "--only".into(),
            "\"$run\"".into(),
            "--results".into(),
            sh(&abs(&inv.results).display().to_string()),
            "--resume-every".into(),
            inv.resume_every.to_string(),
            "--no-report".into(),
            "-q".into(),
        ]);
        let _ = writeln!(s, "exec {}", cmd.join(" "));
        let script = out.join(format!("level{level}.sbatch"));
        crate::artifacts::write_atomic(&script, s.as_bytes())?;
        written.push(Some((script, ids.len())));
    }
    Ok(written)
}

/// The sweep of one suite: `out/level<k>.sbatch`, `out/runs-<k>.txt`, `out/submit.sh`.
pub fn emit(suite: &Suite, cfg: &SlurmConfig, inv: &Invocation, out: &Path) -> Result<Emitted> {
    validate(cfg)?;
    std::fs::create_dir_all(out.join("logs")).with_context(|| format!("creating {}", out.display()))?;
    let out = out.canonicalize().with_context(|| format!("resolving {}", out.display()))?;
    let written: Vec<(PathBuf, usize)> = write_levels(suite, cfg, inv, &out, &out.join("logs"), &BTreeSet::new())?.into_iter().flatten().collect();
    let mut submit = String::from("#!/bin/bash\n# Submits the levels in order; level k starts after every task of level k-1 ended.\nset -euo pipefail\nprev=\n");
    for (level, (script, _)) in written.iter().enumerate() {
        let _ = writeln!(
            submit,
            // `--parsable` prints "id;cluster" on a federation: the id alone goes on.
            "id{level}=$(sbatch --parsable ${{prev:+--dependency=afterany:$prev}} {})\nid{level}=${{id{level}%%;*}}\necho \"level {level}: job $id{level}\"\nprev=$id{level}",
            sh(&script.display().to_string())
        );
    }
    let submit_path = out.join("submit.sh");
    crate::artifacts::write_atomic(&submit_path, submit.as_bytes())?;
    use std::os::unix::fs::PermissionsExt;
    for p in written.iter().map(|(p, _)| p).chain([&submit_path]) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(Emitted { dir: out, levels: written, submit: submit_path })
}

/// Several suites as one submission (`harness plan suites/paper/ --emit slurm`): each suite's
/// levels in `out/<suite>/` with its own `[slurm]` settings, a run two suites share listed once
/// (by the first suite in name order; the others' reports read it from there, and `harness run`
/// adopts it), and `out/submit.sh`, which submits level k of every suite after every task of
/// level k-1 of every suite ended (a consumer may wait on a producer another suite computes).
pub fn emit_folder(parts: &[(&Suite, SlurmConfig, Invocation)], out: &Path) -> Result<Emitted> {
    std::fs::create_dir_all(out.join("logs")).with_context(|| format!("creating {}", out.display()))?;
    let out = out.canonicalize().with_context(|| format!("resolving {}", out.display()))?;
    let mut taken = BTreeSet::new();
    let mut per_suite: Vec<(String, Vec<Option<(PathBuf, usize)>>)> = Vec::new();
    for (suite, cfg, inv) in parts {
        let dir = out.join(&suite.file.name);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let levels = write_levels(suite, cfg, inv, &dir, &out.join("logs"), &taken).with_context(|| format!("{}", suite.path.display()))?;
        taken.extend(suite.runs.iter().map(|r| r.id.clone()));
        per_suite.push((suite.file.name.clone(), levels));
    }
    let depth = per_suite.iter().map(|(_, l)| l.len()).max().unwrap_or(0);
    let mut submit = String::from(
        "#!/bin/bash\n# Submits level k of every suite after every task of level k-1 of every suite ended.\nset -euo pipefail\nprev=\n",
    );
    let mut written = Vec::new();
    for level in 0..depth {
        submit.push_str("ids=\n");
        for (name, levels) in &per_suite {
            let Some(Some((script, n))) = levels.get(level) else { continue };
            let _ = writeln!(
                submit,
                "j=$(sbatch --parsable ${{prev:+--dependency=afterany:$prev}} {})\nj=${{j%%;*}}\necho \"level {level} {name}: job $j\"\nids=${{ids:+$ids:}}$j",
                sh(&script.display().to_string())
            );
            written.push((script.clone(), *n));
        }
        submit.push_str("prev=${ids:-$prev}\n");
    }
    let submit_path = out.join("submit.sh");
    crate::artifacts::write_atomic(&submit_path, submit.as_bytes())?;
    use std::os::unix::fs::PermissionsExt;
    for p in written.iter().map(|(p, _)| p).chain([&submit_path]) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(Emitted { dir: out, levels: written, submit: submit_path })
}

/// Runs `submit.sh` (sbatch must be on PATH) and returns the job id of each level.
pub fn submit(e: &Emitted) -> Result<Vec<String>> {
    let out = std::process::Command::new("bash")
        .arg(&e.submit)
        .output()
        .with_context(|| format!("running {} (is Slurm's sbatch on PATH?)", e.submit.display()))?;
    anyhow::ensure!(out.status.success(), "{} failed: {}", e.submit.display(), String::from_utf8_lossy(&out.stderr).trim());
    let ids = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("level ").and_then(|r| r.split("job ").nth(1)).map(|s| s.trim().to_string()))
        .collect();
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_derived_time_is_twice_the_estimate_and_half_an_hour() {
        assert_eq!(derived_time(0.0), "0-00:30:00");
        assert_eq!(derived_time(3600.0), "0-02:30:00");
        assert_eq!(derived_time(86_460.0), "2-00:32:00");
        assert_eq!(derived_time(0.4), "0-00:30:01", "rounded up to whole seconds");
    }

    #[test]
    fn quoting_survives_the_shell() {
        assert_eq!(sh("a b"), "'a b'");
        assert_eq!(sh("it's"), r"'it'\''s'");
        let out = std::process::Command::new("sh").args(["-c", &format!("printf %s {}", sh("x'; rm -rf /tmp/nope; '\"$HOME"))]).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "x'; rm -rf /tmp/nope; '\"$HOME");
    }

    #[test]
    fn values_for_sbatch_lines_are_checked() {
        let ok = SlurmConfig {
            partition: Some("gpu,debug".into()),
            mem: Some("32G".into()),
            time: Some("1-12:00:00".into()),
            throttle: Some(4),
            sbatch: vec!["--constraint=h100".into()],
            ..Default::default()
        };
        validate(&ok).unwrap();
        for t in ["90", "10:00", "12:00:00", "2-6", "2-6:30", "UNLIMITED"] {
            validate(&SlurmConfig { time: Some(t.into()), ..Default::default() }).unwrap();
        }
        let bad = [
            (SlurmConfig { partition: Some("gpu\nrm -rf ~".into()), ..Default::default() }, "slurm.partition"),
            (SlurmConfig { account: Some("a b".into()), ..Default::default() }, "slurm.account"),
            (SlurmConfig { time: Some("banana".into()), ..Default::default() }, "slurm.time"),
            (SlurmConfig { time: Some("1-".into()), ..Default::default() }, "slurm.time"),
            (SlurmConfig { mem: Some("lots".into()), ..Default::default() }, "slurm.mem"),
            (SlurmConfig { throttle: Some(0), ..Default::default() }, "slurm.throttle"),
            (SlurmConfig { sbatch: vec!["--x=1\necho hi".into()], ..Default::default() }, "slurm.sbatch"),
            (SlurmConfig { setup: vec!["a\nb".into()], ..Default::default() }, "slurm.setup"),
        ];
        for (cfg, key) in bad {
            let e = validate(&cfg).unwrap_err().to_string();
            assert!(e.contains(key), "{e}");
        }
    }

    #[test]
    fn flags_override_the_suite_table() {
        let suite = SlurmConfig { partition: Some("gpu".into()), gpus: Some(1), setup: vec!["module load cuda".into()], ..Default::default() };
        let flags = SlurmConfig { partition: Some("debug".into()), throttle: Some(4), ..Default::default() };
        let c = suite.overridden_by(&flags);
        assert_eq!((c.partition.as_deref(), c.gpus, c.throttle, c.setup.len()), (Some("debug"), Some(1), Some(4), 1));
    }
}
