//! Errors of the pipeline: every message names the model, file, component, option or value at
//! fault, and says what to do where there is something to do.

use std::path::PathBuf;

/// Errors returned by `vq-pipeline`.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// `--model` is neither a folder nor a cached / downloadable hub repository.
    #[error("model {model:?}: {reason}")]
    ModelNotFound {
        /// What the user passed.
        model: String,
        /// Why it could not be used, and how to get it.
        reason: String,
    },
    /// The model folder is missing files or its configs disagree (every problem listed).
    #[error("model folder {}: {} problem(s):\n  - {}", folder.display(), problems.len(), problems.join("\n  - "))]
    InvalidModel {
        /// The folder.
        folder: PathBuf,
        /// One line per problem.
        problems: Vec<String>,
    },
    /// A component failed to load or run.
    #[error("{component}: {source}")]
    Component {
        /// Which component (`text_encoder`, `transformer`, ...).
        component: &'static str,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A generation option is out of range.
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// Reading or writing a file failed.
    #[error("{}: {message}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// The sampler failed.
    #[error(transparent)]
    Sampling(#[from] discrete_diffusion::Error),
}

/// Result alias.
pub type Result<T> = std::result::Result<T, PipelineError>;

/// Wraps a component error.
pub(crate) fn component<E: std::error::Error + Send + Sync + 'static>(
    component: &'static str,
) -> impl FnOnce(E) -> PipelineError {
    move |e| PipelineError::Component {
        component,
        source: Box::new(e),
    }
}
