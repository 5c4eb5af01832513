//! `seqkd import --format marian-hf --from DIR --out MODEL_DIR`: a teacher trained elsewhere
//! (an OPUS-MT / Marian model in the Hugging Face `MarianMTModel` layout) as a seqkd model
//! directory, for `translate`, `distill`, `quantize` and the pipeline.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use seqkd_nmt::import::marian;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A Hugging Face `MarianMTModel` directory (OPUS-MT, Tatoeba-Challenge models).
    MarianHf,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long, value_enum)]
    pub format: Format,
    /// The model directory to import (config.json, model.safetensors, source.spm, target.spm, vocab.json, ...).
    #[arg(long)]
    pub from: PathBuf,
    /// The seqkd model directory to write (must not exist unless --force).
    #[arg(long)]
    pub out: PathBuf,
    /// Replace the files of --out if it exists.
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Format::MarianHf = args.format;
    if args.out.exists() && !args.force {
        anyhow::bail!("{} already exists (use --force to replace its files)", args.out.display());
    }
    let m = marian::import(&args.from, &args.out)
        .with_context(|| format!("importing {}", args.from.display()))?;
    let c = &m.config;
    println!(
        "imported {} → {}: Transformer {}+{} layers, d {}, {} heads, ffn {} ({:?}), vocabulary {}{}, \
         {} parameters; decoding: beam {}, length penalty {}, at most {} tokens",
        args.from.display(),
        args.out.display(),
        c.encoder_layers,
        c.decoder_layers,
        c.d_model,
        c.n_heads,
        c.d_ff,
        c.activation,
        m.tgt_vocab,
        if m.src_vocab == m.tgt_vocab && c.src_vocab_size.is_none() {
            " (shared)".to_string()
        } else {
            format!(" (target) / {} (source)", m.src_vocab)
        },
        m.parameters,
        m.decode.beam_size,
        m.decode.length_penalty,
        m.decode.max_len_b,
    );
    Ok(ExitCode::SUCCESS)
}
