//! Reconstruction quality of a trained VQ-VAE on a folder of PNGs (e.g. a held-out split):
//! PSNR of the clamped reconstructions, MSE, and codebook usage (perplexity, codes used).
//!
//! `cargo run --release -p vq-codebook --example evaluate_vqvae -- MODEL_DIR IMAGES_DIR`

use anyhow::bail;
use vq_codebook::load_folder;
use vq_codebook::{VqModel, evaluate};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(model), Some(images)) = (args.get(1), args.get(2)) else {
        bail!("usage: evaluate_vqvae MODEL_DIR IMAGES_DIR");
    };
    let model =
        VqModel::from_pretrained(model, candle_core::DType::F32, &candle_core::Device::Cpu)?;
    let data = load_folder(images)?;
    let report = evaluate(&model, &data, 16)?;
    println!(
        "{} images: PSNR {:.2} dB, MSE {:.5}, perplexity {:.1}, used codes {}/{}",
        data.dim(0)?,
        report.psnr,
        report.mse,
        report.usage.perplexity,
        report.usage.used_codes,
        report.usage.num_codes
    );
    Ok(())
}
