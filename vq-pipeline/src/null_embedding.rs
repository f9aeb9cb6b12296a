//! The classifier-free-guidance null condition (Improved VQ-Diffusion §3.1): diffusers'
//! `LearnedClassifierFreeSamplingEmbeddings`. With `learnable = true` it is a `(77, C)` tensor
//! `embeddings` used as stored (not L2-normalised); otherwise guidance uses the CLIP embedding of
//! the empty prompt (computed by the pipeline).

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use serde::Deserialize;

use crate::{PipelineError, Result};

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
    let io = |path: &Path, message: String| PipelineError::Io {
        path: path.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(config).map_err(|e| io(config, e.to_string()))?;
    let cfg: NullEmbeddingConfig =
        serde_json::from_str(&text).map_err(|e| io(config, e.to_string()))?;
    if !cfg.learnable {
        return Ok((cfg, None));
    }
    let tensors: Vec<(String, Tensor)> = if weights.extension().is_some_and(|e| e == "safetensors")
    {
        candle_core::safetensors::load(weights, device)
            .map_err(|e| io(weights, e.to_string()))?
            .into_iter()
            .collect()
    } else {
        candle_core::pickle::read_all(weights).map_err(|e| io(weights, e.to_string()))?
    };
    let embeddings = tensors
        .into_iter()
        .find(|(k, _)| k == "embeddings")
        .map(|(_, t)| t)
        .ok_or_else(|| io(weights, "no tensor named \"embeddings\"".into()))?;
    let expected = (cfg.length.unwrap_or(0), cfg.hidden_size.unwrap_or(0));
    if embeddings.dims() != [expected.0, expected.1] {
        return Err(io(
            weights,
            format!(
                "embeddings: expected shape {:?} from config.json, found {:?}",
                [expected.0, expected.1],
                embeddings.dims()
            ),
        ));
    }
    Ok((
        cfg,
        Some(embeddings.to_dtype(DType::F32)?.to_device(device)?),
    ))
}
