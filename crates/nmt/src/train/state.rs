//! The counters of a training run, saved in every resumable checkpoint: with the seed and the
//! config they determine the rest of the run.

use serde::{Deserialize, Serialize};

/// Counters that, with the seed, determine the rest of a run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TrainState {
    /// Updates done.
    pub step: i64,
    pub epoch: u64,
    /// Batches of `epoch` already done.
    pub batch_in_epoch: usize,
    /// Validation perplexity of the kept model (the best so far when selecting by perplexity).
    pub best_valid_ppl: Option<f64>,
    /// Validation greedy BLEU of the kept model.
    #[serde(default)]
    pub best_valid_bleu: Option<f64>,
    /// Validations since the best one.
    pub bad_validations: i64,
    /// The plateau schedule's current learning rate after warmup (halved on plateaus).
    #[serde(alias = "sgd_lr")]
    pub plateau_lr: f64,
    pub finished: bool,
    /// Wall-clock seconds of training over all runs (a resumed run's time budget continues from it).
    #[serde(default)]
    pub train_seconds: f64,
}
