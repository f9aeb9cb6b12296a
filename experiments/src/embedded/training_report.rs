//! What a completed run of the recipe produced: the report `run.rs` writes and the model card
//! (`model_card.rs`) reads.

use serde::{Deserialize, Serialize};

use super::config::EmbeddedConfig;
use super::vq_stage::VqReport;

/// What a (completed) run produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainingReport {
    /// The recipe.
    pub config: EmbeddedConfig,
    /// VQ-VAE stage results.
    pub vq: VqReport,
    /// Mean seconds per denoiser step over this session.
    pub denoiser_seconds_per_step: f64,
    /// Denoiser training wall time over all sessions (s).
    pub denoiser_seconds: f64,
    /// Steps at which denoiser sessions started.
    pub denoiser_sessions: Vec<u64>,
    /// Final loss (mean over the last logged steps), if known.
    pub final_loss: Option<f64>,
    /// Exported folder size (bytes).
    pub export_bytes: u64,
    /// Smoke check: oracle all-correct rate on a few single-object test prompts.
    pub smoke_single_all_correct: f64,
    /// Whether the denoiser reached its configured step count.
    pub complete: bool,
}
