//! `seqkd score --ref REF --hyp HYP`: corpus BLEU and chrF exactly as sacrebleu 2.6.0 computes them;
//! with `--against OTHER`, also BLEU(HYP) − BLEU(OTHER) and its paired bootstrap interval.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::ValueEnum;
use seqkd_text::corpus::{read_lines, LineLimits};
use seqkd_text::metrics::{
    bootstrap::{DEFAULT_RESAMPLES, DEFAULT_SEED},
    corpus_bleu_multi, corpus_chrf_multi, paired_bootstrap_bleu, BleuConfig, ChrfConfig, MetricScore,
    Smoothing, TokenizeKind,
};

use super::format::Format;

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
    /// Another system's output: also print BLEU(hyp) − BLEU(this) with its 95% paired bootstrap
    /// interval over the test sentences (Koehn 2004; one reference file).
    #[arg(long)]
    pub against: Option<PathBuf>,
    /// Bootstrap resamples for `--against`.
    #[arg(long, default_value_t = DEFAULT_RESAMPLES)]
    pub resamples: usize,
    /// Seed of the bootstrap's resampling.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    pub seed: u64,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    // System outputs may contain empty translations, and scoring never rejects a long line.
    let limits = LineLimits::ANY_LINE;
    let hyps = read_lines(&args.hyp, &limits)?;
    let refs = args.refs.iter().map(|r| read_lines(r, &limits)).collect::<Result<Vec<_>, _>>()?;
    let streams: Vec<&[String]> = refs.iter().map(Vec::as_slice).collect();
    let context = || format!("scoring {} against {}", args.hyp.display(), args.refs[0].display());

    let bleu_cfg = BleuConfig {
        tokenize: args.tokenize,
        lowercase: args.lowercase,
        smooth: Smoothing::from_method(&args.smooth, args.smooth_value)?,
        ..BleuConfig::default()
    };
    let mut scores: Vec<(MetricScore, String)> = Vec::new();
    for metric in &args.metrics {
        match metric {
            Metric::Bleu => {
                let bleu = corpus_bleu_multi(&hyps, &streams, &bleu_cfg).with_context(context)?;
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
    let difference = match &args.against {
        None => None,
        Some(other) => {
            anyhow::ensure!(
                refs.len() == 1,
                "--against compares against one reference file, not {}",
                refs.len()
            );
            let other_hyps = read_lines(other, &limits)?;
            let d = paired_bootstrap_bleu(&other_hyps, &hyps, &refs[0], &bleu_cfg, args.resamples, args.seed)
                .with_context(|| format!("comparing {} with {}", args.hyp.display(), other.display()))?;
            Some((other, d))
        }
    };
    match args.format {
        // As `sacrebleu -f json` with several metrics: "[", the objects separated by ",", "]".
        // seqkd prints the array for one metric too, so scripts always get a list.
        Format::Json => {
            let mut objects: Vec<String> = scores.iter().map(|(s, _)| s.to_json_pretty()).collect();
            if let Some((other, d)) = &difference {
                let object = serde_json::json!({
                    "name": "BLEU difference",
                    "against": other.display().to_string(),
                    "delta": d.delta, "low": d.low, "high": d.high, "resamples": d.resamples, "seed": args.seed,
                });
                objects.push(serde_json::to_string_pretty(&object)?);
            }
            println!("[\n{}\n]", objects.join(",\n"));
        }
        // As sacrebleu's text output: the lines are right-aligned on their " = ".
        Format::Text => {
            let lefts: Vec<usize> = scores.iter().map(|(_, line)| line.find(" = ").unwrap_or(0)).collect();
            let width = lefts.iter().copied().max().unwrap_or(0);
            for ((_, line), left) in scores.iter().zip(lefts) {
                println!("{:>width$}{}", &line[..left], &line[left..]);
            }
            if let Some((other, d)) = &difference {
                let w = args.width;
                println!(
                    "BLEU difference against {} = {:+.w$} (95% paired bootstrap interval {:+.w$} … {:+.w$}, {} resamples)",
                    other.display(),
                    d.delta,
                    d.low,
                    d.high,
                    d.resamples
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
