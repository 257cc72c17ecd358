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

/// A safetensors file read one tensor at a time through a memory map: each tensor's bytes are
/// copied once, into the tensor asked for, and then dropped from the process's resident pages,
/// so a checkpoint never sits in memory beside the model it fills (reading it whole, as
/// `Tensor::read_safetensors` does, holds the file's bytes and every tensor at once: twice the
/// weights on top of the model's own).
pub struct TensorFile {
    path: std::path::PathBuf,
    map: memmap2::Mmap,
    /// Name -> (dtype, shape, byte range in the file).
    tensors: BTreeMap<String, (safetensors::Dtype, Vec<i64>, std::ops::Range<usize>)>,
}

impl TensorFile {
    /// Maps `path` and checks its header: offsets contiguous, sizes matching shapes and dtypes,
    /// and the file as long as the header says.
    pub fn open(path: &Path) -> Result<Self, ModelError> {
        let bad = |reason: String| ModelError::CheckpointInvalid { path: path.into(), reason };
        // A FIFO or a device would block the reader forever; a folder gives a cryptic error.
        match std::fs::metadata(path) {
            Ok(m) if !m.is_file() => return Err(bad("is not a regular file; give a .safetensors file".into())),
            Err(e) => return Err(bad(format!("cannot read: {e}"))),
            Ok(_) => {}
        }
        let file = std::fs::File::open(path).map_err(|e| bad(format!("cannot read: {e}")))?;
        // SAFETY: the map is read-only; a file changed by another process while it is read gives
        // wrong values, not unsoundness in this process's own memory.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| bad(format!("cannot map: {e}")))?;
        let (header, meta) = safetensors::SafeTensors::read_metadata(&map)
            .map_err(|e| bad(format!("not a readable safetensors file ({e:?})")))?;
        let base = 8 + header;
        let tensors = meta
            .tensors()
            .into_iter()
            .map(|(name, info)| {
                let (s, e) = info.data_offsets;
                (name, (info.dtype, info.shape.iter().map(|&x| x as i64).collect(), base + s..base + e))
            })
            .collect();
        let _ = map.advise(memmap2::Advice::Sequential);
        Ok(Self { path: path.into(), map, tensors })
    }

    /// The names and shapes of the file's tensors.
    pub fn shapes(&self) -> impl Iterator<Item = (&str, &[i64])> {
        self.tensors.iter().map(|(k, (_, shape, _))| (k.as_str(), shape.as_slice()))
    }

    /// One tensor, copied out of the file into a new CPU tensor of the file's dtype; `None` when
    /// the file has no tensor of that name.
    pub fn read(&self, name: &str) -> Option<Result<Tensor, ModelError>> {
        let (dtype, shape, range) = self.tensors.get(name)?;
        let read = || -> Result<Tensor, ModelError> {
            let kind = tch::Kind::try_from(*dtype).map_err(|source| ModelError::CheckpointRead { path: self.path.clone(), source })?;
            let t = Tensor::f_from_data_size(&self.map[range.clone()], shape, kind)
                .map_err(|source| ModelError::CheckpointRead { path: self.path.clone(), source })?;
            // SAFETY: nothing borrows these bytes any more (the tensor holds its own copy); a
            // later read of a shared, read-only file map faults the pages in again from the file.
            let _ = unsafe { self.map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, range.start, range.len()) };
            Ok(t)
        };
        Some(read())
    }

    fn is_float(&self, name: &str) -> Option<bool> {
        use safetensors::Dtype as D;
        self.tensors.get(name).map(|(d, ..)| matches!(d, D::F16 | D::BF16 | D::F32 | D::F64))
    }
}

/// Loads a safetensors file into `vs`, one tensor at a time ([`TensorFile`]); every key must
/// match by name and shape.
pub fn load(vs: &VarStore, path: &Path) -> Result<(), ModelError> {
    let file = TensorFile::open(path)?;
    let shapes: BTreeMap<&str, &[i64]> = file.shapes().collect();
    let vars = vs.variables();
    let mut missing: Vec<String> = vars.keys().filter(|k| !shapes.contains_key(k.as_str())).cloned().collect();
    let mut unexpected: Vec<String> = shapes.keys().filter(|k| !vars.contains_key(**k)).map(|k| k.to_string()).collect();
    let mut mismatched: Vec<String> = vars
        .iter()
        .filter_map(|(k, v)| {
            let f = shapes.get(k.as_str())?;
            (*f != v.size().as_slice()).then(|| format!("{k}: file {f:?} vs model {:?}", v.size()))
        })
        .collect();
    // Weights are floating point; integers (a quantised or corrupted file) are not converted.
    let not_float: Vec<String> = file
        .tensors
        .iter()
        .filter(|(k, _)| vars.contains_key(*k) && file.is_float(k) == Some(false))
        .map(|(k, (d, ..))| format!("{k}: {}", tch::Kind::try_from(*d).map_or_else(|_| format!("{d:?}"), |kind| format!("{kind:?}"))))
        .collect();
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
            let t = file.read(&k).expect("checked: every variable is in the file")?;
            v.copy_(&t);
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{nn, Device, Kind};

    fn temp(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("mm-tensorfile-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("w.safetensors")
    }

    #[test]
    fn tensors_read_one_at_a_time_equal_the_written_ones_in_their_own_dtype() {
        let path = temp("read");
        let a = Tensor::randn([3, 5], (Kind::Float, Device::Cpu));
        let b = Tensor::randn([7], (Kind::Float, Device::Cpu)).to_kind(Kind::BFloat16);
        Tensor::write_safetensors(&[("a", &a), ("b", &b)], &path).unwrap();
        let f = TensorFile::open(&path).unwrap();
        let shapes: Vec<(String, Vec<i64>)> = f.shapes().map(|(k, s)| (k.to_string(), s.to_vec())).collect();
        assert_eq!(shapes, vec![("a".to_string(), vec![3, 5]), ("b".to_string(), vec![7])]);
        assert!(f.read("a").unwrap().unwrap().equal(&a));
        let rb = f.read("b").unwrap().unwrap();
        assert_eq!(rb.kind(), Kind::BFloat16);
        assert!(rb.equal(&b));
        // A tensor read again after its pages were dropped is the same.
        assert!(f.read("a").unwrap().unwrap().equal(&a));
        assert!(f.read("c").is_none());
        std::fs::remove_dir_all(path.parent().unwrap()).ok();
    }

    #[test]
    fn a_bf16_file_loads_into_fp32_weights_and_a_truncated_file_is_refused() {
        let path = temp("load");
        let vs = nn::VarStore::new(Device::Cpu);
        let w = vs.root().randn("w", &[4, 4], 0.0, 1.0);
        let src = Tensor::randn([4, 4], (Kind::Float, Device::Cpu)).to_kind(Kind::BFloat16);
        Tensor::write_safetensors(&[("w", &src)], &path).unwrap();
        load(&vs, &path).unwrap();
        assert_eq!(w.kind(), Kind::Float);
        assert!(w.equal(&src.to_kind(Kind::Float)));
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        let err = load(&vs, &path).unwrap_err().to_string();
        assert!(err.contains("w.safetensors") && err.contains("not a readable safetensors file"), "{err}");
        std::fs::remove_dir_all(path.parent().unwrap()).ok();
    }
}
