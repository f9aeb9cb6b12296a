//! Stage 1: the VQ-VAE. Trains `vq_codebook`'s [`Trainer`] (EMA codebook, dead-code restarts,
//! atomic resumable checkpoints) on shape-world training images, exports it as a diffusers
//! `vqvae/` folder, and reports reconstruction PSNR, codebook usage and the oracle's agreement
//! between validation images and their reconstructions.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Device;
use serde::{Deserialize, Serialize};
use shape_world::{SceneSpec, Split, World, analyse, images_to_tensor, judge};
use vq_codebook::checkpoint_path;
use vq_codebook::{TrainConfig, Trainer, VqModel, evaluate, tensor_to_images};

use super::config::EmbeddedConfig;
use super::progress::{CsvLog, say, stage_bar};
use vq_train::write_json_atomic;

/// What the VQ-VAE stage measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VqReport {
    /// Validation reconstruction PSNR (dB, `[0, 1]` scale).
    pub validation_psnr: f64,
    /// Codes used on the validation images.
    pub validation_used_codes: usize,
    /// Codebook size.
    pub codebook: usize,
    /// Perplexity of the validation code usage.
    pub validation_perplexity: f64,
    /// Fraction of validation reconstructions the oracle reads exactly as the scene.
    pub oracle_all_correct_on_reconstructions: f64,
    /// Mean wall time per training step (s) of the last session that trained.
    pub seconds_per_step: f64,
}

/// `run_dir/vq/export`: the trained VQ-VAE as a diffusers folder.
pub fn vq_export_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("vq").join("export")
}

/// Trains (or resumes, or skips when already done) the VQ-VAE; returns its report.
pub fn run_vq_stage(config: &EmbeddedConfig, run_dir: &Path) -> anyhow::Result<VqReport> {
    let dir = run_dir.join("vq");
    let report_path = dir.join("report.json");
    if report_path.is_file() && vq_export_dir(run_dir).join("config.json").is_file() {
        return Ok(serde_json::from_str(&std::fs::read_to_string(
            &report_path,
        )?)?);
    }
    let world = World::default();
    let stage = &config.vq;
    let images: Vec<_> = (0..stage.images as u64)
        .map(|i| world.example(Split::Train, i).image)
        .collect();
    let data = images_to_tensor(&images, &Device::Cpu)?;
    let train = TrainConfig {
        steps: stage.steps,
        batch_size: stage.batch_size,
        learning_rate: stage.learning_rate,
        reconstruction: stage.reconstruction,
        log_every: 10,
        checkpoint_every: 50,
        seed: config.seed,
        ..TrainConfig::default()
    };
    let checkpoint = checkpoint_path(&dir);
    std::fs::create_dir_all(&dir)?;
    let mut trainer =
        Trainer::resume_or_new(&stage.model, &train, &checkpoint, &candle_core::Device::Cpu)?;
    let first = trainer.step();
    let bar = stage_bar("vq-vae", stage.steps, first);
    say(
        &bar,
        &format!(
            "[vq-vae] {} images, {} at step {first} of {}",
            stage.images,
            if first > 0 { "resuming" } else { "starting" },
            stage.steps
        ),
    );
    let log = CsvLog::open(
        &dir.join("log.csv"),
        "step,loss,reconstruction,commitment,perplexity,used_codes,dead_codes,seconds",
    )?;
    let start = Instant::now();
    let mut log_error = None;
    trainer.fit(&data, Some(&checkpoint), |l| {
        bar.set_position(l.step);
        bar.set_message(format!(
            "rec {:.4} ppl {:.0}",
            l.reconstruction, l.usage.perplexity
        ));
        let secs = start.elapsed().as_secs_f64();
        if let Err(e) = log.row(&format!(
            "{},{},{},{},{},{},{},{secs:.1}",
            l.step,
            l.loss,
            l.reconstruction,
            l.commitment,
            l.usage.perplexity,
            l.usage.used_codes,
            l.dead_codes
        )) {
            log_error = Some(e);
        }
        if l.step % 100 == 0 {
            say(
                &bar,
                &format!(
                    "[vq-vae] step {} loss {:.4} rec {:.4} perplexity {:.1} used {} ({secs:.0} s)",
                    l.step, l.loss, l.reconstruction, l.usage.perplexity, l.usage.used_codes
                ),
            );
        }
    })?;
    if let Some(e) = log_error {
        return Err(e);
    }
    bar.finish_and_clear();
    let trained = (trainer.step() - first).max(1) as f64;
    let seconds_per_step = start.elapsed().as_secs_f64() / trained;
    let export = vq_export_dir(run_dir);
    trainer.export_diffusers(&export)?;
    let model =
        VqModel::from_pretrained(&export, candle_core::DType::F32, &candle_core::Device::Cpu)?;
    let report = evaluate_vq(&model, &world, stage.validation_images, seconds_per_step)?;
    say(
        &bar,
        &format!(
            "[vq-vae] validation PSNR {:.2} dB, {} / {} codes used (perplexity {:.1}), oracle reads {:.1}% of reconstructions exactly",
            report.validation_psnr,
            report.validation_used_codes,
            report.codebook,
            report.validation_perplexity,
            100.0 * report.oracle_all_correct_on_reconstructions
        ),
    );
    write_json_atomic(&report_path, &report)?;
    Ok(report)
}

/// Validation PSNR, usage and oracle agreement of `model` on `n` validation images.
pub fn evaluate_vq(
    model: &VqModel,
    world: &World,
    n: usize,
    seconds_per_step: f64,
) -> anyhow::Result<VqReport> {
    let examples = world.examples(Split::Validation, n);
    let images: Vec<_> = examples.iter().map(|e| e.image.clone()).collect();
    let data = images_to_tensor(&images, &Device::Cpu)?;
    let eval = evaluate(model, &data, 64)?;
    let recon = reconstruct(model, &images)?;
    let correct = examples
        .iter()
        .zip(&recon)
        .filter(|(e, r)| judge(&SceneSpec::from(&e.scene), &analyse(r)).all_correct())
        .count();
    Ok(VqReport {
        validation_psnr: eval.psnr,
        validation_used_codes: eval.usage.used_codes,
        codebook: eval.usage.num_codes,
        validation_perplexity: eval.usage.perplexity,
        oracle_all_correct_on_reconstructions: correct as f64 / n.max(1) as f64,
        seconds_per_step,
    })
}

/// Encode → decode of `images`, as 8-bit images.
pub fn reconstruct(
    model: &VqModel,
    images: &[image::RgbImage],
) -> anyhow::Result<Vec<image::RgbImage>> {
    let mut out = Vec::with_capacity(images.len());
    for chunk in images.chunks(64) {
        let data = images_to_tensor(chunk, &Device::Cpu)?;
        let tokens = model.encode(&data)?;
        out.extend(tensor_to_images(&model.decode_tokens(&tokens)?)?);
    }
    Ok(out)
}
