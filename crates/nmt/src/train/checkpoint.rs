//! Checkpoints as single safetensors files, written atomically (temp file + rename).
//!
//! One file holds named tensors plus string metadata (the training state as JSON), so a checkpoint
//! is either entirely the old one or entirely the new one: a run killed at any instant resumes
//! from a consistent state.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, TensorView};
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
pub fn save(path: &Path, tensors: &[(String, Tensor)], metadata: HashMap<String, String>) -> Result<(), CheckpointError> {
    let invalid = |reason: String| CheckpointError::Invalid { path: path.into(), reason };
    let mut buffers = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let t = t.to_device(Device::Cpu).contiguous();
        let (dtype, width) = dtype_of(t.kind()).ok_or_else(|| invalid(format!("{name}: unsupported kind {:?}", t.kind())))?;
        let numel = t.numel();
        let mut bytes = vec![0u8; numel * width];
        t.copy_data_u8(&mut bytes, numel);
        let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
        buffers.push((name.clone(), dtype, shape, bytes));
    }
    let views = buffers
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            TensorView::new(*dtype, shape.clone(), bytes).map(|v| (name.clone(), v)).map_err(|e| invalid(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let bytes = safetensors::serialize(views, Some(metadata)).map_err(|e| invalid(e.to_string()))?;
    seqkd_text::atomic_write(path, &bytes).map_err(|source| CheckpointError::Io { path: path.into(), source })
}

/// A loaded checkpoint: tensors by name (on `device`) and the metadata.
pub struct Loaded {
    pub tensors: HashMap<String, Tensor>,
    pub metadata: HashMap<String, String>,
}

pub fn load(path: &Path, device: Device) -> Result<Loaded, CheckpointError> {
    let invalid = |reason: String| CheckpointError::Invalid { path: path.into(), reason };
    let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io { path: path.into(), source })?;
    let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| invalid(e.to_string()))?;
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
    Ok(Loaded { tensors, metadata: meta.metadata().clone().unwrap_or_default() })
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
