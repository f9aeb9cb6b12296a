//! Errors of the pipeline: every message names the model, file, component, option or value at
//! fault, and says what to do where there is something to do. As everywhere in the workspace,
//! `Display` is the whole message (cause included) and `source()` returns the cause.

use std::path::PathBuf;

/// Errors of `vq-pipeline`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A model could not be located (local folder or hub repository).
    #[error("model {model:?}: {reason}")]
    ModelNotFound {
        /// The model as the user named it.
        model: String,
        /// Why, and what to do.
        reason: String,
    },
    /// A model folder is incomplete or inconsistent; every problem found is listed.
    #[error("model folder {}: {} problem(s):\n  - {}", folder.display(), problems.len(), problems.join("\n  - "))]
    InvalidModel {
        /// The folder.
        folder: PathBuf,
        /// Every problem, one line each.
        problems: Vec<String>,
    },
    /// A component (tokenizer, text encoder, transformer, VQ-VAE) failed.
    #[error("{component}: {source}")]
    Component {
        /// The component's folder name.
        component: &'static str,
        /// Its error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A generation option is invalid.
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file could not be parsed.
    #[error("{}: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// A file is readable but its content is unusable.
    #[error("{}: {reason}", path.display())]
    InvalidFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An image could not be written.
    #[error("{}: {source}", path.display())]
    Image {
        /// The file.
        path: PathBuf,
        /// The encoder's error.
        #[source]
        source: image::ImageError,
    },
    /// The model produced NaN or infinite values (no image is written from them).
    #[error("{0}")]
    NonFiniteOutput(String),
    /// The step callback stopped the generation.
    #[error("generation cancelled")]
    Cancelled,
    /// A weight file could not be read.
    #[error(transparent)]
    Weights(#[from] vq_nn::Error),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(candle_core::Error),
    /// The scheduler or a sampler failed.
    #[error(transparent)]
    Sampling(discrete_diffusion::Error),
}

impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        match vq_nn::Error::from_candle(e) {
            Ok(weights) => Error::Weights(weights),
            Err(e) => Error::Candle(e),
        }
    }
}

impl From<discrete_diffusion::Error> for Error {
    fn from(e: discrete_diffusion::Error) -> Self {
        match e {
            discrete_diffusion::Error::Cancelled => Error::Cancelled,
            e => Error::Sampling(e),
        }
    }
}

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn component<E: std::error::Error + Send + Sync + 'static>(
    component: &'static str,
) -> impl FnOnce(E) -> Error {
    move |e| Error::Component {
        component,
        source: Box::new(e),
    }
}

pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}

/// Reads and parses a JSON file.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    serde_json::from_str(&text).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })
}
