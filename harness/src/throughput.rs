//! Speed and memory of one model configuration (PAPER.md C.5, T6, T7), measured the same way on
//! this harness and on its PyTorch peer (`bench/pytorch/peer.py`, the reference's models under
//! Hugging Face's training step).
//!
//! A [`Job`] is one configuration and mode; [`run_job`] measures it in a fresh process (the
//! harness binary's hidden `bench job`, or the peer under the harness's own torch), so peak
//! memory is that job's alone and both sides start alike. Modes:
//! - `train`: one optimizer step as the trainer takes it (forward, loss, backward, clip, AdamW);
//! - `infer`: one forward to logits without gradients;
//! - `memory`: forward and backward of the block stack without the LM head (T6/T7).
//!
//! Step times are synchronised (CUDA) and the warm-up steps are left out. Peak memory is the
//! CUDA caching allocator's peak (the peer) or the device memory in use after the run less
//! before it (the harness: libtorch's allocator keeps what it reserved), and on CPU the growth
//! of the process's peak RSS (`VmHWM`) over the job's steps.
use crate::suite::{PeerMalloc, Precision};
use anyhow::{Context, Result};
use mm_models::{CausalLm, ModelSpec};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;
use tch::{nn, Device, Kind, Tensor};

pub use crate::suite::Mode;

/// One measurement: a model at a shape, in a mode, on a device.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    pub model: ModelSpec,
    pub mode: Mode,
    pub batch: i64,
    pub n_ctx: i64,
    pub vocab: i64,
    pub precision: Precision,
    pub warmup: usize,
    pub steps: usize,
    pub seed: u64,
    /// "cpu" or "cuda".
    pub device: String,
    /// The peer's Llama attention: "sdpa" (Hugging Face's default) or "eager" (the L x L
    /// scores the paper's 2023 memory figures were measured with).
    #[serde(default = "sdpa")]
    pub attention: String,
    /// The peer's host allocator (the harness side always runs with its own setting).
    #[serde(default, skip_serializing_if = "is_glibc")]
    pub peer_malloc: PeerMalloc,
}

impl Job {
    /// The job a `throughput` run's config describes, on `device` ("cpu" or "cuda"); None
    /// without a model or a `[throughput]` section.
    pub fn of(c: &crate::suite::RunConfig, device: &str) -> Option<Job> {
        let (model, t) = (c.model.as_ref()?, c.throughput.as_ref()?);
        Some(Job {
            model: model.clone(),
            mode: t.mode,
            batch: t.batch_size,
            n_ctx: t.n_ctx,
            vocab: t.vocab_size,
            precision: t.precision,
            warmup: t.warmup,
            steps: t.steps,
            seed: c.seed,
            device: device.into(),
            attention: match t.attention {
                crate::suite::Attention::Sdpa => "sdpa".into(),
                crate::suite::Attention::Eager => "eager".into(),
            },
            peer_malloc: t.peer_malloc,
        })
    }
}

fn is_glibc(m: &PeerMalloc) -> bool {
    *m == PeerMalloc::Glibc
}

fn sdpa() -> String {
    "sdpa".into()
}

/// What one job measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Measured {
    /// Seconds per step after warm-up, synchronised.
    pub times: Vec<f64>,
    /// Seconds from a step's start until its last operation was issued, before the synchronise
    /// (CUDA; on the CPU work is done as it is issued). Near `times`: the host bounds the step
    /// (kernel launches, a sync inside it); far under: the device is the bound.
    #[serde(default)]
    pub issue_times: Vec<f64>,
    /// The device ran out of memory (then `times` holds what finished before).
    pub oom: bool,
    pub peak_bytes: Option<u64>,
    pub params: u64,
    pub device_name: String,
    pub torch: String,
    #[serde(default)]
    pub transformers: Option<String>,
    pub threads: usize,
    /// The process's host allocator: "glibc" (its defaults) or "no-mmap" (`M_MMAP_MAX=0`, no
    /// trimming: freed memory is kept for the next step).
    #[serde(default)]
    pub malloc: Option<String>,
}

impl Measured {
    pub fn median_s(&self) -> Option<f64> {
        median(self.times.clone())
    }

    pub fn median_issue_s(&self) -> Option<f64> {
        median(self.issue_times.clone())
    }
}

pub use crate::stats::median;

/// Which side measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Harness,
    PyTorch,
}

/// Model FLOPs of one step, counted as dense matrix products do them (2 per multiply-add,
/// [`ModelSpec::forward_macs_per_token`]); training is 3x the forward (backward = 2 forwards).
/// `memory` has no head.
pub fn flops_per_step(job: &Job) -> f64 {
    let (l, b) = (job.n_ctx as f64, job.batch as f64);
    let forward = 2.0 * job.model.forward_macs_per_token(job.vocab, job.n_ctx, job.mode != Mode::Memory) * b * l;
    if job.mode == Mode::Infer {
        forward
    } else {
        3.0 * forward
    }
}

/// Peak dense TFLOP/s of a device by its name, at the precision ([`crate::cards::CARDS`]):
/// fp32 uses the card's FP32 (non-tensor-core) figure, as libtorch runs fp32 matmuls without TF32
/// by default; bf16 and fp16 the dense tensor-core figure. None for a device not listed.
pub fn peak_tflops(device_name: &str, precision: Precision) -> Option<f64> {
    crate::cards::card_of_device(device_name).map(|c| if precision == Precision::Fp32 { c.fp32_tflops } else { c.half_tflops })
}

/// Peak resident set of this process (`VmHWM`), bytes; None off Linux.
pub fn peak_rss() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Peak resident set of the largest child process this process waited for (the throughput
/// jobs, each run in its own process), bytes; None when there was none.
pub fn peak_rss_children() -> Option<u64> {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    (rc == 0 && usage.ru_maxrss > 0).then(|| usage.ru_maxrss as u64 * 1024)
}

/// Why a child process ended without an exit status: the signal, and what sends it most often.
fn killed_by(status: &std::process::ExitStatus) -> Option<String> {
    use std::os::unix::process::ExitStatusExt;
    let signal = status.signal()?;
    let why = match signal {
        libc::SIGKILL => " (SIGKILL: most often the kernel's out-of-memory killer; `dmesg` or the journal says)",
        libc::SIGSEGV => " (SIGSEGV)",
        libc::SIGABRT => " (SIGABRT)",
        _ => "",
    };
    Some(format!("the process was killed by signal {signal}{why}"))
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// Measures `job` in this process (the hidden `harness bench job` calls it).
pub fn measure_here(job: &Job) -> Result<Measured> {
    let device = match job.device.as_str() {
        "cpu" => Device::Cpu,
        "cuda" => crate::device::resolve(crate::suite::DeviceChoice::Cuda)?,
        other => anyhow::bail!("device `{other}`: use \"cpu\" or \"cuda\""),
    };
    tch::manual_seed(job.seed as i64);
    let vs = nn::VarStore::new(device);
    let model = job.model.build(&vs.root(), job.vocab, job.n_ctx)?;
    let params: u64 = vs.trainable_variables().iter().map(|t| t.numel() as u64).sum();
    let batches: Vec<Tensor> = (0..4).map(|_| Tensor::randint(job.vocab, [job.batch, job.n_ctx], (Kind::Int64, device))).collect();
    let cuda_before = cuda_used(device);
    let rss_before = peak_rss();
    let mut step = stepper_for(job, model.as_ref(), &vs)?;
    let mut times = Vec::with_capacity(job.steps);
    let mut issue_times = Vec::with_capacity(job.steps);
    let mut oom = false;
    for i in 0..job.warmup + job.steps {
        sync(device);
        let t = Instant::now();
        // libtorch errors arrive as panics from tch's infallible ops; an out-of-memory one ends
        // the job as an OOM cell, anything else fails it.
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| step(&batches[i % batches.len()]))) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(payload) => {
                let text = payload.downcast_ref::<String>().cloned().or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
                if crate::device::is_oom(&text) {
                    oom = true;
                    break;
                }
                std::panic::resume_unwind(payload);
            }
        }
        let issued = t.elapsed().as_secs_f64();
        sync(device);
        if i >= job.warmup {
            times.push(t.elapsed().as_secs_f64());
            issue_times.push(issued);
        }
    }
    let peak_bytes = match device {
        Device::Cuda(_) => cuda_used(device).zip(cuda_before).map(|(a, b)| a.saturating_sub(b)),
        _ => peak_rss().zip(rss_before).map(|(a, b)| a.saturating_sub(b)),
    };
    Ok(Measured {
        times,
        issue_times,
        oom,
        peak_bytes,
        params,
        device_name: match device {
            Device::Cuda(i) => crate::device::gpu_names().get(i).cloned().unwrap_or_else(|| "cuda".into()),
            _ => "cpu".into(),
        },
        torch: format!("libtorch {}", crate::device::libtorch_version().unwrap_or_default()),
        transformers: None,
        threads: tch::get_num_threads() as usize,
        malloc: Some(crate::device::malloc_setting().into()),
    })
}

/// Device memory in use (total - free) as the driver reports it for this process's card.
fn cuda_used(device: Device) -> Option<u64> {
    match device {
        Device::Cuda(i) => crate::device::cuda_mem_used(i),
        _ => None,
    }
}

type StepFn<'a> = Box<dyn FnMut(&Tensor) -> Result<()> + 'a>;

/// The sha256 of the peer script this binary runs.
pub fn peer_sha256() -> String {
    crate::artifacts::sha256_bytes(PEER_PY.as_bytes())
}

fn stepper_for<'a>(job: &'a Job, model: &'a dyn CausalLm, vs: &'a nn::VarStore) -> Result<StepFn<'a>> {
    let precision = job.precision;
    Ok(match job.mode {
        Mode::Train => {
            let mut stepper = crate::train::Stepper::new(vs, crate::optim::AdamW::default(), 1.0, precision)?;
            Box::new(move |tokens: &Tensor| {
                let _ = crate::train::train_step(model, &mut stepper, tokens, tokens, 1e-4, precision);
                Ok(())
            })
        }
        Mode::Infer => Box::new(move |tokens: &Tensor| {
            let _ = tch::no_grad(|| crate::train::with_precision(precision, || model.forward_t(tokens, false)));
            Ok(())
        }),
        Mode::Memory => {
            let params = vs.trainable_variables();
            Box::new(move |tokens: &Tensor| {
                let h = crate::train::with_precision(precision, || model.blocks(&model.embed(tokens), None, true));
                h.to_kind(Kind::Float).sum(Kind::Float).backward();
                for p in &params {
                    let mut g = p.grad();
                    if g.defined() {
                        let _ = g.zero_();
                    }
                }
                Ok(())
            })
        }
    })
}

/// The peer's job: the flat mixer and Llama only (what the reference code has).
fn peer_job(job: &Job) -> Result<serde_json::Value> {
    let model = match &job.model {
        ModelSpec::MaskedMixer(s) if *s == mm_models::MixerSpec::flat(s.d_model, s.n_layers) => {
            serde_json::json!({"kind": "mixer", "d_model": s.d_model, "n_layers": s.n_layers})
        }
        ModelSpec::Llama(s) if !s.bidirectional => serde_json::json!({
            "kind": "llama", "d_model": s.d_model, "n_layers": s.n_layers, "n_heads": s.n_heads,
            "intermediate_size": s.intermediate_size,
        }),
        other => anyhow::bail!(
            "the PyTorch peer has the flat masked mixer and Llama only, not `{}`; set peer = false for this model",
            other.kind()
        ),
    };
    let precision = match job.precision {
        Precision::Fp32 => "fp32",
        Precision::Bf16 => "bf16",
        Precision::Fp16Amp => "fp16-amp",
    };
    Ok(serde_json::json!({
        "model": model, "mode": job.mode.name(), "batch": job.batch, "n_ctx": job.n_ctx, "vocab": job.vocab,
        "precision": precision, "warmup": job.warmup, "steps": job.steps, "seed": job.seed,
        "device": job.device, "attention": job.attention, "threads": tch::get_num_threads(),
    }))
}

/// The peer script, from the repository (`bench/pytorch/peer.py`) or, for an installed binary,
/// the copy compiled into it.
const PEER_PY: &str = include_str!("../../bench/pytorch/peer.py");

/// Runs `job` on `side` in a fresh process and reads what it measured.
pub fn run_job(job: &Job, side: Side, scratch: &Path) -> Result<Measured> {
    let out = match side {
        Side::Harness => {
            let exe = std::env::current_exe().context("locating the harness binary")?;
            std::process::Command::new(exe)
                .args(["bench", "job", &serde_json::to_string(job)?])
                .output()
                .context("starting `harness bench job`")?
        }
        Side::PyTorch => {
            let python = crate::device::torch_python().context(
                "no Python beside the loaded libtorch: the peer runs under the torch the build installed (source ci/env.sh)",
            )?;
            std::fs::create_dir_all(scratch)?;
            let script = scratch.join("peer.py");
            std::fs::write(&script, PEER_PY)?;
            let mut cmd = std::process::Command::new(&python);
            cmd.arg(&script).arg(serde_json::to_string(&peer_job(job)?)?).env("PYTHONWARNINGS", "ignore");
            // glibc reads its tunables from the environment at start-up; these are the ones
            // `device::keep_freed_memory` sets in the harness with mallopt.
            for var in ["MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_"] {
                cmd.env_remove(var);
            }
            if job.peer_malloc == PeerMalloc::Harness {
                cmd.env("MALLOC_MMAP_MAX_", "0").env("MALLOC_TRIM_THRESHOLD_", i32::MAX.to_string());
            }
            cmd.output()
                .with_context(|| format!("starting {}", python.display()))?
        }
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        let tail: Vec<&str> = stderr.lines().rev().take(6).collect();
        let mut tail: Vec<String> = tail.into_iter().rev().map(str::to_string).collect();
        tail.extend(killed_by(&out.status));
        let hint = if stderr.contains("No module named 'transformers'") {
            "\nthe Llama peer needs Hugging Face transformers beside torch: `source ci/env.sh && \"$HARNESS_TORCH_DIR/bin/python\" -m pip install -r bench/pytorch/requirements.txt`"
        } else {
            ""
        };
        anyhow::bail!("the {side:?} side of {} {} failed:\n{}{hint}", job.model.kind(), job.mode.name(), tail.join("\n"));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().rev().find(|l| l.starts_with('{')).context("the job printed no result")?;
    serde_json::from_str(line).with_context(|| format!("reading the {side:?} side's result: {line}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A job the kernel kills leaves no output: its error says which signal and what sends it.
    #[test]
    fn a_killed_child_is_named_by_its_signal() {
        let status = std::process::Command::new("sh").args(["-c", "kill -9 $$"]).status().unwrap();
        let why = killed_by(&status).unwrap();
        assert!(why.contains("signal 9") && why.contains("out-of-memory killer"), "{why}");
        assert_eq!(killed_by(&std::process::Command::new("true").status().unwrap()), None);
    }

    /// Every timed step has its issue time, which cannot exceed the step's synchronised time.
    #[test]
    fn each_timed_step_has_an_issue_time_within_it() {
        let job = Job {
            model: ModelSpec::MaskedMixer(mm_models::MixerSpec::flat(16, 1)),
            mode: Mode::Train,
            batch: 2,
            n_ctx: 8,
            vocab: 32,
            precision: Precision::Fp32,
            warmup: 1,
            steps: 3,
            seed: 0,
            device: "cpu".into(),
            attention: "sdpa".into(),
            peer_malloc: PeerMalloc::Glibc,
        };
        let m = measure_here(&job).unwrap();
        assert_eq!((m.times.len(), m.issue_times.len()), (3, 3));
        assert!(m.times.iter().zip(&m.issue_times).all(|(t, i)| *i > 0.0 && i <= t), "{:?} {:?}", m.times, m.issue_times);
        assert!(m.median_issue_s().unwrap() <= m.median_s().unwrap());
    }
}
