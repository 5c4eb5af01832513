//! Label-smoothed cross-entropy (Szegedy et al. 2016): the target distribution puts 1 − ε on the
//! gold token and spreads ε uniformly over the vocabulary; padding positions are ignored.
//!
//! L_ε = (1 − ε)·(−log p(y)) + ε·mean_k(−log p(k)), summed over the non-pad target positions.
//!
//! Two forms of the one definition: from logits, fused in libtorch's `cross_entropy` (what plain
//! training and the PyTorch reference run), and from log-probabilities a caller already has
//! (Word-KD needs them for its teacher term too). A test checks they agree.

use tch::{Kind, Reduction, Tensor};

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

/// [`label_smoothed_nll`] from log-probabilities `logp` `[batch, len, vocab]`.
pub fn label_smoothed_nll_of_logp(logp: &Tensor, labels: &Tensor, smoothing: f64) -> Tensor {
    let vocab = logp.size()[2];
    let nll = logp.view([-1, vocab]).nll_loss_nd::<Tensor>(
        &labels.view([-1]),
        None,
        Reduction::Sum,
        SPECIAL_IDS.pad as i64,
    );
    let mut loss = nll * (1.0 - smoothing);
    if smoothing > 0.0 {
        let mask = labels.ne(SPECIAL_IDS.pad as i64).to_kind(Kind::Float); // [batch, len]
        loss += (logp.mean_dim(-1, false, Kind::Float) * mask).sum(Kind::Float) * (-smoothing);
    }
    loss
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_agree_and_ignore_padding() {
        tch::manual_seed(0);
        let logits = Tensor::randn([3, 5, 11], (Kind::Float, tch::Device::Cpu));
        let labels = Tensor::from_slice(&[4i64, 5, 6, 2, 0, 7, 2, 0, 0, 0, 8, 9, 10, 3, 2]).view([3, 5]);
        for smoothing in [0.0, 0.1, 0.3] {
            let fused = label_smoothed_nll(&logits, &labels, smoothing).double_value(&[]);
            let logp = logits.log_softmax(-1, Kind::Float);
            let split = label_smoothed_nll_of_logp(&logp, &labels, smoothing).double_value(&[]);
            assert!((fused - split).abs() <= 1e-5 * fused.abs(), "ε {smoothing}: {fused} vs {split}");
            // By hand: the mean over the 10 non-pad positions of (1 − ε)·nll + ε·mean(−log p).
            let (mut want, lp) = (0.0, Vec::<Vec<Vec<f32>>>::try_from(&logp).unwrap());
            let ids = Vec::<Vec<i64>>::try_from(&labels).unwrap();
            for (b, row) in ids.iter().enumerate() {
                for (j, &y) in row.iter().enumerate().filter(|(_, &y)| y != 0) {
                    let mean = lp[b][j].iter().map(|&v| v as f64).sum::<f64>() / 11.0;
                    want += (1.0 - smoothing) * -(lp[b][j][y as usize] as f64) - smoothing * mean;
                }
            }
            assert!((fused - want).abs() <= 1e-4 * want.abs(), "ε {smoothing}: {fused} vs {want}");
        }
    }
}
