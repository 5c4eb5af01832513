//! `seqkd quantize --model DIR --out DIR`: an int8 copy of a model for the native engine.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Model directory written by `seqkd train` (or `seqkd prune`).
    #[arg(long)]
    pub model: PathBuf,
    /// Output model directory (created).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let s = seqkd_runtime::quantize::quantize_model_dir(&args.model, &args.out)
        .with_context(|| format!("quantizing {}", args.model.display()))?;
    println!(
        "{}: {} matrices in int8, {:.2} MB → {:.2} MB ({:.1}%); decode with `seqkd translate --engine native --model {}`",
        args.out.display(),
        s.matrices,
        s.bytes_before as f64 / 1e6,
        s.bytes_after as f64 / 1e6,
        100.0 * s.bytes_after as f64 / s.bytes_before.max(1) as f64,
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
