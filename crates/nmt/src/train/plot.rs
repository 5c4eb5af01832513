//! `loss.svg` and `loss.png`: training loss and validation perplexity against steps, drawn from
//! `metrics.jsonl`.

use std::path::Path;

use super::metrics::Record;
use crate::chart::{line_chart, write_svg_and_png};

/// Reads `dir/metrics.jsonl` and writes `dir/loss.svg` and `dir/loss.png`.
pub fn write_loss_plot(dir: &Path) -> std::io::Result<()> {
    let (mut train, mut valid) = (Vec::new(), Vec::new());
    for record in super::metrics::read(dir)? {
        match record {
            Record::Train { step, loss, .. } => train.push((step as f64, loss)),
            Record::Valid { step, ppl, .. } => valid.push((step as f64, ppl.ln())),
        }
    }
    write_svg_and_png(
        &dir.join("loss.svg"),
        &line_chart(
            "step",
            "loss",
            &[
                ("train loss (label-smoothed NLL/token)", &train, "#1f77b4"),
                ("valid log-perplexity", &valid, "#d62728"),
            ],
        ),
    )
}
