//! `metrics.jsonl`: one [`Record`] per line, appended while training; read back by the loss plot
//! and the report's validation curves.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{io_err, Error};
use crate::model_dir::METRICS_FILE;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum Record {
    /// The mean of the last updates (every 50, and the first).
    Train {
        step: i64,
        epoch: u64,
        /// Mean objective per target token.
        loss: f64,
        lr: f64,
        tgt_tokens_per_s: f64,
        /// Training seconds over all runs.
        elapsed_s: f64,
    },
    /// One validation.
    Valid {
        step: i64,
        epoch: u64,
        /// Perplexity of the validation references, teacher-forced.
        ppl: f64,
        /// Greedy BLEU on the first `bleu_sentences` validation sentences.
        bleu_greedy: f64,
        bleu_sentences: usize,
        /// Whether this validation's model became the kept one.
        best: bool,
    },
}

/// Appends records to a model directory's `metrics.jsonl`.
pub struct MetricsLog {
    /// None: records are dropped (a data-parallel run's other ranks; the leader logs).
    file: Option<std::fs::File>,
    path: std::path::PathBuf,
}

impl MetricsLog {
    pub fn open(dir: &Path) -> Result<Self, Error> {
        let path = dir.join(METRICS_FILE);
        let file =
            std::fs::OpenOptions::new().create(true).append(true).open(&path).map_err(io_err(&path))?;
        Ok(Self { file: Some(file), path })
    }

    /// A log that keeps nothing.
    pub fn discard() -> Self {
        Self { file: None, path: std::path::PathBuf::new() }
    }

    pub fn write(&mut self, record: &Record) -> Result<(), Error> {
        let Some(file) = &mut self.file else { return Ok(()) };
        let line = serde_json::to_string(record).expect("serializable");
        writeln!(file, "{line}").map_err(io_err(&self.path))
    }
}

/// The records of `dir/metrics.jsonl`, skipping lines that do not parse (a line cut by a kill).
pub fn read(dir: &Path) -> std::io::Result<Vec<Record>> {
    let text = std::fs::read_to_string(dir.join(METRICS_FILE))?;
    Ok(text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
}
