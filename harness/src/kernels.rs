//! The CPU kernel path: which code libtorch's math runs on this machine, recorded with every run,
//! and the portable path that gives the same bits on every x86-64 CPU of ours.
//!
//! A CPU result depends on three choices libtorch makes at run time, not at build time:
//! - **MKL** (sgemm, batched GEMM, VML's square root) dispatches on the CPU's vendor and ISA.
//!   Measured with torch 2.11: on the same ISA (AVX2 + FMA) a GenuineIntel and an AuthenticAMD
//!   CPU run different sgemm and `sqrt` kernels and get different bits. `MKL_CBWR=AVX2` does not
//!   help: MKL honours only its `AUTO` and `COMPATIBLE` branches on non-Intel CPUs.
//! - **ATen's own kernels** (GELU, softmax, norms, reductions, SDPA) dispatch on a capability
//!   (DEFAULT, AVX2, AVX512); the same capability is the same code on any vendor.
//! - **Threads**: both split work across the intra-op threads, and sums follow the split.
//!
//! [`CpuKernels::Native`] leaves all three to the machine (the fastest path). [`CpuKernels::
//! Portable`] pins them: MKL's Conditional Numerical Reproducibility branch `COMPATIBLE` (SSE2
//! code without approximate reciprocals, the one branch MKL promises on Intel and non-Intel
//! CPUs alike), ATen's AVX2 kernels (every CPU of ours has AVX2 and FMA) and
//! [`PORTABLE_THREADS`] threads. Its runs give the same bits on an AVX2-only AMD EPYC and an
//! Intel Xeon with AVX-512 and AMX, so one baseline checks them bit for bit on either.
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// Which kernel path CPU runs take (`cpu_kernels` in a suite; part of the run id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CpuKernels {
    /// The machine's fastest kernels: bits depend on the CPU's vendor, ISA and core count.
    #[default]
    Native,
    /// MKL `COMPATIBLE`, ATen AVX2, [`PORTABLE_THREADS`] threads: the same bits on every CPU
    /// with AVX2 and FMA.
    Portable,
}

impl CpuKernels {
    pub fn is_native(&self) -> bool {
        *self == Self::Native
    }
}

/// Intra-op threads of the portable path (the CI machines' core count).
pub const PORTABLE_THREADS: i32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error(
        "cpu_kernels = \"portable\" needs a CPU with AVX2 and FMA (ATen's AVX2 kernels); this one ({cpu}) has {isa}; \
         use cpu_kernels = \"native\" (its results are then checked only against a baseline from the same kernel path)"
    )]
    Unsupported { cpu: String, isa: String },
    #[error(
        "cpu_kernels = \"portable\": libtorch runs {got} in this process, not {want} (it chose its kernels before the \
         harness could pin them); set them for the process instead: MKL_CBWR=COMPATIBLE ATEN_CPU_CAPABILITY=avx2"
    )]
    NotApplied { got: String, want: String },
}

/// Pins the process to `mode`'s kernels. Call it before the first tensor operation: MKL reads
/// `MKL_CBWR` and ATen `ATEN_CPU_CAPABILITY` once, at their first use. What took effect is read
/// back from MKL and ATen, and a path other than the one asked for is an error, never a
/// silently native run. `Native` changes nothing (an `MKL_CBWR` the user set stays in force and
/// is recorded).
pub fn apply(mode: CpuKernels) -> Result<(), KernelError> {
    if mode == CpuKernels::Native {
        return Ok(());
    }
    let cpu = Cpu::get();
    if !(cpu.has("avx2") && cpu.has("fma")) {
        return Err(KernelError::Unsupported { cpu: cpu.model.clone(), isa: cpu.isa_class().into() });
    }
    std::env::set_var("MKL_CBWR", "COMPATIBLE");
    std::env::set_var("ATEN_CPU_CAPABILITY", "avx2");
    // MKL's reproducibility conditions: no dynamic change of the thread count.
    std::env::set_var("MKL_DYNAMIC", "FALSE");
    std::env::set_var("OMP_DYNAMIC", "FALSE");
    // Child processes (`harness bench job`, the PyTorch peer) inherit the path through these.
    std::env::set_var("OMP_NUM_THREADS", PORTABLE_THREADS.to_string());
    std::env::set_var("MKL_NUM_THREADS", PORTABLE_THREADS.to_string());
    tch::set_num_threads(PORTABLE_THREADS);
    let path = KernelPath::current();
    let want = KernelPath { mkl: "COMPATIBLE".into(), aten: "AVX2".into(), threads: PORTABLE_THREADS, cpu: path.cpu };
    if path.key() != want.key() {
        return Err(KernelError::NotApplied { got: path.key(), want: want.key() });
    }
    Ok(())
}

/// The CPU as `/proc/cpuinfo` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cpu {
    pub vendor: String,
    pub model: String,
    flags: Vec<String>,
}

impl Cpu {
    pub fn get() -> &'static Cpu {
        static CPU: OnceLock<Cpu> = OnceLock::new();
        CPU.get_or_init(|| Cpu::parse(&std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default()))
    }

    /// The first processor's vendor, model name and flags.
    pub fn parse(cpuinfo: &str) -> Cpu {
        let field = |name: &str| {
            cpuinfo
                .lines()
                .find_map(|l| l.split_once(':').filter(|(k, _)| k.trim() == name).map(|(_, v)| v.trim().to_string()))
        };
        Cpu {
            vendor: field("vendor_id").unwrap_or_else(|| "unknown".into()),
            model: field("model name").unwrap_or_else(|| "unknown CPU".into()),
            flags: field("flags").unwrap_or_default().split_whitespace().map(String::from).collect(),
        }
    }

    pub fn has(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    /// Whether the CPU multiplies bf16 matrices in hardware (AMX tiles or AVX512_BF16).
    pub fn bf16_hardware(&self) -> bool {
        self.has("amx_bf16") || self.has("avx512_bf16")
    }

    /// The ISA class that decides which kernels MKL, ATen and oneDNN can pick.
    pub fn isa_class(&self) -> &'static str {
        let avx512 = ["avx512f", "avx512bw", "avx512vl", "avx512dq"].iter().all(|f| self.has(f));
        match (avx512, self.has("amx_tile") && self.has("amx_bf16"), self.has("avx2") && self.has("fma")) {
            (true, true, _) => "AVX-512 + AMX",
            (true, false, _) if self.has("avx512_bf16") => "AVX-512 + BF16",
            (true, false, _) => "AVX-512",
            (false, _, true) => "AVX2",
            _ => "SSE only",
        }
    }
}

/// The kernel path one process runs: what decides the bits of a CPU result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelPath {
    /// MKL's code branch, as MKL reports it: "COMPATIBLE", or "AUTO (AVX2)" with the branch
    /// its automatic dispatch picks on this CPU.
    pub mkl: String,
    /// ATen's CPU capability, as ATen reports it: "DEFAULT", "AVX2", "AVX512".
    pub aten: String,
    pub threads: i32,
    pub cpu: &'static Cpu,
}

impl KernelPath {
    pub fn current() -> Self {
        KernelPath { mkl: mkl_branch(), aten: aten_capability(), threads: tch::get_num_threads(), cpu: Cpu::get() }
    }

    /// Equal keys, equal bits (same harness and libtorch, same inputs). On MKL's `COMPATIBLE`
    /// branch the CPU does not enter it; otherwise MKL's dispatch depends on the vendor (and its
    /// branch names the ISA level it picked).
    pub fn key(&self) -> String {
        if self.mkl == "COMPATIBLE" {
            format!("mkl COMPATIBLE · aten {} · {} threads", self.aten, self.threads)
        } else {
            format!("{} · mkl {} · aten {} · {} threads", self.cpu.vendor, self.mkl, self.aten, self.threads)
        }
    }

    /// What absolute speed depends on: vendor, ISA class and threads (tokens/s is compared only
    /// between equal keys).
    pub fn speed_key(&self) -> String {
        speed_key(&self.cpu.vendor, self.cpu.isa_class(), self.threads)
    }

    /// The facts a CPU run's manifest records (`execution`), read by `harness check` and the
    /// report.
    pub fn facts(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("cpu".into(), format!("{} ({})", self.cpu.model, self.cpu.vendor)),
            ("cpu_isa".into(), format!("{}{}", self.cpu.isa_class(), if self.cpu.bf16_hardware() { ", bf16 matrix hardware" } else { "" })),
            ("mkl_branch".into(), self.mkl.clone()),
            ("aten_capability".into(), self.aten.clone()),
            ("threads".into(), self.threads.to_string()),
            ("kernel_path".into(), self.key()),
            ("cpu_speed_class".into(), self.speed_key()),
        ])
    }
}

pub fn speed_key(vendor: &str, isa_class: &str, threads: i32) -> String {
    format!("{vendor} · {isa_class} · {threads} threads")
}

/// MKL's CNR branch names (mkl_service.h).
fn branch_name(b: i32) -> String {
    match b {
        0 => "OFF".into(),
        1 => "BRANCH_OFF".into(),
        2 => "AUTO".into(),
        3 => "COMPATIBLE".into(),
        4 | 5 => "SSE2".into(),
        6 => "SSSE3".into(),
        7 => "SSE4_1".into(),
        8 => "SSE4_2".into(),
        9 => "AVX".into(),
        10 => "AVX2".into(),
        11 => "AVX512_MIC".into(),
        12 => "AVX512".into(),
        13 => "AVX512_MIC_E1".into(),
        14 => "AVX512_E1".into(),
        n => format!("branch {n}"),
    }
}

/// MKL's branch in force: "COMPATIBLE", "AVX2" (a CNR branch someone set), or "AUTO (X)" with
/// the branch automatic dispatch picks here; "none (no MKL)" when libtorch has no MKL.
pub fn mkl_branch() -> String {
    let (Some(get), Some(auto)) = (ffi::mkl_cbwr_get(), ffi::mkl_cbwr_get_auto_branch()) else {
        return "none (no MKL)".into();
    };
    // SAFETY: MKL's service functions, `int mkl_cbwr_get(int option)` and `int
    // mkl_cbwr_get_auto_branch(void)`; they only read MKL's dispatch state.
    let (set, picked) = unsafe { (get(1), auto()) };
    match set {
        // MKL reports no automatic branch on CPUs it does not tune for (AMD): plain AUTO.
        0..=2 if picked <= 2 => "AUTO".into(),
        0..=2 => format!("AUTO ({})", branch_name(picked)),
        b => branch_name(b),
    }
}

/// ATen's CPU capability as libtorch reports it (`at::get_cpu_capability()`), or "unknown".
pub fn aten_capability() -> String {
    ffi::aten_cpu_capability().unwrap_or_else(|| "unknown".into())
}

/// A one-off measurement of bf16 against fp32 matrix products on this CPU.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bf16Probe {
    pub fp32_gflops: f64,
    pub bf16_gflops: f64,
}

impl Bf16Probe {
    /// Times 256 x 256 products in fp32 and in bf16, one product at a time and the two kinds
    /// taking turns, for about 0.4 s in all; each figure is the kind's fastest product.
    /// Measured once per process.
    ///
    /// The fastest product, not the mean: other processes on the same cores (a test binary
    /// running its cases in parallel, each starting a harness) only ever add time, and they
    /// add far more to bf16's oneDNN path, whose threads meet at several barriers a product,
    /// than to fp32's. A mean once read 4.2 GFLOP/s for bf16 against 39 for fp32 on a CPU
    /// that, alone, does 620 against 190.
    pub fn get() -> Bf16Probe {
        static P: OnceLock<Bf16Probe> = OnceLock::new();
        *P.get_or_init(Self::measure)
    }

    fn measure() -> Bf16Probe {
        let _guard = tch::no_grad_guard();
        let n = 256i64;
        let flop = 2.0 * (n * n * n) as f64;
        let a = [tch::Kind::Float, tch::Kind::BFloat16].map(|kind| tch::Tensor::ones([n, n], (kind, tch::Device::Cpu)));
        for x in &a {
            let _ = x.matmul(x); // warm-up: first-call dispatch, JIT and packing
        }
        let mut best = [f64::INFINITY; 2];
        let start = std::time::Instant::now();
        let mut rounds = 0;
        while rounds < 3 || start.elapsed().as_secs_f64() < 0.4 {
            for (x, b) in a.iter().zip(&mut best) {
                let t = std::time::Instant::now();
                let _ = x.matmul(x);
                *b = b.min(t.elapsed().as_secs_f64());
            }
            rounds += 1;
        }
        Bf16Probe { fp32_gflops: flop / best[0] / 1e9, bf16_gflops: flop / best[1] / 1e9 }
    }

    /// bf16 is accelerated when its products are at least as fast as fp32's (AMX and
    /// AVX512_BF16 make them several times faster; without them libtorch falls to a
    /// conversion path that is tens to hundreds of times slower).
    pub fn accelerated(&self) -> bool {
        self.bf16_gflops >= self.fp32_gflops
    }

    pub fn describe(&self) -> String {
        let verdict = if self.accelerated() { "accelerated" } else { "NOT accelerated" };
        format!(
            "{verdict}: bf16 matmul {:.1} GFLOP/s vs fp32 {:.1} GFLOP/s ({:.2}x; probe: fastest 256x256 product of each on {}, {})",
            self.bf16_gflops,
            self.fp32_gflops,
            self.bf16_gflops / self.fp32_gflops,
            Cpu::get().model,
            Cpu::get().isa_class()
        )
    }
}

/// bf16 on a CPU without bf16 matrix hardware, found by a half-second probe before any run
/// (AVX2-only CPUs run libtorch's bf16 products tens to hundreds of times slower than fp32):
/// a `throughput` run measures it anyway, with a warning, since the slow number is what it
/// measures; a training run (clm, retrieval_infonce) is refused, unless `HARNESS_ALLOW_SLOW_BF16=1`.
/// Either way the probe's result goes into the run's manifest (`bf16_matmul`).
pub fn check_bf16(cpu_bf16: &[Bf16Run]) -> Result<(), Bf16Error> {
    if cpu_bf16.is_empty() {
        return Ok(());
    }
    let probe = Bf16Probe::get();
    if probe.accelerated() {
        return Ok(());
    }
    let allowed = std::env::var("HARNESS_ALLOW_SLOW_BF16").is_ok_and(|v| v == "1");
    if let Some((train, key)) = cpu_bf16.iter().find_map(|r| Some((r, r.trains?))).filter(|_| !allowed) {
        return Err(Bf16Error::Refused { experiment: train.experiment.clone(), key, probe: probe.describe() });
    }
    eprintln!(
        "warning: {} run(s) use precision = \"bf16\" on this CPU, whose bf16 matrix products are {}; their speed is \
         this CPU's slow path (the manifests say so)",
        cpu_bf16.len(),
        probe.describe()
    );
    Ok(())
}

/// A CPU run in bf16, as [`check_bf16`] sees it.
pub struct Bf16Run {
    pub experiment: String,
    /// The precision key of a run that trains (refused without bf16 hardware); `None` for a
    /// run that only measures speed.
    pub trains: Option<&'static str>,
}

#[derive(Debug, thiserror::Error)]
pub enum Bf16Error {
    #[error(
        "experiment `{experiment}`: {key} = \"bf16\" on a CPU whose bf16 matrix products are {probe}; training would be \
         that much slower than in fp32. Use {key} = \"fp32\" on this CPU (or run on a CPU with AMX or AVX512_BF16, \
         or on CUDA); HARNESS_ALLOW_SLOW_BF16=1 runs it anyway"
    )]
    Refused { experiment: String, key: &'static str, probe: String },
}

/// Every `unsafe` lookup of this module: symbols of the loaded libtorch, found with `dlsym`.
mod ffi {
    use std::ffi::{c_char, c_int, c_void, CStr};

    unsafe extern "C" {
        fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
    }

    fn lookup(name: &CStr) -> *mut c_void {
        // SAFETY: RTLD_DEFAULT (null) searches the objects loaded at start-up, libtorch_cpu
        // among them; dlsym itself has no preconditions beyond a valid C string.
        unsafe { dlsym(std::ptr::null_mut(), name.as_ptr()) }
    }

    pub type CbwrGet = unsafe extern "C" fn(c_int) -> c_int;
    pub type CbwrAuto = unsafe extern "C" fn() -> c_int;

    pub fn mkl_cbwr_get() -> Option<CbwrGet> {
        let f = lookup(c"mkl_serv_cbwr_get");
        // SAFETY: MKL's `int mkl_serv_cbwr_get(int)` (what `mkl_cbwr_get` resolves to).
        (!f.is_null()).then(|| unsafe { std::mem::transmute::<*mut c_void, CbwrGet>(f) })
    }

    pub fn mkl_cbwr_get_auto_branch() -> Option<CbwrAuto> {
        let f = lookup(c"mkl_serv_cbwr_get_auto_branch");
        // SAFETY: MKL's `int mkl_serv_cbwr_get_auto_branch(void)`.
        (!f.is_null()).then(|| unsafe { std::mem::transmute::<*mut c_void, CbwrAuto>(f) })
    }

    /// libstdc++'s `std::string` (the cxx11 ABI): pointer, length, then 16 bytes of inline buffer
    /// or the capacity.
    #[repr(C)]
    struct StdString {
        ptr: *const u8,
        len: usize,
        local: [u8; 16],
    }

    /// `std::string at::get_cpu_capability()`. A class returned by value comes back through a
    /// hidden pointer to caller-owned memory (the x86-64 SysV ABI), which is what this passes.
    pub fn aten_cpu_capability() -> Option<String> {
        type GetCapability = unsafe extern "C" fn(*mut StdString) -> *mut StdString;
        let f = lookup(c"_ZN2at18get_cpu_capabilityB5cxx11Ev");
        if f.is_null() {
            return None;
        }
        let mut out = std::mem::MaybeUninit::<StdString>::uninit();
        // SAFETY: the mangled name is `at::get_cpu_capability[abi:cxx11]()`, which returns a
        // std::string; `out` is the 32-byte, 8-aligned slot the callee constructs it in, and it
        // is not moved before it is read. The names ATen returns ("DEFAULT", "AVX2", "AVX512")
        // fit the inline buffer; a longer one would live on the heap, and is copied and leaked.
        unsafe {
            let get: GetCapability = std::mem::transmute::<*mut c_void, GetCapability>(f);
            get(out.as_mut_ptr());
            let s = out.assume_init_ref();
            if s.ptr.is_null() || s.len > 64 {
                return None;
            }
            let bytes = std::slice::from_raw_parts(s.ptr, s.len);
            std::str::from_utf8(bytes).ok().map(String::from)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AMD: &str = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx fma avx2 bmi2\n\nprocessor\t: 1\n";
    const SPR: &str = "vendor_id : GenuineIntel\nmodel name : Intel(R) Xeon(R) Platinum 8481C\nflags : avx2 fma avx512f avx512bw avx512vl avx512dq avx512_bf16 amx_bf16 amx_tile\n";

    #[test]
    fn cpuinfo_gives_vendor_model_and_isa_class() {
        let amd = Cpu::parse(AMD);
        assert_eq!((amd.vendor.as_str(), amd.model.as_str(), amd.isa_class(), amd.bf16_hardware()), ("AuthenticAMD", "AMD EPYC", "AVX2", false));
        let spr = Cpu::parse(SPR);
        assert_eq!((spr.isa_class(), spr.bf16_hardware()), ("AVX-512 + AMX", true));
        assert_eq!(Cpu::parse("").isa_class(), "SSE only");
    }

    #[test]
    fn the_compatible_branch_leaves_the_cpu_out_of_the_key() {
        let (amd, spr): (&'static Cpu, &'static Cpu) = (Box::leak(Box::new(Cpu::parse(AMD))), Box::leak(Box::new(Cpu::parse(SPR))));
        let path = |mkl: &str, cpu| KernelPath { mkl: mkl.into(), aten: "AVX2".into(), threads: 2, cpu };
        assert_eq!(path("COMPATIBLE", amd).key(), path("COMPATIBLE", spr).key());
        assert_ne!(path("AUTO (AVX2)", amd).key(), path("AUTO (AVX2)", spr).key(), "native MKL differs by vendor at one ISA");
        assert_ne!(path("COMPATIBLE", amd).speed_key(), path("COMPATIBLE", spr).speed_key());
    }

    #[test]
    fn this_process_reports_what_libtorch_runs() {
        let p = KernelPath::current();
        assert!(["DEFAULT", "AVX2", "AVX512"].contains(&p.aten.as_str()), "ATen capability read back: {}", p.aten);
        assert!(p.mkl.starts_with("AUTO") || p.mkl == "COMPATIBLE" || p.mkl.starts_with("AVX"), "MKL branch read back: {}", p.mkl);
        assert!(p.threads >= 1);
    }
}
