//! The error type of the crate: every message names the file, line, variable or value at
//! fault. `Display` is the whole message (cause included); `source()` returns the cause.

use std::path::PathBuf;

/// Errors of `vq-train`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A dataset is malformed: the file and what is wrong.
    #[error("{}: {reason}", path.display())]
    Data {
        /// The file (or folder) at fault.
        path: PathBuf,
        /// What is wrong, and what to do.
        reason: String,
    },
    /// An optimiser or EMA state does not fit the variables it is loaded into.
    #[error("optimiser state: {0}")]
    State(String),
    /// A setting is out of range.
    #[error("invalid setting: {0}")]
    InvalidSetting(String),
    /// The diffusion objective or chain failed.
    #[error(transparent)]
    Diffusion(#[from] discrete_diffusion::Error),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl From<vq_nn::Error> for Error {
    fn from(e: vq_nn::Error) -> Self {
        match e {
            vq_nn::Error::OptimiserState(m) => Error::State(m),
            vq_nn::Error::Candle(c) => Error::Candle(c),
            other => Error::State(other.to_string()),
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Wraps an I/O error with its path.
pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}
