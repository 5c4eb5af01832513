//! Checkpoints as single safetensors files, written atomically (temp file + rename).
//!
//! One file holds named tensors plus string metadata (the training state as JSON), so a checkpoint
//! is either entirely the old one or entirely the new one: a run killed at any instant resumes
//! from a consistent state.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::Dtype;
use safetensors::SafeTensors;
use tch::{Device, Kind, Tensor};

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{}: {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}: not a valid checkpoint: {reason}", .path.display())]
    Invalid { path: PathBuf, reason: String },
}

fn dtype_of(kind: Kind) -> Option<(Dtype, usize)> {
    match kind {
        Kind::Float => Some((Dtype::F32, 4)),
        Kind::Int64 => Some((Dtype::I64, 8)),
        Kind::Uint8 | Kind::Bool => Some((Dtype::U8, 1)),
        _ => None,
    }
}

/// Writes `tensors` and `metadata` to `path` atomically.
pub fn save(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: HashMap<String, String>,
) -> Result<(), CheckpointError> {
    let invalid = |reason: String| CheckpointError::Invalid { path: path.into(), reason };
    let mut buffers = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let t = t.to_device(Device::Cpu).contiguous();
        let (dtype, width) =
            dtype_of(t.kind()).ok_or_else(|| invalid(format!("{name}: unsupported kind {:?}", t.kind())))?;
        let numel = t.numel();
        let mut bytes = vec![0u8; numel * width];
        t.copy_data_u8(&mut bytes, numel);
        let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
        buffers.push((name.clone(), dtype, shape, bytes));
    }
    seqkd_runtime::format::write_safetensors(path, &buffers, metadata).map_err(|e| match e {
        seqkd_runtime::format::FormatError::Io { path, source } => CheckpointError::Io { path, source },
        seqkd_runtime::format::FormatError::Invalid { path, reason } => {
            CheckpointError::Invalid { path, reason }
        }
    })
}

/// A loaded checkpoint: tensors by name (on `device`) and the metadata.
pub struct Loaded {
    pub tensors: HashMap<String, Tensor>,
    pub metadata: HashMap<String, String>,
}

/// Only the string metadata of a checkpoint. The file is mapped, not read: parsing the header
/// touches its first pages, not the weights.
pub fn metadata(path: &Path) -> Result<HashMap<String, String>, CheckpointError> {
    let io = |source| CheckpointError::Io { path: path.into(), source };
    let file = std::fs::File::open(path).map_err(io)?;
    // SAFETY: checkpoints are replaced by rename, never modified in place.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
    string_metadata(&map, path)
}

/// The `__metadata__` strings of a safetensors buffer (the training state lives there).
fn string_metadata(bytes: &[u8], path: &Path) -> Result<HashMap<String, String>, CheckpointError> {
    let (_, meta) = SafeTensors::read_metadata(bytes)
        .map_err(|e| CheckpointError::Invalid { path: path.into(), reason: e.to_string() })?;
    Ok(meta.metadata().clone().unwrap_or_default())
}

pub fn load(path: &Path, device: Device) -> Result<Loaded, CheckpointError> {
    let invalid = |reason: String| CheckpointError::Invalid { path: path.into(), reason };
    let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io { path: path.into(), source })?;
    let metadata = string_metadata(&bytes, path)?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| invalid(e.to_string()))?;
    let mut tensors = HashMap::new();
    for (name, view) in st.tensors() {
        let kind = match view.dtype() {
            Dtype::F32 => Kind::Float,
            Dtype::I64 => Kind::Int64,
            Dtype::U8 => Kind::Uint8,
            other => return Err(invalid(format!("{name}: unsupported dtype {other:?}"))),
        };
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        let t = Tensor::f_from_data_size(view.data(), &shape, kind).map_err(|e| invalid(e.to_string()))?;
        tensors.insert(name, t.to_device(device));
    }
    Ok(Loaded { tensors, metadata })
}

/// Copies `loaded` tensors named `prefix + var name` into the variables of `vs` (no grad).
pub fn restore_vars(
    vs: &tch::nn::VarStore,
    tensors: &HashMap<String, Tensor>,
    prefix: &str,
    path: &Path,
) -> Result<(), CheckpointError> {
    let mut vars = vs.variables();
    let mut names: Vec<String> = vars.keys().cloned().collect();
    names.sort();
    tch::no_grad(|| {
        for name in names {
            let key = format!("{prefix}{name}");
            let src = tensors.get(&key).ok_or_else(|| CheckpointError::Invalid {
                path: path.into(),
                reason: format!("missing tensor {key} (was the model configured differently?)"),
            })?;
            let dst = vars.get_mut(&name).expect("name from the same map");
            if dst.size() != src.size() {
                return Err(CheckpointError::Invalid {
                    path: path.into(),
                    reason: format!("{key} has shape {:?}, the model expects {:?}", src.size(), dst.size()),
                });
            }
            dst.copy_(src);
        }
        Ok(())
    })
}

/// Checkpoint averaging (Vaswani et al. 2017 average the last checkpoints): the element-wise mean
/// of the tensors of `inputs`, written to `out`. All inputs must hold the same names and shapes.
pub fn average(inputs: &[PathBuf], out: &Path) -> Result<(), CheckpointError> {
    let Some(first) = inputs.first() else {
        return Err(CheckpointError::Invalid {
            path: out.into(),
            reason: "no checkpoints to average".into(),
        });
    };
    let mut sum = load(first, Device::Cpu)?.tensors;
    for path in &inputs[1..] {
        let next = load(path, Device::Cpu)?.tensors;
        if next.len() != sum.len() {
            return Err(CheckpointError::Invalid {
                path: path.clone(),
                reason: format!("has {} tensors, {} has {}", next.len(), first.display(), sum.len()),
            });
        }
        for (name, acc) in sum.iter_mut() {
            let t = next.get(name).filter(|t| t.size() == acc.size()).ok_or_else(|| {
                CheckpointError::Invalid {
                    path: path.clone(),
                    reason: format!("{name} is missing or has another shape than in {}", first.display()),
                }
            })?;
            *acc = &*acc + t;
        }
    }
    let n = inputs.len() as f64;
    let mut tensors: Vec<(String, Tensor)> = sum.into_iter().map(|(k, v)| (k, v / n)).collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let meta = HashMap::from([("averaged_from".to_string(), inputs.len().to_string())]);
    save(out, &tensors, meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_round_trip_and_average() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, avg) = (
            dir.path().join("a.safetensors"),
            dir.path().join("b.safetensors"),
            dir.path().join("avg.safetensors"),
        );
        let meta = HashMap::from([("k".to_string(), "v".to_string())]);
        save(&a, &[("w".into(), Tensor::from_slice(&[1.0f32, 2.0]))], meta.clone()).unwrap();
        save(&b, &[("w".into(), Tensor::from_slice(&[3.0f32, 6.0]))], meta).unwrap();
        let loaded = load(&a, Device::Cpu).unwrap();
        assert_eq!(loaded.metadata["k"], "v");
        assert_eq!(metadata(&a).unwrap(), loaded.metadata);
        average(&[a, b.clone()], &avg).unwrap();
        let w: Vec<f32> = Vec::try_from(&load(&avg, Device::Cpu).unwrap().tensors["w"]).unwrap();
        assert_eq!(w, [2.0, 4.0]);
        std::fs::write(&b, b"garbage").unwrap();
        let err = load(&b, Device::Cpu).err().unwrap().to_string();
        assert!(err.contains("b.safetensors") && err.contains("not a valid checkpoint"), "{err}");
        let err = metadata(&b).err().unwrap().to_string();
        assert!(err.contains("b.safetensors") && err.contains("not a valid checkpoint"), "{err}");
    }
}
