//! The crate's one error type: every fallible function of seqkd-nmt returns [`Error`], and each
//! variant says what went wrong and where (a file, a setting, a model directory).

use std::path::{Path, PathBuf};

use crate::checkpoint::CheckpointError;
use crate::config::ConfigError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Corpus(#[from] seqkd_text::corpus::CorpusError),
    #[error(transparent)]
    Vocab(#[from] seqkd_text::vocab::VocabError),
    #[error(transparent)]
    Metrics(#[from] seqkd_text::metrics::MetricsError),
    /// A teacher pass's output that cannot be continued (another job's, or damaged).
    #[error(transparent)]
    Resumable(#[from] seqkd_text::resumable::ResumableError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{}: {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// A file seqkd wrote that does not read back (a top-k store, a stage's JSON, a pipeline config).
    #[error("{}: {reason}", .path.display())]
    BadFile { path: PathBuf, reason: String },
    /// A setting or an input that cannot work; the message names it and what to change.
    #[error("{0}")]
    Invalid(String),
    /// A directory that already holds other work than what is asked (a training run, a stage's
    /// model trained with other settings); the message says how to go on.
    #[error("{0}")]
    Conflict(String),
}

impl From<seqkd_text::encoded::EncodedError> for Error {
    fn from(e: seqkd_text::encoded::EncodedError) -> Self {
        use seqkd_text::encoded::EncodedError;
        match e {
            EncodedError::Io { path, source } => Error::Io { path, source },
            EncodedError::Corpus(e) => e.into(),
            EncodedError::Vocab(e) => e.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `map_err` for I/O on `path`.
pub fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.into(), source }
}
