//! `seqkd train --config FILE.toml --model-dir DIR [--resume]`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use seqkd_nmt::config::Config;
use seqkd_nmt::student::train;
use seqkd_nmt::train::TrainOptions;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Training configuration (sections [data] [model] [train] [decode]); relative data paths are
    /// relative to this file.
    #[arg(long)]
    pub config: PathBuf,
    /// Model directory to write (config, vocabulary, weights, checkpoints, metrics).
    #[arg(long)]
    pub model_dir: PathBuf,
    /// Continue the run in --model-dir from its last checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Override train.device (cpu, cuda, cuda:N).
    #[arg(long)]
    pub device: Option<String>,
    /// Override train.max_steps.
    #[arg(long)]
    pub max_steps: Option<i64>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut cfg = Config::load(&args.config)?;
    cfg.resolve_paths(args.config.parent().unwrap_or(std::path::Path::new(".")));
    if let Some(d) = args.device {
        cfg.train.device = d;
    }
    if let Some(s) = args.max_steps {
        cfg.train.max_steps = s;
    }
    let opts = TrainOptions {
        model_dir: args.model_dir.clone(),
        resume: args.resume,
        progress: !args.quiet,
        stop_after: None,
    };
    let state = train(&cfg, &opts).with_context(|| format!("training into {}", args.model_dir.display()))?;
    println!(
        "trained {} steps ({} epochs); kept model: validation perplexity {:.3}, greedy BLEU {:.2}; model in {}",
        state.step,
        state.epoch,
        state.best_valid_ppl.unwrap_or(f64::NAN),
        state.best_valid_bleu.unwrap_or(f64::NAN),
        args.model_dir.display()
    );
    Ok(ExitCode::SUCCESS)
}
