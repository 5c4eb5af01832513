//! `seqkd distill seq-kd|seq-inter|topk|merge`: the teacher passes that write what students train on.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use seqkd_nmt::config::DecodeConfig;
use seqkd_nmt::distill::topk_store::ProbPrecision;
use seqkd_nmt::distill::word_kd::{write_topk_store, TopkOptions};
use seqkd_nmt::distill::{seq_inter, seq_kd, Engine, PassOptions, PassStats};
use seqkd_nmt::model_dir::LoadedModel;
use seqkd_text::corpus::{read_lines, LineLimits, LineWindow, Lines};
use seqkd_text::resumable::{merge_shards, Shard};

use super::translate::Engine as TranslateEngine;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Seq-KD (§3.2): the teacher's beam translation of every source line, as a new target file.
    SeqKd(SeqKdArgs),
    /// Seq-Inter (§3.3): of the teacher's K-best, the hypothesis closest to the reference (sentence BLEU).
    SeqInter(SeqInterArgs),
    /// Word-KD (§3.1): store the teacher's top-k distribution at every target position of a corpus.
    Topk(TopkArgs),
    /// Concatenate the shards 0..N of an output (written with --shard i/N) into the output.
    Merge(MergeArgs),
}

/// What every teacher pass needs.
#[derive(Debug, clap::Args)]
pub struct PassArgs {
    /// The teacher's model directory.
    #[arg(long)]
    pub teacher: PathBuf,
    /// Source file, one sentence per line.
    #[arg(long)]
    pub src: PathBuf,
    /// Output file, aligned line by line with --src. It appears only when complete; a rerun after an
    /// interruption continues where the last run stopped.
    #[arg(long)]
    pub out: PathBuf,
    /// Sentences per chunk: progress is saved after each chunk, and shards are made of whole chunks.
    #[arg(long, default_value_t = 1000)]
    pub chunk: usize,
    /// Padded source tokens per decoding batch.
    #[arg(long)]
    pub batch_tokens: Option<usize>,
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Decoding threads (0 = the engine's default: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: i32,
    /// What runs the teacher: the native CPU runtime (the same corpus and top-k as libtorch's) or
    /// libtorch. Default: native on the CPU, libtorch with --device cuda.
    #[arg(long, value_enum)]
    pub engine: Option<TranslateEngine>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, clap::Args)]
pub struct SeqKdArgs {
    #[command(flatten)]
    pub pass: PassArgs,
    /// References (the gold targets), used only where every teacher hypothesis is empty.
    #[arg(long)]
    pub tgt: Option<PathBuf>,
    /// Beam size (the paper: 5).
    #[arg(long, default_value_t = seq_kd::PAPER_BEAM)]
    pub beam: usize,
    /// Do the part i of N (e.g. 0/4) into OUT.shard-i-of-N; then `seqkd distill merge`.
    #[arg(long, default_value = "0/1")]
    pub shard: Shard,
}

#[derive(Debug, clap::Args)]
pub struct SeqInterArgs {
    #[command(flatten)]
    pub pass: PassArgs,
    /// References the hypotheses are scored against.
    #[arg(long)]
    pub tgt: PathBuf,
    /// K-best size (the paper: 35).
    #[arg(long, default_value_t = seq_inter::PAPER_BEAM)]
    pub beam: usize,
    #[arg(long, default_value = "0/1")]
    pub shard: Shard,
}

#[derive(Debug, clap::Args)]
pub struct TopkArgs {
    #[command(flatten)]
    pub pass: PassArgs,
    /// Target file the teacher is forced on (the student's training targets).
    #[arg(long)]
    pub tgt: PathBuf,
    /// Tokens stored per position.
    #[arg(long, default_value_t = 8)]
    pub k: usize,
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f64,
    /// f16 (half the size) or f32 (exact).
    #[arg(long, default_value = "f16", value_parser = parse_precision)]
    pub precision: ProbPrecision,
}

#[derive(Debug, clap::Args)]
pub struct MergeArgs {
    /// The output the shards were written for (--out of the sharded runs).
    #[arg(long)]
    pub out: PathBuf,
    /// N of --shard i/N.
    #[arg(long)]
    pub shards: usize,
}

fn parse_precision(s: &str) -> Result<ProbPrecision, String> {
    match s {
        "f16" => Ok(ProbPrecision::F16),
        "f32" => Ok(ProbPrecision::F32),
        _ => Err(format!("'{s}': expected f16 or f32")),
    }
}

pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    let stats = match cmd {
        Command::SeqKd(a) => {
            let (teacher, decode, opts) = prepare(&a.pass, a.beam, a.shard)?;
            let srcs = read_shard(&a.pass.src, &opts)?;
            let refs = a.tgt.as_deref().map(|tgt| read_shard(tgt, &opts)).transpose()?;
            let refs = refs.as_ref().map(|r| r as &dyn Lines);
            seq_kd::seq_kd(&teacher, &a.pass.teacher, &srcs, refs, &decode, &a.pass.out, &opts)?
        }
        Command::SeqInter(a) => {
            let (teacher, decode, opts) = prepare(&a.pass, a.beam, a.shard)?;
            let srcs = read_shard(&a.pass.src, &opts)?;
            let refs = read_shard(&a.tgt, &opts)?;
            let stats =
                seq_inter::seq_inter(&teacher, &a.pass.teacher, &srcs, &refs, &decode, &a.pass.out, &opts)?;
            if stats.processed > 0 {
                eprintln!(
                    "sentence-BLEU selection among the {}-best: {:.2} s of {:.1} s ({:.0} µs per sentence)",
                    decode.beam_size,
                    stats.choose_seconds,
                    stats.seconds,
                    1e6 * stats.choose_seconds / stats.processed as f64
                );
            }
            stats
        }
        Command::Topk(a) => {
            let (teacher, decode, opts) = prepare(&a.pass, 1, Shard::default())?;
            let srcs = read_corpus_side(&a.pass.src)?;
            let tgts = read_corpus_side(&a.tgt)?;
            let topk = TopkOptions {
                k: a.k,
                temperature: a.temperature,
                precision: a.precision,
                batch_tokens: decode.batch_tokens,
            };
            write_topk_store(&teacher, &a.pass.teacher, &srcs, &tgts, &topk, &a.pass.out, &opts)?
        }
        Command::Merge(a) => {
            anyhow::ensure!(a.shards >= 1, "--shards must be >= 1");
            merge_shards(&a.out, a.shards)?;
            eprintln!("merged {} shards into {}", a.shards, a.out.display());
            return Ok(ExitCode::SUCCESS);
        }
    };
    report(&stats);
    Ok(ExitCode::SUCCESS)
}

fn read_corpus_side(path: &Path) -> anyhow::Result<Vec<String>> {
    Ok(read_lines(path, &LineLimits::default())?)
}

/// The lines of `path` this shard decodes, and the whole file's count and hash: a shard of a
/// pass over tens of millions of sentences holds only its own.
fn read_shard(path: &Path, opts: &PassOptions) -> anyhow::Result<LineWindow> {
    Ok(LineWindow::read(path, &LineLimits::default(), |n| opts.shard_sentences(n))?)
}

fn prepare(
    pass: &PassArgs,
    beam: usize,
    shard: Shard,
) -> anyhow::Result<(LoadedModel, DecodeConfig, PassOptions)> {
    anyhow::ensure!(beam >= 1, "--beam must be >= 1");
    anyhow::ensure!(pass.chunk >= 1, "--chunk must be >= 1 sentence");
    anyhow::ensure!(pass.threads >= 0, "--threads must be >= 0");
    if pass.threads > 0 {
        tch::set_num_threads(pass.threads);
    }
    let device = seqkd_nmt::parse_device(&pass.device).map_err(anyhow::Error::msg)?;
    let teacher = LoadedModel::load(&pass.teacher, device, None)
        .with_context(|| format!("loading the teacher from {}", pass.teacher.display()))?;
    let mut decode = DecodeConfig { beam_size: beam, ..teacher.config.decode.clone() };
    if let Some(bt) = pass.batch_tokens {
        anyhow::ensure!(bt >= 1, "--batch-tokens must be >= 1");
        decode.batch_tokens = bt;
    }
    // Every pass refuses `--engine native` for a teacher off the CPU.
    let native = pass.engine.map_or(device == tch::Device::Cpu, |e| e == TranslateEngine::Native);
    let engine = if native { Engine::Native { threads: pass.threads as usize } } else { Engine::Torch };
    let opts = PassOptions { chunk_sentences: pass.chunk, shard, progress: !pass.quiet, engine };
    Ok((teacher, decode, opts))
}

fn report(stats: &PassStats) {
    if stats.already_complete {
        eprintln!(
            "{} is already complete ({} sentences): nothing to do",
            stats.output.display(),
            stats.sentences
        );
    } else {
        eprintln!(
            "wrote {} ({} sentences; {} in this run, {:.1} sentences/s)",
            stats.output.display(),
            stats.sentences,
            stats.processed,
            stats.sentences_per_second()
        );
    }
}
