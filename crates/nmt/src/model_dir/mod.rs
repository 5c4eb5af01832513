//! A model directory: what training writes and what decoding, distillation and pruning read.
//!
//! - `config.toml`   the resolved configuration (resume and decoding take the architecture from it)
//! - `vocab.json`    the joint subword vocabulary
//! - `model.safetensors`  weights of the best validation: what `translate` loads (compact when the
//!   model is pruned, see [`sparse`])
//! - `last.safetensors`   weights + optimiser state + training state: what `--resume` continues from
//! - `step-NNNNNNN.safetensors` the weights of the last validations, for checkpoint averaging
//! - `metrics.jsonl` one JSON record per log/validation event (written by training); `loss.svg` and
//!   `loss.png` the curves
//!
//! The directory format is shared with the libtorch-free runtime (`seqkd_runtime::format`).

pub mod sparse;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tch::{nn, Device, Tensor};

use seqkd_text::vocab::Vocab;

use crate::checkpoint::{self, CheckpointError};
use crate::config::Config;
use crate::error::Error;
use crate::model::Model;

pub use seqkd_runtime::format::{BEST_FILE, CONFIG_FILE, VOCAB_FILE};
pub const LAST_FILE: &str = "last.safetensors";
pub const METRICS_FILE: &str = "metrics.jsonl";

/// Keep-masks (true = kept) of compactly stored weights, by parameter name.
pub type KeepMasks = Vec<(String, Tensor)>;

/// A model with its variables, on a device.
pub struct LoadedModel {
    pub vs: nn::VarStore,
    pub model: Model,
    pub config: Config,
    pub vocab: Vocab,
}

impl LoadedModel {
    /// Loads `model.safetensors` (or another weights file in the directory) for decoding.
    pub fn load(dir: &Path, device: Device, weights: Option<&str>) -> Result<Self, Error> {
        let config = Config::load(&dir.join(CONFIG_FILE))?;
        let vocab = Vocab::load(&dir.join(VOCAB_FILE))?;
        let vs = nn::VarStore::new(device);
        let model = Model::new(&vs.root(), &config.model, vocab.len() as i64);
        let path = dir.join(weights.unwrap_or(BEST_FILE));
        let tensors = load_dense(&path, device)?.0;
        checkpoint::restore_vars(&vs, &tensors, "model.", &path)?;
        Ok(Self { vs, model, config, vocab })
    }

    pub fn num_params(&self) -> i64 {
        self.vs.variables().values().map(|t| t.numel() as i64).sum()
    }

    /// Parameters that are not zero (what a pruned model really has).
    pub fn num_nonzero_params(&self) -> i64 {
        self.vs.variables().values().map(|t| t.count_nonzero(None::<i64>).int64_value(&[])).sum()
    }
}

/// A checkpoint's tensors with compactly stored (pruned) weights restored to dense form, and the
/// keep-masks of those weights, by parameter name (none for a dense model).
pub fn load_dense(path: &Path, device: Device) -> Result<(HashMap<String, Tensor>, KeepMasks), Error> {
    let mut tensors = checkpoint::load(path, device)?.tensors;
    let masks = sparse::densify(&mut tensors, "model.")
        .map_err(|reason| CheckpointError::Invalid { path: path.into(), reason })?;
    Ok((tensors, masks))
}

/// The variables of `vs` as checkpoint tensors `<prefix><name>`, sorted by name.
pub fn named_vars(vs: &nn::VarStore, prefix: &str) -> Vec<(String, Tensor)> {
    let mut vars: Vec<(String, Tensor)> =
        vs.variables().into_iter().map(|(k, v)| (format!("{prefix}{k}"), v.detach())).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

/// The `step-*.safetensors` files of a model directory, oldest first.
pub fn step_checkpoints(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("step-") && n.ends_with(".safetensors"))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// The path of the weights of validation `step`, kept for checkpoint averaging.
pub fn step_checkpoint(dir: &Path, step: i64) -> PathBuf {
    dir.join(format!("step-{step:07}.safetensors"))
}
