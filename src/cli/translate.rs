//! `seqkd translate --model DIR [--input FILE]`: one translation per input line, in input order.
//!
//! Two engines decode the same model directory with the same search rules: libtorch (`torch`,
//! the default, also on CUDA) and `native` (seqkd-runtime: no libtorch, f32 or int8 on the CPU).

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use seqkd_nmt::config::DecodeConfig;
use seqkd_nmt::decode::{Hypothesis, Translator};
use seqkd_nmt::model_dir::LoadedModel;
use seqkd_runtime::translator::Precision;
use seqkd_text::corpus::{read_lines, LineLimits};
use seqkd_text::vocab::Vocab;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Engine {
    /// libtorch (CPU or CUDA).
    Torch,
    /// seqkd-runtime: pure Rust, CPU, f32 or int8.
    Native,
}

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
    /// At most this many sentences per batch (1 = one sentence at a time).
    #[arg(long)]
    pub max_sentences: Option<usize>,
    #[arg(long, value_enum, default_value = "torch")]
    pub engine: Engine,
    /// Native engine: int8 weights and activations (quantized at load unless the model is int8 already).
    #[arg(long)]
    pub int8: bool,
    /// CPU threads (0 = libtorch's default / all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Weights file inside the model directory.
    #[arg(long)]
    pub weights: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(!args.int8 || args.engine == Engine::Native, "--int8 needs --engine native");
    let limits = LineLimits::ANY_LINE;
    let read_input = || -> anyhow::Result<Vec<String>> {
        Ok(match &args.input {
            Some(path) => read_lines(path, &limits)?,
            None => std::io::stdin().lock().lines().collect::<Result<_, _>>().context("reading stdin")?,
        })
    };
    let loading = || format!("loading model from {}", args.model.display());
    let nbest = args.nbest.unwrap_or(1);
    let (results, vocab, secs, lines) = match args.engine {
        Engine::Torch => {
            let device = seqkd_nmt::parse_device(&args.device).map_err(anyhow::Error::msg)?;
            if args.threads > 0 {
                tch::set_num_threads(args.threads as i32);
            }
            let loaded =
                LoadedModel::load(&args.model, device, args.weights.as_deref()).with_context(loading)?;
            let lines = read_input()?;
            let cfg = decode_options(&args, loaded.config.decode.clone(), nbest)?;
            // As on the native engine: greedy search skips the softmax unless scores are printed.
            let scores = args.nbest.is_some() || args.token_scores;
            let translator = Translator { model: &loaded.model, vocab: &loaded.vocab, cfg, device, scores };
            let start = Instant::now();
            let results = translator.translate(&lines, nbest, |_| {})?;
            (results, loaded.vocab, start.elapsed().as_secs_f64(), lines)
        }
        Engine::Native => {
            anyhow::ensure!(
                args.device == "cpu",
                "--engine native runs on the CPU only (got --device {})",
                args.device
            );
            let precision = if args.int8 { Precision::Int8 } else { Precision::AsStored };
            let mut translator = seqkd_runtime::Translator::load(
                &args.model,
                args.weights.as_deref(),
                precision,
                args.threads,
            )
            .with_context(loading)?;
            let lines = read_input()?;
            translator.cfg = decode_options(&args, translator.cfg.clone(), nbest)?;
            // Scores are only printed with --nbest or --token-scores; greedy search skips the
            // softmax without them (as CTranslate2 does unless asked for scores).
            translator.scores = args.nbest.is_some() || args.token_scores;
            let start = Instant::now();
            let results = translator.translate(&lines, nbest, |_| {})?;
            (results, translator.vocab, start.elapsed().as_secs_f64(), lines)
        }
    };
    write_results(&args, &results, &vocab)?;
    let words: usize = lines.iter().map(|l| l.split_whitespace().count()).sum();
    eprintln!(
        "translated {} sentences in {secs:.2}s ({:.0} source words/s)",
        lines.len(),
        words as f64 / secs.max(1e-9)
    );
    Ok(ExitCode::SUCCESS)
}

/// The model's decoding settings with the command line's overrides.
fn decode_options(args: &Args, mut cfg: DecodeConfig, nbest: usize) -> anyhow::Result<DecodeConfig> {
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
    if let Some(n) = args.max_sentences {
        cfg.max_sentences = n;
    }
    anyhow::ensure!(nbest <= cfg.beam_size.max(1), "--nbest {nbest} exceeds the beam size {}", cfg.beam_size);
    Ok(cfg)
}

fn write_results(args: &Args, results: &[Vec<Hypothesis>], vocab: &Vocab) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for (i, hyps) in results.iter().enumerate() {
        for h in hyps {
            let text = vocab.decode(&h.tokens);
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
    Ok(())
}
