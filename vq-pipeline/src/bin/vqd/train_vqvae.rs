//! `vqd train vqvae`: train a VQ-VAE from scratch on a folder of images, with `vq-codebook`'s
//! trainer (the one home of VQ-VAE training; `vq-train` re-exports it): EMA codebook updates,
//! dead-code restarts, seeded initialisation, atomic resumable checkpoints.
//!
//! The architecture is a model folder's `vqvae/config.json` (the embedded model's by default,
//! `--model` for another; `--architecture FILE` for a `config.json` of your own), its
//! `sample_size` the training resolution (images are scaled to cover it and centre-cropped).
//! The run folder holds `config.json` (every setting), `checkpoint.safetensors` (weights, AdamW
//! moments, codebook statistics, step: re-running the command continues exactly), `log.csv`
//! and `loss_curve.png`, and at the end `vqvae/` (a diffusers `VQModel` folder, what
//! `vqd train --vqvae` and diffusers load), `reconstructions.png` (validation images above their
//! reconstructions) and `report.json` (validation PSNR and codebook usage).

use std::path::PathBuf;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use vq_codebook::{
    TrainConfig, Trainer, VqModel, VqModelConfig, checkpoint_path, evaluate, images_to_tensor,
    tensor_to_images,
};
use vq_pipeline::{contact_sheet, write_atomically};
use vq_train::{BadData, ImageFolder, LineChart, Series, fit_image, write_json_atomic};

use crate::{ModelArgs, locate};

#[derive(Args)]
pub struct TrainVqvaeArgs {
    /// The images: a folder of PNG / JPEG files (or those its `metadata.jsonl` lists).
    #[arg(long)]
    data: PathBuf,
    /// The run folder (created; re-running with it resumes).
    #[arg(long)]
    out: PathBuf,
    /// The model whose `vqvae/config.json` gives the architecture (default: the embedded model).
    #[command(flatten)]
    model: ModelArgs,
    /// A VQ-VAE `config.json` to use as the architecture instead of a model's.
    #[arg(long)]
    architecture: Option<PathBuf>,
    /// A JSON file with any of the training settings (see `config.json` of a run for every
    /// key); command-line flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Optimiser steps in all.
    #[arg(long)]
    steps: Option<u64>,
    /// Images per step.
    #[arg(long)]
    batch_size: Option<usize>,
    /// AdamW learning rate.
    #[arg(long)]
    learning_rate: Option<f64>,
    /// Seed of initialisation, batches and code restarts.
    #[arg(long)]
    seed: Option<u64>,
    /// Steps between checkpoints.
    #[arg(long)]
    checkpoint_every: Option<u64>,
    /// Fraction of the images held out for validation.
    #[arg(long, default_value_t = 0.1)]
    validation: f64,
    /// Leave bad images out (counted) instead of stopping at the first.
    #[arg(long)]
    skip_bad_data: bool,
}

/// The run's settings: defaults, then `--config`, then the flags.
fn settings(args: &TrainVqvaeArgs) -> anyhow::Result<TrainConfig> {
    let mut config = crate::train::merge_config(TrainConfig::default(), args.config.as_deref())?;
    if let Some(v) = args.steps {
        config.steps = v;
    }
    if let Some(v) = args.batch_size {
        config.batch_size = v;
    }
    if let Some(v) = args.learning_rate {
        config.learning_rate = v;
    }
    if let Some(v) = args.seed {
        config.seed = v;
    }
    if let Some(v) = args.checkpoint_every {
        config.checkpoint_every = v;
    }
    // Every step goes to log.csv, so a resumed run's log continues from its checkpoint.
    config.log_every = 1;
    anyhow::ensure!(config.steps > 0, "--steps must be at least 1");
    anyhow::ensure!(config.batch_size > 0, "--batch-size must be at least 1");
    anyhow::ensure!(
        config.learning_rate.is_finite() && config.learning_rate > 0.0,
        "--learning-rate must be a positive number, got {}",
        config.learning_rate
    );
    Ok(config)
}

/// The architecture to train.
fn architecture(args: &TrainVqvaeArgs) -> anyhow::Result<VqModelConfig> {
    let path = match &args.architecture {
        Some(p) => p.clone(),
        None => locate(&args.model)?.0.join("vqvae").join("config.json"),
    };
    let config = VqModelConfig::from_file(&path)
        .map_err(|e| anyhow::anyhow!("architecture {}: {e}", path.display()))?;
    config
        .validate()
        .map_err(|e| anyhow::anyhow!("architecture {}: {e}", path.display()))?;
    Ok(config)
}

/// `(N, 3, H, W)` in `[-1, 1]` of the images at `size × size`.
fn load(items: &[&vq_train::CaptionedImage], size: u32) -> anyhow::Result<Tensor> {
    let images = items
        .iter()
        .map(|i| fit_image(&i.path, size))
        .collect::<vq_train::Result<Vec<_>>>()?;
    Ok(images_to_tensor(&images)?)
}

/// Rows `step,…` of the log up to `step` (a resumed run drops what was logged after its
/// checkpoint, so the log continues the uninterrupted run's).
fn log_up_to(log: &str, step: u64) -> String {
    log.lines()
        .enumerate()
        .filter(|(i, line)| {
            *i == 0
                || line
                    .split(',')
                    .next()
                    .and_then(|s| s.parse::<u64>().ok())
                    .is_some_and(|s| s <= step)
        })
        .map(|(_, l)| format!("{l}\n"))
        .collect()
}

fn loss_chart(log: &str) -> LineChart {
    let rows: Vec<Vec<f64>> = log
        .lines()
        .skip(1)
        .map(|l| l.split(',').filter_map(|v| v.parse().ok()).collect())
        .filter(|r: &Vec<f64>| r.len() >= 3)
        .collect();
    LineChart {
        title: "VQ-VAE training".into(),
        x_label: "step".into(),
        y_label: "loss".into(),
        series: vec![
            Series {
                label: "total".into(),
                points: rows.iter().map(|r| (r[0], r[1])).collect(),
            },
            Series {
                label: "reconstruction".into(),
                points: rows.iter().map(|r| (r[0], r[2])).collect(),
            },
        ],
        log_y: true,
    }
}

pub fn train_vqvae(args: TrainVqvaeArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    anyhow::ensure!(
        (0.0..1.0).contains(&args.validation),
        "--validation must lie in [0, 1), got {}",
        args.validation
    );
    let device = vq_nn::parse_device(&args.model.device)?;
    let model_config = architecture(&args)?;
    let config = settings(&args)?;
    let bad = if args.skip_bad_data {
        BadData::Skip
    } else {
        BadData::Error
    };
    let folder = ImageFolder::open_images(&args.data, bad)?;
    for (path, why) in &folder.skipped {
        eprintln!("skipped {}: {why}", path.display());
    }
    let (train_items, validation_items) = folder.split(args.validation, config.seed);
    anyhow::ensure!(
        !train_items.is_empty(),
        "{}: every image is held out for validation; lower --validation",
        args.data.display()
    );
    let size = model_config.sample_size as u32;
    std::fs::create_dir_all(&args.out)
        .map_err(|e| anyhow::anyhow!("--out {}: {e}", args.out.display()))?;
    write_json_atomic(
        &args.out.join("config.json"),
        &serde_json::json!({
            "architecture": model_config,
            "training": config,
            "data": args.data.display().to_string(),
            "images": {"training": train_items.len(), "validation": validation_items.len(),
                       "skipped": folder.skipped.len(), "resolution": size},
            "validation_fraction": args.validation,
        }),
    )?;
    eprintln!(
        "{} training images, {} held out, {size}×{size}, {} steps of {}",
        train_items.len(),
        validation_items.len(),
        config.steps,
        config.batch_size
    );
    let data = load(&train_items, size)?.to_device(&device)?;
    let checkpoint = checkpoint_path(&args.out);
    let mut trainer = Trainer::resume_or_new(&model_config, &config, &checkpoint, &device)?;
    let first = trainer.step();
    let log_path = args.out.join("log.csv");
    let header = "step,loss,reconstruction,commitment,perplexity,used_codes,dead_codes";
    let mut log = match std::fs::read_to_string(&log_path) {
        Ok(text) if first > 0 => log_up_to(&text, first),
        _ => format!("{header}\n"),
    };
    if first > 0 {
        eprintln!("resuming at step {first}");
    }
    let bar = ProgressBar::new(config.steps).with_style(
        ProgressStyle::with_template(
            "training the VQ-VAE [{bar:30}] {pos}/{len} {msg} ({per_sec}) eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_position(first);
    let mut failure = None;
    trainer.fit(&data, Some(&checkpoint), |l| {
        bar.set_position(l.step);
        bar.set_message(format!(
            "rec {:.4} ppl {:.0}",
            l.reconstruction, l.usage.perplexity
        ));
        log.push_str(&format!(
            "{},{},{},{},{},{},{}\n",
            l.step,
            l.loss,
            l.reconstruction,
            l.commitment,
            l.usage.perplexity,
            l.usage.used_codes,
            l.dead_codes
        ));
        if l.step.is_multiple_of(config.checkpoint_every) || l.step == config.steps {
            let written = write_atomically(&log_path, log.as_bytes())
                .map_err(anyhow::Error::from)
                .and_then(|_| {
                    loss_chart(&log)
                        .save(&args.out, "loss_curve")
                        .map(|_| ())
                        .map_err(anyhow::Error::from)
                });
            if let Err(e) = written {
                failure.get_or_insert(e);
            }
        }
    })?;
    if let Some(e) = failure {
        return Err(e);
    }
    bar.finish_and_clear();
    write_atomically(&log_path, log.as_bytes())?;
    loss_chart(&log).save(&args.out, "loss_curve")?;

    let export = args.out.join("vqvae");
    trainer.export_diffusers(&export)?;
    let model = VqModel::from_pretrained(&export, DType::F32, &device)?;
    let held_out: Vec<&vq_train::CaptionedImage> = if validation_items.is_empty() {
        train_items.iter().take(8).copied().collect()
    } else {
        validation_items.clone()
    };
    let validation = load(&held_out, size)?.to_device(&device)?;
    let report = evaluate(&model, &validation, 16)?;
    let shown = validation.narrow(0, 0, held_out.len().min(8))?;
    let reconstructed = model
        .decode_tokens(&model.encode(&shown)?)?
        .clamp(-1f32, 1f32)?;
    let mut grid = tensor_to_images(&shown.to_device(&Device::Cpu)?)?;
    grid.extend(tensor_to_images(&reconstructed.to_device(&Device::Cpu)?)?);
    let mut png = Vec::new();
    contact_sheet(&grid, shown.dim(0)?)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
    write_atomically(&args.out.join("reconstructions.png"), &png)?;
    let report = serde_json::json!({
        "validation_images": held_out.len(),
        "validation_is_training_data": validation_items.is_empty(),
        "validation_psnr_db": report.psnr,
        "validation_mse": report.mse,
        "codes_used": report.usage.used_codes,
        "codebook_size": report.usage.num_codes,
        "perplexity": report.usage.perplexity,
        "steps": trainer.step(),
        "steps_this_session": trainer.step() - first,
        "seconds_this_session": started.elapsed().as_secs_f64(),
    });
    write_json_atomic(&args.out.join("report.json"), &report)?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    println!(
        "exported {} (vqd train --vqvae {} trains a denoiser on its tokens)",
        export.display(),
        export.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resumed_log_drops_rows_after_the_checkpoint() {
        let log = "step,loss\n1,0.5\n2,0.4\n3,0.3\n";
        assert_eq!(log_up_to(log, 2), "step,loss\n1,0.5\n2,0.4\n");
    }
}
