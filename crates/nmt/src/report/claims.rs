//! The paper's claims that a run can test (Kim & Rush 2016, §5 and Tables 1–2), each decided on
//! this run's numbers, with the paired bootstrap interval of the BLEU comparisons.

use seqkd_text::metrics::bootstrap::{DEFAULT_RESAMPLES, DEFAULT_SEED};
use seqkd_text::metrics::{paired_bootstrap_bleu, BleuConfig, BleuDifference};
use serde::Serialize;

use crate::evaluate::Evaluation;
use crate::table1::{Row, TEACHER};

/// The claims, in the order [`claims`] lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClaimKind {
    /// Seq-KD greedy ≥ baseline beam.
    GreedyBeatsBaselineBeam,
    /// Seq-KD's beam − greedy ≤ 0.3 BLEU.
    NoBeamNeeded,
    /// The best student within 1 BLEU of the teacher (beam).
    NearTeacher,
    /// Seq-KD greedy ≥ 10× as fast as the teacher's beam search.
    TenTimesFaster,
    /// Seq-KD's p(t=ŷ) ≥ 2× the baseline's.
    ModeMass,
}

impl ClaimKind {
    /// The claim as the report's table states it.
    pub fn text(self) -> &'static str {
        match self {
            ClaimKind::GreedyBeatsBaselineBeam => {
                "Seq-KD student with greedy search ≥ baseline student with beam search"
            }
            ClaimKind::NoBeamNeeded => "Seq-KD student barely needs beam search (beam − greedy ≤ 0.3 BLEU)",
            ClaimKind::NearTeacher => "the best student is within 1.0 BLEU of the teacher (beam)",
            ClaimKind::TenTimesFaster => {
                "Seq-KD student with greedy search is ≥ 10× faster than the teacher with beam search"
            }
            ClaimKind::ModeMass => {
                "Seq-KD puts much more probability on its beam output than the baseline (p(t=ŷ) ≥ 2×)"
            }
        }
    }
}

/// One of the paper's findings, checked against this run's numbers.
#[derive(Debug, Clone, Serialize)]
pub struct Claim {
    /// Which claim, for the summary (and for readers of `report.json`).
    pub kind: ClaimKind,
    pub claim: String,
    /// None when a model it needs was not run.
    pub held: Option<bool>,
    pub evidence: String,
    /// For the BLEU comparisons: the 95% paired bootstrap interval of the compared difference
    /// (None without the models' test outputs).
    pub interval: Option<[f64; 2]>,
    /// Whether that interval lies on one side of the claim's threshold: if not, this test set
    /// cannot tell whether the claim holds.
    pub clear_of_noise: Option<bool>,
}

/// The paired bootstrap of BLEU(`b`) − BLEU(`a`), when both outputs and the references are there.
fn bleu_difference(a: &[String], b: &[String], refs: &[String]) -> Option<BleuDifference> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    paired_bootstrap_bleu(a, b, refs, &BleuConfig::default(), DEFAULT_RESAMPLES, DEFAULT_SEED).ok()
}

/// The claims of Kim & Rush 2016 that a run can test (§5 and Tables 1–2). `refs` are the test
/// references, for the bootstrap intervals of the BLEU claims (empty: no intervals).
pub fn claims(evals: &[Evaluation], refs: &[String]) -> Vec<Claim> {
    let get = |name: &str| evals.iter().find(|e| e.name == name);
    let (teacher, baseline, seq_kd) = (get(TEACHER), get(Row::Baseline.name()), get(Row::SeqKd.name()));
    let students = || evals.iter().filter(|e| !e.name.starts_with(TEACHER));
    let mut out = Vec::new();
    // `bleu`: for a claim on a BLEU difference, its paired bootstrap and the claim's threshold.
    let mut claim =
        |kind: ClaimKind, held: Option<bool>, evidence: String, bleu: Option<(BleuDifference, f64)>| {
            let (evidence, interval, clear_of_noise) = match bleu {
                Some((d, threshold)) => (
                    format!("{evidence}; 95% interval {:+.2} … {:+.2}", d.low, d.high),
                    Some([d.low, d.high]),
                    Some(d.clear_of(threshold)),
                ),
                None => (evidence, None, None),
            };
            out.push(Claim { kind, claim: kind.text().into(), held, evidence, interval, clear_of_noise });
        };
    let missing = || "not run".to_string();

    let kind = ClaimKind::GreedyBeatsBaselineBeam;
    match (seq_kd, baseline) {
        (Some(s), Some(b)) => claim(
            kind,
            Some(s.bleu_greedy >= b.bleu_beam),
            format!("{:.2} vs {:.2} BLEU ({:+.2})", s.bleu_greedy, b.bleu_beam, s.bleu_greedy - b.bleu_beam),
            bleu_difference(&b.beam_output, &s.greedy_output, refs).map(|d| (d, 0.0)),
        ),
        _ => claim(kind, None, missing(), None),
    }
    let kind = ClaimKind::NoBeamNeeded;
    match seq_kd {
        Some(s) => claim(
            kind,
            Some(s.bleu_beam - s.bleu_greedy <= 0.3),
            format!(
                "beam {:.2} − greedy {:.2} = {:+.2}",
                s.bleu_beam,
                s.bleu_greedy,
                s.bleu_beam - s.bleu_greedy
            ),
            bleu_difference(&s.greedy_output, &s.beam_output, refs).map(|d| (d, 0.3)),
        ),
        None => claim(kind, None, missing(), None),
    }
    let kind = ClaimKind::NearTeacher;
    let best = students().max_by(|a, b| a.bleu_beam.total_cmp(&b.bleu_beam));
    match (best, teacher) {
        (Some(s), Some(t)) => claim(
            kind,
            Some(s.bleu_beam >= t.bleu_beam - 1.0),
            format!(
                "{} {:.2} vs teacher {:.2} ({:+.2})",
                s.name,
                s.bleu_beam,
                t.bleu_beam,
                s.bleu_beam - t.bleu_beam
            ),
            bleu_difference(&t.beam_output, &s.beam_output, refs).map(|d| (d, -1.0)),
        ),
        _ => claim(kind, None, missing(), None),
    }
    let kind = ClaimKind::TenTimesFaster;
    match (seq_kd, teacher) {
        (Some(s), Some(t)) => {
            let ratio = s.words_per_s_greedy / t.words_per_s_beam.max(1e-9);
            claim(
                kind,
                Some(ratio >= 10.0),
                format!(
                    "{:.0} vs {:.0} source words/s ({ratio:.1}×)",
                    s.words_per_s_greedy, t.words_per_s_beam
                ),
                None,
            )
        }
        _ => claim(kind, None, missing(), None),
    }
    let kind = ClaimKind::ModeMass;
    match (seq_kd, baseline) {
        (Some(s), Some(b)) => {
            let ratio = s.mode_mass / b.mode_mass.max(1e-12);
            claim(
                kind,
                Some(ratio >= 2.0),
                format!("{} vs {} ({ratio:.1}×)", percent(s.mode_mass), percent(b.mode_mass)),
                None,
            )
        }
        _ => claim(kind, None, missing(), None),
    }
    out
}

/// A probability as a percentage with at least two significant digits (mode masses of weak models
/// are far below 0.1%).
pub(super) fn percent(p: f64) -> String {
    let pct = 100.0 * p;
    let magnitude = if pct > 0.0 { pct.log10().floor() as i64 } else { 0 };
    format!("{pct:.*}%", (1 - magnitude).clamp(1, 8) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_keep_two_significant_digits() {
        assert_eq!(percent(0.11533), "11.5%");
        assert_eq!(percent(0.02793), "2.8%");
        assert_eq!(percent(2.0688e-4), "0.021%");
        assert_eq!(percent(2.649e-6), "0.00026%");
        assert_eq!(percent(0.0), "0.0%");
        assert_eq!(percent(1.0), "100.0%");
    }

    fn eval(name: &str, greedy: f64, beam: f64, wps1: f64, wps5: f64, mass: f64) -> Evaluation {
        Evaluation {
            name: name.into(),
            bleu_greedy: greedy,
            bleu_beam: beam,
            words_per_s_greedy: wps1,
            words_per_s_beam: wps5,
            mode_mass: mass,
            ..Default::default()
        }
    }

    #[test]
    fn claims_are_computed_from_the_numbers() {
        let evals = vec![
            eval(TEACHER, 30.0, 31.0, 300.0, 100.0, 0.01),
            eval("baseline", 27.0, 28.0, 2000.0, 500.0, 0.02),
            eval("seq-kd", 29.0, 29.2, 1500.0, 400.0, 0.10),
        ];
        let held: Vec<Option<bool>> = claims(&evals, &[]).iter().map(|c| c.held).collect();
        // 29.0 ≥ 28.0; 0.2 ≤ 0.3; 29.2 < 31.0 − 1.0; 1500/100 = 15×; 0.10/0.02 = 5×.
        assert_eq!(held, vec![Some(true), Some(true), Some(false), Some(true), Some(true)]);
        let held: Vec<Option<bool>> = claims(&evals[..2], &[]).iter().map(|c| c.held).collect();
        assert_eq!(held, vec![None, None, Some(false), None, None]);
        assert!(claims(&evals, &[]).iter().all(|c| c.interval.is_none()), "no translations, no intervals");
    }

    #[test]
    fn bleu_claims_carry_their_bootstrap_interval() {
        let refs: Vec<String> = ["a dog runs in the park", "two men play chess", "a girl reads a book"]
            .map(String::from)
            .to_vec();
        let lines = |v: [&str; 3]| v.map(String::from).to_vec();
        let with = |name: &str, greedy: [&str; 3], beam: [&str; 3]| {
            let corpus =
                |h: &[String]| seqkd_text::metrics::corpus_bleu(h, &refs, &BleuConfig::default()).unwrap();
            let (greedy, beam) = (lines(greedy), lines(beam));
            Evaluation {
                name: name.into(),
                bleu_greedy: corpus(&greedy).score,
                bleu_beam: corpus(&beam).score,
                greedy_output: greedy,
                beam_output: beam,
                ..Default::default()
            }
        };
        let exact = ["a dog runs in the park", "two men play chess", "a girl reads a book"];
        let evals = vec![
            with(
                TEACHER,
                exact,
                ["a dog runs in the park", "two men are playing chess", "a girl reads a book"],
            ),
            with("baseline", ["a dog is running", "two men play", "a girl reads"], exact),
            // Beam search gains on one sentence only: the gap is real here but could be an
            // accident of the test set.
            with(
                "seq-kd",
                ["a dog runs in the park", "two men are playing chess", "a girl reads a book"],
                exact,
            ),
        ];
        let c = claims(&evals, &refs);
        let gap = &c[1];
        let d = paired_bootstrap_bleu(
            &evals[2].greedy_output,
            &evals[2].beam_output,
            &refs,
            &BleuConfig::default(),
            DEFAULT_RESAMPLES,
            DEFAULT_SEED,
        )
        .unwrap();
        assert_eq!(gap.interval, Some([d.low, d.high]));
        assert_eq!(gap.held, Some(false));
        assert!(d.low <= 0.3 && d.high > 0.3, "{d:?}");
        assert_eq!(gap.clear_of_noise, Some(false));
        assert!(
            gap.evidence.contains(&format!("95% interval {:+.2} … {:+.2}", d.low, d.high)),
            "{}",
            gap.evidence
        );
        // Seq-KD greedy − baseline beam: the baseline's beam output is the reference itself.
        let [low, high] = c[0].interval.unwrap();
        assert!(low < 0.0 && high <= 0.0, "{:?}", c[0]);
        assert_eq!(c[0].held, Some(false));
        // The best student (beam = the references) − the teacher, which misses one sentence.
        let [low, high] = c[2].interval.unwrap();
        assert!(low >= 0.0 && high > 0.0, "{:?}", c[2]);
        assert_eq!((c[2].held, c[2].clear_of_noise), (Some(true), Some(true)));
        assert!(c[3].interval.is_none() && c[4].interval.is_none());
    }
}
