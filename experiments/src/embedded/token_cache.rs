//! Stage 2: the training set as token grids. The first `examples` shape-world training images
//! are encoded once with the trained VQ-VAE and cached (`tokens.safetensors`, `(N, h·w)` u32);
//! the scenes themselves are re-generated from the world's seeds, which is cheap and exact.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use shape_world::{Scene, Split, World, images_to_tensor};
use vq_codebook::VqModel;

use super::progress::{say, stage_bar};
use vq_train::save_tensors_atomic;

/// Token grids and scenes of the training examples.
pub struct TokenizedData {
    /// `(N, h·w)` u32 token ids.
    pub tokens: Tensor,
    /// The scene of each row.
    pub scenes: Vec<Scene>,
}

/// Loads `path` if it holds `examples` rows, else encodes them with `vq` and writes it.
pub fn load_or_encode(
    path: &Path,
    vq: &VqModel,
    world: &World,
    examples: usize,
) -> anyhow::Result<TokenizedData> {
    let scenes_and_images = |range: std::ops::Range<usize>| {
        range
            .map(|i| world.example(Split::Train, i as u64))
            .collect::<Vec<_>>()
    };
    let cached = if path.is_file() {
        candle_core::safetensors::load(path, &Device::Cpu)?
            .remove("tokens")
            .filter(|t| t.dim(0).ok() == Some(examples))
    } else {
        None
    };
    let tokens = match cached {
        Some(t) => t,
        None => {
            let bar = stage_bar("encode", examples as u64, 0);
            say(
                &bar,
                &format!("[tokens] encoding {examples} training images"),
            );
            let mut rows = Vec::new();
            for start in (0..examples).step_by(256) {
                let batch = scenes_and_images(start..(start + 256).min(examples));
                let images: Vec<_> = batch.into_iter().map(|e| e.image).collect();
                let t = vq.encode(&images_to_tensor(&images, &Device::Cpu)?)?;
                rows.push(t.flatten_from(1)?);
                bar.inc(images.len() as u64);
            }
            bar.finish_and_clear();
            let tokens = Tensor::cat(&rows, 0)?.to_dtype(DType::U32)?;
            save_tensors_atomic(
                path,
                &HashMap::from([("tokens".to_string(), tokens.clone())]),
            )?;
            tokens
        }
    };
    let scenes = (0..examples)
        .map(|i| world.example(Split::Train, i as u64).scene)
        .collect();
    Ok(TokenizedData { tokens, scenes })
}
