//! `seqkd export --format ctranslate2 --model DIR --out DIR`: the same model as a CTranslate2
//! model directory, so students can be deployed with CTranslate2 and compared on identical weights.
//!
//! CTranslate2's own spec API does the writing (scripts/ct2/export.py, run in a venv that
//! scripts/ct2/venv.sh makes once); this command finds the scripts and runs them.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::Context;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A CTranslate2 model directory (TransformerSpec; Transformer models only).
    Ctranslate2,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long, value_enum)]
    pub format: Format,
    /// Model directory written by `seqkd train`, `prune` or `quantize`.
    #[arg(long)]
    pub model: PathBuf,
    /// Output directory (must not exist unless --force).
    #[arg(long)]
    pub out: PathBuf,
    /// CTranslate2 weight type to store (e.g. int8, int8_float32); default: float32.
    #[arg(long)]
    pub quantization: Option<String>,
    /// Replace --out if it exists.
    #[arg(long)]
    pub force: bool,
}

/// The repository's `scripts/ct2`: next to the binary's source tree, or `$SEQKD_HOME/scripts/ct2`.
fn scripts_dir() -> anyhow::Result<PathBuf> {
    let roots =
        [std::env::var_os("SEQKD_HOME").map(PathBuf::from), Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")))];
    roots
        .into_iter()
        .flatten()
        .map(|root| root.join("scripts/ct2"))
        .find(|dir| dir.join("export.py").is_file())
        .context(
            "scripts/ct2/export.py not found: run seqkd from its source checkout or set SEQKD_HOME to it",
        )
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Format::Ctranslate2 = args.format;
    let scripts = scripts_dir()?;
    let root = scripts.parent().and_then(Path::parent).context("scripts dir has no repository root")?;
    let status =
        Command::new("bash").arg(scripts.join("venv.sh")).status().context("running scripts/ct2/venv.sh")?;
    anyhow::ensure!(status.success(), "could not set up the CTranslate2 venv (scripts/ct2/venv.sh)");
    let python = root.join(".venv-ct2/bin/python");
    let mut cmd = Command::new(&python);
    cmd.arg(scripts.join("export.py")).arg(&args.model).arg(&args.out);
    if let Some(q) = &args.quantization {
        cmd.args(["--quantization", q]);
    }
    if args.force {
        cmd.arg("--force");
    }
    let status = cmd.status().with_context(|| format!("running {}", python.display()))?;
    anyhow::ensure!(status.success(), "export to CTranslate2 failed (see the message above)");
    Ok(ExitCode::SUCCESS)
}
