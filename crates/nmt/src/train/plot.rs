//! `loss.svg`: training loss and validation perplexity against steps, drawn from `metrics.jsonl`.

use std::path::Path;

use super::metrics::Record;
use crate::chart::line_chart;

/// Reads `dir/metrics.jsonl` and writes `dir/loss.svg`.
pub fn write_loss_plot(dir: &Path) -> std::io::Result<()> {
    let (mut train, mut valid) = (Vec::new(), Vec::new());
    for record in super::metrics::read(dir)? {
        match record {
            Record::Train { step, loss, .. } => train.push((step as f64, loss)),
            Record::Valid { step, ppl, .. } => valid.push((step as f64, ppl.ln())),
        }
    }
    seqkd_text::atomic_write(
        &dir.join("loss.svg"),
        line_chart(
            "step",
            "loss",
            &[
                ("train loss (label-smoothed NLL/token)", &train, "#1f77b4"),
                ("valid log-perplexity", &valid, "#d62728"),
            ],
        )
        .as_bytes(),
    )
}
