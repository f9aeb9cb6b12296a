//! Which caption words a trained embedded denoiser uses: x₀ cross-entropy on real validation
//! images with the true caption vs captions with one attribute changed (position, colour,
//! shape, size) vs the null condition, at several timesteps. Prints a table and writes
//! `probe.csv`. Works on any checkpoint of a training run, so it can watch a run as it trains.
//!
//! ```text
//! cargo run --release -p experiments --bin caption_probe -- --run-dir results/embedded-run
//! ```

use std::path::PathBuf;

use anyhow::Context;
use candle_core::Device;
use clap::Parser;
use experiments::embedded::caption_probe::{VARIANTS, caption_sensitivity};
use experiments::embedded::config::EmbeddedConfig;
use experiments::embedded::joint_model::new_joint_model;
use experiments::embedded::vq_stage::vq_export_dir;
use experiments::result_table::ResultTable;
use vq_codebook::VqModel;

#[derive(Parser, Debug)]
struct Args {
    /// The training run folder (its config.json, VQ-VAE and, by default, denoiser checkpoint).
    #[arg(long, default_value = "results/embedded-run")]
    run_dir: PathBuf,
    /// Another checkpoint of the same recipe (a checkpoint folder or its `model.safetensors`; default: `<run-dir>/denoiser/checkpoint`).
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Timesteps to probe.
    #[arg(long, value_delimiter = ',', default_value = "30,60,80,95")]
    timesteps: Vec<usize>,
    /// One-object validation images.
    #[arg(long, default_value_t = 96)]
    images: usize,
    #[arg(long, default_value_t = 5)]
    seed: u64,
    /// Where to write probe.csv (default: `<run-dir>/probe`).
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config_path = args.run_dir.join("config.json");
    let config: EmbeddedConfig = serde_json::from_slice(
        &std::fs::read(&config_path).with_context(|| config_path.display().to_string())?,
    )
    .with_context(|| config_path.display().to_string())?;
    let checkpoint = args
        .checkpoint
        .unwrap_or_else(|| args.run_dir.join("denoiser/checkpoint"));
    // a checkpoint folder (vq-train's) holds the weights in model.safetensors
    let checkpoint = if checkpoint.is_dir() {
        checkpoint.join("model.safetensors")
    } else {
        checkpoint
    };
    let model = new_joint_model(&config)?;
    let tensors = candle_core::safetensors::load(&checkpoint, &Device::Cpu)
        .with_context(|| checkpoint.display().to_string())?;
    model.load_tensors(&tensors)?;
    let vq = VqModel::from_pretrained(
        vq_export_dir(&args.run_dir),
        candle_core::DType::F32,
        &candle_core::Device::Cpu,
    )?;
    let rows = caption_sensitivity(
        &config,
        &model,
        &vq,
        &args.timesteps,
        args.images,
        args.seed,
    )?;
    let mut header = vec!["t"];
    header.extend(VARIANTS);
    let mut table = ResultTable::new(&header);
    for r in &rows {
        let shown = r.nats.iter().map(|v| format!("{v:.4}"));
        let exact = r.nats.iter().map(|v| v.to_string());
        table.push(
            std::iter::once(r.t.to_string()).chain(shown).collect(),
            std::iter::once(r.t.to_string()).chain(exact).collect(),
        );
    }
    println!(
        "x0 cross-entropy (nats/token) by caption variant\n{}",
        table.text()
    );
    let out = args.out.unwrap_or_else(|| args.run_dir.join("probe"));
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("probe.csv"), table.csv())?;
    Ok(())
}
