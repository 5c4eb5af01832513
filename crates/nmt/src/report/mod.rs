//! The paper's report, computed from a pipeline run: what the run shows in plain words
//! ([`summary`]), Table 1 (BLEU K=1/K=5, Δ against the baseline student, perplexity, mode mass),
//! Table 2 (decoding speed on libtorch and on the native engine, and parameters), Table 3
//! (pruning), whether each of the paper's claims held in this run ([`claims`]), and two plots
//! (validation curves; BLEU against speed; [`plots`]).
//!
//! Written as `report.md`, `report.json`, `curves.svg` and `bleu-speed.svg` (each with its PNG
//! beside it, which `report.md` shows) in the run directory.

mod claims;
mod plots;
mod summary;
mod training;

use std::fmt::Write as _;
use std::path::Path;

use seqkd_text::metrics::bootstrap::DEFAULT_RESAMPLES;

use crate::chart::write_svg_and_png;
use crate::error::{io_err, Error};
use crate::evaluate::{DecodingSpeed, Evaluation, TIMED_ROUNDS};
use crate::prune::PruneScheme;
use crate::table1::{label, pruned_name, Row, TEACHER};
use claims::percent;

pub use claims::{claims, Claim, ClaimKind};
pub use training::{Start, Training};

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

/// Table 3's settings.
#[derive(Debug, Clone)]
pub struct Pruning {
    pub from: Row,
    pub ratios: Vec<f64>,
    pub scheme: PruneScheme,
    pub iterative: bool,
}

/// Writes the report files into `out` and returns the Markdown.
pub fn write(out: &Path, results: &Results) -> Result<String, Error> {
    let evals = &results.evaluations;
    let claims = claims::claims(evals, &results.refs);
    let md = markdown(results, &claims);
    let json = serde_json::json!({ "models": evals, "claims": claims });
    for (file, bytes) in [
        ("report.md", md.clone().into_bytes()),
        ("report.json", serde_json::to_vec_pretty(&json).expect("serializable")),
    ] {
        let path = out.join(file);
        seqkd_text::atomic_write(&path, &bytes).map_err(io_err(&path))?;
    }
    for (file, svg) in [
        ("curves.svg", plots::curves(evals, &results.training)),
        ("bleu-speed.svg", plots::bleu_speed(evals)),
    ] {
        let path = out.join(file);
        write_svg_and_png(&path, &svg.map_err(io_err(&path))?).map_err(io_err(&path))?;
    }
    Ok(md)
}

fn markdown(results: &Results, claims: &[Claim]) -> String {
    let evals = &results.evaluations;
    let mut md = String::new();
    // K as the evaluations were made (they may predate a config change).
    let k = evals.first().map(|e| e.beam_size).unwrap_or(results.beam_size);
    let n = evals.first().map(|e| e.sentences).unwrap_or(0);
    let _ = writeln!(md, "# Sequence-level knowledge distillation: results\n");
    let _ = writeln!(md, "## What this run shows\n\n{}\n", summary::what_this_run_shows(evals, claims));
    let _ = writeln!(
        md,
        "Test set: {} ({n} sentences). BLEU is sacrebleu-exact (13a, detokenized); K is the beam size; \
         Δ is against the baseline student; PPL is the perplexity of the test references; p(t=ŷ) is \
         the mean probability a model gives its own K={k} output.\n",
        results.test_set.display()
    );
    table1(&mut md, results, k);
    table2(&mut md, evals, k);
    if let Some(pr) = &results.pruning {
        table3(&mut md, results, pr, k);
    }
    claims_table(&mut md, claims);
    let _ = writeln!(
        md,
        "\n## Plots\n\nValidation BLEU while training (`curves.svg`):\n\n![validation BLEU against updates](curves.png)\n\n\
         BLEU against decoding speed (`bleu-speed.svg`; the dashed line is the Pareto front):\n\n![BLEU against source words per second](bleu-speed.png)\n\n\
         Models, distilled corpora and translations are under `models/`, `distill/` and `eval/`."
    );
    md
}

/// Table 1: every model's BLEU with greedy and beam search, against the baseline student.
fn table1(md: &mut String, results: &Results, k: usize) {
    let evals = &results.evaluations;
    let baseline = evals.iter().find(|e| e.name == Row::Baseline.name());
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
}

/// Table 2: decoding speed on libtorch (what the claims use) and, where timed, on the native
/// engine in int8 and f32 (what a user would deploy), each with its own teacher as the yardstick.
fn table2(md: &mut String, evals: &[Evaluation], k: usize) {
    let teacher = evals.iter().find(|e| e.name == TEACHER);
    let threads = evals.first().map(|e| e.threads).unwrap_or(0);
    let native = evals.iter().any(|e| e.native_int8.is_some() || e.native_f32.is_some());
    let timed = evals.first().map_or(0, |e| e.timed_sentences);
    let on = match evals.first().map_or(0, |e| e.sentences) {
        all if timed == 0 || timed >= all => "the test set".to_string(),
        all => format!("the first {timed} of the {all} test sentences"),
    };
    let _ = write!(
        md,
        "\n## Table 2: decoding speed\n\nSource words per second on {on}, batched, {threads} thread(s); \
         the models were timed in turn, {TIMED_ROUNDS} rounds, and each figure is a model's fastest round."
    );
    if !native {
        let _ = writeln!(md, "\n\n| Model | params | words/s K=1 | words/s K={k} | K=1 vs teacher K={k} |");
        let _ = writeln!(md, "|---|---:|---:|---:|---:|");
    } else {
        let _ = writeln!(
            md,
            " libtorch is the engine the models were trained with (the claims use its speeds); int8 and f32 \
             are the native engine (`seqkd translate --engine native`, no libtorch, on the CPU) with int8 \
             and f32 matrix products: what a user would deploy. Each speed-up compares with the teacher \
             on the same engine.\n"
        );
        let _ = writeln!(
            md,
            "| Model | params | libtorch K=1 | libtorch K={k} | K=1 vs teacher K={k} | int8 K=1 | int8 K={k} \
             | int8 K=1 vs teacher int8 K={k} | f32 K=1 | f32 K={k} |"
        );
        let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    }
    // Words/s with greedy and beam search, and greedy against the teacher's beam search.
    let columns = |speed: Option<DecodingSpeed>, teacher: Option<DecodingSpeed>| match speed {
        Some(s) => {
            let ratio =
                teacher.map(|t| format!("{:.1}×", s.words_per_s_greedy / t.words_per_s_beam.max(1e-9)));
            [
                format!("{:.0}", s.words_per_s_greedy),
                format!("{:.0}", s.words_per_s_beam),
                ratio.unwrap_or_default(),
            ]
        }
        None => Default::default(),
    };
    let torch = |e: &Evaluation| {
        Some(DecodingSpeed {
            words_per_s_greedy: e.words_per_s_greedy,
            words_per_s_beam: e.words_per_s_beam,
            bleu: None,
        })
    };
    for e in evals {
        let mut row = vec![label(&e.name), format!("{:.2}M", e.params as f64 / 1e6)];
        row.extend(columns(torch(e), teacher.and_then(torch)));
        if native {
            row.extend(columns(e.native_int8, teacher.and_then(|t| t.native_int8)));
            row.extend(columns(e.native_f32, None).into_iter().take(2));
        }
        let _ = writeln!(md, "| {} |", row.join(" | "));
    }
}

/// The claims, whether each held, and the evidence.
fn claims_table(md: &mut String, claims: &[Claim]) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(name: &str, greedy: f64, beam: f64, wps: [f64; 2], int8: Option<[f64; 2]>) -> Evaluation {
        let speed =
            |[g, b]: [f64; 2]| DecodingSpeed { words_per_s_greedy: g, words_per_s_beam: b, bleu: None };
        Evaluation {
            name: name.into(),
            params: if name == TEACHER { 4_000_000 } else { 1_000_000 },
            bleu_greedy: greedy,
            bleu_beam: beam,
            beam_size: 5,
            sentences: 100,
            threads: 2,
            words_per_s_greedy: wps[0],
            words_per_s_beam: wps[1],
            native_int8: int8.map(speed),
            native_f32: int8.map(|[g, b]| speed([g / 2.0, b / 2.0])),
            mode_mass: 0.1,
            ..Default::default()
        }
    }

    fn results(native: bool) -> Results {
        let int8 = |v: [f64; 2]| native.then_some(v);
        let evaluations = vec![
            eval(TEACHER, 60.0, 61.0, [500.0, 100.0], int8([2000.0, 400.0])),
            eval("baseline", 55.0, 57.0, [2000.0, 500.0], int8([8000.0, 2000.0])),
            eval("seq-kd", 60.5, 60.6, [1500.0, 400.0], int8([6000.0, 1600.0])),
        ];
        Results {
            test_set: "data/test.syn".into(),
            beam_size: 5,
            training: vec![Training { valid_bleu: vec![(0.0, 1.0), (100.0, 20.0)], ..Default::default() }; 3],
            evaluations,
            pruning: None,
            refs: Vec::new(),
        }
    }

    #[test]
    fn the_report_opens_with_what_the_run_shows_and_shows_its_plots_as_png() {
        let dir = tempfile::tempdir().unwrap();
        let md = write(dir.path(), &results(true)).unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join("report.md")).unwrap(), md);
        let summary_at = md.find("## What this run shows\n\nThis run trained").expect("the summary");
        assert!(summary_at < md.find("Test set: data/test.syn (100 sentences)").unwrap(), "{md}");
        assert!(md.find("## Table 1").unwrap() > summary_at);
        for png in ["curves.png", "bleu-speed.png"] {
            assert!(md.contains(&format!("]({png})")), "{png} not embedded:\n{md}");
            let bytes = std::fs::read(dir.path().join(png)).unwrap();
            assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{png}");
            assert!(dir.path().join(png).with_extension("svg").exists());
        }
        // Table 2: libtorch, then the native engine in int8 (with its own teacher as the
        // yardstick: 6000 / 400 = 15×) and f32.
        assert!(
            md.contains("| Model | params | libtorch K=1 | libtorch K=5 | K=1 vs teacher K=5 | int8 K=1 |"),
            "{md}"
        );
        assert!(
            md.contains("| Seq-KD | 1.00M | 1500 | 400 | 15.0× | 6000 | 1600 | 15.0× | 3000 | 800 |"),
            "{md}"
        );
        assert!(
            md.contains("| Teacher | 4.00M | 500 | 100 | 5.0× | 2000 | 400 | 5.0× | 1000 | 200 |"),
            "{md}"
        );
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).unwrap()).unwrap();
        assert_eq!(json["models"][2]["native_int8"]["words_per_s_greedy"], 6000.0);
        assert_eq!(json["claims"][3]["kind"], "ten-times-faster");
    }

    #[test]
    fn without_native_speeds_table_2_has_the_libtorch_columns_alone() {
        let dir = tempfile::tempdir().unwrap();
        let md = write(dir.path(), &results(false)).unwrap();
        assert!(md.contains("| Model | params | words/s K=1 | words/s K=5 | K=1 vs teacher K=5 |\n"), "{md}");
        assert!(md.contains("| Seq-KD | 1.00M | 1500 | 400 | 15.0× |\n"), "{md}");
        assert!(!md.contains("int8"), "{md}");
    }
}
