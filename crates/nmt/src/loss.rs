//! Label-smoothed cross-entropy (Szegedy et al. 2016): the target distribution puts 1 − ε on the
//! gold token and spreads ε uniformly over the vocabulary; padding positions are ignored.

use tch::{Reduction, Tensor};

use seqkd_text::vocab::SPECIAL_IDS;

/// Summed label-smoothed NLL of `logits` `[batch, len, vocab]` against `labels` `[batch, len]`.
/// Returns a scalar; callers divide by the token count.
pub fn label_smoothed_nll(logits: &Tensor, labels: &Tensor, smoothing: f64) -> Tensor {
    let vocab = logits.size()[2];
    logits.view([-1, vocab]).cross_entropy_loss::<Tensor>(
        &labels.view([-1]),
        None,
        Reduction::Sum,
        SPECIAL_IDS.pad as i64,
        smoothing,
    )
}
