//! The report's two plots, as SVG: validation BLEU while training (`curves.svg`) and BLEU against
//! decoding speed (`bleu-speed.svg`); [`crate::chart`] draws the frame and rasterises them.

use std::fmt::Write as _;

use crate::chart;
use crate::evaluate::Evaluation;
use crate::table1::label;

const COLOURS: [&str; 10] = [
    "#000000", "#7f7f7f", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
    "#17becf",
];

/// Validation BLEU (greedy, on the validation subset) against updates, one line per model:
/// `valid_bleu[i]` is the curve of `evals[i]`.
pub(super) fn curves(evals: &[Evaluation], valid_bleu: &[&[(f64, f64)]]) -> String {
    let series: Vec<(String, &[(f64, f64)])> =
        evals.iter().zip(valid_bleu).map(|(e, points)| (label(&e.name), *points)).collect();
    let refs: Vec<chart::Series> =
        series.iter().enumerate().map(|(i, (n, p))| (n.as_str(), *p, COLOURS[i % COLOURS.len()])).collect();
    chart::line_chart("update", "validation BLEU (greedy)", &refs)
}

/// BLEU against source words/s (log scale), K=1 as dots and K=5 as squares.
pub(super) fn bleu_speed(evals: &[Evaluation]) -> String {
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
