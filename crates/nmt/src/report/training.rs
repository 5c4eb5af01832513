//! What the run directory holds of each model's training, as the report uses it: its updates and
//! time, its validation curve, the size of its weights, and where a fine-tuned model started.

/// A model's training in this run (all empty for a model the run did not train).
#[derive(Debug, Clone, Default)]
pub struct Training {
    /// Updates and training seconds of the finished stage.
    pub finished: Option<(i64, f64)>,
    /// Validation greedy BLEU against updates.
    pub valid_bleu: Vec<(f64, f64)>,
    /// Size of its kept weights on disk.
    pub weight_bytes: u64,
    /// Where it started, for a model fine-tuned (or pruned and retrained) from another; None
    /// for one trained from scratch.
    pub start: Option<Start>,
}

/// The weights a fine-tuned model started from.
#[derive(Debug, Clone, Default)]
pub struct Start {
    /// Their validation BLEU, where it is known (the parent's kept update; none after pruning).
    pub bleu: Option<f64>,
}
