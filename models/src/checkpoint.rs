//! Safetensors checkpoints with the reference's key names: save, and load with a full account
//! of missing, unexpected and mis-shaped keys. After loading weights that may hold non-zero
//! masked entries (the reference's checkpoints), call [`crate::CausalLm::remask`].
use crate::ModelError;
use std::collections::BTreeMap;
use std::path::Path;
use tch::{nn::VarStore, Tensor};

/// Writes every variable of `vs` to a safetensors file.
pub fn save(vs: &VarStore, path: &Path) -> Result<(), ModelError> {
    let vars = vs.variables();
    let mut named: Vec<(&str, &Tensor)> = vars.iter().map(|(k, v)| (k.as_str(), v)).collect();
    named.sort_by(|a, b| a.0.cmp(b.0)); // a stable file for a stable hash
    Tensor::write_safetensors(&named, path).map_err(|source| ModelError::CheckpointRead { path: path.into(), source })
}

/// Loads a safetensors file into `vs`; every key must match by name and shape.
pub fn load(vs: &VarStore, path: &Path) -> Result<(), ModelError> {
    // A FIFO or a device would block the reader forever; a folder gives a cryptic error.
    match std::fs::metadata(path) {
        Ok(m) if !m.is_file() => {
            return Err(ModelError::CheckpointInvalid { path: path.into(), reason: "is not a regular file; give a .safetensors file".into() })
        }
        Err(e) => return Err(ModelError::CheckpointInvalid { path: path.into(), reason: format!("cannot read: {e}") }),
        Ok(_) => {}
    }
    let read = Tensor::read_safetensors(path).map_err(|source| ModelError::CheckpointRead { path: path.into(), source })?;
    let file: BTreeMap<String, Tensor> = read.into_iter().collect();
    let vars = vs.variables();
    let mut missing: Vec<String> = vars.keys().filter(|k| !file.contains_key(*k)).cloned().collect();
    let mut unexpected: Vec<String> = file.keys().filter(|k| !vars.contains_key(*k)).cloned().collect();
    let mut mismatched: Vec<String> = vars
        .iter()
        .filter_map(|(k, v)| {
            let f = file.get(k)?;
            (f.size() != v.size()).then(|| format!("{k}: file {:?} vs model {:?}", f.size(), v.size()))
        })
        .collect();
    // Weights are floating point; integers (a quantised or corrupted file) are not converted.
    let not_float: Vec<String> =
        file.iter().filter(|(k, t)| vars.contains_key(*k) && !t.is_floating_point()).map(|(k, t)| format!("{k}: {:?}", t.kind())).collect();
    if !not_float.is_empty() {
        return Err(ModelError::CheckpointInvalid {
            path: path.into(),
            reason: format!(
                "holds {} tensor(s) that are not floating point ({}{}); a checkpoint's weights must be float (f32, f16, bf16 or f64)",
                not_float.len(),
                not_float.iter().take(3).cloned().collect::<Vec<_>>().join(", "),
                if not_float.len() > 3 { ", ..." } else { "" }
            ),
        });
    }
    if !(missing.is_empty() && unexpected.is_empty() && mismatched.is_empty()) {
        missing.sort();
        unexpected.sort();
        mismatched.sort();
        return Err(ModelError::CheckpointMismatch { path: path.into(), missing, unexpected, mismatched });
    }
    tch::no_grad(|| {
        for (k, mut v) in vars {
            v.copy_(&file[&k]);
        }
    });
    Ok(())
}
