//! Stage 2: the training set as token grids. The first `examples` shape-world training images
//! are encoded once with the trained VQ-VAE and cached (`tokens.safetensors`, `(N, h·w)` u32,
//! `vq_train::TokenCache` keyed by the VQ-VAE's weights file and the count);
//! the scenes themselves are re-generated from the world's seeds, which is cheap and exact.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use shape_world::{Scene, Split, World, images_to_tensor};
use vq_codebook::VqModel;

use super::progress::{say, stage_bar};
use vq_train::TokenCache;

/// Token grids and scenes of the training examples.
pub struct TokenizedData {
    /// `(N, h·w)` u32 token ids.
    pub tokens: Tensor,
    /// The scene of each row.
    pub scenes: Vec<Scene>,
}

/// The first `examples` training scenes encoded with `vq` (whose weights file is
/// `vq_weights`), from the cache at `path` when it was written for the same VQ-VAE weights and
/// count (`vq_train::TokenCache`), else encoded and cached.
pub fn load_or_encode(
    path: &Path,
    vq: &VqModel,
    vq_weights: &Path,
    world: &World,
    examples: usize,
) -> anyhow::Result<TokenizedData> {
    let key = vq_train::files_key(
        [vq_weights],
        ["shape-world training examples", &examples.to_string()],
    );
    let tokens = TokenCache::new(path).load_or_encode(&key, || -> anyhow::Result<Tensor> {
        let bar = stage_bar("encode", examples as u64, 0);
        say(
            &bar,
            &format!("[tokens] encoding {examples} training images"),
        );
        let mut rows = Vec::new();
        for start in (0..examples).step_by(256) {
            let images: Vec<_> = (start..(start + 256).min(examples))
                .map(|i| world.example(Split::Train, i as u64).image)
                .collect();
            let t = vq.encode(&images_to_tensor(&images, &Device::Cpu)?)?;
            rows.push(t.flatten_from(1)?);
            bar.inc(images.len() as u64);
        }
        bar.finish_and_clear();
        Ok(Tensor::cat(&rows, 0)?.to_dtype(DType::U32)?)
    })?;
    let scenes = (0..examples)
        .map(|i| world.example(Split::Train, i as u64).scene)
        .collect();
    Ok(TokenizedData { tokens, scenes })
}
