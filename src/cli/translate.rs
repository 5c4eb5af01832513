//! `seqkd translate --model DIR [--input FILE]`: one translation per input line, in input order.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use seqkd_nmt::decode::Translator;
use seqkd_nmt::train::LoadedModel;
use seqkd_text::corpus::{read_lines, LineLimits};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Model directory written by `seqkd train`.
    #[arg(long)]
    pub model: PathBuf,
    /// Input file, one sentence per line (default: stdin).
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Beam size (1 = greedy). Default: the model's decode.beam_size.
    #[arg(long)]
    pub beam: Option<usize>,
    /// Print the N best hypotheses per sentence as `index ||| translation ||| score`.
    #[arg(long)]
    pub nbest: Option<usize>,
    /// Append per-token log-probabilities (`||| lp1 lp2 ...`).
    #[arg(long)]
    pub token_scores: bool,
    /// Length penalty: scores are divided by length^this.
    #[arg(long)]
    pub length_penalty: Option<f64>,
    /// Padded source tokens per batch.
    #[arg(long)]
    pub batch_tokens: Option<usize>,
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Weights file inside the model directory.
    #[arg(long)]
    pub weights: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let device = seqkd_nmt::parse_device(&args.device).map_err(anyhow::Error::msg)?;
    let loaded = LoadedModel::load(&args.model, device, args.weights.as_deref())
        .with_context(|| format!("loading model from {}", args.model.display()))?;
    let limits = LineLimits { max_chars: usize::MAX, allow_empty: true };
    let lines = match &args.input {
        Some(path) => read_lines(path, &limits)?,
        None => std::io::stdin().lock().lines().collect::<Result<_, _>>().context("reading stdin")?,
    };
    let mut cfg = loaded.config.decode.clone();
    if let Some(b) = args.beam {
        anyhow::ensure!(b >= 1, "--beam must be >= 1");
        cfg.beam_size = b;
    }
    if let Some(lp) = args.length_penalty {
        cfg.length_penalty = lp;
    }
    if let Some(bt) = args.batch_tokens {
        anyhow::ensure!(bt >= 1, "--batch-tokens must be >= 1");
        cfg.batch_tokens = bt;
    }
    let nbest = args.nbest.unwrap_or(1);
    anyhow::ensure!(nbest <= cfg.beam_size.max(1), "--nbest {nbest} exceeds the beam size {}", cfg.beam_size);
    let translator = Translator { model: &loaded.model, vocab: &loaded.vocab, cfg, device };
    let start = Instant::now();
    let results = translator.translate(&lines, nbest, |_| {})?;
    let secs = start.elapsed().as_secs_f64();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for (i, hyps) in results.iter().enumerate() {
        for h in hyps {
            let text = loaded.vocab.decode(&h.tokens);
            let mut line = if args.nbest.is_some() {
                format!("{i} ||| {text} ||| {:.4}", h.normalized_score)
            } else {
                text
            };
            if args.token_scores {
                let lps: Vec<String> = h.token_logprobs.iter().map(|lp| format!("{lp:.4}")).collect();
                line.push_str(&format!(" ||| {}", lps.join(" ")));
            }
            writeln!(out, "{line}")?;
        }
    }
    out.flush()?;
    let words: usize = lines.iter().map(|l| l.split_whitespace().count()).sum();
    eprintln!(
        "translated {} sentences in {secs:.2}s ({:.0} source words/s)",
        lines.len(),
        words as f64 / secs.max(1e-9)
    );
    Ok(ExitCode::SUCCESS)
}
