//! The error type of the crate. Every message names what the caller needs to fix it: the folder and
//! file that is missing, the weight key with the expected and found shapes, the offending token id.
//! Weight-file problems come from the shared reader ([`vq_nn::Error`]).

use std::path::PathBuf;

/// Errors of the CLIP tokenizer and text encoder.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A required file is missing from a folder.
    #[error("{}: missing file {file}", folder.display())]
    MissingFile {
        /// The folder searched.
        folder: PathBuf,
        /// The file(s) expected.
        file: String,
    },
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file could not be parsed.
    #[error("{}: invalid JSON: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// The configuration cannot be honoured.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A weight file could not be read or does not fit the configuration.
    #[error(transparent)]
    Weights(#[from] vq_nn::Error),
    /// A token id is outside the vocabulary.
    #[error(
        "token id {id} at batch {batch}, position {position} is out of range (vocab size {vocab_size})"
    )]
    TokenOutOfRange {
        /// The id.
        id: i64,
        /// Its row.
        batch: usize,
        /// Its position.
        position: usize,
        /// The vocabulary size.
        vocab_size: usize,
    },
    /// The input ids have the wrong rank, length or dtype.
    #[error("input ids: {0}")]
    InputShape(String),
    /// The tokenizer files could not be read or used.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(candle_core::Error),
}

impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        match vq_nn::Error::from_candle(e) {
            Ok(weights) => Error::Weights(weights),
            Err(e) => Error::Candle(e),
        }
    }
}

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn read_to_string(path: &std::path::Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })
}

pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Result<T> {
    let text = read_to_string(path)?;
    serde_json::from_str(&text).map_err(|source| Error::Json {
        path: path.to_owned(),
        source,
    })
}

pub(crate) fn require_file(folder: &std::path::Path, file: &str) -> Result<PathBuf> {
    let path = folder.join(file);
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::MissingFile {
            folder: folder.to_owned(),
            file: file.to_owned(),
        })
    }
}
