//! `seqkd check-corpus SRC TGT`: report every defect of a parallel corpus.

use std::path::PathBuf;
use std::process::ExitCode;

use seqkd_text::corpus::{check_parallel, LineLimits};

use super::format::Format;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Source-side file, one sentence per line.
    pub src: PathBuf,
    /// Target-side file, aligned line by line with SRC.
    pub tgt: PathBuf,
    /// Lines longer than this many characters are reported.
    #[arg(long, default_value_t = LineLimits::default().max_chars)]
    pub max_chars: usize,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let limits = LineLimits { max_chars: args.max_chars, allow_empty: false };
    let report = check_parallel(&args.src, &args.tgt, &limits)?;
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Text => {
            for problem in &report.problems {
                println!("{problem}");
            }
            if report.total_problems > report.problems.len() {
                println!("... and {} more", report.total_problems - report.problems.len());
            }
            let verdict = if report.is_clean() { "ok" } else { "NOT usable as is" };
            println!("{} clean pairs, {} problems: {verdict}", report.pairs, report.total_problems);
        }
    }
    Ok(if report.is_clean() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
