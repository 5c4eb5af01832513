//! The report's two plots: validation BLEU while training (`curves.svg`: models trained from
//! scratch on the left, fine-tuned ones on the right from the weights they started from) and
//! BLEU against decoding speed (`bleu-speed.svg`); [`crate::chart`] lays them out and rasterises
//! them.

use crate::chart::{self, Line, Mark, Panel, Rgb, Scatter, Shape, Stroke};
use crate::evaluate::{DecodingSpeed, Evaluation};
use crate::table1::{label, Row, TEACHER, TEACHER_SEQ_INTER};

use super::training::Training;

/// Each model's colour: the teachers black and dark grey, the baseline grey, the others the
/// palette in order, so that a model has the same colour in both plots.
fn colours(evals: &[Evaluation]) -> Vec<Rgb> {
    let mut next = chart::PALETTE.iter().cycle();
    evals
        .iter()
        .map(|e| match e.name.as_str() {
            TEACHER => chart::BLACK,
            TEACHER_SEQ_INTER => [80, 80, 80],
            n if n == Row::Baseline.name() => chart::GREY,
            _ => *next.next().expect("a cycle"),
        })
        .collect()
}

/// Validation BLEU (greedy, on the validation subset) against updates, one line per model
/// (`training[i]` is `evals[i]`'s). A fine-tuned model's line is in a panel of its own (its
/// updates are not comparable with a model trained from scratch) and starts at update 0 from the
/// validation BLEU of the weights it started from: its own update-0 validation, or else (runs
/// from before training validated at update 0) the parent's kept BLEU, unknown after pruning.
pub(super) fn curves(evals: &[Evaluation], training: &[Training]) -> std::io::Result<String> {
    let colours = colours(evals);
    let (mut scratch, mut tuned) = (Vec::new(), Vec::new());
    for ((e, t), colour) in evals.iter().zip(training).zip(colours) {
        let teacher = e.name == TEACHER || e.name == TEACHER_SEQ_INTER;
        let stroke = Stroke { colour, width: if teacher { 3 } else { 2 }, dashed: false, dots: false };
        let mut points = t.valid_bleu.clone();
        match &t.start {
            None => scratch.push(Line { name: label(&e.name), points, stroke }),
            Some(start) => {
                // Runs since `[train] init` validates at update 0 have the point of their own.
                let has_zero = points.first().is_some_and(|&(step, _)| step == 0.0);
                if let (Some(bleu), false) = (start.bleu, has_zero) {
                    points.insert(0, (0.0, bleu));
                }
                tuned.push(Line { name: label(&e.name), points, stroke: Stroke { dots: true, ..stroke } });
            }
        }
    }
    let y_label = "validation BLEU (greedy)".to_string();
    let mut panels = vec![Panel {
        title: "Trained from scratch".into(),
        x_label: "update".into(),
        y_label: y_label.clone(),
        lines: scratch,
        right: None,
        weight: 0.62,
    }];
    if !tuned.is_empty() {
        panels.push(Panel {
            title: "Fine-tuned (update 0: the weights they start from)".into(),
            x_label: "fine-tuning update".into(),
            y_label,
            lines: tuned,
            right: None,
            weight: 0.38,
        });
    }
    chart::line_chart(&panels, 1180)
}

/// Test BLEU against source words/s (log scale): K=1 as circles and K=beam as squares, filled
/// on libtorch and hollow on the native engine in int8 (where timed, at the BLEU of the int8
/// engine's own output); each point tagged with its model's number in the legend.
pub(super) fn bleu_speed(evals: &[Evaluation]) -> std::io::Result<String> {
    let colours = colours(evals);
    let k = evals.first().map(|e| e.beam_size).unwrap_or(5);
    let mut marks = Vec::new();
    for (i, (e, &colour)) in evals.iter().zip(&colours).enumerate() {
        let tag = (i + 1).to_string();
        // An untimed model (speed 0) has no place on the log axis: the chart leaves it out.
        let mut mark = |x: f64, y: f64, shape: Shape, filled: bool| {
            marks.push(Mark { x, y, colour, shape, filled, tag: tag.clone() });
        };
        mark(e.words_per_s_greedy, e.bleu_greedy, Shape::Circle, true);
        mark(e.words_per_s_beam, e.bleu_beam, Shape::Square, true);
        // The int8 engine at its own BLEU (reports of earlier versions did not score it: no point).
        if let Some(DecodingSpeed { words_per_s_greedy, words_per_s_beam, bleu: Some([greedy, beam]) }) =
            e.native_int8
        {
            mark(words_per_s_greedy, greedy, Shape::Circle, false);
            mark(words_per_s_beam, beam, Shape::Square, false);
        }
    }
    let mut kinds = vec![
        (Shape::Circle, true, "K=1 (greedy), libtorch".to_string()),
        (Shape::Square, true, format!("K={k} (beam), libtorch")),
    ];
    if evals.iter().any(|e| e.native_int8.is_some_and(|s| s.bleu.is_some())) {
        kinds.push((Shape::Circle, false, "K=1, native engine int8".into()));
        kinds.push((Shape::Square, false, format!("K={k}, native engine int8")));
    }
    let scatter = Scatter {
        x_label: "source words/s (log scale)".into(),
        y_label: "test BLEU".into(),
        marks,
        series_heading: "Models".into(),
        series: evals
            .iter()
            .zip(&colours)
            .enumerate()
            .map(|(i, (e, c))| (format!("{}  {}", i + 1, label(&e.name)), *c))
            .collect(),
        kinds,
        front_label: "Pareto front (best BLEU at each speed)".into(),
    };
    chart::scatter_chart(&scatter, 1180)
}

#[cfg(test)]
mod tests {
    use super::super::training::Start;
    use super::*;

    /// Whether the SVG has a `<text>` element reading `t`.
    fn has_text(svg: &str, t: &str) -> bool {
        svg.contains(&format!("\n{t}\n</text>"))
    }

    fn eval(name: &str, bleu: [f64; 2], wps: [f64; 2], int8: Option<[f64; 4]>) -> Evaluation {
        Evaluation {
            name: name.into(),
            bleu_greedy: bleu[0],
            bleu_beam: bleu[1],
            beam_size: 5,
            words_per_s_greedy: wps[0],
            words_per_s_beam: wps[1],
            native_int8: int8.map(|[g, b, bg, bb]| DecodingSpeed {
                words_per_s_greedy: g,
                words_per_s_beam: b,
                bleu: Some([bg, bb]),
            }),
            ..Default::default()
        }
    }

    fn fixture() -> (Vec<Evaluation>, Vec<Training>) {
        let evals = vec![
            eval(TEACHER, [60.8, 61.1], [27_000.0, 6_000.0], Some([50_000.0, 10_700.0, 60.7, 61.2])),
            eval("baseline", [55.6, 56.2], [52_000.0, 13_500.0], Some([105_000.0, 23_000.0, 55.4, 56.1])),
            eval("seq-kd", [58.5, 59.1], [52_600.0, 11_600.0], None),
            eval("baseline+seq-inter", [57.2, 57.4], [51_900.0, 14_400.0], None),
        ];
        let scratch =
            |last: f64| Training { valid_bleu: vec![(150.0, 1.0), (1500.0, last)], ..Default::default() };
        let tuned = Training {
            valid_bleu: vec![(50.0, 56.7), (150.0, 57.0)],
            start: Some(Start { bleu: Some(57.03) }),
            ..Default::default()
        };
        (evals, vec![scratch(60.2), scratch(56.8), scratch(58.6), tuned])
    }

    #[test]
    fn curves_put_fine_tunes_in_their_own_panel_from_their_starting_weights() {
        let (evals, training) = fixture();
        let svg = curves(&evals, &training).unwrap();
        for text in [
            "Trained from scratch",
            "Fine-tuned (update 0: the weights they start from)",
            "fine-tuning update",
        ] {
            assert!(has_text(&svg, text), "{text}");
        }
        for e in &evals {
            assert!(has_text(&svg, &label(&e.name)), "{} not in the legend", e.name);
        }
        // The teacher is drawn thicker than the students.
        assert!(
            svg.matches("stroke=\"#000000\" stroke-width=\"3\"").count() >= 2,
            "the teacher's line and key"
        );
        // Without a fine-tuned model there is one panel.
        let svg = curves(&evals[..3], &training[..3]).unwrap();
        assert!(!has_text(&svg, "fine-tuning update"));
    }

    #[test]
    fn bleu_speed_marks_both_engines_at_their_own_bleu_and_keys_every_model() {
        let (evals, _) = fixture();
        let svg = bleu_speed(&evals).unwrap();
        for text in
            ["1  Teacher", "2  Baseline", "3  Seq-KD", "4  Baseline + Seq-Inter", "K=5, native engine int8"]
        {
            assert!(has_text(&svg, text), "{text}");
        }
        // Tags: 4 points for the teacher and the baseline (two engines), 2 for the others.
        for (tag, points) in [("1", 4), ("2", 4), ("3", 2), ("4", 2)] {
            let placed = svg.matches(&format!("\n{tag}\n</text>")).count();
            assert!(placed <= points && placed >= 1, "tag {tag}: {placed}");
        }
        // No int8 BLEU (a report of an earlier version): no int8 points, no int8 key.
        let old: Vec<Evaluation> = evals
            .iter()
            .map(|e| Evaluation {
                native_int8: e.native_int8.map(|s| DecodingSpeed { bleu: None, ..s }),
                ..e.clone()
            })
            .collect();
        assert!(!has_text(&bleu_speed(&old).unwrap(), "K=1, native engine int8"));
    }
}
