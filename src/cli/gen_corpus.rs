//! `seqkd gen-corpus`: write the built-in synthetic corpus.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use seqkd_text::synth::{self, SynthConfig, SynthCorpus};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory to write {train,valid,test}.{en,syn} (and *.mode.syn) into; created if missing.
    #[arg(long)]
    pub out: PathBuf,
    /// Seed choosing the sentences (the language itself is fixed).
    #[arg(long, default_value_t = SynthConfig::default().seed)]
    pub seed: u64,
    #[arg(long, default_value_t = SynthConfig::default().train)]
    pub train: usize,
    #[arg(long, default_value_t = SynthConfig::default().valid)]
    pub valid: usize,
    #[arg(long, default_value_t = SynthConfig::default().test)]
    pub test: usize,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let cfg = SynthConfig { seed: args.seed, train: args.train, valid: args.valid, test: args.test };
    let corpus = synth::generate(&cfg);
    write_corpus(&corpus, &args.out)?;
    println!(
        "wrote {} train, {} valid, {} test pairs (seed {}) to {}",
        cfg.train,
        cfg.valid,
        cfg.test,
        cfg.seed,
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Writes each split as `<split>.en` (source), `<split>.syn` (reference) and `<split>.mode.syn`
/// (the most likely translation), each file atomically.
pub fn write_corpus(corpus: &SynthCorpus, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, split) in [("train", &corpus.train), ("valid", &corpus.valid), ("test", &corpus.test)] {
        for (suffix, lines) in [("en", &split.src), ("syn", &split.tgt), ("mode.syn", &split.mode)] {
            let path = dir.join(format!("{name}.{suffix}"));
            let mut text = lines.join("\n");
            text.push('\n');
            seqkd_text::atomic_write(&path, text.as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
        }
    }
    Ok(())
}
