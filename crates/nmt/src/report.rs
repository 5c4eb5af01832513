//! The paper's report, computed from a pipeline run: Table 1 (BLEU K=1/K=5, Δ against the baseline
//! student, perplexity, mode mass), Table 2 (decoding speed and parameters), whether each of the
//! paper's claims held in this run, and two plots (validation curves; BLEU against speed).
//!
//! Written as `report.md`, `report.json`, `curves.svg` and `bleu-speed.svg` in the run directory.

use std::fmt::Write as _;
use std::path::Path;

use seqkd_text::metrics::bootstrap::{DEFAULT_RESAMPLES, DEFAULT_SEED};
use seqkd_text::metrics::{paired_bootstrap_bleu, BleuConfig, BleuDifference};
use serde::Serialize;

use crate::chart;
use crate::error::{io_err, Error};
use crate::evaluate::{Evaluation, TIMED_ROUNDS};
use crate::prune::PruneScheme;
use crate::table1::{label, pruned_name, Row, TEACHER};

/// What a report is made from, filled by the pipeline: the report reads no run directory.
#[derive(Debug, Clone, Default)]
pub struct Results {
    /// The test set's target file, as the report names it.
    pub test_set: std::path::PathBuf,
    /// The beam size the run asks for (the evaluations record the one they used).
    pub beam_size: usize,
    /// Every model's evaluation, teacher first.
    pub evaluations: Vec<Evaluation>,
    /// What the run directory holds of each evaluated model, in the same order.
    pub training: Vec<Training>,
    pub pruning: Option<Pruning>,
    /// The test references, for the bootstrap intervals (empty: no intervals).
    pub refs: Vec<String>,
}

/// A model's training in this run (all empty for a model the run did not train).
#[derive(Debug, Clone, Default)]
pub struct Training {
    /// Updates and training seconds of the finished stage.
    pub finished: Option<(i64, f64)>,
    /// Validation greedy BLEU against updates.
    pub valid_bleu: Vec<(f64, f64)>,
    /// Size of its kept weights on disk.
    pub weight_bytes: u64,
}

/// Table 3's settings.
#[derive(Debug, Clone)]
pub struct Pruning {
    pub from: Row,
    pub ratios: Vec<f64>,
    pub scheme: PruneScheme,
    pub iterative: bool,
}

/// One of the paper's findings, checked against this run's numbers.
#[derive(Debug, Clone, Serialize)]
pub struct Claim {
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
        |text: &str, held: Option<bool>, evidence: String, bleu: Option<(BleuDifference, f64)>| {
            let (evidence, interval, clear_of_noise) = match bleu {
                Some((d, threshold)) => (
                    format!("{evidence}; 95% interval {:+.2} … {:+.2}", d.low, d.high),
                    Some([d.low, d.high]),
                    Some(d.clear_of(threshold)),
                ),
                None => (evidence, None, None),
            };
            out.push(Claim { claim: text.into(), held, evidence, interval, clear_of_noise });
        };
    let missing = || "not run".to_string();

    let text = "Seq-KD student with greedy search ≥ baseline student with beam search";
    match (seq_kd, baseline) {
        (Some(s), Some(b)) => claim(
            text,
            Some(s.bleu_greedy >= b.bleu_beam),
            format!("{:.2} vs {:.2} BLEU ({:+.2})", s.bleu_greedy, b.bleu_beam, s.bleu_greedy - b.bleu_beam),
            bleu_difference(&b.beam_output, &s.greedy_output, refs).map(|d| (d, 0.0)),
        ),
        _ => claim(text, None, missing(), None),
    }
    let text = "Seq-KD student barely needs beam search (beam − greedy ≤ 0.3 BLEU)";
    match seq_kd {
        Some(s) => claim(
            text,
            Some(s.bleu_beam - s.bleu_greedy <= 0.3),
            format!(
                "beam {:.2} − greedy {:.2} = {:+.2}",
                s.bleu_beam,
                s.bleu_greedy,
                s.bleu_beam - s.bleu_greedy
            ),
            bleu_difference(&s.greedy_output, &s.beam_output, refs).map(|d| (d, 0.3)),
        ),
        None => claim(text, None, missing(), None),
    }
    let text = "the best student is within 1.0 BLEU of the teacher (beam)";
    let best = students().max_by(|a, b| a.bleu_beam.total_cmp(&b.bleu_beam));
    match (best, teacher) {
        (Some(s), Some(t)) => claim(
            text,
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
        _ => claim(text, None, missing(), None),
    }
    let text = "Seq-KD student with greedy search is ≥ 10× faster than the teacher with beam search";
    match (seq_kd, teacher) {
        (Some(s), Some(t)) => {
            let ratio = s.words_per_s_greedy / t.words_per_s_beam.max(1e-9);
            claim(
                text,
                Some(ratio >= 10.0),
                format!(
                    "{:.0} vs {:.0} source words/s ({ratio:.1}×)",
                    s.words_per_s_greedy, t.words_per_s_beam
                ),
                None,
            )
        }
        _ => claim(text, None, missing(), None),
    }
    let text = "Seq-KD puts much more probability on its beam output than the baseline (p(t=ŷ) ≥ 2×)";
    match (seq_kd, baseline) {
        (Some(s), Some(b)) => {
            let ratio = s.mode_mass / b.mode_mass.max(1e-12);
            claim(
                text,
                Some(ratio >= 2.0),
                format!("{} vs {} ({ratio:.1}×)", percent(s.mode_mass), percent(b.mode_mass)),
                None,
            )
        }
        _ => claim(text, None, missing(), None),
    }
    out
}

/// A probability as a percentage with at least two significant digits (mode masses of weak models
/// are far below 0.1%).
fn percent(p: f64) -> String {
    let pct = 100.0 * p;
    let magnitude = if pct > 0.0 { pct.log10().floor() as i64 } else { 0 };
    format!("{pct:.*}%", (1 - magnitude).clamp(1, 8) as usize)
}

/// Writes the report files into `out` and returns the Markdown.
pub fn write(out: &Path, results: &Results) -> Result<String, Error> {
    let evals = &results.evaluations;
    let claims = claims(evals, &results.refs);
    let md = markdown(results, &claims);
    let json = serde_json::json!({ "models": evals, "claims": claims });
    for (file, bytes) in [
        ("report.md", md.clone().into_bytes()),
        ("report.json", serde_json::to_vec_pretty(&json).expect("serializable")),
        ("curves.svg", curves(results).into_bytes()),
        ("bleu-speed.svg", bleu_speed(evals).into_bytes()),
    ] {
        let path = out.join(file);
        seqkd_text::atomic_write(&path, &bytes).map_err(io_err(&path))?;
    }
    Ok(md)
}

fn markdown(results: &Results, claims: &[Claim]) -> String {
    let evals = &results.evaluations;
    let mut md = String::new();
    let baseline = evals.iter().find(|e| e.name == Row::Baseline.name());
    let teacher = evals.iter().find(|e| e.name == TEACHER);
    // K as the evaluations were made (they may predate a config change).
    let k = evals.first().map(|e| e.beam_size).unwrap_or(results.beam_size);
    let n = evals.first().map(|e| e.sentences).unwrap_or(0);
    let _ = writeln!(md, "# Sequence-level knowledge distillation: results\n");
    let _ = writeln!(
        md,
        "Test set: {} ({n} sentences). BLEU is sacrebleu-exact (13a, detokenized); K is the beam size; \
         Δ is against the baseline student; PPL is the perplexity of the test references; p(t=ŷ) is \
         the mean probability a model gives its own K={k} output.\n",
        results.test_set.display()
    );
    let _ = writeln!(md, "## Table 1: BLEU\n");
    let _ = writeln!(
        md,
        "| Model | BLEU K=1 | Δ K=1 | BLEU K={k} | Δ K={k} | PPL | p(t=ŷ) | updates | train min |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (e, training) in evals.iter().zip(&results.training) {
        let delta = |v: f64, base: Option<f64>| match base {
            Some(b) if !e.name.starts_with(TEACHER) => format!("{:+.2}", v - b),
            _ => "".into(),
        };
        let _ = writeln!(
            md,
            "| {} | {:.2} | {} | {:.2} | {} | {:.2} | {} | {} | {} |",
            label(&e.name),
            e.bleu_greedy,
            delta(e.bleu_greedy, baseline.map(|b| b.bleu_greedy)),
            e.bleu_beam,
            delta(e.bleu_beam, baseline.map(|b| b.bleu_beam)),
            e.ppl,
            percent(e.mode_mass),
            training.finished.map(|(updates, _)| updates.to_string()).unwrap_or_default(),
            training.finished.map(|(_, seconds)| format!("{:.1}", seconds / 60.0)).unwrap_or_default(),
        );
    }
    let threads = evals.first().map(|e| e.threads).unwrap_or(0);
    let _ = writeln!(
        md,
        "\n## Table 2: decoding speed\n\nSource words per second on the test set, batched, {threads} libtorch thread(s); \
         the models were timed in turn, {TIMED_ROUNDS} rounds, and each figure is a model's fastest round.\n"
    );
    let _ = writeln!(md, "| Model | params | words/s K=1 | words/s K={k} | K=1 vs teacher K={k} |");
    let _ = writeln!(md, "|---|---:|---:|---:|---:|");
    for e in evals {
        let speedup = teacher.map(|t| e.words_per_s_greedy / t.words_per_s_beam.max(1e-9));
        let _ = writeln!(
            md,
            "| {} | {:.2}M | {:.0} | {:.0} | {} |",
            label(&e.name),
            e.params as f64 / 1e6,
            e.words_per_s_greedy,
            e.words_per_s_beam,
            speedup.map(|s| format!("{s:.1}×")).unwrap_or_default()
        );
    }
    if let Some(pr) = &results.pruning {
        table3(&mut md, results, pr, k);
    }
    let _ = writeln!(md, "\n## The paper's claims in this run\n");
    let _ = writeln!(md, "| Claim | Held | Evidence |\n|---|---|---|");
    for c in claims {
        let held = match c.held {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "—",
        };
        let noise = if c.clear_of_noise == Some(false) { " (within noise)" } else { "" };
        let _ = writeln!(md, "| {} | {held}{noise} | {} |", c.claim, c.evidence);
    }
    if claims.iter().any(|c| c.interval.is_some()) {
        let _ = writeln!(
            md,
            "\nThe BLEU claims are decided on the whole test set; each interval is the 95% paired bootstrap \
             interval of the compared difference ({DEFAULT_RESAMPLES} resamples of the test sentences, Koehn 2004). \
             \"Within noise\": the interval straddles the claim's threshold, so another test set of this size \
             could decide the claim the other way."
        );
    }
    let _ = writeln!(
        md,
        "\nPlots: `curves.svg` (validation BLEU while training), `bleu-speed.svg` (BLEU against speed). \
         Models, distilled corpora and translations are under `models/`, `distill/` and `eval/`."
    );
    md
}

/// Table 3: the pruned student at each ratio against the unpruned one and the teacher.
fn table3(md: &mut String, results: &Results, pr: &Pruning, k: usize) {
    let evals = &results.evaluations;
    let get = |name: &str| evals.iter().find(|e| e.name == name);
    let (Some(base), teacher) = (get(pr.from.name()), get(TEACHER)) else { return };
    let disk = |name: &str| {
        let at = evals.iter().position(|e| e.name == name);
        at.and_then(|i| results.training.get(i)).map_or(0, |t| t.weight_bytes)
    };
    let _ = writeln!(
        md,
        "\n## Table 3: pruning {} ({:?}{}, retrained under the mask)\n",
        label(&base.name),
        pr.scheme,
        if pr.iterative { ", iterative" } else { ", one-shot" }
    );
    let _ = writeln!(
        md,
        "| pruned | non-zero params | vs teacher | disk | BLEU K=1 | BLEU K={k} | Δ K={k} | words/s K=1 | words/s K={k} |"
    );
    let _ = writeln!(md, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let rows = std::iter::once((0.0, base))
        .chain(pr.ratios.iter().filter_map(|&r| get(&pruned_name(pr.from, r)).map(|e| (r, e))));
    for (ratio, e) in rows {
        let fewer = teacher.map(|t| format!("{:.1}× fewer", t.params as f64 / e.params.max(1) as f64));
        let _ = writeln!(
            md,
            "| {:.0}% | {:.2}M | {} | {:.2} MB | {:.2} | {:.2} | {:+.2} | {:.0} | {:.0} |",
            100.0 * ratio,
            e.params as f64 / 1e6,
            fewer.unwrap_or_default(),
            disk(&e.name) as f64 / 1e6,
            e.bleu_greedy,
            e.bleu_beam,
            e.bleu_beam - base.bleu_beam,
            e.words_per_s_greedy,
            e.words_per_s_beam
        );
    }
}

const COLOURS: [&str; 10] = [
    "#000000", "#7f7f7f", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
    "#17becf",
];

/// Validation BLEU (greedy, on the validation subset) against updates, one line per model.
fn curves(results: &Results) -> String {
    let series: Vec<(String, &[(f64, f64)])> = (results.evaluations.iter().zip(&results.training))
        .map(|(e, t)| (label(&e.name), t.valid_bleu.as_slice()))
        .collect();
    let refs: Vec<chart::Series> =
        series.iter().enumerate().map(|(i, (n, p))| (n.as_str(), *p, COLOURS[i % COLOURS.len()])).collect();
    chart::line_chart("update", "validation BLEU (greedy)", &refs)
}

/// BLEU against source words/s (log scale), K=1 as dots and K=5 as squares.
fn bleu_speed(evals: &[Evaluation]) -> String {
    let (w, h, m) = (720.0, 420.0, 60.0);
    let speeds = evals.iter().flat_map(|e| [e.words_per_s_greedy, e.words_per_s_beam]).filter(|s| *s > 0.0);
    let (lo, hi) = speeds.fold((f64::MAX, 1.0f64), |(lo, hi), s| (lo.min(s), hi.max(s)));
    let (lo, hi) = ((lo.min(hi) * 0.8).log10(), (hi * 1.25).log10());
    let y_max = evals.iter().flat_map(|e| [e.bleu_greedy, e.bleu_beam]).fold(1.0f64, f64::max) * 1.1;
    let sx = |s: f64| m + (s.max(1e-9).log10() - lo) / (hi - lo).max(1e-9) * (w - 2.0 * m);
    let sy = |b: f64| h - m - b / y_max * (h - 2.0 * m);
    let mut svg = chart::frame(w, h, m, 11);
    let _ = write!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">source words/s (log scale; ● K=1, ■ K=beam)</text><text x="12" y="{m}">BLEU {y_max:.0}</text><text x="{m}" y="{}" text-anchor="middle">{:.0}</text><text x="{}" y="{}" text-anchor="middle">{:.0}</text>"#,
        w / 2.0,
        h - 15.0,
        h - m + 15.0,
        10f64.powf(lo),
        w - m,
        h - m + 15.0,
        10f64.powf(hi)
    );
    for (i, e) in evals.iter().enumerate() {
        let c = COLOURS[i % COLOURS.len()];
        let (x1, y1, x5, y5) =
            (sx(e.words_per_s_greedy), sy(e.bleu_greedy), sx(e.words_per_s_beam), sy(e.bleu_beam));
        let _ = write!(
            svg,
            r#"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x5:.1}" y2="{y5:.1}" stroke="{c}" stroke-dasharray="3,2"/><circle cx="{x1:.1}" cy="{y1:.1}" r="4" fill="{c}"/><rect x="{:.1}" y="{:.1}" width="8" height="8" fill="{c}"/><text x="{:.1}" y="{:.1}" fill="{c}">{}</text>"#,
            x5 - 4.0,
            y5 - 4.0,
            x1 + 6.0,
            y1 - 6.0,
            label(&e.name)
        );
    }
    svg.push_str("</svg>\n");
    svg
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
