//! `harness export hf`: a run's Llama as a Hugging Face model folder (`config.json`,
//! `model.safetensors`, `tokenizer.json`), which `LlamaForCausalLM.from_pretrained` and
//! `AutoTokenizer.from_pretrained` read as they are. The harness's variable names are the
//! Hugging Face state-dict keys (`model.layers.0.self_attn.q_proj.weight`, ...), so the weights
//! go over unchanged; only the file gains the `{"format": "pt"}` metadata transformers checks.
use super::Loaded;
use anyhow::{bail, Context, Result};
use mm_models::ModelSpec;
use serde_json::json;
use std::path::Path;

pub fn hf(m: &Loaded, out: &Path) -> Result<()> {
    let ModelSpec::Llama(spec) = m.config.model() else {
        bail!("{}: only a Llama has a Hugging Face class (LlamaForCausalLM); the masked mixer's weights load into the reference's LanguageMixer as they are (same keys)", m.label());
    };
    if spec.bidirectional || !spec.residual {
        bail!("{}: a bidirectional or residual-free Llama is not a LlamaForCausalLM", m.label());
    }
    let d = m.config.data();
    let cfg = spec.config(d.vocab_size as i64);
    if out.exists() && std::fs::read_dir(out).map(|mut e| e.next().is_some()).unwrap_or(true) {
        bail!("--out {}: exists and is not empty; give a new folder", out.display());
    }
    // Written into a hidden sibling folder and renamed into place: an interrupted export leaves
    // no half folder at --out (the rerun would call it "not empty").
    let name = out.file_name().with_context(|| format!("--out {}: give a folder name", out.display()))?.to_string_lossy().to_string();
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let partial = parent.join(format!(".{name}.partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir(&partial).with_context(|| format!("creating {}", partial.display()))?;
    let written = write_folder(m, &cfg, d.n_ctx, &partial);
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&partial);
        return Err(e);
    }
    if out.exists() {
        std::fs::remove_dir(out).with_context(|| format!("replacing the empty folder {}", out.display()))?;
    }
    std::fs::rename(&partial, out).with_context(|| format!("moving {} to {}", partial.display(), out.display()))?;
    Ok(())
}

fn write_folder(m: &Loaded, cfg: &mm_models::transformer::LlamaConfig, n_ctx: i64, out: &Path) -> Result<()> {
    let eos = m.tok.tokenizer.id_to_token(m.tok.pad_id as u32).unwrap_or_default();
    let config = json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.d_model,
        "intermediate_size": cfg.intermediate_size,
        "num_hidden_layers": cfg.n_layers,
        "num_attention_heads": cfg.n_heads,
        "num_key_value_heads": cfg.n_heads,
        "hidden_act": "silu",
        "max_position_embeddings": n_ctx,
        "rms_norm_eps": cfg.rms_norm_eps,
        "rope_theta": cfg.rope_theta,
        "tie_word_embeddings": false,
        "attention_bias": false,
        "mlp_bias": false,
        "torch_dtype": "float32",
        "bos_token_id": null,
        "eos_token_id": m.tok.pad_id,
        "pad_token_id": m.tok.pad_id,
        "harness_run": m.short_id(),
        "harness_checkpoint_sha256": m.checkpoint_sha256,
    });
    crate::artifacts::write_atomic(&out.join("config.json"), serde_json::to_string_pretty(&config)?.as_bytes())?;
    let bytes = crate::artifacts::read_regular(&m.checkpoint).with_context(|| format!("reading {}", m.checkpoint.display()))?;
    // The bytes exported are the ones verified when the run was loaded.
    anyhow::ensure!(
        crate::artifacts::sha256_bytes(&bytes) == m.checkpoint_sha256,
        "{}: changed since it was loaded and verified; export again",
        m.checkpoint.display()
    );
    crate::artifacts::write_atomic(&out.join("model.safetensors"), &with_pt_metadata(&bytes).with_context(|| format!("{}: not a safetensors file", m.checkpoint.display()))?)?;
    crate::artifacts::write_atomic(&out.join("tokenizer.json"), m.tok.json.as_bytes())?;
    let tok_cfg = json!({ "tokenizer_class": "PreTrainedTokenizerFast", "eos_token": eos, "pad_token": eos, "add_bos_token": false, "add_eos_token": false });
    crate::artifacts::write_atomic(&out.join("tokenizer_config.json"), serde_json::to_string_pretty(&tok_cfg)?.as_bytes())?;
    Ok(())
}

/// A safetensors file with `"__metadata__": {"format": "pt"}` in its header (the data and its
/// offsets, relative to the end of the header, are unchanged).
pub fn with_pt_metadata(bytes: &[u8]) -> Result<Vec<u8>> {
    anyhow::ensure!(bytes.len() >= 8, "shorter than a header");
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    anyhow::ensure!(bytes.len() >= 8 + n, "header length {n} beyond the file");
    let mut header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&bytes[8..8 + n]).context("header is not a JSON object")?;
    let meta = header.entry("__metadata__").or_insert_with(|| json!({}));
    meta.as_object_mut().context("__metadata__ is not an object")?.insert("format".into(), json!("pt"));
    let mut text = serde_json::to_vec(&header)?;
    while text.len() % 8 != 0 {
        text.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + text.len() + bytes.len() - 8 - n);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    out.extend_from_slice(&bytes[8 + n..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_added_and_the_tensors_read_back_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let a = tch::Tensor::randn([3, 5], (tch::Kind::Float, tch::Device::Cpu));
        let b = tch::Tensor::arange(7, (tch::Kind::Float, tch::Device::Cpu));
        let p = dir.path().join("w.safetensors");
        tch::Tensor::write_safetensors(&[("a", &a), ("b", &b)], &p).unwrap();
        let q = dir.path().join("pt.safetensors");
        std::fs::write(&q, with_pt_metadata(&std::fs::read(&p).unwrap()).unwrap()).unwrap();
        let bytes = std::fs::read(&q).unwrap();
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
        assert_eq!(header["__metadata__"]["format"], "pt");
        let back: std::collections::BTreeMap<String, tch::Tensor> = tch::Tensor::read_safetensors(&q).unwrap().into_iter().collect();
        assert!(back["a"].equal(&a) && back["b"].equal(&b));
    }
}
