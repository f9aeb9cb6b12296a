//! Shared helpers of the integration tests: a tiny config and seeded models.

#![allow(dead_code)]

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vq_codebook::{DownBlockType, UpBlockType, VqModel, VqModelConfig};

/// Two levels (f = 2), attention in the deep level and the mid blocks, 16 codes of size 4.
pub fn tiny_config() -> VqModelConfig {
    VqModelConfig {
        block_out_channels: vec![8, 16],
        down_block_types: vec![
            DownBlockType::DownEncoderBlock2D,
            DownBlockType::AttnDownEncoderBlock2D,
        ],
        up_block_types: vec![
            UpBlockType::AttnUpDecoderBlock2D,
            UpBlockType::UpDecoderBlock2D,
        ],
        layers_per_block: 1,
        norm_num_groups: 4,
        latent_channels: 6,
        vq_embed_dim: Some(4),
        num_vq_embeddings: 16,
        ..VqModelConfig::default()
    }
}

/// A model over a seeded `VarMap`.
pub fn seeded_model(config: &VqModelConfig, seed: u64) -> (VarMap, VqModel) {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let model = VqModel::new(vb, config).unwrap();
    vq_codebook::seeded_init(&varmap, seed).unwrap();
    (varmap, model)
}

/// Seeded uniform values in `[-1, 1)` of the given shape.
pub fn uniform(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = StdRng::seed_from_u64(seed);
    let n = shape.iter().product();
    let data: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
    Tensor::from_vec(data, shape, &Device::Cpu).unwrap()
}

/// All tensors of a varmap, by name.
pub fn tensors(varmap: &VarMap) -> std::collections::HashMap<String, Tensor> {
    varmap
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().copy().unwrap()))
        .collect()
}

/// `max |a − b|`.
pub fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap()
}

/// A unique scratch directory under the system temp dir.
pub fn scratch_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("vq-codebook-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
