//! The error type of the crate. Every message names what the caller needs to fix it: the file,
//! the weight key with its expected and found shape or dtype, the device.
//!
//! Convention shared by the workspace (docs/architecture.md): an error's `Display` is the whole
//! message, cause included, so printing the top-level error is enough; `source()` still returns
//! the cause for programs that inspect it.

use std::path::PathBuf;

/// Errors of weight-file reading, discovery and device selection.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A saved optimiser state does not fit the optimiser's variables.
    #[error("optimiser state: {0}")]
    OptimiserState(String),
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// No weight file of the expected names exists in a folder.
    #[error("{}: no weight file (looked for {})", folder.display(), looked_for.join(", "))]
    MissingWeightFile {
        /// The folder searched.
        folder: PathBuf,
        /// The names tried, in order.
        looked_for: Vec<String>,
    },
    /// The file is not a well-formed safetensors or PyTorch file.
    #[error("{}: not a valid {format} file: {reason}", path.display())]
    InvalidWeightFile {
        /// The file.
        path: PathBuf,
        /// `"safetensors"` or `"PyTorch"`.
        format: &'static str,
        /// What is wrong, and where.
        reason: String,
    },
    /// A weight the model needs is not in the file.
    #[error("{}: missing weight {key}{}", file.display(), expected.as_ref().map(|s| format!(" (expected shape {s:?})")).unwrap_or_default())]
    MissingWeight {
        /// The weight file.
        file: PathBuf,
        /// The state-dict key.
        key: String,
        /// The shape the model expects, when known.
        expected: Option<Vec<usize>>,
    },
    /// A weight has another shape than the configuration implies.
    #[error("{}: weight {key} has shape {found:?}, the configuration expects {expected:?}", file.display())]
    WeightShape {
        /// The weight file.
        file: PathBuf,
        /// The state-dict key.
        key: String,
        /// The shape the model expects.
        expected: Vec<usize>,
        /// The stored shape.
        found: Vec<usize>,
    },
    /// A weight is stored with a dtype that is not floating point.
    #[error("{}: weight {key} is stored as {found}, expected a floating-point dtype (f32, f16, bf16 or f64)", file.display())]
    WeightDtype {
        /// The weight file.
        file: PathBuf,
        /// The state-dict key.
        key: String,
        /// The stored dtype.
        found: String,
    },
    /// The file holds tensors the model does not use (PyTorch's `strict=True` check): usually a
    /// configuration that does not describe the checkpoint (e.g. fewer layers).
    #[error("{}: {} tensor(s) in the file are not used by the model built from its configuration (e.g. {}); the configuration does not describe this checkpoint", file.display(), keys.len(), keys.iter().take(4).cloned().collect::<Vec<_>>().join(", "))]
    UnusedWeights {
        /// The weight file.
        file: PathBuf,
        /// The unused keys, sorted.
        keys: Vec<String>,
    },
    /// A tensor holds NaN or infinite values.
    #[error("{}: weight {key} holds {count} non-finite value(s) (first at flat index {first})", file.display())]
    NonFinite {
        /// The weight file.
        file: PathBuf,
        /// The state-dict key.
        key: String,
        /// How many values are NaN or infinite.
        count: usize,
        /// Flat index of the first one.
        first: usize,
    },
    /// A weight cannot be quantised to 8 bits.
    #[error("int8 quantisation of a {rows}x{cols} weight: {reason}")]
    Quantisation {
        /// Output features of the weight.
        rows: usize,
        /// Input features of the weight.
        cols: usize,
        /// What is wrong.
        reason: String,
    },
    /// A device name could not be parsed or the device is not available in this build.
    #[error("device {name:?}: {reason}")]
    Device {
        /// What the user asked for.
        name: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// An operation has no kernel on this device or dtype.
    #[error("{op} is not supported on {device}: {reason}")]
    Unsupported {
        /// The operation.
        op: &'static str,
        /// The device (and dtype) it was asked to run on.
        device: String,
        /// What to do instead.
        reason: String,
    },
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(candle_core::Error),
}

/// A candle error that carries one of ours (a weight error raised inside a `VarBuilder`)
/// becomes that error again, so `?` never buries a missing key under a generic variant.
impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        Error::from_candle(e).unwrap_or_else(Error::Candle)
    }
}

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Wraps the error into a candle error (for [`candle_nn::var_builder::SimpleBackend`]
    /// implementations, which must return one); [`Error::from_candle`] unwraps it again.
    pub fn into_candle(self) -> candle_core::Error {
        match self {
            Error::Candle(e) => e,
            other => candle_core::Error::WrappedContext {
                wrapped: Box::new(other),
                context: String::new(),
            },
        }
    }

    /// The [`Error`] carried inside a candle error (through backtrace and context wrappers), or
    /// the candle error itself when it carries none.
    pub fn from_candle(e: candle_core::Error) -> std::result::Result<Error, candle_core::Error> {
        fn find(e: &candle_core::Error) -> bool {
            match e {
                candle_core::Error::WrappedContext { wrapped, .. } => wrapped.is::<Error>(),
                candle_core::Error::WithBacktrace { inner, .. }
                | candle_core::Error::Context { inner, .. }
                | candle_core::Error::WithPath { inner, .. } => find(inner),
                _ => false,
            }
        }
        fn take(e: candle_core::Error) -> Error {
            match e {
                candle_core::Error::WrappedContext { wrapped, .. } => match wrapped.downcast() {
                    Ok(ours) => *ours,
                    Err(other) => Error::Candle(candle_core::Error::WrappedContext {
                        wrapped: other,
                        context: String::new(),
                    }),
                },
                candle_core::Error::WithBacktrace { inner, .. }
                | candle_core::Error::Context { inner, .. }
                | candle_core::Error::WithPath { inner, .. } => take(*inner),
                other => Error::Candle(other),
            }
        }
        if find(&e) { Ok(take(e)) } else { Err(e) }
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_survive_a_round_trip_through_candle() {
        let e = Error::MissingWeight {
            file: "w.safetensors".into(),
            key: "a.weight".into(),
            expected: Some(vec![2, 3]),
        };
        let wrapped = e.into_candle().bt().context("loading");
        match Error::from_candle(wrapped) {
            Ok(Error::MissingWeight { key, .. }) => assert_eq!(key, "a.weight"),
            other => panic!("{other:?}"),
        }
        let plain = candle_core::Error::Msg("x".into());
        assert!(Error::from_candle(plain).is_err());
    }

    #[test]
    fn messages_name_the_file_and_key() {
        let e = Error::WeightShape {
            file: "m/w.bin".into(),
            key: "k".into(),
            expected: vec![4],
            found: vec![5],
        };
        assert_eq!(
            e.to_string(),
            "m/w.bin: weight k has shape [5], the configuration expects [4]"
        );
    }
}
