//! `seqkd average --model DIR [--last N]`: checkpoint averaging into `averaged.safetensors`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{ensure, Context};
use seqkd_nmt::checkpoint;
use seqkd_nmt::model_dir::step_checkpoints;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Model directory with `step-*.safetensors` files (kept by `train.keep_checkpoints`).
    #[arg(long)]
    pub model: PathBuf,
    /// Average the newest N step checkpoints.
    #[arg(long, default_value_t = 5)]
    pub last: usize,
    /// Output file name inside the model directory (use with `translate --weights`).
    #[arg(long, default_value = "averaged.safetensors")]
    pub out: String,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    ensure!(args.last >= 1, "--last must be >= 1");
    let all = step_checkpoints(&args.model).with_context(|| format!("reading {}", args.model.display()))?;
    ensure!(!all.is_empty(), "{} has no step-*.safetensors checkpoints", args.model.display());
    let inputs = all[all.len().saturating_sub(args.last)..].to_vec();
    let out = args.model.join(&args.out);
    checkpoint::average(&inputs, &out)?;
    println!("averaged {} checkpoints into {}", inputs.len(), out.display());
    Ok(ExitCode::SUCCESS)
}
