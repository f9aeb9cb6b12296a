//! The classifier-free-guidance null condition (Improved VQ-Diffusion §3.1): diffusers'
//! `LearnedClassifierFreeSamplingEmbeddings`. With `learnable = true` it is a `(77, C)` tensor
//! `embeddings` used as stored (not L2-normalised); otherwise guidance uses the CLIP embedding of
//! the empty prompt (computed by the pipeline).

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use serde::Deserialize;

use vq_nn::WeightSource;

use crate::Result;
use crate::error::read_json;

/// `learned_classifier_free_sampling_embeddings/config.json`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct NullEmbeddingConfig {
    /// Whether `embeddings` holds a learned null condition.
    pub learnable: bool,
    /// Text width `C` (null when not learnable).
    pub hidden_size: Option<usize>,
    /// Sequence length (77; null when not learnable).
    pub length: Option<usize>,
}

/// Reads the config and, when learnable, the `(length, hidden_size)` embeddings.
pub fn load_null_embedding(
    config: &Path,
    weights: &Path,
    device: &Device,
) -> Result<(NullEmbeddingConfig, Option<Tensor>)> {
    let cfg: NullEmbeddingConfig = read_json(config)?;
    if !cfg.learnable {
        return Ok((cfg, None));
    }
    let expected = vec![cfg.length.unwrap_or(0), cfg.hidden_size.unwrap_or(0)];
    let source = WeightSource::open(weights)?;
    let embeddings = source
        .var_builder(DType::F32, device)
        .get(expected.as_slice(), "embeddings")?;
    source.ensure_all_used(|_| false)?;
    Ok((cfg, Some(embeddings)))
}
