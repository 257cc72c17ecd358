//! Text generation from a run's model: greedy or sampled (temperature, top-k, top-p), with the
//! model's incremental decoder (a KV cache for the transformers; cached rows of the token mixing
//! for the masked mixer), or by recomputing the whole prefix each step (`recompute`, the check).
//!
//! The prompt starts at position 0, as the training rows do (right padding); a mixer and GPT-1
//! hold n_ctx positions, so generation stops there. The tokenizer's end-of-text (the pad id)
//! ends a continuation unless `ignore_eos`.
use super::Loaded;
use anyhow::{bail, Result};
use tch::{Kind, Tensor};

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Sampling {
    /// 0: greedy (argmax).
    pub temperature: f64,
    pub top_k: Option<i64>,
    pub top_p: Option<f64>,
}

impl Sampling {
    pub const GREEDY: Sampling = Sampling { temperature: 0.0, top_k: None, top_p: None };

    pub fn check(&self) -> Result<()> {
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            bail!("--temperature must be 0 (greedy) or positive, got {}", self.temperature);
        }
        if self.top_k.is_some_and(|k| k < 1) {
            bail!("--top-k must be at least 1");
        }
        if self.top_p.is_some_and(|p| !(p > 0.0 && p <= 1.0)) {
            bail!("--top-p must be in (0, 1]");
        }
        if self.temperature == 0.0 && (self.top_k.is_some() || self.top_p.is_some()) {
            bail!("--top-k and --top-p filter sampled tokens: give a --temperature above 0 (0 is greedy)");
        }
        Ok(())
    }

    /// "greedy" or "T 0.8, top-k 40, top-p 0.95".
    pub fn describe(&self) -> String {
        if self.temperature == 0.0 {
            return "greedy".into();
        }
        let mut parts = vec![format!("temperature {}", self.temperature)];
        parts.extend(self.top_k.map(|k| format!("top-k {k}")));
        parts.extend(self.top_p.map(|p| format!("top-p {p}")));
        parts.join(", ")
    }
}

/// Why a continuation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stop {
    MaxNewTokens,
    EndOfText,
    /// The model holds no more positions (n_ctx).
    Capacity,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Generated {
    pub prompt: String,
    pub continuation: String,
    pub prompt_ids: Vec<i64>,
    pub new_ids: Vec<i64>,
    pub seconds: f64,
    pub tokens_per_s: f64,
    pub stop: Stop,
}

/// The next token from one position's logits `[V]`.
fn pick(logits: &Tensor, s: &Sampling) -> i64 {
    if s.temperature == 0.0 {
        return logits.argmax(0, false).int64_value(&[]);
    }
    let mut l = logits.to_kind(Kind::Float) / s.temperature;
    let v = l.size()[0];
    if let Some(k) = s.top_k.filter(|&k| k < v) {
        let kth = l.topk(k, 0, true, true).0.get(k - 1);
        l = l.masked_fill(&l.lt_tensor(&kth), f64::NEG_INFINITY);
    }
    if let Some(p) = s.top_p.filter(|&p| p < 1.0) {
        // Keep the smallest set of most likely tokens whose probability reaches p (the first
        // token always).
        let (sorted, order) = l.sort(0, true);
        let probs = sorted.softmax(0, Kind::Float);
        let before = probs.cumsum(0, Kind::Float) - &probs;
        let drop_sorted = before.gt(p);
        let drop = drop_sorted.zeros_like().scatter(0, &order, &drop_sorted);
        l = l.masked_fill(&drop, f64::NEG_INFINITY);
    }
    l.softmax(0, Kind::Float).multinomial(1, false).int64_value(&[0])
}

/// Continues each prompt. `seed` seeds the sampler once, before the first prompt: the same seed
/// and prompts give the same text.
pub fn generate(m: &Loaded, prompts: &[String], max_new: usize, s: &Sampling, seed: u64, recompute: bool, ignore_eos: bool) -> Result<Vec<Generated>> {
    s.check()?;
    // Both ways or neither: `--recompute` checks the incremental decoder, so a model without one
    // is refused with it too (a full forward of a model that sees both sides, or of a fixed-length
    // autoencoder, gives no left-to-right continuation).
    if m.model.decoder().is_none() {
        let with = if recompute { " (with --recompute too: it checks the incremental decoder)" } else { "" };
        bail!("{}: this model sees both sides of each position (or is an autoencoder), so it does not generate left to right{with}", m.label());
    }
    tch::manual_seed(seed as i64);
    let tok_vocab = m.tok.vocab_size();
    let mut out = Vec::new();
    for prompt in prompts {
        let enc = m.tok.tokenizer.encode(prompt.as_str(), false).map_err(|e| anyhow::anyhow!("tokenizing the prompt {}: {e}", shown(prompt)))?;
        let prompt_ids: Vec<i64> = enc.get_ids().iter().map(|&i| i as i64).collect();
        if prompt_ids.is_empty() {
            bail!(
                "the prompt {} gives no tokens with this run's tokenizer{}",
                shown(prompt),
                if prompt.trim().is_empty() { ": give some text to continue" } else { " (it holds no character the tokenizer knows): give text in the run's alphabet" }
            );
        }
        let capacity = m.model.decoder().and_then(|d| d.capacity()).or(matches!(m.config.model(), mm_models::ModelSpec::MaskedMixer(_)).then(|| m.n_ctx()));
        if let Some(c) = capacity {
            if prompt_ids.len() as i64 >= c {
                bail!("the prompt {} has {} tokens; {} holds {c} positions, so nothing is left to generate", shown(prompt), prompt_ids.len(), m.label());
            }
        }
        let start = std::time::Instant::now();
        let mut ids = prompt_ids.clone();
        let mut new_ids = Vec::new();
        let mut stop = Stop::MaxNewTokens;
        tch::no_grad(|| -> Result<()> {
            let mut dec = (!recompute).then(|| m.model.decoder().expect("checked"));
            let mut next_input = Tensor::from_slice(&prompt_ids).view([1, -1]).to_device(m.device);
            while new_ids.len() < max_new {
                if capacity.is_some_and(|c| ids.len() as i64 >= c) {
                    stop = Stop::Capacity;
                    break;
                }
                let logits = match dec.as_mut() {
                    Some(d) => d.feed(&next_input),
                    None => full_logits(m, &ids, capacity),
                };
                let last = logits.get(0).get(logits.size()[1] - 1).narrow(0, 0, tok_vocab);
                let next = pick(&last, s);
                new_ids.push(next);
                ids.push(next);
                if next == m.tok.pad_id && !ignore_eos {
                    stop = Stop::EndOfText;
                    break;
                }
                next_input = Tensor::from_slice(&[next]).view([1, 1]).to_device(m.device);
            }
            Ok(())
        })?;
        let seconds = start.elapsed().as_secs_f64();
        let decode = |v: &[i64]| m.tok.tokenizer.decode(&v.iter().map(|&i| i as u32).collect::<Vec<_>>(), false).unwrap_or_default();
        // The continuation as the difference of two decodes: byte-level pieces that join across
        // the boundary come out whole.
        let (all, head) = (decode(&ids), decode(&prompt_ids));
        let continuation = all.strip_prefix(head.as_str()).map(str::to_string).unwrap_or_else(|| decode(&new_ids));
        out.push(Generated {
            prompt: prompt.clone(),
            continuation,
            prompt_ids,
            tokens_per_s: if seconds > 0.0 { new_ids.len() as f64 / seconds } else { f64::NAN },
            new_ids,
            seconds,
            stop,
        });
    }
    Ok(out)
}

/// The last position's logits by a forward over the whole prefix: a mixer reads exactly n_ctx
/// positions, so the prefix is padded on the right (causal: the pads do not reach it).
/// A prompt as an error message quotes it: whole when short, else its first 80 characters and
/// its length (a 200 KB prompt is never echoed).
fn shown(prompt: &str) -> String {
    const HEAD: usize = 80;
    match prompt.char_indices().nth(HEAD) {
        None => format!("{prompt:?}"),
        Some((cut, _)) => format!("{:?}... ({} characters)", &prompt[..cut], prompt.chars().count()),
    }
}

/// The next-token logits from a forward over the whole prefix, padded to the model's fixed
/// length where it has one (a masked mixer's, a transfixer's mixing layers' n_ctx): causal, so
/// the padding after the prefix changes none of its positions.
fn full_logits(m: &Loaded, ids: &[i64], capacity: Option<i64>) -> Tensor {
    let mut row = ids.to_vec();
    if let Some(c) = capacity {
        row.resize(c as usize, m.tok.pad_id);
    }
    let logits = m.model.forward_t(&Tensor::from_slice(&row).view([1, -1]).to_device(m.device), false);
    logits.narrow(1, ids.len() as i64 - 1, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_and_top_p_keep_only_the_likely_tokens() {
        let logits = Tensor::from_slice(&[0.0f32, 5.0, 4.9, -3.0, 1.0]);
        tch::manual_seed(0);
        for _ in 0..50 {
            let k = pick(&logits, &Sampling { temperature: 1.0, top_k: Some(2), top_p: None });
            assert!(k == 1 || k == 2, "top-k 2 drew {k}");
            let p = pick(&logits, &Sampling { temperature: 1.0, top_k: None, top_p: Some(0.3) });
            assert_eq!(p, 1, "the most likely token alone reaches p = 0.3");
        }
        assert_eq!(pick(&logits, &Sampling::GREEDY), 1);
    }

    #[test]
    fn bad_sampling_settings_are_named() {
        let bad = |s: Sampling| s.check().unwrap_err().to_string();
        assert!(bad(Sampling { temperature: -1.0, ..Sampling::GREEDY }).contains("--temperature"));
        assert!(bad(Sampling { temperature: 1.0, top_k: Some(0), top_p: None }).contains("--top-k"));
        assert!(bad(Sampling { temperature: 1.0, top_k: None, top_p: Some(1.5) }).contains("--top-p"));
        assert!(bad(Sampling { temperature: 0.0, top_k: Some(5), top_p: None }).contains("greedy"));
    }
}
