//! Sequence-level knowledge distillation (Kim & Rush 2016, §3.2).
//!
//! The student should match the teacher's distribution over whole sequences,
//! L_SEQ-KD = −Σ_t q(t|s) log p(t|s), which is approximated by its mode: the teacher's beam-search
//! output ŷ ≈ argmax_t q(t|s), giving L ≈ −log p(t = ŷ | s). In practice: translate the training
//! source with the teacher (beam K = 5) and train the student with plain cross-entropy on
//! (source, ŷ). This file writes that new target side, aligned line by line with the source.

use std::path::Path;

use seqkd_text::corpus::Lines;

use super::{beam_pass, PassOptions, PassStats};
use crate::config::DecodeConfig;
use crate::error::Error;
use crate::model_dir::LoadedModel;

/// The paper's beam size for the teacher pass.
pub const PAPER_BEAM: usize = 5;

/// Writes the teacher's translation of every line of `srcs` to `out` (or to this shard's part).
///
/// The teacher's best hypothesis is taken; if it is empty (a model that stops at once), the best
/// non-empty one of its beam, and if every hypothesis is empty, the reference when `refs` is given —
/// an empty line would break the aligned corpus. Returns the pass statistics.
pub fn seq_kd(
    teacher: &LoadedModel,
    teacher_dir: &Path,
    srcs: &(impl Lines + ?Sized),
    refs: Option<&dyn Lines>,
    decode: &DecodeConfig,
    out: &Path,
    opts: &PassOptions,
) -> Result<PassStats, Error> {
    if let Some(refs) = refs {
        if refs.count() != srcs.count() {
            return Err(Error::Invalid(format!(
                "{} source lines but {} reference lines",
                srcs.count(),
                refs.count()
            )));
        }
    }
    let job = job(teacher_dir, srcs, refs.is_some(), decode)?;
    beam_pass(teacher, teacher_dir, srcs, decode, decode.beam_size, out, &job, opts, |i, texts| {
        choose_teacher_best(texts, refs.map(|r| r.line(i)))
    })
}

/// The job record of a Seq-KD pass (see [`super::finished`]); `with_refs`: references stand in for
/// empty translations.
pub fn job(
    teacher_dir: &Path,
    srcs: &(impl Lines + ?Sized),
    with_refs: bool,
    decode: &DecodeConfig,
) -> Result<String, Error> {
    super::beam_job(&format!("seq-kd; references={with_refs}"), teacher_dir, srcs, decode)
}

/// The teacher's best hypothesis (its n-best list comes best first), skipping empty ones and
/// degenerate ones longer than a corpus line may be.
pub fn choose_teacher_best(nbest: &[String], reference: Option<&str>) -> String {
    let max_chars = seqkd_text::corpus::LineLimits::default().max_chars;
    nbest
        .iter()
        .find(|t| !t.trim().is_empty() && t.len() <= max_chars)
        .cloned()
        .or_else(|| reference.map(str::to_string))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_teachers_best_non_empty_hypothesis_is_kept() {
        let nbest = ["".to_string(), "ein Hund".to_string(), "ein Haus".to_string()];
        assert_eq!(choose_teacher_best(&nbest[1..], None), "ein Hund");
        assert_eq!(choose_teacher_best(&nbest, None), "ein Hund");
        assert_eq!(choose_teacher_best(&nbest[..1], Some("ref")), "ref");
    }
}
