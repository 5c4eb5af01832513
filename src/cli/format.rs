//! The output format of the commands that print results.

use clap::ValueEnum;

/// Output format shared by the commands that print results.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    #[default]
    Text,
    Json,
}
