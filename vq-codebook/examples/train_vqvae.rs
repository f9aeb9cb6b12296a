//! Trains a small VQ-VAE (diffusers `VQModel` architecture) on a folder of PNGs or on the
//! built-in synthetic shapes, logging losses and codebook usage, checkpointing atomically into
//! `--run-dir` (rerun the same command to resume), and exporting a diffusers folder at the end.
//!
//! ```text
//! cargo run -p vq-codebook --example train_vqvae -- --synthetic 64 --size 32 --steps 200 --run-dir runs/vq
//! cargo run -p vq-codebook --example train_vqvae -- --images data/train --steps 2000 --run-dir runs/vq
//! ```

use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use vq_codebook::checkpoint_path;
use vq_codebook::load_folder;
use vq_codebook::synthetic_images;
use vq_codebook::{
    CodebookUpdate, DownBlockType, TrainConfig, Trainer, UpBlockType, VqModelConfig, evaluate,
};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Codebook {
    /// EMA codebook (default; VQ-Diffusion's EMAVectorQuantizer).
    Ema,
    /// Gradient codebook with diffusers' legacy β placement.
    GradientLegacy,
    /// Gradient codebook with β on the commitment term.
    Gradient,
}

#[derive(Parser, Debug)]
struct Args {
    /// Folder of equally sized PNG images.
    #[arg(long)]
    images: Option<PathBuf>,
    /// Number of synthetic images to generate instead.
    #[arg(long, default_value_t = 64)]
    synthetic: usize,
    /// Synthetic image size.
    #[arg(long, default_value_t = 32)]
    size: usize,
    /// Model config JSON (diffusers `config.json`); default: a small 3-level model, f = 4.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Total steps (a resumed run continues up to this count).
    #[arg(long, default_value_t = 200)]
    steps: u64,
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    #[arg(long, default_value_t = 0.25)]
    beta: f64,
    #[arg(long, value_enum, default_value_t = Codebook::Ema)]
    codebook: Codebook,
    /// Restart codes unused for this many steps (0: never).
    #[arg(long, default_value_t = 50)]
    dead_code_window: u64,
    #[arg(long, default_value_t = 10)]
    log_every: u64,
    #[arg(long, default_value_t = 100)]
    checkpoint_every: u64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Run directory: checkpoint.safetensors, export/ (diffusers folder).
    #[arg(long, default_value = "runs/vq-codebook")]
    run_dir: PathBuf,
}

fn small_config() -> VqModelConfig {
    VqModelConfig {
        block_out_channels: vec![32, 64, 64],
        down_block_types: vec![
            DownBlockType::DownEncoderBlock2D,
            DownBlockType::DownEncoderBlock2D,
            DownBlockType::AttnDownEncoderBlock2D,
        ],
        up_block_types: vec![
            UpBlockType::AttnUpDecoderBlock2D,
            UpBlockType::UpDecoderBlock2D,
            UpBlockType::UpDecoderBlock2D,
        ],
        layers_per_block: 1,
        norm_num_groups: 16,
        latent_channels: 32,
        vq_embed_dim: Some(16),
        num_vq_embeddings: 256,
        ..VqModelConfig::default()
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let model_config = match &args.config {
        Some(path) => VqModelConfig::from_file(path)?,
        None => small_config(),
    };
    let data = match &args.images {
        Some(dir) => load_folder(dir)?,
        None => synthetic_images(args.synthetic, args.size, args.seed)?,
    };
    let codebook = match args.codebook {
        Codebook::Ema => TrainConfig::default().codebook,
        Codebook::GradientLegacy => CodebookUpdate::Gradient { legacy: true },
        Codebook::Gradient => CodebookUpdate::Gradient { legacy: false },
    };
    let train = TrainConfig {
        steps: args.steps,
        batch_size: args.batch_size,
        learning_rate: args.lr,
        beta: args.beta,
        codebook,
        dead_code_window: (args.dead_code_window > 0).then_some(args.dead_code_window),
        log_every: args.log_every,
        checkpoint_every: args.checkpoint_every,
        seed: args.seed,
        ..TrainConfig::default()
    };
    let checkpoint = checkpoint_path(&args.run_dir);
    let mut trainer = Trainer::resume_or_new(
        &model_config,
        &train,
        &checkpoint,
        &candle_core::Device::Cpu,
    )?;
    eprintln!(
        "{} images {:?}; {} at step {} of {}; checkpoint {}",
        data.dim(0)?,
        data.dims(),
        if trainer.step() > 0 {
            "resuming"
        } else {
            "starting"
        },
        trainer.step(),
        train.steps,
        checkpoint.display()
    );
    let before = evaluate(trainer.model(), &data, 16)?;
    eprintln!(
        "eval: PSNR {:.2} dB, perplexity {:.1}, used codes {}/{}",
        before.psnr, before.usage.perplexity, before.usage.used_codes, before.usage.num_codes
    );
    let start = std::time::Instant::now();
    trainer.fit(&data, Some(&checkpoint), |log| {
        eprintln!(
            "step {:>6}  loss {:.4}  rec {:.4}  commit {:.4}  codebook {:.4}  perplexity {:6.1}  used {:>4}  dead {:>4}  restarted {:>4}  ({:.1} s)",
            log.step,
            log.loss,
            log.reconstruction,
            log.commitment,
            log.codebook,
            log.usage.perplexity,
            log.usage.used_codes,
            log.dead_codes,
            log.restarted,
            start.elapsed().as_secs_f64()
        )
    })?;
    let after = evaluate(trainer.model(), &data, 16)?;
    eprintln!(
        "eval: PSNR {:.2} dB, perplexity {:.1}, used codes {}/{}",
        after.psnr, after.usage.perplexity, after.usage.used_codes, after.usage.num_codes
    );
    let export = args.run_dir.join("export");
    trainer.export_diffusers(&export)?;
    eprintln!("exported diffusers folder {}", export.display());
    Ok(())
}
