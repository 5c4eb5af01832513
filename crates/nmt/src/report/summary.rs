//! "What this run shows": the report's opening paragraph, in plain words for a reader who does not
//! know the paper, written from this run's evaluations and from how each claim came out. It says
//! so when a claim failed, and when a difference is within the noise of the test set.

use std::fmt::Write as _;

use super::claims::{Claim, ClaimKind};
use crate::evaluate::Evaluation;
use crate::table1::{label, Row, TEACHER};

/// How a claim came out in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Held; for a BLEU claim, with its bootstrap interval on the claim's side of the threshold.
    Held,
    /// Held on this test set, but its interval straddles the threshold.
    HeldWithinNoise,
    Failed,
    FailedWithinNoise,
    /// A model it needs was not run.
    NotTested,
}

fn verdict(c: &Claim) -> Verdict {
    let noise = c.clear_of_noise == Some(false);
    match (c.held, noise) {
        (Some(true), false) => Verdict::Held,
        (Some(true), true) => Verdict::HeldWithinNoise,
        (Some(false), false) => Verdict::Failed,
        (Some(false), true) => Verdict::FailedWithinNoise,
        (None, _) => Verdict::NotTested,
    }
}

/// The claim in a few words, for the tally.
fn short(kind: ClaimKind) -> &'static str {
    match kind {
        ClaimKind::GreedyBeatsBaselineBeam => {
            "Seq-KD with greedy search at least as good as the baseline with beam search"
        }
        ClaimKind::NoBeamNeeded => "Seq-KD barely needing beam search",
        ClaimKind::NearTeacher => "the best student within 1 BLEU of the teacher",
        ClaimKind::TenTimesFaster => "10× the teacher's speed",
        ClaimKind::ModeMass => "Seq-KD twice as sure of its own translations",
    }
}

/// `held` or `failed` (what the numbers say in each case), with whether the paper found the same
/// and, within noise, that this test set cannot be sure.
fn outcome(v: Verdict, held: &str, failed: &str) -> String {
    const UNSURE: &str = "but this test set is too small to be sure";
    match v {
        Verdict::Held => format!("{held}, as the paper found"),
        Verdict::HeldWithinNoise => format!("{held}, as in the paper, {UNSURE}"),
        Verdict::Failed => format!("{failed}, unlike in the paper"),
        Verdict::FailedWithinNoise => format!("{failed}, unlike in the paper, {UNSURE}"),
        Verdict::NotTested => String::new(),
    }
}

/// Joins phrases as a sentence lists them: "a", "a and b", "a, b and c".
fn list(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => one.to_string(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// The paragraph, from `evals` (teacher first) and their `claims` (see [`super::claims`]).
pub(super) fn what_this_run_shows(evals: &[Evaluation], claims: &[Claim]) -> String {
    let get = |name: &str| evals.iter().find(|e| e.name == name);
    let (teacher, baseline, seq_kd) = (get(TEACHER), get(Row::Baseline.name()), get(Row::SeqKd.name()));
    let claim = |kind: ClaimKind| claims.iter().find(|c| c.kind == kind).map_or(Verdict::NotTested, verdict);
    let students = evals.iter().filter(|e| !e.name.starts_with(TEACHER)).count();
    let k = evals.first().map_or(5, |e| e.beam_size);
    let mut p = String::new();
    match (teacher, baseline) {
        (Some(t), Some(b)) => {
            let fewer = t.params as f64 / b.params.max(1) as f64;
            let models = if students == 1 { "model" } else { "models" };
            let (teacher, students) = if fewer >= 1.5 {
                (
                    format!("a large *teacher* translation model ({:.2}M parameters)", t.params as f64 / 1e6),
                    format!(
                        "{students} small *student* {models} ({:.2}M parameters, {fewer:.1}× fewer)",
                        b.params as f64 / 1e6
                    ),
                )
            } else {
                (
                    format!("a *teacher* translation model ({:.2}M parameters)", t.params as f64 / 1e6),
                    format!(
                        "{students} *student* {models} about as large ({:.2}M parameters)",
                        b.params as f64 / 1e6
                    ),
                )
            };
            let _ = write!(
                p,
                "This run trained {teacher}, then {students} in different ways, and scored every model's \
                 translations of {} test sentences against human translations with BLEU (0 to 100, higher \
                 is better).",
                t.sentences
            );
        }
        _ => {
            let _ =
                write!(p, "This run scored {} model(s) with BLEU (0 to 100, higher is better).", evals.len());
        }
    }
    if let (Some(s), Some(b)) = (seq_kd, baseline) {
        let _ = write!(
            p,
            " The paper's method, sequence-level knowledge distillation (Seq-KD), trains a student on the \
             teacher's own translations instead of the human ones. With greedy search (the fast way: the \
             likeliest word at each step) the Seq-KD student scored {:.1} BLEU; the student trained on the \
             human translations scored {:.1} with greedy search and {:.1} with beam search (which keeps \
             the {k} best partial translations: slower, usually better). {}.",
            s.bleu_greedy,
            b.bleu_greedy,
            b.bleu_beam,
            outcome(
                claim(ClaimKind::GreedyBeatsBaselineBeam),
                "So with distillation the small model's fast greedy search was as good as the other \
                 student's beam search",
                "So here distillation did not make up for beam search",
            )
        );
        let _ = write!(
            p,
            " Beam search changed the Seq-KD student's score by {:+.1} BLEU and the baseline's by {:+.1}: {}.",
            s.bleu_beam - s.bleu_greedy,
            b.bleu_beam - b.bleu_greedy,
            outcome(
                claim(ClaimKind::NoBeamNeeded),
                "the distilled student barely needs it",
                "the distilled student still gains from it more than the paper's 0.3 BLEU",
            )
        );
    }
    if let (Some(s), Some(t)) = (seq_kd, teacher) {
        let ratio = s.words_per_s_greedy / t.words_per_s_beam.max(1e-9);
        let _ = write!(
            p,
            " With greedy search the Seq-KD student translated {ratio:.1}× as many words per second as the \
             teacher with beam search ({}).",
            outcome(claim(ClaimKind::TenTimesFaster), "10× or more", "short of 10×")
        );
        if let (Some(s8), Some(t8)) = (s.native_int8, t.native_int8) {
            let _ = write!(
                p,
                " On the native int8 engine, which is what one would deploy, that ratio is {:.1}×.",
                s8.words_per_s_greedy / t8.words_per_s_beam.max(1e-9)
            );
        }
    }
    let best = evals
        .iter()
        .filter(|e| !e.name.starts_with(TEACHER))
        .max_by(|a, b| a.bleu_beam.total_cmp(&b.bleu_beam));
    if let (Some(s), Some(t)) = (best, teacher) {
        let _ = write!(
            p,
            " The best student ({}) scored {:.1} BLEU with beam search against the teacher's {:.1}: {}.",
            label(&s.name),
            s.bleu_beam,
            t.bleu_beam,
            outcome(claim(ClaimKind::NearTeacher), "within 1 BLEU of it", "more than 1 BLEU below it")
        );
    }
    tally(&mut p, claims);
    p
}

/// The last sentences: how many claims held, which did not, and what "within noise" means.
fn tally(p: &mut String, claims: &[Claim]) {
    let with = |wanted: &[Verdict]| -> Vec<&str> {
        claims.iter().filter(|c| wanted.contains(&verdict(c))).map(|c| short(c.kind)).collect()
    };
    let held = with(&[Verdict::Held, Verdict::HeldWithinNoise]);
    let unsure = with(&[Verdict::HeldWithinNoise, Verdict::FailedWithinNoise]);
    let failed = with(&[Verdict::Failed, Verdict::FailedWithinNoise]);
    let untested = with(&[Verdict::NotTested]);
    let tested = claims.len() - untested.len();
    match tested {
        0 => p.push_str(" None of the paper's claims could be tested here."),
        1 => p.push_str(" Of the paper's claims, 1 was tested here:"),
        n => {
            let _ = write!(p, " Of the paper's claims, {n} were tested here:");
        }
    }
    match (tested, failed.as_slice()) {
        (0, _) => {}
        (_, []) => {
            let _ = write!(p, " {} held.", held.len());
        }
        (_, f) => {
            let _ = write!(p, " {} held and {} did not ({}).", held.len(), f.len(), list(f));
        }
    }
    if !untested.is_empty() {
        let _ = write!(p, " Not tested, since a model they need was not run: {}.", list(&untested));
    }
    if !unsure.is_empty() {
        let _ = write!(
            p,
            " Within the noise of the test set: {}; another test set of this size could decide {} the \
             other way.",
            list(&unsure),
            if unsure.len() == 1 { "it" } else { "them" }
        );
    }
    p.push_str(" The tables below have every number.");
}

#[cfg(test)]
mod tests {
    use super::super::claims::claims;
    use super::*;
    use crate::evaluate::DecodingSpeed;

    fn eval(name: &str, params: i64, greedy: f64, beam: f64, wps1: f64, wps5: f64, mass: f64) -> Evaluation {
        Evaluation {
            name: name.into(),
            params,
            bleu_greedy: greedy,
            bleu_beam: beam,
            words_per_s_greedy: wps1,
            words_per_s_beam: wps5,
            mode_mass: mass,
            beam_size: 5,
            sentences: 1000,
            ..Default::default()
        }
    }

    #[test]
    fn a_run_where_every_claim_held_says_so_with_its_numbers() {
        let evals = vec![
            eval(TEACHER, 4_000_000, 60.0, 61.0, 500.0, 100.0, 0.10),
            eval("baseline", 1_000_000, 55.0, 57.0, 2000.0, 500.0, 0.05),
            eval("seq-kd", 1_000_000, 60.5, 60.6, 1500.0, 400.0, 0.20),
        ];
        let text = what_this_run_shows(&evals, &claims(&evals, &[]));
        for expected in [
            "4.00M parameters",
            "2 small *student* models (1.00M parameters, 4.0× fewer)",
            "1000 test sentences",
            "the Seq-KD student scored 60.5 BLEU",
            "scored 55.0 with greedy search and 57.0 with beam search",
            "as good as the other student's beam search, as the paper found.",
            "by +0.1 BLEU and the baseline's by +2.0: the distilled student barely needs it, as the paper found",
            "15.0× as many words per second",
            "The best student (Seq-KD) scored 60.6 BLEU with beam search against the teacher's 61.0: within 1 BLEU",
            "Of the paper's claims, 5 were tested here: 5 held.",
        ] {
            assert!(text.contains(expected), "{expected:?} missing from:\n{text}");
        }
        for absent in ["did not", "unlike", "too small", "noise", "Not tested", "int8"] {
            assert!(!text.contains(absent), "{absent:?} in:\n{text}");
        }
    }

    #[test]
    fn a_run_where_claims_failed_or_are_within_noise_says_so() {
        let mut evals = vec![
            eval(TEACHER, 4_000_000, 67.2, 67.8, 19722.0, 5833.0, 0.269),
            eval("baseline", 290_000, 62.3, 63.6, 46976.0, 11704.0, 0.196),
            eval("seq-kd", 290_000, 60.8, 61.0, 42866.0, 10705.0, 0.348),
            eval("baseline+seq-inter", 290_000, 64.1, 65.0, 35469.0, 11533.0, 0.206),
        ];
        let native = |greedy, beam| {
            Some(DecodingSpeed { words_per_s_greedy: greedy, words_per_s_beam: beam, bleu: None })
        };
        (evals[0].native_int8, evals[2].native_int8) = (native(60000.0, 20000.0), native(250000.0, 60000.0));
        let mut c = claims(&evals, &[]);
        let failed = |c: &[Claim]| c.iter().filter(|c| c.held == Some(false)).count();
        assert_eq!(failed(&c), 4, "{c:?}");
        // The beam − greedy gap held, but its interval straddles the 0.3 threshold.
        c[1].clear_of_noise = Some(false);
        let text = what_this_run_shows(&evals, &c);
        for expected in [
            "the Seq-KD student scored 60.8 BLEU",
            "So here distillation did not make up for beam search, unlike in the paper.",
            "the distilled student barely needs it, as in the paper, but this test set is too small to be sure",
            "7.3× as many words per second as the teacher with beam search (short of 10×, unlike in the paper). \
             On the native int8 engine, which is what one would deploy, that ratio is 12.5×.",
            "The best student (Baseline + Seq-Inter) scored 65.0 BLEU with beam search against the teacher's \
             67.8: more than 1 BLEU below it, unlike in the paper.",
            "Of the paper's claims, 5 were tested here: 1 held and 4 did not (Seq-KD with greedy search at least as \
             good as the baseline with beam search, the best student within 1 BLEU of the teacher, 10× the \
             teacher's speed and Seq-KD twice as sure of its own translations).",
            "Within the noise of the test set: Seq-KD barely needing beam search; another test set of this \
             size could decide it the other way.",
        ] {
            assert!(text.contains(expected), "{expected:?} missing from:\n{text}");
        }
        assert!(!text.contains("as the paper found"), "{text}");
        // A failed claim within noise is reported as unsure, not as a clear failure.
        c[0].clear_of_noise = Some(false);
        let text = what_this_run_shows(&evals, &c);
        assert!(
            text.contains(
                "did not make up for beam search, unlike in the paper, but this test set is too small"
            ),
            "{text}"
        );
        assert!(text.contains("could decide them the other way"), "{text}");
    }

    #[test]
    fn claims_whose_models_were_not_run_are_named_as_untested() {
        let evals = vec![
            eval(TEACHER, 4_000_000, 60.0, 61.0, 500.0, 100.0, 0.10),
            eval("baseline", 1_000_000, 55.0, 57.0, 2000.0, 500.0, 0.05),
        ];
        let text = what_this_run_shows(&evals, &claims(&evals, &[]));
        assert!(!text.contains("Seq-KD student scored"), "{text}");
        assert!(text.contains("Of the paper's claims, 1 was tested here: 0 held and 1 did not"), "{text}");
        assert!(
            text.contains("Not tested, since a model they need was not run: Seq-KD with greedy"),
            "{text}"
        );
        let small =
            "a large *teacher* translation model (4.00M parameters), then 1 small *student* model (1.00M";
        assert!(text.contains(small), "{text}");
        // A student as large as the teacher is not called small.
        let same = [evals[0].clone(), Evaluation { params: 4_000_000, ..evals[1].clone() }];
        let text = what_this_run_shows(&same, &claims(&same, &[]));
        let large = "a *teacher* translation model (4.00M parameters), then 1 *student* model about as large";
        assert!(text.contains(large), "{text}");
    }
}
