//! Paired bootstrap resampling (Koehn 2004, "Statistical Significance Tests for Machine
//! Translation Evaluation") of a BLEU difference: how far could the difference between two
//! systems move if the test set were another draw of sentences like these?
//!
//! Both systems are scored on the same resampled sentences (paired), from per-sentence statistics
//! summed per resample, so a resample costs additions, not tokenization. The 95% interval is read
//! off the sorted resampled differences at the 1/40 quantiles, as sacrebleu's `estimate_ci` reads
//! its per-system interval (with 1,000 resamples: the 26th and the 975th).

use super::bleu::{compute_bleu, BleuConfig, BleuStats};
use super::bleu_scorer::{check_streams, SentenceBleu};
use super::MetricsError;
use crate::splitmix::SplitMix64;

/// sacrebleu's default number of resamples (`--paired-bs-n`).
pub const DEFAULT_RESAMPLES: usize = 1000;

/// Below 40 resamples the 1/40 quantiles are the extremes, not a 95% interval.
pub const MIN_RESAMPLES: usize = 40;

/// The seed reports and `seqkd score --against` use unless told otherwise, so that an interval is
/// reproducible. (The number is sacrebleu's default `SACREBLEU_SEED`; the resamples still differ
/// from sacrebleu's, which numpy draws.)
pub const DEFAULT_SEED: u64 = 12345;

/// BLEU(b) − BLEU(a) on the whole test set, and its 95% bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BleuDifference {
    pub delta: f64,
    pub low: f64,
    pub high: f64,
    pub resamples: usize,
}

impl BleuDifference {
    /// Whether the whole interval lies on the same side of `threshold` as the difference itself
    /// (`delta >= threshold` counts as above): the comparison is then not an accident of which
    /// sentences the test set happens to hold. (A skewed bootstrap can put the interval beside
    /// `delta`; that is not clear.)
    pub fn clear_of(&self, threshold: f64) -> bool {
        if self.delta >= threshold {
            self.low > threshold
        } else {
            self.high < threshold
        }
    }
}

/// Paired bootstrap of BLEU(`b`) − BLEU(`a`) against `refs` (one reference per sentence), with
/// `resamples` resamples drawn by splitmix64 from `seed`.
pub fn paired_bootstrap_bleu<A, B, R>(
    a: &[A],
    b: &[B],
    refs: &[R],
    config: &BleuConfig,
    resamples: usize,
    seed: u64,
) -> Result<BleuDifference, MetricsError>
where
    A: AsRef<str>,
    B: AsRef<str>,
    R: AsRef<str>,
{
    config.validate()?;
    check_streams(a.len(), std::iter::once(refs.len()))?;
    check_streams(b.len(), std::iter::once(refs.len()))?;
    if resamples < MIN_RESAMPLES {
        return Err(MetricsError::InvalidConfig(format!(
            "a 95% bootstrap interval needs at least {MIN_RESAMPLES} resamples, not {resamples}"
        )));
    }
    let mut scorer = SentenceBleu::new(*config)?;
    let stats_a = sentence_stats(&mut scorer, a, refs);
    let stats_b = sentence_stats(&mut scorer, b, refs);
    let all: Vec<usize> = (0..refs.len()).collect();
    let delta = difference(&stats_a, &stats_b, &all, config);
    let mut diffs = resampled_differences(&stats_a, &stats_b, config, resamples, seed);
    diffs.sort_by(f64::total_cmp);
    let lower = resamples / 40;
    Ok(BleuDifference { delta, low: diffs[lower], high: diffs[resamples - lower - 1], resamples })
}

/// Each sentence's BLEU statistics.
fn sentence_stats<H: AsRef<str>, R: AsRef<str>>(
    scorer: &mut SentenceBleu,
    hyps: &[H],
    refs: &[R],
) -> Vec<BleuStats> {
    hyps.iter().zip(refs).map(|(h, r)| scorer.stats(h.as_ref(), r.as_ref())).collect()
}

/// BLEU(b) − BLEU(a) on the sentences `picked` (repeats count again).
fn difference(stats_a: &[BleuStats], stats_b: &[BleuStats], picked: &[usize], config: &BleuConfig) -> f64 {
    let corpus = |stats: &[BleuStats]| {
        let mut sum = BleuStats::default();
        for &i in picked {
            sum += &stats[i];
        }
        compute_bleu(&sum, config).0
    };
    corpus(stats_b) - corpus(stats_a)
}

/// The differences of `resamples` resamples, in the order they were drawn.
fn resampled_differences(
    stats_a: &[BleuStats],
    stats_b: &[BleuStats],
    config: &BleuConfig,
    resamples: usize,
    seed: u64,
) -> Vec<f64> {
    let n = stats_a.len();
    let mut rng = SplitMix64(seed);
    let mut picked = vec![0; n];
    (0..resamples)
        .map(|_| {
            picked.iter_mut().for_each(|i| *i = rng.below(n));
            difference(stats_a, stats_b, &picked, config)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::corpus_bleu;

    const REFS: [&str; 6] = [
        "A man is riding a bike down the street.",
        "Two dogs play in the snow.",
        "A woman sings on a stage.",
        "Children are sitting on a bench.",
        "The boy jumps into the lake.",
        "A chef cooks in a busy kitchen.",
    ];
    const WEAK: [&str; 6] = [
        "A man rides a bicycle on the road.",
        "Two dogs are playing in snow.",
        "A lady is singing.",
        "Kids sit on a bench.",
        "A boy jumps in the water.",
        "A cook works in a kitchen.",
    ];

    #[test]
    fn the_difference_is_the_corpus_bleu_difference() {
        let d = paired_bootstrap_bleu(&WEAK, &REFS, &REFS, &BleuConfig::default(), 200, 7).unwrap();
        let corpus = |h: &[&str]| corpus_bleu(h, &REFS, &BleuConfig::default()).unwrap().score;
        assert_eq!(d.delta, corpus(&REFS) - corpus(&WEAK));
        assert!(d.low <= d.high);
        assert_eq!(d.resamples, 200);
    }

    #[test]
    fn each_resample_scores_the_resampled_corpus() {
        // Summing per-sentence statistics must give what scoring the resampled texts gives.
        let cfg = BleuConfig::default();
        let mut scorer = SentenceBleu::new(cfg).unwrap();
        let mut stats = |h: &[&str]| h.iter().zip(REFS).map(|(h, r)| scorer.stats(h, r)).collect::<Vec<_>>();
        let (sa, sb) = (stats(&WEAK), stats(&REFS));
        let diffs = resampled_differences(&sa, &sb, &cfg, 5, 11);
        let mut rng = SplitMix64(11);
        for d in diffs {
            let picked: Vec<usize> = (0..REFS.len()).map(|_| rng.below(REFS.len())).collect();
            let pick = |h: &[&str]| picked.iter().map(|&i| h[i].to_string()).collect::<Vec<_>>();
            let refs = pick(&REFS);
            let score = |h: &[&str]| corpus_bleu(&pick(h), &refs, &cfg).unwrap().score;
            assert_eq!(d, score(&REFS) - score(&WEAK));
        }
    }

    #[test]
    fn identical_systems_differ_by_exactly_zero() {
        let d = paired_bootstrap_bleu(&WEAK, &WEAK, &REFS, &BleuConfig::default(), 100, 1).unwrap();
        assert_eq!((d.delta, d.low, d.high), (0.0, 0.0, 0.0));
        assert!(!d.clear_of(0.0));
    }

    #[test]
    fn a_system_better_on_every_sentence_is_clear_of_zero() {
        let d = paired_bootstrap_bleu(&WEAK, &REFS, &REFS, &BleuConfig::default(), 1000, 3).unwrap();
        assert!(d.low > 0.0, "{d:?}");
        assert!(d.clear_of(0.0) && !d.clear_of(d.delta));
        // Swapping the systems mirrors the interval.
        let back = paired_bootstrap_bleu(&REFS, &WEAK, &REFS, &BleuConfig::default(), 1000, 3).unwrap();
        assert_eq!((back.delta, back.low, back.high), (-d.delta, -d.high, -d.low));
    }

    #[test]
    fn an_interval_beside_the_difference_is_not_clear() {
        let skewed = BleuDifference { delta: 0.5, low: -0.2, high: 0.4, resamples: 1000 };
        assert!(!skewed.clear_of(0.45), "delta above the threshold, interval below it");
        assert!(!skewed.clear_of(0.0));
        let below = BleuDifference { delta: -0.5, low: -0.9, high: -0.1, resamples: 1000 };
        assert!(below.clear_of(0.0) && !below.clear_of(-0.3));
    }

    #[test]
    fn bad_input_is_an_error() {
        let cfg = BleuConfig::default();
        assert_eq!(
            paired_bootstrap_bleu(&WEAK[..5], &REFS, &REFS, &cfg, 10, 1),
            Err(MetricsError::LengthMismatch { hyps: 5, refs: 6 })
        );
        for too_few in [0, MIN_RESAMPLES - 1] {
            let err = paired_bootstrap_bleu(&WEAK, &REFS, &REFS, &cfg, too_few, 1).unwrap_err();
            assert!(err.to_string().contains("at least 40 resamples"), "{err}");
        }
        assert!(paired_bootstrap_bleu(&WEAK, &REFS, &REFS, &cfg, MIN_RESAMPLES, 1).is_ok());
        let none: [&str; 0] = [];
        assert_eq!(paired_bootstrap_bleu(&none, &none, &none, &cfg, 10, 1), Err(MetricsError::EmptyCorpus));
    }
}
