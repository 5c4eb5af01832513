//! `seqkd bench-kd --teacher DIR --src FILE --tgt FILE`: what distillation costs, measured with a
//! real teacher on real data (see `seqkd_nmt::bench::kd`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use seqkd_nmt::bench::kd::{self, Options};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The teacher's model directory.
    #[arg(long)]
    pub teacher: PathBuf,
    #[arg(long)]
    pub src: PathBuf,
    #[arg(long)]
    pub tgt: PathBuf,
    /// Training pairs used (the first N).
    #[arg(long, default_value_t = 2000)]
    pub sentences: usize,
    /// Of those, how many to also translate one sentence at a time.
    #[arg(long, default_value_t = 200)]
    pub single: usize,
    /// Timed student training steps per mode (after 3 untimed).
    #[arg(long, default_value_t = 30)]
    pub steps: usize,
    #[arg(long, default_value_t = 2)]
    pub threads: i32,
    #[arg(long, default_value_t = 8)]
    pub k: usize,
    /// Where to write the top-k file (default: a temporary directory).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let teacher = args.teacher.clone();
    let opts = Options {
        teacher: args.teacher,
        src: args.src,
        tgt: args.tgt,
        sentences: args.sentences,
        single: args.single,
        steps: args.steps,
        threads: args.threads,
        k: args.k,
        work_dir: args.work_dir,
    };
    let tables =
        kd::run(&opts).with_context(|| format!("measuring distillation with {}", teacher.display()))?;
    print!("{tables}");
    Ok(ExitCode::SUCCESS)
}
