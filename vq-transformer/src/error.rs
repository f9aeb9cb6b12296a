//! The error type of the crate: every failure names the file, setting, shape or value at fault.

/// Errors returned by `vq-transformer`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor operation (or a checkpoint read) failed inside candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// Reading or parsing a configuration or checkpoint file failed.
    #[error("{path}: {message}")]
    File {
        /// The file or folder.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The configuration describes a model this crate does not implement (continuous or
    /// patched inputs, another norm type, ...).
    #[error("unsupported Transformer2DModel configuration: {0}")]
    Unsupported(String),
    /// A tensor had the wrong shape.
    #[error("{what}: expected shape {expected}, found {found:?}")]
    Shape {
        /// Which argument.
        what: &'static str,
        /// Human-readable description of the expected shape.
        expected: String,
        /// The shape that was passed.
        found: Vec<usize>,
    },
    /// A token id was outside `0..num_vector_embeds`.
    #[error("x_t: token id {id} is out of range (valid: 0..{limit})")]
    TokenOutOfRange {
        /// The offending id.
        id: u32,
        /// Exclusive upper bound (`num_vector_embeds`).
        limit: usize,
    },
    /// A timestep was outside the AdaLayerNorm embedding table.
    #[error(
        "timestep {t} is out of range (the AdaLayerNorm table has {rows} rows: valid 0..{rows})"
    )]
    TimestepOutOfRange {
        /// The offending timestep.
        t: usize,
        /// Rows of the table (`num_embeds_ada_norm`).
        rows: usize,
    },
    /// A per-sample timestep vector did not match the batch.
    #[error("{given} per-sample timesteps for a batch of {batch}")]
    TimestepCount {
        /// Number of timesteps passed.
        given: usize,
        /// Batch size of `x_t`.
        batch: usize,
    },
    /// Classifier-free guidance (in `discrete-diffusion`) failed.
    #[error(transparent)]
    Diffusion(#[from] discrete_diffusion::Error),
    /// A prepared text context was used with another batch size or another model.
    #[error("text context: {0}")]
    Context(String),
}

/// Result alias of the crate.
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
            other => discrete_diffusion::Error::InvalidSetting(other.to_string()),
        }
    }
}
