//! `seqkd prune --model DIR --ratio R --scheme class-blind|class-uniform --out DIR`: magnitude
//! pruning (See et al. 2016) into a new, compact model directory. Retrain it under its mask with
//! `seqkd train` and `[train] init = "<out>"`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use seqkd_nmt::prune::{prune_model_dir, PruneScheme};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model directory to prune (dense or already pruned).
    #[arg(long)]
    pub model: PathBuf,
    /// Fraction of the weight matrices' parameters to remove, e.g. 0.8.
    #[arg(long)]
    pub ratio: f64,
    /// class-blind: one magnitude threshold over all weights; class-uniform: the ratio in every matrix.
    #[arg(long, default_value = "class-blind")]
    pub scheme: PruneScheme,
    /// The pruned model directory to write.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let s = prune_model_dir(&args.model, args.ratio, args.scheme, &args.out)
        .with_context(|| format!("pruning {}", args.model.display()))?;
    println!(
        "pruned {:.1}% of the weight matrices ({:?}): {} parameters, {} of them non-zero; \
         {:.2} MB → {:.2} MB ({:.0}% of the size) in {}",
        100.0 * s.pruned_fraction,
        s.scheme,
        s.params,
        s.nonzero_params,
        s.bytes_before as f64 / 1e6,
        s.bytes_after as f64 / 1e6,
        100.0 * s.bytes_after as f64 / s.bytes_before.max(1) as f64,
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
