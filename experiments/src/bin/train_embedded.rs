//! Reproduces the embedded default model from scratch: VQ-VAE on shape-world, token cache, joint
//! CLIP-architecture text encoder + VQ-Diffusion denoiser training, export to a diffusers folder
//! with a model card. Resumable: rerun the same command after an interruption.
//!
//! ```text
//! cargo run --release -p experiments --bin train_embedded -- --run-dir results/embedded-run --out models/shape-world
//! cargo run --release -p experiments --bin train_embedded -- --quick --run-dir /tmp/quick --out /tmp/quick/model
//! ```

use std::path::PathBuf;

use clap::Parser;
use experiments::embedded::{EmbeddedConfig, RunPaths, run_training};

#[derive(Parser, Debug)]
struct Args {
    /// Tiny configuration for smoke tests (about a minute).
    #[arg(long)]
    quick: bool,
    /// Run folder: config, checkpoints, token cache, logs (rerun with the same folder to resume).
    #[arg(long, default_value = "results/embedded-run")]
    run_dir: PathBuf,
    /// Where to export the diffusers pipeline folder.
    #[arg(long, default_value = "models/shape-world")]
    out: PathBuf,
    /// Override the denoiser's total steps.
    #[arg(long)]
    denoiser_steps: Option<u64>,
    /// Override the VQ-VAE's total steps.
    #[arg(long)]
    vq_steps: Option<u64>,
    /// Override the VQ-VAE's channels per level (three levels: 32×32 → 8×8), e.g. `16,32,64`.
    #[arg(long, value_delimiter = ',')]
    vq_channels: Option<Vec<usize>>,
    /// Stop this session after this many denoiser steps (resume later).
    #[arg(long)]
    session_steps: Option<u64>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut config = if args.quick {
        EmbeddedConfig::quick()
    } else {
        EmbeddedConfig::full()
    };
    if let Some(s) = args.denoiser_steps {
        config.denoiser.steps = s;
    }
    if let Some(s) = args.vq_steps {
        config.vq.steps = s;
    }
    if let Some(c) = args.vq_channels {
        anyhow::ensure!(c.len() == 3, "--vq-channels needs three values");
        config.vq.model.block_out_channels = c;
    }
    let report = run_training(
        &config,
        &RunPaths {
            run_dir: args.run_dir.clone(),
            out_dir: args.out.clone(),
        },
        args.session_steps,
    )?;
    eprintln!(
        "VQ-VAE: PSNR {:.2} dB, {} / {} codes, oracle on reconstructions {:.3}, {:.2} s/step",
        report.vq.validation_psnr,
        report.vq.validation_used_codes,
        report.vq.codebook,
        report.vq.oracle_all_correct_on_reconstructions,
        report.vq.seconds_per_step
    );
    eprintln!(
        "denoiser: {:.2} s/step this session, {:.0} s total, final loss {:?}, sessions {:?}",
        report.denoiser_seconds_per_step,
        report.denoiser_seconds,
        report.final_loss,
        report.denoiser_sessions
    );
    if report.complete {
        eprintln!(
            "exported {} ({:.1} MB); smoke check: single-object all-correct {:.2}",
            args.out.display(),
            report.export_bytes as f64 / 1e6,
            report.smoke_single_all_correct
        );
    } else {
        eprintln!(
            "stopped before the end; rerun the same command to resume from {}",
            args.run_dir.display()
        );
    }
    Ok(())
}
