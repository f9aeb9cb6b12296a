//! The error type of the crate: every failure names the value, shape or setting at fault.

/// Errors returned by `discrete-diffusion`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor operation failed inside candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// A schedule or transition was built from invalid numbers.
    #[error("invalid schedule: {0}")]
    InvalidSchedule(String),
    /// A timestep lies outside `0..num_timesteps`.
    #[error("timestep {t} is out of range for a chain of {num_timesteps} steps (valid: 0..={max})", max = num_timesteps.saturating_sub(1))]
    TimestepOutOfRange {
        /// The offending timestep.
        t: usize,
        /// Number of timesteps of the chain.
        num_timesteps: usize,
    },
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
    /// A token id was outside the valid range.
    #[error("{what}: token id {id} is out of range (valid: 0..{limit})")]
    TokenOutOfRange {
        /// Which argument.
        what: &'static str,
        /// The offending id.
        id: u32,
        /// Exclusive upper bound.
        limit: usize,
    },
    /// A sampling or loss setting was invalid.
    #[error("invalid setting: {0}")]
    InvalidSetting(String),
    /// A recorded noise stream ran out.
    #[error("replayed noise exhausted: {requested} uniforms requested but only {remaining} remain")]
    NoiseExhausted {
        /// Number of uniforms asked for.
        requested: usize,
        /// Number left in the stream.
        remaining: usize,
    },
    /// A non-finite value (NaN) was found where a probability was expected.
    #[error("non-finite value in {0}")]
    NotFinite(&'static str),
    /// A [`crate::Denoiser`] implementation (a model crate) failed.
    #[error("denoiser: {0}")]
    Model(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The sampling loop was stopped by its step callback.
    #[error("cancelled by the step callback")]
    Cancelled,
    /// Reading or parsing a configuration file failed.
    #[error("{path}: {message}")]
    Config {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
}

/// Result alias of the crate.
pub type Result<T> = std::result::Result<T, Error>;
