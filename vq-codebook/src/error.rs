//! The error type of the crate. Every variant names what is at fault: the file, the weight key,
//! the expected and the found shape, the offending token id or image size.

use std::path::PathBuf;

/// Errors returned by `vq-codebook`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor operation failed inside candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),

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
    #[error("no weight file at {path} (looked for {looked_for})")]
    MissingWeightFile {
        /// Where we looked.
        path: PathBuf,
        /// The file names tried.
        looked_for: String,
    },

    /// A weight file exists but cannot be read.
    #[error("{path}: cannot read weights: {message}")]
    WeightFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },

    /// A weight file lacks a tensor the model needs.
    #[error("{file}: missing weight `{key}`", file = display_file(file))]
    MissingWeight {
        /// The full state-dict key.
        key: String,
        /// The weight file, when known.
        file: Option<PathBuf>,
    },

    /// A weight has a different shape from the one the config implies.
    #[error("{file}: weight `{key}` has shape {found:?}, the config implies {expected:?}", file = display_file(file))]
    WeightShape {
        /// The full state-dict key.
        key: String,
        /// The shape the config implies.
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
        /// The weight file, when known.
        file: Option<PathBuf>,
    },

    /// Image height/width are not multiples of the model's downsampling factor.
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

fn display_file(file: &Option<PathBuf>) -> String {
    match file {
        Some(path) => path.display().to_string(),
        None => "<weights>".to_string(),
    }
}

impl Error {
    /// Attaches the weight file to weight errors that do not name one yet.
    pub(crate) fn in_file(self, path: &std::path::Path) -> Self {
        match self {
            Error::MissingWeight { key, file: None } => Error::MissingWeight {
                key,
                file: Some(path.to_path_buf()),
            },
            Error::WeightShape {
                key,
                expected,
                found,
                file: None,
            } => Error::WeightShape {
                key,
                expected,
                found,
                file: Some(path.to_path_buf()),
            },
            other => other,
        }
    }
}

/// Result type of the crate.
pub type Result<T> = std::result::Result<T, Error>;
