//! Embeddings for retrieval and the frozen-embedding retrieval model, PAPER.md A.6, F.1.
//!
//! A text's embedding is one position of the last hidden layer: -2 for mixers (the last
//! position's output is never trained), -1, or the last non-pad token for right-padded inputs
//! (the FineWeb script, I.16). The retrieval model is a mixer over *slots* whose token mixing is
//! unmasked: slot 0 holds the query's embedding, slots 1..n the candidates'; a Linear(d -> 1) per
//! slot scores them, and the n - 1 candidate scores are the logits of a softmax classifier.
use crate::mask;
use crate::masked_mixer::{MixerBlock, MixerConfig};
use crate::{init, precision};
use serde::{Deserialize, Serialize};
use tch::{nn, nn::Module, Kind, Tensor};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmbedPosition {
    /// Position -2 (mixers; also later Llama code, "penult").
    Penultimate,
    /// Position -1 (Llama in the v1 TinyStories code; autoencoder encoders).
    Last,
    /// The last non-pad token of each (right-padded) row.
    LastNonPad,
}

/// One vector per row: `hidden` `[b, t, d]`, `tokens` `[b, t]` -> `[b, d]`.
pub fn embedding_at(hidden: &Tensor, tokens: &Tensor, pad_id: i64, at: EmbedPosition) -> Tensor {
    let (b, t, d) = hidden.size3().expect("[b, t, d]");
    match at {
        EmbedPosition::Penultimate => hidden.select(1, t - 2),
        EmbedPosition::Last => hidden.select(1, t - 1),
        EmbedPosition::LastNonPad => {
            let len = tokens.ne(pad_id).sum_dim_intlist([1i64].as_slice(), false, Kind::Int64); // [b]
            let idx = (len - 1).clamp_min(0).view([b, 1, 1]).expand([b, 1, d], false);
            hidden.gather(1, &idx, false).squeeze_dim(1)
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RetrievalConfig {
    /// Width of the embeddings it compares.
    pub d_model: i64,
    pub depth: usize,
    /// Slots: the query plus n - 1 candidates.
    pub n_slots: i64,
}

impl RetrievalConfig {
    pub fn num_params(&self) -> u64 {
        let (d, n) = (self.d_model, self.n_slots);
        ((8 * d * d + 9 * d + n * n + n) * self.depth as i64 + d + 1) as u64
    }
}

#[derive(Debug)]
pub struct RetrievalMixer {
    pub cfg: RetrievalConfig,
    blocks: Vec<MixerBlock>,
    retrieval_head: nn::Linear,
}

impl RetrievalMixer {
    pub fn new(p: &nn::Path, cfg: RetrievalConfig) -> Self {
        let m = MixerConfig::flat(1, cfg.d_model, 1, cfg.n_slots);
        let blocks = (0..cfg.depth).map(|i| MixerBlock::with_mask(p / "mixerblocks" / i, &m, mask::none)).collect();
        let retrieval_head = init::linear(p / "retrieval_head", cfg.d_model, 1, true);
        Self { cfg, blocks, retrieval_head }
    }

    /// Candidate scores: `[b, n, d]` (slot 0 = query) -> `[b, n - 1]`.
    pub fn forward(&self, slots: &Tensor) -> Tensor {
        let h = self.blocks.iter().fold(slots.shallow_clone(), |h, b| b.forward(&h));
        let scores = precision::linear(&h, &self.retrieval_head).squeeze_dim(-1).to_kind(Kind::Float); // [b, n]
        scores.narrow(1, 1, self.cfg.n_slots - 1)
    }
}

/// CE over the candidate scores against the index of the match. `double_softmax` reproduces the
/// v1 code, which applied a softmax before `CrossEntropyLoss` (PAPER.md I.9).
pub fn retrieval_loss(scores: &Tensor, target: &Tensor, double_softmax: bool) -> Tensor {
    let logits = if double_softmax { scores.softmax(-1, Kind::Float) } else { scores.to_kind(Kind::Float) };
    logits.cross_entropy_for_logits(target)
}

/// InfoNCE over groups (PAPER.md F.2): in each group, slot 0 is the query's embedding and slots
/// 1..g its candidates, one of which matches. With cosine similarity `cos` and temperature `tau`,
/// `L = -log( e^{cos(q,p)/tau} / Σ_j e^{cos(q,c_j)/tau} )`, the mean over groups.
///
/// # Shapes
/// `groups` `[G, g, d]`, `target` `[G]` (the match's candidate index, 0..g-1) -> scalar.
pub fn info_nce_loss(groups: &Tensor, target: &Tensor, tau: f64) -> Tensor {
    let (_n, g, _d) = groups.size3().expect("[G, g, d]");
    let groups = groups.to_kind(Kind::Float);
    let q = groups.narrow(1, 0, 1); // [G, 1, d]
    let c = groups.narrow(1, 1, g - 1); // [G, g-1, d]
    let cos = Tensor::cosine_similarity(&q, &c, -1, 1e-8); // [G, g-1], as torch.nn.CosineSimilarity
    (cos / tau).cross_entropy_for_logits(target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn embedding_positions_pick_the_right_rows() {
        let hidden = Tensor::arange(2 * 4 * 3, (Kind::Float, Device::Cpu)).view([2, 4, 3]);
        let tokens = Tensor::from_slice(&[5i64, 6, 2, 2, 5, 6, 7, 8]).view([2, 4]);
        let at = |p| embedding_at(&hidden, &tokens, 2, p);
        assert!(at(EmbedPosition::Last).equal(&hidden.select(1, 3)));
        assert!(at(EmbedPosition::Penultimate).equal(&hidden.select(1, 2)));
        let last_real = at(EmbedPosition::LastNonPad);
        assert!(last_real.get(0).equal(&hidden.get(0).get(1)), "row 0: 2 real tokens");
        assert!(last_real.get(1).equal(&hidden.get(1).get(3)), "row 1: no pads");
    }

    #[test]
    fn retrieval_mixer_sees_every_slot_and_counts_its_parameters() {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = RetrievalConfig { d_model: 8, depth: 2, n_slots: 5 };
        let m = RetrievalMixer::new(&vs.root(), cfg.clone());
        let counted: i64 = vs.trainable_variables().iter().map(|t| t.numel() as i64).sum();
        assert_eq!(counted as u64, cfg.num_params());
        let x = Tensor::randn([3, 5, 8], (Kind::Float, Device::Cpu));
        let s = m.forward(&x);
        assert_eq!(s.size(), vec![3, 4]);
        // Unmasked: the first candidate's score moves when the last slot changes.
        let y = x.copy();
        let _ = y.narrow(1, 4, 1).fill_(3.0);
        let moved = (m.forward(&y).narrow(1, 0, 1) - s.narrow(1, 0, 1)).abs().max().double_value(&[]);
        assert!(moved > 1e-4);
        let target = Tensor::from_slice(&[0i64, 3, 1]);
        let plain = retrieval_loss(&s, &target, false).double_value(&[]);
        let want = -s.log_softmax(-1, Kind::Float).gather(1, &target.unsqueeze(1), false).mean(Kind::Float).double_value(&[]);
        assert!((plain - want).abs() < 1e-6);
        // Double softmax: CE of softmax(scores) taken as logits, element by element.
        let p = s.softmax(-1, Kind::Float);
        let want = -p.log_softmax(-1, Kind::Float).gather(1, &target.unsqueeze(1), false).mean(Kind::Float).double_value(&[]);
        let double = retrieval_loss(&s, &target, true).double_value(&[]);
        assert!((double - want).abs() < 1e-6, "{double} vs {want}");
        assert!((double - plain).abs() > 1e-3, "the v1 variant is a different loss");
        // Its floor: probabilities in [0, 1] as logits give at least ln(1 + (n-2)/e) per row.
        let confident = Tensor::from_slice(&[50f32, 0.0, 0.0, 0.0]).view([1, 4]);
        let floor = (1.0 + 3.0 / std::f64::consts::E).ln();
        let got = retrieval_loss(&confident, &Tensor::from_slice(&[0i64]), true).double_value(&[]);
        assert!((got - floor).abs() < 1e-5, "{got} vs {floor}");
    }

    #[test]
    fn info_nce_matches_the_formula_and_scales_with_tau() {
        // One hand-made group: q = e1; candidates e1 (the match), e2, (e1 + e2)/sqrt2.
        let g = Tensor::from_slice(&[1f32, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0]).view([1, 4, 2]);
        let target = Tensor::from_slice(&[0i64]);
        let cos = [1.0f64, 0.0, std::f64::consts::FRAC_1_SQRT_2];
        for tau in [0.02, 0.5, 1.0] {
            let z: f64 = cos.iter().map(|c| (c / tau).exp()).sum();
            let want = -((cos[0] / tau).exp() / z).ln();
            let got = info_nce_loss(&g, &target, tau).double_value(&[]);
            assert!((got - want).abs() < 1e-4 * want.max(1.0), "tau {tau}: {got} vs {want}");
        }
        // The match at another slot: the same loss when the labels move with it.
        let swapped = Tensor::from_slice(&[1f32, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0]).view([1, 4, 2]);
        let a = info_nce_loss(&g, &target, 0.5).double_value(&[]);
        let b = info_nce_loss(&swapped, &Tensor::from_slice(&[1i64]), 0.5).double_value(&[]);
        assert!((a - b).abs() < 1e-6);
        // Scale-free: cosine ignores the embeddings' norms.
        let c = info_nce_loss(&(&g * 7.0), &target, 0.5).double_value(&[]);
        assert!((a - c).abs() < 1e-6);
    }
}
