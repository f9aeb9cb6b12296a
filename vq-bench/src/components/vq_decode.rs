//! VQ-VAE decoding at the ITHQ shape: a 32 × 32 token grid → a 256 × 256 image with the ITHQ
//! configuration (f = 8, channels 64/128/256/512, attention at 32 × 32, 4096 × 128 codebook),
//! random weights, batch 1 — the pipeline's last stage.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use vq_codebook::{VqModel, VqModelConfig};

use crate::measure::{Measurement, time_reps};
use crate::random_weights::{specs_of, uniform, write_safetensors};
use crate::{Options, measurement};

/// `vqvae/{config.json, diffusion_pytorch_model.safetensors}` and `tokens.safetensors`.
pub fn prepare(work: &Path) -> anyhow::Result<PathBuf> {
    let dir = work.join("vqvae");
    let weights = dir.join("diffusion_pytorch_model.safetensors");
    if weights.is_file() && dir.join("tokens.safetensors").is_file() {
        return Ok(dir);
    }
    std::fs::create_dir_all(&dir)?;
    let cfg = VqModelConfig::ithq();
    std::fs::write(dir.join("config.json"), cfg.to_json_string())?;
    let specs = specs_of(
        |vb| Ok(VqModel::new(vb, &cfg)?),
        |name, shape| {
            if name.contains("norm") && name.ends_with("weight") && shape.len() == 1 {
                (1.0, 0.02)
            } else if name.ends_with("bias") {
                (0.0, 0.02)
            } else {
                // Keep activations O(1) through the convolutions: std ≈ 1/√fan_in.
                let fan_in: usize = shape.iter().skip(1).product::<usize>().max(1);
                (0.0, (1.0 / fan_in as f32).sqrt())
            }
        },
    )?;
    write_safetensors(&weights, &specs, "F32", 13)?;
    let ids: Vec<i64> = uniform(32 * 32, 0.5, 0.28, 17)
        .into_iter()
        .map(|u| ((u.clamp(0.0, 0.9999)) * 4096.0) as i64)
        .collect();
    let tokens = Tensor::from_vec(ids, (1, 32, 32), &Device::Cpu)?;
    candle_core::safetensors::save(
        &[("tokens".to_string(), tokens)].into_iter().collect(),
        dir.join("tokens.safetensors"),
    )?;
    Ok(dir)
}

/// FLOPs of decoding one 32 × 32 grid (convolutions, attention and the 1 × 1 layers), counted
/// from the configuration.
pub fn decode_flops(cfg: &VqModelConfig, side: usize) -> f64 {
    let conv =
        |c_in: usize, c_out: usize, k: usize, hw: usize| 2.0 * (c_in * c_out * k * k * hw) as f64;
    let attn =
        |c: usize, hw: usize| 2.0 * (4 * c * c * hw) as f64 + 2.0 * 2.0 * (hw * hw * c) as f64;
    let rev: Vec<usize> = cfg.block_out_channels.iter().rev().copied().collect();
    let mut hw = side * side;
    let mut f = conv(cfg.embed_dim(), cfg.latent_channels, 1, hw)
        + conv(cfg.latent_channels, rev[0], 3, hw);
    // mid block: two resnets + attention
    f += 4.0 * conv(rev[0], rev[0], 3, hw) / 1.0 + attn(rev[0], hw);
    let mut c = rev[0];
    for (i, &c_out) in rev.iter().enumerate() {
        for j in 0..cfg.layers_per_block + 1 {
            let c_in = if j == 0 { c } else { c_out };
            f += conv(c_in, c_out, 3, hw) + conv(c_out, c_out, 3, hw);
            if c_in != c_out {
                f += conv(c_in, c_out, 1, hw);
            }
            if cfg.up_block_types[i].has_attention() {
                f += attn(c_out, hw);
            }
        }
        c = c_out;
        if i + 1 < rev.len() {
            hw *= 4;
            f += conv(c, c, 3, hw);
        }
    }
    f + conv(cfg.block_out_channels[0], cfg.out_channels, 3, hw)
}

/// Tokens → image.
pub fn decode(o: &Options, variant: &str) -> anyhow::Result<Measurement> {
    let dir = prepare(&o.work)?;
    let model = VqModel::from_pretrained(&dir, DType::F32, &o.device)?;
    let tokens =
        candle_core::safetensors::load(dir.join("tokens.safetensors"), &o.device)?["tokens"]
            .to_dtype(DType::U32)?;
    let seconds = time_reps(1, o.reps, || o.sync(&model.decode_tokens(&tokens)?))?;
    Ok(measurement(
        "VQ decode 32x32 -> 256x256",
        variant,
        seconds,
        Some(decode_flops(model.config(), 32)),
        String::new(),
    ))
}
