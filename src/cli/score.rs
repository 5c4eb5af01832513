//! `seqkd score --ref REF --hyp HYP`: corpus BLEU and chrF exactly as sacrebleu 2.6.0 computes them.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::ValueEnum;
use seqkd_text::corpus::{read_lines, LineLimits};
use seqkd_text::metrics::{
    corpus_bleu_multi, corpus_chrf_multi, BleuConfig, ChrfConfig, MetricScore, Smoothing, TokenizeKind,
};

use super::Format;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Metric {
    Bleu,
    Chrf,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Reference file(s), one segment per line; several files are several references per segment.
    #[arg(long = "ref", required = true, num_args = 1..)]
    pub refs: Vec<PathBuf>,
    /// System output, one segment per line, aligned with the references.
    #[arg(long)]
    pub hyp: PathBuf,
    #[arg(short = 'm', long, value_enum, num_args = 1.., default_values_t = [Metric::Bleu, Metric::Chrf])]
    pub metrics: Vec<Metric>,
    /// BLEU tokenizer: 13a (default), intl, char or none.
    #[arg(long, default_value = "13a")]
    pub tokenize: TokenizeKind,
    /// Lowercase hypotheses and references (BLEU and chrF).
    #[arg(long)]
    pub lowercase: bool,
    /// BLEU smoothing: exp (default), floor, add-k or none.
    #[arg(long, default_value = "exp")]
    pub smooth: String,
    /// Value for floor (default 0.1) or add-k (default 1).
    #[arg(long)]
    pub smooth_value: Option<f64>,
    /// chrF word n-gram order: 0 is chrF (default), 2 is chrF++.
    #[arg(long, default_value_t = 0)]
    pub chrf_word_order: usize,
    /// Decimals of the printed scores. sacrebleu's own default is 1; seqkd prints 2 so that
    /// differences of 0.01 are visible (`--width 1` gives sacrebleu's output byte for byte).
    #[arg(short = 'w', long, default_value_t = 2)]
    pub width: usize,
    #[arg(short = 'f', long, value_enum, default_value_t)]
    pub format: Format,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    // System outputs may contain empty translations, and scoring never rejects a long line.
    let limits = LineLimits { max_chars: usize::MAX, allow_empty: true };
    let hyps = read_lines(&args.hyp, &limits)?;
    let refs = args.refs.iter().map(|r| read_lines(r, &limits)).collect::<Result<Vec<_>, _>>()?;
    let streams: Vec<&[String]> = refs.iter().map(Vec::as_slice).collect();
    let context = || format!("scoring {} against {}", args.hyp.display(), args.refs[0].display());

    let mut scores: Vec<(MetricScore, String)> = Vec::new();
    for metric in &args.metrics {
        match metric {
            Metric::Bleu => {
                let cfg = BleuConfig {
                    tokenize: args.tokenize,
                    lowercase: args.lowercase,
                    smooth: Smoothing::from_method(&args.smooth, args.smooth_value)?,
                    ..BleuConfig::default()
                };
                let bleu = corpus_bleu_multi(&hyps, &streams, &cfg).with_context(context)?;
                scores.push((bleu.to_metric_score(args.width), bleu.format_with_signature(args.width)));
            }
            Metric::Chrf => {
                let cfg = ChrfConfig {
                    word_order: args.chrf_word_order,
                    lowercase: args.lowercase,
                    ..Default::default()
                };
                let chrf = corpus_chrf_multi(&hyps, &streams, &cfg).with_context(context)?;
                scores.push((chrf.to_metric_score(args.width), chrf.format_with_signature(args.width)));
            }
        }
    }
    match args.format {
        // As `sacrebleu -f json` with several metrics: "[", the objects separated by ",", "]".
        // seqkd prints the array for one metric too, so scripts always get a list.
        Format::Json => {
            let objects: Vec<String> = scores.iter().map(|(s, _)| s.to_json_pretty()).collect();
            println!("[\n{}\n]", objects.join(",\n"));
        }
        // As sacrebleu's text output: the lines are right-aligned on their " = ".
        Format::Text => {
            let lefts: Vec<usize> = scores.iter().map(|(_, line)| line.find(" = ").unwrap_or(0)).collect();
            let width = lefts.iter().copied().max().unwrap_or(0);
            for ((_, line), left) in scores.iter().zip(lefts) {
                println!("{:>width$}{}", &line[..left], &line[left..]);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
