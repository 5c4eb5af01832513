//! `seqkd pipeline --config FILE --out DIR`: the paper's whole experiment as resumable stages.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use seqkd_nmt::pipeline::{self, PipelineConfig};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Pipeline config (TOML): [data] [teacher] [student] [finetune] [distill] [eval], rows.
    #[arg(long)]
    pub config: PathBuf,
    /// Run directory; rerunning into the same directory skips finished stages and resumes the rest.
    #[arg(long)]
    pub out: PathBuf,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let cfg = PipelineConfig::load(&args.config)?;
    pipeline::run(&cfg, &args.out, !args.quiet)
        .with_context(|| format!("pipeline into {}", args.out.display()))?;
    let report = std::fs::read_to_string(args.out.join("report.md")).context("reading the report")?;
    println!("{report}");
    println!("report written to {}", args.out.join("report.md").display());
    Ok(ExitCode::SUCCESS)
}
