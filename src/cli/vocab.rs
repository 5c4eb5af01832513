//! `seqkd vocab train|encode|decode`: the joint subword vocabulary.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use seqkd_text::corpus::{check_lines, LineLimits};
use seqkd_text::vocab::{SubwordKind, Vocab, VocabConfig};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Learn a joint vocabulary from text files (both sides of the training corpus).
    Train {
        /// Text files, one sentence per line.
        #[arg(long, required = true, num_args = 1..)]
        input: Vec<PathBuf>,
        /// Total vocabulary size (including 4 special ids and 256 byte pieces).
        #[arg(long, default_value_t = VocabConfig::default().size)]
        size: usize,
        /// Subword model: bpe or unigram.
        #[arg(long, default_value = "bpe")]
        kind: SubwordKind,
        /// Where to write the vocabulary (JSON, the `tokenizers` format).
        #[arg(long)]
        out: PathBuf,
    },
    /// Encode stdin, one sentence per line, to space-separated ids (or pieces).
    Encode {
        #[arg(long)]
        vocab: PathBuf,
        /// Print subword pieces instead of ids.
        #[arg(long)]
        pieces: bool,
        /// Encode as target text (an imported model's target SentencePiece model; the same for a
        /// joint vocabulary).
        #[arg(long)]
        target: bool,
    },
    /// Decode space-separated ids from stdin back to text.
    Decode {
        #[arg(long)]
        vocab: PathBuf,
    },
}

pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Train { input, size, kind, out } => {
            let cfg = VocabConfig { kind, size, ..Default::default() };
            let start = Instant::now();
            let vocab = train_from_files(&input, &cfg)?;
            vocab.save(&out)?;
            println!(
                "trained a {kind:?} vocabulary of {} ids in {:.1}s: {}",
                vocab.len(),
                start.elapsed().as_secs_f64(),
                out.display()
            );
        }
        Command::Encode { vocab, pieces, target } => {
            let vocab = Vocab::load(&vocab)?;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            for (n, line) in std::io::stdin().lock().lines().enumerate() {
                let line = line.with_context(|| format!("reading stdin line {}", n + 1))?;
                let tokens: Vec<String> = if pieces {
                    vocab.pieces(&line, !target)?
                } else if target {
                    vocab.encode(&line)?.iter().map(u32::to_string).collect()
                } else {
                    vocab.encode_src(&line)?.iter().map(u32::to_string).collect()
                };
                writeln!(out, "{}", tokens.join(" "))?;
            }
        }
        Command::Decode { vocab } => {
            let vocab = Vocab::load(&vocab)?;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            for (n, line) in std::io::stdin().lock().lines().enumerate() {
                let line = line.with_context(|| format!("reading stdin line {}", n + 1))?;
                let ids = line
                    .split_whitespace()
                    .map(|t| t.parse::<u32>())
                    .collect::<Result<Vec<_>, _>>()
                    .with_context(|| format!("stdin line {}: expected space-separated integer ids", n + 1))?;
                writeln!(out, "{}", vocab.decode(&ids))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Trains on every line of the given files (checked first, so a bad file names its line), streamed:
/// memory grows with the distinct words, not with the corpus.
pub fn train_from_files(files: &[PathBuf], cfg: &VocabConfig) -> anyhow::Result<Vocab> {
    let limits = LineLimits { allow_empty: true, ..Default::default() };
    for file in files {
        check_lines(file, &limits)?;
    }
    let paths: Vec<&std::path::Path> = files.iter().map(PathBuf::as_path).collect();
    Ok(Vocab::train_on_files(&paths, cfg)?)
}
