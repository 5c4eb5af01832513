//! `seqkd quantize`: a model directory with int8 weight matrices (per-output-channel scales), a
//! quarter of the f32 size. Biases, layer norms and anything not a matrix stay f32. Pruned models
//! are stored dense in int8 (their zeros quantize to exact zeros).

use std::collections::HashMap;
use std::path::Path;

use safetensors::Dtype;

use crate::format::{
    load_weights, write_safetensors, FormatError, Param, RawTensor, BEST_FILE, CONFIG_FILE, INT8_SUFFIX,
    PARAM_PREFIX, SCALE_SUFFIX, VOCAB_FILE,
};
use crate::int8::QuantizedMatrix;

/// What [`quantize_model_dir`] wrote.
#[derive(Debug, Clone)]
pub struct QuantizeSummary {
    pub matrices: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// Writes `out` (created if needed): `dir`'s config and vocabulary, and its weights with every
/// matrix in int8. The weights file appears atomically.
pub fn quantize_model_dir(dir: &Path, out: &Path) -> Result<QuantizeSummary, FormatError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| FormatError::Io { path, source }
    };
    let src = dir.join(BEST_FILE);
    // Copying a file onto itself truncates it: never write into the model being read.
    if let (Ok(a), Ok(b)) = (dir.canonicalize(), out.canonicalize()) {
        if a == b {
            return Err(FormatError::Invalid {
                path: out.into(),
                reason: "the output directory is the model directory itself; choose another --out".into(),
            });
        }
    }
    let params = load_weights(&src)?;
    std::fs::create_dir_all(out).map_err(io(out))?;
    for file in [CONFIG_FILE, VOCAB_FILE] {
        std::fs::copy(dir.join(file), out.join(file)).map_err(io(&dir.join(file)))?;
    }
    let mut buffers: Vec<RawTensor> = Vec::new();
    let mut matrices = 0;
    let mut names: Vec<&String> = params.keys().collect();
    names.sort();
    for name in names {
        let key = format!("{PARAM_PREFIX}{name}");
        match &params[name] {
            Param::F32(t) if t.shape.len() == 2 => {
                let q = QuantizedMatrix::new(&t.data, t.shape[0], t.shape[1]);
                buffers.push((
                    format!("{key}{INT8_SUFFIX}"),
                    Dtype::I8,
                    t.shape.clone(),
                    q.q.iter().map(|&v| v as u8).collect(),
                ));
                buffers.push((
                    format!("{key}{SCALE_SUFFIX}"),
                    Dtype::F32,
                    vec![t.shape[0]],
                    f32_bytes(&q.scales),
                ));
                matrices += 1;
            }
            Param::F32(t) => buffers.push((key, Dtype::F32, t.shape.clone(), f32_bytes(&t.data))),
            Param::Int8 { rows, cols, q, scales } => {
                buffers.push((
                    format!("{key}{INT8_SUFFIX}"),
                    Dtype::I8,
                    vec![*rows, *cols],
                    q.iter().map(|&v| v as u8).collect(),
                ));
                buffers.push((format!("{key}{SCALE_SUFFIX}"), Dtype::F32, vec![*rows], f32_bytes(scales)));
                matrices += 1;
            }
        }
    }
    let dst = out.join(BEST_FILE);
    let meta = HashMap::from([("seqkd.quantized".to_string(), "int8 per-output-channel".to_string())]);
    write_safetensors(&dst, &buffers, meta)?;
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    Ok(QuantizeSummary { matrices, bytes_before: size(&src), bytes_after: size(&dst) })
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}
