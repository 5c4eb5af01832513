//! `seqkd`: train NMT teachers and distill them into small fast students (Kim & Rush 2016).
//!
//! A thin layer over the library crates: parse the command line, run one command, print its
//! error once (with its causes) and exit 2 on failure.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(err) => {
            // A closed pipe (`seqkd ... | head`) is not an error worth reporting.
            if err.chain().any(|c| {
                c.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("seqkd: error: {err:#}");
            ExitCode::from(2)
        }
    }
}
