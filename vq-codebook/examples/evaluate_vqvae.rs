//! Reconstruction quality of a trained VQ-VAE on a folder of PNGs (e.g. a held-out split):
//! PSNR of the clamped reconstructions, MSE, and codebook usage (perplexity, codes used).
//!
//! `cargo run --release -p vq-codebook --example evaluate_vqvae -- MODEL_DIR IMAGES_DIR`

use std::path::PathBuf;

use anyhow::{Context, bail};
use candle_core::Tensor;
use vq_codebook::image_io::load_image;
use vq_codebook::{VqModel, evaluate};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(model), Some(images)) = (args.get(1), args.get(2)) else {
        bail!("usage: evaluate_vqvae MODEL_DIR IMAGES_DIR");
    };
    let model = VqModel::load(model)?;
    let dir = PathBuf::from(images);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| dir.display().to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")))
        .collect();
    paths.sort();
    if paths.is_empty() {
        bail!("{}: no PNG files", dir.display());
    }
    let data = Tensor::stack(
        &paths
            .iter()
            .map(load_image)
            .collect::<vq_codebook::Result<Vec<_>>>()?,
        0,
    )?;
    let report = evaluate(&model, &data, 16)?;
    println!(
        "{} images: PSNR {:.2} dB, MSE {:.5}, perplexity {:.1}, used codes {}/{}",
        paths.len(),
        report.psnr,
        report.mse,
        report.usage.perplexity,
        report.usage.used_codes,
        report.usage.num_codes
    );
    Ok(())
}
