//! The whole recipe as one resumable function: VQ-VAE → token cache → joint text-encoder /
//! denoiser training → diffusers export → a smoke check through the real pipeline and the
//! oracle. Each stage skips itself when its result is already in the run folder, and the
//! training stages resume from their checkpoints, so rerunning the same command after an
//! interruption continues where it stopped.

use std::path::{Path, PathBuf};

use shape_world::World;
use vq_codebook::VqModel;

use super::config::EmbeddedConfig;
use super::denoiser_training::DenoiserTrainer;
use super::diffusers_export::{export_pipeline, folder_size};
use super::evaluation::{EvalSettings, evaluate_model};
use super::model_card::write_model_card;
use super::progress::CsvLog;
use super::text_pretraining::initial_text_encoder;
use super::token_cache::load_or_encode;
use super::training_report::TrainingReport;
use super::vq_stage::{run_vq_stage, vq_export_dir};
use vq_train::write_json_atomic;

/// Where a run keeps its state.
pub struct RunPaths {
    /// The run folder.
    pub run_dir: PathBuf,
    /// The exported pipeline folder.
    pub out_dir: PathBuf,
}

/// Runs (or resumes) the recipe. `max_denoiser_steps` bounds this session's denoiser steps (for
/// tests of resumption); the export happens only once the denoiser is complete.
pub fn run_training(
    config: &EmbeddedConfig,
    paths: &RunPaths,
    max_denoiser_steps: Option<u64>,
) -> anyhow::Result<TrainingReport> {
    let run_dir = &paths.run_dir;
    std::fs::create_dir_all(run_dir)?;
    let config_path = run_dir.join("config.json");
    if config_path.is_file() {
        let saved: EmbeddedConfig = serde_json::from_str(&std::fs::read_to_string(&config_path)?)?;
        anyhow::ensure!(
            &saved == config,
            "{} holds a run with a different configuration; pick another --run-dir",
            run_dir.display()
        );
    } else {
        write_json_atomic(&config_path, config)?;
    }

    let vq_report = run_vq_stage(config, run_dir)?;
    let vq = VqModel::from_pretrained(
        vq_export_dir(run_dir),
        candle_core::DType::F32,
        &candle_core::Device::Cpu,
    )?;
    let data = load_or_encode(
        &run_dir.join("tokens.safetensors"),
        &vq,
        &vq_export_dir(run_dir).join("diffusion_pytorch_model.safetensors"),
        &World::default(),
        config.denoiser.examples,
    )?;

    let checkpoint = run_dir.join("denoiser").join("checkpoint");
    let log_path = run_dir.join("denoiser").join("log.csv");
    let pretrained = initial_text_encoder(config, run_dir, &data.scenes, &checkpoint)?;
    let mut trainer = DenoiserTrainer::resume_or_new(config, &checkpoint, pretrained.as_ref())?;
    let per_step = trainer.fit(&data, &checkpoint, &log_path, max_denoiser_steps)?;
    let complete = trainer.step() >= config.denoiser.steps;
    let final_loss = last_losses(&log_path);
    let mut report = TrainingReport {
        config: config.clone(),
        vq: vq_report,
        denoiser_seconds_per_step: per_step,
        denoiser_seconds: trainer.state().seconds,
        denoiser_sessions: trainer.state().sessions.clone(),
        final_loss,
        export_bytes: 0,
        smoke_single_all_correct: f64::NAN,
        complete,
    };
    if !complete {
        return Ok(report);
    }
    export_pipeline(
        config,
        trainer.model(),
        &vq_export_dir(run_dir),
        &paths.out_dir,
    )?;
    let smoke = evaluate_model(
        &paths.out_dir,
        &EvalSettings {
            single: 8,
            pair: 0,
            held_out: 0,
            diversity: 0,
            batch: 8,
            seed: 0,
            int8: false,
        },
        None,
    )?;
    report.smoke_single_all_correct = smoke.single.all_correct;
    write_model_card(&paths.out_dir, &report, None)?;
    report.export_bytes = folder_size(&paths.out_dir);
    write_json_atomic(&run_dir.join("report.json"), &report)?;
    Ok(report)
}

/// Mean loss of the last (up to) 10 rows of a denoiser `log.csv`.
pub fn last_losses(log: &Path) -> Option<f64> {
    let rows = CsvLog::read_column(log, "loss").ok()?;
    let tail = &rows[rows.len().saturating_sub(10)..];
    (!tail.is_empty()).then(|| tail.iter().map(|r| r.1).sum::<f64>() / tail.len() as f64)
}
