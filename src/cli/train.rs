//! `seqkd train --config FILE.toml --model-dir DIR [--resume] [--world-size N --rank R --master-addr A --master-port P]`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use seqkd_nmt::config::Config;
use seqkd_nmt::student::train;
use seqkd_nmt::train::data_parallel::DataParallelConfig;
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
    /// Data-parallel training: the number of processes sharing each batch (torchrun's
    /// WORLD_SIZE). Start one `seqkd train` per process with the same config and model
    /// directory (on a filesystem they share); rank 0 writes it.
    #[arg(long, env = "WORLD_SIZE", default_value_t = 1)]
    pub world_size: usize,
    /// This process's rank, 0 .. world-size (torchrun's RANK; under Slurm, $SLURM_PROCID).
    #[arg(long, env = "RANK", default_value_t = 0)]
    pub rank: usize,
    /// Address of rank 0, where the processes meet.
    #[arg(long, env = "MASTER_ADDR", default_value = "127.0.0.1")]
    pub master_addr: String,
    /// Port of rank 0's rendezvous store.
    #[arg(long, env = "MASTER_PORT", default_value_t = 29500)]
    pub master_port: u16,
    /// Seconds to wait for the other processes, at the start and in each collective. It must
    /// cover what rank 0 does alone while the others wait: training the vocabulary, and each
    /// validation (torch.distributed's default is the same 30 minutes).
    #[arg(long, default_value_t = 1800)]
    pub dp_timeout: u64,
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
        data_parallel: (args.world_size > 1).then(|| DataParallelConfig {
            rank: args.rank,
            world: args.world_size,
            master_addr: args.master_addr.clone(),
            master_port: args.master_port,
            timeout: std::time::Duration::from_secs(args.dp_timeout),
        }),
    };
    if args.world_size == 0 || args.rank >= args.world_size.max(1) {
        anyhow::bail!("--rank {} is not in 0..{} (--world-size)", args.rank, args.world_size);
    }
    if args.world_size > 1 && cfg.train.device != "cpu" {
        anyhow::bail!(
            "data-parallel training runs on CPUs (Gloo); train.device is {}: NCCL for GPUs is not built",
            cfg.train.device
        );
    }
    let state = train(&cfg, &opts).with_context(|| format!("training into {}", args.model_dir.display()))?;
    if args.rank > 0 {
        println!(
            "rank {} of {}: trained {} steps; rank 0 validates and writes the model",
            args.rank, args.world_size, state.step
        );
        return Ok(ExitCode::SUCCESS);
    }
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
