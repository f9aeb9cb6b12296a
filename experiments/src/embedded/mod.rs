//! The embedded default model (issue 8): a small VQ-Diffusion trained from scratch on
//! `shape-world`, reproducibly and resumably, and exported in the diffusers layout.
//!
//! Stages ([`run::run_training`]): [`vq_stage`] → [`token_cache`] → [`denoiser_training`]
//! (text encoder + denoiser + learned null embedding, jointly) → [`diffusers_export`] →
//! [`model_card`]; [`evaluation`] scores an exported model with the oracle.
//!
//! The modules form no cycle (`experiments/tests/module_graph.rs` checks it): settings in
//! [`config`], reports in [`training_report`], and each stage depends only on earlier ones.

pub mod caption_probe;
pub mod config;
pub mod denoiser_training;
pub mod diffusers_export;
pub mod evaluation;
pub mod joint_model;
pub mod model_card;
pub mod progress;
pub mod run;
pub mod seeded_init;
pub mod text_pretraining;
pub mod token_cache;
pub mod training_captions;
pub mod training_report;
pub mod vq_stage;

pub use config::EmbeddedConfig;
pub use run::{RunPaths, run_training};
pub use training_report::TrainingReport;
