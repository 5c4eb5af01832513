//! The subcommands: one file each, typed arguments → one library call → print.

mod average;
mod bench;
mod bench_kd;
mod bench_serve;
mod check_corpus;
mod demo;
mod distill;
mod export;
mod format;
mod gen_corpus;
mod import;
mod pipeline;
mod prune;
mod quantize;
mod score;
mod serve;
mod train;
mod translate;
mod vocab;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "seqkd", version, about = "Sequence-level knowledge distillation for NMT (Kim & Rush 2016)")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the demo on the built-in corpus: generate, check, learn subwords, batch, score baselines.
    Demo(demo::Args),
    /// Write the built-in synthetic English→Synthian corpus (train/valid/test) to a directory.
    GenCorpus(gen_corpus::Args),
    /// Check a pair of parallel files; lists every defect with file:line, exits 1 if any.
    CheckCorpus(check_corpus::Args),
    /// Score a translation against a reference: BLEU and chrF, identical to sacrebleu 2.6.0.
    Score(score::Args),
    /// Train a model from a TOML config into a model directory (resumable).
    Train(train::Args),
    /// Translate a file or stdin with a trained model: greedy or beam search, batched, n-best.
    Translate(translate::Args),
    /// Distill a teacher: Seq-KD and Seq-Inter corpora, stored top-k for Word-KD (resumable, shardable).
    #[command(subcommand)]
    Distill(distill::Command),
    /// Run the paper's experiment: teacher → distill → every student of Table 1 → evaluate → report.
    Pipeline(pipeline::Args),
    /// Magnitude-prune a model (class-blind or class-uniform) into a compact model directory.
    Prune(prune::Args),
    /// Export a model for another runtime: a CTranslate2 model directory.
    Export(export::Args),
    /// Import a teacher trained elsewhere: an OPUS-MT / Marian model in the Hugging Face layout.
    Import(import::Args),
    /// Serve a model over HTTP (seqkd's JSON API and LibreTranslate's) with dynamic batching, no libtorch.
    Serve(serve::Args),
    /// Quantize a model's weight matrices to int8 for the native engine (`translate --engine native`).
    Quantize(quantize::Args),
    /// Average the last checkpoints of a model directory into one weights file.
    Average(average::Args),
    /// Measure training and decoding speed on fixed sizes, side by side with the same model in PyTorch.
    Bench(bench::Args),
    /// Measure distillation's costs with a real teacher: Seq-KD pass batched vs one by one, top-k size, Word-KD training speed.
    BenchKd(bench_kd::Args),
    /// Load-test `seqkd serve`: concurrent clients with and without dynamic batching, against batched translate.
    BenchServe(bench_serve::Args),
    /// Train, apply or invert a joint subword vocabulary.
    #[command(subcommand)]
    Vocab(vocab::Command),
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::GenCorpus(args) => gen_corpus::run(args),
        Command::CheckCorpus(args) => check_corpus::run(args),
        Command::Score(args) => score::run(args),
        Command::Vocab(cmd) => vocab::run(cmd),
        Command::Train(args) => train::run(args),
        Command::Average(args) => average::run(args),
        Command::Distill(cmd) => distill::run(cmd),
        Command::Pipeline(args) => pipeline::run(args),
        Command::Prune(args) => prune::run(args),
        Command::Quantize(args) => quantize::run(args),
        Command::Export(args) => export::run(args),
        Command::Import(args) => import::run(args),
        Command::Translate(args) => translate::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Bench(args) => bench::run(args),
        Command::BenchKd(args) => bench_kd::run(args),
        Command::BenchServe(args) => bench_serve::run(args),
    }
}
