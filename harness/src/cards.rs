//! The devices runs are priced and measured on: each card's memory, dense peaks, and the
//! model-FLOPs utilisation and per-step floor measured runs give it. `harness plan --estimate`
//! prices runs with them (`estimate`); the `throughput` kind's MFU divides by their peaks. No
//! dependency on the rest of the harness.
use std::borrow::Cow;

/// A device the estimate prices runs on.
#[derive(Debug, Clone, PartialEq)]
pub struct Card {
    /// The name `--card` takes.
    pub id: &'static str,
    /// Lower-case fragments of the name libtorch or nvidia-smi reports for it.
    pub names: &'static [&'static str],
    pub label: &'static str,
    pub memory_gib: f64,
    /// Dense peaks, TFLOP/s: fp32 without TF32 (libtorch's default), and the 16-bit tensor
    /// cores (fp16 with fp32 accumulation, bf16) that fp16 AMP and bf16 runs use.
    pub fp32_tflops: f64,
    pub half_tflops: f64,
    /// Model-FLOPs utilisation of a training step, the masked mixer's and attention's.
    pub mfu_mixer: f64,
    pub mfu_attention: f64,
    pub mfu_source: Cow<'static, str>,
    /// The least time a training step of one block takes whatever its FLOPs (kernel launches and
    /// the host's work per step), seconds: a step of n blocks takes at least n times this.
    pub floor_s_per_block: f64,
}

/// The H200 record of 2026-11-27 (ci/gpu-runs/2026-11-27-h200*): a mixer d256 n8 at batch 16 x 512
/// trained 300 steps (with 4 evaluations) in 6.4 s in bf16 and 7.4 s in fp32, about 17-20 ms a
/// step whatever the precision while its FLOPs take 1 ms in bf16: 2 ms a block. Until a card is
/// measured at paper sizes (issue 38) every card gets this floor.
const FLOOR_S_PER_BLOCK: f64 = 0.002;

/// PAPER.md C.1 / C.3: 200,000 FineWeb steps of 128 x 512 tokens took about 22 h (20-24) on 4x
/// V100 in fp16 for both the mixer d1024 n16 and the Llama d512 n16 h4: 149.7 and 79.0 TFLOP/s
/// of model FLOPs on 4 x 125.
const V100_MFU: (f64, f64) = (0.299, 0.158);
const FROM_V100: &str = "the paper's 4x V100 FineWeb runs (PAPER.md C.1, C.3: 200k steps of 65,536 tokens in ~22 h, \
                         mixer d1024 n16 0.30, Llama d512 n16 h4 0.16); no run of this harness has measured the card at paper sizes yet";

/// The cards `--card` names, with datasheet peaks (dense).
pub const CARDS: &[Card] = &[
    Card {
        id: "h100",
        names: &["h100 80gb hbm3", "h100 sxm", "h100"],
        label: "NVIDIA H100 SXM (80 GB)",
        memory_gib: 80.0,
        fp32_tflops: 67.0,
        half_tflops: 989.4,
        mfu_mixer: V100_MFU.0,
        mfu_attention: V100_MFU.1,
        mfu_source: Cow::Borrowed(FROM_V100),
        floor_s_per_block: FLOOR_S_PER_BLOCK,
    },
    Card {
        id: "h100-pcie",
        names: &["h100 pcie"],
        label: "NVIDIA H100 PCIe (80 GB)",
        memory_gib: 80.0,
        fp32_tflops: 51.0,
        half_tflops: 756.0,
        mfu_mixer: V100_MFU.0,
        mfu_attention: V100_MFU.1,
        mfu_source: Cow::Borrowed(FROM_V100),
        floor_s_per_block: FLOOR_S_PER_BLOCK,
    },
    Card {
        id: "h200",
        names: &["h200"],
        label: "NVIDIA H200 (141 GB)",
        memory_gib: 141.0,
        fp32_tflops: 67.0,
        half_tflops: 989.4,
        mfu_mixer: V100_MFU.0,
        mfu_attention: V100_MFU.1,
        mfu_source: Cow::Borrowed(FROM_V100),
        floor_s_per_block: FLOOR_S_PER_BLOCK,
    },
    Card {
        id: "a100",
        names: &["a100"],
        label: "NVIDIA A100 SXM (80 GB)",
        memory_gib: 80.0,
        fp32_tflops: 19.5,
        half_tflops: 312.0,
        mfu_mixer: V100_MFU.0,
        mfu_attention: V100_MFU.1,
        mfu_source: Cow::Borrowed(FROM_V100),
        floor_s_per_block: FLOOR_S_PER_BLOCK,
    },
    Card {
        id: "v100",
        names: &["v100"],
        label: "NVIDIA V100 (16 GB)",
        memory_gib: 16.0,
        fp32_tflops: 15.7,
        half_tflops: 125.0,
        mfu_mixer: V100_MFU.0,
        mfu_attention: V100_MFU.1,
        mfu_source: Cow::Borrowed(
            "the paper's 4x V100 FineWeb runs (PAPER.md C.1, C.3: 200k steps of 65,536 tokens in ~22 h, mixer d1024 n16 0.30, \
             Llama d512 n16 h4 0.16)",
        ),
        floor_s_per_block: FLOOR_S_PER_BLOCK,
    },
    Card {
        id: "rtx3060",
        names: &["rtx 3060", "3060"],
        label: "NVIDIA GeForce RTX 3060 (12 GB)",
        memory_gib: 12.0,
        fp32_tflops: 12.7,
        // GeForce Ampere: fp16 tensor cores at half rate with fp32 accumulation (51.2 with fp16).
        half_tflops: 25.6,
        mfu_mixer: 0.294,
        mfu_attention: 0.179,
        mfu_source: Cow::Borrowed(
            "the paper's 12 h RTX 3060 runs (PAPER.md E.1, C.5): the expanded mixer d256 n8 b16 at 5.6 epochs (700,313 steps), \
             0.29; the Llama d1024 n8 b4 at 110,000 steps, 0.18 (the paper's eager attention at 16 heads of a d128 Llama \
             reached 0.03)",
        ),
        floor_s_per_block: FLOOR_S_PER_BLOCK,
    },
    Card {
        id: "l4",
        names: &["l4"],
        label: "NVIDIA L4 (24 GB)",
        memory_gib: 24.0,
        fp32_tflops: 30.3,
        half_tflops: 121.0,
        mfu_mixer: V100_MFU.0,
        mfu_attention: V100_MFU.1,
        mfu_source: Cow::Borrowed(FROM_V100),
        floor_s_per_block: FLOOR_S_PER_BLOCK,
    },
];

/// The card `--card` names (its id, case-insensitive), or an error listing them.
pub fn card(id: &str) -> Result<Card, String> {
    let want = id.to_ascii_lowercase();
    CARDS.iter().find(|c| c.id == want).cloned().ok_or_else(|| {
        format!("--card {id}: unknown card; give one of {}, cpu (measured on this machine)", CARDS.iter().map(|c| c.id).collect::<Vec<_>>().join(", "))
    })
}

/// The card a device name (libtorch's or nvidia-smi's) is, by the most specific fragment.
pub fn card_of_device(device_name: &str) -> Option<&'static Card> {
    let n = device_name.to_ascii_lowercase();
    CARDS
        .iter()
        .flat_map(|c| c.names.iter().map(move |f| (c, *f)))
        .filter(|(_, f)| n.contains(f))
        .max_by_key(|(_, f)| f.len())
        .map(|(c, _)| c)
}

