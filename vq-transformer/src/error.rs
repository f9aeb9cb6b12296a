//! The error type of the crate: every failure names the file, setting, shape or value at fault.
//! Weight-file problems come from the shared reader ([`vq_nn::Error`]).

use std::path::PathBuf;

/// Errors of `vq-transformer`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor operation failed inside candle.
    #[error(transparent)]
    Candle(candle_core::Error),
    /// A configuration file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A configuration file is not valid JSON for `Transformer2DModel`.
    #[error("{}: invalid config: {source}", path.display())]
    Json {
        /// The file (`config.json` for parsed strings).
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// A weight file could not be read or does not fit the configuration.
    #[error(transparent)]
    Weights(#[from] vq_nn::Error),
    /// The configuration asks for something this crate does not implement.
    #[error("unsupported Transformer2DModel configuration: {0}")]
    Unsupported(String),
    /// An input has the wrong shape.
    #[error("{what}: expected shape {expected}, found {found:?}")]
    Shape {
        /// Which input.
        what: &'static str,
        /// The expected shape, in words.
        expected: String,
        /// The shape passed.
        found: Vec<usize>,
    },
    /// A token id is out of range.
    #[error("x_t: token id {id} is out of range (valid: 0..{limit})")]
    TokenOutOfRange {
        /// The id.
        id: u32,
        /// Exclusive upper bound.
        limit: usize,
    },
    /// A timestep has no AdaLayerNorm row.
    #[error(
        "timestep {t} is out of range (the AdaLayerNorm table has {rows} rows: valid 0..{rows})"
    )]
    TimestepOutOfRange {
        /// The timestep.
        t: usize,
        /// Rows of the table.
        rows: usize,
    },
    /// Per-sample timesteps do not match the batch.
    #[error("{given} per-sample timesteps for a batch of {batch}")]
    TimestepCount {
        /// Timesteps given.
        given: usize,
        /// Batch size.
        batch: usize,
    },
    /// A discrete-diffusion operation failed.
    #[error(transparent)]
    Diffusion(#[from] discrete_diffusion::Error),
    /// The text context does not fit the model.
    #[error("text context: {0}")]
    Context(String),
    /// A class condition does not fit the model.
    #[error("class condition: {0}")]
    Condition(String),
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

impl From<Error> for discrete_diffusion::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Candle(e) => discrete_diffusion::Error::Candle(e),
            Error::Shape {
                what,
                expected,
                found,
            } => discrete_diffusion::Error::Shape {
                what,
                expected,
                found,
            },
            Error::TokenOutOfRange { id, limit } => discrete_diffusion::Error::TokenOutOfRange {
                what: "x_t",
                id,
                limit,
            },
            Error::TimestepOutOfRange { t, rows } => {
                discrete_diffusion::Error::TimestepOutOfRange {
                    t,
                    num_timesteps: rows,
                }
            }
            Error::Diffusion(e) => e,
            other => discrete_diffusion::Error::Model(Box::new(other)),
        }
    }
}
