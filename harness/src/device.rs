//! The compute device: resolving a suite's choice, and the facts `harness doctor` prints.
use serde::{Deserialize, Serialize};
use tch::Device;

/// A suite's `device`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceChoice {
    Cpu,
    Cuda,
    /// CUDA when available, else CPU (resolved before the run id is computed).
    Auto,
}

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("the suite asks for device = \"cuda\" but libtorch reports no CUDA device ({why}); run `harness doctor`, or use --set device=\"cpu\"")]
    CudaUnavailable { why: String },
}

pub fn resolve(choice: DeviceChoice) -> Result<Device, DeviceError> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Cuda | DeviceChoice::Auto if tch::Cuda::is_available() => Ok(Device::Cuda(0)),
        DeviceChoice::Auto => Ok(Device::Cpu),
        DeviceChoice::Cuda => Err(DeviceError::CudaUnavailable {
            why: if libtorch_cuda_loaded() {
                "libtorch_cuda is loaded; no usable GPU or driver".into()
            } else {
                "libtorch_cuda.so is not linked into this binary".into()
            },
        }),
    }
}

pub fn describe(device: Device) -> String {
    match device {
        Device::Cuda(i) => format!("cuda:{i} ({})", gpu_names().get(i).cloned().unwrap_or_default()),
        _ => "cpu".into(),
    }
}

/// Libraries mapped into this process whose file name contains `needle`.
fn mapped_libs(needle: &str) -> Vec<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let mut libs: Vec<String> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| p.contains(needle))
        .map(String::from)
        .collect();
    libs.sort();
    libs.dedup();
    libs
}

/// The folder libtorch was loaded from (what actually runs, not what was built against).
pub fn libtorch_dir() -> Option<std::path::PathBuf> {
    mapped_libs("libtorch_cpu.so").first().and_then(|p| std::path::Path::new(p).parent().map(|d| d.to_path_buf()))
}

/// The Python of the virtual environment the loaded libtorch came from (`<venv>/lib/pythonX/
/// site-packages/torch/lib`), when it is one: the PyTorch the parity tests compare with.
pub fn torch_python() -> Option<std::path::PathBuf> {
    let lib = libtorch_dir()?;
    let venv = lib.ancestors().nth(5)?;
    let python = venv.join("bin").join("python");
    python.is_file().then_some(python)
}

/// `torch/version.py` beside the loaded libtorch, e.g. "2.11.0+cu130".
pub fn libtorch_version() -> Option<String> {
    let dir = libtorch_dir()?;
    let text = std::fs::read_to_string(dir.parent()?.join("version.py")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("__version__ = "))
        .map(|v| v.trim().trim_matches('\'').trim_matches('"').to_string())
}

pub fn libtorch_cuda_loaded() -> bool {
    !mapped_libs("libtorch_cuda.so").is_empty()
}

pub fn gpu_names() -> Vec<String> {
    // libtorch's C API has no device-name call; nvidia-smi is there wherever a driver is.
    std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=name,memory.total", "--format=csv,noheader"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().map(|l| l.trim().to_string()).collect())
        .unwrap_or_default()
}

/// CPU memory policy of the harness process: freed blocks stay with the allocator for reuse
/// (glibc's `M_MMAP_MAX = 0`, no trimming) instead of going back to the system, as PyTorch's
/// CUDA caching allocator keeps device memory. Without it every large temporary (the logits,
/// their gradients, the optimizer's scratch) is a fresh `mmap` whose pages are faulted in and
/// zeroed on every step: 10-20% of a CPU training step at the CI sizes. The process's peak
/// RSS is about the same; it is not returned until exit. `HARNESS_KEEP_FREED_MEMORY=0` keeps
/// glibc's defaults.
pub fn keep_freed_memory() -> bool {
    if std::env::var("HARNESS_KEEP_FREED_MEMORY").is_ok_and(|v| v == "0") {
        return false;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let kept = keep_freed_memory_now();
        KEPT_FREED_MEMORY.store(kept, std::sync::atomic::Ordering::Relaxed);
        kept
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    false
}

static KEPT_FREED_MEMORY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether [`keep_freed_memory`] took effect in this process.
pub fn freed_memory_kept() -> bool {
    KEPT_FREED_MEMORY.load(std::sync::atomic::Ordering::Relaxed)
}

/// This process's host allocator, as throughput runs record it: "no-mmap" once
/// [`keep_freed_memory`] took effect, else "glibc" (its defaults).
pub fn malloc_setting() -> &'static str {
    if freed_memory_kept() {
        "no-mmap"
    } else {
        "glibc"
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory_now() -> bool {
    unsafe extern "C" {
        fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
    }
    const M_TRIM_THRESHOLD: std::ffi::c_int = -1;
    const M_MMAP_MAX: std::ffi::c_int = -4;
    // SAFETY: mallopt only changes allocator tunables; it is called before any thread starts.
    unsafe { mallopt(M_MMAP_MAX, 0) == 1 && mallopt(M_TRIM_THRESHOLD, std::ffi::c_int::MAX) == 1 }
}

/// One field of card `index` from `nvidia-smi --query-gpu` (no header, no units).
fn nvidia_smi(field: &str, index: usize) -> Option<String> {
    std::process::Command::new("nvidia-smi")
        .args([&format!("--query-gpu={field}"), "--format=csv,noheader,nounits", &format!("--id={index}")])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Device memory in use on card `index` (all processes), bytes.
pub fn cuda_mem_used(index: usize) -> Option<u64> {
    nvidia_smi("memory.used", index)?.parse::<u64>().ok().map(|mib| mib << 20)
}

/// The NVIDIA driver version, from nvidia-smi.
pub fn driver_version() -> Option<String> {
    nvidia_smi("driver_version", 0)
}

/// An error text that says the device ran out of memory (CUDA, or libtorch's CPU allocator).
pub fn is_oom(text: &str) -> bool {
    text.contains("out of memory") || text.contains("can't allocate memory")
}

#[derive(Debug, Serialize)]
pub struct Doctor {
    pub harness_version: String,
    pub libtorch_version: Option<String>,
    pub libtorch_dir: Option<String>,
    pub libtorch_cuda_linked: bool,
    pub cuda_available: bool,
    pub cuda_device_count: i64,
    pub gpus: Vec<String>,
    pub cudnn_available: bool,
    pub threads: i32,
    /// The CPU and the kernel path libtorch runs on it (`kernels::KernelPath::facts`).
    pub cpu: std::collections::BTreeMap<String, String>,
    /// Whether bf16 matrix products are accelerated on this CPU (a short probe).
    pub bf16_matmul: String,
    /// A tiny matmul on each available device, checked against the CPU result.
    pub smoke: Vec<String>,
}

impl Doctor {
    pub fn collect() -> Self {
        let cuda_available = tch::Cuda::is_available();
        let mut smoke = vec![];
        let a = tch::Tensor::randn([64, 64], (tch::Kind::Float, Device::Cpu));
        let want = a.matmul(&a);
        if cuda_available {
            let got = a.to_device(Device::Cuda(0)).matmul(&a.to_device(Device::Cuda(0))).to_device(Device::Cpu);
            let rel = ((&got - &want).norm().double_value(&[]) / want.norm().double_value(&[])).abs();
            smoke.push(format!("cuda:0 matmul 64x64 rel. error vs cpu {rel:.2e}"));
        }
        Self {
            harness_version: env!("CARGO_PKG_VERSION").into(),
            libtorch_version: libtorch_version(),
            libtorch_dir: libtorch_dir().map(|d| d.display().to_string()),
            libtorch_cuda_linked: libtorch_cuda_loaded(),
            cuda_available,
            cuda_device_count: tch::Cuda::device_count(),
            gpus: if cuda_available { gpu_names() } else { vec![] },
            cudnn_available: tch::Cuda::cudnn_is_available(),
            threads: tch::get_num_threads(),
            cpu: crate::kernels::KernelPath::current().facts(),
            bf16_matmul: crate::kernels::Bf16Probe::get().describe(),
            smoke,
        }
    }
}

/// Bytes of memory the device has: RAM on CPU (Linux `/proc/meminfo`), the card's memory on
/// CUDA (from nvidia-smi); `None` when unknown.
pub fn memory_bytes(choice: DeviceChoice) -> Option<u64> {
    match choice {
        DeviceChoice::Cuda => nvidia_smi("memory.total", 0)?.parse::<u64>().ok().map(|mib| mib << 20),
        _ => std::fs::read_to_string("/proc/meminfo").ok().and_then(|t| {
            let kib: u64 = t.lines().find(|l| l.starts_with("MemTotal:"))?.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib << 10)
        }),
    }
}

pub fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}
