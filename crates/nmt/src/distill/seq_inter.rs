//! Sequence-level interpolation (Kim & Rush 2016, §3.3).
//!
//! Instead of the teacher's mode, train on the hypothesis of the teacher's K-best list that is
//! closest to the gold target: ỹ = argmax_{t ∈ K-best} sim(t, y), with sim = smoothed sentence-level
//! BLEU (K = 35 in the paper). The model is then fine-tuned on (source, ỹ) from its trained weights
//! (the paper used SGD with learning rate 0.1). This interpolates between the gold data (high BLEU)
//! and what the teacher finds likely (easy for a student to learn).

use std::path::Path;

use seqkd_text::corpus::Lines;
use seqkd_text::metrics::{BleuConfig, SentenceBleu};

use super::{beam_pass, PassOptions, PassStats};
use crate::config::DecodeConfig;
use crate::error::Error;
use crate::model_dir::LoadedModel;

/// The paper's K-best size.
pub const PAPER_BEAM: usize = 35;

/// Writes, for every line of `srcs`, the teacher's K-best hypothesis with the highest smoothed
/// sentence BLEU against the line of `refs` (K = `decode.beam_size`).
pub fn seq_inter(
    teacher: &LoadedModel,
    teacher_dir: &Path,
    srcs: &(impl Lines + ?Sized),
    refs: &(impl Lines + ?Sized),
    decode: &DecodeConfig,
    out: &Path,
    opts: &PassOptions,
) -> Result<PassStats, Error> {
    if refs.count() != srcs.count() {
        return Err(Error::Invalid(format!(
            "{} source lines but {} reference lines",
            srcs.count(),
            refs.count()
        )));
    }
    let mut scorer = SentenceBleu::new(BleuConfig::sentence()).expect("sentence BLEU config is valid");
    let job = job(teacher_dir, srcs, refs, decode)?;
    beam_pass(teacher, teacher_dir, srcs, decode, decode.beam_size, out, &job, opts, |i, texts| {
        let best = closest_to_reference(&mut scorer, texts, refs.line(i));
        best.map_or_else(|| refs.line(i).to_string(), |b| texts[b].clone())
    })
}

/// The job record of a Seq-Inter pass (see [`super::finished`]).
pub fn job(
    teacher_dir: &Path,
    srcs: &(impl Lines + ?Sized),
    refs: &(impl Lines + ?Sized),
    decode: &DecodeConfig,
) -> Result<String, Error> {
    let what = format!("seq-inter; reference hash {:016x}", refs.text_hash());
    super::beam_job(&what, teacher_dir, srcs, decode)
}

/// Index of the hypothesis with the highest smoothed sentence BLEU against `reference` (sacrebleu's
/// `sentence_bleu`: exponential smoothing, effective order); ties go to the teacher's better-ranked
/// hypothesis. Empty hypotheses, and degenerate ones longer than a corpus line may be, are never
/// chosen; None when there is nothing else.
pub fn closest_to_reference(scorer: &mut SentenceBleu, nbest: &[String], reference: &str) -> Option<usize> {
    let max_chars = seqkd_text::corpus::LineLimits::default().max_chars;
    let mut scores = Vec::with_capacity(nbest.len());
    scorer.score_many(reference, nbest, &mut scores);
    let mut best: Option<(usize, f64)> = None;
    for (i, (hyp, &score)) in nbest.iter().zip(&scores).enumerate() {
        if !hyp.trim().is_empty() && hyp.len() <= max_chars && best.is_none_or(|(_, b)| score > b) {
            best = Some((i, score));
        }
    }
    best.map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scorer() -> SentenceBleu {
        SentenceBleu::new(BleuConfig::sentence()).unwrap()
    }

    #[test]
    fn seq_inter_picks_highest_sentence_bleu() {
        let reference = "a man in a blue shirt is riding a bike .";
        let nbest: Vec<String> = [
            "a man rides a bicycle .",             // the teacher's mode
            "a man in a shirt is riding a bike .", // closest to the reference
            "a man in a blue shirt rides .",
            "",
        ]
        .map(String::from)
        .to_vec();
        let mut s = scorer();
        let scores: Vec<f64> = nbest[..3].iter().map(|h| s.score(h, reference)).collect();
        let argmax = (0..3).max_by(|&a, &b| scores[a].total_cmp(&scores[b])).unwrap();
        assert_eq!(closest_to_reference(&mut s, &nbest, reference), Some(argmax));
        assert_eq!(argmax, 1);
    }

    #[test]
    fn ties_keep_the_teachers_ranking_and_empty_is_never_chosen() {
        let mut s = scorer();
        let nbest = ["x y".to_string(), "x y".to_string()];
        assert_eq!(closest_to_reference(&mut s, &nbest, "x y z"), Some(0));
        assert_eq!(closest_to_reference(&mut s, &["".to_string(), " ".to_string()], "x"), None);
    }
}
