//! The CLIP text transformer, transformers' `CLIPTextModel` / `CLIPTextTransformer`:
//! `final_layer_norm(encoder(embeddings(ids), causal_mask))` = `last_hidden_state`, the output the
//! VQ-Diffusion pipeline consumes (`vq-diffusion-reference.md` §1.3). The pooled output and the
//! text projection are not computed.
//!
//! Built from a `VarBuilder`: a checkpoint (frozen, fused inference kernels) or a
//! `candle_nn::VarMap` (trainable: every op on that path has a backward).

use std::path::Path;

use candle_core::{DType, Device, Module, Result as CandleResult, Tensor};
use candle_nn::VarBuilder;

use crate::attention::causal_mask;
use crate::config::ClipTextConfig;
use crate::embeddings::ClipTextEmbeddings;
use crate::encoder_layer::ClipEncoderLayer;
use crate::error::{ClipError, Result};
use crate::layer_norm::LayerNorm;
use crate::normalize::l2_normalize_tokens;
use crate::weights::{checked_var_builder, find_checkpoint};

/// The CLIP text tower (`text_model.*` keys).
#[derive(Debug, Clone)]
pub struct ClipTextModel {
    embeddings: ClipTextEmbeddings,
    layers: Vec<ClipEncoderLayer>,
    final_layer_norm: LayerNorm,
    config: ClipTextConfig,
    dtype: DType,
    device: Device,
}

/// The dtype the encoder computes in: half precision is kept on accelerators, while on the CPU
/// f16/bf16 weights are converted to f32 when loaded (candle's CPU bf16 matmul fails and f16 is
/// not faster, `rust-stack.md` §4.4).
pub fn compute_dtype(requested: DType, device: &Device) -> DType {
    match (requested, device) {
        (DType::F16 | DType::BF16, Device::Cpu) => DType::F32,
        (dtype, _) => dtype,
    }
}

impl ClipTextModel {
    /// Builds the model from `vb` at the checkpoint root (this adds the `text_model` prefix).
    /// With `VarBuilder::from_varmap` the parameters are created with transformers' init and
    /// are trainable.
    pub fn new(vb: VarBuilder, config: &ClipTextConfig) -> Result<Self> {
        config.validate()?;
        let dtype = vb.dtype();
        let device = vb.device().clone();
        let vb = vb.pp("text_model");
        let embeddings = ClipTextEmbeddings::new(vb.pp("embeddings"), config)?;
        let layers = (0..config.num_hidden_layers)
            .map(|i| ClipEncoderLayer::new(vb.pp(format!("encoder.layers.{i}")), config))
            .collect::<CandleResult<Vec<_>>>()?;
        let final_layer_norm = LayerNorm::new(
            vb.pp("final_layer_norm"),
            config.hidden_size,
            config.layer_norm_eps,
        )?;
        Ok(Self {
            embeddings,
            layers,
            final_layer_norm,
            config: config.clone(),
            dtype,
            device,
        })
    }

    /// Loads a `text_encoder/` folder: `config.json` plus `model.safetensors` or
    /// `pytorch_model.bin` (f32, f16 or bf16 on disk), converted to `dtype` (see
    /// [`compute_dtype`]: f32 on the CPU).
    pub fn from_folder(folder: &Path, dtype: DType, device: &Device) -> Result<Self> {
        let config = ClipTextConfig::from_folder(folder)?;
        let checkpoint = find_checkpoint(folder)?;
        Self::from_checkpoint(&checkpoint, &config, dtype, device)
    }

    /// Loads the weights of one checkpoint file for a given config.
    pub fn from_checkpoint(
        path: &Path,
        config: &ClipTextConfig,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        config.validate()?;
        let vb = checked_var_builder(path, config, compute_dtype(dtype, device), device)?;
        Self::new(vb, config)
    }

    /// The configuration.
    pub fn config(&self) -> &ClipTextConfig {
        &self.config
    }

    /// The compute dtype.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Validates `(batch, seq)` integer ids: rank 2, `seq ≤ max_position_embeddings`, every id in
    /// `0..vocab_size`. Returns the ids as a `u32` tensor on the model's device.
    pub fn check_ids(&self, ids: &Tensor) -> Result<Tensor> {
        let (batch, seq) = ids.dims2().map_err(|_| {
            ClipError::InputShape(format!("expected (batch, seq), got {:?}", ids.dims()))
        })?;
        if seq == 0 || seq > self.config.max_position_embeddings {
            return Err(ClipError::InputShape(format!(
                "sequence length {seq} is not in 1..={}",
                self.config.max_position_embeddings
            )));
        }
        if !ids.dtype().is_int() {
            return Err(ClipError::InputShape(format!(
                "ids must be integers, got {:?}",
                ids.dtype()
            )));
        }
        let values = ids.to_dtype(DType::I64)?.to_vec2::<i64>()?;
        for (b, row) in values.iter().enumerate() {
            for (position, &id) in row.iter().enumerate() {
                if id < 0 || id as usize >= self.config.vocab_size {
                    return Err(ClipError::TokenOutOfRange {
                        id,
                        batch: b,
                        position,
                        vocab_size: self.config.vocab_size,
                    });
                }
            }
        }
        let _ = batch;
        Ok(ids.to_dtype(DType::U32)?.to_device(&self.device)?)
    }

    /// `last_hidden_state` `(batch, seq, d)` for `(batch, seq)` ids, after the final LayerNorm,
    /// under the causal mask only (no padding mask, as in the pipeline).
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let ids = self.check_ids(ids)?;
        let seq = ids.dim(1)?;
        let mask = causal_mask(seq, &self.device)?;
        let mut hidden = self.embeddings.forward(&ids)?;
        for layer in &self.layers {
            hidden = layer.forward(&hidden, &mask)?;
        }
        Ok(self.final_layer_norm.forward(&hidden)?)
    }

    /// `forward` followed by the per-token L2 normalisation of the pipeline
    /// ([`l2_normalize_tokens`]).
    pub fn encode_normalized(&self, ids: &Tensor) -> Result<Tensor> {
        Ok(l2_normalize_tokens(&self.forward(ids)?)?)
    }
}
