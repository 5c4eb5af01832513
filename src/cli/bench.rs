//! `seqkd bench [--steps 20] [--warmup 3] [--threads 2] [--device cpu] [--json FILE] [--no-pytorch]`:
//! fixed-size speed measurements, side by side with the same work in PyTorch
//! (see `seqkd_nmt::bench::speed` for what is measured).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use seqkd_nmt::bench::speed::{self, Options};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Timed training steps, and timed batches of fixed-work greedy decoding.
    #[arg(long, default_value_t = 20)]
    pub steps: usize,
    /// Untimed warm-up steps (and batches) before the timed ones.
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// Intra-op threads, here and in the PyTorch reference.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// cpu, cuda or cuda:N (here and in the PyTorch reference).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Do not run the PyTorch reference.
    #[arg(long)]
    pub no_pytorch: bool,
    /// Python with torch 2.13 (default: .venv/bin/python if it exists, else python3).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// The PyTorch reference script (default: benches/pytorch_reference.py of this checkout).
    #[arg(long)]
    pub script: Option<PathBuf>,
    /// Random source sentences for the batched Translator runs.
    #[arg(long, default_value_t = 256)]
    pub sentences: usize,
    /// How many of those to also translate one sentence at a time.
    #[arg(long, default_value_t = 32)]
    pub single: usize,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let opts = Options {
        steps: args.steps,
        warmup: args.warmup,
        threads: args.threads,
        device: args.device,
        no_pytorch: args.no_pytorch,
        python: args.python,
        script: args.script,
        sentences: args.sentences,
        single: args.single,
    };
    let report = speed::run(&opts)?;
    print!("{}", report.markdown());
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report).context("serializing the report")?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}
