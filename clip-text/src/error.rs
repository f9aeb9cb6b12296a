//! Error type of the crate. Every message names what the caller needs to fix it: the folder and
//! file that is missing, the weight key with the expected and found shapes, the offending token id.

use std::path::PathBuf;

/// Errors of the tokenizer and the text encoder.
#[derive(Debug, thiserror::Error)]
pub enum ClipError {
    /// A required file is not in the folder.
    #[error("{folder}: missing file {file}")]
    MissingFile {
        /// The folder that was searched.
        folder: PathBuf,
        /// The file (or alternatives) that was expected there.
        file: String,
    },
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A JSON file could not be parsed.
    #[error("{path}: invalid JSON: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: serde_json::Error,
    },
    /// A checkpoint file could not be parsed.
    #[error("{path}: cannot read checkpoint: {source}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: candle_core::Error,
    },
    /// A configuration value is not supported or inconsistent.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A weight is absent from the checkpoint.
    #[error("{file}: missing weight {key} (expected shape {expected:?})")]
    MissingWeight {
        /// The checkpoint file.
        file: PathBuf,
        /// The transformers key.
        key: String,
        /// Its shape according to the config.
        expected: Vec<usize>,
    },
    /// A weight has a shape the config does not predict.
    #[error("{file}: weight {key} has shape {found:?}, config expects {expected:?}")]
    ShapeMismatch {
        /// The checkpoint file.
        file: PathBuf,
        /// The transformers key.
        key: String,
        /// Shape according to `config.json`.
        expected: Vec<usize>,
        /// Shape found in the file.
        found: Vec<usize>,
    },
    /// A token id is not below the vocabulary size of the encoder.
    #[error(
        "token id {id} at batch {batch}, position {position} is out of range (vocab size {vocab_size})"
    )]
    TokenOutOfRange {
        /// The id.
        id: i64,
        /// Row of the batch.
        batch: usize,
        /// Position in the sequence.
        position: usize,
        /// Vocabulary size of the encoder.
        vocab_size: usize,
    },
    /// The input ids have an unusable shape (rank, or longer than the position table).
    #[error("input ids: {0}")]
    InputShape(String),
    /// The `tokenizers` library failed (building, loading or encoding).
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, ClipError>;

pub(crate) fn read_to_string(path: &std::path::Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| ClipError::Io {
        path: path.to_owned(),
        source,
    })
}

pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Result<T> {
    let text = read_to_string(path)?;
    serde_json::from_str(&text).map_err(|source| ClipError::Json {
        path: path.to_owned(),
        source,
    })
}

pub(crate) fn require_file(folder: &std::path::Path, file: &str) -> Result<PathBuf> {
    let path = folder.join(file);
    if path.is_file() {
        Ok(path)
    } else {
        Err(ClipError::MissingFile {
            folder: folder.to_owned(),
            file: file.to_owned(),
        })
    }
}
