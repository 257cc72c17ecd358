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
