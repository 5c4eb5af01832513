//! `loss.svg` and `loss.png`: training loss (left axis) and validation perplexity (right axis,
//! log scale) against updates, drawn from `metrics.jsonl`.

use std::path::Path;

use super::metrics::Record;
use crate::chart::{line_chart, write_svg_and_png, Line, Panel, Stroke};

/// The loss chart of a model's `metrics.jsonl` records, as SVG.
pub fn loss_chart(records: &[Record], title: &str) -> std::io::Result<String> {
    let (mut train, mut valid) = (Vec::new(), Vec::new());
    for record in records {
        match record {
            Record::Train { step, loss, .. } => train.push((*step as f64, *loss)),
            Record::Valid { step, ppl, .. } => valid.push((*step as f64, *ppl)),
        }
    }
    let panel = Panel {
        title: title.to_string(),
        x_label: "update".into(),
        y_label: "training loss (label-smoothed NLL/token)".into(),
        lines: vec![Line {
            name: "training loss".into(),
            points: train,
            stroke: Stroke::solid([31, 119, 180]),
        }],
        right: Some((
            "validation perplexity (log scale)".into(),
            vec![Line {
                name: "validation perplexity".into(),
                points: valid,
                stroke: Stroke { dots: true, ..Stroke::solid([214, 39, 40]) },
            }],
        )),
        weight: 1.0,
    };
    line_chart(&[panel], 900)
}

/// Reads `dir/metrics.jsonl` and writes `dir/loss.svg` and `dir/loss.png`.
pub fn write_loss_plot(dir: &Path) -> std::io::Result<()> {
    write_loss_plot_of(dir, &super::metrics::read(dir)?)
}

/// Writes `dir/loss.svg` and `dir/loss.png` from `records`, the model's `metrics.jsonl`.
pub fn write_loss_plot_of(dir: &Path, records: &[Record]) -> std::io::Result<()> {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let title = format!("{name}: training loss and validation perplexity");
    write_svg_and_png(&dir.join("loss.svg"), &loss_chart(records, &title)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_plot_of_a_metrics_file_has_both_series_and_its_png() {
        let dir = tempfile::tempdir().unwrap();
        let mut lines = String::new();
        for step in (50..=1000).step_by(50) {
            let loss = 8.0 / (1.0 + step as f64 / 100.0) + 1.0;
            lines += &format!(
                "{{\"event\":\"train\",\"step\":{step},\"epoch\":0,\"loss\":{loss},\"lr\":0.001,\"tgt_tokens_per_s\":1000.0,\"elapsed_s\":1.0}}\n"
            );
            if step % 200 == 0 {
                let ppl = (loss - 0.3).exp();
                lines += &format!(
                    "{{\"event\":\"valid\",\"step\":{step},\"epoch\":0,\"ppl\":{ppl},\"bleu_greedy\":10.0,\"bleu_sentences\":100,\"best\":true}}\n"
                );
            }
        }
        lines += "{\"event\":\"train\",\"step\":10"; // a line cut by a kill is skipped
        std::fs::write(dir.path().join("metrics.jsonl"), lines).unwrap();
        write_loss_plot(dir.path()).unwrap();
        let svg = std::fs::read_to_string(dir.path().join("loss.svg")).unwrap();
        for text in ["training loss", "validation perplexity", "validation perplexity (log scale)", "update"]
        {
            assert!(svg.contains(&format!("\n{text}\n</text>")), "{text}");
        }
        // Training loss in blue, validation perplexity in red, each also in the legend.
        assert!(svg.matches("stroke=\"#1F77B4\"").count() >= 2);
        assert!(svg.matches("stroke=\"#D62728\"").count() >= 2);
        let png = std::fs::read(dir.path().join("loss.png")).unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
    }
}
