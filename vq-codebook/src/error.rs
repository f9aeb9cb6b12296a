//! The error type of the crate. Every variant names what is at fault: the file, the weight key,
//! the expected and the found shape, the offending token id or image size.

use std::path::PathBuf;

/// Errors returned by `vq-codebook`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor operation failed inside candle.
    #[error(transparent)]
    Candle(candle_core::Error),

    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// A `config.json` could not be parsed.
    #[error("{path}: invalid VQModel config: {source}")]
    ConfigParse {
        /// The file (or `<string>` when parsed from memory).
        path: PathBuf,
        /// The JSON error (names the field and position).
        source: serde_json::Error,
    },

    /// A config field has a value (or a field is present) that this implementation does not
    /// support and that would change the model.
    #[error("unsupported VQModel config: `{field}` = {value}: {reason}")]
    UnsupportedConfig {
        /// The config field.
        field: String,
        /// Its value as JSON.
        value: String,
        /// Why it is rejected / what is supported.
        reason: String,
    },

    /// No weight file was found.
    /// A weight file could not be read or does not fit the configuration (missing or
    /// mis-shaped keys, unused tensors, non-float dtypes), from the shared reader.
    #[error(transparent)]
    Weights(#[from] vq_nn::Error),

    /// An image's size is not a multiple of the downsampling factor.
    #[error(
        "image size {height}x{width} is not a multiple of the downsampling factor {factor} \
         (the encoder has {factor}x fewer tokens per side; pad or crop to a multiple of {factor})"
    )]
    ImageSize {
        /// Image height in pixels.
        height: usize,
        /// Image width in pixels.
        width: usize,
        /// The downsampling factor `2^(number of blocks - 1)`.
        factor: usize,
    },

    /// A tensor has the wrong number of channels.
    #[error("{what}: expected {expected} channels, found {found} (shape {shape:?})")]
    Channels {
        /// Which argument.
        what: &'static str,
        /// Expected channel count.
        expected: usize,
        /// Found channel count.
        found: usize,
        /// The full shape passed.
        shape: Vec<usize>,
    },

    /// A tensor has the wrong rank or layout.
    #[error("{what}: expected {expected}, found shape {found:?}")]
    Shape {
        /// Which argument.
        what: &'static str,
        /// Description of the expected shape.
        expected: String,
        /// The shape passed.
        found: Vec<usize>,
    },

    /// A token id is not a valid codebook index.
    #[error(
        "token id {id} at flat position {position} is out of range for a codebook of {num_embeddings} entries \
         (valid: 0..{num_embeddings}; the diffusion mask id {num_embeddings} must be replaced before decoding)"
    )]
    TokenOutOfRange {
        /// The offending id.
        id: i64,
        /// Its position in the flattened token tensor.
        position: usize,
        /// Size of the codebook.
        num_embeddings: usize,
    },

    /// Reading, decoding or encoding an image failed.
    #[error("{path}: {source}")]
    Image {
        /// The image file.
        path: PathBuf,
        /// The underlying error.
        source: image::ImageError,
    },

    /// A checkpoint could not be written or read back.
    #[error("checkpoint {path}: {message}")]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },

    /// A training setting or dataset is invalid.
    #[error("invalid training setup: {0}")]
    Training(String),
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
